//! braid's SOCKS server for `socks-compare`: loopback clients, no login,
//! on `--port`.

use braid::Reactor;
use braid_bench::arg;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port", 1080);
    let reactor = Reactor::new().expect("reactor");
    let _listener = reactor
        .listen_tcp(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            braid_proxy::SocksServer::new(&reactor).factory(),
        )
        .expect("listen");
    reactor.run().expect("run");
}
