//! # braid-glib
//!
//! Hosts a braid [`Reactor`] inside a glib [`MainContext`]: the main loop of
//! every GTK4 application. Sockets, timers and protocols then run on the GUI
//! thread, in GTK's own loop, with no second thread and no channels.
//!
//! ```text
//!   glib::MainContext (GTK's loop)
//!     └─ unix fd source on Reactor::as_fd()   readable ─▶ Reactor::dispatch(budget)
//!          (one fd: sockets, braid timers via its timerfd, call_soon,
//!           call_from_thread all make it readable)
//!   Reactor::stop() ─▶ HostLoop::reactor_stopped ─▶ your on_stop: quit the
//!                                                   MainLoop / gtk4::Application
//! ```
//!
//! ```no_run
//! use braid::Reactor;
//!
//! let reactor = Reactor::new()?;
//! let context = glib::MainContext::default();
//! let main_loop = glib::MainLoop::new(Some(&context), false);
//! let attached = braid_glib::attach(&reactor, &context)?;
//! attached.quit_on_stop(&main_loop);
//! // ... listen_tcp / connect_tcp / call_later as usual ...
//! main_loop.run();
//! # std::io::Result::Ok(())
//! ```
//!
//! For a `gtk4::Application`, attach in `activate` (or before `run`) to
//! `MainContext::default()` and call `attached.on_stop(move || app.quit())`.
//!
//! Each dispatch is bounded by a [`Budget`], so a flooding socket cannot
//! freeze the window; the fd source may recurse (a nested main loop, such
//! as a modal dialog opened from a protocol callback, keeps the network
//! running).
//!
//! **Keep the guard.** gtk-rs makes ignoring a returned handle a habit
//! (`SourceId`, `SignalHandlerId`), but `attach(..).expect(..);` drops the
//! [`Attached`] at once and nothing dispatches the reactor again: every
//! fetch then waits forever. [`Attached`] is `#[must_use]`, and a guard
//! dropped before it ever dispatched, while work waits, logs a warning that
//! says so.
//!
//! ## braid futures under glib's executor
//!
//! braid's futures (an `Agent` request, an [`aio::Stream`](braid::aio::Stream)
//! read, a `Deferred`, `reactor.sleep(..)`) are plain `!Send` futures woken
//! through the reactor, so they run on **either** executor of the GUI
//! thread:
//!
//! ```no_run
//! # let reactor = braid::Reactor::new()?;
//! let r = reactor.clone();
//! // glib's executor: the task can touch GTK widgets directly.
//! glib::spawn_future_local(async move {
//!     let sum = r.defer_to_thread(|| (1..=100u64).sum::<u64>()).await;
//!     // label.set_text(&format!("{sum:?}"));
//!     # let _ = sum;
//! });
//! // Or braid's own executor, which also runs under any other host:
//! reactor.spawn_local(async { /* ... */ });
//! # std::io::Result::Ok(())
//! ```
//!
//! Prefer `glib::spawn_future_local` for code that updates widgets (it is
//! what gtk-rs examples use and it lives as long as the GUI), and
//! [`Reactor::spawn_local`] for network logic that should not depend on the
//! GUI toolkit (it also runs in tests under the fake clock). When the
//! reactor stops, connections close (reads and writes fail with the close
//! reason), and a `Deferred` that only a stopping reactor could have fired
//! (a timer's, say) fails with `FailureKind::Abandoned`: a glib task
//! awaiting braid gets a clear error, never a hang. A bare
//! `reactor.sleep(..)` is the exception: it has no error to give, and
//! simply never completes after the stop. The conformance suite runs a
//! task on glib's executor to check all of this.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::{Budget, HostGuard, HostLoop, Reactor};
use glib::thread_guard::ThreadGuard;
use glib::translate::ToGlibPtr;
use glib::{ControlFlow, IOCondition, MainContext, Priority, Source};

/// Attaches `reactor` to `context` with the default priority and budget.
///
/// The context must not be owned by another thread (it is about to be
/// iterated by this one). Keep the returned guard: dropping it detaches
/// the reactor.
///
/// # Errors
///
/// `WouldBlock` if another thread owns `context`; `AlreadyExists` if
/// another host already drives `reactor`.
pub fn attach(reactor: &Reactor, context: &MainContext) -> io::Result<Attached> {
    Attached::new(reactor, context, Priority::DEFAULT, Budget::default())
}

struct Host {
    context: MainContext,
    reactor: Reactor,
    priority: Priority,
    budget: Budget,
    on_stop: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// Only where the reactor has no timerfd: a glib timeout at its next
    /// deadline.
    deadline: RefCell<Option<Source>>,
}

impl HostLoop for Host {
    fn reactor_stopped(&self) {
        let fs = std::mem::take(&mut *self.on_stop.borrow_mut());
        for f in fs {
            f();
        }
    }

    fn deadline_changed(&self, deadline: Option<Instant>) {
        if let Some(old) = self.deadline.borrow_mut().take() {
            old.destroy();
        }
        let Some(d) = deadline else { return };
        // glib timeouts have millisecond resolution: round up, or the
        // timer fires early and the loop spins once (docs/architecture.md, fact 2).
        let wait = d.saturating_duration_since(Instant::now());
        let ms = wait.as_nanos().div_ceil(1_000_000) as u64;
        let reactor = ThreadGuard::new(self.reactor.clone());
        let budget = self.budget;
        let source = glib::timeout_source_new(
            Duration::from_millis(ms),
            Some("braid reactor deadline"),
            self.priority,
            move || {
                reactor.get_ref().dispatch(budget);
                ControlFlow::Break
            },
        );
        source.attach(Some(&self.context));
        *self.deadline.borrow_mut() = Some(source);
    }
}

/// A reactor attached to a glib main context. Dropping it detaches.
#[must_use = "the reactor is detached from glib when this is dropped: keep it alive (`let _attached = attach(..)?;`)"]
pub struct Attached {
    source: Source,
    host: Rc<Host>,
    _guard: HostGuard,
}

impl Attached {
    /// Attaches with a chosen source priority and dispatch budget.
    ///
    /// # Errors
    ///
    /// As [`attach`].
    pub fn new(
        reactor: &Reactor,
        context: &MainContext,
        priority: Priority,
        budget: Budget,
    ) -> io::Result<Attached> {
        // Owned by another thread means iterated by it: refuse rather than
        // have reactor callbacks run (and panic) there.
        if !context.is_owner() && context.acquire().is_err() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the main context is owned by another thread",
            ));
        }
        let host = Rc::new(Host {
            context: context.clone(),
            reactor: reactor.clone(),
            priority,
            budget,
            on_stop: RefCell::default(),
            deadline: RefCell::default(),
        });
        let guard = reactor.attach_host(host.clone())?;
        let r = ThreadGuard::new(reactor.clone());
        let source = glib_unix::fd_source_new(
            reactor.as_raw_fd(),
            IOCondition::IN | IOCondition::ERR | IOCondition::HUP,
            Some("braid reactor"),
            priority,
            move |_, _| {
                r.get_ref().dispatch(budget);
                ControlFlow::Continue
            },
        );
        // SAFETY: `source` is a live GSource; setting a flag on it.
        // Letting it recurse keeps the network alive in nested loops and
        // saves three syscalls per wakeup (docs/architecture.md, fact 3).
        unsafe { glib::ffi::g_source_set_can_recurse(source.to_glib_none().0, glib::ffi::GTRUE) };
        source.attach(Some(context));
        if !reactor.timers_in_fd() {
            host.deadline_changed(reactor.next_deadline());
        }
        Ok(Attached {
            source,
            host,
            _guard: guard,
        })
    }

    /// Quits `main_loop` when the reactor stops.
    pub fn quit_on_stop(&self, main_loop: &glib::MainLoop) {
        let ml = main_loop.clone();
        self.on_stop(move || ml.quit());
    }

    /// Runs `f` when the reactor stops (after its shutdown triggers), for
    /// example `move || app.quit()` for a `gtk4::Application`.
    pub fn on_stop(&self, f: impl FnOnce() + 'static) {
        self.host.on_stop.borrow_mut().push(Box::new(f));
    }

    /// The reactor.
    pub fn reactor(&self) -> &Reactor {
        &self.host.reactor
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.source.destroy();
        if let Some(d) = self.host.deadline.borrow_mut().take() {
            d.destroy();
        }
    }
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached")
            .field("reactor", &self.host.reactor)
            .field("priority", &self.host.priority)
            .finish()
    }
}
