//! TCP over real loopback sockets: connecting (refused, timed out on fake
//! time, cancelled, reconnected by the factory).

mod common;

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{run_until, MemoryReactor};
use braid::{
    Address, ClientFactory, CloseReason, ConnectError, ConnectErrorKind, Connector, Factory,
    Protocol, Reactor, Transport,
};
use common::{localhost, Echo};

const LIMIT: Duration = Duration::from_secs(20);

// ----- connecting -----

struct Outcome {
    failed: Rc<RefCell<Vec<ConnectErrorKind>>>,
}

impl Factory for Outcome {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(Echo))
    }
}

impl ClientFactory for Outcome {
    fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
        self.failed.borrow_mut().push(reason.kind());
    }
}

fn refused_addr() -> SocketAddr {
    // Bind, learn the port, close: nothing listens there now.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn a_refused_connection_is_reported_to_the_factory() {
    let reactor = Reactor::new().unwrap();
    let failed = Rc::new(RefCell::new(Vec::new()));
    let c = reactor.connect_tcp(
        refused_addr(),
        Outcome {
            failed: failed.clone(),
        },
        Some(Duration::from_secs(10)),
    );
    assert!(
        failed.borrow().is_empty(),
        "never reported from inside connect_tcp"
    );
    run_until(&reactor, LIMIT, || !failed.borrow().is_empty()).unwrap();
    assert_eq!(*failed.borrow(), vec![ConnectErrorKind::Refused]);
    assert!(c.transport().is_none());
}

#[test]
fn a_connection_attempt_times_out_on_fake_time() {
    // A listener whose accept queue is full drops further SYNs, so the
    // attempt hangs; the fake clock then runs out its timeout at once.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    let mr = MemoryReactor::new();
    let failed = Rc::new(RefCell::new(Vec::new()));
    let c = mr.reactor().connect_tcp(
        addr,
        Outcome {
            failed: failed.clone(),
        },
        Some(Duration::from_secs(30)),
    );
    // Nothing is dispatched before the clock moves, so the attempt is
    // still pending when its timer fires.
    mr.advance(Duration::from_secs(30));
    assert_eq!(*failed.borrow(), vec![ConnectErrorKind::TimedOut]);
    assert!(!c.is_connecting());
}

#[test]
fn stop_connecting_cancels_an_attempt() {
    let mr = MemoryReactor::new();
    let failed = Rc::new(RefCell::new(Vec::new()));
    let c = mr.reactor().connect_tcp(
        refused_addr(),
        Outcome {
            failed: failed.clone(),
        },
        None,
    );
    c.stop_connecting();
    assert_eq!(*failed.borrow(), vec![ConnectErrorKind::Cancelled]);
    mr.advance(Duration::from_secs(1));
    assert_eq!(failed.borrow().len(), 1, "no second report");
}

#[test]
fn the_factory_sees_connection_lost_and_can_reconnect() {
    struct Again {
        connects: Rc<Cell<u32>>,
        lost: Rc<Cell<u32>>,
    }
    impl Factory for Again {
        fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
            self.connects.set(self.connects.get() + 1);
            struct CloseSoon;
            impl Protocol for CloseSoon {
                fn connection_made(&mut self, t: &Transport) {
                    t.lose_connection();
                }
                fn data_received(&mut self, _: &Transport, _: &[u8]) {}
            }
            Some(Box::new(CloseSoon))
        }
    }
    impl ClientFactory for Again {
        fn client_connection_lost(&mut self, c: &Connector, _: &CloseReason) {
            self.lost.set(self.lost.get() + 1);
            if self.lost.get() < 3 {
                c.connect();
            }
        }
    }
    let reactor = Reactor::new().unwrap();
    let port = reactor.listen_tcp(localhost(), |_: &Address| Echo).unwrap();
    let connects = Rc::new(Cell::new(0));
    let lost = Rc::new(Cell::new(0));
    reactor.connect_tcp(
        port.local_addr(),
        Again {
            connects: connects.clone(),
            lost: lost.clone(),
        },
        None,
    );
    run_until(&reactor, LIMIT, || lost.get() == 3).unwrap();
    assert_eq!(connects.get(), 3);
}
