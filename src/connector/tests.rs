//! Tests of the module beside this file.
use std::cell::RefCell;

use super::*;
use crate::testing::run_until;
use crate::{Factory, Protocol, Transport};

struct Quiet;
impl Protocol for Quiet {
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

struct Outcome(Rc<RefCell<Vec<String>>>);
impl Factory for Outcome {
    fn build_protocol(&mut self, addr: &Address) -> Option<Box<dyn Protocol>> {
        self.0.borrow_mut().push(format!("made {addr}"));
        Some(Box::new(Quiet))
    }
}
impl ClientFactory for Outcome {
    fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
        self.0
            .borrow_mut()
            .push(format!("failed {:?}", reason.kind()));
    }
}

/// A resolver that hands its receivers to the test, which answers
/// when it likes.
#[derive(Clone, Default)]
struct Scripted(Rc<RefCell<Vec<Rc<dyn crate::hostname::ResolutionReceiver>>>>);
impl crate::hostname::HostnameResolver for Scripted {
    fn resolve_host_name(
        &self,
        _: &Reactor,
        _: &str,
        _: u16,
        receiver: Rc<dyn crate::hostname::ResolutionReceiver>,
    ) {
        self.0.borrow_mut().push(receiver);
    }
}
impl Scripted {
    fn answer(&self, addrs: &[SocketAddr]) {
        let r = self.0.borrow().last().cloned().expect("a resolution");
        r.addresses_resolved(addrs);
    }
    fn complete(&self, result: io::Result<()>) {
        let r = self.0.borrow().last().cloned().expect("a resolution");
        r.resolution_complete(result);
    }
}

/// A loopback address whose connects hang: a listener with a full
/// accept queue drops SYNs.
fn black_hole() -> (Socket, std::net::TcpStream, SocketAddr) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (s, filler, addr)
}

fn connect_via(
    reactor: &Reactor,
    resolver: &Scripted,
    log: &Rc<RefCell<Vec<String>>>,
) -> Connector {
    reactor.install_name_resolver(Rc::new(resolver.clone()));
    reactor.connect_tcp_host("server.example", 80, Outcome(log.clone()), None)
}

#[test]
fn the_next_address_is_tried_after_a_refusal() {
    let reactor = Reactor::new().unwrap();
    let good = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Quiet)
        .unwrap();
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let resolver = Scripted::default();
    let c = connect_via(&reactor, &resolver, &log);
    assert!(c.is_connecting(), "resolving");
    // The dead one first.
    resolver.answer(&[refused, good.local_addr()]);
    resolver.complete(Ok(()));
    run_until(&reactor, Duration::from_secs(20), || {
        !log.borrow().is_empty()
    })
    .unwrap();
    assert_eq!(*log.borrow(), vec![format!("made {}", good.local_addr())]);
}

#[test]
fn a_slow_attempt_gets_company_after_the_attempt_delay() {
    let mr = crate::testing::MemoryReactor::new();
    let reactor = mr.reactor();
    let good = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Quiet)
        .unwrap();
    let (_hole, _filler, hole) = black_hole();
    let log = Rc::new(RefCell::new(Vec::new()));
    let resolver = Scripted::default();
    let c = connect_via(reactor, &resolver, &log);
    resolver.answer(&[hole, good.local_addr()]);
    resolver.complete(Ok(()));
    assert_eq!(reactor.source_count(), 2, "the listener and one attempt");
    assert_eq!(c.destination(), Address::Tcp(hole));
    mr.advance(crate::hostname::CONNECTION_ATTEMPT_DELAY - Duration::from_millis(1));
    assert_eq!(reactor.source_count(), 2, "still one attempt");
    mr.advance(Duration::from_millis(1));
    assert_eq!(reactor.source_count(), 3, "the second attempt beside it");
    run_until(reactor, Duration::from_secs(20), || {
        !log.borrow().is_empty()
    })
    .unwrap();
    assert_eq!(*log.borrow(), vec![format!("made {}", good.local_addr())]);
    // The hung attempt was abandoned: the listener and the connection's
    // two ends are what is left.
    assert_eq!(reactor.source_count(), 3);
    assert_eq!(c.destination(), Address::Tcp(good.local_addr()));
}

#[test]
fn ipv4_waits_the_resolution_delay_for_ipv6() {
    let mr = crate::testing::MemoryReactor::new();
    let reactor = mr.reactor();
    let v4 = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Quiet)
        .unwrap();
    let v6 = reactor
        .listen_tcp("[::1]:0".parse().unwrap(), |_: &Address| Quiet)
        .unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let resolver = Scripted::default();

    // A first: nothing starts until AAAA comes, which starts at once.
    connect_via(reactor, &resolver, &log);
    resolver.answer(&[v4.local_addr()]);
    mr.advance(crate::hostname::RESOLUTION_DELAY - Duration::from_millis(1));
    assert_eq!(reactor.source_count(), 2, "no attempt yet");
    resolver.answer(&[v6.local_addr()]);
    assert_eq!(reactor.source_count(), 3, "IPv6 at once");
    resolver.complete(Ok(()));
    run_until(reactor, Duration::from_secs(20), || {
        !log.borrow().is_empty()
    })
    .unwrap();
    assert_eq!(*log.borrow(), vec![format!("made {}", v6.local_addr())]);

    // A first and AAAA never: IPv4 starts when the delay is over.
    log.borrow_mut().clear();
    let before = reactor.source_count();
    connect_via(reactor, &resolver, &log);
    resolver.answer(&[v4.local_addr()]);
    assert_eq!(reactor.source_count(), before, "no attempt yet");
    mr.advance(crate::hostname::RESOLUTION_DELAY);
    // (advancing polls the sockets too: the listener may have accepted)
    assert!(reactor.source_count() > before, "IPv4 after the delay");
    run_until(reactor, Duration::from_secs(20), || {
        !log.borrow().is_empty()
    })
    .unwrap();
    assert_eq!(*log.borrow(), vec![format!("made {}", v4.local_addr())]);
    resolver.complete(Ok(()));
}

#[test]
fn families_alternate_ipv6_first() {
    let a = |s: &str| Address::Tcp(s.parse().unwrap());
    let mut race = Race::new(1, false);
    for s in ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"] {
        race.v4.push_back(a(s));
    }
    for s in ["[2001:db8::1]:1", "[2001:db8::2]:1"] {
        race.v6.push_back(a(s));
    }
    let order: Vec<String> = std::iter::from_fn(|| race.next_address())
        .map(|x| x.to_string())
        .collect();
    assert_eq!(
        order,
        [
            "[2001:db8::1]:1",
            "10.0.0.1:1",
            "[2001:db8::2]:1",
            "10.0.0.2:1",
            "10.0.0.3:1"
        ]
    );
}

#[derive(Debug)]
struct NoSuchName;
impl std::fmt::Display for NoSuchName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NXDOMAIN")
    }
}
impl std::error::Error for NoSuchName {}

struct Why(Rc<RefCell<Option<ConnectError>>>);
impl Factory for Why {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(Quiet))
    }
}
impl ClientFactory for Why {
    fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
        *self.0.borrow_mut() = Some(ConnectError::new(reason.kind()));
        let typed = reason
            .io_error()
            .and_then(|e| e.get_ref())
            .is_some_and(|e| e.is::<NoSuchName>());
        let refused = reason.is_refused();
        assert!(typed || refused, "{reason}");
    }
}

#[test]
fn failures_say_why_once_everything_failed() {
    let reactor = Reactor::new().unwrap();
    let resolver = Scripted::default();
    reactor.install_name_resolver(Rc::new(resolver.clone()));
    let why = Rc::new(RefCell::new(None));
    reactor.connect_tcp_host("x.example", 1, Why(why.clone()), None);
    resolver.complete(Err(io::Error::new(io::ErrorKind::NotFound, NoSuchName)));
    assert_eq!(
        why.borrow_mut().take().map(|e| e.kind()),
        Some(ConnectErrorKind::Unresolved)
    );

    let refused: Vec<SocketAddr> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .collect();
    reactor.connect_tcp_host("y.example", 1, Why(why.clone()), None);
    resolver.answer(&refused);
    resolver.complete(Ok(()));
    run_until(&reactor, Duration::from_secs(20), || why.borrow().is_some()).unwrap();
    assert_eq!(
        why.borrow().as_ref().map(|e| e.kind()),
        Some(ConnectErrorKind::Refused)
    );
    assert_eq!(reactor.source_count(), 0, "nothing left registered");
}
