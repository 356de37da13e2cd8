//! `Deferred`: a result that is not there yet, with a callback chain.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::Failure;
use crate::reactor::Reactor;

type Continuation<T, E> = Box<dyn FnOnce(Result<T, E>)>;

enum State<T, E> {
    Waiting,
    Ready(Result<T, E>),
    /// The result went down the chain (or to an awaiting task).
    Done,
}

struct Slot<T, E> {
    state: State<T, E>,
    next: Option<Continuation<T, E>>,
    waker: Option<Waker>,
    /// Cancels whatever this link waits for: the user's canceller at the
    /// root, the upstream link, or the Deferred a callback returned.
    canceller: Option<Box<dyn FnOnce()>>,
    /// The consumer's handle was dropped while waiting: an error arriving
    /// later is reported as unhandled.
    orphan: bool,
    /// Resolvers alive: when the last goes without firing, nothing ever
    /// will, and `abandon` fails the Deferred instead of leaving whoever
    /// awaits it hanging (a timer dropped by a stopping reactor, a worker
    /// gone).
    resolvers: usize,
    abandon: fn(&Shared<T, E>),
    /// A cancellation is under way: resolvers its canceller drops do not
    /// abandon the Deferred (it fails as cancelled).
    cancelling: bool,
}

type Shared<T, E> = Rc<RefCell<Slot<T, E>>>;

/// A value that is not there yet: Twisted's `Deferred`, typed.
///
/// Chain work onto it with `add_callback` and friends; each consumes the
/// Deferred and returns the next link, whose type follows what the callback
/// returns. Callbacks run synchronously as soon as the result is there
/// (at once, if it already is). A callback can turn success into failure
/// and back ([`add_callback_result`](Self::add_callback_result),
/// [`add_errback`](Self::add_errback), [`add_both`](Self::add_both)) and
/// can return another Deferred that the chain then waits for
/// ([`add_callback_deferred`](Self::add_callback_deferred)).
///
/// It is also a [`Future`], so `async` code awaits it; and
/// [`Deferred::from_future`] goes the other way.
///
/// [`cancel`](Self::cancel) on any link cancels what the chain waits for
/// (the root's canceller, or an inner Deferred), and the link fails with
/// [`Failure::cancelled`] unless the canceller resolved it otherwise. An
/// error that reaches the end of a chain whose last handle is dropped is
/// logged as unhandled, as Twisted does.
///
/// The error type `E` is [`Failure`] by default; a typed error needs
/// `From<Failure>` (for cancellation and timeouts) and `Debug` (to log it).
///
/// # Examples
///
/// ```
/// use braid::{Deferred, Failure};
///
/// let d: Deferred<u32> = Deferred::new();
/// let resolver = d.resolver();
/// let d = d
///     .add_callback(|n| n * 2)
///     .add_callback_result(|n| if n > 10 { Ok(n) } else { Err(Failure::msg("too small")) })
///     .add_errback(|_failure| Ok(10));
/// resolver.callback(3); // 6 is too small: the errback recovers with 10
/// assert_eq!(d.result().unwrap().unwrap(), 10);
/// ```
pub struct Deferred<T: 'static, E: 'static = Failure> {
    slot: Option<Shared<T, E>>,
}

/// The one-shot firing side of a [`Deferred`] (Twisted's `d.callback` and
/// `d.errback`). Firing consumes it, so a Deferred cannot fire twice.
/// Dropping it unfired leaves the Deferred waiting forever (cancel it).
pub struct Resolver<T: 'static, E: 'static = Failure> {
    slot: Shared<T, E>,
}

/// What a chaining callback produced: a result now, or a Deferred to wait for.
enum Link<U: 'static, E: 'static> {
    Now(Result<U, E>),
    Wait(Deferred<U, E>),
}

fn settle<T: 'static, E: fmt::Debug + 'static>(slot: &Shared<T, E>, result: Result<T, E>) {
    let mut s = slot.borrow_mut();
    if !matches!(s.state, State::Waiting) {
        return; // cancelled (or settled) before: the late result is dropped
    }
    s.canceller = None;
    if let Some(next) = s.next.take() {
        s.state = State::Done;
        drop(s);
        next(result);
        return;
    }
    if s.orphan {
        s.state = State::Done;
        drop(s);
        if let Err(e) = result {
            tracing::error!(error = ?e, "unhandled error in a Deferred whose consumer is gone");
        }
        return;
    }
    s.state = State::Ready(result);
    let waker = s.waker.take();
    drop(s);
    if let Some(w) = waker {
        w.wake();
    }
}

/// Every resolver of a waiting Deferred is gone: it fails with
/// [`FailureKind::Abandoned`](super::FailureKind::Abandoned).
fn abandon_slot<T: 'static, E: From<Failure> + fmt::Debug + 'static>(slot: &Shared<T, E>) {
    settle(slot, Err(E::from(Failure::abandoned())));
}

fn cancel_slot<T: 'static, E: From<Failure> + fmt::Debug + 'static>(
    slot: &Shared<T, E>,
    why: fn() -> Failure,
) {
    let canceller = {
        let mut s = slot.borrow_mut();
        if !matches!(s.state, State::Waiting) {
            return;
        }
        s.cancelling = true;
        s.canceller.take()
    };
    if let Some(c) = canceller {
        c();
    }
    // Unless the canceller settled it (or the cancellation flowed down the
    // chain to here), fail it now.
    settle(slot, Err(E::from(why())));
}

impl<T: 'static, E: From<Failure> + fmt::Debug + 'static> Deferred<T, E> {
    /// A Deferred waiting for its [`resolver`](Self::resolver) to fire.
    pub fn new() -> Self {
        Deferred {
            slot: Some(Rc::new(RefCell::new(Slot {
                state: State::Waiting,
                next: None,
                waker: None,
                canceller: None,
                orphan: false,
                resolvers: 0,
                abandon: abandon_slot::<T, E>,
                cancelling: false,
            }))),
        }
    }

    /// A Deferred whose `canceller` runs on [`cancel`](Self::cancel), to
    /// stop the work behind it (close a socket, abort a job).
    pub fn with_canceller(canceller: impl FnOnce() + 'static) -> Self {
        let d = Self::new();
        d.shared().borrow_mut().canceller = Some(Box::new(canceller));
        d
    }

    /// An already successful Deferred (Twisted's `succeed`).
    pub fn succeed(value: T) -> Self {
        let d = Self::new();
        d.resolver().callback(value);
        d
    }

    /// An already failed Deferred (Twisted's `fail`).
    pub fn fail(error: E) -> Self {
        let d = Self::new();
        d.resolver().errback(error);
        d
    }

    fn shared(&self) -> &Shared<T, E> {
        self.slot
            .as_ref()
            .expect("a Deferred used after it was consumed")
    }

    /// The firing side. Call once per Deferred; further resolvers of the
    /// same Deferred fire nothing once one has fired.
    pub fn resolver(&self) -> Resolver<T, E> {
        self.shared().borrow_mut().resolvers += 1;
        Resolver {
            slot: self.shared().clone(),
        }
    }

    /// Whether the result is there (and not yet passed on).
    pub fn is_ready(&self) -> bool {
        matches!(self.shared().borrow().state, State::Ready(_))
    }

    /// Takes the result if it is there: `None` while waiting.
    pub fn result(mut self) -> Option<Result<T, E>> {
        let slot = self.slot.take()?;
        let mut s = slot.borrow_mut();
        match std::mem::replace(&mut s.state, State::Done) {
            State::Ready(r) => Some(r),
            other => {
                s.state = other;
                drop(s);
                self.slot = Some(slot);
                None
            }
        }
    }

    /// Cancels what this chain waits for. See the type's docs.
    pub fn cancel(&self) {
        cancel_slot(self.shared(), Failure::cancelled);
    }

    fn chain<U: 'static, E2: From<Failure> + fmt::Debug + 'static>(
        mut self,
        f: impl FnOnce(Result<T, E>) -> Link<U, E2> + 'static,
    ) -> Deferred<U, E2> {
        let up = self
            .slot
            .take()
            .expect("a Deferred used after it was consumed");
        let out = Deferred::<U, E2>::new();
        let out_slot = out.shared().clone();
        {
            let up = up.clone();
            out_slot.borrow_mut().canceller =
                Some(Box::new(move || cancel_slot(&up, Failure::cancelled)));
        }
        let target = out_slot.clone();
        let cont = move |r: Result<T, E>| match f(r) {
            Link::Now(res) => settle(&target, res),
            Link::Wait(mut inner) => {
                let inner_slot = inner.slot.take().expect("a live Deferred");
                {
                    let i = inner_slot.clone();
                    let mut t = target.borrow_mut();
                    if matches!(t.state, State::Waiting) {
                        t.canceller = Some(Box::new(move || cancel_slot(&i, Failure::cancelled)));
                    }
                }
                let t2 = target.clone();
                attach(&inner_slot, Box::new(move |r| settle(&t2, r)));
            }
        };
        attach(&up, Box::new(cont));
        out
    }

    /// Runs `f` on success; a failure passes by. Twisted's `addCallback`.
    #[doc(alias = "addCallback")]
    pub fn add_callback<U: 'static>(self, f: impl FnOnce(T) -> U + 'static) -> Deferred<U, E> {
        self.chain(move |r| Link::Now(r.map(f)))
    }

    /// Runs `f` on success; its `Err` turns the chain into a failure.
    pub fn add_callback_result<U: 'static>(
        self,
        f: impl FnOnce(T) -> Result<U, E> + 'static,
    ) -> Deferred<U, E> {
        self.chain(move |r| Link::Now(r.and_then(f)))
    }

    /// Runs `f` on success; the chain then waits for the Deferred it
    /// returns (and cancelling the chain cancels that one).
    pub fn add_callback_deferred<U: 'static>(
        self,
        f: impl FnOnce(T) -> Deferred<U, E> + 'static,
    ) -> Deferred<U, E> {
        self.chain(move |r| match r {
            Ok(v) => Link::Wait(f(v)),
            Err(e) => Link::Now(Err(e)),
        })
    }

    /// Runs `f` on failure; its `Ok` recovers. Twisted's `addErrback`.
    #[doc(alias = "addErrback")]
    pub fn add_errback(self, f: impl FnOnce(E) -> Result<T, E> + 'static) -> Deferred<T, E> {
        self.chain(move |r| Link::Now(r.or_else(f)))
    }

    /// One callback for success, one for failure, either may change the
    /// types. Twisted's `addCallbacks`.
    #[doc(alias = "addCallbacks")]
    pub fn add_callbacks<U: 'static, E2: From<Failure> + fmt::Debug + 'static>(
        self,
        on_ok: impl FnOnce(T) -> Result<U, E2> + 'static,
        on_err: impl FnOnce(E) -> Result<U, E2> + 'static,
    ) -> Deferred<U, E2> {
        self.chain(move |r| Link::Now(r.map_or_else(on_err, on_ok)))
    }

    /// Runs `f` on either outcome. Twisted's `addBoth`.
    #[doc(alias = "addBoth")]
    pub fn add_both<U: 'static, E2: From<Failure> + fmt::Debug + 'static>(
        self,
        f: impl FnOnce(Result<T, E>) -> Result<U, E2> + 'static,
    ) -> Deferred<U, E2> {
        self.chain(move |r| Link::Now(f(r)))
    }

    /// Like [`add_both`](Self::add_both), waiting for the Deferred `f`
    /// returns.
    pub fn add_both_deferred<U: 'static, E2: From<Failure> + fmt::Debug + 'static>(
        self,
        f: impl FnOnce(Result<T, E>) -> Deferred<U, E2> + 'static,
    ) -> Deferred<U, E2> {
        self.chain(move |r| Link::Wait(f(r)))
    }

    /// Cancels the chain if no result arrives within `after` on `reactor`'s
    /// clock; the failure is then [`Failure::timed_out`]. Twisted's
    /// `addTimeout`.
    #[doc(alias = "addTimeout")]
    pub fn add_timeout(self, reactor: &Reactor, after: Duration) -> Deferred<T, E> {
        let up = Rc::downgrade(self.shared());
        let timer = reactor.call_later(after, move || {
            if let Some(s) = up.upgrade() {
                cancel_slot(&s, Failure::timed_out);
            }
        });
        self.add_both(move |r| {
            timer.cancel();
            r
        })
    }
}

/// Installs `next` on `slot`: runs it now if the result is there.
fn attach<T: 'static, E: 'static>(slot: &Shared<T, E>, next: Continuation<T, E>) {
    let mut s = slot.borrow_mut();
    match std::mem::replace(&mut s.state, State::Done) {
        State::Ready(r) => {
            drop(s);
            next(r);
        }
        State::Waiting => {
            s.state = State::Waiting;
            s.next = Some(next);
        }
        State::Done => {} // already consumed: nothing will come
    }
}

impl<T: 'static, E: From<Failure> + fmt::Debug + 'static> Default for Deferred<T, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static, E: fmt::Debug + 'static> Resolver<T, E> {
    /// Fires with a success.
    pub fn callback(self, value: T) {
        settle(&self.slot, Ok(value));
    }

    /// Fires with a failure.
    pub fn errback(self, error: E) {
        settle(&self.slot, Err(error));
    }

    /// Fires with either.
    pub fn resolve(self, result: Result<T, E>) {
        settle(&self.slot, result);
    }

    /// Whether the Deferred still waits (not fired, not cancelled).
    pub fn is_waiting(&self) -> bool {
        matches!(self.slot.borrow().state, State::Waiting)
    }
}

impl<T: 'static, E: 'static> Drop for Resolver<T, E> {
    fn drop(&mut self) {
        let abandon = {
            let Ok(mut s) = self.slot.try_borrow_mut() else {
                return;
            };
            s.resolvers = s.resolvers.saturating_sub(1);
            let unfired = matches!(s.state, State::Waiting) && s.resolvers == 0;
            (unfired && !s.orphan && !s.cancelling).then_some(s.abandon)
        };
        if let Some(f) = abandon {
            f(&self.slot);
        }
    }
}

impl<T: 'static, E: 'static> Drop for Deferred<T, E> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        let Ok(mut s) = slot.try_borrow_mut() else {
            return;
        };
        match std::mem::replace(&mut s.state, State::Done) {
            State::Ready(Err(_)) => {
                tracing::error!(
                    error_type = std::any::type_name::<E>(),
                    "unhandled error in a Deferred: its last handle was dropped with a failure in it"
                );
            }
            State::Waiting => {
                s.state = State::Waiting;
                s.orphan = true;
            }
            _ => {}
        }
    }
}

impl<T: 'static, E: 'static> Future for Deferred<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = self
            .slot
            .as_ref()
            .expect("a Deferred polled after it completed")
            .clone();
        let mut s = slot.borrow_mut();
        match std::mem::replace(&mut s.state, State::Done) {
            State::Ready(r) => {
                drop(s);
                self.slot = None;
                Poll::Ready(r)
            }
            State::Waiting => {
                s.state = State::Waiting;
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            State::Done => panic!("a Deferred polled after its result was taken"),
        }
    }
}

impl<T: 'static, E: 'static> fmt::Debug for Deferred<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.slot {
            None => "consumed",
            Some(s) => s
                .try_borrow()
                .map(|s| match s.state {
                    State::Waiting => "waiting",
                    State::Ready(Ok(_)) => "succeeded",
                    State::Ready(Err(_)) => "failed",
                    State::Done => "done",
                })
                .unwrap_or("busy"),
        };
        f.debug_struct("Deferred").field("state", &state).finish()
    }
}

impl<T: 'static, E: 'static> fmt::Debug for Resolver<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}
