#![cfg(unix)]
//! Two IRC servers sharing one channel history in PostgreSQL (the
//! `postgres` feature): what ann says on one is replayed to ben when he
//! joins the same channel on the other.

#[path = "../../tests/common/postgres_server.rs"]
mod postgres_server;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::run_until;
use braid::Reactor;
use braid_db::postgres::PgPool;
use braid_db::rusqlite::types::Value;
use braid_irc::{ClientConfig, History, IrcClient, IrcEvent, IrcServer, ServerConfig};

type Events = Rc<RefCell<Vec<IrcEvent>>>;

fn joiner(reactor: &Reactor, addr: std::net::SocketAddr, nick: &str) -> (IrcClient, Events) {
    let events = Events::default();
    let e = events.clone();
    let c = IrcClient::new(ClientConfig::new(nick), move |client, event| {
        if let IrcEvent::Registered { .. } = event {
            client.join("#log");
        }
        e.borrow_mut().push(event);
    });
    reactor.connect_tcp(addr, c.factory(), None);
    (c, events)
}

#[test]
fn two_servers_share_one_history() {
    let server = postgres_server::Server::start_new();
    let reactor = Reactor::new().unwrap();
    let limit = Duration::from_secs(30);
    let serve = || {
        let mut config = ServerConfig::default();
        let pool = PgPool::new(&reactor, server.config("braid-secret"), 2);
        config.history = Some(History::postgres(pool, 3));
        let irc = IrcServer::new(config);
        let port = irc
            .listen(&reactor, "127.0.0.1:0".parse().unwrap())
            .unwrap();
        (irc, port.local_addr())
    };
    let (_a, addr_a) = serve();
    let (_b, addr_b) = serve();

    let (ann, _) = joiner(&reactor, addr_a, "ann");
    run_until(&reactor, limit, || ann.members("#log").len() == 1).unwrap();
    for i in 1..=5 {
        ann.say("#log", &format!("message {i}"));
    }
    // Wait until server A has stored the last one (its own pool).
    let check = PgPool::new(&reactor, server.config("braid-secret"), 1);
    run_until(&reactor, limit, || {
        let d = check.run_query(
            "SELECT count(*) FROM irc_history WHERE text = $1",
            vec![Value::Text("message 5".into())],
        );
        let done = Rc::new(RefCell::new(None));
        let dd = done.clone();
        d.add_both(move |r| {
            *dd.borrow_mut() = Some(r.ok());
            Ok::<(), braid::Failure>(())
        });
        let _ = run_until(&reactor, limit, || done.borrow().is_some());
        let n = done.borrow_mut().take().flatten();
        n == Some(vec![vec![Value::Integer(1)]])
    })
    .unwrap();

    // ben joins on server B: the history is the database's, not A's memory.
    let (ben, ben_ev) = joiner(&reactor, addr_b, "ben");
    run_until(&reactor, limit, || {
        ben.members("#log").len() == 1
            && ben_ev.borrow().iter().any(
                |e| matches!(e, IrcEvent::Notice { text, .. } if text.contains("end of history")),
            )
    })
    .unwrap();
    let heard: Vec<(String, String)> = ben_ev
        .borrow()
        .iter()
        .filter_map(|e| match e {
            IrcEvent::Message { from, text, .. } => Some((from.clone(), text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        heard,
        ["message 3", "message 4", "message 5"]
            .map(|t| ("ann".to_owned(), t.to_owned()))
            .to_vec(),
        "the last three, oldest first"
    );
}

#[test]
fn a_burst_is_recorded_in_order_and_trimmed() {
    let server = postgres_server::Server::start_new();
    let reactor = Reactor::new().unwrap();
    let limit = Duration::from_secs(60);
    let mut config = ServerConfig::default();
    config.flood_burst = 10_000;
    config.flood_per_second = 10_000;
    let pool = PgPool::new(&reactor, server.config("braid-secret"), 2);
    config.history = Some(History::postgres(pool, 100));
    let irc = IrcServer::new(config);
    let addr = irc
        .listen(&reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap()
        .local_addr();
    let (ann, _) = joiner(&reactor, addr, "ann");
    run_until(&reactor, limit, || ann.members("#log").len() == 1).unwrap();
    // 1,000 messages at once: recorded in a few transactions, in order.
    for i in 0..1000 {
        ann.say("#log", &format!("burst {i:04}"));
    }
    let check = PgPool::new(&reactor, server.config("braid-secret"), 1);
    run_until(&reactor, limit, || {
        let rows = braid::testing::run_until_fired(
            &reactor,
            limit,
            check.run_query(
                "SELECT text FROM irc_history WHERE channel = '#log' ORDER BY id DESC LIMIT 1",
                vec![],
            ),
        )
        .unwrap();
        rows.ok()
            .is_some_and(|r| r == vec![vec![Value::Text("burst 0999".into())]])
    })
    .unwrap();
    let rows = braid::testing::run_until_fired(
        &reactor,
        limit,
        check.run_query("SELECT text FROM irc_history ORDER BY id", vec![]),
    )
    .unwrap()
    .unwrap();
    let want: Vec<Vec<Value>> = (900..1000)
        .map(|i| vec![Value::Text(format!("burst {i:04}"))])
        .collect();
    assert_eq!(rows, want, "the last 100, in the order said");
}
