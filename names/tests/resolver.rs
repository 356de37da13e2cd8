//! The resolver over real loopback sockets, against braid's own DNS
//! server: every type, truncation to TCP, typed errors, retries on the
//! fake clock, `/etc/hosts` first, and `connect_tcp_host` with Happy
//! Eyeballs through it.

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{run_until, MemoryReactor};
use braid::{
    Address, ClientFactory, ConnectError, Connector, Factory, Protocol, Reactor, Transport,
};
use braid_names::client::{Hosts, ResolvConf, ResolveErrorKind, Resolver};
use braid_names::{Authority, DnsServer, Zone};
use hickory_proto::rr::RecordType;

fn zone(v6_port_note: &str) -> String {
    let mut z = format!(
        "$TTL 300\n\
         braid.test. IN SOA ns.braid.test. h.braid.test. 1 3600 600 86400 60\n\
         braid.test. IN MX 10 mail.braid.test.\n\
         mail.braid.test. IN A 192.0.2.25\n\
         dual.braid.test. IN AAAA ::1\n\
         dual.braid.test. IN A 127.0.0.1\n\
         v4only.braid.test. IN A 127.0.0.1\n\
         txt.braid.test. IN TXT \"{v6_port_note}\"\n"
    );
    for i in 0..30 {
        z.push_str(&format!(
            "big.braid.test. IN TXT \"{i:02}{}\"\n",
            "y".repeat(98)
        ));
    }
    z
}

fn server(reactor: &Reactor) -> SocketAddr {
    let authority =
        Authority::new().zone(Zone::parse("braid.test.", &zone("hello"), None).unwrap());
    let (udp, _tcp) = DnsServer::new(reactor, authority)
        .listen("127.0.0.1:0".parse().unwrap())
        .unwrap();
    match udp.local_addr() {
        Address::Tcp(a) => a,
        other => panic!("{other}"),
    }
}

fn wait<T: 'static, E>(reactor: &Reactor, d: braid::Deferred<T, E>) -> Result<T, E>
where
    E: From<braid::Failure> + std::fmt::Debug + 'static,
{
    braid::testing::run_until_fired(reactor, Duration::from_secs(20), d).unwrap()
}

/// A resolver asking only `dns`.
fn resolver_of(reactor: &Reactor, dns: SocketAddr) -> Resolver {
    Resolver::new(
        reactor,
        ResolvConf::with_nameservers([dns]),
        Hosts::default(),
    )
}

#[test]
fn lookups_over_loopback() {
    let reactor = Reactor::new().unwrap();
    let resolver = resolver_of(&reactor, server(&reactor));

    let a = wait(&reactor, resolver.lookup_address("mail.braid.test")).unwrap();
    assert_eq!(a, ["192.0.2.25".parse::<std::net::Ipv4Addr>().unwrap()]);
    let mx = wait(&reactor, resolver.lookup_mail_exchange("braid.test")).unwrap();
    assert_eq!(mx[0].0, 10);
    assert_eq!(mx[0].1.to_string(), "mail.braid.test.");
    let txt = wait(&reactor, resolver.lookup_text("txt.braid.test")).unwrap();
    assert_eq!(txt, ["hello"]);
    // Truncated over UDP, whole over TCP.
    let big = wait(&reactor, resolver.lookup_text("big.braid.test")).unwrap();
    assert_eq!(big.len(), 30);
    let both = wait(&reactor, resolver.lookup_ip("dual.braid.test")).unwrap();
    assert_eq!(
        both,
        [
            "::1".parse::<std::net::IpAddr>().unwrap(),
            "127.0.0.1".parse().unwrap()
        ]
    );

    let e = wait(&reactor, resolver.lookup_address("none.braid.test")).unwrap_err();
    assert_eq!(e.kind(), ResolveErrorKind::NxDomain);
    let e = wait(&reactor, resolver.lookup_ipv6_address("mail.braid.test")).unwrap_err();
    assert_eq!(e.kind(), ResolveErrorKind::NoData);
    let e = wait(&reactor, resolver.lookup_address("elsewhere.example")).unwrap_err();
    assert_eq!(
        e.kind(),
        ResolveErrorKind::Refused,
        "braid dns is no open resolver"
    );

    // From the cache, the server gone.
    assert!(resolver.cache().borrow().len() >= 5);
    let again = resolver.lookup("mail.braid.test.", RecordType::A);
    let again = wait(&reactor, again).unwrap();
    assert!(again.from_cache);
    // Every lookup's socket is closed once it is over.
    run_until(&reactor, Duration::from_secs(5), || {
        reactor.source_count() == 2
    })
    .unwrap();
}

#[test]
fn a_silent_server_is_retried_then_times_out_on_the_fake_clock() {
    let mr = MemoryReactor::new();
    let reactor = mr.reactor();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let conf = ResolvConf {
        timeout: Duration::from_secs(2),
        attempts: 3,
        ..ResolvConf::with_nameservers([silent.local_addr().unwrap()])
    };
    let resolver = Resolver::new(reactor, conf, Hosts::default());
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    resolver.lookup_address("quiet.test").add_both(move |r| {
        *o.borrow_mut() = Some(r);
        Ok::<(), braid_names::client::ResolveError>(())
    });
    let mut buf = [0u8; 512];
    let mut received = || {
        let mut n = 0;
        while silent.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    };
    // The first query goes at once; glibc's back-off with one server
    // doubles the wait each round: 2 s, 4 s, 8 s.
    let mut queries = 0;
    for (round, wait) in [2u64, 4, 8].into_iter().enumerate() {
        run_until(reactor, Duration::from_secs(5), || {
            queries += received();
            queries == round + 1
        })
        .unwrap();
        mr.advance(Duration::from_secs(wait) - Duration::from_millis(1));
        assert!(out.borrow().is_none(), "round {round} still waiting");
        queries += received();
        assert_eq!(queries, round + 1, "nothing more before the wait is over");
        mr.advance(Duration::from_millis(1));
    }
    let e = out
        .borrow_mut()
        .take()
        .expect("over after the third wait")
        .unwrap_err();
    assert_eq!(e.kind(), ResolveErrorKind::Timeout);
    assert_eq!(mr.clock().elapsed(), Duration::from_secs(14));
    run_until(reactor, Duration::from_secs(5), || {
        reactor.source_count() == 0
    })
    .unwrap();
}

#[test]
fn hosts_come_first() {
    let reactor = Reactor::new().unwrap();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let hosts = Hosts::parse("10.1.2.3 build.local build\n");
    let resolver = Resolver::new(
        &reactor,
        ResolvConf::with_nameservers([silent.local_addr().unwrap()]),
        hosts,
    );
    let a = wait(&reactor, resolver.lookup_address("BUILD")).unwrap();
    assert_eq!(a, ["10.1.2.3".parse::<std::net::Ipv4Addr>().unwrap()]);
    let names = wait(
        &reactor,
        resolver.lookup_pointer("10.1.2.3".parse().unwrap()),
    )
    .unwrap();
    assert_eq!(names[0].to_string(), "build.local.");
}

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
        let typed = reason
            .io_error()
            .and_then(|e| e.get_ref())
            .and_then(|e| e.downcast_ref::<braid_names::client::ResolveError>())
            .map(|e| format!("{:?}", e.kind()));
        self.0
            .borrow_mut()
            .push(format!("failed {:?} {typed:?}", reason.kind()));
    }
}

/// A TCP port free on both 127.0.0.1 and ::1, with a braid listener on
/// IPv6 and another on IPv4 only if `v4` says so.
fn listeners(reactor: &Reactor, v6: bool, v4: bool) -> (u16, Vec<braid::ListeningPort>) {
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        if std::net::TcpListener::bind(("::1", port)).is_err() {
            continue;
        }
        let mut ports = Vec::new();
        if v6 {
            let Ok(p) = reactor.listen_tcp(
                SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port)),
                |_: &Address| Quiet,
            ) else {
                continue;
            };
            ports.push(p);
        }
        if v4 {
            let Ok(p) = reactor
                .listen_tcp(SocketAddr::from(([127, 0, 0, 1], port)), |_: &Address| {
                    Quiet
                })
            else {
                continue;
            };
            ports.push(p);
        }
        return (port, ports);
    }
    panic!("no port free on both families");
}

#[test]
fn connect_tcp_host_races_both_families_through_the_resolver() {
    let reactor = Reactor::new().unwrap();
    let resolver = resolver_of(&reactor, server(&reactor));
    reactor.install_name_resolver(Rc::new(resolver));

    // Both listen: IPv6 wins.
    let (port, _ports) = listeners(&reactor, true, true);
    let log = Rc::new(RefCell::new(Vec::new()));
    reactor.connect_tcp_host("dual.braid.test", port, Outcome(log.clone()), None);
    run_until(&reactor, Duration::from_secs(20), || {
        !log.borrow().is_empty()
    })
    .unwrap();
    assert_eq!(*log.borrow(), [format!("made [::1]:{port}")]);

    // Only IPv4 listens: IPv6 is refused, IPv4 connects.
    let (port, _ports) = listeners(&reactor, false, true);
    log.borrow_mut().clear();
    reactor.connect_tcp_host("dual.braid.test", port, Outcome(log.clone()), None);
    run_until(&reactor, Duration::from_secs(20), || {
        !log.borrow().is_empty()
    })
    .unwrap();
    assert_eq!(*log.borrow(), [format!("made 127.0.0.1:{port}")]);

    // A name with no address: the resolver's typed error reaches the factory.
    log.borrow_mut().clear();
    reactor.connect_tcp_host("none.braid.test", port, Outcome(log.clone()), None);
    run_until(&reactor, Duration::from_secs(20), || {
        !log.borrow().is_empty()
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["failed Unresolved Some(\"NxDomain\")"]);
}
