//! The IRC client against braid's IRC server in memory, and fed a server
//! transcript byte by byte.

use std::cell::RefCell;
use std::rc::Rc;

use braid::testing::{connected_pair, MemoryReactor, Pair, StringTransport};
use braid::{Address, Factory, Protocol};
use braid_irc::{ClientConfig, IrcClient, IrcEvent, IrcServer, ServerConfig, MAX_TEXT};

type Events = Rc<RefCell<Vec<IrcEvent>>>;

fn client(nick: &str, join: Option<&'static str>) -> (IrcClient, Events) {
    let events = Events::default();
    let e = events.clone();
    let c = IrcClient::new(ClientConfig::new(nick), move |client, event| {
        if let (IrcEvent::Registered { .. }, Some(ch)) = (&event, join) {
            client.join(ch); // the handler may call the client
        }
        e.borrow_mut().push(event);
    });
    (c, events)
}

fn connect(mr: &MemoryReactor, server: &IrcServer, c: &IrcClient) -> Pair {
    let sp = server
        .factory()
        .build_protocol(&Address::Memory("c".into()))
        .unwrap();
    let pair = connected_pair(mr.reactor(), sp, c.protocol());
    pair.pump();
    pair
}

fn pump(pairs: &[&Pair]) {
    for _ in 0..4 {
        for p in pairs {
            p.pump();
        }
    }
}

#[test]
fn a_conversation_with_member_lists_kept_current() {
    let mr = MemoryReactor::new();
    let server = IrcServer::new(ServerConfig::default());
    let (ann, ann_events) = client("ann", Some("#braid"));
    let (ben, ben_events) = client("ben", Some("#braid"));
    let pa = connect(&mr, &server, &ann);
    let pb = connect(&mr, &server, &ben);
    pump(&[&pa, &pb]);
    assert!(ann.is_registered() && ben.is_registered());
    assert_eq!(ann.members("#braid"), vec!["ann", "ben"]);
    assert_eq!(ben.members("#braid"), vec!["ann", "ben"]);
    assert!(ben_events.borrow().contains(&IrcEvent::Members {
        channel: "#braid".into(),
        members: vec!["ann".into(), "ben".into()]
    }));

    ann.say("#braid", "hello ben");
    ann.action("#braid", "waves");
    ann.notice("ben", "psst");
    ann.set_topic("#braid", "Twisted in Rust");
    pump(&[&pa, &pb]);
    let evs = ben_events.borrow().clone();
    assert!(evs.contains(&IrcEvent::Message {
        from: "ann".into(),
        target: "#braid".into(),
        text: "hello ben".into()
    }));
    assert!(evs.contains(&IrcEvent::Action {
        from: "ann".into(),
        target: "#braid".into(),
        text: "waves".into()
    }));
    assert!(evs.contains(&IrcEvent::Notice {
        from: "ann".into(),
        target: "ben".into(),
        text: "psst".into()
    }));
    assert_eq!(ben.topic("#braid").as_deref(), Some("Twisted in Rust"));

    ben.set_nick("benjamin");
    pump(&[&pa, &pb]);
    assert_eq!(ben.nick(), "benjamin");
    assert_eq!(ann.members("#braid"), vec!["ann", "benjamin"]);
    ben.quit("bye");
    pump(&[&pa, &pb]);
    assert_eq!(ann.members("#braid"), vec!["ann"]);
    assert!(ann_events.borrow().iter().any(|e| matches!(e, IrcEvent::Quit { nick, channels, .. } if nick == "benjamin" && channels == &vec!["#braid".to_string()])));
    assert!(matches!(
        ben_events.borrow().last(),
        Some(IrcEvent::Disconnected { .. })
    ));
}

#[test]
fn nick_in_use_is_retried_and_errors_are_typed() {
    let mr = MemoryReactor::new();
    let server = IrcServer::new(ServerConfig::default());
    let (first, _) = client("ann", None);
    let (second, events) = client("ann", None);
    let p1 = connect(&mr, &server, &first);
    let p2 = connect(&mr, &server, &second);
    pump(&[&p1, &p2]);
    assert_eq!(second.nick(), "ann_");
    let evs = events.borrow().clone();
    assert!(evs.contains(&IrcEvent::NickInUse {
        tried: "ann".into(),
        next: "ann_".into()
    }));
    assert!(evs.contains(&IrcEvent::Registered {
        nick: "ann_".into()
    }));
    second.say("nobody", "hello?");
    pump(&[&p2]);
    assert!(
        events
            .borrow()
            .iter()
            .any(|e| matches!(e, IrcEvent::ServerError { code: 401, .. })),
        "{:?}",
        events.borrow()
    );
}

#[test]
fn long_and_multiline_text_goes_as_several_messages_never_broken() {
    let mr = MemoryReactor::new();
    let server = IrcServer::new(ServerConfig::default());
    let (ann, _) = client("ann", Some("#c"));
    let (ben, ben_events) = client("ben", Some("#c"));
    let pa = connect(&mr, &server, &ann);
    let pb = connect(&mr, &server, &ben);
    pump(&[&pa, &pb]);
    let long = "ünïcödé ".repeat(200); // 2,600 bytes
    ann.say("#c", &format!("{long}\nand a second line"));
    pump(&[&pa, &pb]);
    let texts: Vec<String> = ben_events
        .borrow()
        .iter()
        .filter_map(|e| match e {
            IrcEvent::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert!(texts.len() >= 8, "{}", texts.len());
    assert!(texts.iter().all(|t| t.len() <= MAX_TEXT));
    assert_eq!(texts.last().unwrap(), "and a second line");
    let rejoined = texts[..texts.len() - 1].join(" ");
    assert_eq!(rejoined.split_whitespace().count(), 200);
}

#[test]
fn the_client_gives_the_same_events_fed_byte_by_byte() {
    let transcript = ":srv 433 * ann :Nickname is already in use\r\n\
        :srv 001 ann_ :Welcome\r\n\
        PING :xyz\r\n\
        :ann_!a@h JOIN #braid\r\n\
        :srv 332 ann_ #braid :the topic\r\n\
        :srv 353 ann_ = #braid :ann_ @op +voiced\r\n\
        :srv 366 ann_ #braid :End\r\n\
        :op!o@h PRIVMSG #braid :\x01ACTION smiles\x01\r\n\
        :op!o@h NICK operator\r\n\
        :voiced!v@h PART #braid :later\r\n\
        :operator!o@h KICK #braid ann_ :out\r\n";
    let mut runs = Vec::new();
    for chunk in [0usize, 1, 5] {
        let (c, events) = client("ann", None);
        let st = StringTransport::new();
        let mut p = c.protocol();
        p.connection_made(&st.transport());
        braid::testing::feed_in_chunks(&mut p, &st.transport(), transcript.as_bytes(), chunk);
        runs.push((
            events.borrow().clone(),
            String::from_utf8(st.value()).unwrap(),
        ));
    }
    assert!(runs.windows(2).all(|w| w[0] == w[1]));
    let (events, sent) = &runs[0];
    assert!(
        sent.starts_with("NICK ann\r\nUSER ann 0 * ann\r\nNICK ann_\r\n"),
        "{sent:?}"
    );
    assert!(sent.contains("PONG xyz"), "{sent:?}");
    assert!(events.contains(&IrcEvent::Members {
        channel: "#braid".into(),
        members: vec!["ann_".into(), "op".into(), "voiced".into()]
    }));
    assert!(events.contains(&IrcEvent::Action {
        from: "op".into(),
        target: "#braid".into(),
        text: "smiles".into()
    }));
    assert!(events.contains(&IrcEvent::Kicked {
        channel: "#braid".into(),
        nick: "ann_".into(),
        by: "operator".into(),
        reason: Some("out".into())
    }));
}
