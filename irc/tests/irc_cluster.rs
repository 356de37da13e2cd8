#![cfg(unix)]
//! IRC servers as one network through a real PostgreSQL (the `postgres`
//! feature): users of different servers share channels, see each
//! other's joins, messages, nick changes, topics and quits; a nick is
//! one user's in the whole cluster; a server that joins late learns who
//! is there; PostgreSQL restarting mid-chat is survived.

#[path = "../../tests/common/postgres_server.rs"]
mod postgres_server;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::run_until;
use braid::Reactor;
use braid_irc::{
    ClientConfig, Cluster, ClusterConfig, IrcClient, IrcEvent, IrcServer, ServerConfig,
};

type Events = Rc<RefCell<Vec<IrcEvent>>>;

const LIMIT: Duration = Duration::from_secs(60);

fn serve(
    reactor: &Reactor,
    pg: &postgres_server::Server,
    name: &str,
) -> (IrcServer, Cluster, SocketAddr) {
    let mut settings = ClusterConfig::default();
    settings.heartbeat = Duration::from_millis(200);
    let cluster = Cluster::with_config(reactor, pg.config("braid-secret"), settings);
    let mut config = ServerConfig::default();
    config.name = name.into();
    config.cluster = Some(cluster.clone());
    let irc = IrcServer::new(config);
    run_until(reactor, LIMIT, || cluster.is_ready()).unwrap();
    let port = irc.listen(reactor, "127.0.0.1:0".parse().unwrap()).unwrap();
    (irc, cluster, port.local_addr())
}

fn client(
    reactor: &Reactor,
    addr: SocketAddr,
    nick: &str,
    channel: &'static str,
) -> (IrcClient, Events) {
    let events = Events::default();
    let e = events.clone();
    let c = IrcClient::new(ClientConfig::new(nick), move |client, event| {
        if let IrcEvent::Registered { .. } = event {
            client.join(channel);
        }
        e.borrow_mut().push(event);
    });
    reactor.connect_tcp(addr, c.factory(), None);
    (c, events)
}

fn said(events: &Events) -> Vec<(String, String, String)> {
    events
        .borrow()
        .iter()
        .filter_map(|e| match e {
            IrcEvent::Message { from, target, text } => {
                Some((from.clone(), target.clone(), text.clone()))
            }
            _ => None,
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn servers_of_a_cluster_are_one_network() {
    let mut pg = postgres_server::Server::start_new();
    let reactor = Reactor::new().unwrap();
    let (a, _ca, addr_a) = serve(&reactor, &pg, "a.irc");
    let (b, cb, addr_b) = serve(&reactor, &pg, "b.irc");

    let (ann, ann_ev) = client(&reactor, addr_a, "ann", "#c");
    let (ben, ben_ev) = client(&reactor, addr_b, "ben", "#c");
    run_until(&reactor, LIMIT, || {
        ann.members("#c").len() == 2 && ben.members("#c").len() == 2
    })
    .unwrap();
    assert_eq!(sorted(a.members("#c")), ["ann", "ben"]);
    assert_eq!(sorted(b.members("#c")), ["ann", "ben"]);

    // Messages both ways, in order, to the channel and to a remote nick.
    for i in 0..50 {
        ann.say("#c", &format!("a{i}"));
        ben.say("#c", &format!("b{i}"));
    }
    ann.say("ben", "just you");
    run_until(&reactor, LIMIT, || {
        said(&ben_ev).len() == 51 && said(&ann_ev).len() == 50
    })
    .unwrap();
    let to_ben = said(&ben_ev);
    assert_eq!(
        to_ben[..50].iter().map(|m| m.2.clone()).collect::<Vec<_>>(),
        (0..50).map(|i| format!("a{i}")).collect::<Vec<_>>()
    );
    assert_eq!(to_ben[50], ("ann".into(), "ben".into(), "just you".into()));
    assert!(said(&ann_ev).iter().all(|m| m.0 == "ben" && m.1 == "#c"));

    // One nick in the whole cluster: cat on server B cannot be ann.
    let (cat, cat_ev) = client(&reactor, addr_b, "ann", "#c");
    run_until(&reactor, LIMIT, || cat.is_registered()).unwrap();
    assert!(cat_ev
        .borrow()
        .iter()
        .any(|e| matches!(e, IrcEvent::NickInUse { tried, .. } if tried == "ann")));
    assert_ne!(cat.nick(), "ann");
    run_until(&reactor, LIMIT, || ann.members("#c").len() == 3).unwrap();

    // A rename is claimed too, and seen on the other server.
    ben.set_nick("benny");
    run_until(&reactor, LIMIT, || {
        sorted(ann.members("#c")).contains(&"benny".to_owned())
    })
    .unwrap();
    let taken = cat.nick();
    ann.set_nick(&taken);
    run_until(&reactor, LIMIT, || {
        ann_ev.borrow().iter().any(|e| {
            matches!(e, IrcEvent::ServerError { code: 433, .. })
                || matches!(e, IrcEvent::NickInUse { .. })
        })
    })
    .unwrap();
    assert_eq!(
        ann.nick(),
        "ann",
        "the rename to a remote user's nick was refused"
    );

    // Topics cross.
    ann.set_topic("#c", "cluster talk");
    run_until(&reactor, LIMIT, || {
        ben.topic("#c").as_deref() == Some("cluster talk")
    })
    .unwrap();

    // A server that starts later learns who is where from the tables.
    let (_c, _cc, addr_c) = serve(&reactor, &pg, "c.irc");
    let (dan, _dan_ev) = client(&reactor, addr_c, "dan", "#c");
    run_until(&reactor, LIMIT, || dan.members("#c").len() == 4).unwrap();
    assert_eq!(dan.topic("#c").as_deref(), Some("cluster talk"));

    // PostgreSQL restarts: the servers reconnect, read the tables again,
    // and chat goes on.
    pg.stop();
    run_until(&reactor, LIMIT, || !cb.is_ready()).unwrap();
    pg.run();
    run_until(&reactor, LIMIT, || cb.is_ready() && _ca.is_ready()).unwrap();
    let before = said(&ben_ev).len();
    run_until(&reactor, LIMIT, || {
        ann.say("#c", "after the restart");
        let _ = run_until(&reactor, Duration::from_millis(300), || false);
        said(&ben_ev).len() > before
    })
    .unwrap();
    assert_eq!(said(&ben_ev).last().unwrap().2, "after the restart");

    // Leaving: a part and a quit reach the other servers.
    dan.part("#c", Some("bye"));
    run_until(&reactor, LIMIT, || ann.members("#c").len() == 3).unwrap();
    ann.quit("done");
    run_until(&reactor, LIMIT, || {
        !ben.members("#c").contains(&"ann".to_owned())
            && ben_ev.borrow().iter().any(|e| {
                matches!(e, IrcEvent::Quit { nick, reason, .. } if nick == "ann" && reason.as_deref().is_some_and(|r| r.contains("done")))
            })
    })
    .unwrap();
    // ann's nick is free again, cluster-wide.
    let (again, _) = client(&reactor, addr_b, "ann", "#c");
    run_until(&reactor, LIMIT, || again.is_registered()).unwrap();
    assert_eq!(again.nick(), "ann");
}

#[test]
fn a_server_taken_for_gone_announces_its_users_again() {
    let pg = postgres_server::Server::start_new();
    let reactor = Reactor::new().unwrap();
    let (_a, ca, addr_a) = serve(&reactor, &pg, "a.irc");
    let (_b, _cb, addr_b) = serve(&reactor, &pg, "b.irc");
    let (ann, _) = client(&reactor, addr_a, "ann", "#c");
    let (ben, ben_ev) = client(&reactor, addr_b, "ben", "#c");
    run_until(&reactor, LIMIT, || {
        ann.members("#c").len() == 2 && ben.members("#c").len() == 2
    })
    .unwrap();

    // What another server's sweep does to a node it takes for gone: its
    // row goes (and its nicks and memberships with it), and a SQUIT.
    let check = braid_db::postgres::PgPool::new(&reactor, pg.config("braid-secret"), 1);
    let node = braid_db::rusqlite::types::Value::Text(ca.node());
    let squit = format!("sweeper 1\nSQUIT {} :gone", ca.node());
    braid::testing::run_until_fired(
        &reactor,
        LIMIT,
        check.run_interaction(move |tx| async move {
            tx.execute("DELETE FROM braid_irc_nodes WHERE node = $1", vec![node])
                .await?;
            tx.query(
                "SELECT pg_notify('braid_irc', $1)",
                vec![braid_db::rusqlite::types::Value::Text(squit)],
            )
            .await?;
            Ok(())
        }),
    )
    .unwrap()
    .unwrap();
    // ben sees ann split off...
    run_until(&reactor, LIMIT, || {
        ben_ev
            .borrow()
            .iter()
            .any(|e| matches!(e, IrcEvent::Quit { nick, .. } if nick == "ann"))
    })
    .unwrap();
    // ... and come back: server A noticed at its next heartbeat that its
    // row was gone, claimed ann's nick again and rejoined her channels.
    run_until(&reactor, LIMIT, || {
        ben.members("#c").contains(&"ann".to_owned())
    })
    .unwrap();
    let rows = braid::testing::run_until_fired(
        &reactor,
        LIMIT,
        check.run_query(
            "SELECT n.nick, m.channel FROM braid_irc_nicks n JOIN braid_irc_members m USING (nick_key) WHERE n.node = $1",
            vec![braid_db::rusqlite::types::Value::Text(ca.node())],
        ),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        rows,
        vec![vec![
            braid_db::rusqlite::types::Value::Text("ann".into()),
            braid_db::rusqlite::types::Value::Text("#c".into())
        ]]
    );
    // And they talk as before.
    ann.say("#c", "back again");
    run_until(&reactor, LIMIT, || {
        said(&ben_ev).iter().any(|m| m.2 == "back again")
    })
    .unwrap();
}
