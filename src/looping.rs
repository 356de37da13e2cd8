//! Repeating and delayed calls: Twisted's `task.LoopingCall` and
//! `task.deferLater`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::defer::{Deferred, Failure, Resolver};
use crate::panics::catch_panic;
use crate::reactor::{DelayedCall, Reactor, ShutdownPhase, TriggerId, WeakReactor};

type Step = Box<dyn FnMut(u64)>;

struct Inner {
    reactor: WeakReactor,
    f: RefCell<Step>,
    interval: Cell<Option<Duration>>,
    /// When the loop started: calls fall on multiples of the interval
    /// after it.
    start: Cell<Option<Instant>>,
    /// The interval index of the last call.
    last: Cell<u64>,
    timer: RefCell<Option<DelayedCall>>,
    done: RefCell<Option<Resolver<(), Failure>>>,
    /// Fails the loop's Deferred when the reactor shuts down.
    on_shutdown: Cell<Option<TriggerId>>,
    calls: Cell<u64>,
}

/// Calls a function every `interval`: Twisted's `LoopingCall` (with
/// `withCount`'s argument).
///
/// Calls fall on multiples of the interval after [`start`](Self::start),
/// not `interval` after the previous call ended, so they do not drift. The
/// function is given how many intervals passed since its previous call: 1
/// on time, more when the loop was late (a blocked GUI thread, a suspended
/// laptop), so it can catch up (an animation skips frames) instead of
/// being called for each interval missed. A panic in the function stops the
/// loop and fails the Deferred [`start`](Self::start) returned.
///
/// # Examples
///
/// A clock label that ticks every second, on the fake clock:
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use braid::testing::MemoryReactor;
/// use braid::LoopingCall;
///
/// let mr = MemoryReactor::new();
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// let tick = LoopingCall::new(mr.reactor(), move |intervals| t.set(t.get() + intervals));
/// let stopped = tick.start(Duration::from_secs(1), true);
/// assert_eq!(ticks.get(), 1); // `now`: called at once
/// mr.advance(Duration::from_secs(1));
/// assert_eq!(ticks.get(), 2);
/// mr.advance(Duration::from_secs(3)); // late: one call, told 3 intervals passed
/// assert_eq!(ticks.get(), 5);
/// tick.stop();
/// assert!(stopped.result().unwrap().is_ok());
/// ```
#[derive(Clone)]
pub struct LoopingCall {
    inner: Rc<Inner>,
}

impl LoopingCall {
    /// A loop that calls `f` on `reactor` once started.
    pub fn new(reactor: &Reactor, f: impl FnMut(u64) + 'static) -> LoopingCall {
        LoopingCall {
            inner: Rc::new(Inner {
                reactor: reactor.downgrade(),
                f: RefCell::new(Box::new(f)),
                interval: Cell::new(None),
                start: Cell::new(None),
                last: Cell::new(0),
                timer: RefCell::new(None),
                done: RefCell::new(None),
                on_shutdown: Cell::new(None),
                calls: Cell::new(0),
            }),
        }
    }

    /// Starts calling every `interval` (at least 1 ms), at once too if
    /// `now`. The Deferred fires with `()` when [`stop`](Self::stop) is
    /// called, or fails if the function panicked or the reactor shut down.
    /// Starting a running loop restarts it with the new interval (the
    /// first Deferred then fires).
    pub fn start(&self, interval: Duration, now: bool) -> Deferred<(), Failure> {
        self.stop();
        let interval = interval.max(Duration::from_millis(1));
        let d = Deferred::new();
        let Some(reactor) = self.inner.reactor.upgrade() else {
            return Deferred::fail(Failure::shutdown());
        };
        *self.inner.done.borrow_mut() = Some(d.resolver());
        let me = Rc::downgrade(&self.inner);
        let trigger = reactor.add_shutdown_trigger(ShutdownPhase::Before, move || {
            if let Some(inner) = me.upgrade() {
                LoopingCall { inner }.finish(Err(Failure::shutdown()));
            }
        });
        self.inner.on_shutdown.set(Some(trigger));
        self.inner.interval.set(Some(interval));
        self.inner.start.set(Some(reactor.now()));
        self.inner.last.set(0);
        if now {
            self.call(1);
        }
        if self.is_running() {
            self.schedule(&reactor);
        }
        d
    }

    /// Stops the loop; the Deferred [`start`](Self::start) returned fires.
    /// A no-op when not running.
    pub fn stop(&self) {
        self.finish(Ok(()));
    }

    /// Whether the loop is running.
    #[doc(alias = "running")]
    pub fn is_running(&self) -> bool {
        self.inner.interval.get().is_some()
    }

    /// The interval, while running.
    pub fn interval(&self) -> Option<Duration> {
        self.inner.interval.get()
    }

    /// How many times the function was called since the loop was made.
    pub fn calls(&self) -> u64 {
        self.inner.calls.get()
    }

    fn finish(&self, result: Result<(), Failure>) {
        if self.inner.interval.take().is_none() {
            return;
        }
        if let Some(t) = self.inner.timer.borrow_mut().take() {
            t.cancel();
        }
        if let (Some(id), Some(r)) = (self.inner.on_shutdown.take(), self.inner.reactor.upgrade()) {
            r.remove_shutdown_trigger(id);
        }
        let done = self.inner.done.borrow_mut().take();
        if let Some(r) = done {
            r.resolve(result);
        }
    }

    fn call(&self, intervals: u64) {
        self.inner.calls.set(self.inner.calls.get() + 1);
        let ok = match self.inner.f.try_borrow_mut() {
            Ok(mut f) => catch_panic("LoopingCall", || f(intervals)).is_some(),
            // Called from inside itself (start from the function): skip.
            Err(_) => true,
        };
        if !ok {
            self.finish(Err(Failure::panicked(
                "the LoopingCall's function panicked",
            )));
        }
    }

    /// Arms the timer for the next multiple of the interval after now.
    fn schedule(&self, reactor: &Reactor) {
        let (Some(interval), Some(start)) = (self.inner.interval.get(), self.inner.start.get())
        else {
            return;
        };
        let now = reactor.now();
        let index = intervals_between(start, now, interval) + 1;
        let at = start + interval * index as u32;
        let me = self.clone();
        let timer = reactor.call_later(at.saturating_duration_since(now), move || me.fire());
        *self.inner.timer.borrow_mut() = Some(timer);
    }

    fn fire(&self) {
        self.inner.timer.borrow_mut().take();
        let (Some(interval), Some(start), Some(reactor)) = (
            self.inner.interval.get(),
            self.inner.start.get(),
            self.inner.reactor.upgrade(),
        ) else {
            return;
        };
        let index = intervals_between(start, reactor.now(), interval);
        let passed = index.saturating_sub(self.inner.last.get()).max(1);
        self.inner.last.set(index);
        self.call(passed);
        if self.is_running() && self.inner.timer.borrow().is_none() {
            self.schedule(&reactor);
        }
    }
}

/// Whole intervals from `start` to `now`.
fn intervals_between(start: Instant, now: Instant, interval: Duration) -> u64 {
    (now.saturating_duration_since(start).as_nanos() / interval.as_nanos().max(1)) as u64
}

impl fmt::Debug for LoopingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopingCall")
            .field("interval", &self.inner.interval.get())
            .field("calls", &self.inner.calls.get())
            .finish()
    }
}

impl Reactor {
    /// A Deferred that fires with `f()` after `delay`: Twisted's
    /// `task.deferLater`. Cancelling the Deferred cancels the call; a panic
    /// in `f` fails it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mr = braid::testing::MemoryReactor::new();
    /// let d = mr.reactor().defer_later(Duration::from_secs(2), || 6 * 7);
    /// mr.advance(Duration::from_secs(2));
    /// assert_eq!(d.result().unwrap().unwrap(), 42);
    /// ```
    #[doc(alias = "deferLater")]
    pub fn defer_later<T: 'static>(
        &self,
        delay: Duration,
        f: impl FnOnce() -> T + 'static,
    ) -> Deferred<T, Failure> {
        let timer: Rc<RefCell<Option<DelayedCall>>> = Rc::default();
        let t = timer.clone();
        let d = Deferred::with_canceller(move || {
            if let Some(c) = t.borrow_mut().take() {
                c.cancel();
            }
        });
        let resolver = d.resolver();
        let call = self.call_later(delay, move || {
            let r = catch_panic("defer_later", f)
                .ok_or_else(|| Failure::panicked("the deferLater function panicked"));
            resolver.resolve(r);
        });
        *timer.borrow_mut() = Some(call);
        d
    }
}
