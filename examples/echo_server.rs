//! An echo server: everything a client sends comes back.
//!
//! ```text
//! cargo run --example echo_server -- [PORT]    (default 8000; 0 picks one)
//! ```

use braid::{Address, Protocol, Reactor, Transport};

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse().expect("a port number"))
        .unwrap_or(8000);
    let reactor = Reactor::new()?;
    let listening = reactor.listen_tcp(([127, 0, 0, 1], port).into(), |_: &Address| Echo)?;
    println!("echo server on {}", listening.local_addr());
    reactor.run()
}
