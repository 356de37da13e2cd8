//! The relay queue delivering by MX (the `mx` feature) over loopback:
//! braid's DNS server holds the zone, braid-names' resolver asks it, and
//! braid-mail's server receives. MX hosts are tried by preference (the
//! first refuses connections), a domain without MX gets mail at its own
//! address, a null MX and a domain that does not exist bounce at once.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::run_until;
use braid::Reactor;
use braid_mail::server::{Server, SessionConfig};
use braid_mail::{Maildir, Queue, QueueConfig};
use braid_names::client::{Hosts, ResolvConf, Resolver};
use braid_names::{Authority, DnsServer, Zone};

const ZONE: &str = "$TTL 60
dest.test. IN SOA ns.dest.test. h.dest.test. 1 3600 600 86400 60
dest.test. IN MX 10 dead.dest.test.
dest.test. IN MX 20 live.dest.test.
dead.dest.test. IN A 127.0.0.2
live.dest.test. IN A 127.0.0.1
nomx.dest.test. IN A 127.0.0.1
null.dest.test. IN MX 0 .
";

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn mail_goes_to_the_mx_hosts_by_preference() {
    let reactor = Reactor::new().unwrap();
    let dir = std::env::temp_dir().join(format!("braid-mail-mx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let zone = Zone::parse("dest.test.", ZONE, None).unwrap();
    let (udp, _tcp) = DnsServer::new(&reactor, Authority::new().zone(zone))
        .listen("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let dns = match udp.local_addr() {
        braid::Address::Tcp(a) => a,
        other => panic!("{other}"),
    };
    let resolver = Resolver::new(
        &reactor,
        ResolvConf::with_nameservers([dns]),
        Hosts::default(),
    );
    reactor.install_name_resolver(Rc::new(resolver.clone()));

    // The receiving MTA, on 127.0.0.1 only: 127.0.0.2 (the preferred MX)
    // refuses connections.
    let maildir = Maildir::new(&reactor, dir.join("mail"), ["dest.test", "nomx.dest.test"])
        .users(["alice", "bob"])
        .fsync(false);
    let server = Rc::new(Server::new(&reactor, SessionConfig::default(), maildir));
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), server.factory())
        .unwrap()
        .local_addr()
        .port();

    let mut qc = QueueConfig::mx(dir.join("spool"), resolver, port);
    qc.client.tls = braid_mail::client::TlsPolicy::Never;
    let queue = Queue::open(&reactor, qc).unwrap();
    let bounces: Rc<RefCell<Vec<(String, String)>>> = Rc::default();
    let b = bounces.clone();
    queue.on_bounce(Rc::new(move |to, text| {
        b.borrow_mut()
            .push((to, String::from_utf8_lossy(&text).into_owned()))
    }));
    queue.start();
    let q = queue.clone();
    let id = reactor
        .block_on(async move {
            q.enqueue(
                "sender@origin.test",
                vec![
                    "alice@dest.test".into(),
                    "bob@nomx.dest.test".into(),
                    "x@null.dest.test".into(),
                    "y@nobody.dest.test".into(),
                ],
                b"Subject: by MX\r\n\r\nhello\r\n".to_vec(),
            )
            .await
        })
        .unwrap()
        .unwrap();
    assert!(!id.is_empty());
    let alice = dir.join("mail/alice/new");
    let bob = dir.join("mail/bob/new");
    run_until(&reactor, Duration::from_secs(30), || {
        queue.is_empty()
            && files_in(&alice) == 1
            && files_in(&bob) == 1
            && bounces.borrow().len() == 1
    })
    .unwrap();
    let (to, text) = bounces.borrow()[0].clone();
    assert_eq!(to, "sender@origin.test");
    assert!(
        text.contains("x@null.dest.test") && text.contains("null MX"),
        "{text}"
    );
    assert!(
        text.contains("y@nobody.dest.test") && text.contains("no such domain"),
        "{text}"
    );
    assert!(
        !text.contains("alice@dest.test"),
        "delivered recipients are not in the bounce"
    );
    assert_eq!(
        queue.delivered(),
        2,
        "dest.test through its second MX, nomx.dest.test itself"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
