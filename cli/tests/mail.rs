#![cfg(unix)]
//! `braid mail` against real mail software: swaks and Python's smtplib as
//! clients, and `braid mail send` delivering to aiosmtpd (PyPI) and to
//! `braid mail` itself, with STARTTLS and AUTH. `./scripts/test.sh`
//! installs swaks (Debian) and aiosmtpd (a venv, BRAID_MAIL_PYTHON).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use braid_tls::testing::{CA_PEM, SERVER_KEY, SERVER_PEM};

mod common;
#[path = "../../tests/common/postgres_server.rs"]
mod postgres_server;
use common::{braid, Running};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("braid-mail-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Test certificate files in `dir`: (ca, cert, key).
fn certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let files = [
        ("ca.pem", CA_PEM),
        ("cert.pem", SERVER_PEM),
        ("key.pem", SERVER_KEY),
    ];
    for (n, pem) in files {
        std::fs::write(dir.join(n), pem).unwrap();
    }
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// `braid mail ARGS --port 0`, and where it listens.
fn braid_mail(args: &[&str]) -> (Running, SocketAddr) {
    let mut all = vec!["mail", "--port", "0"];
    all.extend_from_slice(args);
    let (child, first) = braid(&all);
    let addr = first
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no address in {first:?}"));
    (child, addr)
}

/// The messages in `maildir/user/new`, sorted.
fn mailbox(maildir: &Path, user: &str) -> Vec<String> {
    let mut out: Vec<String> = match std::fs::read_dir(maildir.join(user).join("new")) {
        Ok(d) => d
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    if !out.status.success() {
        eprintln!(
            "{:?} failed: {}\n{}",
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// `braid mail send ARGS < message`.
fn mail_send(args: &[&str], message: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["mail", "send"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    child.wait_with_output().unwrap()
}

fn swaks(addr: SocketAddr, extra: &[&str]) -> Output {
    run(Command::new("swaks")
        .args([
            "--server",
            &addr.to_string(),
            "--from",
            "bob@example.net",
            "--timeout",
            "20",
        ])
        .args(extra))
}

#[test]
fn swaks_plain_pipelined_8bit_then_starttls_and_auth() {
    let dir = scratch("swaks");
    let (_, cert, key) = certs(&dir);
    let md = dir.join("maildir");
    let (_server, addr) = braid_mail(&[
        "--maildir",
        md.to_str().unwrap(),
        "--user",
        "alice:secret",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    // Plain, pipelined, an 8-bit body.
    let out = swaks(
        addr,
        &[
            "--to",
            "alice@localhost",
            "--pipeline",
            "--body",
            "caf\u{e9} \u{2615}\n.leading dot\n",
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("250-PIPELINING") && text.contains("queued as"),
        "{text}"
    );
    // STARTTLS, then AUTH LOGIN (AUTH is only offered under TLS).
    let out = swaks(
        addr,
        &[
            "--to",
            "alice@localhost",
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "secret",
        ],
    );
    assert!(out.status.success());
    // A wrong password, an unknown user and relaying are refused.
    let out = swaks(
        addr,
        &[
            "--to",
            "alice@localhost",
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "nope",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("535 5.7.8"));
    let out = swaks(addr, &["--to", "nobody@localhost"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("550 5.1.1"));
    let out = swaks(addr, &["--to", "someone@elsewhere.example"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("554 5.7.1"));

    let mail = mailbox(&md, "alice");
    assert_eq!(mail.len(), 2, "{mail:?}");
    let eight = mail
        .iter()
        .find(|m| m.contains("caf\u{e9}"))
        .expect("the 8-bit message");
    assert!(
        eight.contains("caf\u{e9} \u{2615}\r\n.leading dot\r\n"),
        "{eight}"
    );
    assert!(eight.contains("with ESMTP id"), "{eight}");
    let tls = mail.iter().find(|m| !m.contains("caf\u{e9}")).unwrap();
    assert!(tls.contains("with ESMTPSA id"), "{tls}");
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
msg = "Subject: from smtplib\r\n\r\n\u00e9t\u00e9\r\n..two dots\r\n".encode("utf-8")
with smtplib.SMTP(host, port, timeout=20) as s:
    s.ehlo()
    assert s.has_extn("size") and s.has_extn("8bitmime") and s.has_extn("starttls")
    assert not s.has_extn("auth"), "AUTH before TLS"
    s.sendmail("py@example.net", ["alice@localhost"], msg, mail_options=["BODY=8BITMIME"])
    try:
        s.sendmail("py@example.net", ["alice@localhost"], b"x" * 5000)
        raise SystemExit("an oversize message was accepted")
    except smtplib.SMTPSenderRefused as e:
        assert e.smtp_code == 552, e
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 552, e
    try:
        s.sendmail("py@example.net", ["root@elsewhere.example"], b"Subject: relay\r\n\r\nx\r\n")
        raise SystemExit("relayed")
    except smtplib.SMTPRecipientsRefused as e:
        assert e.recipients["root@elsewhere.example"][0] == 554, e
    s.starttls(context=ssl.create_default_context(cafile=ca))
    s.ehlo()
    assert s.has_extn("auth"), "no AUTH under TLS"
    s.login("alice", "secret")
    s.sendmail("alice@localhost", ["alice@localhost", "bob@localhost"], b"Subject: under tls\r\n\r\nsecret\r\n")
with smtplib.SMTP(host, port, timeout=20) as s:
    s.starttls(context=ssl.create_default_context(cafile=ca))
    s.ehlo()
    s.user, s.password = "bob", "hunter2"
    code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    assert code == 235, code
print("ok")
"#;

#[test]
fn pythons_smtplib_plain_starttls_auth_8bit_and_refusals() {
    let dir = scratch("smtplib");
    let (ca, cert, key) = certs(&dir);
    let md = dir.join("maildir");
    let (_server, addr) = braid_mail(&[
        "--maildir",
        md.to_str().unwrap(),
        "--user",
        "alice:secret",
        "--user",
        "bob:hunter2",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--max-size",
        "4096",
    ]);
    let out = run(Command::new("python3").args([
        "-c",
        SMTPLIB,
        "localhost",
        &addr.port().to_string(),
        ca.to_str().unwrap(),
    ]));
    assert!(out.status.success());
    let alice = mailbox(&md, "alice");
    assert_eq!(alice.len(), 2, "{alice:?}");
    assert!(
        alice
            .iter()
            .any(|m| m.contains("\u{e9}t\u{e9}\r\n..two dots\r\n")),
        "{alice:?}"
    );
    let bob = mailbox(&md, "bob");
    assert_eq!(bob.len(), 1);
    assert!(
        bob[0].contains("Subject: under tls") && bob[0].contains("with ESMTPSA"),
        "{bob:?}"
    );
}

const AIOSMTPD: &str = r#"
import asyncio, ssl, sys, os
from aiosmtpd.controller import Controller
cert, key, out, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = len(os.listdir(out))
        with open(os.path.join(out, "%d.eml" % n), "wb") as f:
            f.write(("tls=%s from=%s to=%s\n" % (session.ssl is not None, envelope.mail_from, ",".join(envelope.rcpt_tos))).encode())
            f.write(envelope.original_content)
        return "250 OK stored"
c = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True)
c.start()
print("listening", port, flush=True)
sys.stdin.read()
c.stop()
"#;

#[test]
fn braid_mail_send_delivers_to_aiosmtpd_over_starttls() {
    let python = std::env::var("BRAID_MAIL_PYTHON").expect(
        "BRAID_MAIL_PYTHON is not set: run the suite through ./scripts/test.sh, which installs aiosmtpd",
    );
    let dir = scratch("aiosmtpd");
    let (ca, cert, key) = certs(&dir);
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    // aiosmtpd's controller cannot listen on port 0: take a free one.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut py = Command::new(python)
        .args([
            "-c",
            AIOSMTPD,
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            out_dir.to_str().unwrap(),
        ])
        .arg(free.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(py.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port: u16 = first.trim().rsplit(' ').next().unwrap().parse().unwrap();
    let _py = Running(py);

    let message = b"Subject: to aiosmtpd\r\n\r\n.starts with a dot\r\nlast line without newline";
    let server = format!("localhost:{port}");
    let send = |extra: &[&str]| {
        let mut args = vec!["--server", &server, "--from", "me@example.org"];
        args.extend([
            "--to",
            "you@example.com",
            "--to",
            "them@example.com",
            "--ca",
            ca.to_str().unwrap(),
        ]);
        args.extend(extra);
        mail_send(&args, message)
    };
    let out = send(&["--tls"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("250 OK stored"));
    let stored = std::fs::read_to_string(out_dir.join("0.eml")).unwrap();
    assert!(
        stored.starts_with("tls=True from=me@example.org to=you@example.com,them@example.com\n"),
        "{stored}"
    );
    // aiosmtpd unstuffs: the body arrives as it was, with its last line ended.
    assert!(
        stored.ends_with("\r\n\r\n.starts with a dot\r\nlast line without newline\r\n"),
        "{stored:?}"
    );

    // --no-tls against a server that requires STARTTLS: refused, with
    // its reply, and nothing stored.
    let out = send(&["--no-tls"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("530"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 1);
}

#[test]
fn braid_mail_send_to_braid_mail_with_tls_auth_and_a_required_tls_refusal() {
    let dir = scratch("self");
    let (ca, cert, key) = certs(&dir);
    let md = dir.join("maildir");
    let (_tls_server, tls_addr) = braid_mail(&[
        "--maildir",
        md.to_str().unwrap(),
        "--user",
        "carol:pw",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let md_plain = dir.join("plain");
    let (_plain_server, plain_addr) = braid_mail(&[
        "--maildir",
        md_plain.to_str().unwrap(),
        "--user",
        "carol:pw",
    ]);
    let send = |addr: SocketAddr, extra: &[&str]| {
        let server = format!("localhost:{}", addr.port());
        let mut args = vec!["--server", &server, "--from", "carol@localhost"];
        args.extend(["--to", "carol@localhost", "--ca", ca.to_str().unwrap()]);
        args.extend(extra);
        mail_send(&args, b"Subject: self\n\nunix line ends\n")
    };
    let out = send(tls_addr, &["--tls", "--user", "carol:pw"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = mailbox(&md, "carol");
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("with ESMTPSA")
            && mail[0].ends_with("Subject: self\r\n\r\nunix line ends\r\n"),
        "{mail:?}"
    );
    // --tls against a server with no STARTTLS: a clean failure, nothing
    // sent in plain text.
    let out = send(plain_addr, &["--tls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS is required"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(mailbox(&md_plain, "carol").is_empty());
    // Without --tls, the password is not sent in plain text either.
    let out = send(plain_addr, &["--user", "carol:pw"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without TLS"));
}

const SMARTHOST: &str = r#"
import asyncio, sys, os
from aiosmtpd.controller import Controller
out, port, slow = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad@"):
            return "550 5.1.1 <%s>: no such user here" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        n = len(os.listdir(out))
        with open(os.path.join(out, "%d-%d.eml" % (n, os.getpid())), "wb") as f:
            f.write(envelope.original_content)
        if os.path.exists(slow):
            await asyncio.sleep(4)
        return "250 OK relayed"
c = Controller(Handler(), hostname="127.0.0.1", port=port)
c.start()
print("listening", port, flush=True)
sys.stdin.read()
c.stop()
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn smarthost(out: &Path, port: u16, slow: &Path) -> Running {
    let python = std::env::var("BRAID_MAIL_PYTHON").expect(
        "BRAID_MAIL_PYTHON is not set: run the suite through ./scripts/test.sh, which installs aiosmtpd",
    );
    let mut py = Command::new(python)
        .args([
            "-c",
            SMARTHOST,
            out.to_str().unwrap(),
            &port.to_string(),
            slow.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(py.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("listening"), "{first}");
    Running(py)
}

const SUBMIT: &str = r#"
import smtplib, sys
port, to, tag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    s.login("alice", "pw")
    s.sendmail("alice@localhost", [to], ("Subject: relay\r\nX-Id: %s\r\n\r\nrelayed body\r\n" % tag).encode())
print("ok")
"#;

fn submit(port: u16, to: &str, tag: &str) {
    let out = run(Command::new("python3").args(["-c", SUBMIT, &port.to_string(), to, tag]));
    assert!(out.status.success(), "submitting {tag}");
}

/// Polls `f` for up to 30 s (real processes on real time: the queue's
/// one-second retry timer runs in the server process).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn relayed(out: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| {
            let t = std::fs::read_to_string(e.unwrap().path()).unwrap();
            t.lines()
                .find_map(|l| l.strip_prefix("X-Id: "))
                .unwrap_or("?")
                .trim()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

fn spooled(spool: &Path) -> usize {
    std::fs::read_dir(spool.join("env"))
        .map(|d| {
            d.filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn the_relay_queue_survives_kills_retries_and_bounces() {
    let dir = scratch("relay");
    let (md, spool, out) = (dir.join("maildir"), dir.join("spool"), dir.join("out"));
    std::fs::create_dir_all(&out).unwrap();
    let slow = dir.join("slow");
    let relay_port = free_port();
    let relay = format!("127.0.0.1:{relay_port}");
    let start = || {
        braid_mail(&[
            "--maildir",
            md.to_str().unwrap(),
            "--user",
            "alice:pw",
            "--auth-without-tls",
            "--relay",
            &relay,
            "--spool",
            spool.to_str().unwrap(),
            "--retry-after",
            "1",
            "--max-backoff",
            "1",
        ])
    };

    // 1. The smarthost is down: three messages wait in the spool; the
    //    server is killed (SIGKILL) with them there.
    let (server, addr) = start();
    for tag in ["m1", "m2", "m3"] {
        submit(addr.port(), "friend@far.example", tag);
    }
    assert_eq!(spooled(&spool), 3);
    drop(server);

    // 2. A restart with the smarthost up: each is relayed exactly once.
    let _host = smarthost(&out, relay_port, &slow);
    let (server, addr) = start();
    eventually("three relayed messages", || {
        relayed(&out).len() >= 3 && spooled(&spool) == 0
    });
    assert_eq!(relayed(&out), ["m1", "m2", "m3"]);

    // 3. Killed mid-delivery (the smarthost stalls before its 250): after
    //    a restart the message is sent again, since no 250 came; nothing
    //    is lost and the spool empties.
    std::fs::write(&slow, "").unwrap();
    submit(addr.port(), "friend@far.example", "m4");
    eventually("m4 reaching the smarthost", || {
        relayed(&out).contains(&"m4".to_owned())
    });
    drop(server);
    std::fs::remove_file(&slow).unwrap();
    assert_eq!(spooled(&spool), 1, "m4 is still queued: its 250 never came");
    let (_server, addr) = start();
    eventually("m4 relayed after the restart", || spooled(&spool) == 0);
    let m4 = relayed(&out).iter().filter(|t| *t == "m4").count();
    assert_eq!(
        m4, 2,
        "sent again after the kill, as SMTP allows, and only then"
    );

    // 4. A permanent refusal bounces to the (local) sender's Maildir.
    submit(addr.port(), "bad@far.example", "m5");
    eventually("a bounce for m5", || !mailbox(&md, "alice").is_empty());
    let bounce = &mailbox(&md, "alice")[0];
    assert!(
        bounce.contains("Undelivered Mail Returned to Sender"),
        "{bounce}"
    );
    assert!(bounce.contains("<bad@far.example>: 550 5.1.1"), "{bounce}");
    assert!(bounce.contains("X-Id: m5"), "{bounce}");
    assert_eq!(spooled(&spool), 0);
}

#[test]
fn a_users_file_from_braid_passwd_names_the_mailboxes_and_who_may_auth() {
    let dir = scratch("usersfile");
    let users = dir.join("users.txt");
    for (u, pw) in [("erin", "pa55"), ("frank", "w0rd")] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
            .arg("passwd")
            .arg(&users)
            .arg(u)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{pw}").unwrap();
        assert!(child.wait().unwrap().success());
    }
    let md = dir.join("maildir");
    let (_server, addr) = braid_mail(&[
        "--maildir",
        md.to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
        "--auth-without-tls",
    ]);
    let script = r#"
import smtplib, sys
port = int(sys.argv[1])
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    try:
        s.login("erin", "wrong")
        raise SystemExit("a wrong password was accepted")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535, e
with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
    s.login("frank", "w0rd")
    refused = s.sendmail("frank@localhost", ["erin@localhost", "frank@localhost"], b"Subject: users file\r\n\r\nhi\r\n")
    assert refused == {}, refused
    try:
        s.sendmail("frank@localhost", ["ghost@localhost"], b"x\r\n")
        raise SystemExit("an unknown user was accepted")
    except smtplib.SMTPRecipientsRefused as e:
        assert e.recipients["ghost@localhost"][0] == 550, e
print("ok")
"#;
    let out = run(Command::new("python3").args(["-c", script, &addr.port().to_string()]));
    assert!(out.status.success());
    assert_eq!(mailbox(&md, "erin").len(), 1);
    assert_eq!(mailbox(&md, "frank").len(), 1);
    assert!(mailbox(&md, "frank")[0].contains("with ESMTPA"));
}

#[test]
fn braid_mail_relays_to_a_braid_mail_smarthost_over_starttls_with_auth() {
    let dir = scratch("relaytls");
    let (ca, cert, key) = certs(&dir);
    let far = dir.join("far");
    let (_smarthost, far_addr) = braid_mail(&[
        "--maildir",
        far.to_str().unwrap(),
        "--domain",
        "far.example",
        "--user",
        "friend:x",
        "--user",
        "relay:pw",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let near = dir.join("near");
    let relay = format!("localhost:{}", far_addr.port());
    let (_server, addr) = braid_mail(&[
        "--maildir",
        near.to_str().unwrap(),
        "--user",
        "alice:pw",
        "--auth-without-tls",
        "--relay",
        &relay,
        "--spool",
        dir.join("spool").to_str().unwrap(),
        "--relay-tls",
        "--relay-ca",
        ca.to_str().unwrap(),
        "--relay-user",
        "relay:pw",
    ]);
    submit(addr.port(), "friend@far.example", "over-tls");
    eventually("the relayed message at the smarthost", || {
        mailbox(&far, "friend").len() == 1
    });
    let m = &mailbox(&far, "friend")[0];
    // Two Received: lines, ours (ESMTPA from smtplib) and the smarthost's
    // (ESMTPSA: TLS and AUTH from braid's queue).
    assert!(
        m.contains("with ESMTPSA") && m.contains("with ESMTPA id"),
        "{m}"
    );
    assert!(m.contains("X-Id: over-tls"), "{m}");
    assert_eq!(spooled(&dir.join("spool")), 0);
}

#[test]
fn braid_mail_with_workers_delivers_every_message_once_and_stops_on_sigterm() {
    let dir = scratch("workers");
    let maildir = dir.join("mail");
    let (mut server, addr) = braid_mail(&[
        "--maildir",
        maildir.to_str().unwrap(),
        "--user",
        "alice:pw",
        "--workers",
        "3",
    ]);
    let server_addr = addr.to_string();
    for i in 0..24 {
        let msg = format!("Subject: w{i}\r\n\r\nmessage {i}\r\n");
        let out = mail_send(
            &[
                "--server",
                &server_addr,
                "--from",
                "bob@example.net",
                "--to",
                "alice@localhost",
                "--no-tls",
            ],
            msg.as_bytes(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = mailbox(&maildir, "alice");
    assert_eq!(got.len(), 24, "each message once, whichever worker took it");
    for i in 0..24 {
        assert_eq!(
            got.iter()
                .filter(|m| m.contains(&format!("message {i}\r\n")))
                .count(),
            1
        );
    }
    let pid = server.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(server.0.wait().unwrap().success());
    // A relay queue's runner is one per spool: refused with workers.
    let out = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args([
            "mail",
            "--port",
            "0",
            "--maildir",
            maildir.to_str().unwrap(),
            "--workers",
            "2",
        ])
        .args([
            "--relay",
            "127.0.0.1:1",
            "--spool",
            dir.join("spool").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers with --spool"));
}

#[test]
fn workers_share_a_relay_queue_in_postgresql_across_restarts() {
    let pg = postgres_server::Server::start_new();
    let url = pg.url("braid-secret");
    let dir = scratch("pgqueue");
    let (md, far) = (dir.join("maildir"), dir.join("far"));
    let relay_port = free_port();
    let relay = format!("127.0.0.1:{relay_port}");
    let start = || {
        braid_mail(&[
            "--maildir",
            md.to_str().unwrap(),
            "--user",
            "alice:pw",
            "--auth-without-tls",
            "--workers",
            "2",
            "--relay",
            &relay,
            "--queue-postgres",
            &url,
            "--queue-lease",
            "3",
            "--retry-after",
            "1",
            "--max-backoff",
            "1",
        ])
    };
    let ids = |far: &Path| -> Vec<String> {
        let mut v: Vec<String> = mailbox(far, "friend")
            .iter()
            .filter_map(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("X-Id: "))
                    .map(|t| t.trim().to_owned())
            })
            .collect();
        v.sort();
        v
    };
    // The smarthost is down: the messages wait in the table; the server
    // (two workers) is killed with them there.
    let (server, addr) = start();
    for i in 0..6 {
        submit(addr.port(), "friend@far.example", &format!("m{i:02}"));
    }
    drop(server);
    // The smarthost (another braid mail) comes up, and so does the server.
    let (_host, _) = braid(&[
        "mail",
        "--port",
        &relay_port.to_string(),
        "--maildir",
        far.to_str().unwrap(),
        "--domain",
        "far.example",
        "--user",
        "friend:x",
    ]);
    let (_server, addr) = start();
    for i in 6..12 {
        submit(addr.port(), "friend@far.example", &format!("m{i:02}"));
    }
    // A message whose attempt the kill cut short is held by the dead
    // runner's lease (3 s here), then sent.
    for _ in 0..600 {
        if ids(&far).len() >= 12 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let want: Vec<String> = (0..12).map(|i| format!("m{i:02}")).collect();
    assert_eq!(ids(&far), want, "each once, whichever worker sent it");
    // Refused with a spool: that has one runner.
    let out = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args([
            "mail",
            "--port",
            "0",
            "--maildir",
            md.to_str().unwrap(),
            "--workers",
            "2",
        ])
        .args([
            "--relay",
            &relay,
            "--spool",
            dir.join("spool").to_str().unwrap(),
        ])
        .args(["--queue-postgres", &url])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "--spool and --queue-postgres together"
    );
}
