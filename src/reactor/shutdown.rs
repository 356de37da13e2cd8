//! Stopping: the shutdown triggers, connections closing the way
//! `lose_connection` closes them within a grace period, then what is left
//! aborted and the queues drained.

use std::rc::Rc;
use std::time::Duration;

use super::{Callback, Reactor, RunState, ShutdownPhase, Source, TriggerId};
use crate::panics::catch_panic;

impl Reactor {
    /// Stops the reactor: runs the shutdown triggers, closes listeners and
    /// connections (each gets `connection_lost`), then tells the host loop
    /// to end. Takes effect at the next dispatch; calling it again is a
    /// no-op.
    pub fn stop(&self) {
        if self.inner.state.get() != RunState::Running {
            return;
        }
        self.inner.state.set(RunState::Stopping);
        let r = self.clone();
        self.call_soon(move || r.begin_shutdown());
    }

    /// Sets how long [`stop`](Self::stop) lets connections send what they
    /// had buffered (default [`DEFAULT_SHUTDOWN_GRACE`](crate::DEFAULT_SHUTDOWN_GRACE)); after it, they
    /// are aborted.
    pub fn set_shutdown_grace(&self, grace: Duration) {
        self.inner.grace.set(grace);
    }

    /// A connection that was draining at shutdown has closed.
    pub(crate) fn drained(&self) {
        let left = self.inner.draining.get().saturating_sub(1);
        self.inner.draining.set(left);
        if left == 0
            && self.inner.began_shutdown.get()
            && self.inner.state.get() == RunState::Stopping
        {
            let r = self.clone();
            self.call_soon(move || r.finish_shutdown());
        }
    }

    /// Whether [`stop`](Self::stop) has completed.
    pub fn is_stopped(&self) -> bool {
        self.inner.state.get() == RunState::Stopped
    }

    /// Adds a call to run at `phase` of the shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// # let reactor = braid::Reactor::new()?;
    /// use braid::ShutdownPhase;
    /// reactor.add_shutdown_trigger(ShutdownPhase::Before, || println!("flushing caches"));
    /// # std::io::Result::Ok(())
    /// ```
    #[doc(alias = "addSystemEventTrigger")]
    pub fn add_shutdown_trigger(
        &self,
        phase: ShutdownPhase,
        f: impl FnOnce() + 'static,
    ) -> TriggerId {
        TriggerId(
            self.inner
                .triggers
                .borrow_mut()
                .insert((phase, Box::new(f))),
        )
    }

    /// Removes a trigger that has not run; returns whether it was there.
    #[doc(alias = "removeSystemEventTrigger")]
    pub fn remove_shutdown_trigger(&self, id: TriggerId) -> bool {
        self.inner.triggers.borrow_mut().try_remove(id.0).is_some()
    }

    fn run_triggers(&self, phase: ShutdownPhase) {
        let fs: Vec<Callback> = {
            let mut t = self.inner.triggers.borrow_mut();
            let keys: Vec<usize> = t
                .iter()
                .filter(|(_, (p, _))| *p == phase)
                .map(|(k, _)| k)
                .collect();
            keys.into_iter().map(|k| t.remove(k).1).collect()
        };
        for f in fs {
            catch_panic("shutdown trigger", f);
        }
    }

    /// The sources registered now (a copy: closing them edits the table).
    fn sources_now(&self) -> Vec<Rc<dyn Source>> {
        self.inner
            .sources
            .borrow()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// The first half of the shutdown: the `Before` triggers, then every
    /// source closes, connections the way `lose_connection` does, so what
    /// was written before `stop` reaches the peer (Twisted drops it).
    fn begin_shutdown(&self) {
        self.run_triggers(ShutdownPhase::Before);
        let sources = self.sources_now();
        for s in sources {
            // Counted first: a source that closes at once calls drained().
            self.inner.draining.set(self.inner.draining.get() + 1);
            if !s.begin_shutdown() {
                self.inner.draining.set(self.inner.draining.get() - 1);
            }
        }
        self.inner.began_shutdown.set(true);
        if self.inner.draining.get() == 0 {
            self.finish_shutdown();
            return;
        }
        let r = self.clone();
        let timer = self.call_later(self.inner.grace.get(), move || {
            if r.inner.draining.get() > 0 {
                tracing::warn!(
                    connections = r.inner.draining.get(),
                    "shutdown grace period over: aborting connections that had not sent everything"
                );
            }
            r.finish_shutdown();
        });
        *self.inner.grace_timer.borrow_mut() = Some(timer);
    }

    /// The rest: the `During` triggers, whatever is still open aborted, the
    /// queues drained, the `After` triggers.
    fn finish_shutdown(&self) {
        if self.inner.finishing.replace(true) {
            return;
        }
        if let Some(t) = self.inner.grace_timer.borrow_mut().take() {
            t.cancel();
        }
        self.run_triggers(ShutdownPhase::During);
        let sources = self.sources_now();
        for s in sources {
            s.shutdown();
        }
        // Deliver what closing queued (connection_lost calls, results that
        // worker threads handed back), then drop the tasks left.
        self.drain_queues();
        self.drop_tasks();
        self.drain_queues();
        self.run_triggers(ShutdownPhase::After);
        self.inner.state.set(RunState::Stopped);
        // Break cycles: closures that hold reactor clones.
        let pending = self.inner.timers.borrow_mut().clear();
        drop(pending);
        self.rearm();
        let host = self.inner.host.borrow().clone();
        if let Some(h) = host {
            h.reactor_stopped();
        }
    }

    /// Runs queued calls (local and from threads) and woken tasks until
    /// none are left, for the shutdown sequence.
    fn drain_queues(&self) {
        for _ in 0..64 {
            let batch: Vec<Callback> = self.inner.soon.borrow_mut().drain(..).collect();
            let (calls, _) = self.inner.shared.take(usize::MAX);
            let (polled, _) = self.run_woken_tasks(usize::MAX);
            if batch.is_empty() && calls.is_empty() && polled == 0 {
                break;
            }
            for f in batch {
                catch_panic("call during shutdown", f);
            }
            for f in calls {
                catch_panic("call_from_thread during shutdown", || f(self));
            }
        }
    }
}
