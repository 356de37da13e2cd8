//! LoopingCall, defer_later and the Cooperator, on the fake clock (and a
//! real reactor where shutdown is the point).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use braid::testing::MemoryReactor;
use braid::{Budget, Cooperator, FailureKind, LoopingCall, Reactor, Step};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn a_looping_call_keeps_its_beat_and_counts_what_it_missed() {
    let mr = MemoryReactor::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let lc = LoopingCall::new(mr.reactor(), move |n| s.borrow_mut().push(n));
    let done = lc.start(SEC, false);
    assert!(seen.borrow().is_empty(), "not called at once without `now`");
    mr.advance(SEC);
    mr.advance(SEC / 2);
    mr.advance(SEC / 2);
    assert_eq!(*seen.borrow(), [1, 1], "on multiples of the interval");
    mr.advance(SEC * 4); // late by three intervals
    assert_eq!(*seen.borrow(), [1, 1, 4]);
    mr.advance(SEC);
    assert_eq!(*seen.borrow(), [1, 1, 4, 1]);
    assert_eq!(lc.calls(), 4);
    assert!(lc.is_running() && lc.interval() == Some(SEC));
    lc.stop();
    assert!(!lc.is_running());
    assert!(done.result().unwrap().is_ok(), "stop fires the Deferred");
    mr.advance(SEC * 10);
    assert_eq!(lc.calls(), 4, "no call after stop");
}

#[test]
fn a_looping_call_stops_from_inside_and_a_panic_fails_it() {
    let mr = MemoryReactor::new();
    let slot: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
    let s = slot.clone();
    let lc = LoopingCall::new(mr.reactor(), move |_| {
        let me = s.borrow().clone().unwrap();
        if me.calls() == 3 {
            me.stop();
        }
    });
    *slot.borrow_mut() = Some(lc.clone());
    let done = lc.start(SEC, true);
    mr.pump(SEC * 5, 5);
    assert_eq!(lc.calls(), 3);
    assert!(done.result().unwrap().is_ok());
    slot.borrow_mut().take();

    braid::testing::quiet_deliberate_panics();
    let boom = LoopingCall::new(mr.reactor(), |_| panic!("deliberate"));
    let done = boom.start(SEC, false);
    mr.advance(SEC);
    assert_eq!(
        done.result().unwrap().unwrap_err().kind(),
        FailureKind::Panicked
    );
    assert!(!boom.is_running());
}

#[test]
fn a_looping_call_fails_when_the_reactor_shuts_down() {
    let reactor = Reactor::new().unwrap();
    let lc = LoopingCall::new(&reactor, |_| {});
    let done = lc.start(Duration::from_secs(3600), false);
    let r = reactor.clone();
    reactor.call_soon(move || r.stop());
    reactor.run().unwrap();
    let e = done.result().expect("fired at shutdown").unwrap_err();
    assert_eq!(e.kind(), FailureKind::Shutdown);
}

#[test]
fn defer_later_fires_after_its_delay_and_cancelling_it_cancels_the_call() {
    let mr = MemoryReactor::new();
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let d = mr.reactor().defer_later(SEC * 2, move || {
        r.set(r.get() + 1);
        "late"
    });
    mr.advance(SEC);
    assert!(!d.is_ready());
    mr.advance(SEC);
    assert_eq!(d.result().unwrap().unwrap(), "late");
    let r = ran.clone();
    let d = mr.reactor().defer_later(SEC, move || r.set(r.get() + 1));
    d.cancel();
    mr.advance(SEC * 2);
    assert_eq!(ran.get(), 1, "the cancelled call did not run");
    assert!(d.result().unwrap().unwrap_err().is_cancelled());
}

#[test]
fn cooperative_tasks_take_turns_and_yield_to_the_loop() {
    let mr = MemoryReactor::new();
    // A zero budget: one step per turn, then the loop gets a go.
    let coop = Cooperator::with_budget(mr.reactor(), Duration::ZERO);
    let log = Rc::new(RefCell::new(Vec::new()));
    let task = |name: &'static str, steps: u32| {
        let (log, mut n) = (log.clone(), 0);
        move || {
            n += 1;
            log.borrow_mut().push(format!("{name}{n}"));
            if n == steps {
                Step::Done
            } else {
                Step::Continue
            }
        }
    };
    let a = coop.cooperate(task("a", 3));
    let b = coop.cooperate(task("b", 2));
    let (a_done, b_done) = (a.when_done(), b.when_done());
    // Work queued from outside (a GUI event) runs between turns.
    let l = log.clone();
    let r = mr.reactor().clone();
    mr.reactor().call_soon(move || {
        l.borrow_mut().push("gui".into());
        let l = l.clone();
        r.call_soon(move || l.borrow_mut().push("gui".into()));
    });
    for _ in 0..20 {
        mr.reactor().run_due();
    }
    let log = log.borrow().clone();
    let steps: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "gui")
        .collect();
    assert_eq!(
        steps,
        ["a1", "b1", "a2", "b2", "a3"],
        "round robin: {log:?}"
    );
    let first_gui = log.iter().position(|s| s == "gui").unwrap();
    assert!(first_gui < 2, "the loop's own work is not starved: {log:?}");
    assert_eq!(log.iter().filter(|s| *s == "gui").count(), 2);
    assert!(a_done.result().unwrap().is_ok() && b_done.result().unwrap().is_ok());
    assert_eq!(coop.tasks(), 0);
}

#[test]
fn cooperative_tasks_pause_resume_stop_and_fail() {
    let mr = MemoryReactor::new();
    let coop = Cooperator::new(mr.reactor());
    let n = Rc::new(Cell::new(0));
    let c = n.clone();
    let forever = coop.cooperate(move || {
        c.set(c.get() + 1);
        Step::Continue
    });
    // An endless task: one dispatch is one turn (run_due would never end).
    let turn = || mr.reactor().dispatch(Budget::default());
    forever.pause();
    turn();
    assert_eq!(n.get(), 0, "paused before its first turn");
    forever.resume();
    turn();
    turn();
    assert!(n.get() > 0);
    let stopped = forever.when_done();
    forever.stop();
    assert!(stopped.result().unwrap().unwrap_err().is_cancelled());
    let before = n.get();
    turn();
    turn();
    assert_eq!(n.get(), before, "a stopped task takes no step");

    braid::testing::quiet_deliberate_panics();
    let boom = coop.cooperate(|| panic!("deliberate"));
    mr.reactor().run_due();
    assert!(boom.is_done());
    assert_eq!(
        boom.when_done().result().unwrap().unwrap_err().kind(),
        FailureKind::Panicked
    );
}
