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
}

struct Guarded {
    framing: FramingCheck,
    /// Checked bytes hyper has not taken yet.
    pending: BytesMut,
    /// A violation was found: after `pending` (which ends in the poison),
    /// hyper reads EOF.
    poisoned: bool,
}

impl HyperIo {
    pub(crate) fn new(stream: Stream) -> HyperIo {
        HyperIo {
            stream,
            last_active: Rc::new(Cell::new(true)),
            framing: None,
        }
    }

    /// A server connection whose requests' framing is checked by the
    /// [`FramingCheck`] before hyper reads them.
    pub(crate) fn guarded(stream: Stream, max_head: usize, max_headers: usize) -> HyperIo {
        let mut io = HyperIo::new(stream);
        io.framing = Some(Box::new(Guarded {
            framing: FramingCheck::new(max_head, max_headers),
            pending: BytesMut::new(),
            poisoned: false,
        }));
        io
    }

    /// Set whenever bytes move either way (the idle watchdog clears it).
    pub(crate) fn activity(&self) -> Rc<Cell<bool>> {
        self.last_active.clone()
    }

    pub(crate) fn into_stream(self) -> Stream {
        self.stream
    }

    fn touch(&self) {
        self.last_active.set(true);
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
                let mut refused = None;
                let r = this.stream.poll_read_with(cx, usize::MAX, |a, b| {
                    let r = g.framing.feed(a, &mut g.pending);
                    let r = r.and_then(|()| g.framing.feed(b, &mut g.pending));
                    refused = r.err();
                });
                match r {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(_)) => {
                        this.last_active.set(true);
                        if let Some(why) = refused {
                            tracing::debug!(why, "refusing a malformed request");
                            g.pending.extend_from_slice(POISON);
                            g.poisoned = true;
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = self.stream.poll_write_all(cx, &[buf]);
        if r.is_ready() {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
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

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are in the transport's buffer, which the reactor
        // sends at the end of this dispatch.
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
        if let Some(s) = sleep.as_mut().downcast_mut_pin::<ReactorSleep>() {
            if let Some(e) = s.get_mut().0.get_mut() {
                e.deadline = new_deadline;
                if let (Some(k), Some(shared)) = (e.key, e.timer.shared()) {
                    if let Some(entry) = shared.set.borrow_mut().entries.get_mut(k) {
                        entry.deadline = new_deadline;
                    }
                }
                return;
            }
        }
        *sleep = self.sleep_until(new_deadline);
    }
}
