#![cfg(unix)]
//! braid's distributed web (Twisted's web.distrib) with braid on both
//! sides, over real Unix sockets: bodies past banana's 640 KiB limit
//! both ways, flow control end to end, a publisher that is down, dies or
//! stops answering, hostile PB input, and user directories. Twisted on
//! either side is tested in the CLI's tests (`cli/tests/distrib.rs`).

mod support;

use std::path::{Path, PathBuf};

use braid::testing::FakeClock;
use braid_pb::{Args, Object, PbClientFactory, PbError, PbServerFactory, Value};
use braid_web::distrib::{
    Publisher, PublisherAddress, Subscription, SubscriptionConfig, UserDirectory, NOT_DONE_YET,
    PIECE, REQUEST_TYPE,
};
use braid_web::Bytes;
use support::*;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("braid-web-distrib-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn unix(p: &Path) -> PublisherAddress {
    PublisherAddress::Unix(p.to_path_buf())
}

fn publish(
    reactor: &Reactor,
    root: impl Resource,
    sock: &Path,
) -> (Publisher, braid::UnixListeningPort) {
    let p = Publisher::new(reactor, Site::new(root));
    let port = reactor.listen_unix(sock, p.factory()).unwrap();
    (p, port)
}

fn front(reactor: &Reactor, sub: &Subscription) -> SocketAddr {
    serve(reactor, Tree::new().child("d", sub.clone())).1
}

/// A body of `n` bytes, different at every offset.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i / 251) as u8).collect()
}

fn sum(b: &[u8]) -> u64 {
    b.iter().enumerate().fold(0u64, |s, (i, &x)| {
        s.wrapping_mul(31).wrapping_add(x as u64 ^ i as u64)
    })
}

#[test]
fn large_bodies_go_both_ways_in_pieces() {
    let reactor = Reactor::new().unwrap();
    let dir = scratch("large");
    let sock = dir.join("p.sock");
    let pieces = Rc::new(Cell::new(0usize));
    let p2 = pieces.clone();
    let (publisher, _port) = publish(
        &reactor,
        FnResource::leaf(move |mut req: Request| {
            let pieces = p2.clone();
            Reply::later(async move {
                if req.method() == Method::GET {
                    // A 3 MB answer, in one piece: the publisher splits it.
                    return Response::with_content("application/octet-stream", pattern(3 << 20));
                }
                let mut body = req.take_body();
                let mut got = Vec::new();
                while let Some(c) = body.chunk().await {
                    got.extend_from_slice(&c.unwrap());
                    pieces.set(pieces.get() + 1);
                }
                Response::text(format!("{} {}", got.len(), sum(&got)))
                    .header("x-path", req.postpath().join("/"))
            })
        }),
        &sock,
    );
    let sub = Subscription::new(&reactor, unix(&sock));
    let addr = front(&reactor, &sub);
    let agent = Agent::new(&reactor);
    let sent = pattern(3 * 1024 * 1024 + 17);
    let want = format!("{} {}", sent.len(), sum(&sent));
    let url = format!("http://{addr}/d/up/load");
    let (status, path, text) = block(&reactor, {
        let agent = agent.clone();
        let sent = sent.clone();
        async move {
            let r = agent
                .request_async(Method::POST, &url, HeaderMap::new(), Body::from(sent))
                .await
                .unwrap();
            let path = r.header("x-path").map(str::to_owned);
            (r.status(), path, r.text(1 << 20).await.unwrap())
        }
    });
    assert_eq!(status, StatusCode::OK);
    assert_eq!(path.as_deref(), Some("up/load"));
    assert_eq!(text, want, "the body arrived changed");
    // It came in more pieces than banana could carry in one.
    assert!(pieces.get() > sent.len() / PIECE, "{} pieces", pieces.get());

    let url = format!("http://{addr}/d/down");
    let got = block(&reactor, async move {
        let r = agent.get(&url).await.unwrap();
        assert_eq!(r.header("content-length"), Some("3145728"));
        r.bytes(8 << 20).await.unwrap()
    });
    assert!(got[..] == pattern(3 << 20)[..], "the 3 MB answer differs");
    assert_eq!(publisher.requests_served(), 2);
    assert_eq!(sub.connections(), 1, "one connection for both");
    assert_eq!(sub.in_flight(), 0);
}

#[test]
fn a_publisher_down_gives_503_and_the_next_request_reconnects() {
    let reactor = Reactor::new().unwrap();
    let dir = scratch("down");
    let sock = dir.join("p.sock");
    let sub = Subscription::new(&reactor, unix(&sock));
    let addr = front(&reactor, &sub);
    let agent = Agent::new(&reactor);
    let url = format!("http://{addr}/d/x");
    let get = |agent: &Agent| {
        let agent = agent.clone();
        let url = url.clone();
        block(&reactor, async move {
            let r = agent.get(&url).await.unwrap();
            (r.status(), r.text(1 << 16).await.unwrap())
        })
    };
    let (status, text) = get(&agent);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("Unable to connect"), "{text}");
    let (_p, _port) = publish(
        &reactor,
        FnResource::leaf(|_| Response::text("up\n")),
        &sock,
    );
    assert_eq!(get(&agent), (StatusCode::OK, "up\n".to_owned()));
    assert!(sub.is_connected());
    // The refused attempt and the one that worked; the next request
    // reuses the connection.
    assert_eq!(get(&agent), (StatusCode::OK, "up\n".to_owned()));
    assert_eq!(sub.connections(), 2);
}

/// A PB server standing in for a publisher that misbehaves: `on_request`
/// gets the front's remote request object and the broker.
fn fake_publisher(
    reactor: &Reactor,
    sock: &Path,
    on_request: impl Fn(braid_pb::RemoteReference, braid_pb::Broker) + 'static,
) -> braid::UnixListeningPort {
    let root = Object::builder()
        .method("request", move |caller, args| {
            let Some(Value::Copy(t, state)) = args.positional.first() else {
                return Err(PbError::value_error("no copy"));
            };
            assert_eq!(t, REQUEST_TYPE);
            let Value::Dict(items) = &**state else {
                return Err(PbError::value_error("no dict"));
            };
            let remote = items
                .iter()
                .find(|(k, _)| k.as_str() == Some("remote"))
                .and_then(|(_, v)| v.as_remote().cloned())
                .unwrap();
            on_request(remote, caller.broker().clone());
            Ok(Value::Int(NOT_DONE_YET))
        })
        .build();
    let factory = PbServerFactory::new(root)
        .copy_types(braid_pb::CopyTypes::default().register(REQUEST_TYPE));
    reactor.listen_unix(sock, factory).unwrap()
}

/// Sends a request and reads the whole answer on a thread, while the
/// reactor runs and `tick` is called between iterations.
fn raw_exchange(reactor: &Reactor, addr: SocketAddr, path: &str, mut tick: impl FnMut()) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let _ = tx.send(String::from_utf8_lossy(&out).into_owned());
    });
    let mut answer = None;
    run_until(reactor, Duration::from_secs(60), || {
        tick();
        if let Ok(a) = rx.try_recv() {
            answer = Some(a);
        }
        answer.is_some()
    })
    .unwrap();
    answer.unwrap()
}

#[test]
fn a_publisher_that_dies_gives_502_before_the_response_and_a_cut_one_after() {
    let reactor = Reactor::new().unwrap();
    let dir = scratch("dies");
    let before = dir.join("before.sock");
    let _a = fake_publisher(&reactor, &before, |_, broker| broker.disconnect());
    let sub = Subscription::new(&reactor, unix(&before));
    let addr = front(&reactor, &sub);
    let a = raw_exchange(&reactor, addr, "/d/x", || {});
    assert!(a.starts_with("HTTP/1.1 502"), "{a}");
    assert!(a.contains("connection was lost"), "{a}");

    let after = dir.join("after.sock");
    let _b = fake_publisher(&reactor, &after, |remote, broker| {
        drop(remote.call_remote("setResponseCode", Args::new(vec![Value::Int(200)])));
        drop(remote.call_remote("write", Args::new(vec![Value::bytes("partial")])));
        // Gone before the answer of that write is back.
        let b = broker.clone();
        remote
            .call_remote(
                "setHeader",
                Args::new(vec![Value::bytes("x"), Value::bytes("y")]),
            )
            .add_both(move |_| {
                b.disconnect();
                Ok::<(), PbError>(())
            });
    });
    let sub = Subscription::new(&reactor, unix(&after));
    let addr = front(&reactor, &sub);
    let a = raw_exchange(&reactor, addr, "/d/x", || {});
    // The connection ends without the last chunk, after what was flushed
    // before the cut (often nothing, this fast): never a whole response.
    if !a.is_empty() {
        assert!(a.starts_with("HTTP/1.1 200"), "{a}");
        assert!(a.contains("transfer-encoding: chunked"), "{a}");
    }
    assert!(
        !a.ends_with("0\r\n\r\n"),
        "the cut response looks whole: {a:?}"
    );
    assert_eq!(sub.in_flight(), 0);
}

#[test]
fn a_publisher_that_stops_answering_times_out_on_the_reactors_clock() {
    let clock = FakeClock::new();
    let reactor = Reactor::with_clock(clock.clone()).unwrap();
    let dir = scratch("silent");
    let silent = dir.join("silent.sock");
    let asked = Rc::new(Cell::new(0));
    let a2 = asked.clone();
    let _a = fake_publisher(&reactor, &silent, move |remote, _| {
        a2.set(a2.get() + 1);
        // Keep the reference, say nothing.
        std::mem::forget(remote);
    });
    let config = SubscriptionConfig {
        response_timeout: Duration::from_secs(30),
        ..SubscriptionConfig::default()
    };
    let sub = Subscription::with_config(&reactor, unix(&silent), config.clone());
    let addr = front(&reactor, &sub);
    let mut advanced = false;
    let a = raw_exchange(&reactor, addr, "/d/x", || {
        if asked.get() == 1 && !advanced {
            advanced = true;
            clock.advance(Duration::from_secs(31));
        }
    });
    assert!(a.starts_with("HTTP/1.1 504"), "{a}");
    assert!(a.contains("stopped answering"), "{a}");

    // Mid-response: the head and a piece, then silence.
    let midway = dir.join("midway.sock");
    let asked = Rc::new(Cell::new(0));
    let a2 = asked.clone();
    let _b = fake_publisher(&reactor, &midway, move |remote, _| {
        a2.set(a2.get() + 1);
        drop(remote.call_remote("write", Args::new(vec![Value::bytes("partial")])));
        std::mem::forget(remote);
    });
    let sub = Subscription::with_config(&reactor, unix(&midway), config);
    let addr = front(&reactor, &sub);
    let mut advanced = false;
    let a = raw_exchange(&reactor, addr, "/d/x", || {
        if asked.get() == 1 && !advanced && sub.in_flight() == 1 {
            advanced = true;
            // Before the timeout nothing happens; after it, the cut.
            clock.advance(Duration::from_secs(29));
        } else if advanced && sub.in_flight() == 1 {
            clock.advance(Duration::from_secs(2));
        }
    });
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");
    assert!(a.contains("partial") && !a.ends_with("0\r\n\r\n"), "{a:?}");
}

#[test]
fn a_client_that_does_not_read_holds_the_publisher_back() {
    let reactor = Reactor::new().unwrap();
    let dir = scratch("flow");
    let sock = dir.join("p.sock");
    let produced = Rc::new(Cell::new(0usize));
    let stopped = Rc::new(Cell::new(false));
    let (p2, s2) = (produced.clone(), stopped.clone());
    let (_p, _port) = publish(
        &reactor,
        FnResource::leaf(move |req: Request| {
            let (response, w) = Response::streaming("application/octet-stream");
            let (produced, stopped) = (p2.clone(), s2.clone());
            drop(req.reactor().spawn_local(async move {
                // Endless, as fast as it is taken.
                let piece = Bytes::from(vec![7u8; 64 * 1024]);
                while w.send(piece.clone()).await.is_ok() {
                    produced.set(produced.get() + piece.len());
                }
                stopped.set(true);
            }));
            response
        }),
        &sock,
    );
    let sub = Subscription::new(&reactor, unix(&sock));
    let addr = front(&reactor, &sub);
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .write_all(b"GET /d/endless HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Run until production stops growing: it must, with nothing read.
    let mut last = 0;
    let mut still = 0;
    run_until(&reactor, Duration::from_secs(60), || {
        let now = produced.get();
        if now > 0 && now == last {
            still += 1;
        } else {
            still = 0;
        }
        last = now;
        still > 20
    })
    .unwrap();
    let held = produced.get();
    // Kernel buffers on the HTTP side and each side's queues; not the
    // endless body.
    assert!(
        held < 48 << 20,
        "{held} bytes produced for a client that reads nothing"
    );
    // Reading lets it go on; a client that leaves stops the publisher's
    // producer.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0;
        while read < 8 << 20 {
            read += client.read(&mut buf).unwrap();
        }
        drop(client);
        let _ = tx.send(read);
    });
    let mut read = 0;
    run_until(&reactor, Duration::from_secs(60), || {
        read = rx.try_recv().unwrap_or(read);
        read > 0
    })
    .unwrap();
    assert!(
        produced.get() > held,
        "reading did not let the publisher go on"
    );
    run_until(&reactor, Duration::from_secs(30), || stopped.get()).unwrap();
    run_until(&reactor, Duration::from_secs(30), || sub.in_flight() == 0).unwrap();
}

#[test]
fn hostile_pb_input_leaves_the_publisher_serving() {
    let reactor = Reactor::new().unwrap();
    let dir = scratch("hostile");
    let sock = dir.join("p.sock");
    let (publisher, _port) = publish(
        &reactor,
        FnResource::leaf(|_| Response::text("fine\n")),
        &sock,
    );

    // Garbage, and a banana string that claims 100 MB: the connection is
    // closed, nothing is allocated for it.
    for junk in [
        &b"\xff\xff\xff\xff\x85garbage"[..],
        &[0x7f, 0x7f, 0x7f, 0x7f, 0x82][..],
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(junk).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            let _ = tx.send(out.len());
        });
        let mut closed = false;
        run_until(&reactor, Duration::from_secs(20), || {
            closed = closed || rx.try_recv().is_ok();
            closed
        })
        .unwrap();
    }

    // Well-formed PB, wrong requests: typed errors back.
    let client = PbClientFactory::new();
    let root = client.root_object();
    reactor.connect_unix(&sock, client, None);
    let root = braid::testing::run_until_fired(&reactor, Duration::from_secs(20), root)
        .unwrap()
        .unwrap();
    let call = |args: Vec<Value>| {
        braid::testing::run_until_fired(
            &reactor,
            Duration::from_secs(20),
            root.call_remote("request", Args::new(args)),
        )
        .unwrap()
    };
    let e = call(vec![Value::Int(3)]).unwrap_err();
    assert!(e.is_a("builtins.TypeError"), "{e:?}");
    let e = call(vec![Value::Copy(
        REQUEST_TYPE.into(),
        Box::new(Value::Dict(vec![])),
    )])
    .unwrap_err();
    assert!(e.value.contains("no \"method\""), "{e:?}");
    let e = call(vec![Value::Copy(
        REQUEST_TYPE.into(),
        Box::new(Value::Dict(vec![
            (Value::str("method"), Value::bytes("GET")),
            (Value::str("uri"), Value::bytes("/\u{7f} x")),
        ])),
    )])
    .unwrap_err();
    assert!(e.value.contains("uri"), "{e:?}");
    assert_eq!(publisher.requests_served(), 0);

    // And it still serves a front.
    let sub = Subscription::new(&reactor, unix(&sock));
    let addr = front(&reactor, &sub);
    let a = raw_exchange(&reactor, addr, "/d/ok", || {});
    assert!(
        a.starts_with("HTTP/1.1 200") && a.ends_with("fine\n"),
        "{a}"
    );
    assert_eq!(publisher.requests_served(), 1);
}

#[test]
fn user_directories_serve_publishers_and_public_html() {
    let reactor = Reactor::new().unwrap();
    let dir = scratch("users");
    let homes = dir.clone();
    std::fs::create_dir_all(dir.join("alice/public_html")).unwrap();
    std::fs::write(dir.join("alice/public_html/index.html"), "alice's page\n").unwrap();
    std::fs::create_dir_all(dir.join("bob")).unwrap();
    std::fs::create_dir_all(dir.join("carol")).unwrap();
    let (_p, _port) = publish(
        &reactor,
        FnResource::leaf(|req: Request| {
            Response::text(format!("bob's publisher: /{}\n", req.postpath().join("/")))
        }),
        &dir.join("bob/.braid-web.sock"),
    );
    let users = UserDirectory::new(&reactor)
        .user_database(move |u| {
            ["alice", "bob", "carol"]
                .contains(&u)
                .then(|| homes.join(u))
        })
        .then(Some(Rc::new(FnResource::leaf(|_| {
            Response::text("the main site\n")
        }))));
    let (_, addr) = serve(&reactor, Tree::new().fallback(users));
    let get = |path: &str| raw_exchange(&reactor, addr, path, || {});
    let a = get("/~alice/");
    assert!(
        a.starts_with("HTTP/1.1 200") && a.ends_with("alice's page\n"),
        "{a}"
    );
    let a = get("/~bob/a/b");
    assert!(a.ends_with("bob's publisher: /a/b\n"), "{a}");
    let a = get("/%7Ebob/c");
    assert!(a.ends_with("bob's publisher: /c\n"), "{a}");
    // No site of her own, no such user, a name that is not one: the main
    // site's say.
    for path in ["/~carol/", "/~dave/", "/~../etc/passwd", "/other"] {
        let a = get(path);
        assert!(a.ends_with("the main site\n"), "{path}: {a}");
    }
    let a = get("/");
    assert!(a.ends_with("the main site\n"), "{a}");
}
