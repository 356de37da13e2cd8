//! Name resolution on the thread pool, and connecting by host name with
//! each address tried in turn.

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::run_until;
use braid::{
    Address, ClientFactory, ConnectError, ConnectErrorKind, Connector, Factory, Protocol, Reactor,
};
use common::{localhost, Echo, Recorder};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn resolve_uses_the_system_resolver_and_ip_literals_resolve_at_once() {
    let reactor = Reactor::new().unwrap();
    let literal = reactor.resolve("127.0.0.1", 80).result().unwrap().unwrap();
    assert_eq!(literal, vec!["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
    let v6 = reactor.resolve("[::1]", 80).result().unwrap().unwrap();
    assert_eq!(v6, vec!["[::1]:80".parse::<SocketAddr>().unwrap()]);

    let d = reactor.resolve("localhost", 8080);
    assert!(
        !d.is_ready(),
        "a name goes to the thread pool, never resolved inline"
    );
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let _t = d.add_callback(move |addrs| *g.borrow_mut() = Some(addrs));
    run_until(&reactor, LIMIT, || got.borrow().is_some()).unwrap();
    let addrs = got.borrow().clone().unwrap();
    assert!(
        addrs
            .iter()
            .any(|a| a.ip().is_loopback() && a.port() == 8080),
        "{addrs:?}"
    );
}

struct Outcome {
    made: Rc<RefCell<u32>>,
    failed: Rc<RefCell<Vec<ConnectErrorKind>>>,
}

impl Factory for Outcome {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        *self.made.borrow_mut() += 1;
        Some(Box::new(Recorder::new().0))
    }
}

impl ClientFactory for Outcome {
    fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
        self.failed.borrow_mut().push(reason.kind());
    }
}

#[test]
fn connect_by_host_name_tries_each_address() {
    // The server listens on 127.0.0.1 only; if "localhost" also resolves to
    // ::1, that attempt is refused and the next address is tried.
    let reactor = Reactor::new().unwrap();
    let port = reactor.listen_tcp(localhost(), |_: &Address| Echo).unwrap();
    let made = Rc::new(RefCell::new(0));
    let failed = Rc::new(RefCell::new(Vec::new()));
    let c = reactor.connect_tcp_host(
        "localhost",
        port.local_addr().port(),
        Outcome {
            made: made.clone(),
            failed: failed.clone(),
        },
        Some(Duration::from_secs(5)),
    );
    assert_eq!(c.host(), Some("localhost"));
    run_until(&reactor, LIMIT, || *made.borrow() == 1).unwrap();
    assert!(
        failed.borrow().is_empty(),
        "no failure reported while an address was left: {:?}",
        failed.borrow()
    );
    assert_eq!(c.destination(), Address::Tcp(port.local_addr()));
    assert!(c.transport().is_some());
}

#[test]
fn when_every_address_fails_the_factory_hears_once() {
    let reactor = Reactor::new().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let failed = Rc::new(RefCell::new(Vec::new()));
    reactor.connect_tcp_host(
        "localhost",
        free,
        Outcome {
            made: Rc::default(),
            failed: failed.clone(),
        },
        None,
    );
    run_until(&reactor, LIMIT, || !failed.borrow().is_empty()).unwrap();
    for _ in 0..5 {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(*failed.borrow(), vec![ConnectErrorKind::Refused]);
}

#[test]
fn stop_connecting_while_resolving_cancels() {
    let reactor = Reactor::new().unwrap();
    let failed = Rc::new(RefCell::new(Vec::new()));
    let made = Rc::new(RefCell::new(0));
    let c = reactor.connect_tcp_host(
        "localhost",
        9,
        Outcome {
            made: made.clone(),
            failed: failed.clone(),
        },
        None,
    );
    assert!(c.is_connecting());
    c.stop_connecting();
    assert_eq!(*failed.borrow(), vec![ConnectErrorKind::Cancelled]);
    // The resolution finishing later changes nothing.
    for _ in 0..20 {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(failed.borrow().len(), 1);
    assert_eq!(*made.borrow(), 0);
}
