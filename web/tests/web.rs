//! braid's web layer over real loopback sockets (and the in-memory
//! transport): the Site and its resource tree, deferred and streamed
//! responses, keep-alive and pipelining, timeouts on the fake clock, the
//! Agent (pool, redirects, HTTPS), static files, and both proxies.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use braid::testing::{connected_pair, run_until, MemoryReactor};
use braid::{Address, Deferred, Factory, Protocol, Reactor, Transport};
use braid_web::{
    header, Agent, AgentConfig, Body, BodyError, ClientError, File, FnResource, ForwardProxy,
    HeaderMap, Method, Reply, Request, Resource, Response, ReverseProxy, Site, SiteConfig,
    StatusCode, Tree,
};
use futures_util::future::join;

fn serve(reactor: &Reactor, root: impl Resource) -> (Site, SocketAddr) {
    let site = Site::new(root);
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), site.clone())
        .unwrap();
    (site, port.local_addr())
}

/// Runs `f` on a thread with blocking std sockets while the reactor runs.
fn with_client<T: Send + 'static>(reactor: &Reactor, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let mut out = None;
    run_until(reactor, Duration::from_secs(60), || {
        if let Ok(v) = rx.try_recv() {
            out = Some(v);
        }
        out.is_some()
    })
    .unwrap();
    t.join().unwrap();
    out.unwrap()
}

/// Sends raw bytes; reads until `until` is in the answer (or EOF).
fn raw(addr: SocketAddr, req: &[u8], until: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while !String::from_utf8_lossy(&out).contains(until) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn block<T: 'static>(reactor: &Reactor, f: impl std::future::Future<Output = T> + 'static) -> T {
    let r = reactor.clone();
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    drop(reactor.spawn_local(async move {
        *o.borrow_mut() = Some(f.await);
    }));
    run_until(&r, Duration::from_secs(60), || out.borrow().is_some()).unwrap();
    let v = out.borrow_mut().take().unwrap();
    v
}

fn text(body: &'static str) -> impl Fn(Request) -> Response {
    move |_| Response::text(body)
}

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
    let rec = Recorder::default();
    let closed = rec.1.clone();
    let pair = connected_pair(
        mr.reactor(),
        site.build_protocol(&Address::Memory("c".into())).unwrap(),
        rec,
    );
    pair.client().write(b"GET / HTTP/1.1\r\nHost: a\r\n");
    pair.pump();
    mr.advance(Duration::from_secs(9));
    pair.pump();
    assert!(!closed.get(), "closed before the header timeout");
    mr.advance(Duration::from_secs(2));
    pair.pump();
    assert!(closed.get(), "still open after the header timeout");

    // 2. A body that stops: the resource sees TimedOut after 5 s.
    let rec = Recorder::default();
    let pair = connected_pair(
        mr.reactor(),
        site.build_protocol(&Address::Memory("c".into())).unwrap(),
        rec,
    );
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
    let rec = Recorder::default();
    let (got, closed) = (rec.0.clone(), rec.1.clone());
    let pair = connected_pair(
        mr.reactor(),
        site.build_protocol(&Address::Memory("c".into())).unwrap(),
        rec,
    );
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
    let rec = Recorder::default();
    let closed = rec.1.clone();
    let pair = connected_pair(
        mr.reactor(),
        site.build_protocol(&Address::Memory("c".into())).unwrap(),
        rec,
    );
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
fn the_agent_pools_connections_per_host() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let conns = Rc::new(Cell::new(0u32));
    let c = conns.clone();
    let site = Site::new(FnResource::leaf(|req: Request| {
        Response::text(req.path().to_owned())
    }));
    let mut s2 = site.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |a: &Address| {
            c.set(c.get() + 1);
            s2.build_protocol(a).unwrap()
        })
        .unwrap();
    let addr = port.local_addr();
    let agent = Agent::new(&reactor);
    let a = agent.clone();
    let got = block(&reactor, async move {
        let mut v = Vec::new();
        for i in 0..10 {
            let r = a.get(&format!("http://{addr}/n{i}")).await.unwrap();
            v.push(r.text(100).await.unwrap());
        }
        // Two at once need two connections.
        let (x, y) = join(
            a.get(&format!("http://{addr}/x")),
            a.get(&format!("http://{addr}/y")),
        )
        .await;
        v.push(x.unwrap().text(10).await.unwrap());
        v.push(y.unwrap().text(10).await.unwrap());
        v
    });
    assert_eq!(got[0], "/n0");
    assert_eq!(got[9], "/n9");
    assert_eq!(&got[10..], ["/x", "/y"]);
    assert_eq!(
        conns.get(),
        2,
        "ten sequential requests reuse one connection"
    );
    assert_eq!(agent.connections_made(), 2);
    assert_eq!(agent.idle_connections(), 2);

    // The server closes idle connections: the agent notices and reconnects.
    drop(port);
    let agent2 = agent.clone();
    let err = block(&reactor, async move {
        agent2.get("http://127.0.0.1:1/").await.unwrap_err()
    });
    assert!(
        matches!(
            err,
            ClientError::Connect(std::io::ErrorKind::ConnectionRefused, _)
        ),
        "{err:?}"
    );
}

#[test]
fn redirects_are_followed_to_a_limit_and_credentials_stay_home() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let seen_auth = Rc::new(RefCell::new(Vec::new()));
    let sa = seen_auth.clone();
    // The second server records the Authorization it gets.
    let (_s2, addr2) = serve(
        &reactor,
        FnResource::leaf(move |req: Request| {
            sa.borrow_mut()
                .push(req.header(header::AUTHORIZATION).map(str::to_owned));
            Response::text(format!("{} {}", req.method(), req.path()))
        }),
    );
    let target = format!("http://{addr2}/elsewhere");
    let root = Tree::new()
        .child(
            "a",
            FnResource::new(|_| Response::redirect(StatusCode::FOUND, "/b")),
        )
        .child(
            "b",
            FnResource::new(|req: Request| {
                Response::text(format!(
                    "b via {} auth={:?}",
                    req.method(),
                    req.header(header::AUTHORIZATION)
                ))
            }),
        )
        .child(
            "post",
            FnResource::new(|_| Response::redirect(StatusCode::SEE_OTHER, "b")),
        )
        .child(
            "keep",
            FnResource::new(|_| Response::redirect(StatusCode::TEMPORARY_REDIRECT, "/echo")),
        )
        .child(
            "echo",
            FnResource::new(|mut req: Request| {
                Reply::later(async move {
                    let m = req.method().clone();
                    let b = req.read_body(100).await.unwrap();
                    Response::text(format!("{m} {}", String::from_utf8_lossy(&b)))
                })
            }),
        )
        .child(
            "loop",
            FnResource::new(|_| Response::redirect(StatusCode::FOUND, "/loop")),
        )
        .child(
            "away",
            FnResource::new(move |_| Response::redirect(StatusCode::FOUND, &target)),
        );
    let (_s1, addr) = serve(&reactor, root);
    let cfg = AgentConfig {
        redirect_limit: 5,
        ..AgentConfig::default()
    };
    let agent = Agent::with_config(&reactor, cfg);
    let plain = Agent::new(&reactor);
    let got = block(&reactor, async move {
        let mut auth = HeaderMap::new();
        auth.insert(header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        let r = agent
            .request_async(
                Method::GET,
                &format!("http://{addr}/a"),
                auth.clone(),
                Body::empty(),
            )
            .await
            .unwrap();
        let url = r.url().to_string();
        let a = r.text(200).await.unwrap();
        let b = agent
            .request_async(
                Method::POST,
                &format!("http://{addr}/post"),
                HeaderMap::new(),
                "data".into(),
            )
            .await
            .unwrap()
            .text(200)
            .await
            .unwrap();
        let c = agent
            .request_async(
                Method::PUT,
                &format!("http://{addr}/keep"),
                HeaderMap::new(),
                "kept".into(),
            )
            .await
            .unwrap()
            .text(200)
            .await
            .unwrap();
        let d = agent.get(&format!("http://{addr}/loop")).await.unwrap_err();
        let e = agent
            .request_async(
                Method::GET,
                &format!("http://{addr}/away"),
                auth,
                Body::empty(),
            )
            .await
            .unwrap()
            .text(200)
            .await
            .unwrap();
        let f = plain
            .get(&format!("http://{addr}/a"))
            .await
            .unwrap()
            .status();
        (url, a, b, c, d, e, f)
    });
    assert_eq!(got.0, format!("http://{addr}/b"));
    assert_eq!(
        got.1, "b via GET auth=Some(\"Bearer secret\")",
        "same origin keeps credentials"
    );
    assert_eq!(got.2, "b via GET auth=None", "303 after POST is a GET");
    assert_eq!(got.3, "PUT kept", "307 keeps the method and body");
    assert_eq!(got.4, ClientError::TooManyRedirects(5));
    assert_eq!(got.5, "GET /elsewhere");
    assert_eq!(
        *seen_auth.borrow(),
        vec![None],
        "credentials were sent to another origin"
    );
    assert_eq!(
        got.6,
        StatusCode::FOUND,
        "a plain Agent returns redirects as they are"
    );
}

#[test]
fn the_agent_times_out_on_the_fake_clock() {
    let clock = braid::FakeClock::new();
    let reactor = Reactor::with_clock(clock.clone()).unwrap();
    let (_site, addr) = serve(
        &reactor,
        FnResource::new(|_| Reply::later(std::future::pending::<Response>())),
    );
    let cfg = AgentConfig {
        response_timeout: Duration::from_secs(5),
        ..AgentConfig::default()
    };
    let agent = Agent::with_config(&reactor, cfg);
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    let d = agent.request(
        Method::GET,
        &format!("http://{addr}/"),
        HeaderMap::new(),
        Body::empty(),
    );
    drop(reactor.spawn_local(async move {
        *o.borrow_mut() = Some(d.await);
    }));
    // Let the request reach the server, then move time.
    for _ in 0..50 {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    assert!(out.borrow().is_none());
    clock.advance(Duration::from_secs(4));
    reactor.run_due();
    assert!(out.borrow().is_none());
    clock.advance(Duration::from_secs(2));
    run_until(&reactor, Duration::from_secs(5), || out.borrow().is_some()).unwrap();
    assert!(matches!(
        out.borrow().as_ref().unwrap(),
        Err(ClientError::TimedOut)
    ));
}

#[test]
fn https_with_the_agent_and_a_refused_name() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let site = Site::new(FnResource::new(|req: Request| {
        Response::text(format!("secure={} {:?}", req.is_secure(), req.version()))
    }));
    let port = site
        .listen_tls(
            &reactor,
            "127.0.0.1:0".parse().unwrap(),
            &braid_tls::testing::server_config(),
        )
        .unwrap();
    let p = port.local_addr().port();
    let cfg =
        braid_tls::ClientConfig::with_root_pem(braid_tls::testing::CA_PEM.as_bytes()).unwrap();
    let agent = Agent::new(&reactor).with_tls(cfg);
    let got = block(&reactor, async move {
        let ok = agent.get(&format!("https://localhost:{p}/")).await.unwrap();
        let version = ok.version();
        let body = ok.text(100).await.unwrap();
        let again = agent
            .get(&format!("https://localhost:{p}/"))
            .await
            .unwrap()
            .text(100)
            .await
            .unwrap();
        let before = agent.connections_made();
        // Two at once: HTTP/2 multiplexes them on the pooled connection.
        let u = format!("https://localhost:{p}/");
        let (x, y) = join(agent.get(&u), agent.get(&u)).await;
        assert_eq!(x.unwrap().text(100).await.unwrap(), body);
        assert_eq!(y.unwrap().text(100).await.unwrap(), body);
        let concurrent_opened = agent.connections_made() - before;
        // The certificate names localhost and 127.0.0.1, not this.
        let bad = agent.get(&format!("https://127.0.0.2:{p}/")).await;
        (
            version,
            body,
            again,
            bad.map(|_| ()),
            before,
            concurrent_opened,
        )
    });
    #[cfg(feature = "http2")]
    {
        assert_eq!(got.0, braid_web::Version::HTTP_2, "HTTP/2 by ALPN");
        assert_eq!(got.1, "secure=true HTTP/2.0");
    }
    #[cfg(not(feature = "http2"))]
    assert_eq!(got.1, "secure=true HTTP/1.1");
    assert_eq!(got.1, got.2);
    assert!(
        matches!(got.3, Err(ClientError::Connect(..))),
        "{:?}",
        got.3
    );
    assert_eq!(got.4, 1, "the second request reused the connection");
    #[cfg(feature = "http2")]
    assert_eq!(
        got.5, 0,
        "HTTP/2 requests at the same time share one connection"
    );
    #[cfg(not(feature = "http2"))]
    assert_eq!(
        got.5, 1,
        "HTTP/1.1 needs a second connection for a second request at once"
    );
}

#[test]
fn static_files_ranges_conditions_and_escapes() {
    common::init_tracing();
    let dir = tempdir("static");
    std::fs::write(dir.join("a.txt"), b"0123456789").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub").join("<b>&\"x\".html"), b"<p>").unwrap();
    std::fs::write(dir.join(".hidden"), b"secret").unwrap();
    let outside = tempdir("outside");
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), dir.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(dir.join("a.txt"), dir.join("inside.txt")).unwrap();
    let reactor = Reactor::new().unwrap();
    let (_site, addr) = serve(&reactor, File::new(&dir));
    let (_site2, addr2) = serve(&reactor, File::new(&dir).follow_symlinks_out(true));
    let agent = Agent::new(&reactor);
    let got = block(&reactor, async move {
        let get = |path: String, hdrs: Vec<(&'static str, String)>| {
            let agent = agent.clone();
            async move {
                let mut h = HeaderMap::new();
                for (k, v) in hdrs {
                    h.insert(k, v.parse().unwrap());
                }
                let r = agent
                    .request_async(Method::GET, &path, h, Body::empty())
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                (status, headers, r.text(10_000).await.unwrap())
            }
        };
        let base = format!("http://{addr}");
        let mut v = Vec::new();
        v.push(get(format!("{base}/a.txt"), vec![]).await);
        let etag = v[0].1.get("etag").unwrap().to_str().unwrap().to_owned();
        let lm = v[0]
            .1
            .get("last-modified")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        v.push(get(format!("{base}/a.txt"), vec![("range", "bytes=2-4".into())]).await);
        v.push(get(format!("{base}/a.txt"), vec![("range", "bytes=-3".into())]).await);
        v.push(get(format!("{base}/a.txt"), vec![("range", "bytes=50-".into())]).await);
        v.push(
            get(
                format!("{base}/a.txt"),
                vec![("if-none-match", etag.clone())],
            )
            .await,
        );
        v.push(get(format!("{base}/a.txt"), vec![("if-modified-since", lm)]).await);
        v.push(
            get(
                format!("{base}/a.txt"),
                vec![
                    ("range", "bytes=0-0".into()),
                    ("if-range", "\"stale\"".into()),
                ],
            )
            .await,
        );
        v.push(get(format!("{base}/sub/"), vec![]).await);
        v.push(get(format!("{base}/sub"), vec![]).await);
        for bad in [
            "/..%2f..%2fetc%2fpasswd",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/sub%2f..%2fa.txt",
            "/.hidden",
            "/link.txt",
            "/a.txt%00",
            "/sub/..%5ca.txt",
        ] {
            v.push(get(format!("{base}{bad}"), vec![]).await);
        }
        v.push(get(format!("{base}/inside.txt"), vec![]).await);
        v.push(get(format!("http://{addr2}/link.txt"), vec![]).await);
        v
    });
    assert_eq!(got[0].0, 200);
    assert_eq!(got[0].2, "0123456789");
    assert_eq!(got[0].1["content-type"], "text/plain; charset=utf-8");
    assert_eq!((got[1].0, got[1].2.as_str()), (206, "234"));
    assert_eq!(got[1].1["content-range"], "bytes 2-4/10");
    assert_eq!((got[2].0, got[2].2.as_str()), (206, "789"));
    assert_eq!(got[3].0, 416);
    assert_eq!(got[3].1["content-range"], "bytes */10");
    assert_eq!((got[4].0, got[4].2.as_str()), (304, ""));
    assert_eq!(got[5].0, 304);
    assert_eq!(
        (got[6].0, got[6].2.as_str()),
        (200, "0123456789"),
        "If-Range with a stale tag gets the whole file"
    );
    assert_eq!(got[7].0, 200);
    assert!(
        got[7]
            .2
            .contains("<a href=\"%3Cb%3E%26%22x%22.html\">&lt;b&gt;&amp;&quot;x&quot;.html</a>"),
        "{}",
        got[7].2
    );
    assert!(!got[7].2.contains(".hidden"));
    assert_eq!(got[8].0, 301);
    assert_eq!(got[8].1["location"], "/sub/");
    for (i, g) in got[9..16].iter().enumerate() {
        assert_eq!(g.0, 404, "escape attempt {i} answered {}", g.0);
        assert!(!g.2.contains("secret"));
    }
    assert_eq!(
        (got[16].0, got[16].2.as_str()),
        (200, "0123456789"),
        "a link inside the root is fine"
    );
    assert_eq!(
        (got[17].0, got[17].2.as_str()),
        (200, "secret"),
        "followed when allowed"
    );
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "braid-web-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_reverse_proxy_rewrites_host_and_forwards_for() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let (_backend, baddr) = serve(
        &reactor,
        FnResource::leaf(|mut req: Request| {
            Reply::later(async move {
                let b = req.read_body(1 << 20).await.unwrap();
                Response::text(format!(
                    "{} {} host={} xff={} conn={:?} body={}",
                    req.method(),
                    req.uri(),
                    req.header(header::HOST).unwrap_or("-"),
                    req.header("x-forwarded-for").unwrap_or("-"),
                    req.header("x-private-hop"),
                    b.len()
                ))
                .header("x-backend", "yes")
            })
        }),
    );
    let agent = Agent::new(&reactor);
    let proxy = ReverseProxy::new(&agent, &format!("http://{baddr}/base")).unwrap();
    let (_front, faddr) = serve(&reactor, Tree::new().child("app", proxy));
    let dead = ReverseProxy::new(&agent, "http://127.0.0.1:1/").unwrap();
    let (_front2, daddr) = serve(&reactor, dead);
    let client = Agent::new(&reactor);
    let got = block(&reactor, async move {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        h.insert(header::CONNECTION, "x-private-hop".parse().unwrap());
        h.insert("x-private-hop", "1".parse().unwrap());
        let r = client
            .request_async(
                Method::POST,
                &format!("http://{faddr}/app/x/y%20z?q=1"),
                h,
                vec![5u8; 100_000].into(),
            )
            .await
            .unwrap();
        let backend = r.header("x-backend").map(str::to_owned);
        let text = r.text(1000).await.unwrap();
        let down = client
            .get(&format!("http://{daddr}/"))
            .await
            .unwrap()
            .status();
        (text, backend, down)
    });
    assert_eq!(
        got.0,
        format!(
            "POST /base/x/y%20z?q=1 host={baddr} xff=10.0.0.1, 127.0.0.1 conn=None body=100000"
        )
    );
    assert_eq!(got.1.as_deref(), Some("yes"));
    assert_eq!(got.2, StatusCode::BAD_GATEWAY);
}

#[test]
fn the_forward_proxy_forwards_tunnels_and_refuses_strangers() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let (_origin, oaddr) = serve(
        &reactor,
        FnResource::leaf(|req: Request| Response::text(format!("origin saw {}", req.uri()))),
    );
    // An echo server to tunnel to.
    let echo = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| common::Echo)
        .unwrap();
    let eaddr = echo.local_addr();
    let agent = Agent::new(&reactor);
    let (_proxy, paddr) = serve(&reactor, ForwardProxy::new(&agent));
    let out = with_client(&reactor, move || {
        let fwd = raw(
            paddr,
            format!(
                "GET http://{oaddr}/p?x=1 HTTP/1.1\r\nHost: {oaddr}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
            "origin saw",
        );
        let plain = raw(
            paddr,
            b"GET /not-absolute HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            "\r\n\r\n",
        );
        // CONNECT, then bytes both ways through the tunnel.
        let mut s = TcpStream::connect(paddr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(format!("CONNECT {eaddr} HTTP/1.1\r\nHost: {eaddr}\r\n\r\nearly").as_bytes())
            .unwrap();
        let mut acc = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&acc).contains("early") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            acc.extend_from_slice(&buf[..n]);
        }
        s.write_all(b" and later").unwrap();
        while !String::from_utf8_lossy(&acc).contains("and later") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            acc.extend_from_slice(&buf[..n]);
        }
        (fwd, plain, String::from_utf8_lossy(&acc).into_owned())
    });
    assert!(out.0.starts_with("HTTP/1.1 200"), "{}", out.0);
    assert!(out.0.ends_with("origin saw /p?x=1"), "{}", out.0);
    assert!(out.1.starts_with("HTTP/1.1 400"), "{}", out.1);
    assert!(out.2.starts_with("HTTP/1.1 200 OK\r\n"), "{}", out.2);
    assert!(out.2.ends_with("\r\n\r\nearly and later"), "{}", out.2);

    // A client outside loopback (a request built by hand with another
    // peer address) is refused; an allowed network is served.
    let req = |peer: &str| {
        let mut r = http::Request::new(Body::empty());
        *r.uri_mut() = format!("http://{oaddr}/").parse().unwrap();
        Request::new(r, Address::Tcp(peer.parse().unwrap()), &reactor).unwrap()
    };
    let closed = ForwardProxy::new(&agent);
    let open = ForwardProxy::new(&agent).allow_cidr("10.0.0.0/8").unwrap();
    let a = closed.render(req("10.1.2.3:5000"));
    let b = open.render(req("10.1.2.3:5000"));
    let c = open.render(req("192.168.1.1:5000"));
    let statuses = block(&reactor, async move {
        (
            a.into_response().await.status(),
            b.into_response().await.status(),
            c.into_response().await.status(),
        )
    });
    assert_eq!(
        statuses,
        (StatusCode::FORBIDDEN, StatusCode::OK, StatusCode::FORBIDDEN)
    );
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

#[test]
fn the_agent_speaks_to_ipv6_literals() {
    let reactor = Reactor::new().unwrap();
    let site = Site::new(FnResource::new(|req: Request| {
        Response::text(req.header(header::HOST).unwrap_or("-").to_owned())
    }));
    let Ok(port) = reactor.listen_tcp("[::1]:0".parse().unwrap(), site) else {
        // No IPv6 loopback on this machine: nothing to test.
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    let p = port.local_addr().port();
    let agent = Agent::new(&reactor);
    let host = block(&reactor, async move {
        agent
            .get(&format!("http://[::1]:{p}/"))
            .await
            .unwrap()
            .text(100)
            .await
            .unwrap()
    });
    assert_eq!(host, format!("[::1]:{p}"));
}
