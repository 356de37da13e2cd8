#![cfg(unix)]
//! The relay queue in a real PostgreSQL (the `postgres` feature): two
//! runners (as two workers or machines would) share one table; every
//! message goes out exactly once, whoever enqueued it; a message the
//! smarthost cannot take yet is deferred in the table and sent once it
//! can; runners started later find what was left in the table.

#[path = "../../tests/common/postgres_server.rs"]
mod postgres_server;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{run_until, run_until_fired};
use braid::{ListeningPort, Reactor};
use braid_db::postgres::PgPool;
use braid_db::rusqlite::types::Value;
use braid_mail::client::TlsPolicy;
use braid_mail::server::{Server, SessionConfig};
use braid_mail::{Maildir, NextHop, Queue, QueueConfig};

const LIMIT: Duration = Duration::from_secs(60);

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A queue in `pg` relaying to `smarthost`, plainly.
fn config(pg: &postgres_server::Server, smarthost: SocketAddr) -> QueueConfig {
    let mut qc = QueueConfig::in_postgres(
        pg.config("braid-secret"),
        NextHop::Smarthost {
            host: smarthost.ip().to_string(),
            port: smarthost.port(),
        },
    );
    qc.client.tls = TlsPolicy::Never;
    qc
}

fn queue(reactor: &Reactor, pg: &postgres_server::Server, smarthost: SocketAddr) -> Queue {
    let mut qc = config(pg, smarthost);
    qc.min_backoff = Duration::from_secs(1);
    qc.max_backoff = Duration::from_secs(1);
    qc.concurrency = 3;
    let q = Queue::open(reactor, qc).unwrap();
    q.start();
    q
}

fn enqueue(reactor: &Reactor, q: &Queue, n: usize, tag: &str) {
    for i in 0..n {
        let (q, body) = (
            q.clone(),
            format!("Subject: {tag} {i}\r\n\r\nhello {i}\r\n"),
        );
        let id = reactor
            .block_on(async move {
                q.enqueue(
                    "sender@origin.test",
                    vec!["alice@dest.test".into()],
                    body.into_bytes(),
                )
                .await
            })
            .unwrap()
            .unwrap();
        assert!(!id.is_empty());
    }
}

/// The receiving MTA: braid-mail's server delivering to alice@dest.test
/// in `dir/mail`.
fn smarthost_at(reactor: &Reactor, dir: &std::path::Path) -> (Rc<Server<Maildir>>, ListeningPort) {
    let maildir = Maildir::new(reactor, dir.join("mail"), ["dest.test"])
        .users(["alice"])
        .fsync(false);
    let server = Rc::new(Server::new(reactor, SessionConfig::default(), maildir));
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), server.factory())
        .unwrap();
    (server, port)
}

#[test]
fn runners_share_one_queue_in_postgresql() {
    let pg = postgres_server::Server::start_new();
    let reactor = Reactor::new().unwrap();
    let dir = std::env::temp_dir().join(format!("braid-mail-pgq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (server, port) = smarthost_at(&reactor, &dir);
    let smarthost = port.local_addr();
    let inbox = dir.join("mail/alice/new");

    // What a process left in the table before it went (it never ran its
    // runner) is found by the runners started later.
    let c = Queue::open(&reactor, config(&pg, smarthost)).unwrap();
    enqueue(&reactor, &c, 2, "left");
    drop(c);

    let a = queue(&reactor, &pg, smarthost);
    let b = queue(&reactor, &pg, smarthost);
    enqueue(&reactor, &a, 20, "from a");
    enqueue(&reactor, &b, 10, "from b");
    run_until(&reactor, LIMIT, || {
        files_in(&inbox) == 32 && a.delivered() + b.delivered() == 32
    })
    .unwrap();
    // Exactly once: nothing more arrives, and the table is empty.
    let check = PgPool::new(&reactor, pg.config("braid-secret"), 1);
    let count = |reactor: &Reactor| {
        run_until_fired(
            reactor,
            LIMIT,
            check.run_query(
                "SELECT count(*), coalesce(max(attempts), 0) FROM braid_mail_queue",
                vec![],
            ),
        )
        .unwrap()
        .unwrap()[0]
            .clone()
    };
    assert_eq!(count(&reactor), [Value::Integer(0), Value::Integer(0)]);
    assert_eq!(files_in(&inbox), 32);
    eprintln!(
        "shared: runner a sent {}, runner b {}",
        a.delivered(),
        b.delivered()
    );

    // The smarthost is down: the message is deferred in the table...
    port.stop_listening();
    enqueue(&reactor, &a, 1, "deferred");
    run_until(&reactor, LIMIT, || count(&reactor)[1] == Value::Integer(1)).unwrap();
    assert_eq!(files_in(&inbox), 32);
    // ... and sent once it is back (on the same address).
    let _again = reactor.listen_tcp(smarthost, server.factory()).unwrap();
    run_until(&reactor, LIMIT, || files_in(&inbox) == 33).unwrap();
    run_until(&reactor, LIMIT, || count(&reactor)[0] == Value::Integer(0)).unwrap();

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_runner_that_dies_mid_attempt_lets_go_when_its_lease_runs_out() {
    let pg = postgres_server::Server::start_new();
    let dir = std::env::temp_dir().join(format!("braid-mail-pglease-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = |to: SocketAddr| {
        let mut qc = config(&pg, to);
        qc.lease = Duration::from_secs(2);
        qc
    };
    let leased = |reactor: &Reactor| {
        let check = PgPool::new(reactor, pg.config("braid-secret"), 1);
        let rows = run_until_fired(
            reactor,
            LIMIT,
            check.run_query(
                "SELECT count(*) FROM braid_mail_queue \
                 WHERE lease_until > extract(epoch from now())::bigint",
                vec![],
            ),
        )
        .unwrap()
        .unwrap();
        rows[0][0] == Value::Integer(1)
    };

    // A runner whose smarthost never answers (a listener nobody accepts
    // from): the attempt hangs, and its lease is renewed meanwhile.
    let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    {
        let reactor = Reactor::new().unwrap();
        let x = Queue::open(&reactor, config(stall.local_addr().unwrap())).unwrap();
        x.start();
        enqueue(&reactor, &x, 1, "stuck");
        run_until(&reactor, LIMIT, || leased(&reactor)).unwrap();
        // Past its first lease: still held, since the runner renews it.
        let _ = run_until(&reactor, Duration::from_secs(3), || false);
        assert!(leased(&reactor), "renewed while the attempt runs");
        // The runner dies: its reactor (and everything on it) is gone.
    }

    // Another runner takes the message once the dead one's lease is out.
    let reactor = Reactor::new().unwrap();
    let (_server, port) = smarthost_at(&reactor, &dir);
    let y = Queue::open(&reactor, config(port.local_addr())).unwrap();
    y.start();
    run_until(&reactor, LIMIT, || {
        files_in(&dir.join("mail/alice/new")) == 1 && y.delivered() == 1
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
