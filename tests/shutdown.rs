//! The reactor's stop over real sockets, on the fake clock: connections get
//! a grace period to send what they had buffered, then are aborted. (That
//! what was written before `stop` reaches the peer is a conformance check,
//! run under every host.)

use std::cell::{Cell, RefCell};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{run_until, MemoryReactor};
use braid::{Address, Protocol, Transport};

/// `stop` waits for connections to send what they had buffered, but not
/// for ever: a peer that never reads is aborted when the grace period (on
/// the reactor's clock, fake here) is over, and the run ends.
#[test]
fn stop_aborts_a_peer_that_never_reads_after_the_grace_period() {
    let mr = MemoryReactor::new();
    let reactor = mr.reactor().clone();
    reactor.set_shutdown_grace(Duration::from_secs(5));
    let lost = Rc::new(RefCell::new(Vec::new()));
    struct Flood(Rc<RefCell<Vec<braid::CloseKind>>>, Rc<Cell<bool>>);
    impl Protocol for Flood {
        fn connection_made(&mut self, t: &Transport) {
            t.write(&vec![0u8; 32 << 20]); // far more than the socket takes
            self.1.set(true);
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
        fn connection_lost(&mut self, r: &braid::CloseReason) {
            self.0.borrow_mut().push(r.kind());
        }
    }
    let (l, made) = (lost.clone(), Rc::new(Cell::new(false)));
    let m = made.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            Flood(l.clone(), m.clone())
        })
        .unwrap();
    let _silent = TcpStream::connect(port.local_addr()).unwrap();
    run_until(&reactor, Duration::from_secs(20), || made.get()).unwrap();
    reactor.stop();
    for _ in 0..5 {
        reactor.run_due();
    }
    assert!(
        !reactor.is_stopped(),
        "still draining within the grace period"
    );
    assert!(lost.borrow().is_empty());
    mr.advance(Duration::from_secs(5));
    assert!(reactor.is_stopped(), "the grace period ended the shutdown");
    assert_eq!(*lost.borrow(), [braid::CloseKind::Shutdown]);
}
