//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use braid::{CloseKind, CloseReason, Protocol, Transport};

/// What happened on one connection, in order.
#[derive(Debug, Default)]
pub struct Log {
    pub made: usize,
    pub data: Vec<u8>,
    pub eof: usize,
    pub lost: Vec<CloseKind>,
    pub transport: Option<Transport>,
}

pub type Shared = Rc<RefCell<Log>>;

/// A protocol that records everything into a shared log.
pub struct Recorder {
    pub log: Shared,
    /// Close on EOF (the default) or keep the write side open.
    pub half_close: bool,
}

impl Recorder {
    pub fn new() -> (Recorder, Shared) {
        let log = Shared::default();
        (
            Recorder {
                log: log.clone(),
                half_close: false,
            },
            log,
        )
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &Transport) {
        let mut l = self.log.borrow_mut();
        l.made += 1;
        l.transport = Some(t.clone());
    }
    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.log.borrow_mut().data.extend_from_slice(data);
    }
    fn read_eof(&mut self, t: &Transport) {
        self.log.borrow_mut().eof += 1;
        if !self.half_close {
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, reason: &CloseReason) {
        self.log.borrow_mut().lost.push(reason.kind());
    }
}

/// Echoes everything back.
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

pub fn init_tracing() {
    braid::testing::quiet_deliberate_panics();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn localhost() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Connects to `addr` with `protocol`: a client factory that builds it for
/// the one connection it makes.
pub fn connect_once(
    reactor: &braid::Reactor,
    addr: std::net::SocketAddr,
    protocol: impl Protocol,
) -> braid::Connector {
    let mut p = Some(protocol);
    reactor.connect_tcp(
        addr,
        move |_: &braid::Address| p.take().expect("connect_once builds one protocol"),
        None,
    )
}
