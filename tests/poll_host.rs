//! The host-loop contract from the outside: a hand-written loop drives
//! the reactor with nothing but what the contract gives it, `dispatch` and
//! `HostLoop`: on Unix poll(2) on the reactor's fd (timers inside it), on
//! Windows a wait on the reactor's completion port with the next deadline
//! as its timeout.

mod common;

use std::cell::{Cell, RefCell};
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

/// Waits at most `timeout` for the reactor to have work; true if it has.
/// Unix: poll(2) on its fd.
#[cfg(unix)]
fn wait_for_work(reactor: &Reactor, timeout: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: reactor.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as i32) };
    assert!(n >= 0);
    fd.revents & libc::POLLIN != 0
}

/// Windows: a wait on its I/O completion port, signalled while a
/// completion is queued.
#[cfg(windows)]
fn wait_for_work(reactor: &Reactor, timeout: Duration) -> bool {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::WAIT_OBJECT_0;
    use windows_sys::Win32::System::Threading::WaitForSingleObject;
    let ms = timeout.as_millis().min(u32::MAX as u128 - 1) as u32;
    // SAFETY: waits on the reactor's live port handle.
    unsafe { WaitForSingleObject(reactor.as_raw_handle(), ms) == WAIT_OBJECT_0 }
}

/// A foreign loop: it waits only on what the host contract names, with a
/// hard limit. On Unix that is the reactor's fd with no timeout of its own
/// (timers wake it through the fd); on Windows the port plus the reactor's
/// next deadline.
fn poll_loop(reactor: &Reactor, limit: Duration) -> Rc<PollLoop> {
    let host = Rc::new(PollLoop {
        running: Cell::new(true),
        wakeups: Cell::new(0),
    });
    let _attached = reactor.attach_host(host.clone()).unwrap();
    assert_eq!(
        reactor.timers_in_fd(),
        cfg!(unix),
        "Unix keeps timers in the fd (timerfd, kqueue), Windows in the host's wait"
    );
    let end = Instant::now() + limit;
    while host.running.get() {
        let now = Instant::now();
        assert!(now < end, "the loop did not finish in {limit:?}");
        let mut timeout = end - now;
        let mut due = false;
        if !reactor.timers_in_fd() {
            if let Some(d) = reactor.next_deadline() {
                if d <= now + timeout {
                    timeout = d.saturating_duration_since(now);
                    due = true;
                }
            }
        }
        // Woken, or the deadline the wait was cut to has come.
        if wait_for_work(reactor, timeout) || due {
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
    assert!(
        !wait_for_work(&reactor, Duration::ZERO),
        "an idle reactor must not wake its host"
    );
    // A write from outside any dispatch makes it readable (the echo comes
    // back), as does call_soon.
    log.borrow().transport.as_ref().unwrap().write(b"x");
    assert!(wait_for_work(&reactor, Duration::from_secs(5)));
    // The echo arrives at the client within a few dispatches, each woken
    // through the fd (or port) alone: the server's socket, re-armed in a
    // dispatch, must reach the kernel before the host sleeps again.
    let end = Instant::now() + Duration::from_secs(10);
    while log.borrow().data.as_slice() != b"x" {
        assert!(Instant::now() < end, "the echo never came back");
        if wait_for_work(&reactor, Duration::from_secs(5)) {
            reactor.dispatch(Budget::default());
        }
    }
    reactor.dispatch(Budget::default());
    reactor.call_soon(|| {});
    assert!(
        wait_for_work(&reactor, Duration::ZERO),
        "call_soon wakes the host"
    );
}
