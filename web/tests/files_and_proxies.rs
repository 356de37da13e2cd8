//! Static files and both proxies over real loopback sockets.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use support::*;

#[test]
#[cfg(unix)] // symlinks: made with std::os::unix::fs::symlink
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
