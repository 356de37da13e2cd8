//! hyper's runtime traits on the reactor: connections as [`hyper::rt::Read`]
//! and [`hyper::rt::Write`], tasks on the reactor's local executor, and
//! timers on the reactor's clock (so fake time drives hyper's timeouts too).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

#[cfg(feature = "http2")]
use hyper::rt::Executor;
use hyper::rt::{ReadBufCursor, Sleep as HyperSleep, Timer};

use bytes::{Buf, BytesMut};

use super::framing_check::{FramingCheck, POISON};
use braid::aio::Stream;
use braid::{DelayedCall, Reactor, WeakReactor};
use slab::Slab;

/// A connection as hyper sees it: reads and writes go through the braid
/// transport (so TLS, Unix sockets and the in-memory transport all work),
/// and each one marks the connection active for the idle timeout.
pub(crate) struct HyperIo {
    stream: Stream,
    last_active: Rc<Cell<bool>>,
    /// Server side, HTTP/1: every inbound byte is checked first.
    framing: Option<Box<Guarded>>,
    /// hyper wrote since it last flushed (so its own buffer may hold
    /// bytes).
    unflushed: bool,
}

struct Guarded {
    framing: FramingCheck,
    /// Checked bytes hyper has not taken yet.
    pending: BytesMut,
    /// A violation was found: after `pending` (which ends in the poison),
    /// hyper reads EOF.
    poisoned: bool,
    /// Requests and responses of this connection, to tell when hyper is
    /// between requests.
    exchanges: Rc<Exchanges>,
    /// hyper was handed an end of input because it was idle between
    /// requests, not because the peer closed.
    released: bool,
    /// Wakes the connection once it has been idle in hyper a while.
    sweep: IdleSweep,
    /// The connection's slot in the sweep, once it has been idle.
    slot: Option<usize>,
    /// Idle in hyper since this tick of the sweep.
    idle_tick: Option<u64>,
    /// When hyper was let go, the time its idleness began.
    idle_since: Option<Instant>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.sweep.busy(self.slot.take(), true);
    }
}

/// How often a site looks for connections idle in hyper: one idle for a
/// whole period (so between one and two) lets hyper go.
const SWEEP_PERIOD: Duration = Duration::from_millis(500);

/// Wakes server connections that have sat idle in hyper for a whole
/// period, so that they let hyper go (see [`HyperIo::guarded`]): a busy
/// keep-alive connection keeps its hyper connection from one request to
/// the next, an idle one holds no buffers. One reactor call per site,
/// armed only while some connection is idle in hyper.
#[derive(Clone)]
pub(crate) struct IdleSweep(Rc<SweepInner>);

struct SweepInner {
    reactor: WeakReactor,
    tick: Cell<u64>,
    /// A slot per connection that has been idle in hyper: its task's
    /// waker, and whether it is idle now (kept from one request to the
    /// next, so a busy connection only flips the flag).
    waiting: RefCell<Slab<(Waker, bool)>>,
    armed: Cell<bool>,
    /// Connections that let hyper go since memory was last released.
    released: Cell<usize>,
    /// ... and in all.
    total: Cell<u64>,
}

/// hyper connections let go before the freed buffers are worth returning
/// to the system (some 16 KiB each: 4 MiB).
const RELEASE_AFTER: usize = 256;

impl IdleSweep {
    pub(crate) fn new(reactor: &Reactor) -> IdleSweep {
        IdleSweep(Rc::new(SweepInner {
            reactor: reactor.downgrade(),
            tick: Cell::new(0),
            waiting: RefCell::default(),
            armed: Cell::new(false),
            released: Cell::new(0),
            total: Cell::new(0),
        }))
    }

    fn tick(&self) -> u64 {
        self.0.tick.get()
    }

    /// How many times a connection let hyper go.
    pub(crate) fn releases(&self) -> u64 {
        self.0.total.get()
    }

    fn now(&self) -> Option<Instant> {
        self.0.reactor.upgrade().map(|r| r.now())
    }

    /// Marks the connection in `slot` (made if there is none) idle, to be
    /// woken by the sweep with `waker`.
    fn idle(&self, slot: &mut Option<usize>, waker: &Waker) {
        let mut waiting = self.0.waiting.borrow_mut();
        match slot.and_then(|k| waiting.get_mut(k)) {
            Some((w, idle)) => {
                *idle = true;
                w.clone_from(waker);
            }
            None => *slot = Some(waiting.insert((waker.clone(), true))),
        }
        drop(waiting);
        self.arm();
    }

    fn update(&self, slot: Option<usize>, waker: &Waker) {
        let mut waiting = self.0.waiting.borrow_mut();
        if let Some((w, _)) = slot.and_then(|k| waiting.get_mut(k)) {
            // A no-op when it is the same waker (`Waker::clone_from`).
            w.clone_from(waker);
        }
    }

    /// The connection is busy again (or gone, with `remove`).
    fn busy(&self, slot: Option<usize>, remove: bool) {
        let Some(k) = slot else { return };
        let mut waiting = self.0.waiting.borrow_mut();
        if remove {
            waiting.try_remove(k);
        } else if let Some((_, idle)) = waiting.get_mut(k) {
            *idle = false;
        }
    }

    /// A connection let hyper go: after many, the allocator is asked to
    /// return what they freed (the buffers sit among live allocations, so
    /// glibc would keep them resident).
    fn released(&self) {
        self.0.total.set(self.0.total.get() + 1);
        let n = self.0.released.get() + 1;
        if n < RELEASE_AFTER {
            self.0.released.set(n);
            return;
        }
        self.0.released.set(0);
        if let Some(r) = self.0.reactor.upgrade() {
            r.release_memory_soon();
        }
    }

    fn arm(&self) {
        if self.0.armed.replace(true) {
            return;
        }
        let Some(reactor) = self.0.reactor.upgrade() else {
            return;
        };
        let me = self.clone();
        drop(reactor.call_later(SWEEP_PERIOD, move || me.fire()));
    }

    fn fire(&self) {
        self.0.armed.set(false);
        self.0.tick.set(self.0.tick.get() + 1);
        let wakers: Vec<Waker> = self
            .0
            .waiting
            .borrow()
            .iter()
            .filter(|(_, (_, idle))| *idle)
            .map(|(_, (w, _))| w.clone())
            .collect();
        if !wakers.is_empty() {
            self.arm();
        }
        for w in wakers {
            w.wake();
        }
    }
}

/// A server connection's requests and responses, counted so the server
/// can tell when hyper is idle between two requests and let it go (hyper
/// holds some 16 KiB of buffers per connection, which an idle one need
/// not keep).
#[derive(Debug, Default)]
pub(crate) struct Exchanges {
    /// Requests hyper handed to the service.
    pub(crate) started: Cell<u64>,
    /// Responses hyper has finished with (their bodies dropped).
    pub(crate) finished: Cell<u64>,
}

impl HyperIo {
    pub(crate) fn new(stream: Stream) -> HyperIo {
        HyperIo {
            stream,
            last_active: Rc::new(Cell::new(true)),
            framing: None,
            unflushed: false,
        }
    }

    /// A server connection whose requests' framing is checked by the
    /// [`FramingCheck`] before hyper reads them. When every request that
    /// arrived has been answered and flushed and no byte has come for a
    /// while (the [`IdleSweep`]'s period), a read gives hyper an end of
    /// input, so that its connection ends and frees its buffers; [`HyperIo::released`] then tells the server to
    /// wait for the next request ([`HyperIo::poll_next_request`]) and
    /// start hyper again.
    pub(crate) fn guarded(
        stream: Stream,
        max_head: usize,
        max_headers: usize,
        exchanges: Rc<Exchanges>,
        sweep: IdleSweep,
    ) -> HyperIo {
        let mut io = HyperIo::new(stream);
        io.framing = Some(Box::new(Guarded {
            framing: FramingCheck::new(max_head, max_headers),
            pending: BytesMut::new(),
            poisoned: false,
            exchanges,
            released: false,
            sweep,
            slot: None,
            idle_tick: None,
            idle_since: None,
        }));
        io
    }

    /// hyper's connection ended because it was idle between requests (see
    /// [`HyperIo::guarded`]): `Some` with the time its idleness began (the
    /// previous response's end). Clears the mark.
    pub(crate) fn take_released(&mut self) -> Option<Option<Instant>> {
        let g = self.framing.as_deref_mut()?;
        std::mem::take(&mut g.released).then(|| g.idle_since.take())
    }

    /// Puts back bytes hyper had read and not parsed (its read buffer when
    /// its connection ended): they are read again first.
    pub(crate) fn unread(&mut self, bytes: &[u8]) {
        if let Some(g) = self.framing.as_deref_mut() {
            if !bytes.is_empty() {
                let mut p = BytesMut::with_capacity(bytes.len() + g.pending.len());
                p.extend_from_slice(bytes);
                p.extend_from_slice(&g.pending);
                g.pending = p;
            }
        }
    }

    /// Waits, holding no buffer, for the next request's first bytes:
    /// `true` once some are here (checked, for hyper to read), `false` at
    /// the end of input.
    pub(crate) fn poll_next_request(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let Some(g) = self.framing.as_deref_mut() else {
            return Poll::Ready(Ok(true));
        };
        if !g.pending.is_empty() || g.poisoned {
            return Poll::Ready(Ok(true));
        }
        g.pending = BytesMut::new();
        g.framing.shrink();
        self.stream.shrink();
        match g.fill(&self.stream, cx) {
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(false)),
            Poll::Ready(Ok(_)) => {
                self.last_active.set(true);
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Set whenever bytes move either way (the idle watchdog clears it).
    pub(crate) fn activity(&self) -> Rc<Cell<bool>> {
        self.last_active.clone()
    }

    pub(crate) fn into_stream(self) -> Stream {
        self.stream
    }

    pub(crate) fn transport(&self) -> &braid::Transport {
        self.stream.transport()
    }

    fn touch(&self) {
        self.last_active.set(true);
    }
}

impl Guarded {
    /// Reads what the stream has through the framing check into
    /// `pending` (the poison after it, on a violation).
    fn fill(&mut self, stream: &Stream, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let r = self.fill_inner(stream, cx);
        if r.is_ready() {
            // Bytes (or the end) came: not idle any more.
            self.leave_sweep();
        }
        r
    }

    fn leave_sweep(&mut self) {
        if self.idle_tick.take().is_some() {
            self.sweep.busy(self.slot, false);
        }
    }

    fn fill_inner(&mut self, stream: &Stream, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut refused = None;
        let r = stream.poll_read_with(cx, usize::MAX, |a, b| {
            let r = self.framing.feed(a, &mut self.pending);
            let r = r.and_then(|()| self.framing.feed(b, &mut self.pending));
            refused = r.err();
        });
        if let Some(why) = refused {
            tracing::debug!(why, "refusing a malformed request");
            self.pending.extend_from_slice(POISON);
            self.poisoned = true;
        }
        r
    }

    /// hyper is between requests: every request that arrived was handed to
    /// the service and its response finished, and no message has begun.
    fn idle(&self) -> bool {
        let e = &self.exchanges;
        self.pending.is_empty()
            && self.framing.between_messages()
            && self.framing.heads() == e.started.get()
            && e.started.get() == e.finished.get()
    }
}

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(g) = this.framing.as_deref_mut() {
            loop {
                if !g.pending.is_empty() {
                    let n = buf.remaining().min(g.pending.len());
                    buf.put_slice(&g.pending[..n]);
                    g.pending.advance(n);
                    return Poll::Ready(Ok(()));
                }
                if g.poisoned {
                    return Poll::Ready(Ok(()));
                }
                match g.fill(&this.stream, cx) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(_)) => this.last_active.set(true),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending if !this.unflushed && g.idle() => {
                        // Every request answered and sent, nothing
                        // waiting: once that has lasted, hyper may go
                        // (see `guarded`).
                        match g.idle_tick {
                            Some(since) if g.sweep.tick() >= since + 2 => {
                                g.leave_sweep();
                                g.sweep.released();
                                g.released = true;
                                return Poll::Ready(Ok(()));
                            }
                            Some(_) => g.sweep.update(g.slot, cx.waker()),
                            None => {
                                g.sweep.idle(&mut g.slot, cx.waker());
                                g.idle_tick = Some(g.sweep.tick());
                                g.idle_since = g.sweep.now();
                            }
                        }
                        return Poll::Pending;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        let max = buf.remaining();
        match this.stream.poll_read_with(cx, max, |a, b| {
            buf.put_slice(a);
            buf.put_slice(b);
        }) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.unflushed = true;
        let r = self.stream.poll_write_all(cx, &[buf]);
        if r.is_ready() {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.unflushed = true;
        let mut on_stack: [&[u8]; 8] = [&[]; 8];
        let r = if bufs.len() <= on_stack.len() {
            for (d, s) in on_stack.iter_mut().zip(bufs) {
                *d = s;
            }
            self.stream.poll_write_all(cx, &on_stack[..bufs.len()])
        } else {
            let v: Vec<&[u8]> = bufs.iter().map(|b| &**b).collect();
            self.stream.poll_write_all(cx, &v)
        };
        if r.is_ready() {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are in the transport's buffer, which the reactor
        // sends at the end of this dispatch. hyper flushes only once its
        // own buffer is empty.
        self.unflushed = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.transport().lose_write_connection();
        Poll::Ready(Ok(()))
    }
}

/// hyper's executor: background tasks (HTTP/2 streams, client connections)
/// run on the reactor's local executor, on the reactor thread.
#[cfg(feature = "http2")]
#[derive(Clone)]
pub(crate) struct LocalExec(pub(crate) Reactor);

#[cfg(feature = "http2")]
impl<F> Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        drop(self.0.spawn_local(async move {
            fut.await;
        }));
    }
}

/// A value usable only on the thread that made it. hyper asks for `Send +
/// Sync` timers although, with a local executor, it never moves them: this
/// lets braid's `Rc`-based timers through, and turns any use from another
/// thread into "never" rather than undefined behaviour.
struct ThreadBound<T> {
    thread: usize,
    inner: ManuallyDrop<T>,
}

thread_local! {
    static MARK: u8 = const { 0 };
}

/// This thread's identity, cheaply: the address of a thread-local (unique
/// among live threads; `ThreadBound`s never outlive the reactor's thread
/// in practice, and a reused address could only be a later thread, which
/// never sees these values).
fn this_thread() -> usize {
    MARK.with(|m| m as *const u8 as usize)
}

// SAFETY: the inner value is only reached through `get`/`get_mut`, which
// return it on its own thread only; on another thread it is never touched
// (not even dropped: it is leaked).
unsafe impl<T> Send for ThreadBound<T> {}
// SAFETY: as above; a shared reference gives access on the owning thread
// only.
unsafe impl<T> Sync for ThreadBound<T> {}

impl<T> ThreadBound<T> {
    fn new(inner: T) -> Self {
        ThreadBound {
            thread: this_thread(),
            inner: ManuallyDrop::new(inner),
        }
    }

    fn get(&self) -> Option<&T> {
        (this_thread() == self.thread).then_some(&*self.inner)
    }

    fn get_mut(&mut self) -> Option<&mut T> {
        (this_thread() == self.thread).then_some(&mut *self.inner)
    }
}

impl<T> Drop for ThreadBound<T> {
    fn drop(&mut self) {
        if this_thread() == self.thread {
            // SAFETY: dropped once, here, on its own thread.
            unsafe { ManuallyDrop::drop(&mut self.inner) }
        }
    }
}

/// hyper's timer on the reactor's clock.
///
/// hyper makes a timer for every request head it waits for and drops it
/// when the head arrives, so timers here are cheap: one shared set per site
/// or agent, an entry per timer (a slab slot, removed on drop), and one
/// reactor call armed for the earliest deadline. When that call fires it
/// wakes what is due and arms itself for the next.
#[derive(Clone)]
pub(crate) struct ReactorTimer(Rc<ThreadBound<TimerShared>>);

struct TimerShared {
    reactor: WeakReactor,
    set: RefCell<TimerSet>,
}

#[derive(Default)]
struct TimerSet {
    entries: Slab<TimerEntry>,
    /// The armed reactor call and its deadline.
    armed: Option<(Instant, DelayedCall)>,
}

struct TimerEntry {
    deadline: Instant,
    waker: Option<Waker>,
}

// SAFETY: see `ThreadBound`; the `Rc` is cloned and dropped only by hyper's
// connection, which lives on the reactor thread (hyper requires `Send +
// Sync` of timers for multi-threaded runtimes only).
unsafe impl Send for ReactorTimer {}
// SAFETY: as above.
unsafe impl Sync for ReactorTimer {}

impl ReactorTimer {
    pub(crate) fn new(reactor: &Reactor) -> ReactorTimer {
        ReactorTimer(Rc::new(ThreadBound::new(TimerShared {
            reactor: reactor.downgrade(),
            set: RefCell::default(),
        })))
    }

    fn shared(&self) -> Option<&TimerShared> {
        self.0.get()
    }

    fn reactor(&self) -> Option<Reactor> {
        self.shared().and_then(|s| s.reactor.upgrade())
    }

    fn make(&self, deadline: Instant) -> Pin<Box<dyn HyperSleep>> {
        let key = self.shared().map(|s| {
            s.set.borrow_mut().entries.insert(TimerEntry {
                deadline,
                waker: None,
            })
        });
        Box::pin(ReactorSleep(ThreadBound::new(SleepEntry {
            timer: self.clone(),
            key,
            deadline,
        })))
    }

    /// Makes sure a reactor call is armed no later than `deadline`.
    fn arm(&self, deadline: Instant) {
        let (Some(shared), Some(reactor)) = (self.shared(), self.reactor()) else {
            return;
        };
        let mut set = shared.set.borrow_mut();
        if let Some((at, call)) = &set.armed {
            if *at <= deadline && call.active() {
                return;
            }
            call.cancel();
        }
        let me = self.clone();
        let delay = deadline.saturating_duration_since(reactor.now());
        let call = reactor.call_later(delay, move || me.fire());
        set.armed = Some((deadline, call));
    }

    /// Wakes every due timer and arms for the next deadline.
    fn fire(&self) {
        let (Some(shared), Some(reactor)) = (self.shared(), self.reactor()) else {
            return;
        };
        let now = reactor.now();
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        {
            let mut set = shared.set.borrow_mut();
            set.armed = None;
            for (_, e) in set.entries.iter_mut() {
                if e.deadline <= now {
                    if let Some(w) = e.waker.take() {
                        due.push(w);
                    }
                } else if e.waker.is_some() {
                    next = Some(next.map_or(e.deadline, |n| n.min(e.deadline)));
                }
            }
        }
        if let Some(n) = next {
            self.arm(n);
        }
        for w in due {
            w.wake();
        }
    }
}

impl ReactorTimer {
    /// Runs `f` on a sleep this timer made and its entry in the set;
    /// false if the sleep is another timer's (or on another thread).
    fn with_entry(
        sleep: &mut Pin<Box<dyn HyperSleep>>,
        f: impl FnOnce(&mut SleepEntry, Option<&mut TimerEntry>),
    ) -> bool {
        let Some(s) = sleep.as_mut().downcast_mut_pin::<ReactorSleep>() else {
            return false;
        };
        let Some(e) = s.get_mut().0.get_mut() else {
            return false;
        };
        let timer = e.timer.clone();
        match (e.key, timer.shared()) {
            (Some(k), Some(shared)) => {
                let mut set = shared.set.borrow_mut();
                f(e, set.entries.get_mut(k));
            }
            _ => f(e, None),
        }
        true
    }

    /// Stops `sleep` waking its task until it is polled again (its
    /// deadline stays).
    pub(crate) fn disarm(&self, sleep: &mut Pin<Box<dyn HyperSleep>>) {
        Self::with_entry(sleep, |_, entry| {
            if let Some(entry) = entry {
                entry.waker = None;
            }
        });
    }
}

struct SleepEntry {
    timer: ReactorTimer,
    key: Option<usize>,
    deadline: Instant,
}

impl Drop for SleepEntry {
    fn drop(&mut self) {
        if let (Some(k), Some(s)) = (self.key, self.timer.shared()) {
            let mut set = s.set.borrow_mut();
            set.entries.try_remove(k);
            if set.entries.is_empty() {
                // Nothing left to time: an idle server sleeps.
                if let Some((_, call)) = set.armed.take() {
                    call.cancel();
                }
            }
        }
    }
}

struct ReactorSleep(ThreadBound<SleepEntry>);

impl Future for ReactorSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // On another thread, or with the reactor gone: never fires.
        let Some(e) = this.0.get_mut() else {
            return Poll::Pending;
        };
        let (Some(key), Some(reactor)) = (e.key, e.timer.reactor()) else {
            return Poll::Pending;
        };
        if reactor.now() >= e.deadline {
            return Poll::Ready(());
        }
        if let Some(shared) = e.timer.shared() {
            let mut set = shared.set.borrow_mut();
            if let Some(entry) = set.entries.get_mut(key) {
                match &entry.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => entry.waker = Some(cx.waker().clone()),
                }
            }
        }
        e.timer.arm(e.deadline);
        Poll::Pending
    }
}

impl HyperSleep for ReactorSleep {}

impl Timer for ReactorTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn HyperSleep>> {
        let now = self.now();
        self.make(now + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn HyperSleep>> {
        self.make(deadline)
    }

    fn now(&self) -> Instant {
        self.reactor().map_or_else(Instant::now, |r| r.now())
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn HyperSleep>>, new_deadline: Instant) {
        let reset = Self::with_entry(sleep, |e, entry| {
            e.deadline = new_deadline;
            if let Some(entry) = entry {
                entry.deadline = new_deadline;
            }
        });
        if !reset {
            *sleep = self.sleep_until(new_deadline);
        }
    }
}
