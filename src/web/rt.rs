//! hyper's runtime traits on the reactor: connections as [`hyper::rt::Read`]
//! and [`hyper::rt::Write`], tasks on the reactor's local executor, and
//! timers on the reactor's clock (so fake time drives hyper's timeouts too).

use std::cell::Cell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[cfg(feature = "http2")]
use hyper::rt::Executor;
use hyper::rt::{ReadBufCursor, Sleep as HyperSleep, Timer};

use bytes::{Buf, BytesMut};

use super::guard::{Guard, POISON};
use crate::aio::TcpStream;
use crate::reactor::{Reactor, WeakReactor};

/// A connection as hyper sees it: reads and writes go through the braid
/// transport (so TLS, Unix sockets and the in-memory transport all work),
/// and each one marks the connection active for the idle timeout.
pub(crate) struct HyperIo {
    stream: TcpStream,
    last_active: Rc<Cell<bool>>,
    /// Server side, HTTP/1: every inbound byte is checked first.
    guard: Option<Box<Guarded>>,
}

struct Guarded {
    guard: Guard,
    /// Checked bytes hyper has not taken yet.
    pending: BytesMut,
    /// A violation was found: after `pending` (which ends in the poison),
    /// hyper reads EOF.
    poisoned: bool,
}

impl HyperIo {
    pub(crate) fn new(stream: TcpStream) -> HyperIo {
        HyperIo {
            stream,
            last_active: Rc::new(Cell::new(true)),
            guard: None,
        }
    }

    /// A server connection whose requests' framing is checked by the
    /// [`Guard`] before hyper reads them.
    pub(crate) fn guarded(stream: TcpStream, max_head: usize, max_headers: usize) -> HyperIo {
        let mut io = HyperIo::new(stream);
        io.guard = Some(Box::new(Guarded {
            guard: Guard::new(max_head, max_headers),
            pending: BytesMut::new(),
            poisoned: false,
        }));
        io
    }

    /// Set whenever bytes move either way (the idle watchdog clears it).
    pub(crate) fn activity(&self) -> Rc<Cell<bool>> {
        self.last_active.clone()
    }

    pub(crate) fn into_stream(self) -> TcpStream {
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
        if let Some(g) = this.guard.as_deref_mut() {
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
                    let r = g.guard.feed(a, &mut g.pending);
                    let r = r.and_then(|()| g.guard.feed(b, &mut g.pending));
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
#[derive(Clone)]
pub(crate) struct ReactorTimer(Rc<ThreadBound<WeakReactor>>);

// SAFETY: see `ThreadBound`; the `Rc` is cloned and dropped only by hyper's
// connection, which lives on the reactor thread (hyper requires `Send +
// Sync` of timers for multi-threaded runtimes only).
unsafe impl Send for ReactorTimer {}
// SAFETY: as above.
unsafe impl Sync for ReactorTimer {}

impl ReactorTimer {
    pub(crate) fn new(reactor: &Reactor) -> ReactorTimer {
        ReactorTimer(Rc::new(ThreadBound::new(reactor.downgrade())))
    }

    fn reactor(&self) -> Option<Reactor> {
        self.0.get().and_then(|w| w.upgrade())
    }
}

struct ReactorSleep(ThreadBound<Option<crate::reactor::Sleep>>);

impl Future for ReactorSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.0.get_mut() {
            Some(Some(s)) => Pin::new(s).poll(cx),
            // The reactor is gone: the timeout can never fire.
            _ => Poll::Pending,
        }
    }
}

impl HyperSleep for ReactorSleep {}

impl Timer for ReactorTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn HyperSleep>> {
        let s = self.reactor().map(|r| r.sleep(duration));
        Box::pin(ReactorSleep(ThreadBound::new(s)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn HyperSleep>> {
        let s = self
            .reactor()
            .map(|r| r.sleep(deadline.saturating_duration_since(r.now())));
        Box::pin(ReactorSleep(ThreadBound::new(s)))
    }

    fn now(&self) -> Instant {
        self.reactor().map_or_else(Instant::now, |r| r.now())
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn HyperSleep>>, new_deadline: Instant) {
        // hyper resets its header timeout for every request: move the
        // deadline instead of making a new timer.
        if let Some(s) = sleep.as_mut().downcast_mut_pin::<ReactorSleep>() {
            if let Some(Some(s)) = s.get_mut().0.get_mut() {
                s.reset(new_deadline);
                return;
            }
        }
        *sleep = self.sleep_until(new_deadline);
    }
}
