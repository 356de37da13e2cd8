//! A line chat server: each line one client says goes to all the others.
//!
//! ```text
//! cargo run --example chat_server -- [PORT]      (default 7000; 0 picks one)
//! nc 127.0.0.1 7000                              (in two other terminals)
//! ```

#[path = "common/chat.rs"]
#[allow(dead_code)]
mod chat;

use braid::Reactor;

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse().expect("a port number"))
        .unwrap_or(7000);
    let reactor = Reactor::new()?;
    let listening = reactor.listen_tcp(([127, 0, 0, 1], port).into(), chat::chat_factory())?;
    println!("chat server on {}", listening.local_addr());
    reactor.run()
}
