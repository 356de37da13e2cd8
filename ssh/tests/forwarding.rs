#![cfg(unix)]
//! TCP forwarding through braid's SSH server with OpenSSH's `ssh`:
//! `-W` and `-L` (direct-tcpip: the server connects), `-R`
//! (tcpip-forward: the server listens, forwarded-tcpip channels back).
//! The far end is a braid echo server on the same reactor.

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::{
    Address, ClientFactory, ConnectError, Connector, Factory, Protocol, Reactor, Transport,
};
use common::Fixture;

use common::echo_server;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects to `addr` (retrying while refused: the forward is not up
/// yet), sends `msg`, collects the answer until `msg.len()` bytes.
struct Probe {
    msg: Vec<u8>,
    got: Rc<RefCell<Vec<u8>>>,
}
impl Protocol for Probe {
    fn connection_made(&mut self, t: &Transport) {
        t.write(&self.msg);
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
        if self.got.borrow().len() >= self.msg.len() {
            t.lose_connection();
        }
    }
}
struct Retry {
    addr: SocketAddr,
    msg: Vec<u8>,
    got: Rc<RefCell<Vec<u8>>>,
    reactor: Reactor,
}
impl Factory for Retry {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(Probe {
            msg: self.msg.clone(),
            got: self.got.clone(),
        }))
    }
}
impl ClientFactory for Retry {
    fn client_connection_failed(&mut self, _: &Connector, _: &ConnectError) {
        let (addr, msg, got, r) = (
            self.addr,
            self.msg.clone(),
            self.got.clone(),
            self.reactor.clone(),
        );
        self.reactor.call_later(Duration::from_millis(50), move || {
            let again = Retry {
                addr,
                msg,
                got,
                reactor: r.clone(),
            };
            r.connect_tcp(addr, again, None);
        });
    }
}

/// Through `port`, once it accepts: what comes back for `msg`.
fn probe(f: &Fixture, port: u16, msg: &[u8]) -> Vec<u8> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let retry = Retry {
        addr,
        msg: msg.to_vec(),
        got: got.clone(),
        reactor: f.reactor.clone(),
    };
    f.reactor.connect_tcp(addr, retry, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.borrow().len() < msg.len() && Instant::now() < deadline {
        f.reactor.iterate(Duration::from_millis(100)).unwrap();
    }
    let v = got.borrow().clone();
    v
}

#[test]
fn stdio_forwarding_with_dash_w_reaches_the_target() {
    let f = Fixture::new("fwd-w");
    let echo = echo_server(&f.reactor);
    let o = f.run(
        f.ssh(&[
            "-o",
            "BatchMode=yes",
            "-W",
            &format!("127.0.0.1:{echo}"),
            "alice@127.0.0.1",
        ]),
        b"through the tunnel\n",
    );
    assert_eq!(o.out(), "through the tunnel\n", "{o:?}");
}

#[test]
fn dash_w_to_a_closed_port_fails_cleanly() {
    let f = Fixture::new("fwd-closed");
    let closed = free_port();
    let o = f.run(
        f.ssh(&[
            "-o",
            "BatchMode=yes",
            "-W",
            &format!("127.0.0.1:{closed}"),
            "alice@127.0.0.1",
        ]),
        b"",
    );
    assert_eq!(o.code(), Some(255), "{o:?}");
    assert!(o.err().contains("stdio forwarding failed"), "{}", o.err());
}

fn spawn(f: &Fixture, mut c: Command) -> braid::process::Process {
    struct Quiet;
    impl braid::process::ProcessProtocol for Quiet {
        fn out_received(&mut self, _: &braid::process::Process, _: &[u8]) {}
    }
    f.reactor.spawn_process(&mut c, Quiet).unwrap()
}

/// `ssh -N FLAG SPEC` kept running while two connections go through
/// the forward on `port`.
fn through_a_forward(f: &Fixture, flag: &str, spec: &str, port: u16) {
    let ssh = spawn(
        f,
        f.ssh(&[
            "-o",
            "BatchMode=yes",
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            flag,
            spec,
            "alice@127.0.0.1",
        ]),
    );
    let msg = vec![b'F'; 300_000];
    assert_eq!(probe(f, port, &msg), msg);
    assert_eq!(probe(f, port, b"again"), b"again");
    ssh.kill().unwrap();
}

#[test]
fn local_forwarding_with_dash_l() {
    let f = Fixture::new("fwd-l");
    let echo = echo_server(&f.reactor);
    let local = free_port();
    through_a_forward(&f, "-L", &format!("{local}:127.0.0.1:{echo}"), local);
}

#[test]
fn remote_forwarding_with_dash_r() {
    let f = Fixture::new("fwd-r");
    let echo = echo_server(&f.reactor);
    let remote = free_port();
    through_a_forward(&f, "-R", &format!("{remote}:127.0.0.1:{echo}"), remote);
}
