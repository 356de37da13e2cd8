#![cfg(unix)]
//! stdio as a transport: on pipes, on regular files (which epoll cannot
//! watch), and on this process's real descriptors 0 and 1 in a child run
//! through braid's own spawn_process.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, ExitStatus};
use std::rc::Rc;
use std::time::Duration;

use braid::process::{Process, ProcessProtocol};
use braid::testing::run_until;
use braid::{CloseReason, Protocol, Reactor, Transport};

const LIMIT: Duration = Duration::from_secs(30);

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two new descriptors we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Upper-cases what it reads; remembers how it ended.
struct Shout(Rc<RefCell<Option<String>>>);
impl Protocol for Shout {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(&data.to_ascii_uppercase());
    }
    fn connection_lost(&mut self, reason: &CloseReason) {
        *self.0.borrow_mut() = Some(reason.to_string());
    }
}

#[test]
fn stdio_over_pipes() {
    let reactor = Reactor::new().unwrap();
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    let lost = Rc::new(RefCell::new(None));
    let t = reactor.stdio_on(in_r, out_w, Shout(lost.clone())).unwrap();
    assert_eq!(t.peer_addr(), braid::Address::Stdio);
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::File::from(in_w);
        for i in 0..1000 {
            writeln!(w, "line {i} from the terminal").unwrap();
        }
    });
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
        out
    });
    run_until(&reactor, LIMIT, || lost.borrow().is_some()).unwrap();
    writer.join().unwrap();
    let out = reader.join().unwrap();
    let want: String = (0..1000)
        .map(|i| format!("LINE {i} FROM THE TERMINAL\n"))
        .collect();
    assert_eq!(out, want, "everything, in order, and EOF at the end");
    assert_eq!(lost.borrow().as_deref(), Some("connection closed cleanly"));
}

#[test]
fn stdio_over_regular_files() {
    let dir = std::env::temp_dir().join(format!("braid-stdio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (inp, outp) = (dir.join("in.txt"), dir.join("out.txt"));
    let text: String = (0..20_000).map(|i| format!("word {i}\n")).collect();
    std::fs::write(&inp, &text).unwrap();
    let reactor = Reactor::new().unwrap();
    let lost = Rc::new(RefCell::new(None));
    let input = OwnedFd::from(std::fs::File::open(&inp).unwrap());
    let output = OwnedFd::from(std::fs::File::create(&outp).unwrap());
    reactor
        .stdio_on(input, output, Shout(lost.clone()))
        .unwrap();
    run_until(&reactor, LIMIT, || lost.borrow().is_some()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&outp).unwrap(),
        text.to_ascii_uppercase()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Run by `real_stdin_and_stdout_of_a_child` in a child process (ignored
/// otherwise): braid on the child's real descriptors 0 and 1.
#[test]
#[ignore = "run as a child by real_stdin_and_stdout_of_a_child"]
fn stdio_child() {
    let reactor = Reactor::new().unwrap();
    let lost = Rc::new(RefCell::new(None));
    reactor.stdio(Shout(lost.clone())).unwrap();
    run_until(&reactor, LIMIT, || lost.borrow().is_some()).unwrap();
    // fd 1 now points at /dev/null: this goes nowhere, harmlessly.
    println!("after the transport closed");
}

#[derive(Default)]
struct Collect {
    out: Vec<u8>,
    status: Option<ExitStatus>,
}
struct Child(Rc<RefCell<Collect>>);
impl ProcessProtocol for Child {
    fn connection_made(&mut self, p: &Process) {
        p.write(b"hello from the parent\nsecond line\n");
        p.close_stdin();
    }
    fn out_received(&mut self, _: &Process, data: &[u8]) {
        self.0.borrow_mut().out.extend_from_slice(data);
    }
    fn process_ended(&mut self, _: &Process, status: ExitStatus) {
        self.0.borrow_mut().status = Some(status);
    }
}

#[test]
fn real_stdin_and_stdout_of_a_child() {
    let reactor = Reactor::new().unwrap();
    let got = Rc::new(RefCell::new(Collect::default()));
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "stdio_child",
        "--nocapture",
        "--test-threads=1",
    ]);
    reactor.spawn_process(&mut cmd, Child(got.clone())).unwrap();
    run_until(&reactor, LIMIT, || got.borrow().status.is_some()).unwrap();
    let out = String::from_utf8_lossy(&got.borrow().out).into_owned();
    assert!(
        out.contains("HELLO FROM THE PARENT\nSECOND LINE\n"),
        "{out}"
    );
    assert!(!out.contains("after the transport closed"), "{out}");
    assert!(got.borrow().status.unwrap().success(), "{out}");
}
