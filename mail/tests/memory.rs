//! braid's client against braid's server over the in-memory transport:
//! whole and one byte at a time, plain and over STARTTLS, and a delivery
//! that stalls (backpressure keeps memory bounded).

use std::cell::RefCell;
use std::rc::Rc;

use braid::aio::{Stream, StreamProtocol};
use braid::testing::{connected_pair, MemoryReactor, Pair};
use braid::Deferred;
use braid_mail::client::{send_over, ClientConfig, SendErrorKind, Sent, TlsPolicy};
use braid_mail::server::{serve, Delivery, Envelope, Message, Server, SessionConfig, SessionInfo};
use braid_mail::Reply;

type Store = Rc<RefCell<Vec<(Envelope, bool, Vec<u8>)>>>;

/// Stores messages in memory; recipients at example.org only. With a
/// gate, the first write waits for the test to open it.
#[derive(Default)]
struct MemDelivery {
    store: Store,
    gate: RefCell<Option<Deferred<(), braid::Failure>>>,
}

struct MemMessage {
    store: Store,
    env: Envelope,
    tls: bool,
    data: Vec<u8>,
    gate: Option<Deferred<(), braid::Failure>>,
}

impl Delivery for MemDelivery {
    type Message = MemMessage;
    async fn rcpt_to(&self, _: &SessionInfo, _: &Envelope, to: &str) -> Result<(), Reply> {
        if to.ends_with("@example.org") {
            Ok(())
        } else {
            Err(Reply::new(550, [5, 1, 1], "no such user"))
        }
    }
    async fn begin(&self, info: &SessionInfo, env: &Envelope) -> Result<MemMessage, Reply> {
        Ok(MemMessage {
            store: self.store.clone(),
            env: env.clone(),
            tls: info.tls,
            data: Vec::new(),
            gate: self.gate.borrow_mut().take(),
        })
    }
}

impl Message for MemMessage {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Reply> {
        if let Some(g) = self.gate.take() {
            let _ = g.await;
        }
        self.data.extend_from_slice(chunk);
        Ok(())
    }
    async fn commit(self) -> Result<String, Reply> {
        let n = self.store.borrow().len();
        self.store
            .borrow_mut()
            .push((self.env, self.tls, self.data));
        Ok(format!("M{n}"))
    }
    fn abort(self) {}
}

struct Setup {
    mr: MemoryReactor,
    pair: Pair,
    client: Rc<RefCell<Option<Stream>>>,
    store: Store,
}

fn setup(tls: bool, gate: Option<Deferred<(), braid::Failure>>) -> Setup {
    let mr = MemoryReactor::new();
    let reactor = mr.reactor().clone();
    let delivery = MemDelivery::default();
    *delivery.gate.borrow_mut() = gate;
    let store = delivery.store.clone();
    let config = SessionConfig {
        hostname: "mx.example.org".into(),
        ..SessionConfig::default()
    };
    let mut server = Server::new(&reactor, config, delivery);
    if tls {
        server = server.tls(braid_tls::testing::server_config());
    }
    let server = Rc::new(server);
    let r = reactor.clone();
    let client: Rc<RefCell<Option<Stream>>> = Rc::default();
    let c = client.clone();
    let pair = connected_pair(
        &reactor,
        StreamProtocol::new(move |s| drop(r.spawn_local(serve(server, s)))),
        StreamProtocol::new(move |s| *c.borrow_mut() = Some(s)),
    );
    Setup {
        mr,
        pair,
        client,
        store,
    }
}

fn body() -> Vec<u8> {
    let mut m = b"Subject: memory\r\n\r\n.a dot line\r\n..two\r\nbare lf\nend".to_vec();
    for i in 0..3000 {
        m.extend_from_slice(format!("\r\nline {i} .").as_bytes());
    }
    m
}

/// What the server must have stored for `body()`.
fn stored_body() -> Vec<u8> {
    let mut m = String::from_utf8(body())
        .unwrap()
        .replace("bare lf\n", "bare lf\r\n");
    m.push_str("\r\n");
    m.into_bytes()
}

fn run_send(
    s: &Setup,
    config: ClientConfig,
    to: &[&str],
) -> Result<Sent, braid_mail::client::SendError> {
    let reactor = s.mr.reactor().clone();
    let stream = s.client.borrow_mut().take().unwrap();
    let to: Vec<String> = to.iter().map(|t| t.to_string()).collect();
    let msg = body();
    let r = reactor.clone();
    let task = reactor.spawn_local(async move {
        send_over(
            &r,
            stream,
            "localhost",
            &config,
            "me@example.net",
            &to,
            &msg[..],
        )
        .await
    });
    let out: Rc<RefCell<Option<_>>> = Rc::default();
    let o = out.clone();
    drop(reactor.spawn_local(async move { *o.borrow_mut() = Some(task.await.unwrap()) }));
    for _ in 0..2_000_000 {
        if out.borrow().is_some() {
            break;
        }
        if s.pair.pump() == 0 {
            s.mr.advance(std::time::Duration::from_millis(1));
        }
    }
    let r = out.borrow_mut().take().expect("the send finished");
    r
}

#[test]
fn client_and_server_whole_and_byte_by_byte_plain_and_tls() {
    for tls in [false, true] {
        for capacity in [usize::MAX, 1] {
            let s = setup(tls, None);
            s.pair.set_capacity(capacity);
            let config = ClientConfig {
                tls: if tls {
                    TlsPolicy::Required
                } else {
                    TlsPolicy::Opportunistic
                },
                tls_config: braid_tls::testing::client_config(),
                ..ClientConfig::default()
            };
            let sent = run_send(
                &s,
                config,
                &["a@example.org", "nobody@else.net", "b@example.org"],
            )
            .unwrap_or_else(|e| panic!("tls {tls} capacity {capacity}: {e}"));
            assert_eq!(sent.accepted, ["a@example.org", "b@example.org"]);
            assert_eq!(sent.refused.len(), 1);
            assert_eq!(sent.refused[0].1.code(), 550);
            assert_eq!(sent.tls, tls);
            assert_eq!(sent.reply.code(), 250);
            assert!(sent.reply.text().contains("queued as M0"), "{}", sent.reply);
            let store = s.store.borrow();
            assert_eq!(store.len(), 1);
            let (env, over_tls, data) = &store[0];
            assert_eq!(env.from, "me@example.net");
            assert_eq!(env.to, ["a@example.org", "b@example.org"]);
            assert_eq!(*over_tls, tls);
            assert!(
                *data == stored_body(),
                "tls {tls} capacity {capacity}: body differs"
            );
        }
    }
}

#[test]
fn required_tls_fails_cleanly_without_starttls() {
    let s = setup(false, None);
    let config = ClientConfig {
        tls: TlsPolicy::Required,
        ..ClientConfig::default()
    };
    let e = run_send(&s, config, &["a@example.org"]).unwrap_err();
    assert_eq!(e.kind(), SendErrorKind::TlsRequired);
    assert!(!e.is_transient());
    assert!(s.store.borrow().is_empty());
}

#[test]
fn every_recipient_refused() {
    let s = setup(false, None);
    let e = run_send(&s, ClientConfig::default(), &["x@else.net", "y@else.net"]).unwrap_err();
    assert_eq!(e.kind(), SendErrorKind::NoRecipients);
    assert_eq!(e.refused_recipients().len(), 2);
    assert!(s.store.borrow().is_empty());
}

#[test]
fn a_stalled_delivery_stops_the_client_with_memory_bounded() {
    let gate: Deferred<(), braid::Failure> = Deferred::new();
    let resolver = gate.resolver();
    let s = setup(false, Some(gate));
    s.pair.set_capacity(64 * 1024);
    let reactor = s.mr.reactor().clone();
    let stream = s.client.borrow_mut().take().unwrap();
    let client_transport = stream.transport().clone();
    let big: Vec<u8> = (0..12 * 350_000)
        .map(|i| b"abcdefghij\r\n"[i % 12])
        .collect();
    let r = reactor.clone();
    let task = reactor.spawn_local(async move {
        let to = ["a@example.org".to_owned()];
        send_over(
            &r,
            stream,
            "localhost",
            &ClientConfig::default(),
            "me@x",
            &to,
            &big[..],
        )
        .await
    });
    for _ in 0..200 {
        s.pair.pump();
    }
    // The server waits on its delivery: nothing drains, and the 4 MB
    // message sits mostly in the client's input, not in buffers.
    let (to_server, _) = s.pair.in_flight();
    let queued = client_transport.write_buffer_len();
    assert!(to_server <= 64 * 1024, "{to_server}");
    assert!(queued < 512 * 1024, "client transport holds {queued} bytes");
    assert!(s.store.borrow().is_empty());
    resolver.resolve(Ok(()));
    let out: Rc<RefCell<Option<_>>> = Rc::default();
    let o = out.clone();
    drop(reactor.spawn_local(async move { *o.borrow_mut() = Some(task.await.unwrap()) }));
    while out.borrow().is_none() {
        s.pair.pump();
    }
    let sent = out.borrow_mut().take().unwrap().unwrap();
    assert_eq!(sent.reply.code(), 250);
    assert_eq!(s.store.borrow()[0].2.len(), 12 * 350_000);
}

#[test]
fn a_client_that_never_reads_its_replies_fills_no_server_buffer() {
    let s = setup(false, None);
    s.pair.set_capacity(16 * 1024);
    let stream = s.client.borrow_mut().take().unwrap();
    // Pipelined NOOPs, 6 bytes each, each answered with 14: the replies
    // back up once the client stops reading (it never reads).
    stream.transport().pause_reading();
    stream.transport().write(&b"NOOP\r\n".repeat(200_000));
    for _ in 0..2000 {
        s.pair.pump();
    }
    let server_queue = s.pair.server().write_buffer_len();
    assert!(
        server_queue < 256 * 1024,
        "server holds {server_queue} bytes of replies"
    );
    // It is still reading nothing more than it can answer: most of the
    // 1.2 MB of commands wait on the client's side.
    assert!(stream.transport().write_buffer_len() > 600_000);
}

#[test]
fn a_silent_client_gets_421_after_five_minutes_on_the_reactor_clock() {
    let s = setup(false, None);
    let stream = s.client.borrow_mut().take().unwrap();
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let g = got.clone();
    let transport = stream.transport().clone();
    drop(s.mr.reactor().spawn_local(async move {
        use futures_util::AsyncReadExt;
        let mut stream = stream;
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => g.borrow_mut().extend_from_slice(&buf[..n]),
            }
        }
    }));
    s.pair.pump();
    assert!(got.borrow().starts_with(b"220 mx.example.org ESMTP"));
    s.mr.advance(std::time::Duration::from_secs(299));
    s.pair.pump();
    assert!(!String::from_utf8_lossy(&got.borrow()).contains("421"));
    s.mr.advance(std::time::Duration::from_secs(2));
    s.pair.pump();
    let text = String::from_utf8_lossy(&got.borrow()).into_owned();
    assert!(
        text.ends_with("421 4.4.2 mx.example.org Error: timeout exceeded\r\n"),
        "{text}"
    );
    assert!(transport.is_closed() || transport.is_disconnecting());
}

/// A server that knows no EHLO: the client falls back to HELO and sends
/// without extensions (no pipelining, no 8BITMIME).
#[test]
fn the_client_falls_back_to_helo() {
    use braid::{Protocol, Transport};
    #[derive(Default)]
    struct OldServer {
        buf: Vec<u8>,
        data: bool,
        log: Rc<RefCell<Vec<String>>>,
    }
    impl Protocol for OldServer {
        fn connection_made(&mut self, t: &Transport) {
            t.write(b"220 old.example SMTP\r\n");
        }
        fn data_received(&mut self, t: &Transport, d: &[u8]) {
            self.buf.extend_from_slice(d);
            while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line).trim_end().to_owned();
                if self.data {
                    if line == "." {
                        self.data = false;
                        t.write(b"250 stored\r\n");
                    }
                    continue;
                }
                self.log.borrow_mut().push(line.clone());
                let reply: &[u8] = match line.split(' ').next().unwrap_or("") {
                    "EHLO" => b"500 what is EHLO\r\n",
                    "HELO" | "MAIL" | "RCPT" => b"250 ok\r\n",
                    "DATA" => {
                        self.data = true;
                        b"354 go on\r\n"
                    }
                    "QUIT" => b"221 bye\r\n",
                    _ => b"500 eh\r\n",
                };
                t.write(reply);
            }
        }
    }
    let mr = MemoryReactor::new();
    let reactor = mr.reactor().clone();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let client: Rc<RefCell<Option<Stream>>> = Rc::default();
    let c = client.clone();
    let pair = connected_pair(
        &reactor,
        OldServer {
            log: log.clone(),
            ..OldServer::default()
        },
        StreamProtocol::new(move |s| *c.borrow_mut() = Some(s)),
    );
    let stream = client.borrow_mut().take().unwrap();
    let r = reactor.clone();
    let task = reactor.spawn_local(async move {
        let to = ["x@old.example".to_owned()];
        send_over(
            &r,
            stream,
            "old.example",
            &ClientConfig::default(),
            "me@x",
            &to,
            &b"hi\r\n"[..],
        )
        .await
    });
    let out: Rc<RefCell<Option<_>>> = Rc::default();
    let o = out.clone();
    drop(reactor.spawn_local(async move { *o.borrow_mut() = Some(task.await.unwrap()) }));
    while out.borrow().is_none() {
        pair.pump();
    }
    let sent = out.borrow_mut().take().unwrap().unwrap();
    assert_eq!(sent.reply.text(), "stored");
    assert!(!sent.tls);
    assert_eq!(
        *log.borrow(),
        [
            "EHLO localhost",
            "HELO localhost",
            "MAIL FROM:<me@x>",
            "RCPT TO:<x@old.example>",
            "DATA",
            "QUIT"
        ]
    );
}

#[test]
fn auth_goes_through_cred_and_repeated_failures_are_throttled() {
    use braid_cred::{InMemoryChecker, Portal};
    let mr = MemoryReactor::new();
    let reactor = mr.reactor().clone();
    let config = SessionConfig {
        auth_without_tls: true,
        ..SessionConfig::default()
    };
    let portal = Portal::new(&reactor, |_: &str, _: ()| ((), None))
        .checker(InMemoryChecker::new().user("alice", "secret"));
    let server = Rc::new(Server::new(&reactor, config, MemDelivery::default()).auth(portal));
    let r = reactor.clone();
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let g = got.clone();
    struct Collect(Rc<RefCell<Vec<u8>>>);
    impl braid::Protocol for Collect {
        fn data_received(&mut self, _: &braid::Transport, d: &[u8]) {
            self.0.borrow_mut().extend_from_slice(d);
        }
    }
    let pair = connected_pair(
        &reactor,
        StreamProtocol::new(move |s| drop(r.spawn_local(serve(server, s)))),
        Collect(g),
    );
    let client = pair.client();
    let ask = |line: &[u8]| {
        got.borrow_mut().clear();
        client.write(line);
        pair.pump();
        String::from_utf8_lossy(&got.borrow()).into_owned()
    };
    pair.pump();
    assert!(ask(b"EHLO c\r\n").contains("AUTH PLAIN LOGIN"));
    // "\0alice\0wrong" and "\0alice\0secret".
    for _ in 0..5 {
        assert!(ask(b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n").starts_with("535 5.7.8"));
    }
    // Blocked now: even the right password fails, for a while.
    assert!(ask(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n").starts_with("535 5.7.8"));
    mr.advance(braid_cred::BLOCK_FOR + std::time::Duration::from_secs(1));
    assert!(ask(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n").starts_with("235 2.7.0"));
}
