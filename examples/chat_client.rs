//! A line chat client; with no address it also serves the chat itself, in
//! the same reactor, so one command shows a working chat.
//!
//! ```text
//! cargo run --example chat_client                  (serve and chat)
//! cargo run --example chat_client -- 127.0.0.1:PORT  (join someone's chat)
//! ```
//!
//! Lines typed on stdin are said in the chat; `/nick NAME` renames you,
//! `/who` lists who is here, `/quit` (or end of input) leaves. Standard
//! input is read by a thread that hands each line to the reactor with
//! `call_from_thread`; the network itself runs on the main thread.

#[path = "common/chat.rs"]
#[allow(dead_code)]
mod chat;

use std::cell::RefCell;
use std::io::BufRead;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::{Address, Reactor, ReconnectingClientFactory, Transport};

thread_local! {
    /// The connection's transport, reached by calls from the stdin thread
    /// (they run on this, the reactor's, thread).
    static OUT: Rc<RefCell<Option<Transport>>> = Rc::default();
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let reactor = Reactor::new()?;
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(a) => a.parse().expect("an address like 127.0.0.1:7000"),
        None => {
            let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), chat::chat_factory())?;
            let addr = port.local_addr();
            eprintln!("-- serving a chat on {addr}; others join with:");
            eprintln!("--   cargo run --example chat_client -- {addr}");
            addr
        }
    };

    let slot = OUT.with(|o| o.clone());
    let factory = ReconnectingClientFactory::new(move |_: &Address| chat::Printer {
        transport: slot.clone(),
    })
    .initial_delay(Duration::from_millis(500))
    .max_delay(Duration::from_secs(10));
    reactor.connect_tcp(addr, factory, Some(Duration::from_secs(5)));

    let handle = reactor.handle();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "/quit" {
                break;
            }
            let sent = handle.call_from_thread(move || {
                OUT.with(|o| match &*o.borrow() {
                    Some(t) => t.write_sequence(&[line.as_bytes(), b"\n"]),
                    None => eprintln!("-- not connected; line dropped"),
                })
            });
            if sent.is_err() {
                return;
            }
        }
        handle.stop();
    });
    reactor.run()
}
