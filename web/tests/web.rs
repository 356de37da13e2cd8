//! braid's web server over real loopback sockets (and the in-memory
//! transport): the Site and its resource tree, deferred and streamed
//! responses, keep-alive and pipelining, timeouts on the fake clock, the
//! access log, upgrades, Unix sockets. The Agent is in `agent.rs`, static
//! files and proxies in `files_and_proxies.rs`.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use braid::testing::Pair;
use support::*;

#[test]
fn the_tree_routes_by_segment_and_leaves_take_the_rest() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let root = Tree::new().index(FnResource::new(text("home\n"))).child(
        "api",
        Tree::new()
            .child("hello", FnResource::new(text("hello\n")))
            .child(
                "echo",
                FnResource::leaf(|req: Request| {
                    Response::text(format!(
                        "pre={} post={} q={:?}\n",
                        req.prepath().join("/"),
                        req.postpath().join("/"),
                        req.arg("q")
                    ))
                }),
            ),
    );
    let (_site, addr) = serve(&reactor, root);
    let agent = Agent::new(&reactor);
    let a = agent.clone();
    let got = block(&reactor, async move {
        let mut out = Vec::new();
        for path in [
            "/",
            "/api/hello",
            "/api/echo/a/b%20c?q=x+y",
            "/api/nope",
            "/api/hello/deeper",
            "/api",
        ] {
            let r = a.get(&format!("http://{addr}{path}")).await.unwrap();
            let status = r.status().as_u16();
            out.push((status, r.text(1024).await.unwrap()));
        }
        out
    });
    assert_eq!(got[0], (200, "home\n".into()));
    assert_eq!(got[1], (200, "hello\n".into()));
    assert_eq!(
        got[2],
        (200, "pre=api/echo post=a/b c q=Some(\"x y\")\n".into())
    );
    assert_eq!(got[3].0, 404);
    assert_eq!(got[4].0, 404, "a non-leaf does not take deeper paths");
    assert_eq!(
        got[5].0, 404,
        "a tree without an index is 404 at its own path"
    );
    assert_eq!(
        agent.connections_made(),
        1,
        "six requests over one kept-alive connection"
    );
}

#[test]
fn deferred_and_future_responses_and_panics() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let r = reactor.clone();
    let r2 = reactor.clone();
    let root = Tree::new()
        .child(
            "deferred",
            FnResource::new(move |_| {
                let d: Deferred<Response, braid::Failure> = Deferred::new();
                let res = d.resolver();
                r.call_later(Duration::from_millis(5), move || {
                    res.callback(Response::text("later\n"))
                });
                Reply::deferred(d)
            }),
        )
        .child(
            "failed",
            FnResource::new(|_| {
                Reply::deferred(Deferred::<Response, braid::Failure>::fail(
                    braid::Failure::timed_out(),
                ))
            }),
        )
        .child(
            "future",
            FnResource::new(move |_| {
                let r = r2.clone();
                Reply::later(async move {
                    r.sleep(Duration::from_millis(5)).await;
                    Response::new(StatusCode::CREATED).body("made\n")
                })
            }),
        )
        .child(
            "panic",
            FnResource::new(|_| -> Response { panic!("deliberate") }),
        );
    let (_site, addr) = serve(&reactor, root);
    let agent = Agent::new(&reactor);
    let got = block(&reactor, async move {
        let mut out = Vec::new();
        for p in ["deferred", "failed", "future", "panic", "deferred"] {
            let r = agent.get(&format!("http://{addr}/{p}")).await.unwrap();
            out.push((r.status().as_u16(), r.text(100).await.unwrap()));
        }
        out
    });
    assert_eq!(got[0], (200, "later\n".into()));
    assert_eq!(got[1].0, 500);
    assert_eq!(got[2], (201, "made\n".into()));
    assert_eq!(
        got[3].0, 500,
        "a panicking resource is a 500, not a dead server"
    );
    assert_eq!(got[4], (200, "later\n".into()));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let r = reactor.clone();
    // The first request is the slowest: its answer must still come first.
    let root = FnResource::leaf(move |req: Request| {
        let n: u64 = req.postpath()[0].parse().unwrap();
        let r = r.clone();
        Reply::later(async move {
            r.sleep(Duration::from_millis(30 - n * 10)).await;
            Response::text(format!("answer {n}\n"))
        })
    });
    let (_site, addr) = serve(&reactor, root);
    let out = with_client(&reactor, move || {
        raw(
            addr,
            b"GET /0 HTTP/1.1\r\nHost: a\r\n\r\nGET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            "answer 2\n",
        )
    });
    let a0 = out.find("answer 0").unwrap();
    let a1 = out.find("answer 1").unwrap();
    let a2 = out.find("answer 2").unwrap();
    assert!(a0 < a1 && a1 < a2, "{out}");
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 3);
}

#[test]
fn a_streamed_response_waits_for_a_slow_reader() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    const TOTAL: usize = 16 << 20;
    let peak = Rc::new(Cell::new(0usize));
    let written = Rc::new(Cell::new(0usize));
    let (p, w) = (peak.clone(), written.clone());
    let root = FnResource::new(move |req: Request| {
        let (resp, writer) = Response::streaming("application/octet-stream");
        let (p, w) = (p.clone(), w.clone());
        drop(req.reactor().spawn_local(async move {
            let mut sent = 0usize;
            let chunk = vec![7u8; 16 * 1024];
            while sent < TOTAL {
                if writer.send(chunk.clone()).await.is_err() {
                    return;
                }
                sent += chunk.len();
                w.set(sent);
                p.set(p.get().max(writer.queued()));
            }
            writer.finish();
        }));
        resp
    });
    let (_site, addr) = serve(&reactor, root);
    let (tx, rx) = mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        // Read nothing until the server has had time to fill every buffer.
        rx.recv().unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 65536];
        let mut head_done = false;
        let mut acc = Vec::new();
        loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            if !head_done {
                acc.extend_from_slice(&buf[..n]);
                if let Some(i) = acc.windows(4).position(|w| w == b"\r\n\r\n") {
                    head_done = true;
                    // Chunked: count payload bytes roughly by 7s.
                    total += acc[i + 4..].iter().filter(|&&b| b == 7).count();
                }
            } else {
                total += buf[..n].iter().filter(|&&b| b == 7).count();
            }
            if buf[..n].ends_with(b"0\r\n\r\n") {
                return total;
            }
        }
    });
    // While the client is not reading, the producer must stall well short
    // of the total.
    run_until(&reactor, Duration::from_secs(10), || written.get() > 0).unwrap();
    let mut stalled_at = 0;
    for _ in 0..50 {
        reactor.iterate(Duration::from_millis(10)).unwrap();
        stalled_at = written.get();
    }
    assert!(
        stalled_at < TOTAL / 2,
        "the producer ran ahead: {stalled_at} bytes written"
    );
    assert!(
        peak.get() <= braid_web::WRITER_HIGH_WATER + 16 * 1024,
        "queued {}",
        peak.get()
    );
    tx.send(()).unwrap();
    let mut total = None;
    run_until(&reactor, Duration::from_secs(60), || {
        if client.is_finished() {
            total = Some(());
        }
        total.is_some()
    })
    .unwrap();
    let got = client.join().unwrap();
    assert_eq!(got, TOTAL, "every byte arrived");
    assert_eq!(written.get(), TOTAL);
}

#[test]
fn request_bodies_stream_in_and_limits_apply() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let root = Tree::new()
        .child(
            "count",
            FnResource::new(|mut req: Request| {
                Reply::later(async move {
                    let mut n = 0usize;
                    let mut sum = 0u64;
                    while let Some(c) = req.body_mut().chunk().await {
                        let c = c.unwrap();
                        n += c.len();
                        sum += c.iter().map(|&b| b as u64).sum::<u64>();
                    }
                    Response::text(format!("{n} {sum}"))
                })
            }),
        )
        .child(
            "small",
            FnResource::new(|mut req: Request| {
                Reply::later(async move {
                    match req.read_body(1000).await {
                        Ok(b) => Response::text(format!("{}", b.len())),
                        Err(BodyError::TooLarge { .. }) => {
                            Response::error(StatusCode::PAYLOAD_TOO_LARGE, "too large")
                        }
                        Err(e) => Response::error(StatusCode::BAD_REQUEST, &e.to_string()),
                    }
                })
            }),
        );
    let (_site, addr) = serve(&reactor, root);
    let agent = Agent::new(&reactor);
    let got = block(&reactor, async move {
        // A streamed (chunked) upload of 3 MB.
        let (body, w) = Body::channel();
        let upload = async move {
            for i in 0..300u32 {
                w.send(vec![(i % 256) as u8; 10_000]).await.unwrap();
            }
            w.finish();
        };
        let url = format!("http://{addr}/count");
        let req = agent.request_async(Method::POST, &url, HeaderMap::new(), body);
        let (resp, ()) = join(req, upload).await;
        let counted = resp.unwrap().text(100).await.unwrap();
        let small = agent
            .request_async(
                Method::POST,
                &format!("http://{addr}/small"),
                HeaderMap::new(),
                vec![1u8; 500].into(),
            )
            .await
            .unwrap();
        let small = (small.status().as_u16(), small.text(100).await.unwrap());
        let big = agent
            .request_async(
                Method::POST,
                &format!("http://{addr}/small"),
                HeaderMap::new(),
                vec![1u8; 5000].into(),
            )
            .await
            .unwrap();
        (counted, small, big.status().as_u16())
    });
    let expect_sum: u64 = (0..300u64).map(|i| (i % 256) * 10_000).sum();
    assert_eq!(got.0, format!("3000000 {expect_sum}"));
    assert_eq!(got.1, (200, "500".into()));
    assert_eq!(got.2, 413);
}

/// A client protocol that records what it receives.
#[derive(Default)]
struct Recorder(Rc<RefCell<Vec<u8>>>, Rc<Cell<bool>>);

impl Protocol for Recorder {
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.0.borrow_mut().extend_from_slice(data);
    }
    fn connection_lost(&mut self, _: &braid::CloseReason) {
        self.1.set(true);
    }
}

fn in_memory_exchange(request: &[u8], piece: usize) -> String {
    let mr = MemoryReactor::new();
    let mut site = Site::new(Tree::new().child(
        "sum",
        FnResource::new(|mut req: Request| {
            Reply::later(async move {
                let b = req.read_body(1 << 20).await.unwrap();
                Response::text(format!(
                    "{} bytes, {}",
                    b.len(),
                    String::from_utf8_lossy(&b)
                ))
            })
        }),
    ));
    let server = site
        .build_protocol(&Address::Memory("client".into()))
        .unwrap();
    let rec = Recorder::default();
    let (got, _closed) = (rec.0.clone(), rec.1.clone());
    let pair = connected_pair(mr.reactor(), server, rec);
    pair.pump();
    let chunks: Vec<&[u8]> = if piece == 0 {
        vec![request]
    } else {
        request.chunks(piece).collect()
    };
    for c in chunks {
        pair.client().write(c);
        pair.pump();
    }
    pair.pump();
    let out = String::from_utf8_lossy(&got.borrow()).into_owned();
    out
}

#[test]
fn over_the_memory_transport_byte_by_byte_and_all_at_once() {
    let req: &[u8] = b"POST /sum HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /missing HTTP/1.1\r\nHost: a\r\n\r\n";
    let whole = in_memory_exchange(req, 0);
    let bytewise = in_memory_exchange(req, 1);
    for out in [&whole, &bytewise] {
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("11 bytes, hello world"), "{out}");
        assert!(out.contains("HTTP/1.1 404 Not Found\r\n"), "{out}");
    }
    // Date headers aside, the two are the same bytes.
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("date:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&whole), strip(&bytewise));
}

#[test]
fn header_body_and_idle_timeouts_run_on_the_fake_clock() {
    let mr = MemoryReactor::new();
    let body_error = Rc::new(RefCell::new(None));
    let be = body_error.clone();
    let config = SiteConfig {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        ..SiteConfig::default()
    };
    let mut site = Site::with_config(
        FnResource::leaf(move |mut req: Request| {
            let be = be.clone();
            Reply::later(async move {
                let r = req.read_body(1000).await;
                *be.borrow_mut() = Some(r.clone());
                Response::text("done")
            })
        }),
        config,
    );
    // 1. A head that never completes: closed after the header timeout.
    let (pair, (_, closed)) = site_conn(&mr, &mut site);
    pair.client().write(b"GET / HTTP/1.1\r\nHost: a\r\n");
    pair.pump();
    mr.advance(Duration::from_secs(9));
    pair.pump();
    assert!(!closed.get(), "closed before the header timeout");
    mr.advance(Duration::from_secs(2));
    pair.pump();
    assert!(closed.get(), "still open after the header timeout");

    // 2. A body that stops: the resource sees TimedOut after 5 s.
    let (pair, _) = site_conn(&mr, &mut site);
    pair.client()
        .write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    pair.pump();
    mr.advance(Duration::from_secs(4));
    pair.pump();
    assert!(body_error.borrow().is_none());
    mr.advance(Duration::from_secs(2));
    pair.pump();
    assert_eq!(*body_error.borrow(), Some(Err(BodyError::TimedOut)));

    // 3. An idle keep-alive connection is closed by the header timeout
    //    (hyper's, which also covers the wait for the next request).
    let (pair, (got, closed)) = site_conn(&mr, &mut site);
    pair.client()
        .write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok");
    pair.pump();
    assert!(String::from_utf8_lossy(&got.borrow()).contains("done"));
    mr.advance(Duration::from_secs(9));
    pair.pump();
    assert!(!closed.get());
    mr.advance(Duration::from_secs(2));
    pair.pump();
    assert!(closed.get(), "an idle keep-alive connection stayed open");
}

#[test]
fn the_idle_timeout_closes_a_connection_whose_peer_stopped_reading() {
    let mr = MemoryReactor::new();
    let config = SiteConfig {
        idle_timeout: Duration::from_secs(20),
        ..SiteConfig::default()
    };
    let mut site = Site::with_config(
        FnResource::new(|_| Response::text(vec![b'x'; 4 << 20])),
        config,
    );
    let (pair, (_, closed)) = site_conn(&mr, &mut site);
    // The client's receive window is tiny and it never reads more.
    pair.set_capacity(1024);
    pair.client().write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    for _ in 0..3 {
        pair.pump_once();
    }
    assert!(!pair.server().is_closed());
    // Second by second: closed once a whole period (20 s) passed with no
    // byte moving, so between 20 and 40 s.
    let mut closed_at = None;
    for t in 1..=60 {
        mr.advance(Duration::from_secs(1));
        if pair.server().is_closed() {
            closed_at = Some(t);
            break;
        }
    }
    let t = closed_at.expect("a stalled connection stayed open");
    assert!((20..=40).contains(&t), "closed after {t} s");
    pair.pump();
    assert!(closed.get(), "the client saw the close");
}

#[test]
fn the_access_log_is_in_combined_log_format() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let b2 = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("braid_web::access=info")
        .with_writer(move || b2.clone())
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_level(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let reactor = Reactor::new().unwrap();
        let (_site, addr) = serve(&reactor, FnResource::leaf(|_| Response::text("12345")));
        with_client(&reactor, move || {
            raw(addr, b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\"ester\r\nReferer: http://r/\r\nConnection: close\r\n\r\n", "12345")
        });
        run_until(&reactor, Duration::from_secs(5), || {
            !buf.0.lock().unwrap().is_empty()
        })
        .unwrap();
    });
    let line = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = line.trim();
    // 127.0.0.1 - - [26/Nov/2026:08:00:00 +0000] "GET /x?y=1 HTTP/1.1" 200 5 "http://r/" "t%22ester"
    let (host, rest) = line.split_once(" - - [").unwrap();
    assert_eq!(host, "127.0.0.1");
    let (date, rest) = rest.split_once("] ").unwrap();
    assert_eq!(date.len(), "26/Nov/2026:08:00:00 +0000".len(), "{date}");
    assert!(date.ends_with(" +0000"));
    assert_eq!(
        rest,
        "\"GET /x?y=1 HTTP/1.1\" 200 5 \"http://r/\" \"t%22ester\""
    );
}

#[test]
fn an_upgrade_hands_the_connection_over() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let root = FnResource::new(|req: Request| {
        if req.header(header::UPGRADE) != Some("echo") {
            return Response::error(StatusCode::BAD_REQUEST, "say Upgrade: echo");
        }
        let r = req.reactor().clone();
        req.on_upgrade(move |up| {
            drop(r.spawn_local(async move {
                // Echo what came with the request, then everything after.
                let t = up.stream.transport().clone();
                t.write(&up.read_buf);
                let mut s = up.stream;
                let mut buf = [0u8; 1024];
                loop {
                    let n = std::future::poll_fn(|cx| {
                        futures_io::AsyncRead::poll_read(std::pin::Pin::new(&mut s), cx, &mut buf)
                    })
                    .await
                    .unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    t.write(&buf[..n]);
                }
            }));
        });
        Response::new(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "echo")
            .header(header::CONNECTION, "upgrade")
    });
    let (_site, addr) = serve(&reactor, root);
    let out = with_client(&reactor, move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nfirst|",
        )
        .unwrap();
        let mut acc = Vec::new();
        let mut buf = [0u8; 1024];
        while !acc.ends_with(b"first|") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            acc.extend_from_slice(&buf[..n]);
        }
        // Not HTTP any more: bytes that would be a malformed request.
        s.write_all(b"\n\n\x00 raw bytes").unwrap();
        while !acc.ends_with(b" raw bytes") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            acc.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&acc).into_owned()
    });
    assert!(
        out.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{out}"
    );
    assert!(
        out.ends_with("\r\n\r\nfirst|\n\n\u{0} raw bytes"),
        "{out:?}"
    );
}

#[test]
#[cfg(unix)]
fn a_site_serves_over_a_unix_socket() {
    use std::os::unix::net::UnixStream;
    let reactor = Reactor::new().unwrap();
    let path = std::env::temp_dir().join(format!("braid-web-{}.sock", std::process::id()));
    let site = Site::new(FnResource::new(|req: Request| {
        Response::text(format!("over {}", req.peer()))
    }));
    let _port = reactor.listen_unix(&path, site).unwrap();
    let p = path.clone();
    let out = with_client(&reactor, move || {
        let mut s = UnixStream::connect(&p).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    });
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.contains("\r\n\r\nover "), "{out}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn closed_connections_leave_no_timers_behind() {
    let reactor = Reactor::new().unwrap();
    let (_site, addr) = serve(&reactor, FnResource::new(text("bye\n")));
    assert_eq!(reactor.next_deadline(), None);
    let out = with_client(&reactor, move || {
        (0..20)
            .map(|_| {
                raw(
                    addr,
                    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                    "bye\n",
                )
            })
            .filter(|r| r.ends_with("bye\n"))
            .count()
    });
    assert_eq!(out, 20);
    // Let the server see every close.
    for _ in 0..20 {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    // No idle watchdog, no header timer left armed: an idle server sleeps.
    assert_eq!(reactor.next_deadline(), None);
}

/// A connection to `site` over the in-memory transport: the pair, what the
/// client received, and whether it has closed.
/// What a client received, and whether it has closed.
type Received = (Rc<RefCell<Vec<u8>>>, Rc<Cell<bool>>);

fn site_conn(mr: &MemoryReactor, site: &mut Site) -> (Pair, Received) {
    let rec = Recorder::default();
    let (got, closed) = (rec.0.clone(), rec.1.clone());
    let pair = connected_pair(
        mr.reactor(),
        site.build_protocol(&Address::Memory("c".into())).unwrap(),
        rec,
    );
    (pair, (got, closed))
}

/// Counts the responses in what a client received.
fn responses(got: &RefCell<Vec<u8>>) -> usize {
    String::from_utf8_lossy(&got.borrow())
        .matches("HTTP/1.1 200 OK\r\n")
        .count()
}

#[test]
fn an_idle_keep_alive_connection_lets_hyper_go_and_serves_on() {
    for piece in [0, 1] {
        let mr = MemoryReactor::new();
        let mut site = Site::with_config(
            FnResource::leaf(|req: Request| Response::text(format!("at {}\n", req.uri().path()))),
            SiteConfig {
                access_log: false,
                ..SiteConfig::default()
            },
        );
        let (pair, (got, closed)) = site_conn(&mr, &mut site);
        let send = |bytes: &[u8]| {
            if piece == 0 {
                pair.client().write(bytes);
                pair.pump();
            } else {
                for b in bytes.chunks(1) {
                    pair.client().write(b);
                    pair.pump();
                }
            }
        };
        let before = site.idle_releases();
        send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            responses(&got),
            1,
            "{:?}",
            String::from_utf8_lossy(&got.borrow())
        );
        // Busy: a request soon after the last keeps hyper.
        mr.advance(Duration::from_millis(100));
        pair.pump();
        send(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(responses(&got), 2);
        assert_eq!(site.idle_releases(), before, "let go while busy");
        // Idle for a second: hyper goes, the connection stays.
        for _ in 0..4 {
            mr.advance(Duration::from_millis(300));
            pair.pump();
        }
        assert_eq!(site.idle_releases(), before + 1);
        assert!(!closed.get());
        // The next requests, two pipelined, start hyper again.
        send(b"GET /three HTTP/1.1\r\nHost: a\r\n\r\nGET /four HTTP/1.1\r\nHost: a\r\n\r\n");
        let out = String::from_utf8_lossy(&got.borrow()).into_owned();
        assert_eq!(responses(&got), 4, "{out}");
        for p in ["/one", "/two", "/three", "/four"] {
            assert!(out.contains(&format!("at {p}\n")), "{p} missing: {out}");
        }
        assert!(!closed.get());
    }
}

#[test]
fn a_response_a_slow_reader_takes_seconds_to_read_comes_whole() {
    // hyper may go once the whole response is in the transport's buffer
    // (the transport sends it on): the response is never cut short, and
    // the connection serves on after it.
    let mr = MemoryReactor::new();
    let body = vec![b'y'; 256 * 1024];
    let b = body.clone();
    let mut site = Site::new(FnResource::new(move |_| Response::text(b.clone())));
    let (pair, (got, closed)) = site_conn(&mr, &mut site);
    pair.set_capacity(4096);
    pair.client().write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut rounds = 0;
    while !got.borrow().ends_with(&body) && rounds < 10_000 {
        pair.pump_once();
        mr.advance(Duration::from_millis(50));
        rounds += 1;
    }
    let out = got.borrow().clone();
    assert!(
        out.ends_with(&body),
        "the body came whole ({} bytes)",
        out.len()
    );
    assert!(rounds > 40, "the reader was slow ({rounds} rounds)");
    assert_eq!(site.idle_releases(), 1);
    pair.set_capacity(1 << 20);
    got.borrow_mut().clear();
    pair.client().write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    pair.pump();
    assert!(got.borrow().ends_with(&body));
    assert!(!closed.get());
}

#[test]
fn the_header_timeout_counts_from_the_last_response_after_hyper_went() {
    let mr = MemoryReactor::new();
    let mut site = Site::with_config(
        FnResource::new(|_| Response::text("ok")),
        SiteConfig {
            header_timeout: Duration::from_secs(10),
            ..SiteConfig::default()
        },
    );
    let (pair, (_, closed)) = site_conn(&mr, &mut site);
    pair.client().write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    pair.pump();
    for _ in 0..18 {
        mr.advance(Duration::from_millis(500));
        pair.pump();
    }
    assert_eq!(site.idle_releases(), 1);
    assert!(!closed.get(), "closed before the header timeout");
    // A head begun at 9.5 s must still end by 10 s.
    pair.client().write(b"GET / HT");
    pair.pump();
    mr.advance(Duration::from_millis(500));
    pair.pump();
    assert!(!closed.get());
    mr.advance(Duration::from_millis(600));
    pair.pump();
    assert!(
        closed.get(),
        "a head that missed the deadline kept the connection"
    );
}
