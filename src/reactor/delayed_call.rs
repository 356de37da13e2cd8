//! Handles to calls scheduled with `call_later`.

use std::fmt;
use std::time::{Duration, Instant};

use super::{Reactor, TimerKey, WeakReactor};

/// A call scheduled by [`Reactor::call_later`]: Twisted's `IDelayedCall`.
///
/// Not `Clone`: one owner decides its fate. Dropping it leaves the call
/// scheduled. All methods are safe to use from inside any callback,
/// including this call's own (where it is no longer active).
pub struct DelayedCall {
    pub(super) reactor: WeakReactor,
    pub(super) key: TimerKey,
}

impl DelayedCall {
    fn with<R>(&self, f: impl FnOnce(&Reactor) -> R) -> Option<R> {
        self.reactor.upgrade().map(|r| f(&r))
    }

    /// Cancels the call. Returns false if it already ran or was cancelled.
    pub fn cancel(&self) -> bool {
        self.with(|r| {
            let done = r.inner.timers.borrow_mut().cancel(self.key);
            if done {
                r.timers_changed();
            }
            done
        })
        .unwrap_or(false)
    }

    /// Moves the call to `delay` from now. Returns false if it already ran
    /// or was cancelled.
    pub fn reset(&self, delay: Duration) -> bool {
        self.with(|r| {
            let deadline = r.now() + delay;
            let done = r.inner.timers.borrow_mut().reset(self.key, deadline);
            if done {
                r.timers_changed();
            }
            done
        })
        .unwrap_or(false)
    }

    /// Pushes the call `by` later than its current deadline. Returns false
    /// if it already ran or was cancelled.
    pub fn delay(&self, by: Duration) -> bool {
        self.with(|r| {
            let mut t = r.inner.timers.borrow_mut();
            let done = match t.deadline(self.key) {
                Some(d) => t.reset(self.key, d + by),
                None => false,
            };
            drop(t);
            if done {
                r.timers_changed();
            }
            done
        })
        .unwrap_or(false)
    }

    /// Whether the call is still pending.
    pub fn active(&self) -> bool {
        self.deadline().is_some()
    }

    /// When the call will run, if it is still pending.
    #[doc(alias = "getTime")]
    pub fn deadline(&self) -> Option<Instant> {
        self.with(|r| r.inner.timers.borrow().deadline(self.key))
            .flatten()
    }
}

impl fmt::Debug for DelayedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedCall")
            .field("deadline", &self.deadline())
            .finish()
    }
}
