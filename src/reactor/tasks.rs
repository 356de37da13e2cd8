//! The local executor: `!Send` futures on the reactor thread, driven by the
//! reactor's dispatch, so they run under every host loop.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Weak as ArcWeak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use slab::Slab;

use super::handle::Shared;
use super::{DelayedCall, Reactor};
use crate::defer::{Deferred, Failure};
use crate::panics::panic_message;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

pub(crate) struct TaskSlot {
    id: u64,
    future: Option<LocalFuture>,
    /// Made once per task: polls clone it (no allocation per poll).
    waker: Waker,
    /// Told when the task panics or is aborted.
    on_fail: Option<Box<dyn FnOnce(Failure)>>,
}

#[derive(Default)]
pub(crate) struct Tasks {
    slots: Slab<TaskSlot>,
    next_id: u64,
}

struct TaskWaker {
    shared: ArcWeak<Shared>,
    key: usize,
    id: u64,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            shared
                .woken
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((self.key, self.id));
            let _ = shared.poller.notify();
        }
    }
}

struct JoinState<T> {
    result: Option<Result<T, Failure>>,
    waker: Option<Waker>,
    key: usize,
    id: u64,
    finished: bool,
}

/// A task spawned with [`Reactor::spawn_local`]: await it for the task's
/// output, or [`abort`](Self::abort) it. Dropping the handle lets the task
/// run on, detached.
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
    reactor: super::WeakReactor,
}

impl<T: 'static> JoinHandle<T> {
    /// Stops the task (its future is dropped at once); awaiting the handle
    /// then gives [`Failure::cancelled`]. No-op if it finished.
    pub fn abort(&self) {
        abort(&self.state, &self.reactor);
    }

    /// Whether the task has finished (completed, panicked or aborted).
    pub fn is_finished(&self) -> bool {
        self.state.borrow().finished
    }
}

fn abort<T>(state: &Rc<RefCell<JoinState<T>>>, reactor: &super::WeakReactor) {
    let (key, id) = {
        let s = state.borrow();
        if s.finished {
            return;
        }
        (s.key, s.id)
    };
    if let Some(r) = reactor.upgrade() {
        let slot = {
            let mut tasks = r.inner.tasks.borrow_mut();
            match tasks.slots.get(key) {
                Some(t) if t.id == id => Some(tasks.slots.remove(key)),
                _ => None,
            }
        };
        // Dropped outside the borrow: the future's drop may spawn.
        drop(slot);
    }
    finish(state, Err(Failure::cancelled()));
}

pin_project_lite::pin_project! {
    /// A spawned future and where its output goes. (An `async` block
    /// awaiting the future would hold it twice, as the block's captured
    /// value and as the value it awaits: rust-lang/rust#62958. This holds
    /// it once, which halves a task's allocation.)
    struct Task<F: Future> {
        #[pin]
        fut: F,
        done: Option<Rc<RefCell<JoinState<F::Output>>>>,
    }
}

impl<F: Future> Future for Task<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        match this.fut.poll(cx) {
            Poll::Ready(out) => {
                if let Some(done) = this.done.take() {
                    finish(&done, Ok(out));
                }
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

fn finish<T>(state: &Rc<RefCell<JoinState<T>>>, result: Result<T, Failure>) {
    let mut s = state.borrow_mut();
    if s.finished {
        return;
    }
    s.finished = true;
    s.result = Some(result);
    let w = s.waker.take();
    drop(s);
    if let Some(w) = w {
        w.wake();
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.state.borrow_mut();
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None if s.finished => panic!("a JoinHandle polled after it completed"),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.state.borrow().finished)
            .finish()
    }
}

impl Reactor {
    /// Runs a `!Send` future on the reactor thread, polled by the
    /// reactor's dispatch (so under any host loop). It is first polled at
    /// the next dispatch, never inside this call. A panic in it is caught
    /// and ends only this task: its handle gives [`Failure::panicked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use braid::Reactor;
    ///
    /// let reactor = Reactor::new()?;
    /// let r = reactor.clone();
    /// let answer = reactor.block_on(async move {
    ///     r.sleep(Duration::from_millis(1)).await;
    ///     let task = r.spawn_local(async { 6 * 7 });
    ///     task.await.unwrap()
    /// })?;
    /// assert_eq!(answer, 42);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn spawn_local<T: 'static>(&self, fut: impl Future<Output = T> + 'static) -> JoinHandle<T> {
        let mut tasks = self.inner.tasks.borrow_mut();
        let id = tasks.next_id;
        tasks.next_id += 1;
        let key = tasks.slots.vacant_key();
        let state = Rc::new(RefCell::new(JoinState {
            result: None,
            waker: None,
            key,
            id,
            finished: false,
        }));
        let done = state.clone();
        let failed = state.clone();
        let wrapped: LocalFuture = Box::pin(Task {
            fut,
            done: Some(done),
        });
        let waker = Waker::from(Arc::new(TaskWaker {
            shared: Arc::downgrade(&self.inner.shared),
            key,
            id,
        }));
        tasks.slots.insert(TaskSlot {
            id,
            future: Some(wrapped),
            waker,
            on_fail: Some(Box::new(move |f| finish(&failed, Err(f)))),
        });
        drop(tasks);
        self.inner
            .shared
            .woken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((key, id));
        self.wake();
        JoinHandle {
            state,
            reactor: self.downgrade(),
        }
    }

    /// Polls the tasks woken since the last pass, at most `budget`.
    /// Returns how many were polled and whether more are waiting.
    pub(crate) fn run_woken_tasks(&self, budget: usize) -> (usize, bool) {
        let batch: Vec<(usize, u64)> = {
            let mut w = self
                .inner
                .shared
                .woken
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let n = w.len().min(budget);
            w.drain(..n).collect()
        };
        let mut polled = 0;
        for (key, id) in batch {
            let fut = {
                let mut tasks = self.inner.tasks.borrow_mut();
                match tasks.slots.get_mut(key) {
                    Some(t) if t.id == id => t.future.take().map(|f| (f, t.waker.clone())),
                    _ => None,
                }
            };
            // Woken twice in one batch, or finished: nothing to poll.
            let Some((mut fut, waker)) = fut else {
                continue;
            };
            polled += 1;
            let mut cx = Context::from_waker(&waker);
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                fut.as_mut().poll(&mut cx)
            }));
            let mut tasks = self.inner.tasks.borrow_mut();
            match res {
                Ok(Poll::Pending) => {
                    if let Some(t) = tasks.slots.get_mut(key).filter(|t| t.id == id) {
                        t.future = Some(fut);
                    }
                }
                Ok(Poll::Ready(())) => {
                    if tasks.slots.get(key).is_some_and(|t| t.id == id) {
                        tasks.slots.remove(key);
                    }
                    drop(tasks);
                    drop(fut);
                }
                Err(payload) => {
                    let msg = panic_message(&*payload);
                    tracing::error!(panic = %msg, "a spawned task panicked");
                    let slot = if tasks.slots.get(key).is_some_and(|t| t.id == id) {
                        Some(tasks.slots.remove(key))
                    } else {
                        None
                    };
                    drop(tasks);
                    drop(fut);
                    if let Some(on_fail) = slot.and_then(|mut s| s.on_fail.take()) {
                        on_fail(Failure::panicked(msg));
                    }
                }
            }
        }
        let more = !self
            .inner
            .shared
            .woken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        (polled, more)
    }

    /// Drops every task (reactor shutdown); their handles report
    /// cancellation.
    pub(crate) fn drop_tasks(&self) {
        let slots: Vec<TaskSlot> = self.inner.tasks.borrow_mut().slots.drain().collect();
        for mut s in slots {
            drop(s.future.take());
            if let Some(f) = s.on_fail.take() {
                f(Failure::shutdown());
            }
        }
    }

    /// Runs the reactor standalone until `fut` completes, and returns its
    /// output. For programs and tests whose whole job is one future.
    ///
    /// # Errors
    ///
    /// If the poller fails, or the future panicked or the reactor stopped
    /// first (as `io::ErrorKind::Other` with the failure's text).
    pub fn block_on<T: 'static>(
        &self,
        fut: impl Future<Output = T> + 'static,
    ) -> std::io::Result<T> {
        let handle = self.spawn_local(fut);
        while !handle.is_finished() {
            if self.is_stopped() {
                break;
            }
            self.iterate(Duration::from_secs(3600))?;
        }
        let r = handle.state.borrow_mut().result.take();
        match r {
            Some(Ok(v)) => Ok(v),
            Some(Err(f)) => Err(std::io::Error::other(f.to_string())),
            None => Err(std::io::Error::other(
                "the reactor stopped before the future completed",
            )),
        }
    }

    /// A future that completes `delay` after this call, on this reactor's
    /// clock (the deadline is fixed now, not at the first poll).
    pub fn sleep(&self, delay: Duration) -> Sleep {
        Sleep {
            reactor: self.clone(),
            deadline: self.now() + delay,
            state: Rc::default(),
            call: None,
        }
    }

    /// Runs `fut` with a deadline: its output, or [`Failure::timed_out`]
    /// if `after` passes first (the future is then dropped).
    pub async fn timeout<T>(
        &self,
        after: Duration,
        fut: impl Future<Output = T>,
    ) -> Result<T, Failure> {
        let mut fut = std::pin::pin!(fut);
        let mut sleep = self.sleep(after);
        std::future::poll_fn(move |cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            match Pin::new(&mut sleep).poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Failure::timed_out())),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// The future of [`Reactor::sleep`].
pub struct Sleep {
    reactor: Reactor,
    deadline: std::time::Instant,
    state: Rc<RefCell<(bool, Option<Waker>)>>,
    call: Option<DelayedCall>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.state.borrow_mut();
        if st.0 {
            if self.reactor.now() >= self.deadline {
                return Poll::Ready(());
            }
            // Reset to a later deadline after the timer was set: set it
            // again for the rest.
            st.0 = false;
            drop(st);
            self.call = None;
            st = self.state.borrow_mut();
        }
        match &st.1 {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.1 = Some(cx.waker().clone()),
        }
        drop(st);
        if self.call.is_none() {
            let state = self.state.clone();
            let delay = self.deadline.saturating_duration_since(self.reactor.now());
            let call = self.reactor.call_later(delay, move || {
                let w = {
                    let mut s = state.borrow_mut();
                    s.0 = true;
                    s.1.take()
                };
                if let Some(w) = w {
                    w.wake();
                }
            });
            self.call = Some(call);
        }
        Poll::Pending
    }
}

impl Sleep {
    /// When it completes.
    pub fn deadline(&self) -> std::time::Instant {
        self.deadline
    }

    /// Moves the deadline (as tokio's `Sleep::reset`). Moving it later
    /// costs nothing until the old deadline passes, so a timeout pushed
    /// back on every message stays cheap.
    pub fn reset(&mut self, deadline: std::time::Instant) {
        if deadline < self.deadline {
            if let Some(c) = self.call.take() {
                c.cancel();
            }
        }
        self.deadline = deadline;
        if self.state.borrow().0 {
            // Fired already: poll sets it again if the new deadline is
            // still ahead.
            self.call = None;
            if self.reactor.now() < deadline {
                self.state.borrow_mut().0 = false;
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(c) = &self.call {
            c.cancel();
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("done", &self.state.borrow().0)
            .finish()
    }
}

impl<T: 'static> Deferred<T, Failure> {
    /// A Deferred fired by a future run on `reactor`'s executor. A panic in
    /// the future fails it with [`Failure::panicked`]; cancelling the
    /// Deferred aborts the future.
    pub fn from_future(
        reactor: &Reactor,
        fut: impl Future<Output = Result<T, Failure>> + 'static,
    ) -> Self {
        let inner = reactor.spawn_local(fut);
        let (state, weak) = (inner.state.clone(), inner.reactor.clone());
        let d = Deferred::with_canceller(move || abort(&state, &weak));
        let resolver = d.resolver();
        // The outer task hears of the inner one's panic through its handle.
        drop(reactor.spawn_local(async move { resolver.resolve(inner.await.and_then(|r| r)) }));
        d
    }
}
