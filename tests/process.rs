#![cfg(unix)]
//! Child processes over real pipes: arguments, environment and working
//! directory; stdin, stdout and stderr; exit codes and signals; a child
//! that writes 50 MB to a parent that reads slowly; a child that closes
//! its stdin early.

use std::cell::RefCell;
use std::hash::Hasher;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::rc::Rc;
use std::time::Duration;

use braid::process::{Process, ProcessProtocol};
use braid::testing::run_until;
use braid::Reactor;

const LIMIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Log {
    out: Vec<u8>,
    err: Vec<u8>,
    events: Vec<&'static str>,
    exited: Option<ExitStatus>,
    ended: Option<ExitStatus>,
    out_hash: std::hash::DefaultHasher,
    out_len: usize,
}

struct Rec {
    log: Rc<RefCell<Log>>,
    keep: bool,
    slow: bool,
}

impl Rec {
    fn new() -> (Rec, Rc<RefCell<Log>>) {
        let log = Rc::new(RefCell::new(Log::default()));
        (
            Rec {
                log: log.clone(),
                keep: true,
                slow: false,
            },
            log,
        )
    }
}

impl ProcessProtocol for Rec {
    fn connection_made(&mut self, _: &Process) {
        self.log.borrow_mut().events.push("made");
    }
    fn out_received(&mut self, p: &Process, data: &[u8]) {
        let mut l = self.log.borrow_mut();
        l.out_hash.write(data);
        l.out_len += data.len();
        if self.keep {
            l.out.extend_from_slice(data);
        }
        if self.slow {
            // A slow reader: nothing more until a timer has passed.
            p.pause_reading();
            let p = p.clone();
            p.reactor()
                .unwrap()
                .call_later(Duration::from_micros(500), move || p.resume_reading());
        }
    }
    fn err_received(&mut self, _: &Process, data: &[u8]) {
        self.log.borrow_mut().err.extend_from_slice(data);
    }
    fn in_connection_lost(&mut self, _: &Process) {
        self.log.borrow_mut().events.push("in lost");
    }
    fn out_connection_lost(&mut self, _: &Process) {
        self.log.borrow_mut().events.push("out lost");
    }
    fn err_connection_lost(&mut self, _: &Process) {
        self.log.borrow_mut().events.push("err lost");
    }
    fn process_exited(&mut self, _: &Process, status: ExitStatus) {
        let mut l = self.log.borrow_mut();
        l.events.push("exited");
        l.exited = Some(status);
    }
    fn process_ended(&mut self, _: &Process, status: ExitStatus) {
        let mut l = self.log.borrow_mut();
        l.events.push("ended");
        l.ended = Some(status);
    }
}

fn ended(l: &Rc<RefCell<Log>>) -> bool {
    l.borrow().ended.is_some()
}

#[test]
fn arguments_environment_directory_stdout_stderr_and_exit_code() {
    let reactor = Reactor::new().unwrap();
    let (r, log) = Rec::new();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"printf '%s|%s|%s' "$1" "$GREETING" "$(pwd)"; echo oops >&2; exit 3"#,
        "sh",
        "first argument",
    ])
    .env("GREETING", "hello there")
    .current_dir("/tmp");
    let p = reactor.spawn_process(&mut cmd, r).unwrap();
    assert!(p.pid() > 0);
    run_until(&reactor, LIMIT, || ended(&log)).unwrap();
    let l = log.borrow();
    assert_eq!(
        String::from_utf8_lossy(&l.out),
        "first argument|hello there|/tmp"
    );
    assert_eq!(l.err, b"oops\n");
    assert_eq!(l.ended.unwrap().code(), Some(3));
    assert_eq!(l.exited, l.ended);
    assert_eq!(l.events.first(), Some(&"made"));
    assert_eq!(l.events.last(), Some(&"ended"));
    for e in ["in lost", "out lost", "err lost", "exited"] {
        assert!(l.events.contains(&e), "{e} in {:?}", l.events);
    }
    assert!(!p.is_running());
    assert_eq!(p.exit_status().unwrap().code(), Some(3));
}

#[test]
fn a_megabyte_through_cat_and_back() {
    let reactor = Reactor::new().unwrap();
    let (r, log) = Rec::new();
    let p = reactor.spawn_process(&mut Command::new("cat"), r).unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for chunk in data.chunks(10_000) {
        p.write(chunk);
    }
    p.close_stdin();
    run_until(&reactor, LIMIT, || ended(&log)).unwrap();
    assert!(log.borrow().out == data, "cat returned what it was given");
    assert!(log.borrow().ended.unwrap().success());
}

#[test]
fn fifty_megabytes_from_a_child_to_a_slow_reader() {
    const SIZE: usize = 50 * 1024 * 1024;
    let path = std::env::temp_dir().join(format!("braid-50mb-{}", std::process::id()));
    let mut want = std::hash::DefaultHasher::new();
    {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut data = vec![0u8; SIZE];
        for w in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
        }
        want.write(&data);
        std::fs::write(&path, &data).unwrap();
    }
    let reactor = Reactor::new().unwrap();
    let (mut r, log) = Rec::new();
    r.keep = false;
    r.slow = true;
    reactor
        .spawn_process(Command::new("cat").arg(&path), r)
        .unwrap();
    // The Process handle is not kept: the reactor keeps the child's
    // protocol alive until it ends.
    run_until(&reactor, LIMIT, || ended(&log)).unwrap();
    std::fs::remove_file(&path).unwrap();
    let l = log.borrow();
    assert_eq!(l.out_len, SIZE);
    assert_eq!(l.out_hash.finish(), want.finish(), "the bytes match");
    assert!(l.ended.unwrap().success());
}

#[test]
fn a_child_killed_by_a_signal() {
    let reactor = Reactor::new().unwrap();
    let (r, log) = Rec::new();
    let p = reactor
        .spawn_process(Command::new("sleep").arg("30"), r)
        .unwrap();
    assert!(p.is_running());
    p.signal(libc::SIGTERM).unwrap();
    run_until(&reactor, LIMIT, || ended(&log)).unwrap();
    let status = log.borrow().ended.unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(status.code(), None);
    assert_eq!(p.kill().unwrap_err().kind(), io::ErrorKind::NotFound);
}

#[test]
fn a_child_that_closes_its_stdin_early() {
    let reactor = Reactor::new().unwrap();
    let (r, log) = Rec::new();
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "exec 0<&-; echo closed; sleep 0.2; echo done"]);
    let p = reactor.spawn_process(&mut cmd, r).unwrap();
    // Keep writing into the closed pipe: EPIPE ends stdin, nothing else.
    let p2 = p.clone();
    let log2 = log.clone();
    fn feed(p: Process, log: Rc<RefCell<Log>>, r: Reactor) {
        if log.borrow().events.contains(&"in lost") {
            return;
        }
        p.write(&[b'x'; 65536]);
        let r2 = r.clone();
        r.call_later(Duration::from_millis(5), move || feed(p, log, r2));
    }
    feed(p2, log2, reactor.clone());
    run_until(&reactor, LIMIT, || ended(&log)).unwrap();
    let l = log.borrow();
    assert_eq!(l.out, b"closed\ndone\n");
    assert!(l.events.contains(&"in lost"));
    assert!(l.ended.unwrap().success());
}

#[test]
fn a_program_that_does_not_exist() {
    let reactor = Reactor::new().unwrap();
    let (r, _) = Rec::new();
    let e = reactor
        .spawn_process(&mut Command::new("/nonexistent/program"), r)
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
}
