//! The one way into a reactor from another thread.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use polling::Poller;

pub(crate) type SendCallback = Box<dyn FnOnce(&super::Reactor) + Send>;

/// State shared between a reactor and its [`ReactorHandle`]s.
pub(crate) struct Shared {
    pub(crate) poller: Poller,
    queue: Mutex<VecDeque<SendCallback>>,
    /// Tasks woken (possibly from other threads), by (slab key, task id).
    pub(crate) woken: Mutex<Vec<(usize, u64)>>,
    alive: AtomicBool,
    stop_requested: AtomicBool,
    /// The reactor's thread.
    pub(crate) thread: std::thread::ThreadId,
}

impl Shared {
    pub(crate) fn new(poller: Poller) -> Self {
        Shared {
            poller,
            queue: Mutex::new(VecDeque::new()),
            woken: Mutex::new(Vec::new()),
            alive: AtomicBool::new(true),
            stop_requested: AtomicBool::new(false),
            thread: std::thread::current().id(),
        }
    }

    /// Takes up to `max` queued calls, oldest first. Returns them and
    /// whether more are left.
    pub(crate) fn take(&self, max: usize) -> (Vec<SendCallback>, bool) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let n = q.len().min(max);
        let taken: Vec<_> = q.drain(..n).collect();
        (taken, !q.is_empty())
    }

    /// Whether calls, woken tasks or a stop wait for the reactor.
    pub(crate) fn has_work(&self) -> bool {
        !self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
            || !self
                .woken
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
            || self.stop_requested.load(Ordering::Acquire)
    }

    pub(crate) fn take_stop_request(&self) -> bool {
        self.stop_requested.swap(false, Ordering::AcqRel)
    }

    /// Marks the reactor gone and drops what was queued for it.
    pub(crate) fn close(&self) {
        self.alive.store(false, Ordering::Release);
        let drained: Vec<_> = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.drain(..).collect()
        };
        drop(drained);
        self.woken.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A `Send + Sync + Clone` handle to a reactor, for other threads.
///
/// Reactor-bound objects are `!Send`; this handle is the only way in from
/// another thread. [`call_from_thread`](Self::call_from_thread) queues a
/// closure and wakes the reactor however it is hosted (standalone, glib,
/// calloop, winit): the poller's fd becomes readable.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use braid::Reactor;
///
/// let reactor = Reactor::new()?;
/// let handle = reactor.handle();
/// std::thread::spawn(move || {
///     let h = handle.clone();
///     handle.call_from_thread(move || h.stop()).unwrap();
/// });
/// reactor.run()?; // returns once the other thread's call stopped it
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct ReactorHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ReactorHandle {
    /// Runs `f` on the reactor thread, at its next dispatch. Calls made from
    /// one thread run in the order they were made.
    ///
    /// # Errors
    ///
    /// [`ReactorGone`] if the reactor has been dropped; `f` is dropped
    /// unrun.
    #[doc(alias = "callFromThread")]
    pub fn call_from_thread(&self, f: impl FnOnce() + Send + 'static) -> Result<(), ReactorGone> {
        self.call_from_thread_with(move |_| f())
    }

    /// Like [`call_from_thread`](Self::call_from_thread), but `f` gets the
    /// reactor: a worker thread can hand back a `Send` result and let
    /// reactor-side code (which may hold `!Send` state) take it from there.
    ///
    /// # Errors
    ///
    /// [`ReactorGone`] if the reactor has been dropped.
    pub fn call_from_thread_with(
        &self,
        f: impl FnOnce(&super::Reactor) + Send + 'static,
    ) -> Result<(), ReactorGone> {
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            if !self.shared.alive.load(Ordering::Acquire) {
                return Err(ReactorGone(()));
            }
            q.push_back(Box::new(f));
        }
        // Coalesced by polling: one eventfd write until the reactor wakes.
        let _ = self.shared.poller.notify();
        Ok(())
    }

    /// Asks the reactor to stop, as [`Reactor::stop`](crate::Reactor::stop)
    /// does, from any thread.
    pub fn stop(&self) {
        self.shared.stop_requested.store(true, Ordering::Release);
        let _ = self.shared.poller.notify();
    }

    /// Runs `f` on the reactor thread and waits for its result: Twisted's
    /// `blockingCallFromThread`, for a worker that needs the reactor to
    /// compute something (read protocol state, start a connection).
    ///
    /// # Errors
    ///
    /// [`ReactorGone`] if the reactor is dropped before running `f`.
    ///
    /// # Panics
    ///
    /// If called on the reactor's own thread, which would wait forever.
    #[doc(alias = "blockingCallFromThread")]
    pub fn blocking_call_from_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce(&super::Reactor) -> T + Send + 'static,
    ) -> Result<T, ReactorGone> {
        assert!(
            std::thread::current().id() != self.shared.thread,
            "blocking_call_from_thread on the reactor's own thread would wait forever"
        );
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.call_from_thread_with(move |r| {
            let _ = tx.send(f(r));
        })?;
        rx.recv().map_err(|_| ReactorGone(()))
    }

    /// Whether the reactor still exists.
    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }
}

impl fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorHandle")
            .field("alive", &self.is_alive())
            .finish()
    }
}

/// The reactor behind a [`ReactorHandle`] has been dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactorGone(());

impl fmt::Display for ReactorGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the reactor has been dropped")
    }
}

impl Error for ReactorGone {}
