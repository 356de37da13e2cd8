//! An HTTP hello-world server of one kind, in a process of its own, for
//! the `http-compare` harness. Prints `listening PORT` once it accepts
//! connections.
//!
//! ```text
//! http-server --kind braid|braid-glib|hyper-tokio [--port P]
//! ```
//!
//! Each answers every request with `200`, `text/plain` and the 14 bytes
//! `Hello, world!\n`, keeps connections alive, and writes no access log.
//! `hyper-tokio` is hyper 1.x on tokio's current-thread runtime, as
//! hyper's own examples serve HTTP/1.1 (hyper-util's `TokioIo`).

use std::convert::Infallible;
use std::io::{self, Write};
use std::net::SocketAddr;

use braid::Reactor;
use braid_web::{FnResource, Response, Site, SiteConfig};

fn announce(port: u16) {
    println!("listening {port}");
    let _ = io::stdout().flush();
}

fn braid_server(host: &str, addr: SocketAddr) {
    let reactor = Reactor::new().unwrap();
    let config = SiteConfig {
        access_log: false,
        ..SiteConfig::default()
    };
    let site = Site::with_config(
        FnResource::leaf(|_| Response::text("Hello, world!\n")),
        config,
    );
    let port = reactor.listen_tcp(addr, site).unwrap();
    announce(port.local_addr().port());
    braid_bench::run_under(host, &reactor).expect("the host starts");
}

fn hyper_tokio_server(addr: SocketAddr) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        announce(listener.local_addr().unwrap().port());
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::task::spawn_local(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    let mut r =
                        hyper::Response::new(Full::new(Bytes::from_static(b"Hello, world!\n")));
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    braid_bench::raise_fd_limit();
    let kind: String = braid_bench::arg(&args, "--kind", "braid".to_string());
    let port: u16 = braid_bench::arg(&args, "--port", 0);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match kind.as_str() {
        "braid" => braid_server("standalone", addr),
        "braid-glib" => braid_server("glib", addr),
        "hyper-tokio" => hyper_tokio_server(addr),
        other => {
            eprintln!("http-server: unknown kind {other}");
            std::process::exit(2);
        }
    }
}
