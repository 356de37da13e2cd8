//! IRC channel history in a real SQLite file, replayed on join, surviving a
//! server restart.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::run_until;
use braid::Reactor;
use braid_db::ConnectionPool;
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

fn messages(ev: &Events) -> Vec<(String, String)> {
    ev.borrow()
        .iter()
        .filter_map(|e| match e {
            IrcEvent::Message { from, text, .. } => Some((from.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

fn serve(reactor: &Reactor, db: &std::path::Path) -> (IrcServer, std::net::SocketAddr) {
    let mut config = ServerConfig::default();
    config.history = Some(History::new(ConnectionPool::sqlite(reactor, db, 1), 3));
    let server = IrcServer::new(config);
    let port = server
        .listen(reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    (server, port.local_addr())
}

#[test]
fn the_last_messages_are_replayed_on_join_and_survive_a_restart() {
    let mut db = std::env::current_exe().unwrap();
    db.pop();
    db.push(format!("irc-history-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let limit = Duration::from_secs(20);

    let reactor = Reactor::new().unwrap();
    let (_server, addr) = serve(&reactor, &db);
    let (ann, _) = joiner(&reactor, addr, "ann");
    run_until(&reactor, limit, || ann.members("#log").len() == 1).unwrap();
    for i in 1..=5 {
        ann.say("#log", &format!("message {i}"));
    }
    ann.action("#log", "leaves a note");
    // The pool has one connection, so its jobs run in order: ben's history
    // query (sent when he joins) runs after ann's inserts.
    let (ben, ben_ev) = joiner(&reactor, addr, "ben");
    run_until(&reactor, limit, || {
        ben.members("#log").len() == 2
            && ben_ev.borrow().iter().any(
                |e| matches!(e, IrcEvent::Notice { text, .. } if text.contains("end of history")),
            )
    })
    .unwrap();
    assert_eq!(
        messages(&ben_ev),
        vec![
            ("ann".to_string(), "message 4".to_string()),
            ("ann".to_string(), "message 5".to_string())
        ]
    );
    assert!(ben_ev.borrow().contains(&IrcEvent::Action {
        from: "ann".into(),
        target: "#log".into(),
        text: "leaves a note".into()
    }));
    let r = reactor.clone();
    reactor.call_soon(move || r.stop());
    reactor.run().unwrap();

    // A new server process on the same file: the history is still there.
    let reactor = Reactor::new().unwrap();
    let (_server, addr) = serve(&reactor, &db);
    let (cat, cat_ev) = joiner(&reactor, addr, "cat");
    run_until(&reactor, limit, || {
        cat.members("#log").len() == 1
            && cat_ev.borrow().iter().any(
                |e| matches!(e, IrcEvent::Notice { text, .. } if text.contains("end of history")),
            )
    })
    .unwrap();
    assert_eq!(messages(&cat_ev).len(), 2);
    for ext in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
}
