// The peers (openssl, curl, Python, tinyproxy) are Linux programs, which a
// Windows build under Wine cannot start: Unix only.
#![cfg(unix)]
//! Interoperability with OpenSSL's command-line peers (Debian's `openssl`):
//! a braid client against `openssl s_server`, and `openssl s_client`
//! against a braid server, including a verification failure each way.

use braid_tls::prelude::*;
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use braid::testing::run_until;
use braid::{Address, CloseReason, Protocol, Reactor, Transport};
use braid_tls::testing as pki;
use braid_tls::TlsErrorKind;

const LIMIT: Duration = Duration::from_secs(30);

/// The test PKI written to a fresh directory, for openssl.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(tag: &str) -> Files {
        // One directory per call: tests run in parallel, and one removing
        // a shared directory under another's openssl made both flaky.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("braid-openssl-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pem) in [
            ("ca.pem", pki::CA_PEM),
            ("server.pem", pki::SERVER_PEM),
            ("server.key", pki::SERVER_KEY),
            ("client.pem", pki::CLIENT_PEM),
            ("client.key", pki::CLIENT_KEY),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Files { dir }
    }
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl() -> Command {
    assert!(
        Command::new("openssl").arg("version").output().is_ok(),
        "these tests need Debian's `openssl` (scripts/test.sh installs it)"
    );
    Command::new("openssl")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Lines of a child's stdout, read on a thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(rx: &mpsc::Receiver<String>, want: &str) -> Vec<String> {
    match try_wait_for_line(rx, want) {
        Ok(seen) => seen,
        Err(seen) => panic!("no line with {want:?}; saw {seen:?}"),
    }
}

/// The lines up to one containing `want`, or those seen before the
/// output ended (or LIMIT passed).
fn try_wait_for_line(rx: &mpsc::Receiver<String>, want: &str) -> Result<Vec<String>, Vec<String>> {
    let mut seen = Vec::new();
    let end = std::time::Instant::now() + LIMIT;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(want);
                seen.push(l);
                if hit {
                    return Ok(seen);
                }
            }
            Err(_) => return Err(seen),
        }
    }
}

#[derive(Default)]
struct Seen {
    got: Vec<u8>,
    version: Option<String>,
    lost: Option<(Option<TlsErrorKind>, String)>,
}

struct Client {
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for Client {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"hello from braid\n");
    }
    fn handshake_completed(&mut self, t: &Transport) {
        let v = t.tls_info().unwrap().protocol_version;
        self.seen.borrow_mut().version = v.map(|v| format!("{v:?}"));
    }
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        let mut s = self.seen.borrow_mut();
        s.got.extend_from_slice(d);
        if s.got.ends_with(b"hello from openssl\n") {
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, r: &CloseReason) {
        self.seen.borrow_mut().lost = Some((r.tls_error().map(|e| e.kind()), r.to_string()));
    }
}

/// braid's client against `openssl s_server`, with the given extra
/// s_server arguments; returns what braid saw.
fn against_s_server(extra: &[&str], name: &str) -> Seen {
    let files = Files::new("s_server");
    // A free port can be taken between our probe and s_server's bind:
    // then s_server exits at once, and we try another.
    let (mut server, lines, port) = (0..5)
        .find_map(|_| {
            let port = free_port();
            let mut server = openssl()
                .args(["s_server", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-cert", &files.path("server.pem")])
                .args(["-key", &files.path("server.key")])
                .args(["-naccept", "1"])
                .args(extra)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let lines = lines_of(&mut server);
            if try_wait_for_line(&lines, "ACCEPT").is_ok() {
                Some((server, lines, port))
            } else {
                let _ = server.kill();
                let _ = server.wait();
                None
            }
        })
        .expect("openssl s_server starts on a free port");
    let reactor = Reactor::new().unwrap();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let s = seen.clone();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    reactor.connect_tls(
        addr,
        name,
        move |_: &Address| Client { seen: s.clone() },
        &pki::client_config(),
        None,
    );
    let mut stdin = server.stdin.take().unwrap();
    let mut answered = false;
    run_until(&reactor, LIMIT, || {
        if seen.borrow().version.is_some() && !answered {
            // s_server passes its stdin to the client.
            stdin.write_all(b"hello from openssl\n").unwrap();
            stdin.flush().unwrap();
            answered = true;
        }
        seen.borrow().lost.is_some()
    })
    .unwrap();
    drop(stdin);
    if seen.borrow().lost.as_ref().unwrap().0.is_none() {
        wait_for_line(&lines, "hello from braid");
    }
    let _ = server.kill();
    let _ = server.wait();
    let seen = std::mem::take(&mut *seen.borrow_mut());
    seen
}

#[test]
fn braid_client_with_openssl_s_server_tls13_and_tls12() {
    let seen = against_s_server(&[], "localhost");
    assert_eq!(seen.got, b"hello from openssl\n");
    assert_eq!(seen.version.as_deref(), Some("TLSv1_3"));
    assert_eq!(seen.lost.unwrap().0, None, "a clean close");

    let seen = against_s_server(&["-tls1_2"], "localhost");
    assert_eq!(seen.got, b"hello from openssl\n");
    assert_eq!(seen.version.as_deref(), Some("TLSv1_2"));
}

#[test]
fn braid_client_refuses_openssl_s_server_under_the_wrong_name() {
    let seen = against_s_server(&[], "mail.example.net");
    assert_eq!(
        seen.lost.as_ref().unwrap().0,
        Some(TlsErrorKind::NameMismatch)
    );
    assert!(seen.got.is_empty());
}

/// Upper-cases one line, then closes with close_notify.
struct Shout {
    seen: Rc<RefCell<Seen>>,
}

impl Protocol for Shout {
    fn handshake_completed(&mut self, t: &Transport) {
        let info = t.tls_info().unwrap();
        let mut s = self.seen.borrow_mut();
        s.version = info.protocol_version.map(|v| format!("{v:?}"));
    }
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        let mut s = self.seen.borrow_mut();
        s.got.extend_from_slice(d);
        if s.got.ends_with(b"\n") {
            t.write(&s.got.to_ascii_uppercase());
            t.lose_connection();
        }
    }
    fn connection_lost(&mut self, r: &CloseReason) {
        self.seen.borrow_mut().lost = Some((r.tls_error().map(|e| e.kind()), r.to_string()));
    }
}

/// `openssl s_client` against a braid server; returns s_client's exit
/// status and output, and what the server saw.
fn s_client_against_braid(extra: &[&str], require_client_cert: bool) -> (bool, String, Seen) {
    let files = Files::new("s_client");
    let reactor = Reactor::new().unwrap();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let s = seen.clone();
    let mut config = pki::server_config();
    if require_client_cert {
        config = config
            .client_auth_pem(pki::CA_PEM.as_bytes(), true)
            .unwrap();
    }
    let port = reactor
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            move |_: &Address| Shout { seen: s.clone() },
            &config,
        )
        .unwrap();
    let mut client = openssl()
        .args(["s_client", "-connect"])
        .arg(port.local_addr().to_string())
        .args(["-CAfile", &files.path("ca.pem")])
        .args(["-verify_return_error", "-quiet"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"ping from openssl\n")
        .unwrap();
    let mut status = None;
    run_until(&reactor, LIMIT, || {
        if status.is_none() {
            status = client.try_wait().unwrap();
        }
        status.is_some() && seen.borrow().lost.is_some()
    })
    .unwrap();
    let _ = client.wait(); // already exited: reaps it
    let mut out = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let seen = std::mem::take(&mut *seen.borrow_mut());
    (status.unwrap().success(), format!("{out}{err}"), seen)
}

#[test]
fn openssl_s_client_with_braid_server() {
    let (ok, out, seen) = s_client_against_braid(&["-servername", "localhost"], false);
    assert!(ok, "s_client failed: {out}");
    assert!(out.contains("PING FROM OPENSSL"), "{out}");
    assert_eq!(seen.got, b"ping from openssl\n");
    assert_eq!(seen.version.as_deref(), Some("TLSv1_3"));
    assert_eq!(seen.lost.unwrap().0, None, "clean");

    let (ok, out, seen) = s_client_against_braid(&["-tls1_2"], false);
    assert!(ok, "s_client failed: {out}");
    assert!(out.contains("PING FROM OPENSSL"), "{out}");
    assert_eq!(seen.version.as_deref(), Some("TLSv1_2"));
}

#[test]
fn openssl_s_client_with_a_client_certificate() {
    let files = Files::new("s_client_cert");
    let (cert, key) = (files.path("client.pem"), files.path("client.key"));
    let (ok, out, seen) = s_client_against_braid(&["-cert", &cert, "-key", &key], true);
    assert!(ok, "s_client failed: {out}");
    assert!(out.contains("PING FROM OPENSSL"), "{out}");
    assert_eq!(seen.got, b"ping from openssl\n");
    // Without a certificate the braid server refuses the client.
    let (_, _, seen) = s_client_against_braid(&[], true);
    assert!(seen.got.is_empty());
    assert_eq!(seen.lost.unwrap().0, Some(TlsErrorKind::BadCertificate));
}

#[test]
fn openssl_s_client_refuses_braid_server_under_the_wrong_name() {
    let (ok, out, seen) = s_client_against_braid(&["-verify_hostname", "mail.example.net"], false);
    assert!(!ok, "s_client should fail verification: {out}");
    assert!(!out.contains("PING"), "{out}");
    assert!(seen.got.is_empty());
    assert_eq!(seen.lost.unwrap().0, Some(TlsErrorKind::PeerAlert));
}
