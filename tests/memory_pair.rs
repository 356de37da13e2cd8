//! The in-memory connected pair runs braid's real connection code: the same
//! lifecycle guarantees hold without sockets, and time is fake.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{connected_pair, MemoryReactor};
use braid::{CloseKind, Producer, Protocol, Transport};
use common::{Echo, Recorder};

#[test]
fn echo_over_the_pair() {
    let mr = MemoryReactor::new();
    let (client, log) = Recorder::new();
    let pair = connected_pair(mr.reactor(), Echo, client);
    pair.client().write(b"over memory");
    pair.pump();
    assert_eq!(log.borrow().data, b"over memory");
    assert_eq!(log.borrow().made, 1);
}

#[test]
fn lose_connection_flushes_then_both_sides_lose_once() {
    let mr = MemoryReactor::new();
    let (server, slog) = Recorder::new();
    let (client, clog) = Recorder::new();
    let pair = connected_pair(mr.reactor(), server, client);
    pair.set_capacity(100); // the write must take several rounds
    let data = vec![9u8; 10_000];
    pair.server().write(&data);
    pair.server().lose_connection();
    pair.server().lose_connection();
    pair.pump();
    assert_eq!(clog.borrow().data.len(), 10_000);
    assert_eq!(slog.borrow().lost, vec![CloseKind::Done]);
    assert_eq!(clog.borrow().lost, vec![CloseKind::Done]);
    assert_eq!(clog.borrow().eof, 1);
}

#[test]
fn abort_on_one_side_while_the_other_closes() {
    let mr = MemoryReactor::new();
    let (server, slog) = Recorder::new();
    let (client, clog) = Recorder::new();
    let pair = connected_pair(mr.reactor(), server, client);
    pair.client().write(b"unsent");
    pair.client().abort_connection();
    pair.server().lose_connection();
    pair.pump();
    assert_eq!(clog.borrow().lost, vec![CloseKind::Aborted]);
    assert_eq!(slog.borrow().lost.len(), 1);
    assert!(
        slog.borrow().data.is_empty(),
        "abort discards buffered data"
    );
}

#[test]
fn half_close_over_the_pair() {
    let mr = MemoryReactor::new();
    let (mut server, slog) = Recorder::new();
    server.half_close = true;
    let (mut client, clog) = Recorder::new();
    client.half_close = true;
    let pair = connected_pair(mr.reactor(), server, client);
    pair.client().write(b"q");
    pair.client().lose_write_connection();
    pair.pump();
    assert_eq!(slog.borrow().eof, 1);
    assert!(slog.borrow().lost.is_empty());
    pair.server().write(b"a");
    pair.server().lose_write_connection();
    pair.pump();
    assert_eq!(clog.borrow().data, b"a");
    assert_eq!(slog.borrow().lost, vec![CloseKind::Done]);
    assert_eq!(clog.borrow().lost, vec![CloseKind::Done]);
}

#[test]
fn a_panic_ends_only_its_connection() {
    common::init_tracing();
    struct Bomb;
    impl Protocol for Bomb {
        fn data_received(&mut self, _: &Transport, _: &[u8]) {
            panic!("deliberate panic: bomb");
        }
    }
    let mr = MemoryReactor::new();
    let (client, clog) = Recorder::new();
    let bad = connected_pair(mr.reactor(), Bomb, client);
    let (client2, clog2) = Recorder::new();
    let good = connected_pair(mr.reactor(), Echo, client2);
    bad.client().write(b"x");
    good.client().write(b"y");
    bad.pump();
    good.pump();
    assert_eq!(clog.borrow().lost.len(), 1, "the peer saw the close");
    assert_eq!(clog2.borrow().data, b"y");
    assert!(clog2.borrow().lost.is_empty());
}

#[test]
fn protocol_timeouts_run_on_fake_time() {
    // An idle timeout, Twisted's TimeoutMixin pattern: reset on every
    // byte, abort when it fires. Thirty seconds pass in no time.
    struct Idle {
        timer: Option<braid::DelayedCall>,
    }
    impl Protocol for Idle {
        fn connection_made(&mut self, t: &Transport) {
            let t2 = t.clone();
            let r = t.reactor().unwrap();
            self.timer = Some(r.call_later(Duration::from_secs(30), move || t2.abort_connection()));
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {
            self.timer.as_ref().unwrap().reset(Duration::from_secs(30));
        }
    }
    let mr = MemoryReactor::new();
    let (client, clog) = Recorder::new();
    let pair = connected_pair(mr.reactor(), Idle { timer: None }, client);
    for _ in 0..10 {
        mr.advance(Duration::from_secs(20));
        pair.client().write(b".");
        pair.pump();
    }
    assert!(clog.borrow().lost.is_empty(), "kept alive by traffic");
    mr.advance(Duration::from_secs(29));
    pair.pump();
    assert!(clog.borrow().lost.is_empty());
    mr.advance(Duration::from_secs(1));
    pair.pump();
    assert_eq!(clog.borrow().lost, vec![CloseKind::Done]);
}

#[test]
fn backpressure_over_the_pair() {
    struct Source {
        t: Transport,
        paused: Cell<bool>,
        pauses: Cell<u32>,
        sent: Cell<usize>,
    }
    impl Producer for Source {
        fn pause_producing(&self) {
            self.paused.set(true);
            self.pauses.set(self.pauses.get() + 1);
        }
        fn resume_producing(&self) {
            self.paused.set(false);
            while !self.paused.get() && self.sent.get() < 1 << 20 {
                self.t.write(&[1u8; 4096]);
                self.sent.set(self.sent.get() + 4096);
            }
        }
        fn stop_producing(&self) {}
    }
    let mr = MemoryReactor::new();
    let (client, clog) = Recorder::new();
    let pair = connected_pair(mr.reactor(), Echo, client);
    pair.set_capacity(8192);
    let t = pair.client();
    let src = Rc::new(Source {
        t: t.clone(),
        paused: Cell::new(false),
        pauses: Cell::new(0),
        sent: Cell::new(0),
    });
    t.register_producer(src.clone(), true).unwrap();
    assert!(
        t.register_producer(src.clone(), true).is_err(),
        "one producer at a time"
    );
    src.resume_producing();
    assert!(t.write_buffer_len() <= 64 * 1024 + 4096);
    pair.pump();
    assert_eq!(clog.borrow().data.len(), 1 << 20, "echoed back in full");
    assert!(src.pauses.get() > 1, "paused and resumed repeatedly");
}
