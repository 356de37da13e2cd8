//! The shipped examples, run as the processes a user would start.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn example(name: &str) -> PathBuf {
    // target/debug/deps/examples-HASH -> target/debug/examples/NAME
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    p.pop();
    p.push("examples");
    p.push(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} not built (cargo test builds examples)",
        p.display()
    );
    p
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(name: &str, args: &[&str]) -> (Killed, String) {
    let mut child = Command::new(example(name))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first.rsplit(' ').next().unwrap().trim().to_owned();
    (Killed(child), addr)
}

fn client(addr: &str) -> (BufReader<TcpStream>, TcpStream) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (BufReader::new(s.try_clone().unwrap()), s)
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l.trim_end().to_owned()
}

#[test]
fn chat_server_relays_lines_between_clients() {
    let (_server, addr) = start("chat_server", &["0"]);
    let (mut ra, mut wa) = client(&addr);
    assert!(line(&mut ra).starts_with("* welcome, guest0"));
    let (mut rb, mut wb) = client(&addr);
    assert!(line(&mut rb).starts_with("* welcome, guest1"));
    assert_eq!(line(&mut ra), "* guest1 joined");
    wa.write_all(b"/nick ann\n").unwrap();
    assert_eq!(line(&mut ra), "* you are now ann");
    assert_eq!(line(&mut rb), "* guest0 is now ann");
    for i in 0..100 {
        wb.write_all(format!("message {i}\n").as_bytes()).unwrap();
    }
    for i in 0..100 {
        assert_eq!(line(&mut ra), format!("guest1: message {i}"));
    }
    // An over-long line is refused with a notice, and the chat goes on.
    wb.write_all(&vec![b'x'; 10_000]).unwrap();
    wb.write_all(b"\nstill here\n").unwrap();
    assert!(line(&mut rb).contains("line dropped"));
    assert_eq!(line(&mut ra), "guest1: still here");
    drop(wb);
    drop(rb);
    assert_eq!(line(&mut ra), "* guest1 left");
}

#[test]
fn echo_client_against_echo_server() {
    let (_server, addr) = start("echo_server", &["0"]);
    let out = Command::new(example("echo_client"))
        .args([addr.as_str(), "20"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("20 round trips"), "{text}");
    assert!(text.contains("closed cleanly"), "{text}");
}
