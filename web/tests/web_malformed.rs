//! Malformed and smuggling-style requests: each gets a 400-class answer
//! and a closed connection, and none reaches a resource. One connection per
//! case, over real loopback sockets; the server runs braid's Site with its
//! default limits.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use braid::testing::run_until;
use braid::Reactor;
use braid_web::{FnResource, Response, Site};

/// (name, raw request). Every one must be refused before any resource runs.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "p".repeat(20_000));
    let cases: Vec<(&'static str, String)> = vec![
        ("two different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".into()),
        ("two equal Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd".into()),
        ("Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd".into()),
        ("signed Content-Length (+)", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd".into()),
        ("negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -4\r\n\r\nabcd".into()),
        ("hex Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\nabcd".into()),
        ("empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\nabcd".into()),
        ("overflowing Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nabcd".into()),
        ("Content-Length then Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into()),
        ("Transfer-Encoding then Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n".into()),
        ("Transfer-Encoding not ending in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n".into()),
        ("Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".into()),
        ("two Transfer-Encoding fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into()),
        ("unknown Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".into()),
        ("space before the colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n".into()),
        ("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into()),
        ("chunk size not hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".into()),
        ("chunk size overflows", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n".into()),
        ("negative chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n".into()),
        ("chunk without its CRLF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n".into()),
        ("oversized header field", big_header),
        ("too many header fields", many),
        ("oversized request line", long_line),
        ("bare LF line endings", "GET / HTTP/1.1\nHost: a\n\n".into()),
        ("bare LF after the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n".into()),
        ("bare CR", "GET / HTTP/1.1\rHost: a\r\n\r\n".into()),
        ("invalid method characters", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("space inside the target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        ("HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n".into()),
        ("two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into()),
        ("header name with a space", "GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n".into()),
        ("obsolete line folding", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n".into()),
        ("NUL in a header value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n".into()),
        ("header line without a colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n".into()),
        ("HTTP/0.9 request line", "GET /\r\n\r\n".into()),
        ("garbage version", "GET / HTTP/x.y\r\nHost: a\r\n\r\n".into()),
        ("target not a path", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n".into()),
    ];
    cases
        .into_iter()
        .map(|(n, s)| (n, s.into_bytes()))
        .collect()
}

/// Sends `raw`, reads until the server closes (or 10 s pass), and returns
/// what came back and whether the connection was closed.
fn exchange(addr: SocketAddr, raw: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A reset after the answer is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[test]
fn malformed_requests_are_refused_and_never_reach_a_resource() {
    let reactor = Reactor::new().unwrap();
    let hits = Rc::new(Cell::new(0u32));
    let h = hits.clone();
    let site = Site::new(FnResource::leaf(move |_| {
        h.set(h.get() + 1);
        Response::text("reached\n")
    }));
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), site.clone())
        .unwrap();
    let addr = port.local_addr();
    let cases = corpus();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let (tx, rx) = mpsc::channel();
    let names: Vec<&'static str> = cases.iter().map(|c| c.0).collect();
    let client = std::thread::spawn(move || {
        for (name, raw) in cases {
            let r = exchange(addr, &raw);
            tx.send((name, r)).unwrap();
        }
    });
    let mut results = Vec::new();
    run_until(&reactor, Duration::from_secs(120), || {
        while let Ok(r) = rx.try_recv() {
            results.push(r);
        }
        results.len() == names.len()
    })
    .unwrap();
    client.join().unwrap();
    let mut failures = Vec::new();
    for (name, (resp, closed)) in &results {
        let status = resp.get(9..12).unwrap_or("");
        if !(resp.starts_with("HTTP/1.1 4") || resp.starts_with("HTTP/1.0 4")) || !closed {
            failures.push(format!(
                "{name}: status {status:?}, closed {closed}, answer {:?}",
                resp.lines().next().unwrap_or("")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "not refused properly:\n{}",
        failures.join("\n")
    );
    assert_eq!(hits.get(), 0, "a malformed request reached the resource");
    assert_eq!(site.requests_rendered(), 0);

    // The same server still serves a good request.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        tx.send(exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ))
        .unwrap();
    });
    let mut good = None;
    run_until(&reactor, Duration::from_secs(10), || {
        if let Ok(r) = rx.try_recv() {
            good = Some(r);
        }
        good.is_some()
    })
    .unwrap();
    let (resp, _) = good.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("reached\n"));
    assert_eq!(hits.get(), 1);
}
