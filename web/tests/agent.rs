//! braid's HTTP client over real loopback sockets: the Agent's pool,
//! redirects, timeouts on the fake clock, HTTPS, IPv6.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use support::*;

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
