#![cfg(unix)]
//! `braid web --distrib` and `--publish` against Twisted's
//! `twisted.web.distrib` (26.10 from PyPI, in the venv `scripts/test.sh`
//! makes), both ways, and the permission separation it exists for: a
//! publisher running as another user serves a file the front cannot
//! open.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{braid, Running};

fn python() -> PathBuf {
    let p = std::env::var_os("BRAID_TWISTED_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pytwisted/bin/python")
        });
    let ok = Command::new(&p)
        .args(["-c", "import twisted.web.distrib"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "these tests need Python with Twisted: run scripts/test.sh (it makes target/pytwisted), or set BRAID_TWISTED_PYTHON"
    );
    p
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("braid-distrib-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts a Python script and waits for its "listening X" line: X.
fn start_python(args: &[&std::ffi::OsStr]) -> (Running, String) {
    let mut child = Running(
        Command::new(python())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let line = lines.next().expect("the script's output").unwrap();
    let at = line
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim()
        .to_owned();
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (child, at)
}

/// An HTTP/1.1 exchange on a new connection (closed after it): status,
/// headers (names lowercased) and the body (chunked framing undone).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn http(addr: &str, method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = unchunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = std::str::from_utf8(&b[..nl]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

fn http_addr(first_line: &str) -> String {
    first_line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split([' ', '/']).next())
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_owned()
}

fn wait_for_socket(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_braid_front_forwards_to_a_twisted_publisher() {
    let dir = scratch("twisted-publisher");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a.txt"), "hello file\n").unwrap();
    let big = random_bytes(3 * 1024 * 1024 + 5, 9);
    std::fs::write(files.join("big.bin"), &big).unwrap();
    let sock = dir.join("pub.sock");
    let (publisher, _) = start_python(&[
        script("distrib_publisher.py").as_os_str(),
        sock.as_os_str(),
        files.as_os_str(),
    ]);
    let (_front, line) = braid(&[
        "web",
        "--port",
        "0",
        "--distrib",
        &format!("/t=unix:{}", sock.display()),
    ]);
    let addr = http_addr(&line);

    // Method, URI, query, headers, host and body all arrive as Twisted's
    // own front would send them.
    let a = http(
        &addr,
        "POST",
        "/t/echo/a/b?x=1&x=2",
        &[("Host", "example.test:8080"), ("X-Test", "yes")],
        b"hello body",
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let t = a.text();
    for want in [
        r#""method": "POST""#,
        r#""uri": "/t/echo/a/b?x=1&x=2""#,
        r#""path": "/t/echo/a/b""#,
        r#""prepath": ["t", "echo"]"#,
        r#""postpath": ["a", "b"]"#,
        r#""args": {"x": ["1", "2"]}"#,
        r#""host": "example.test""#,
        r#""x_test": "yes""#,
        r#""client": "127.0.0.1""#,
        r#""body_len": 10"#,
        r#""body_head": "hello body""#,
    ] {
        assert!(t.contains(want), "{want} not in {t}");
    }
    assert_eq!(a.header("x-publisher"), Some("twisted"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("set-cookie"), Some("sid=abc; Path=/; HttpOnly"));

    // A body as large as Twisted's wire takes, and one over it.
    let body = random_bytes(600 * 1024, 1);
    let a = http(&addr, "PUT", "/t/echo", &[], &body);
    assert!(a.text().contains(r#""body_len": 614400"#), "{}", a.text());
    let a = http(&addr, "PUT", "/t/echo", &[], &random_bytes(700 * 1024, 2));
    assert_eq!(a.status, 413, "{}", a.text());

    // The publisher's errors, codes, files and 404s.
    let a = http(&addr, "GET", "/t/fail", &[], b"");
    assert_eq!(a.status, 502);
    assert!(a.text().contains("RuntimeError"), "{}", a.text());
    let a = http(&addr, "GET", "/t/code", &[], b"");
    assert_eq!((a.status, a.text().as_str()), (418, "teapot"));
    let a = http(&addr, "GET", "/t/files/a.txt", &[], b"");
    assert_eq!((a.status, a.text().as_str()), (200, "hello file\n"));
    assert!(a.header("last-modified").is_some());
    assert_eq!(http(&addr, "GET", "/t/files/nope", &[], b"").status, 404);
    // Conditional requests: Twisted's File asks setLastModified, then
    // sets 200 and writes the file; the front answers 304 without it.
    let a = http(&addr, "GET", "/t/files/a.txt", &[], b"");
    let modified = a.header("last-modified").unwrap().to_owned();
    let a = http(
        &addr,
        "GET",
        "/t/files/a.txt",
        &[("If-Modified-Since", &modified)],
        b"",
    );
    assert_eq!(a.status, 304, "{:?}", a.headers);
    assert!(a.body.is_empty() && a.header("content-length").is_none());
    let a = http(
        &addr,
        "GET",
        "/t/files/a.txt",
        &[("If-Modified-Since", "Thu, 01 Jan 2015 00:00:00 GMT")],
        b"",
    );
    assert_eq!((a.status, a.text().as_str()), (200, "hello file\n"));
    // Twisted's File sends through a pull producer the front drives as
    // its client reads (resumeProducing per piece).
    let a = http(&addr, "GET", "/t/files/big.bin", &[], b"");
    assert_eq!(a.status, 200);
    assert!(
        a.body == big,
        "the 3 MB file differs ({} bytes)",
        a.body.len()
    );

    // The publisher goes: 503 (or 502 for the request the drop cut),
    // never a hang; it comes back: the next request reconnects.
    drop(publisher);
    let down = http(&addr, "GET", "/t/echo", &[], b"");
    assert!(matches!(down.status, 502 | 503), "{}", down.status);
    let again = http(&addr, "GET", "/t/echo", &[], b"");
    assert_eq!(again.status, 503, "{}", again.text());
    // (Twisted leaves its socket file behind.)
    std::fs::remove_file(&sock).unwrap();
    let (_publisher, _) = start_python(&[
        script("distrib_publisher.py").as_os_str(),
        sock.as_os_str(),
        files.as_os_str(),
    ]);
    let back = http(&addr, "GET", "/t/echo/x", &[], b"");
    assert_eq!(back.status, 200, "{}", back.text());
    assert!(back.text().contains(r#""postpath": ["x"]"#));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_twisted_front_forwards_to_a_braid_publisher() {
    let dir = scratch("braid-publisher");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a.txt"), "hello file\n").unwrap();
    let big = random_bytes(3 * 1024 * 1024, 3);
    std::fs::write(files.join("big.bin"), &big).unwrap();
    let sock = dir.join("pub.sock");
    let (_publisher, line) = braid(&[
        "web",
        "--path",
        files.to_str().unwrap(),
        "--publish",
        &format!("unix:{}", sock.display()),
    ]);
    assert!(line.contains("publishing unix:"), "{line}");
    wait_for_socket(&sock);
    let (_front, port) = start_python(&[script("distrib_front.py").as_os_str(), sock.as_os_str()]);
    let addr = format!("127.0.0.1:{port}");

    let a = http(&addr, "GET", "/d/a.txt", &[], b"");
    assert_eq!((a.status, a.text().as_str()), (200, "hello file\n"));
    assert_eq!(a.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(a.header("content-length"), Some("11"));
    assert!(a.header("last-modified").is_some());
    assert!(a.header("etag").is_some());
    assert_eq!(
        a.header("server").map(|s| s.starts_with("TwistedWeb")),
        Some(true)
    );

    // braid's File answers conditionals itself, through Twisted's front.
    let etag = a.header("etag").unwrap().to_owned();
    let a = http(&addr, "GET", "/d/a.txt", &[("If-None-Match", &etag)], b"");
    assert_eq!(a.status, 304, "{:?}", a.headers);
    assert!(a.body.is_empty());

    let a = http(&addr, "GET", "/d/nope.txt", &[], b"");
    assert_eq!(a.status, 404);

    let a = http(&addr, "GET", "/d/big.bin", &[], b"");
    assert_eq!(a.status, 200);
    assert_eq!(a.body.len(), big.len());
    assert!(a.body == big, "the 3 MB response differs");

    // A range, answered by braid's File through Twisted's front.
    let a = http(&addr, "GET", "/d/big.bin", &[("Range", "bytes=10-19")], b"");
    assert_eq!(a.status, 206);
    assert_eq!(a.body, big[10..20]);

    // Past banana's 640 KiB, Twisted's front cannot send the body: its
    // callRemote raises and it answers 500 (on a connection it already
    // has; a request that opens the connection hangs in Twisted 26.10).
    // The braid publisher is untouched and goes on serving.
    let a = http(&addr, "POST", "/d/a.txt", &[], &random_bytes(700 * 1024, 4));
    assert_eq!(a.status, 500);
    let a = http(&addr, "GET", "/d/a.txt", &[], b"");
    assert_eq!((a.status, a.text().as_str()), (200, "hello file\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn braid_fronts_and_publishes_over_tcp() {
    let dir = scratch("tcp");
    std::fs::write(dir.join("a.txt"), "over tcp\n").unwrap();
    let (_publisher, line) = braid(&["web", "--path", dir.to_str().unwrap(), "--publish", "tcp:0"]);
    let at = line
        .split("publishing tcp:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let (_front, line) = braid(&["web", "--port", "0", "--distrib", &format!("/p={at}")]);
    let addr = http_addr(&line);
    let a = http(&addr, "GET", "/p/a.txt", &[], b"");
    assert_eq!((a.status, a.text().as_str()), (200, "over tcp\n"));
    assert_eq!(
        http(&addr, "GET", "/p/", &[], b"").status,
        200,
        "the listing"
    );
    assert_eq!(http(&addr, "GET", "/elsewhere", &[], b"").status, 404);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_personal_publisher_listens_in_its_home() {
    let home = scratch("personal");
    std::fs::create_dir_all(home.join("site")).unwrap();
    std::fs::write(home.join("site/index.html"), "my page\n").unwrap();
    let (_publisher, line) = common::start(
        Command::new(env!("CARGO_BIN_EXE_braid"))
            .args([
                "web",
                "--path",
                home.join("site").to_str().unwrap(),
                "--personal",
            ])
            .env("HOME", &home),
    );
    let sock = home.join(".braid-web.sock");
    assert!(
        line.contains(&format!("publishing unix:{}", sock.display())),
        "{line}"
    );
    wait_for_socket(&sock);
    let (_front, line) = braid(&[
        "web",
        "--port",
        "0",
        "--distrib",
        &format!("/me=unix:{}", sock.display()),
    ]);
    let a = http(&http_addr(&line), "GET", "/me/", &[], b"");
    assert_eq!((a.status, a.text().as_str()), (200, "my page\n"));
    let (_, refused) = braid(&["web", "--path", ".", "--personal", "--publish", "tcp:0"]);
    assert!(
        refused.is_empty(),
        "--personal with --publish started: {refused}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

fn uid_of(user: &str) -> Option<(u32, u32)> {
    let out = Command::new("id").arg("-u").arg(user).output().ok()?;
    let uid = String::from_utf8(out.stdout).ok()?.trim().parse().ok()?;
    let out = Command::new("id").arg("-g").arg(user).output().ok()?;
    let gid = String::from_utf8(out.stdout).ok()?.trim().parse().ok()?;
    Some((uid, gid))
}

/// Starts `braid ARGS` as `uid:gid`; returns its first line.
fn braid_as(uid: u32, gid: u32, args: &[&str]) -> (Running, String) {
    common::start(
        Command::new(env!("CARGO_BIN_EXE_braid"))
            .args(args)
            .uid(uid)
            .gid(gid)
            .env("HOME", "/"),
    )
}

#[test]
fn a_publisher_running_as_another_user_serves_what_the_front_cannot_read() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: run as root (scripts/test.sh in CI is) to switch users");
        return;
    }
    // scripts/test.sh creates the publisher's user; make it here if this
    // test runs alone.
    const USER: &str = "braid-publisher";
    if uid_of(USER).is_none() {
        let ok = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "useradd {USER} failed");
    }
    let (pub_uid, pub_gid) = uid_of(USER).unwrap();
    let (front_uid, front_gid) = uid_of("nobody").expect("the nobody user");
    assert_ne!(pub_uid, front_uid);

    let dir = scratch("users");
    let run = |args: &[&str]| {
        assert!(
            Command::new(args[0])
                .args(&args[1..])
                .status()
                .unwrap()
                .success(),
            "{args:?}"
        );
    };
    // /tmp/...: 0755 so that both may reach the sockets; the files only
    // the publisher's user may read.
    run(&["chmod", "0755", dir.to_str().unwrap()]);
    let private = dir.join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(
        private.join("secret.txt"),
        "only the publisher reads this\n",
    )
    .unwrap();
    let owner = format!("{pub_uid}:{pub_gid}");
    run(&["chown", "-R", &owner, private.to_str().unwrap()]);
    run(&["chmod", "0700", private.to_str().unwrap()]);
    run(&[
        "chmod",
        "0600",
        private.join("secret.txt").to_str().unwrap(),
    ]);
    let socks = dir.join("run");
    std::fs::create_dir_all(&socks).unwrap();
    run(&["chown", &owner, socks.to_str().unwrap()]);
    run(&["chmod", "0755", socks.to_str().unwrap()]);
    let sock = socks.join("pub.sock");
    // The user's home, for /~user/ below (usermod refuses while the
    // user has processes: before any starts).
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    run(&["chown", &owner, home.to_str().unwrap()]);
    run(&["chmod", "0755", home.to_str().unwrap()]);
    run(&["usermod", "--home", home.to_str().unwrap(), USER]);

    let (_publisher, line) = braid_as(
        pub_uid,
        pub_gid,
        &[
            "web",
            "--path",
            private.to_str().unwrap(),
            "--publish",
            &format!("unix:{}", sock.display()),
        ],
    );
    assert!(line.contains("publishing"), "{line}");
    wait_for_socket(&sock);
    let (front, line) = braid_as(
        front_uid,
        front_gid,
        &[
            "web",
            "--port",
            "0",
            "--distrib",
            &format!("/private=unix:{}", sock.display()),
        ],
    );
    let addr = http_addr(&line);

    let a = http(&addr, "GET", "/private/secret.txt", &[], b"");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.text(), "only the publisher reads this\n");

    // The front's own process cannot open the file: its user is shown
    // by /proc, and that user is refused.
    let status = std::fs::read_to_string(format!("/proc/{}/status", front.0.id())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(1) == Some(&front_uid.to_string()),
        "{uid_line}"
    );
    let cat = Command::new("cat")
        .arg(private.join("secret.txt"))
        .uid(front_uid)
        .gid(front_gid)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        !cat.status.success(),
        "the front's user could read the file"
    );
    assert!(String::from_utf8_lossy(&cat.stderr).contains("Permission denied"));

    // The same through /~user/: the user's own `--personal` publisher in
    // their home, found by a front's `--user-dirs`.
    let (_personal, line) = common::start(
        Command::new(env!("CARGO_BIN_EXE_braid"))
            .args(["web", "--path", private.to_str().unwrap(), "--personal"])
            .uid(pub_uid)
            .gid(pub_gid)
            .env("HOME", &home),
    );
    assert!(line.contains(".braid-web.sock"), "{line}");
    wait_for_socket(&home.join(".braid-web.sock"));
    let (_users_front, line) =
        braid_as(front_uid, front_gid, &["web", "--port", "0", "--user-dirs"]);
    let a = http(
        &http_addr(&line),
        "GET",
        &format!("/~{USER}/secret.txt"),
        &[],
        b"",
    );
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.text(), "only the publisher reads this\n");
    let a = http(&http_addr(&line), "GET", "/~nobody/secret.txt", &[], b"");
    assert_eq!(a.status, 404);
    let _ = std::fs::remove_dir_all(&dir);
}
