//! The HTTP check of the host-loop conformance suite (feature `testing`),
//! which every host crate runs beside the core's checks.

use braid::testing::conformance::Harness;

/// HTTP under a host loop, for its conformance suite: a [`Site`](crate::Site) answers
/// 200 requests from the [`Agent`](crate::Agent) in the same loop (on kept-alive
/// connections, 4 at a time, one with a streamed upload each round), and
/// 50 from a blocking client on another thread.
pub fn http_site_and_agent(h: &dyn Harness) {
    use crate::{Agent, FnResource, HeaderMap, Method, Reply, Request, Response, Site, SiteConfig};
    use braid::testing::conformance::Watchdog;
    use braid::Reactor;
    use std::cell::Cell;
    use std::io::{Read, Write};
    use std::rc::Rc;
    use std::time::Duration;
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let site = Site::with_config(
        FnResource::leaf(|mut req: Request| {
            Reply::later(async move {
                let body = req.read_body(1 << 20).await.unwrap_or_default();
                Response::text(format!("{} {}", req.path(), body.len()))
            })
        }),
        SiteConfig {
            access_log: false,
            ..SiteConfig::default()
        },
    );
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), site.clone())
        .unwrap();
    let addr = port.local_addr();
    let threaded = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut ok = 0;
        for i in 0..50 {
            s.write_all(format!("GET /t{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .unwrap();
            let want = format!("/t{i} 0");
            let mut acc = Vec::new();
            let mut buf = [0u8; 1024];
            while !acc.ends_with(want.as_bytes()) {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "closed early");
                acc.extend_from_slice(&buf[..n]);
            }
            ok += 1;
        }
        ok
    });
    let agent = Agent::new(&reactor);
    let answers = Rc::new(Cell::new(0u32));
    let a = answers.clone();
    let r = reactor.clone();
    drop(reactor.spawn_local(async move {
        for round in 0..50 {
            let mut pending = Vec::new();
            for k in 0..4 {
                let url = format!("http://{addr}/r{round}/{k}");
                let body: crate::Body = if k == 0 {
                    vec![1u8; 10_000].into()
                } else {
                    crate::Body::empty()
                };
                pending.push(agent.request(Method::POST, &url, HeaderMap::new(), body));
            }
            for (k, d) in pending.into_iter().enumerate() {
                let resp = d.await.expect("an answer");
                let text = resp.text(1000).await.unwrap();
                let len = if k == 0 { 10_000 } else { 0 };
                assert_eq!(text, format!("/r{round}/{k} {len}"));
                a.set(a.get() + 1);
            }
        }
        assert!(
            agent.connections_made() <= 4,
            "{} connections",
            agent.connections_made()
        );
        while !threaded.is_finished() {
            r.sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(threaded.join().unwrap(), 50);
        r.stop();
    }));
    h.run(&reactor);
    dog.check(&format!("{}: HTTP", h.name()));
    assert_eq!(answers.get(), 200, "{}", h.name());
    assert_eq!(site.requests_rendered(), 250, "{}", h.name());
    drop(port);
}
