//! The thread pool: results and panics on the reactor thread, exactly once;
//! shutdown with work queued; blocking calls into the reactor.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use braid::{FailureKind, Reactor};

#[test]
fn ten_thousand_jobs_with_random_panics_each_delivered_once_on_the_reactor_thread() {
    braid::testing::quiet_deliberate_panics();
    let reactor = Reactor::new().unwrap();
    let me = std::thread::current().id();
    const N: usize = 10_000;
    let delivered: Rc<RefCell<Vec<u8>>> = Rc::new(RefCell::new(vec![0; N]));
    let panics = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(0usize));
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut expect_panics = 0;
    for i in 0..N {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let will_panic = rng % 7 == 0;
        expect_panics += will_panic as usize;
        let d = reactor.defer_to_thread(move || {
            assert_ne!(
                std::thread::current().id(),
                me,
                "jobs run off the reactor thread"
            );
            if will_panic {
                panic!("deliberate panic in job {i}");
            }
            i * 2
        });
        let (dl, p, dn, r) = (
            delivered.clone(),
            panics.clone(),
            done.clone(),
            reactor.clone(),
        );
        let _tail = d.add_both(move |res| {
            assert_eq!(
                std::thread::current().id(),
                me,
                "results arrive on the reactor thread"
            );
            dl.borrow_mut()[i] += 1;
            match res {
                Ok(v) => assert_eq!(v, i * 2),
                Err(f) => {
                    assert_eq!(f.kind(), FailureKind::Panicked);
                    assert!(f.to_string().contains(&format!("job {i}")));
                    p.set(p.get() + 1);
                }
            }
            dn.set(dn.get() + 1);
            if dn.get() == N {
                r.stop();
            }
            Ok::<(), braid::Failure>(())
        });
    }
    let pool = reactor.thread_pool();
    assert!(pool.threads() <= braid::threads::DEFAULT_MAX_THREADS);
    let r = reactor.clone();
    let watchdog = reactor.call_later(Duration::from_secs(60), move || r.stop());
    reactor.run().unwrap();
    watchdog.cancel();
    assert_eq!(done.get(), N);
    assert!(
        delivered.borrow().iter().all(|&c| c == 1),
        "each exactly once"
    );
    assert_eq!(panics.get(), expect_panics);
    assert!(expect_panics > 1000);
}

#[test]
fn shutdown_fails_queued_jobs_and_delivers_running_ones() {
    let reactor = Reactor::new().unwrap();
    let pool = reactor.thread_pool();
    pool.set_max_threads(1);
    let started = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let s = started.clone();
    // One job blocks the only worker until the reactor is stopping.
    let running = reactor.defer_to_thread(move || {
        s.fetch_add(1, Ordering::SeqCst);
        gate_rx.recv().unwrap();
        "ran"
    });
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    let o = outcomes.clone();
    let _t = running.add_both(move |r| {
        o.borrow_mut().push(format!("running: {r:?}"));
        Ok::<(), braid::Failure>(())
    });
    for i in 0..5 {
        let o = outcomes.clone();
        let _t = reactor.defer_to_thread(move || i).add_both(move |r| {
            o.borrow_mut()
                .push(format!("queued: {:?}", r.map_err(|f| f.kind())));
            Ok::<(), braid::Failure>(())
        });
    }
    // Once the first job runs, stop; release the worker during shutdown.
    let r = reactor.clone();
    let s = started.clone();
    fn wait(r: Reactor, s: Arc<AtomicUsize>, gate: std::sync::mpsc::Sender<()>) {
        if s.load(Ordering::SeqCst) == 0 {
            let r2 = r.clone();
            r.call_later(Duration::from_millis(1), move || wait(r2, s, gate));
            return;
        }
        r.add_shutdown_trigger(braid::ShutdownPhase::Before, move || gate.send(()).unwrap());
        r.stop();
    }
    reactor.call_soon(move || wait(r, s, gate_tx));
    reactor.run().unwrap();
    let outcomes = outcomes.borrow();
    assert_eq!(outcomes.len(), 6, "every job accounted for: {outcomes:?}");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.starts_with("queued: Err(Shutdown)"))
            .count(),
        5
    );
    assert!(
        outcomes.contains(&"running: Ok(\"ran\")".to_string()),
        "{outcomes:?}"
    );
    // After shutdown, new work fails at once.
    let late = reactor.defer_to_thread(|| 1);
    assert_eq!(
        late.result().unwrap().unwrap_err().kind(),
        FailureKind::Shutdown
    );
}

#[test]
fn a_full_queue_fails_new_jobs_at_once() {
    let reactor = Reactor::new().unwrap();
    let pool = reactor.thread_pool();
    pool.set_max_threads(1);
    pool.set_max_queue(2);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let mut held = Vec::new();
    for _ in 0..3 {
        let rx = rx.clone();
        held.push(reactor.defer_to_thread(move || rx.lock().unwrap().recv().ok()));
    }
    // One running (maybe) plus two queued: the fourth or fifth is refused.
    let refused = (0..2)
        .map(|_| reactor.defer_to_thread(|| None::<()>))
        .filter_map(|d| d.result())
        .count();
    assert!(refused >= 1, "the queue cap was enforced");
    for _ in 0..5 {
        let _ = tx.send(());
    }
    let r = reactor.clone();
    reactor.call_later(Duration::from_millis(50), move || r.stop());
    reactor.run().unwrap();
}

#[test]
fn blocking_call_from_thread_computes_on_the_reactor() {
    let reactor = Reactor::new().unwrap();
    let me = std::thread::current().id();
    let counter = Rc::new(Cell::new(10));
    thread_local! {
        static COUNTER: RefCell<Option<Rc<Cell<i32>>>> = const { RefCell::new(None) };
    }
    COUNTER.with(|c| *c.borrow_mut() = Some(counter.clone()));
    let r = reactor.clone();
    let d = reactor.defer_to_thread({
        let handle = reactor.handle();
        move || {
            let mut seen = Vec::new();
            for _ in 0..3 {
                let v = handle
                    .blocking_call_from_thread(move |_r| {
                        assert_eq!(std::thread::current().id(), me);
                        COUNTER.with(|c| {
                            let c = c.borrow();
                            let c = c.as_ref().unwrap();
                            c.set(c.get() + 1);
                            c.get()
                        })
                    })
                    .unwrap();
                seen.push(v);
            }
            seen
        }
    });
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let _t = d.add_callback(move |v| {
        *g.borrow_mut() = v;
        r.stop();
    });
    reactor.run().unwrap();
    assert_eq!(*got.borrow(), vec![11, 12, 13]);
    assert_eq!(counter.get(), 13);
}

#[test]
#[should_panic(expected = "would wait forever")]
fn blocking_call_from_the_reactor_thread_is_refused() {
    let reactor = Reactor::new().unwrap();
    let _ = reactor.handle().blocking_call_from_thread(|_| 1);
}

#[test]
#[cfg(unix)]
fn thread_pool_results_reach_a_glib_or_any_host_through_the_fd() {
    // The pool's results arrive through call_from_thread, which wakes the
    // reactor's fd: a poll(2) loop with no timeout sees them.
    let reactor = Reactor::new().unwrap();
    let d = reactor.defer_to_thread(|| {
        // Stands for blocking work, so the result usually lands while the
        // test is asleep in poll(2) below. No assertion depends on timing:
        // if it lands first, the fd is simply readable already.
        std::thread::sleep(Duration::from_millis(20));
        7
    });
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let _t = d.add_callback(move |v| g.set(v));
    let mut fd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&reactor),
        events: libc::POLLIN,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut fd, 1, 10_000) };
    assert_eq!(n, 1, "the result woke the fd");
    reactor.dispatch(braid::Budget::default());
    assert_eq!(got.get(), 7);
}
