//! The reactor: one per thread, `!Send`, on top of `polling`.

mod clock;
mod delayed_call;
mod handle;
mod memory;
mod shutdown;
mod tasks;
mod timers;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::num::NonZeroUsize;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
#[cfg(windows)]
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle, RawHandle};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};
use slab::Slab;

pub use clock::FakeClock;
pub use delayed_call::DelayedCall;
pub use handle::{ReactorGone, ReactorHandle};
pub use tasks::{JoinHandle, Sleep};

pub(crate) use clock::Clock;
use handle::Shared;
use timers::{Callback, TimerKey, TimerQueue};

use crate::host::{Budget, Dispatched, HostLoop};
use crate::panics::catch_panic;
use crate::sys::{AsSource, BorrowedSource, RawSource, TimerFd};

/// Poller key of the reactor's own timerfd (`usize::MAX` is polling's).
const TIMER_KEY: usize = usize::MAX - 1;
/// Size of the read buffer that all connections share.
pub(crate) const READ_BUF: usize = 64 * 1024;

/// Something registered with the reactor: a listener, a connection, a
/// connection attempt.
pub(crate) trait Source {
    /// The poller reported readiness for this source.
    fn ready(&self, readable: bool, writable: bool, budget: &Budget);
    /// The reactor is shutting down: close now.
    fn shutdown(&self);
    /// The reactor is stopping: close the way `lose_connection` does
    /// (send what is buffered, then close) and return true if that takes
    /// a while (the source then calls [`Reactor::drained`] once closed), or
    /// close now and return false. The default closes now.
    fn begin_shutdown(&self) -> bool {
        self.shutdown();
        false
    }
}

/// How long a stopping reactor waits for connections to send what they
/// had buffered before it aborts them.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Something with buffered writes to send at the end of a dispatch.
pub(crate) trait Flush {
    fn flush(&self);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunState {
    Running,
    Stopping,
    Stopped,
}

/// Phases of the reactor's shutdown, as Twisted's system event triggers:
/// `Before` triggers run while everything is still open, `During` ones as
/// listeners and connections close, `After` ones last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[doc(alias = "addSystemEventTrigger")]
pub enum ShutdownPhase {
    /// While every listener and connection is still open.
    Before,
    /// Alongside the reactor closing its listeners and connections.
    During,
    /// After everything is closed, just before the loop ends.
    After,
}

/// Identifies a shutdown trigger, to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TriggerId(usize);

pub(crate) struct Inner {
    shared: Arc<Shared>,
    clock: Clock,
    timerfd: Option<TimerFd>,
    /// When the timerfd is set to expire, if armed.
    armed: Cell<Option<Instant>>,
    timers: RefCell<TimerQueue>,
    soon: RefCell<VecDeque<Callback>>,
    sources: RefCell<Slab<Rc<dyn Source>>>,
    flushes: RefCell<Vec<Rc<dyn Flush>>>,
    events: Cell<Option<Events>>,
    /// Events the closing wait of the last host dispatch collected (only
    /// where `sys::WAIT_SUBMITS_REGISTRATIONS`), handled first by the next.
    stashed: Cell<Option<Events>>,
    read_buf: Cell<Option<Box<[u8]>>>,
    depth: Cell<u32>,
    /// Connections still sending what they had buffered when `stop` came.
    draining: Cell<usize>,
    /// How long `stop` waits for them.
    grace: Cell<Duration>,
    /// Every source was told to close.
    began_shutdown: Cell<bool>,
    /// The shutdown's end is scheduled or done.
    finishing: Cell<bool>,
    grace_timer: RefCell<Option<DelayedCall>>,
    /// Dispatches so far (a dropped host guard checks whether any ran).
    dispatches: Cell<u64>,
    /// Most sources registered at once since memory was last released.
    sources_peak: Cell<usize>,
    /// Release freed memory after a burst of closes (on by default); a
    /// release is scheduled.
    release_memory: Cell<bool>,
    release_pending: Cell<bool>,
    release_wanted: Cell<bool>,
    state: Cell<RunState>,
    triggers: RefCell<Slab<(ShutdownPhase, Callback)>>,
    host: RefCell<Option<Rc<dyn HostLoop>>>,
    tasks: RefCell<tasks::Tasks>,
    pub(crate) pool: RefCell<Option<Rc<crate::threads::ThreadPool>>>,
    /// The installed host-name resolver (`None`: getaddrinfo).
    pub(crate) name_resolver: RefCell<Option<Rc<dyn crate::hostname::HostnameResolver>>>,
    /// Reactor-side continuations of work running on other threads, by id.
    completions: RefCell<Slab<Completion>>,
}

/// What runs on the reactor thread when another thread's work finishes.
pub(crate) type Completion = Box<dyn FnOnce(Result<Box<dyn std::any::Any + Send>, crate::Failure>)>;

/// The reactor: I/O registrations, timers and queued calls, driven by a
/// host loop.
///
/// Cheap to clone (all clones are the same reactor) and `!Send`: it lives
/// on one thread, and other threads reach it through
/// [`handle`](Self::handle). Run it standalone with [`run`](Self::run), or
/// let a host loop drive it through [`dispatch`](Self::dispatch) (see
/// [`host`](crate::host)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use braid::Reactor;
///
/// let reactor = Reactor::new()?;
/// let r = reactor.clone();
/// reactor.call_later(Duration::from_millis(5), move || r.stop());
/// reactor.run()?;
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct Reactor {
    pub(crate) inner: Rc<Inner>,
}

/// A reactor reference that does not keep it alive: what the things a
/// reactor owns (connections, pools, timers of a battery) hold, so that no
/// cycle keeps a dropped reactor in memory. Made by [`Reactor::downgrade`].
///
/// ```
/// let reactor = braid::Reactor::new()?;
/// let weak = reactor.downgrade();
/// assert!(weak.upgrade().is_some());
/// drop(reactor);
/// assert!(weak.upgrade().is_none());
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct WeakReactor(Weak<Inner>);

impl std::fmt::Debug for WeakReactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakReactor")
            .field("alive", &(self.0.strong_count() > 0))
            .finish()
    }
}

impl WeakReactor {
    /// The reactor, if it is still alive.
    pub fn upgrade(&self) -> Option<Reactor> {
        self.0.upgrade().map(|inner| Reactor { inner })
    }
}

impl Reactor {
    /// A reactor on the system's monotonic clock.
    ///
    /// # Errors
    ///
    /// If the poller or the timer fd cannot be created (out of fds).
    pub fn new() -> io::Result<Reactor> {
        Reactor::build(Clock::System)
    }

    /// A reactor whose timers run on a [`FakeClock`] that the caller
    /// advances; I/O stays real. Used by tests to drive time by hand.
    ///
    /// # Errors
    ///
    /// If the poller cannot be created.
    pub fn with_clock(clock: FakeClock) -> io::Result<Reactor> {
        Reactor::build(Clock::Fake(clock))
    }

    fn build(clock: Clock) -> io::Result<Reactor> {
        let poller = Poller::new()?;
        let timerfd = match clock {
            Clock::System => TimerFd::new()?,
            Clock::Fake(_) => None,
        };
        if let Some(t) = &timerfd {
            // SAFETY: the timerfd is owned by the reactor and deleted from
            // the poller (by dropping the poller first) before it closes.
            unsafe {
                poller.add_with_mode(
                    t.raw_source(),
                    Event::readable(TIMER_KEY),
                    PollMode::Level,
                )?;
            }
        }
        let inner = Inner {
            shared: Arc::new(Shared::new(poller)),
            clock,
            timerfd,
            armed: Cell::new(None),
            timers: RefCell::default(),
            soon: RefCell::default(),
            sources: RefCell::default(),
            flushes: RefCell::default(),
            events: Cell::new(None),
            stashed: Cell::new(None),
            read_buf: Cell::new(None),
            depth: Cell::new(0),
            dispatches: Cell::new(0),
            sources_peak: Cell::new(0),
            release_memory: Cell::new(true),
            release_pending: Cell::new(false),
            release_wanted: Cell::new(false),
            draining: Cell::new(0),
            grace: Cell::new(DEFAULT_SHUTDOWN_GRACE),
            began_shutdown: Cell::new(false),
            finishing: Cell::new(false),
            grace_timer: RefCell::new(None),
            state: Cell::new(RunState::Running),
            triggers: RefCell::default(),
            host: RefCell::new(None),
            tasks: RefCell::default(),
            pool: RefCell::default(),
            name_resolver: RefCell::default(),
            completions: RefCell::default(),
        };
        Ok(Reactor {
            inner: Rc::new(inner),
        })
    }

    /// Whether anything waits to run: registered sources (connections,
    /// listeners), timers, or queued calls.
    pub(crate) fn has_work(&self) -> bool {
        !self.inner.sources.borrow().is_empty()
            || self.inner.timers.borrow().len() > 0
            || !self.inner.soon.borrow().is_empty()
    }

    /// A reference that does not keep the reactor alive.
    pub fn downgrade(&self) -> WeakReactor {
        WeakReactor(Rc::downgrade(&self.inner))
    }

    // ----- time -----

    /// The reactor's current time (the fake clock's, if it has one).
    #[doc(alias = "seconds")]
    pub fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    /// Runs `f` on the reactor thread once `delay` has passed. Calls with
    /// equal deadlines run in the order they were scheduled.
    ///
    /// Dropping the returned handle does not cancel the call.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # let reactor = braid::Reactor::new()?;
    /// let call = reactor.call_later(Duration::from_secs(60), || println!("late"));
    /// assert!(call.active());
    /// call.reset(Duration::from_secs(120));
    /// call.cancel();
    /// assert!(!call.active());
    /// # std::io::Result::Ok(())
    /// ```
    #[doc(alias = "callLater")]
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> DelayedCall {
        let deadline = self.now() + delay;
        let key = self
            .inner
            .timers
            .borrow_mut()
            .schedule(deadline, Box::new(f));
        self.timers_changed();
        DelayedCall {
            reactor: self.downgrade(),
            key,
        }
    }

    /// Runs `f` on the reactor thread at the next dispatch, after what is
    /// already queued.
    #[doc(alias = "callWhenRunning")]
    pub fn call_soon(&self, f: impl FnOnce() + 'static) {
        self.inner.soon.borrow_mut().push_back(Box::new(f));
        if !self.in_dispatch() {
            self.wake();
        }
    }

    /// The earliest timer deadline, if any timer is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.inner.timers.borrow_mut().next_deadline()
    }

    /// Whether due timers make the reactor's fd readable by themselves:
    /// true with the system clock on Linux (a timerfd in the poller), macOS
    /// and the BSDs (a kqueue timer in the poller); false on Windows and on
    /// a fake clock. If false, a host must also wake at
    /// [`next_deadline`](Self::next_deadline).
    pub fn timers_in_fd(&self) -> bool {
        self.inner.timerfd.is_some()
    }

    /// Called after any change to the timer queue outside the firing pass.
    fn timers_changed(&self) {
        if self.in_dispatch() {
            return; // re-armed at the end of the dispatch
        }
        self.rearm();
    }

    /// Points the timerfd (or the host) at the earliest deadline.
    fn rearm(&self) {
        let next = self.next_deadline();
        match &self.inner.timerfd {
            Some(t) => {
                if next == self.inner.armed.get() {
                    return;
                }
                let after = next.map(|d| d.saturating_duration_since(Instant::now()));
                if let Err(e) = t.set(after) {
                    tracing::error!(error = %e, "cannot arm the reactor's timerfd");
                }
                self.inner.armed.set(next);
            }
            None => {
                let host = self.inner.host.borrow().clone();
                if let Some(h) = host {
                    h.deadline_changed(next);
                }
            }
        }
    }

    // ----- threads -----

    /// A `Send` handle for other threads ([`ReactorHandle::call_from_thread`]).
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle {
            shared: self.inner.shared.clone(),
        }
    }

    // ----- running -----

    /// Runs the reactor standalone on this thread until [`stop`](Self::stop).
    ///
    /// # Errors
    ///
    /// If another host loop is attached, the reactor already stopped, or
    /// the poller fails.
    pub fn run(&self) -> io::Result<()> {
        if self.inner.state.get() == RunState::Stopped {
            return Err(io::Error::other(
                "the reactor has stopped and cannot run again",
            ));
        }
        let host = Rc::new(Standalone(Cell::new(false)));
        let _guard = self.attach_host(host.clone())?;
        while !host.0.get() {
            self.dispatch_inner(None, Budget::default(), false)?;
        }
        Ok(())
    }

    /// Waits at most `timeout` for something to do, then dispatches once:
    /// Twisted's `reactor.iterate()`. For tests and nested loops.
    ///
    /// # Errors
    ///
    /// If the poller fails.
    pub fn iterate(&self, timeout: Duration) -> io::Result<Dispatched> {
        self.dispatch_inner(Some(timeout), Budget::default(), false)
    }

    /// Waits for something to do, at most `timeout` (`None`: as long as it
    /// takes), then dispatches once within `budget`. What a host that owns
    /// its loop calls to block in the reactor itself, with its own fd
    /// watched through [`Reactor::watch_fd`]: one `epoll_wait` per wakeup,
    /// as when the reactor runs alone, instead of a `poll(2)` on the
    /// reactor's fd followed by a dispatch (braid-winit runs this way).
    ///
    /// # Errors
    ///
    /// If the poller fails.
    pub fn wait_and_dispatch(
        &self,
        timeout: Option<Duration>,
        budget: Budget,
    ) -> io::Result<Dispatched> {
        self.dispatch_inner(timeout, budget, false)
    }

    /// Runs the calls that are due now (queued calls and timers at or before
    /// the clock's time) without waiting for I/O. With a [`FakeClock`], this
    /// is what a test calls after advancing the clock.
    pub fn run_due(&self) -> Dispatched {
        let mut total = Dispatched::default();
        loop {
            match self.dispatch_inner(Some(Duration::ZERO), Budget::default(), false) {
                Ok(d) => {
                    total.io_events += d.io_events;
                    total.calls += d.calls;
                    total.stopped |= d.stopped;
                    if d.calls == 0 && d.io_events == 0 {
                        return total;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "poller failed");
                    return total;
                }
            }
        }
    }

    /// Registers what to run when work handed to another thread finishes;
    /// the thread passes the id back with [`Reactor::complete`].
    pub(crate) fn register_completion(&self, c: Completion) -> usize {
        self.inner.completions.borrow_mut().insert(c)
    }

    /// Runs (once) the completion registered under `id`.
    pub(crate) fn complete(
        &self,
        id: usize,
        result: Result<Box<dyn std::any::Any + Send>, crate::Failure>,
    ) {
        let c = self.inner.completions.borrow_mut().try_remove(id);
        if let Some(c) = c {
            c(result);
        }
    }

    // ----- host interface -----

    /// Attaches the loop that drives this reactor. One host at a time; the
    /// guard detaches it when dropped.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if another host is attached.
    pub fn attach_host(&self, host: Rc<dyn HostLoop>) -> io::Result<HostGuard> {
        let mut slot = self.inner.host.borrow_mut();
        if slot.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "another host loop already drives this reactor",
            ));
        }
        *slot = Some(host);
        Ok(HostGuard {
            reactor: self.downgrade(),
            dispatches_at_attach: self.inner.dispatches.get(),
        })
    }

    /// Does the work that is ready, without blocking: ready I/O, calls from
    /// other threads, `call_soon` calls, due timers, then buffered writes.
    /// At most `budget` of each; what is left keeps the reactor's fd
    /// readable, so the host calls again on its next turn.
    ///
    /// A host calls this when the reactor's fd is readable (and, where
    /// [`timers_in_fd`](Self::timers_in_fd) is false, at the next deadline).
    /// Panics in callbacks are caught here, logged, and end only the
    /// connection they belong to.
    pub fn dispatch(&self, budget: Budget) -> Dispatched {
        match self.dispatch_inner(Some(Duration::ZERO), budget, true) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "poller failed");
                Dispatched::default()
            }
        }
    }

    fn dispatch_inner(
        &self,
        timeout: Option<Duration>,
        budget: Budget,
        for_host: bool,
    ) -> io::Result<Dispatched> {
        let inner = &*self.inner;
        let mut done = Dispatched::default();
        if inner.state.get() == RunState::Stopped {
            done.stopped = true;
            return Ok(done);
        }
        if inner.shared.take_stop_request() {
            self.stop();
        }
        // Anything queued means there is no time to wait.
        let busy = !inner.soon.borrow().is_empty();
        let timeout = if busy {
            Some(Duration::ZERO)
        } else if inner.timerfd.is_none() && matches!(inner.clock, Clock::System) {
            // No timerfd: wait only until the next deadline.
            let next = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(self.now()));
            match (timeout, next) {
                (Some(t), Some(n)) => Some(t.min(n)),
                (t, n) => t.or(n),
            }
        } else {
            timeout
        };

        inner.depth.set(inner.depth.get() + 1);
        inner.dispatches.set(inner.dispatches.get() + 1);
        let _depth = DepthGuard(inner);

        let cap = NonZeroUsize::new(budget.io_events).unwrap_or(NonZeroUsize::MIN);
        let mut events = inner
            .events
            .take()
            .filter(|e| e.capacity() == cap)
            .unwrap_or_else(|| Events::with_capacity(cap));
        events.clear();
        let waited = inner.shared.poller.wait(&mut events, timeout);
        if let Err(e) = waited {
            inner.events.set(Some(events));
            return Err(e);
        }
        if inner.shared.take_stop_request() {
            self.stop();
        }

        // 1. I/O (first what the last dispatch's closing wait collected).
        let stashed = inner.stashed.take();
        for ev in stashed.iter().flat_map(|e| e.iter()).chain(events.iter()) {
            if ev.key == TIMER_KEY {
                if let Some(t) = &inner.timerfd {
                    t.clear();
                    inner.armed.set(None);
                }
                continue;
            }
            let source = inner.sources.borrow().get(ev.key).cloned();
            if let Some(s) = source {
                done.io_events += 1;
                s.ready(ev.readable, ev.writable, &budget);
            }
        }
        events.clear();
        inner.events.set(Some(events));

        // 2. Calls from other threads.
        let (calls, more_from_threads) = inner.shared.take(budget.calls);
        for f in calls {
            done.calls += 1;
            catch_panic("call_from_thread", || f(self));
        }

        // 3. Tasks woken since the last pass (from any thread).
        let (polled, more_tasks) = self.run_woken_tasks(budget.calls);
        done.calls += polled;

        // 4. call_soon, only what was queued before this pass.
        let n = inner.soon.borrow().len().min(budget.calls);
        for _ in 0..n {
            let f = inner.soon.borrow_mut().pop_front();
            let Some(f) = f else { break };
            done.calls += 1;
            catch_panic("call_soon", f);
        }

        // 5. Due timers, only those scheduled before this pass.
        let now = self.now();
        let mark = inner.timers.borrow().seq_mark();
        for _ in 0..budget.calls {
            let f = inner.timers.borrow_mut().pop_due(now, mark);
            let Some(f) = f else { break };
            done.calls += 1;
            catch_panic("call_later", f);
        }

        // 6. Writes buffered during this dispatch.
        self.flush_pending();

        if inner.release_wanted.take() {
            self.schedule_release();
        }

        // Where the poller hands registration changes to the kernel only
        // inside a wait (IOCP: polling queues them, level re-arms too), a
        // host that then blocks on the port itself would never hear of
        // them: a closing zero-timeout wait submits them. What it collects
        // is kept for the next dispatch, which the port is woken for (a
        // wakeup the wait swallowed is made again: the queues are checked).
        let mut rewake = false;
        if crate::sys::WAIT_SUBMITS_REGISTRATIONS && for_host {
            let mut stash = stashed.unwrap_or_else(|| Events::with_capacity(cap));
            stash.clear();
            match inner.shared.poller.wait(&mut stash, Some(Duration::ZERO)) {
                Ok(_) if !stash.is_empty() => {
                    inner.stashed.set(Some(stash));
                    rewake = true;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "poller failed"),
            }
            rewake |= inner.shared.has_work();
        }
        // Leftovers keep the fd readable for the host's next turn.
        if rewake || more_from_threads || more_tasks || !inner.soon.borrow().is_empty() {
            self.wake();
        }
        self.rearm();
        if inner.state.get() == RunState::Stopped {
            done.stopped = true;
        }
        Ok(done)
    }

    fn flush_pending(&self) {
        // Flushing can queue more (a producer resumed and wrote): loop.
        for _ in 0..16 {
            let batch = std::mem::take(&mut *self.inner.flushes.borrow_mut());
            if batch.is_empty() {
                return;
            }
            for f in batch {
                f.flush();
            }
        }
    }

    /// Makes the reactor's fd readable so the host dispatches soon.
    pub(crate) fn wake(&self) {
        let _ = self.inner.shared.poller.notify();
    }

    pub(crate) fn in_dispatch(&self) -> bool {
        self.inner.depth.get() > 0
    }

    // ----- for transports -----

    pub(crate) fn register_fd(
        &self,
        fd: RawSource,
        source: Rc<dyn Source>,
        read: bool,
        write: bool,
    ) -> io::Result<usize> {
        let key = self.track(source);
        // SAFETY: every registered fd is deleted (`deregister_fd`) by its
        // owner before it is closed.
        let added = unsafe {
            self.inner
                .shared
                .poller
                .add_with_mode(fd, interest(key, read, write), PollMode::Level)
        };
        if let Err(e) = added {
            self.inner.sources.borrow_mut().remove(key);
            return Err(e);
        }
        self.submit_outside_dispatch();
        Ok(key)
    }

    /// Where the poller takes registration changes only inside a wait
    /// (IOCP), a change made outside a dispatch (a listener opened before
    /// the loop starts, a write from a GUI handler) would wait for the
    /// host's next wakeup: wake it now, so its dispatch submits the change.
    fn submit_outside_dispatch(&self) {
        if crate::sys::WAIT_SUBMITS_REGISTRATIONS && !self.in_dispatch() {
            self.wake();
        }
    }

    pub(crate) fn modify_fd(
        &self,
        fd: BorrowedSource<'_>,
        key: usize,
        read: bool,
        write: bool,
    ) -> io::Result<()> {
        self.inner.shared.poller.modify_with_mode(
            fd,
            interest(key, read, write),
            PollMode::Level,
        )?;
        self.submit_outside_dispatch();
        Ok(())
    }

    pub(crate) fn deregister_fd(&self, fd: BorrowedSource<'_>, key: usize) {
        let _ = self.inner.shared.poller.delete(fd);
        self.untrack(key);
    }

    /// Registers a source that has no fd (an in-memory connection), so that
    /// shutdown closes it too.
    pub(crate) fn track(&self, source: Rc<dyn Source>) -> usize {
        let mut sources = self.inner.sources.borrow_mut();
        let key = sources.insert(source);
        let peak = &self.inner.sources_peak;
        peak.set(peak.get().max(sources.len()));
        key
    }

    pub(crate) fn untrack(&self, key: usize) {
        let (removed, live) = {
            let mut sources = self.inner.sources.borrow_mut();
            (sources.try_remove(key), sources.len())
        };
        drop(removed);
        self.source_closed(live);
    }

    pub(crate) fn queue_flush(&self, f: Rc<dyn Flush>) {
        self.inner.flushes.borrow_mut().push(f);
    }

    pub(crate) fn take_read_buf(&self) -> Box<[u8]> {
        self.inner
            .read_buf
            .take()
            .unwrap_or_else(|| vec![0u8; READ_BUF].into_boxed_slice())
    }

    pub(crate) fn put_read_buf(&self, buf: Box<[u8]>) {
        self.inner.read_buf.set(Some(buf));
    }

    /// How many I/O sources are registered: listeners, connections,
    /// connection attempts, datagram ports, pipes (Twisted's
    /// `getReaders()` and `getWriters()` together). What a test or a
    /// battery checks to show it leaves nothing behind.
    #[doc(alias = "getReaders")]
    #[doc(alias = "getWriters")]
    pub fn source_count(&self) -> usize {
        self.inner.sources.borrow().len()
    }
}

fn interest(key: usize, read: bool, write: bool) -> Event {
    match (read, write) {
        (true, true) => Event::all(key),
        (true, false) => Event::readable(key),
        (false, true) => Event::writable(key),
        (false, false) => Event::none(key),
    }
}

struct DepthGuard<'a>(&'a Inner);

impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.0.depth.set(self.0.depth.get() - 1);
    }
}

/// The standalone loop: [`Reactor::run`]'s host.
struct Standalone(Cell<bool>);

impl HostLoop for Standalone {
    fn reactor_stopped(&self) {
        self.0.set(true);
    }
}

/// The poller's fd: readable whenever [`Reactor::dispatch`] has work.
#[cfg(unix)]
impl AsFd for Reactor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.shared.poller.as_fd()
    }
}

#[cfg(unix)]
impl AsRawFd for Reactor {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.shared.poller.as_raw_fd()
    }
}

/// The poller's I/O completion port: signalled whenever a completion is
/// queued, so a host waits on it (`MsgWaitForMultipleObjectsEx`) with
/// [`Reactor::next_deadline`] as its timeout, then calls
/// [`Reactor::dispatch`] (see [`host`](crate::host) for the Windows
/// contract).
#[cfg(windows)]
impl AsHandle for Reactor {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.inner.shared.poller.as_handle()
    }
}

#[cfg(windows)]
impl AsRawHandle for Reactor {
    fn as_raw_handle(&self) -> RawHandle {
        self.inner.shared.poller.as_raw_handle()
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("poller", &self.inner.shared.poller)
            .field("state", &self.inner.state.get())
            .field("timers", &self.inner.timers.borrow().len())
            .field("sources", &self.inner.sources.borrow().len())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Keeps a host loop attached to a reactor; detaches it when dropped.
#[must_use = "the host is detached when the guard is dropped"]
pub struct HostGuard {
    reactor: WeakReactor,
    dispatches_at_attach: u64,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        let Some(r) = self.reactor.upgrade() else {
            return;
        };
        r.inner.host.borrow_mut().take();
        // A guard dropped before its host ever dispatched, while work
        // waits, is almost always `attach(..).expect(..);` with the guard
        // thrown away (gtk-rs makes ignoring returned handles a habit):
        // the app would wait forever, silently.
        let never_dispatched = r.inner.dispatches.get() == self.dispatches_at_attach;
        if never_dispatched && !r.is_stopped() && r.has_work() {
            tracing::warn!(
                "braid: a host loop was detached before it ever dispatched the reactor, \
                 which has work waiting (connections, timers or queued calls): nothing will \
                 run it now. Keep the guard that attach returned alive (for example \
                 `let _attached = braid_glib::attach(&reactor, &ctx)?;`, not `let _ = ...`)"
            );
        }
    }
}

impl fmt::Debug for HostGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostGuard")
    }
}
