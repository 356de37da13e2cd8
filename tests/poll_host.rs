//! The host-loop contract from the outside: a hand-written poll(2) loop
//! drives the reactor with nothing but its fd, `dispatch` and `HostLoop`.

mod common;

use std::cell::{Cell, RefCell};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::{Address, Budget, HostLoop, Reactor};
use common::{connect_once, Echo, Recorder};

struct PollLoop {
    running: Cell<bool>,
    wakeups: Cell<u64>,
}

impl HostLoop for PollLoop {
    fn reactor_stopped(&self) {
        self.running.set(false);
    }
}

/// A foreign loop: poll(2) on the reactor's fd only, with no timeout of
/// its own (timers must wake it through the fd), and a hard limit.
fn poll_loop(reactor: &Reactor, limit: Duration) -> Rc<PollLoop> {
    let host = Rc::new(PollLoop {
        running: Cell::new(true),
        wakeups: Cell::new(0),
    });
    let _attached = reactor.attach_host(host.clone()).unwrap();
    assert!(reactor.timers_in_fd(), "Linux keeps timers in the fd");
    let end = Instant::now() + limit;
    while host.running.get() {
        assert!(Instant::now() < end, "the loop did not finish in {limit:?}");
        let mut fd = libc::pollfd {
            fd: reactor.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let n = unsafe { libc::poll(&mut fd, 1, limit.as_millis() as i32) };
        assert!(n >= 0);
        if fd.revents & libc::POLLIN != 0 {
            host.wakeups.set(host.wakeups.get() + 1);
            reactor.dispatch(Budget::default());
        }
    }
    host
}

#[test]
fn echo_timers_and_threads_through_a_poll_loop() {
    let reactor = Reactor::new().unwrap();
    let port = reactor
        .listen_tcp(common::localhost(), |_: &Address| Echo)
        .unwrap();
    let (client, log) = Recorder::new();
    connect_once(&reactor, port.local_addr(), client);

    // A timer set before the loop starts, one set from inside a callback,
    // and a call from another thread all wake the loop through the fd.
    let fired = Rc::new(RefCell::new(Vec::new()));
    let f = fired.clone();
    let r = reactor.clone();
    let l = log.clone();
    reactor.call_later(Duration::from_millis(10), move || {
        f.borrow_mut().push("timer");
        l.borrow()
            .transport
            .as_ref()
            .expect("connected by now")
            .write(b"through poll(2)");
        let f2 = f.clone();
        let h = r.handle();
        r.call_later(Duration::from_millis(10), move || {
            f2.borrow_mut().push("nested timer");
            std::thread::spawn(move || {
                let h2 = h.clone();
                h.call_from_thread(move || h2.stop()).unwrap();
            });
        });
    });
    let host = poll_loop(&reactor, Duration::from_secs(20));
    assert_eq!(*fired.borrow(), vec!["timer", "nested timer"]);
    assert_eq!(log.borrow().data, b"through poll(2)");
    assert_eq!(log.borrow().lost.len(), 1, "shutdown closed the connection");
    assert!(host.wakeups.get() >= 3);
    assert!(reactor.is_stopped());
}

#[test]
fn only_one_host_at_a_time() {
    let reactor = Reactor::new().unwrap();
    let a = Rc::new(PollLoop {
        running: Cell::new(true),
        wakeups: Cell::new(0),
    });
    let guard = reactor.attach_host(a.clone()).unwrap();
    let err = reactor.attach_host(a.clone()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(reactor.run().is_err(), "run() is a host too");
    drop(guard);
    assert!(reactor.attach_host(a).is_ok(), "the guard detached it");
}

#[test]
fn an_idle_reactor_leaves_its_fd_unreadable() {
    // Zero idle cost: with open connections and no due work, the fd is
    // not readable, so a host sleeps.
    let reactor = Reactor::new().unwrap();
    let port = reactor
        .listen_tcp(common::localhost(), |_: &Address| Echo)
        .unwrap();
    let (client, log) = Recorder::new();
    connect_once(&reactor, port.local_addr(), client);
    reactor.call_later(Duration::from_secs(3600), || {});
    braid::testing::run_until(&reactor, Duration::from_secs(20), || log.borrow().made == 1)
        .unwrap();
    for _ in 0..3 {
        reactor.dispatch(Budget::default());
    }
    let mut fd = libc::pollfd {
        fd: reactor.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    assert_eq!(n, 0, "idle reactor fd must not be readable");
    // A write from outside any dispatch makes it readable (the echo comes
    // back), as does call_soon.
    log.borrow().transport.as_ref().unwrap().write(b"x");
    let n = unsafe { libc::poll(&mut fd, 1, 5000) };
    assert_eq!(n, 1);
    reactor.dispatch(Budget::default());
    reactor.dispatch(Budget::default());
    reactor.call_soon(|| {});
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    assert_eq!(n, 1, "call_soon wakes the host");
}
