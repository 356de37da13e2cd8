#![cfg(unix)]
//! Signals reach the reactor's thread through the poller, no thread of
//! their own: SIGUSR1 raised from another thread runs the handler from a
//! dispatch, on the reactor thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::run_until;
use braid::Reactor;

#[test]
fn a_signal_runs_its_handler_on_the_reactor_thread() {
    let reactor = Reactor::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let me = std::thread::current().id();
    let watch = reactor
        .watch_signals(&[libc::SIGUSR1, libc::SIGUSR2], move |sig| {
            assert_eq!(std::thread::current().id(), me);
            s.borrow_mut().push(sig);
        })
        .unwrap();
    let pid = std::process::id() as libc::pid_t;
    std::thread::spawn(move || {
        // SAFETY: kill(2) to our own process with a watched signal.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR2) }, 0);
    })
    .join()
    .unwrap();
    run_until(&reactor, Duration::from_secs(20), || {
        !seen.borrow().is_empty()
    })
    .unwrap();
    assert_eq!(*seen.borrow(), [libc::SIGUSR2]);
    assert!(format!("{watch:?}").contains("signals"));
    drop(watch);
    // SIGKILL cannot be watched: a typed error, not a panic.
    assert!(reactor.watch_signals(&[libc::SIGKILL], |_| {}).is_err());
}
