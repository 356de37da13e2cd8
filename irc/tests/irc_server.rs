//! The IRC server over in-memory connections on fake time, and over
//! loopback with several clients.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::{connected_pair, MemoryReactor, Pair};
use braid::{Address, CloseReason, Factory, Protocol, Transport};
use braid_irc::{IrcServer, ServerConfig};

/// A raw IRC client for tests: records every line it receives.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    lines: Vec<String>,
    closed: bool,
}

type Shared = Rc<RefCell<Lines>>;

struct Recorder(Shared);

impl Protocol for Recorder {
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        let mut l = self.0.borrow_mut();
        l.buf.extend_from_slice(data);
        while let Some(i) = l.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = l.buf.drain(..=i).collect();
            let s = String::from_utf8_lossy(&line).trim_end().to_owned();
            l.lines.push(s);
        }
    }
    fn connection_lost(&mut self, _: &CloseReason) {
        self.0.borrow_mut().closed = true;
    }
}

struct Client {
    pair: Pair,
    log: Shared,
}

impl Client {
    fn connect(mr: &MemoryReactor, server: &IrcServer) -> Client {
        let mut f = server.factory();
        let proto = f.build_protocol(&Address::Memory("client".into())).unwrap();
        let log = Shared::default();
        let pair = connected_pair(mr.reactor(), proto, Recorder(log.clone()));
        pair.pump();
        Client { pair, log }
    }

    fn send(&self, line: &str) {
        self.pair.client().write(format!("{line}\r\n").as_bytes());
        self.pair.pump();
    }

    fn take(&self) -> Vec<String> {
        self.pair.pump();
        std::mem::take(&mut self.log.borrow_mut().lines)
    }

    fn register(mr: &MemoryReactor, server: &IrcServer, nick: &str) -> Client {
        let c = Client::connect(mr, server);
        c.send(&format!("NICK {nick}"));
        c.send(&format!("USER {nick} 0 * :{nick} the tester"));
        let got = c.take();
        assert!(got.iter().any(|l| l.contains(" 001 ")), "{got:?}");
        c
    }
}

fn codes(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.split(' ').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn registration_gives_the_same_replies_byte_by_byte_and_whole() {
    let script = "CAP LS 302\r\nNICK alice\r\nUSER alice 0 * :Alice A\r\nCAP END\r\nJOIN #braid\r\nPING :t1\r\n";
    let mut outputs = Vec::new();
    for chunk in [0usize, 1, 3, 7] {
        let mr = MemoryReactor::new();
        let server = IrcServer::new(ServerConfig::default());
        let c = Client::connect(&mr, &server);
        if chunk == 0 {
            c.pair.client().write(script.as_bytes());
            c.pair.pump();
        } else {
            for piece in script.as_bytes().chunks(chunk) {
                c.pair.client().write(piece);
                c.pair.pump();
            }
        }
        outputs.push(c.take());
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:#?}");
    let out = &outputs[0];
    let c = codes(out);
    assert_eq!(
        &c[..6],
        ["CAP", "001", "002", "003", "004", "375"],
        "{out:#?}"
    );
    assert!(c.contains(&"376".into()) && c.contains(&"JOIN".into()) && c.contains(&"353".into()));
    assert!(out
        .iter()
        .any(|l| l.ends_with(":Welcome to the Internet Relay Network alice!alice@memory:client")));
    assert!(out.last().unwrap().contains("PONG") && out.last().unwrap().ends_with("t1"));
}

#[test]
fn channels_messages_topics_names_nicks_and_quit() {
    let mr = MemoryReactor::new();
    let server = IrcServer::new(ServerConfig::default());
    let a = Client::register(&mr, &server, "alice");
    let b = Client::register(&mr, &server, "bob");
    a.send("JOIN #braid");
    b.send("JOIN #Braid");
    assert_eq!(server.members("#braid"), vec!["alice", "bob"]);
    let got = a.take();
    assert!(
        got.iter()
            .any(|l| l.starts_with(":bob!bob@") && l.ends_with("JOIN #braid")),
        "{got:?}"
    );
    let got = b.take();
    assert!(
        got.iter()
            .any(|l| l.contains(" 353 bob = #braid :alice bob")),
        "{got:?}"
    );

    a.send("PRIVMSG #braid :hello there, bob");
    assert_eq!(
        b.take(),
        vec![":alice!alice@memory:client PRIVMSG #braid :hello there, bob"]
    );
    assert!(a.take().is_empty(), "no echo to the sender");
    b.send("PRIVMSG alice :\x01ACTION waves\x01");
    assert_eq!(
        a.take(),
        vec![":bob!bob@memory:client PRIVMSG alice :\x01ACTION waves\x01"]
    );
    a.send("PRIVMSG #braid ::-) starts with a colon");
    let got = b.take();
    assert_eq!(
        got,
        vec![":alice!alice@memory:client PRIVMSG #braid ::-) starts with a colon"]
    );
    a.send("PRIVMSG #braid ::colon-no-space");
    let got = b.take();
    let parsed: irc_proto::Message = got[0].parse().unwrap();
    assert_eq!(
        parsed.command,
        irc_proto::Command::PRIVMSG("#braid".into(), ":colon-no-space".into()),
        "{got:?}"
    );
    b.send("NOTICE alice :psst");
    assert!(a.take()[0].ends_with("NOTICE alice psst"));

    a.send("TOPIC #braid :Twisted, in Rust");
    assert!(b.take()[0].ends_with("TOPIC #braid :Twisted, in Rust"));
    a.take();
    b.send("TOPIC #braid");
    assert_eq!(codes(&b.take()), ["332"]);
    b.send("LIST");
    let list = b.take();
    assert!(
        list.iter()
            .any(|l| l.contains(" 322 bob #braid 2 :Twisted, in Rust")),
        "{list:?}"
    );
    b.send("WHO #braid");
    assert_eq!(codes(&b.take()), ["352", "352", "315"]);

    b.send("NICK robert");
    assert!(a.take()[0].starts_with(":bob!bob@memory:client NICK"));
    assert!(b.take()[0].contains("NICK"));
    assert_eq!(server.members("#braid"), vec!["alice", "robert"]);
    b.send("PART #braid :bye");
    assert!(a.take()[0].ends_with("PART #braid bye"));
    b.send("JOIN #braid");
    a.take();
    b.send("QUIT :gone fishing");
    assert!(a.take()[0].ends_with("QUIT :Quit: gone fishing"));
    assert!(b.log.borrow().closed);
    assert_eq!(server.members("#braid"), vec!["alice"]);
    a.send("PART #braid");
    assert!(server.channels().is_empty(), "an empty channel is gone");
}

#[test]
fn error_numerics() {
    let mr = MemoryReactor::new();
    let server = IrcServer::new(ServerConfig::default());
    let u = Client::connect(&mr, &server);
    u.send("JOIN #x");
    assert_eq!(codes(&u.take()), ["451"], "not registered");
    u.send("NICK");
    assert_eq!(codes(&u.take()), ["431"]);
    u.send("NICK 9lives");
    assert_eq!(codes(&u.take()), ["432"]);
    let _alice = Client::register(&mr, &server, "alice");
    u.send("NICK Alice");
    assert_eq!(
        codes(&u.take()),
        ["433"],
        "nicks compare case-insensitively"
    );
    u.send("USER");
    assert_eq!(codes(&u.take()), ["461"]);
    let c = Client::register(&mr, &server, "carol");
    for (line, code) in [
        ("FROBNICATE now", "421"),
        ("PRIVMSG", "411"),
        ("PRIVMSG #nowhere", "412"),
        ("PRIVMSG #nowhere :hi", "403"),
        ("PRIVMSG nobody :hi", "401"),
        ("JOIN", "461"),
        ("JOIN badchannel", "403"),
        ("PART #nowhere", "403"),
        ("TOPIC #nowhere", "403"),
        ("USER carol 0 * :again", "462"),
    ] {
        c.send(line);
        assert_eq!(codes(&c.take()), [code], "{line}");
    }
    let d = Client::register(&mr, &server, "dave");
    d.send("JOIN #room");
    d.take();
    c.send("PRIVMSG #room :not a member");
    assert_eq!(codes(&c.take()), ["404"]);
    c.send("PART #room");
    assert_eq!(codes(&c.take()), ["442"]);
    c.send("NOTICE nobody :notices never get errors");
    assert!(c.take().is_empty());
}

#[test]
fn bad_input_gets_replies_or_a_disconnect_never_a_panic() {
    let mr = MemoryReactor::new();
    let server = IrcServer::new(ServerConfig::default());
    let c = Client::register(&mr, &server, "fuzzy");
    // Garbage bytes, invalid UTF-8, control characters, empty lines.
    c.pair
        .client()
        .write(b"\x00\x01\x02\xff\xfe\r\n\r\n   \r\n:onlyprefix\r\n@tags\r\n");
    c.pair.pump();
    assert!(!c.log.borrow().closed);
    c.take();
    // A 100 KB line: refused with 417, the connection goes on.
    c.pair.client().write(&vec![b'A'; 100_000]);
    c.pair.client().write(b"\r\nPING :still-here\r\n");
    c.pair.pump();
    let got = c.take();
    assert_eq!(codes(&got), ["417", "PONG"], "{got:?}");
    assert!(!c.log.borrow().closed);
}

/// A paste (registration included) is not a flood: lines beyond the rate
/// wait and are processed at it, all of them and in order, as ngircd and
/// InspIRCd do ("fake lag"); nobody is disconnected.
#[test]
fn a_pasted_burst_is_processed_at_the_flood_rate_in_order() {
    let mr = MemoryReactor::new();
    let server = IrcServer::new(ServerConfig::default());
    let calm = Client::register(&mr, &server, "calm");
    calm.send("JOIN #c");
    calm.take();
    let paster = Client::connect(&mr, &server);
    let mut paste = String::from("NICK paster\r\nUSER paster 0 * :the paster\r\nJOIN #c\r\n");
    for i in 0..50 {
        paste += &format!("PRIVMSG #c :line {i}\r\n");
    }
    paster.pair.client().write(paste.as_bytes());
    paster.pair.pump();
    let mut got = calm.take();
    let at_once = got.iter().filter(|l| l.contains(":line ")).count();
    assert!(at_once < 50, "the rate applies: {at_once} at once");
    // The default rate is 4 lines a second after a burst of 20.
    for _ in 0..60 {
        mr.advance(Duration::from_millis(250));
        paster.pair.pump();
        got.extend(calm.take());
    }
    let lines: Vec<String> = got
        .iter()
        .filter_map(|l| l.split(" :line ").nth(1).map(str::to_owned))
        .collect();
    let want: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!(lines, want, "every pasted line, in order");
    assert!(!paster.log.borrow().closed, "the paster stays connected");
    assert!(!paster.take().iter().any(|l| l.contains("ERROR")));
}

/// A client that never stops sending is dropped once what waits to be
/// processed passes the input cap (8 KiB), so it costs bounded memory,
/// and the others are not disturbed.
#[test]
fn a_client_that_never_stops_sending_is_dropped_past_the_input_cap() {
    let mr = MemoryReactor::new();
    let server = IrcServer::new(ServerConfig::default());
    let flooder = Client::register(&mr, &server, "flooder");
    let calm = Client::register(&mr, &server, "calm");
    calm.send("JOIN #c");
    flooder.send("JOIN #c");
    calm.take();
    let burst: String = (0..1000)
        .map(|i| format!("PRIVMSG #c :line {i}\r\n"))
        .collect();
    flooder.pair.client().write(burst.as_bytes());
    flooder.pair.pump();
    assert!(flooder.log.borrow().closed);
    assert!(flooder
        .take()
        .iter()
        .any(|l| l.contains("ERROR") && l.contains("Excess Flood")));
    let got = calm.take();
    assert!(got.len() < 25, "the burst was cut short: {}", got.len());
    assert!(
        got.last().unwrap().contains("QUIT :Excess Flood"),
        "{got:?}"
    );
    // Within the rate, lines keep flowing (fake time refills the bucket).
    for i in 0..50 {
        mr.advance(Duration::from_millis(300));
        calm.send(&format!("PING :{i}"));
    }
    assert_eq!(calm.take().len(), 50);
    assert!(!calm.log.borrow().closed);
}

#[test]
fn idle_clients_are_pinged_and_dropped_and_registration_times_out() {
    let mr = MemoryReactor::new();
    let server = IrcServer::new(ServerConfig::default());
    let lively = Client::register(&mr, &server, "lively");
    let silent = Client::register(&mr, &server, "silent");
    let never = Client::connect(&mr, &server);
    never.send("NICK slowpoke");
    mr.advance(Duration::from_secs(60));
    lively.pair.pump();
    never.pair.pump();
    assert!(never.log.borrow().closed, "registration timed out");
    assert!(never
        .take()
        .iter()
        .any(|l| l.contains("registration timeout")));

    mr.advance(Duration::from_secs(60)); // 120 s idle: PING
    lively.pair.pump();
    silent.pair.pump();
    assert!(lively
        .take()
        .iter()
        .any(|l| l.starts_with("PING") || l.contains(" PING ")));
    assert!(silent
        .take()
        .iter()
        .any(|l| l.starts_with("PING") || l.contains(" PING ")));
    lively.send("PONG :braid.irc");
    mr.advance(Duration::from_secs(60));
    lively.pair.pump();
    silent.pair.pump();
    assert!(silent.log.borrow().closed, "no PONG: dropped");
    assert!(!lively.log.borrow().closed, "answered: kept");
    assert_eq!(server.user_count(), 1);
}

#[test]
fn a_password_is_checked() {
    let mr = MemoryReactor::new();
    let mut config = ServerConfig::default();
    config.password = Some(std::rc::Rc::new(braid_cred::SharedPasswordChecker::new(
        "sesame",
    )));
    let server = IrcServer::new(config);
    let bad = Client::connect(&mr, &server);
    bad.send("PASS wrong");
    bad.send("NICK mallory");
    bad.send("USER m 0 * :M");
    assert_eq!(codes(&bad.take())[0], "464");
    assert!(bad.log.borrow().closed);
    let good = Client::connect(&mr, &server);
    good.send("PASS sesame");
    good.send("NICK ok");
    good.send("USER ok 0 * :OK");
    assert_eq!(codes(&good.take())[0], "001");
    // Through cred: five failures from one host and even the right
    // password is refused for a while.
    for i in 0..5 {
        let bad = Client::connect(&mr, &server);
        bad.send("PASS guess");
        bad.send(&format!("NICK g{i}"));
        bad.send("USER g 0 * :G");
        assert_eq!(codes(&bad.take())[0], "464");
    }
    let late = Client::connect(&mr, &server);
    late.send("PASS sesame");
    late.send("NICK late");
    late.send("USER l 0 * :L");
    assert_eq!(codes(&late.take())[0], "464", "throttled");
}

#[test]
fn three_braid_clients_exchange_a_thousand_messages_each_over_loopback() {
    use braid::testing::run_until;
    use braid_irc::{ClientConfig, IrcClient, IrcEvent};
    let reactor = braid::Reactor::new().unwrap();
    let mut config = ServerConfig::default();
    config.flood_burst = 5000; // this test measures delivery, not flood control
    config.flood_per_second = 5000;
    let server = IrcServer::new(config);
    let port = server
        .listen(&reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let mut clients = Vec::new();
    for nick in ["ann", "ben", "cat"] {
        let got: Rc<RefCell<Vec<(String, String)>>> = Rc::default();
        let g = got.clone();
        let c = IrcClient::new(ClientConfig::new(nick), move |client, event| match event {
            IrcEvent::Registered { .. } => client.join("#load"),
            IrcEvent::Message { from, text, .. } => g.borrow_mut().push((from, text)),
            _ => {}
        });
        reactor.connect_tcp(port.local_addr(), c.factory(), None);
        clients.push((c, got));
    }
    run_until(&reactor, Duration::from_secs(20), || {
        server.members("#load").len() == 3
    })
    .unwrap();
    for (c, _) in &clients {
        for n in 0..1000 {
            c.say("#load", &format!("{n}"));
        }
    }
    let from = |got: &Rc<RefCell<Vec<(String, String)>>>, nick: &str| -> Vec<u32> {
        got.borrow()
            .iter()
            .filter(|(f, _)| f == nick)
            .filter_map(|(_, t)| t.parse().ok())
            .collect()
    };
    let nicks = ["ann", "ben", "cat"];
    run_until(&reactor, Duration::from_secs(60), || {
        clients.iter().enumerate().all(|(me, (_, got))| {
            nicks
                .iter()
                .enumerate()
                .filter(|(o, _)| *o != me)
                .all(|(_, n)| from(got, n).len() == 1000)
        })
    })
    .unwrap();
    for (me, (_, got)) in clients.iter().enumerate() {
        for (other, nick) in nicks.iter().enumerate().filter(|(o, _)| *o != me) {
            assert_eq!(
                from(got, nick),
                (0..1000).collect::<Vec<u32>>(),
                "{me} from {other}"
            );
        }
        assert!(
            from(got, nicks[me]).is_empty(),
            "no echo of our own messages"
        );
    }
}

#[test]
fn a_client_that_never_reads_is_dropped_and_does_not_stall_the_others() {
    let mr = MemoryReactor::new();
    let mut config = ServerConfig::default();
    config.max_send_queue = 64 * 1024;
    config.flood_burst = 10_000;
    config.flood_per_second = 10_000;
    let server = IrcServer::new(config);
    let talker = Client::register(&mr, &server, "talker");
    let reader = Client::register(&mr, &server, "reader");
    let dead = Client::register(&mr, &server, "dead");
    for c in [&talker, &reader, &dead] {
        c.send("JOIN #busy");
        c.take();
    }
    // The dead client's end holds at most 1 KiB unread: the server's writes
    // to it back up in its send queue.
    dead.pair.set_capacity(1024);
    let text = "x".repeat(300);
    for i in 0..1000 {
        talker
            .pair
            .client()
            .write(format!("PRIVMSG #busy :{i} {text}\r\n").as_bytes());
    }
    talker.pair.pump();
    reader.pair.pump();
    let got = reader.take();
    assert_eq!(
        got.iter().filter(|l| l.contains("PRIVMSG #busy")).count(),
        1000,
        "the reader got everything"
    );
    assert!(
        got.iter()
            .any(|l| l.starts_with(":dead!") && l.contains("QUIT")),
        "the dead client was dropped"
    );
    let mut left = server.members("#busy");
    left.sort();
    assert_eq!(left, vec!["reader", "talker"]);
}
