//! call_from_thread: many threads racing into one reactor.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::Reactor;

#[test]
fn four_threads_racing_ten_thousand_calls_each_all_delivered_in_order() {
    let reactor = Reactor::new().unwrap();
    let seen: Rc<RefCell<Vec<Vec<u32>>>> = Rc::new(RefCell::new(vec![Vec::new(); 4]));
    const N: u32 = 10_000;
    let mut joins = Vec::new();
    for t in 0..4usize {
        let h = reactor.handle();
        // The closures must be Send: they carry numbers, and reach the
        // reactor-local log through a thread-local slot.
        joins.push(std::thread::spawn(move || {
            for i in 0..N {
                h.call_from_thread(move || SINK.with(|s| s.borrow_mut().push((t, i))))
                    .unwrap();
            }
        }));
    }
    thread_local! {
        static SINK: RefCell<Vec<(usize, u32)>> = const { RefCell::new(Vec::new()) };
    }
    let r = reactor.clone();
    let s = seen.clone();
    let watchdog = reactor.call_later(Duration::from_secs(60), || {
        panic!("calls not delivered in 60 s")
    });
    fn check(r: Reactor, s: Rc<RefCell<Vec<Vec<u32>>>>, watchdog: Rc<braid::DelayedCall>) {
        SINK.with(|sink| {
            for (t, i) in sink.borrow_mut().drain(..) {
                s.borrow_mut()[t].push(i);
            }
        });
        if s.borrow().iter().all(|v| v.len() == N as usize) {
            watchdog.cancel();
            r.stop();
        } else {
            let r2 = r.clone();
            r.call_later(Duration::from_millis(1), move || check(r2, s, watchdog));
        }
    }
    let wd = Rc::new(watchdog);
    reactor.call_soon(move || check(r, s, wd));
    reactor.run().unwrap();
    for j in joins {
        j.join().unwrap();
    }
    for (t, v) in seen.borrow().iter().enumerate() {
        assert_eq!(v.len(), N as usize, "thread {t} lost calls");
        assert!(v.windows(2).all(|w| w[0] < w[1]), "thread {t} out of order");
    }
}

#[test]
fn calls_run_on_the_reactor_thread() {
    let reactor = Reactor::new().unwrap();
    let reactor_thread = std::thread::current().id();
    let h = reactor.handle();
    let h2 = h.clone();
    std::thread::spawn(move || {
        h.call_from_thread(move || {
            assert_eq!(std::thread::current().id(), reactor_thread);
            h2.stop();
        })
        .unwrap();
    });
    reactor.run().unwrap();
}

#[test]
fn a_handle_outliving_its_reactor_reports_it() {
    let reactor = Reactor::new().unwrap();
    let h = reactor.handle();
    assert!(h.is_alive());
    drop(reactor);
    assert!(!h.is_alive());
    assert!(h.call_from_thread(|| {}).is_err());
}

#[test]
fn stop_from_another_thread() {
    let reactor = Reactor::new().unwrap();
    let h = reactor.handle();
    std::thread::spawn(move || h.stop());
    reactor.run().unwrap();
    assert!(reactor.is_stopped());
}
