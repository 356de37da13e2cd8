// The peers (openssl, curl, Python, tinyproxy) are Linux programs, which a
// Windows build under Wine cannot start: Unix only.
#![cfg(unix)]
//! Real HTTP clients against braid's server over loopback: `curl` (ranges,
//! conditional requests, keep-alive, chunked uploads, HTTPS, both proxies)
//! and Python's `http.client`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use braid::testing::run_until;
use braid::{Address, Factory, Reactor};
use braid_web::{Agent, File, FnResource, ForwardProxy, Reply, Request, Response, Site, Tree};

struct Server {
    reactor: Reactor,
    addr: SocketAddr,
    connections: Rc<Cell<u32>>,
    dir: PathBuf,
}

fn server() -> Server {
    common::init_tracing();
    let dir = std::env::temp_dir().join(format!(
        "braid-web-clients-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), b"abcdefghij").unwrap();
    let reactor = Reactor::new().unwrap();
    let root = Tree::new().child("files", File::new(&dir)).child(
        "count",
        FnResource::new(|mut req: Request| {
            Reply::later(async move {
                let te = req.header("transfer-encoding").unwrap_or("-").to_owned();
                let mut n = 0usize;
                let mut sum = 0u64;
                while let Some(c) = req.body_mut().chunk().await {
                    let c = c.unwrap();
                    n += c.len();
                    sum += c.iter().map(|&b| u64::from(b)).sum::<u64>();
                }
                Response::text(format!("{n} {sum} {te}"))
            })
        }),
    );
    let mut site = Site::new(root);
    let connections = Rc::new(Cell::new(0));
    let c = connections.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |a: &Address| {
            c.set(c.get() + 1);
            site.build_protocol(a).unwrap()
        })
        .unwrap();
    Server {
        reactor,
        addr: port.local_addr(),
        connections,
        dir,
    }
}

/// Runs a command to completion while the reactor serves; its stdout and
/// stderr.
fn run(reactor: &Reactor, cmd: &mut Command) -> (String, String) {
    let (tx, rx) = mpsc::channel();
    // `output` blocks: run it on a thread while the reactor serves.
    let mut c = std::mem::replace(cmd, Command::new("true"));
    std::thread::spawn(move || {
        let _ = tx.send(c.output());
    });
    let mut out = None;
    run_until(reactor, Duration::from_secs(60), || {
        if let Ok(o) = rx.try_recv() {
            out = Some(o);
        }
        out.is_some()
    })
    .unwrap();
    let o = out.unwrap().expect("the command runs");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn curl(s: &Server, args: &[&str]) -> (String, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "20"]).args(args);
    run(&s.reactor, &mut c)
}

#[test]
fn curl_ranges_conditional_requests_and_keep_alive() {
    let s = server();
    let base = format!("http://{}", s.addr);
    let url = format!("{base}/files/a.txt");
    let (out, _) = curl(&s, &["-r", "2-4", "-w", " %{http_code}", &url]);
    assert_eq!(out, "cde 206");
    let (out, _) = curl(&s, &["-r", "-3", "-w", " %{http_code}", &url]);
    assert_eq!(out, "hij 206");
    let (out, _) = curl(
        &s,
        &["-r", "100-", "-o", "/dev/null", "-w", "%{http_code}", &url],
    );
    assert_eq!(out, "416");
    // The ETag, then a conditional GET with it.
    let (head, _) = curl(&s, &["-D", "-", "-o", "/dev/null", &url]);
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .trim()
        .to_owned();
    let (out, _) = curl(
        &s,
        &[
            "-H",
            &format!("If-None-Match: {etag}"),
            "-w",
            "%{http_code}",
            &url,
        ],
    );
    assert_eq!(out, "304");
    // If-Modified-Since from curl's -z (a date in the future: not modified).
    let (out, _) = curl(
        &s,
        &[
            "-z",
            "Thu, 01 Jan 2099 00:00:00 GMT",
            "-w",
            "%{http_code}",
            &url,
        ],
    );
    assert_eq!(out, "304");
    let (out, _) = curl(
        &s,
        &[
            "-z",
            "Thu, 01 Jan 1990 00:00:00 GMT",
            "-w",
            " %{http_code}",
            &url,
        ],
    );
    assert_eq!(out, "abcdefghij 200");
    // Three URLs in one curl: one connection.
    let before = s.connections.get();
    let (out, err) = curl(&s, &["-v", &url, &url, &url]);
    assert_eq!(out, "abcdefghij".repeat(3));
    assert_eq!(
        s.connections.get() - before,
        1,
        "curl opened more than one connection"
    );
    assert!(err.contains("Re-using existing"), "{err}");
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn curl_chunked_and_sized_uploads() {
    let s = server();
    let file = s.dir.join("upload.bin");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
    let url = format!("http://{}/count", s.addr);
    let at = format!("@{}", file.display());
    let (out, err) = curl(
        &s,
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &at,
            &url,
        ],
    );
    assert_eq!(out, format!("1000000 {sum} chunked"), "{err}");
    let (out, _) = curl(&s, &["--data-binary", &at, &url]);
    assert_eq!(out, format!("1000000 {sum} -"));
    // Expect: 100-continue (curl sends it for large bodies when asked).
    let (out, _) = curl(
        &s,
        &["-H", "Expect: 100-continue", "--data-binary", &at, &url],
    );
    assert_eq!(out, format!("1000000 {sum} -"));
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn curl_through_the_forward_proxy_and_its_tunnel() {
    let s = server();
    let agent = Agent::new(&s.reactor);
    let proxy = s
        .reactor
        .listen_tcp(
            "127.0.0.1:0".parse().unwrap(),
            Site::new(ForwardProxy::new(&agent)),
        )
        .unwrap();
    let p = format!("http://{}", proxy.local_addr());
    let url = format!("http://{}/files/a.txt", s.addr);
    let (out, err) = curl(&s, &["-x", &p, &url]);
    assert_eq!(out, "abcdefghij", "{err}");
    let (out, err) = curl(&s, &["-p", "-x", &p, "-v", &url]);
    assert_eq!(out, "abcdefghij", "{err}");
    assert!(err.contains("CONNECT"), "{err}");
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn curl_over_https() {
    let s = server();
    let site = Site::new(FnResource::new(|req: Request| {
        Response::text(format!("{:?} secure={}", req.version(), req.is_secure()))
    }));
    let port = site
        .listen_tls(
            &s.reactor,
            "127.0.0.1:0".parse().unwrap(),
            &braid_tls::testing::server_config(),
        )
        .unwrap();
    let ca = s.dir.join("ca.pem");
    std::fs::write(&ca, braid_tls::testing::CA_PEM).unwrap();
    let url = format!("https://localhost:{}/", port.local_addr().port());
    let ca = ca.display().to_string();
    let (out, err) = curl(&s, &["--cacert", &ca, "--http1.1", &url]);
    assert_eq!(out, "HTTP/1.1 secure=true", "{err}");
    #[cfg(feature = "http2")]
    {
        let (out, err) = curl(&s, &["--cacert", &ca, "--http2", &url]);
        assert_eq!(out, "HTTP/2.0 secure=true", "{err}");
    }
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[test]
fn python_http_client() {
    let s = server();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/http_client.py");
    let python = std::env::var("BRAID_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut c = Command::new(python);
    c.arg(script).arg(s.addr.port().to_string());
    let (out, err) = run(&s.reactor, &mut c);
    assert!(!out.is_empty(), "python failed: {err}");
    let expect_sum: u64 = (0..500u64).map(|i| (i % 256) * 1000).sum();
    let want = format!(
        concat!(
            "{{\"get\": [200, \"abcdefghij\", \"text/plain; charset=utf-8\"], ",
            "\"range\": [206, \"def\", \"bytes 3-5/10\"], ",
            "\"conditional\": [304, \"\"], ",
            "\"chunked\": [200, \"500000 {} chunked\"], ",
            "\"sized\": [200, \"12345 1481400 -\"], ",
            "\"missing\": [404, true], ",
            "\"head\": [200, \"10\", \"\"]}}"
        ),
        expect_sum
    );
    assert_eq!(out.trim(), want, "{err}");
    assert_eq!(
        s.connections.get(),
        1,
        "http.client kept one connection alive"
    );
    let _ = std::fs::remove_dir_all(&s.dir);
}
