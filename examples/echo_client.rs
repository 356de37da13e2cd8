//! An echo client: sends a few messages, checks each comes back, measures
//! the round trip, and stops.
//!
//! ```text
//! cargo run --example echo_server -- 8000 &
//! cargo run --example echo_client -- 127.0.0.1:8000 [COUNT]
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use braid::{
    Address, ClientFactory, CloseReason, ConnectError, Connector, Factory, Protocol, Reactor,
    Transport,
};

struct Pinger {
    left: u32,
    sent_at: Instant,
    expect: Vec<u8>,
    got: Vec<u8>,
    rtts: Vec<Duration>,
}

impl Pinger {
    fn send(&mut self, t: &Transport) {
        self.expect = format!("ping {}\n", self.left).into_bytes();
        self.got.clear();
        self.sent_at = Instant::now();
        t.write(&self.expect);
    }
}

impl Protocol for Pinger {
    fn connection_made(&mut self, t: &Transport) {
        println!("connected to {}", t.peer_addr());
        self.send(t);
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() < self.expect.len() {
            return;
        }
        assert_eq!(self.got, self.expect, "the echo differs");
        self.rtts.push(self.sent_at.elapsed());
        self.left -= 1;
        if self.left == 0 {
            self.rtts.sort();
            println!(
                "{} round trips, median {:?}, max {:?}",
                self.rtts.len(),
                self.rtts[self.rtts.len() / 2],
                self.rtts[self.rtts.len() - 1]
            );
            t.lose_connection();
        } else {
            self.send(t);
        }
    }

    fn connection_lost(&mut self, reason: &CloseReason) {
        println!("connection closed: {reason}");
        if let Some(r) = REACTOR.with(|r| r.borrow().clone()) {
            r.stop();
        }
    }
}

thread_local! {
    static REACTOR: std::cell::RefCell<Option<Reactor>> = const { std::cell::RefCell::new(None) };
}

struct OneShot(Option<Pinger>);

impl Factory for OneShot {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        self.0.take().map(|p| Box::new(p) as Box<dyn Protocol>)
    }
}

impl ClientFactory for OneShot {
    fn client_connection_failed(&mut self, connector: &Connector, reason: &ConnectError) {
        eprintln!("cannot connect to {}: {reason}", connector.destination());
        if let Some(r) = connector.reactor() {
            r.stop();
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8000".into())
        .parse()
        .expect("an address");
    let count: u32 = args
        .next()
        .map(|c| c.parse().expect("a count"))
        .unwrap_or(10)
        .max(1);
    let reactor = Reactor::new()?;
    REACTOR.with(|r| *r.borrow_mut() = Some(reactor.clone()));
    let pinger = Pinger {
        left: count,
        sent_at: Instant::now(),
        expect: Vec::new(),
        got: Vec::new(),
        rtts: Vec::new(),
    };
    reactor.connect_tcp(addr, OneShot(Some(pinger)), Some(Duration::from_secs(5)));
    reactor.run()
}
