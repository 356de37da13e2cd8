#![cfg(unix)]
//! `braid chat` as a process: real clients chat through it, and SIGTERM
//! stops it cleanly.

mod common;

use std::io::{BufRead, BufReader, Write};

use common::read_until;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn braid_chat_serves_irc_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args([
            "chat",
            "--port",
            "0",
            "--motd",
            "hello from the test",
            "--history-lines",
            "10",
        ])
        .arg("--history")
        .arg(std::env::temp_dir().join(format!("braid-cli-history-{}.sqlite", std::process::id())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first.trim().rsplit(' ').next().unwrap().to_owned();

    let connect = |nick: &str| {
        let s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        write!(w, "NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").unwrap();
        let motd = read_until(&mut r, " 376 ");
        assert!(
            motd.iter().any(|l| l.contains("hello from the test")),
            "{motd:?}"
        );
        write!(w, "JOIN #cli\r\n").unwrap();
        read_until(&mut r, " 366 ");
        (r, w)
    };
    let (mut ra, mut wa) = connect("ann");
    let (mut rb, _wb) = connect("ben");
    read_until(&mut ra, "JOIN #cli"); // ben's join
    write!(wa, "PRIVMSG #cli :over the real command\r\n").unwrap();
    let got = read_until(&mut rb, "PRIVMSG");
    assert!(got.last().unwrap().ends_with(":over the real command"));

    // SAFETY: signalling our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("shutting down") && log.contains("stopped cleanly"),
        "{log}"
    );
    // The server closed our connection on the way out.
    let mut rest = String::new();
    while ra.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {}
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["chat", "--port", &port])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("braid:") && err.to_lowercase().contains("in use"),
        "{err}"
    );
}
