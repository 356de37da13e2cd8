//! Deferred: chains, errors, nesting, cancellation, timeouts on fake time,
//! gather variants, and the bridge to futures.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use braid::testing::MemoryReactor;
use braid::{first_success, gather, Deferred, DeferredList, Failure, FailureKind};

#[test]
fn callbacks_run_in_order_and_change_types() {
    let d: Deferred<u32> = Deferred::new();
    let r = d.resolver();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let d = d
        .add_callback(move |n| {
            l.borrow_mut().push(format!("got {n}"));
            n + 1
        })
        .add_callback(|n| format!("#{n}"))
        .add_callback(|s| s.len());
    assert!(!d.is_ready());
    r.callback(41);
    assert_eq!(*log.borrow(), vec!["got 41"]);
    assert_eq!(d.result().unwrap().unwrap(), 3);
}

#[test]
fn callbacks_added_after_firing_run_at_once() {
    let d = Deferred::<&str>::succeed("ready");
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let d = d.add_callback(move |s| {
        r.set(true);
        s.to_uppercase()
    });
    assert!(ran.get());
    assert_eq!(d.result().unwrap().unwrap(), "READY");
}

#[test]
fn failure_skips_callbacks_until_an_errback_recovers_and_back() {
    let d: Deferred<i32> = Deferred::new();
    let r = d.resolver();
    let skipped = Rc::new(Cell::new(true));
    let s = skipped.clone();
    let d = d
        .add_callback(move |n| {
            s.set(false);
            n
        })
        .add_errback(|f| {
            assert_eq!(f.to_string(), "boom");
            Ok(7)
        })
        .add_callback_result(|n| {
            if n == 7 {
                Err(Failure::msg("seven is bad"))
            } else {
                Ok(n)
            }
        })
        .add_both(|r| match r {
            Err(f) if f.to_string() == "seven is bad" => Ok::<_, Failure>("handled"),
            other => panic!("unexpected {other:?}"),
        });
    r.errback(Failure::msg("boom"));
    assert!(skipped.get());
    assert_eq!(d.result().unwrap().unwrap(), "handled");
}

#[test]
fn add_callbacks_chooses_one_branch() {
    let ok =
        Deferred::<u8>::succeed(1).add_callbacks(|n| Ok::<_, Failure>(n as u32 * 10), |_| Ok(0));
    assert_eq!(ok.result().unwrap().unwrap(), 10);
    let err = Deferred::<u8>::fail(Failure::msg("x"))
        .add_callbacks(|_| Ok::<u32, Failure>(1), |_| Ok(99));
    assert_eq!(err.result().unwrap().unwrap(), 99);
}

#[test]
fn a_callback_returning_a_deferred_makes_the_chain_wait() {
    let outer: Deferred<u32> = Deferred::new();
    let fire_outer = outer.resolver();
    let inner: Deferred<String> = Deferred::new();
    let fire_inner = inner.resolver();
    let mut inner = Some(inner);
    let d = outer
        .add_callback_deferred(move |n| {
            inner
                .take()
                .unwrap()
                .add_callback(move |s| format!("{s}:{n}"))
        })
        .add_callback(|s| s + "!");
    fire_outer.callback(5);
    assert!(!d.is_ready(), "waits for the inner Deferred");
    fire_inner.callback("inner".into());
    assert_eq!(d.result().unwrap().unwrap(), "inner:5!");
}

#[test]
fn cancel_runs_the_canceller_and_fails_the_chain() {
    let cancelled = Rc::new(Cell::new(false));
    let c = cancelled.clone();
    let d: Deferred<u32> = Deferred::with_canceller(move || c.set(true));
    let r = d.resolver();
    let d = d.add_callback(|n| n * 2).add_callback(|n| n + 1);
    d.cancel();
    assert!(
        cancelled.get(),
        "cancelling the end reached the root's canceller"
    );
    let f = d.result().unwrap().unwrap_err();
    assert_eq!(f.kind(), FailureKind::Cancelled);
    assert!(!r.is_waiting());
    r.callback(1); // a late result is dropped quietly
}

#[test]
fn a_canceller_may_resolve_instead() {
    use braid::Resolver;
    let slot: Rc<RefCell<Option<Resolver<&str>>>> = Rc::default();
    let s = slot.clone();
    let d: Deferred<&str> =
        Deferred::with_canceller(move || s.borrow_mut().take().unwrap().callback("partial"));
    *slot.borrow_mut() = Some(d.resolver());
    d.cancel();
    assert_eq!(d.result().unwrap().unwrap(), "partial");
}

#[test]
fn cancelling_a_chain_waiting_on_an_inner_deferred_cancels_the_inner() {
    let inner_cancelled = Rc::new(Cell::new(false));
    let ic = inner_cancelled.clone();
    let outer = Deferred::<u32>::succeed(1);
    let d = outer.add_callback_deferred(move |_| {
        let ic = ic.clone();
        Deferred::<u32>::with_canceller(move || ic.set(true))
    });
    d.cancel();
    assert!(inner_cancelled.get());
    assert!(d.result().unwrap().unwrap_err().is_cancelled());
}

#[test]
fn timeouts_run_on_the_fake_clock() {
    let mr = MemoryReactor::new();
    let slow: Deferred<u32> = Deferred::new();
    let slow_r = slow.resolver();
    let slow = slow.add_timeout(mr.reactor(), Duration::from_secs(30));
    let quick: Deferred<u32> = Deferred::new();
    let quick_r = quick.resolver();
    let quick = quick.add_timeout(mr.reactor(), Duration::from_secs(30));
    mr.advance(Duration::from_secs(10));
    quick_r.callback(1);
    mr.advance(Duration::from_secs(19));
    assert!(!slow.is_ready());
    mr.advance(Duration::from_secs(1));
    let f = slow.result().unwrap().unwrap_err();
    assert!(f.is_timeout(), "{f:?}");
    assert_eq!(quick.result().unwrap().unwrap(), 1);
    assert!(!slow_r.is_waiting(), "the timeout cancelled the root");
    mr.advance(Duration::from_secs(60)); // the quick one's timer was cancelled
}

#[test]
fn gather_collects_in_order_and_fails_fast() {
    let ds: Vec<Deferred<u32>> = (0..5).map(|_| Deferred::new()).collect();
    let rs: Vec<_> = ds.iter().map(|d| d.resolver()).collect();
    let all = gather(ds);
    for (i, r) in rs.into_iter().enumerate().rev() {
        r.callback(i as u32 * 10);
    }
    assert_eq!(all.result().unwrap().unwrap(), vec![0, 10, 20, 30, 40]);

    let cancelled = Rc::new(Cell::new(0));
    let ds: Vec<Deferred<u32>> = (0..3)
        .map(|_| {
            let c = cancelled.clone();
            Deferred::with_canceller(move || c.set(c.get() + 1))
        })
        .collect();
    let rs: Vec<_> = ds.iter().map(|d| d.resolver()).collect();
    let all = gather(ds);
    let mut rs = rs.into_iter();
    rs.next().unwrap().errback(Failure::msg("first fails"));
    let f = all.result().unwrap().unwrap_err();
    assert_eq!(f.to_string(), "first fails");
    assert_eq!(cancelled.get(), 2, "the others were cancelled");
}

#[test]
fn deferred_list_consumes_errors() {
    common::init_tracing();
    let ds = vec![
        Deferred::<u32>::succeed(1),
        Deferred::fail(Failure::msg("no")),
        Deferred::succeed(3),
    ];
    let results = DeferredList::new(ds, false).result().unwrap().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(*results[0].as_ref().unwrap(), 1);
    assert_eq!(results[1].as_ref().unwrap_err().to_string(), "no");
    assert_eq!(*results[2].as_ref().unwrap(), 3);
    assert!(DeferredList::new(Vec::<Deferred<u8>>::new(), false)
        .result()
        .unwrap()
        .unwrap()
        .is_empty());
}

#[test]
fn first_success_wins_and_all_failures_fail() {
    let ds: Vec<Deferred<&str>> = (0..3).map(|_| Deferred::new()).collect();
    let rs: Vec<_> = ds.iter().map(|d| d.resolver()).collect();
    let first = first_success(ds);
    let mut rs = rs.into_iter();
    let (a, b, c) = (rs.next().unwrap(), rs.next().unwrap(), rs.next().unwrap());
    a.errback(Failure::msg("a failed"));
    c.callback("c");
    assert!(!b.is_waiting(), "the loser was cancelled");
    assert_eq!(first.result().unwrap().unwrap(), (2, "c"));

    let ds = vec![
        Deferred::<u8>::fail(Failure::msg("x")),
        Deferred::fail(Failure::msg("last")),
    ];
    assert_eq!(
        first_success(ds).result().unwrap().unwrap_err().to_string(),
        "last"
    );
}

#[test]
fn typed_errors_work_with_from_failure() {
    #[derive(Debug, PartialEq)]
    enum AppError {
        NotFound,
        Braid(String),
    }
    impl From<Failure> for AppError {
        fn from(f: Failure) -> Self {
            AppError::Braid(f.to_string())
        }
    }
    let d: Deferred<u32, AppError> = Deferred::new();
    d.resolver().errback(AppError::NotFound);
    let d = d.add_errback(|e| {
        if e == AppError::NotFound {
            Ok(0)
        } else {
            Err(e)
        }
    });
    assert_eq!(d.result().unwrap().unwrap(), 0);
    let c: Deferred<u32, AppError> = Deferred::new();
    c.cancel();
    assert_eq!(
        c.result().unwrap().unwrap_err(),
        AppError::Braid("cancelled".into())
    );
}

#[test]
fn deferreds_are_futures_and_futures_are_deferreds() {
    let mr = MemoryReactor::new();
    let r = mr.reactor().clone();
    let d: Deferred<u32> = Deferred::new();
    let resolver = d.resolver();
    let task = r.spawn_local(async move { d.await.unwrap() + 1 });
    mr.advance(Duration::ZERO);
    assert!(!task.is_finished());
    resolver.callback(41);
    mr.advance(Duration::ZERO);
    assert!(task.is_finished());

    let r2 = r.clone();
    let from_future = Deferred::from_future(&r, async move {
        r2.sleep(Duration::from_secs(5)).await;
        Ok(5u32)
    });
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let _tail = from_future.add_callback(move |v| g.set(v));
    mr.advance(Duration::ZERO); // the task starts (and its sleep with it)
    mr.advance(Duration::from_secs(4));
    assert_eq!(got.get(), 0);
    mr.advance(Duration::from_secs(1));
    assert_eq!(got.get(), 5);
}

#[test]
fn cancelling_a_deferred_from_a_future_aborts_the_future_and_panics_fail_it() {
    braid::testing::quiet_deliberate_panics();
    let mr = MemoryReactor::new();
    let r = mr.reactor().clone();
    let dropped = Rc::new(Cell::new(false));
    struct OnDrop(Rc<Cell<bool>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let guard = OnDrop(dropped.clone());
    let r2 = r.clone();
    let d = Deferred::<u32>::from_future(&r, async move {
        let _g = guard;
        r2.sleep(Duration::from_secs(3600)).await;
        Ok(1)
    });
    mr.advance(Duration::ZERO);
    d.cancel();
    assert!(dropped.get(), "the future was dropped");
    assert!(d.result().unwrap().unwrap_err().is_cancelled());

    let boom = Deferred::<u32>::from_future(&r, async { panic!("deliberate panic in a future") });
    mr.advance(Duration::ZERO);
    mr.advance(Duration::ZERO);
    let f = boom.result().unwrap().unwrap_err();
    assert!(f.is_panic(), "{f:?}");
}

#[test]
fn sleep_and_timeout_on_fake_time() {
    let mr = MemoryReactor::new();
    let r = mr.reactor().clone();
    let out = Rc::new(RefCell::new(Vec::new()));
    let o = out.clone();
    let r2 = r.clone();
    r.spawn_local(async move {
        let fast = r2
            .timeout(Duration::from_secs(10), r2.sleep(Duration::from_secs(1)))
            .await;
        o.borrow_mut().push(fast.is_ok());
        let slow = r2
            .timeout(Duration::from_secs(2), r2.sleep(Duration::from_secs(100)))
            .await;
        o.borrow_mut().push(slow.unwrap_err().is_timeout());
    });
    mr.advance(Duration::ZERO);
    mr.advance(Duration::from_secs(1));
    assert_eq!(*out.borrow(), vec![true]);
    mr.advance(Duration::from_secs(2));
    assert_eq!(*out.borrow(), vec![true, true]);
}

#[test]
fn join_handles_abort_and_report_panics() {
    braid::testing::quiet_deliberate_panics();
    let mr = MemoryReactor::new();
    let r = mr.reactor().clone();
    let r2 = r.clone();
    let long = r.spawn_local(async move { r2.sleep(Duration::from_secs(3600)).await });
    let bad = r.spawn_local(async { panic!("deliberate panic in a task") });
    let good = r.spawn_local(async { "fine" });
    mr.advance(Duration::ZERO);
    long.abort();
    let results = Rc::new(RefCell::new(Vec::new()));
    let res = results.clone();
    r.spawn_local(async move {
        let aborted = long.await.unwrap_err().kind();
        res.borrow_mut().push(aborted);
        let panicked = bad.await.unwrap_err().kind();
        res.borrow_mut().push(panicked);
        assert_eq!(good.await.unwrap(), "fine");
    });
    mr.advance(Duration::ZERO);
    assert_eq!(
        *results.borrow(),
        vec![FailureKind::Cancelled, FailureKind::Panicked]
    );
}

/// Captures what `tracing` logs on this thread while `f` runs.
fn logged_during(f: impl FnOnce()) -> String {
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let cap = Capture::default();
    let c = cap.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || c.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let out = cap.0.lock().unwrap().clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn an_unhandled_failure_is_logged_when_its_deferred_is_dropped() {
    // Failed, and dropped with nobody looking: logged.
    let log = logged_during(|| drop(Deferred::<u32>::fail(Failure::msg("lost"))));
    assert!(log.contains("unhandled error in a Deferred"), "{log}");

    // Failed but handled by an errback: nothing logged.
    let log = logged_during(|| {
        let d = Deferred::<u32>::fail(Failure::msg("handled")).add_errback(|_| Ok(0));
        assert_eq!(d.result().unwrap().unwrap(), 0);
    });
    assert!(log.is_empty(), "{log}");

    // Dropped while waiting, failed later: logged when the failure arrives.
    let log = logged_during(|| {
        let d: Deferred<u32> = Deferred::new();
        let r = d.resolver();
        drop(d);
        r.errback(Failure::msg("late and lost"));
    });
    assert!(
        log.contains("late and lost") && log.contains("consumer is gone"),
        "{log}"
    );

    // Succeeded and dropped, or cancelled and taken: nothing logged.
    let log = logged_during(|| {
        drop(Deferred::<u32>::succeed(1));
        let d: Deferred<u32> = Deferred::new();
        d.cancel();
        assert!(d.result().unwrap().is_err());
    });
    assert!(log.is_empty(), "{log}");
}

/// A Deferred whose every resolver is dropped unfired can never fire:
/// it fails as abandoned (awaited or chained), rather than leaving its
/// consumer waiting for ever. A resolver that fired, or a cancellation,
/// is not an abandonment.
#[test]
fn a_deferred_whose_resolvers_are_all_dropped_fails_as_abandoned() {
    let d: Deferred<u32> = Deferred::new();
    let (r1, r2) = (d.resolver(), d.resolver());
    drop(r1);
    assert!(!d.is_ready(), "one resolver is left");
    drop(r2);
    let e = d.result().unwrap().unwrap_err();
    assert_eq!(e.kind(), braid::FailureKind::Abandoned);
    assert!(e.to_string().contains("abandoned"), "{e}");

    // Down a chain, and awaited on the reactor's executor.
    let reactor = braid::Reactor::new().unwrap();
    let d: Deferred<u32> = Deferred::new();
    let r = d.resolver();
    let chained = d.add_callback(|v| v + 1);
    let task = reactor.spawn_local(chained);
    reactor.call_soon(move || drop(r));
    let got = reactor.block_on(task).unwrap();
    assert_eq!(
        got.unwrap().unwrap_err().kind(),
        braid::FailureKind::Abandoned
    );

    // Fired, then dropped: the value stands.
    let d: Deferred<u32> = Deferred::new();
    d.resolver().callback(7);
    assert_eq!(d.result().unwrap().unwrap(), 7);
}
