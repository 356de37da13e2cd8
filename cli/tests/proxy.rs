#![cfg(unix)]
//! `braid socks` and `braid portforward` as processes, with curl as the
//! client: SOCKS4, SOCKS4a, SOCKS5, SOCKS5 with the name resolved by the
//! proxy, and SOCKS5 with a password from `braid passwd`; a port forward
//! in front of `braid web`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

mod common;
use common::Running;

/// `braid ARGS`, and where it listens (the last word of its first line,
/// or the address in `braid web`'s).
fn braid(args: &[&str]) -> (Running, String) {
    let (child, first) = common::braid(args);
    let words: Vec<&str> = first.split_whitespace().collect();
    let addr = if args[0] == "web" {
        // "braid web: http://127.0.0.1:PORT (what)"
        words[2]
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned()
    } else {
        words.last().unwrap().to_string()
    };
    (child, addr)
}

/// A directory with one file, served by `braid web`.
fn web() -> (Running, String, String) {
    // One directory per call: the tests run at once in one process, and a
    // file rewritten under another test's server would be read half-made.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("braid-proxy-web-{}-{n}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let body = "hello through the proxy\n".repeat(1000);
    std::fs::write(dir.join("hello.txt"), &body).unwrap();
    let (w, addr) = braid(&[
        "web",
        "--port",
        "0",
        "--log",
        "warn",
        "--path",
        dir.to_str().unwrap(),
    ]);
    (w, addr, body)
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl (./scripts/test.sh installs it)")
}

#[test]
fn curl_through_braid_socks_4_4a_5_and_5_hostname() {
    let (_web, web_addr, body) = web();
    let port = web_addr.rsplit(':').next().unwrap().to_owned();
    let (_socks, socks) = braid(&["socks", "--port", "0"]);
    for (flag, host) in [
        ("--socks4", "127.0.0.1"),
        ("--socks4a", "localhost"),
        ("--socks5", "127.0.0.1"),
        ("--socks5-hostname", "localhost"),
    ] {
        let out = curl(&[flag, &socks, &format!("http://{host}:{port}/hello.txt")]);
        assert!(
            out.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), body, "{flag}");
    }
    // A refused target: the failure reaches curl as SOCKS's code.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = curl(&["--socks5", &socks, &format!("http://127.0.0.1:{closed}/")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // curl 7.88 prints the reply code: 5 is "connection refused".
    assert!(err.contains("(5)"), "{err}");
}

#[test]
fn socks5_with_passwords_from_braid_passwd_and_socks4_refused() {
    let (_web, web_addr, body) = web();
    let port = web_addr.rsplit(':').next().unwrap().to_owned();
    let dir = std::env::temp_dir().join(format!("braid-proxy-users-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let users = dir.join("users.txt");
    let _ = std::fs::remove_file(&users);
    let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
        .arg("passwd")
        .arg(&users)
        .arg("sam")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "s3cret").unwrap();
    assert!(child.wait().unwrap().success());
    let (_socks, socks) = braid(&["socks", "--port", "0", "--users", users.to_str().unwrap()]);
    let url = format!("http://localhost:{port}/hello.txt");
    let out = curl(&["-x", &format!("socks5h://sam:s3cret@{socks}"), &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), body);
    let out = curl(&["-x", &format!("socks5h://sam:wrong@{socks}"), &url]);
    assert!(!out.status.success());
    let out = curl(&["--socks5-hostname", &socks, &url]);
    assert!(!out.status.success(), "no password offered");
    let out = curl(&["--socks4a", &socks, &url]);
    assert!(!out.status.success(), "SOCKS4 carries no password");
}

#[test]
fn curl_through_braid_portforward() {
    let (_web, web_addr, body) = web();
    let (_fwd, fwd) = braid(&["portforward", "--port", "0", "--to", &web_addr]);
    let out = curl(&[&format!("http://{fwd}/hello.txt")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), body);
    // A target that is down: the client is closed, not left hanging.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_fwd2, fwd2) = braid(&["portforward", "--port", "0", "--to", &closed.to_string()]);
    let out = curl(&[&format!("http://{fwd2}/")]);
    assert!(!out.status.success());
}
