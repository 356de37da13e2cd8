#![cfg(unix)]
//! `braid web` as a process: files with ranges and conditional requests, a
//! reverse proxy mounted at a path in front of a second `braid web`, a
//! forward proxy with CONNECT, bad arguments refused; SIGTERM stops it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Web {
    child: Child,
    url: String,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Web {
    let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
        .arg("web")
        .args(["--port", "0", "--log", "warn"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // "braid web: http://127.0.0.1:PORT (what)"
    let url = first
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    Web { child, url }
}

/// One request on a fresh connection; the whole answer.
fn get(hostport: &str, request: &str) -> String {
    let mut s = TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn hostport(url: &str) -> &str {
    url.trim_start_matches("http://")
}

#[test]
fn braid_web_serves_files_proxies_and_tunnels() {
    let dir = std::env::temp_dir().join(format!("braid-cli-web-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(dir.join("docs").join("a.txt"), "0123456789").unwrap();
    let d = dir.display().to_string();
    let files = start(&["--path", &d]);
    let hp = hostport(&files.url).to_owned();
    let close = "Host: x\r\nConnection: close\r\n\r\n";

    let home = get(&hp, &format!("GET / HTTP/1.1\r\n{close}"));
    assert!(home.starts_with("HTTP/1.1 200"), "{home}");
    assert!(home.ends_with("<h1>home</h1>"));
    let range = get(
        &hp,
        &format!("GET /docs/a.txt HTTP/1.1\r\nRange: bytes=7-\r\n{close}"),
    );
    assert!(range.starts_with("HTTP/1.1 206"), "{range}");
    assert!(range.ends_with("\r\n\r\n789"));
    let listing = get(&hp, &format!("GET /docs/ HTTP/1.1\r\n{close}"));
    assert!(listing.contains("<a href=\"a.txt\">a.txt</a>"), "{listing}");
    let escape = get(
        &hp,
        &format!("GET /docs/..%2f..%2f..%2fetc%2fpasswd HTTP/1.1\r\n{close}"),
    );
    assert!(escape.starts_with("HTTP/1.1 404"), "{escape}");

    // A second braid web in front, proxying /files to the first.
    let proxy_arg = format!("/files={}/docs", files.url);
    let front = start(&["--proxy", &proxy_arg]);
    let fp = hostport(&front.url).to_owned();
    let via = get(&fp, &format!("GET /files/a.txt HTTP/1.1\r\n{close}"));
    assert!(via.starts_with("HTTP/1.1 200"), "{via}");
    assert!(via.ends_with("0123456789"), "{via}");
    let missing = get(&fp, &format!("GET /other HTTP/1.1\r\n{close}"));
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    // A forward proxy: absolute-form GET and a CONNECT tunnel.
    let fwd = start(&["--forward-proxy"]);
    let pp = hostport(&fwd.url).to_owned();
    let abs = get(
        &pp,
        &format!("GET {}/docs/a.txt HTTP/1.1\r\n{close}", files.url),
    );
    assert!(abs.ends_with("0123456789"), "{abs}");
    let mut s = TcpStream::connect(&pp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(
        format!("CONNECT {hp} HTTP/1.1\r\nHost: {hp}\r\n\r\nGET /docs/a.txt HTTP/1.1\r\n{close}")
            .as_bytes(),
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("0123456789"), "{out}");

    // SIGTERM stops it cleanly.
    let mut files = files;
    // SAFETY: signalling our own child process.
    assert_eq!(
        unsafe { libc::kill(files.child.id() as i32, libc::SIGTERM) },
        0
    );
    let status = files.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn braid_web_refuses_bad_arguments() {
    for args in [
        vec!["web", "--port", "0"],
        vec!["web", "--port", "0", "--path", "/no/such/dir/for/braid"],
        vec!["web", "--port", "0", "--proxy", "not a url"],
        vec![
            "web",
            "--port",
            "0",
            "--forward-proxy",
            "--allow",
            "10.0.0.0/99",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_braid"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("braid"), "{args:?}: {err}");
    }
}

#[test]
fn braid_web_with_workers_serves_from_several_threads_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("braid-cli-web-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello from a worker\n").unwrap();
    for extra in [&[][..], &["--shared-accept"][..]] {
        let mut args = vec!["--path", dir.to_str().unwrap(), "--workers", "3"];
        args.extend_from_slice(extra);
        let mut web = start(&args);
        let hp = hostport(&web.url).to_owned();
        // The worker threads are there (the kernel names them).
        let pid = web.child.id();
        let names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .collect();
        let workers = names
            .iter()
            .filter(|n| n.starts_with("braid-worker"))
            .count();
        assert_eq!(workers, 3, "{extra:?}: {names:?}");
        for _ in 0..30 {
            let r = get(
                &hp,
                "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            assert!(
                r.starts_with("HTTP/1.1 200") && r.ends_with("hello from a worker\n"),
                "{r}"
            );
        }
        // SIGTERM: every worker stops, the process exits 0.
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let status = web.child.wait().unwrap();
        assert!(status.success(), "{extra:?}: {status:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn braid_web_takes_the_socket_systemd_passes() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = std::env::temp_dir().join(format!("braid-cli-web-sd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "activated\n").unwrap();
    // The socket systemd would make: listening already, handed over as
    // descriptor 3 with LISTEN_PID naming the process and LISTEN_FDS=1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" web --log warn --port 1 --path "$1" --workers 2"#)
        .arg(env!("CARGO_BIN_EXE_braid"))
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: dup2 between fork and exec; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // (dup2 onto itself keeps close-on-exec: clear it by hand)
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let web = Web {
        child,
        url: first
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_owned(),
    };
    assert_eq!(
        web.url,
        format!("http://{addr}"),
        "the passed socket, not --port"
    );
    drop(listener);
    let r = get(
        &addr.to_string(),
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("activated\n"),
        "{r}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
