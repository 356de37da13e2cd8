//! braid's resolver against a real server no one here wrote: Debian's
//! dnsmasq (`dnsmasq-base`, which `./scripts/test.sh` installs), started
//! on a loopback port with records of its own.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use braid::{Deferred, Reactor};
use braid_names::client::{Hosts, ResolvConf, ResolveError, ResolveErrorKind, Resolver};

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn dnsmasq() -> (Dnsmasq, SocketAddr) {
    let port = free_port();
    let big: Vec<String> = (0..8).map(|i| format!("{i}{}", "z".repeat(200))).collect();
    let child = Command::new("/usr/sbin/dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--local=/braid.test/",
            "--host-record=web.braid.test,192.0.2.10,2001:db8::10",
            "--mx-host=braid.test,mail.braid.test,10",
            "--host-record=mail.braid.test,192.0.2.25",
            "--txt-record=txt.braid.test,hello world",
            "--srv-host=_sip._tcp.braid.test,sip.braid.test,5060,10,5",
            "--cname=alias.braid.test,web.braid.test",
            "--ptr-record=10.2.0.192.in-addr.arpa,web.braid.test",
        ])
        .arg(format!("--txt-record=big.braid.test,{}", big.join(",")))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("dnsmasq (Debian's dnsmasq-base; ./scripts/test.sh installs it)");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < end, "dnsmasq did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Dnsmasq(child), addr)
}

fn wait<T: 'static>(reactor: &Reactor, d: Deferred<T, ResolveError>) -> Result<T, ResolveError> {
    braid::testing::run_until_fired(reactor, Duration::from_secs(20), d).unwrap()
}

#[test]
fn braids_resolver_against_dnsmasq() {
    let (_dnsmasq, addr) = dnsmasq();
    let reactor = Reactor::new().unwrap();
    let conf = ResolvConf {
        search: vec!["braid.test".into()],
        ..ResolvConf::with_nameservers([addr])
    };
    let resolver = Resolver::new(&reactor, conf, Hosts::default());

    let v4 = wait(&reactor, resolver.lookup_address("web.braid.test")).unwrap();
    assert_eq!(v4, ["192.0.2.10".parse::<std::net::Ipv4Addr>().unwrap()]);
    let v6 = wait(&reactor, resolver.lookup_ipv6_address("web")).unwrap();
    assert_eq!(
        v6,
        ["2001:db8::10".parse::<std::net::Ipv6Addr>().unwrap()],
        "by the search list"
    );
    let ips = wait(&reactor, resolver.lookup_ip("alias.braid.test")).unwrap();
    assert_eq!(
        ips,
        [
            "2001:db8::10".parse::<IpAddr>().unwrap(),
            "192.0.2.10".parse().unwrap()
        ],
        "through the CNAME"
    );
    let cname = wait(&reactor, resolver.lookup_canonical_name("alias.braid.test")).unwrap();
    assert_eq!(cname.to_string(), "web.braid.test.");
    let mx = wait(&reactor, resolver.lookup_mail_exchange("braid.test")).unwrap();
    assert_eq!(
        (mx[0].0, mx[0].1.to_string()),
        (10, "mail.braid.test.".to_owned())
    );
    let txt = wait(&reactor, resolver.lookup_text("txt.braid.test")).unwrap();
    assert_eq!(txt, ["hello world"]);
    let srv = wait(&reactor, resolver.lookup_service("_sip._tcp.braid.test")).unwrap();
    assert_eq!((srv[0].port, srv[0].priority, srv[0].weight), (5060, 10, 5));
    let ptr = wait(
        &reactor,
        resolver.lookup_pointer("192.0.2.10".parse().unwrap()),
    )
    .unwrap();
    assert_eq!(ptr[0].to_string(), "web.braid.test.");
    // 1.6 KB: more than the 1232 bytes offered over UDP, so dnsmasq sets
    // TC and the answer comes whole over TCP.
    let big = wait(&reactor, resolver.lookup_text("big.braid.test")).unwrap();
    assert_eq!(big[0].len(), 8 * 201);

    let e = wait(&reactor, resolver.lookup_address("missing.braid.test.")).unwrap_err();
    assert_eq!(e.kind(), ResolveErrorKind::NxDomain);
    let e = wait(&reactor, resolver.lookup_ipv6_address("mail.braid.test.")).unwrap_err();
    assert_eq!(e.kind(), ResolveErrorKind::NoData);
    // dnsmasq with no upstream refuses what it is not local for.
    let e = wait(&reactor, resolver.lookup_address("example.com.")).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ResolveErrorKind::Refused | ResolveErrorKind::ServFail
        ),
        "{e}"
    );
}
