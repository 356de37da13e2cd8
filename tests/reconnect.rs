//! ReconnectingClientFactory: backoff on fake time, real sockets.

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{run_until, MemoryReactor};
use braid::{
    Address, ClientFactory, ConnectError, Connector, Factory, Protocol, ReconnectingClientFactory,
    Transport,
};

struct Client {
    made: Rc<Cell<u32>>,
}

impl Protocol for Client {
    fn connection_made(&mut self, t: &Transport) {
        self.made.set(self.made.get() + 1);
        t.lose_connection();
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

struct Inner {
    made: Rc<Cell<u32>>,
    failures: Rc<RefCell<Vec<Duration>>>,
    clock: braid::FakeClock,
}

impl Factory for Inner {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(Client {
            made: self.made.clone(),
        }))
    }
}

impl ClientFactory for Inner {
    fn client_connection_failed(&mut self, _: &Connector, _: &ConnectError) {
        self.failures.borrow_mut().push(self.clock.elapsed());
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn backoff_grows_by_the_factor_up_to_the_cap_then_resets_on_success() {
    let mr = MemoryReactor::new();
    let addr = free_addr();
    let made = Rc::new(Cell::new(0));
    let failures = Rc::new(RefCell::new(Vec::new()));
    let factory = ReconnectingClientFactory::new(Inner {
        made: made.clone(),
        failures: failures.clone(),
        clock: mr.clock().clone(),
    })
    .initial_delay(Duration::from_secs(1))
    .factor(2.0)
    .jitter(0.0)
    .max_delay(Duration::from_secs(10));
    let control = factory.clone();
    mr.reactor().connect_tcp(addr, factory, None);

    let mut delays = Vec::new();
    for reported in 0..6 {
        // Let the refusal arrive over loopback (it may already have, inside
        // the previous advance), then jump to the retry.
        run_until(mr.reactor(), Duration::from_secs(10), || {
            failures.borrow().len() > reported
        })
        .unwrap();
        assert!(control.is_retry_pending());
        delays.push(control.current_delay());
        mr.advance(control.current_delay());
    }
    let secs: Vec<u64> = delays.iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, vec![2, 4, 8, 10, 10, 10]);
    run_until(mr.reactor(), Duration::from_secs(10), || {
        failures.borrow().len() == 7
    })
    .unwrap();
    assert_eq!(control.retries(), 7);

    // A server appears: the next retry connects and the delay resets.
    let reactor = mr.reactor().clone();
    let _port = reactor
        .listen_tcp(addr, |_: &Address| Client {
            made: Rc::new(Cell::new(0)),
        })
        .unwrap();
    assert!(control.is_retry_pending());
    mr.advance(control.current_delay());
    run_until(mr.reactor(), Duration::from_secs(10), || made.get() == 1).unwrap();
    // The client closes right away; losing the connection schedules a
    // retry, from the start of the curve again: the success reset it.
    run_until(mr.reactor(), Duration::from_secs(10), || {
        control.is_retry_pending()
    })
    .unwrap();
    assert_eq!(control.retries(), 1);
    assert_eq!(control.current_delay(), Duration::from_secs(2));
    mr.advance(control.current_delay());
    run_until(mr.reactor(), Duration::from_secs(10), || made.get() == 2).unwrap();

    control.stop_trying();
    run_until(mr.reactor(), Duration::from_secs(10), || {
        !control.is_retry_pending()
    })
    .unwrap();
    mr.advance(Duration::from_secs(3600));
    for _ in 0..5 {
        mr.reactor().iterate(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(made.get(), 2, "no reconnect after stop_trying");
}

#[test]
fn jitter_stays_within_its_band_and_max_retries_gives_up() {
    let mr = MemoryReactor::new();
    let failures = Rc::new(RefCell::new(Vec::new()));
    let factory = ReconnectingClientFactory::new(Inner {
        made: Rc::new(Cell::new(0)),
        failures: failures.clone(),
        clock: mr.clock().clone(),
    })
    .initial_delay(Duration::from_secs(100))
    .factor(1.0)
    .jitter(0.25)
    .max_retries(20)
    .seed(7);
    let control = factory.clone();
    mr.reactor().connect_tcp(free_addr(), factory, None);
    let mut seen = Vec::new();
    for reported in 0..21 {
        run_until(mr.reactor(), Duration::from_secs(10), || {
            failures.borrow().len() > reported
        })
        .unwrap();
        if !control.is_retry_pending() {
            break;
        }
        seen.push(control.current_delay().as_secs_f64());
        mr.advance(control.current_delay());
    }
    assert_eq!(seen.len(), 20, "gave up after max_retries");
    assert!(seen.iter().all(|d| (75.0..=125.0).contains(d)), "{seen:?}");
    let distinct = seen
        .iter()
        .map(|d| (*d * 1000.0) as u64)
        .collect::<std::collections::HashSet<_>>();
    assert!(distinct.len() > 10, "jitter varies the delay");
}

/// A factory that logs its lifecycle calls and keeps a token alive while
/// it lives.
struct Lifecycle {
    log: Rc<RefCell<Vec<&'static str>>>,
    _alive: Rc<()>,
}

impl Factory for Lifecycle {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        self.log.borrow_mut().push("build");
        Some(Box::new(Client {
            made: Rc::default(),
        }))
    }
    fn start_factory(&mut self) {
        self.log.borrow_mut().push("start");
    }
    fn stop_factory(&mut self) {
        self.log.borrow_mut().push("stop");
    }
}

impl ClientFactory for Lifecycle {
    fn client_connection_failed(&mut self, _: &Connector, _: &ConnectError) {
        self.log.borrow_mut().push("failed");
    }
    fn client_connection_lost(&mut self, _: &Connector, _: &braid::CloseReason) {
        self.log.borrow_mut().push("lost");
    }
}

/// Twisted's BaseConnector: `doStart` once when connecting starts, `doStop`
/// when it stops trying (after a failure or a loss that no new attempt
/// follows).
#[test]
fn connectors_start_and_stop_their_factory_as_twisted_does() {
    let mr = MemoryReactor::new();
    let reactor = mr.reactor().clone();
    let log = Rc::new(RefCell::new(Vec::new()));
    let alive = Rc::new(());
    reactor.connect_tcp(
        free_addr(),
        Lifecycle {
            log: log.clone(),
            _alive: alive.clone(),
        },
        None,
    );
    run_until(&reactor, Duration::from_secs(20), || {
        log.borrow().len() >= 3
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["start", "failed", "stop"]);
    log.borrow_mut().clear();
    // A connection made and lost: start, build, lost, stop.
    let server = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Client {
            made: Rc::default(),
        })
        .unwrap();
    reactor.connect_tcp(
        server.local_addr(),
        Lifecycle {
            log: log.clone(),
            _alive: alive.clone(),
        },
        None,
    );
    run_until(&reactor, Duration::from_secs(20), || {
        log.borrow().len() >= 4
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["start", "build", "lost", "stop"]);
}

/// A reconnecting factory forwards the lifecycle calls to the factory it
/// wraps, and once it gives up, the connector and the factory free each
/// other (they used to keep each other alive for good).
#[test]
fn a_reconnecting_factory_forwards_the_lifecycle_and_is_freed_when_it_gives_up() {
    let mr = MemoryReactor::new();
    let reactor = mr.reactor().clone();
    let log = Rc::new(RefCell::new(Vec::new()));
    let alive = Rc::new(());
    let factory = ReconnectingClientFactory::new(Lifecycle {
        log: log.clone(),
        _alive: alive.clone(),
    })
    .initial_delay(Duration::from_secs(1))
    .max_retries(1)
    .seed(7);
    reactor.connect_tcp(free_addr(), factory, None);
    run_until(&reactor, Duration::from_secs(20), || {
        log.borrow().len() >= 3
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["start", "failed", "stop"]);
    // The retry is pending on the fake clock: it owns the connector.
    assert_eq!(Rc::strong_count(&alive), 2);
    mr.advance(Duration::from_secs(60));
    run_until(&reactor, Duration::from_secs(20), || {
        log.borrow().len() >= 6
    })
    .unwrap();
    assert_eq!(
        *log.borrow(),
        ["start", "failed", "stop", "start", "failed", "stop"]
    );
    // It gave up: nothing is pending, and nothing holds the factory.
    mr.advance(Duration::from_secs(3600));
    reactor.run_due();
    assert_eq!(
        Rc::strong_count(&alive),
        1,
        "the connector and its factory were freed"
    );
}
