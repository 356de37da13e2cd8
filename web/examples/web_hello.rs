//! A minimal HTTP server: `cargo run --example web_hello --features web -- 8080`.
use braid::Reactor;
use braid_web::{FnResource, Reply, Response, Site, Tree};
use std::time::Duration;

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let reactor = Reactor::new()?;
    let r = reactor.clone();
    let root = Tree::new()
        .index(FnResource::new(|_| Response::text("hello, world\n")))
        .child(
            "slow",
            FnResource::new(move |_| {
                let r = r.clone();
                Reply::later(async move {
                    r.sleep(Duration::from_millis(100)).await;
                    Response::text("late\n")
                })
            }),
        );
    let port = reactor.listen_tcp(([127, 0, 0, 1], port).into(), Site::new(root))?;
    println!("listening on {}", port.local_addr());
    reactor.run()
}
