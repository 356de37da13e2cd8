//! The session logic without GTK: a recording view, braid's own IRC server
//! and a second IRC client on real loopback sockets, and a fake clock for
//! the reconnection delays.

use braid_tls::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{run_until, MemoryReactor};
use braid::Reactor;
use braid_irc::{irc_lower, ClientConfig, IrcClient, IrcEvent, IrcServer, ServerConfig};
use demo_gtk::history::ChatLog;
use demo_gtk::model::{BufferKind, Line, LineKind, Status, View, SERVER_BUFFER};
use demo_gtk::session::{Session, SessionConfig};

/// Remembers what the session asked of the window.
#[derive(Default)]
struct Recorder {
    buffers: RefCell<BTreeMap<String, BufferKind>>,
    lines: RefCell<Vec<(String, Line)>>,
    history: RefCell<Vec<(String, Vec<Line>)>>,
    statuses: RefCell<Vec<Status>>,
    members: RefCell<BTreeMap<String, Vec<String>>>,
    topics: RefCell<BTreeMap<String, Option<String>>>,
    nick: RefCell<String>,
    focused: RefCell<Option<String>>,
}

impl View for Recorder {
    fn set_status(&self, status: &Status) {
        self.statuses.borrow_mut().push(status.clone());
    }
    fn set_nick(&self, nick: &str) {
        *self.nick.borrow_mut() = nick.to_owned();
    }
    fn open_buffer(&self, name: &str, kind: BufferKind, focus: bool) {
        self.buffers
            .borrow_mut()
            .entry(irc_lower(name))
            .or_insert(kind);
        if focus {
            *self.focused.borrow_mut() = Some(name.to_owned());
        }
    }
    fn close_buffer(&self, name: &str) {
        self.buffers.borrow_mut().remove(&irc_lower(name));
    }
    fn has_buffer(&self, name: &str) -> bool {
        self.buffers.borrow().contains_key(&irc_lower(name))
    }
    fn append(&self, buffer: &str, line: &Line) {
        assert!(
            buffer == SERVER_BUFFER || self.has_buffer(buffer),
            "a line for {buffer}, which is not open: {line:?}"
        );
        self.lines
            .borrow_mut()
            .push((buffer.to_owned(), line.clone()));
    }
    fn show_history(&self, buffer: &str, lines: &[Line]) {
        self.history
            .borrow_mut()
            .push((buffer.to_owned(), lines.to_vec()));
    }
    fn set_topic(&self, buffer: &str, topic: Option<&str>) {
        self.topics
            .borrow_mut()
            .insert(irc_lower(buffer), topic.map(str::to_owned));
    }
    fn set_members(&self, buffer: &str, members: &[String]) {
        self.members
            .borrow_mut()
            .insert(irc_lower(buffer), members.to_vec());
    }
}

impl Recorder {
    fn has_line(&self, buffer: &str, plain: &str) -> bool {
        self.lines
            .borrow()
            .iter()
            .any(|(b, l)| irc_lower(b) == irc_lower(buffer) && l.plain() == plain)
    }
    fn has_error(&self, buffer: &str, containing: &str) -> bool {
        self.lines
            .borrow()
            .iter()
            .any(|(b, l)| b == buffer && l.kind == LineKind::Error && l.text.contains(containing))
    }
    fn members_of(&self, channel: &str) -> Vec<String> {
        self.members
            .borrow()
            .get(&irc_lower(channel))
            .cloned()
            .unwrap_or_default()
    }
    fn last_status(&self) -> Option<Status> {
        self.statuses.borrow().last().cloned()
    }
}

fn wait(reactor: &Reactor, what: &str, mut done: impl FnMut() -> bool) {
    run_until(reactor, Duration::from_secs(20), &mut done)
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn server(reactor: &Reactor) -> (IrcServer, SocketAddr) {
    let server = IrcServer::new(ServerConfig::default());
    let port = server
        .listen(reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = port.local_addr();
    std::mem::forget(port); // listens for the whole test
    (server, addr)
}

fn config(addr: SocketAddr, nick: &str) -> SessionConfig {
    SessionConfig::new("127.0.0.1", addr.port(), nick, "#t")
}

/// A second user: an IrcClient that records what it hears.
fn bob(reactor: &Reactor, addr: SocketAddr) -> (IrcClient, Rc<RefCell<Vec<IrcEvent>>>) {
    let heard: Rc<RefCell<Vec<IrcEvent>>> = Rc::default();
    let h = heard.clone();
    let client = IrcClient::new(ClientConfig::new("bob"), move |c, e| {
        if let IrcEvent::Registered { .. } = e {
            c.join("#t");
        }
        h.borrow_mut().push(e);
    });
    reactor.connect_tcp(addr, client.factory(), None);
    (client, heard)
}

fn temp_log(reactor: &Reactor, name: &str) -> (Rc<ChatLog>, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "braid-demo-session-{}-{name}.sqlite3",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    (Rc::new(ChatLog::new(reactor, &path)), path)
}

#[test]
fn two_users_chat_and_the_view_follows() {
    let reactor = Reactor::new().unwrap();
    let (_server, addr) = server(&reactor);
    let view = Rc::new(Recorder::default());
    let session = Session::new(&reactor, config(addr, "alice"), view.clone(), None);
    session.connect();
    wait(&reactor, "alice in #t", || {
        view.members_of("#t") == ["alice"]
    });
    assert!(
        matches!(view.last_status(), Some(Status::Connected { ref nick, .. }) if nick == "alice")
    );
    assert_eq!(view.focused.borrow().as_deref(), Some("#t"));

    let (bob, heard) = bob(&reactor, addr);
    wait(&reactor, "bob in the member list", || {
        view.members_of("#t") == ["alice", "bob"]
    });
    assert!(view.has_line("#t", "-- bob joined"));

    // Both ways in the channel.
    bob.say("#t", "hi alice");
    wait(&reactor, "bob's line", || {
        view.has_line("#t", "<bob> hi alice")
    });
    session.input("#t", "hello bob");
    assert!(
        view.has_line("#t", "<alice> hello bob"),
        "own lines show at once"
    );
    session.input("#t", "/me waves");
    let bob_heard = |text: &str| {
        let h = heard.borrow();
        h.iter().any(|e| matches!(e, IrcEvent::Message { text: t, .. } | IrcEvent::Action { text: t, .. } if t == text))
    };
    wait(&reactor, "bob hears alice", || {
        bob_heard("hello bob") && bob_heard("waves")
    });

    // A private message opens its own buffer, both ways.
    bob.say("alice", "psst");
    wait(&reactor, "the private line", || {
        view.has_line("bob", "<bob> psst")
    });
    assert_eq!(view.buffers.borrow().get("bob"), Some(&BufferKind::Query));
    session.input("#t", "/msg bob secret");
    assert!(view.has_line("bob", "<alice> secret"));
    wait(&reactor, "bob hears the secret", || bob_heard("secret"));

    // Nick change: the view's nick, the status, the member list.
    session.input("#t", "/nick alice2");
    wait(&reactor, "the new nick", || *view.nick.borrow() == "alice2");
    wait(&reactor, "the member list renamed", || {
        view.members_of("#t") == ["alice2", "bob"]
    });
    assert!(
        matches!(view.last_status(), Some(Status::Connected { ref nick, .. }) if nick == "alice2")
    );

    // Errors are lines, not crashes.
    session.input("#t", "/frobnicate");
    assert!(view.has_error("#t", "unknown command /frobnicate"));
    session.input(SERVER_BUFFER, "hello?");
    assert!(view.has_error(SERVER_BUFFER, "this tab is the server's"));
    session.input("#t", "/msg nobody-here hi");
    wait(&reactor, "the server's 401", || {
        view.has_error(SERVER_BUFFER, "(401)")
    });

    // Bob leaves; then we part and the buffer closes.
    bob.part("#t", Some("bye"));
    wait(&reactor, "bob's part", || {
        view.has_line("#t", "-- bob left (bye)")
    });
    assert_eq!(view.members_of("#t"), ["alice2"]);
    session.input("#t", "/part");
    wait(&reactor, "the buffer closed", || !view.has_buffer("#t"));

    // /quit: a polite QUIT, and no reconnection afterwards.
    session.input(SERVER_BUFFER, "/quit done here");
    assert!(
        matches!(view.last_status(), Some(Status::Disconnected { ref reason }) if reason == "done here")
    );
    wait(&reactor, "the server to see alice go", || {
        _server.user_count() == 1
    });
}

#[test]
fn a_lost_server_shows_reconnecting_with_growing_delays_then_connected() {
    let mr = MemoryReactor::new();
    let reactor = mr.reactor().clone();
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let view = Rc::new(Recorder::default());
    let mut cfg = config(addr, "alice");
    cfg.initial_delay = Duration::from_secs(1);
    let session = Session::new(&reactor, cfg, view.clone(), None);
    session.connect();

    let mut delays = Vec::new();
    for attempt in 0..3 {
        wait(
            &reactor,
            "a reconnecting status",
            || matches!(view.last_status(), Some(Status::Reconnecting { retries, .. }) if retries == attempt),
        );
        let Some(Status::Reconnecting { delay, reason, .. }) = view.last_status() else {
            unreachable!()
        };
        assert!(reason.contains("refused"), "the reason is shown: {reason}");
        delays.push(delay);
        mr.advance(delay);
    }
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]),
        "the delays grow: {delays:?}"
    );
    assert!(
        view.has_error(SERVER_BUFFER, "trying again in"),
        "the server tab tells the story too"
    );

    // The server comes up at that address: the next attempt connects and
    // joins the channel wanted.
    let server = IrcServer::new(ServerConfig::default());
    let _port = server.listen(&reactor, addr).unwrap();
    let Some(Status::Reconnecting { delay, .. }) = view.last_status() else {
        panic!("not reconnecting: {:?}", view.last_status())
    };
    mr.advance(delay);
    wait(&reactor, "connected and joined", || {
        view.members_of("#t") == ["alice"]
    });
    assert!(matches!(view.last_status(), Some(Status::Connected { .. })));

    // Disconnect stops it for good: once the connection is gone on both
    // sides, an hour passes with no reconnection attempt (no timer fires).
    session.disconnect("bye");
    assert!(matches!(
        view.last_status(),
        Some(Status::Disconnected { .. })
    ));
    wait(&reactor, "the server to see alice go", || {
        server.user_count() == 0
    });
    wait(&reactor, "the client's connection to end", || {
        view.lines
            .borrow()
            .iter()
            .any(|(b, l)| b == SERVER_BUFFER && l.text.starts_with("disconnected: "))
    });
    let hour = mr.advance(Duration::from_secs(3600));
    assert_eq!(hour.calls, 0, "no reconnection was scheduled");
    assert_eq!(server.user_count(), 0);
}

#[test]
fn a_channel_shows_its_history_when_it_opens_again() {
    let reactor = Reactor::new().unwrap();
    let (_server, addr) = server(&reactor);
    let (log, path) = temp_log(&reactor, "history");
    let view = Rc::new(Recorder::default());
    let session = Session::new(
        &reactor,
        config(addr, "alice"),
        view.clone(),
        Some(log.clone()),
    );
    session.connect();
    wait(&reactor, "alice in #t", || {
        view.members_of("#t") == ["alice"]
    });
    let (bob, _) = bob(&reactor, addr);
    wait(&reactor, "bob in #t", || view.members_of("#t").len() == 2);
    session.input("#t", "first");
    bob.say("#t", "second");
    wait(&reactor, "bob's line", || {
        view.has_line("#t", "<bob> second")
    });
    session.input("#t", "/quit");

    // A new session (as after a restart) with the same log.
    let view2 = Rc::new(Recorder::default());
    let session2 = Session::new(&reactor, config(addr, "alice"), view2.clone(), Some(log));
    session2.connect();
    wait(&reactor, "the history", || {
        !view2.history.borrow().is_empty()
    });
    let history = view2.history.borrow();
    let (buffer, lines) = &history[0];
    assert_eq!(buffer, "#t");
    let plain: Vec<String> = lines.iter().map(Line::plain).collect();
    assert_eq!(plain, ["<alice> first", "<bob> second"]);
    drop(history);
    let _ = std::fs::remove_file(&path);
}

/// IRC over TLS: the session checks the server's certificate, chats, and
/// gives up (instead of retrying for ever) on a certificate it refuses.
#[test]
fn irc_over_tls_and_a_refused_certificate() {
    use braid_tls::testing as pki;
    let reactor = Reactor::new().unwrap();
    let server = IrcServer::new(ServerConfig::default());
    let port = reactor
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            server.factory(),
            &pki::server_config(),
        )
        .unwrap();
    let addr = port.local_addr();
    let view = Rc::new(Recorder::default());
    let mut c = SessionConfig::new("localhost", addr.port(), "alice", "#t");
    c.host = "127.0.0.1".into();
    c.tls = Some(pki::client_config());
    let session = Session::new(&reactor, c, view.clone(), None);
    session.connect();
    wait(&reactor, "alice in #t over TLS", || {
        view.members_of("#t") == ["alice"]
    });
    assert_eq!(server.members("#t"), ["alice"]);
    session.input("#t", "over tls");
    assert!(view.has_line("#t", "<alice> over tls"));
    session.disconnect("bye");

    // A client that trusts other roots: refused, and not retried.
    let view = Rc::new(Recorder::default());
    let mut c = SessionConfig::new("127.0.0.1", addr.port(), "mallory", "#t");
    c.tls = Some(braid_tls::ClientConfig::new());
    c.initial_delay = Duration::from_millis(10);
    let session = Session::new(&reactor, c, view.clone(), None);
    session.connect();
    wait(&reactor, "the refusal", || {
        matches!(view.last_status(), Some(Status::Failed { .. }))
    });
    let Some(Status::Failed { reason }) = view.last_status() else {
        unreachable!()
    };
    assert!(reason.contains("certificate"), "{reason}");
    drop(port);
}
