//! The event-loop abstraction: what any loop must do to drive a reactor.
//!
//! ```text
//!            the host loop (standalone, glib, calloop, winit, yours)
//!     watches ONE fd ── Reactor::as_fd() ── readable means "dispatch me"
//!         │                                     ▲
//!         │ readable                            │ becomes readable when:
//!         ▼                                     │  · a socket is ready
//!     Reactor::dispatch(Budget)                 │  · a timer is due (timerfd)
//!         │ never blocks; runs ready I/O,       │  · call_soon / a write from
//!         │ due timers, queued calls, at most   │    outside a dispatch
//!         │ a budget of each; what is left      │  · call_from_thread from
//!         │ keeps the fd readable               │    any thread
//!         ▼
//!     HostLoop::reactor_stopped()  ◀── the reactor stopped: end your loop
//! ```
//!
//! On Linux the reactor's timers live in a timerfd inside its poller, so
//! a host needs no timer of its own and never has to re-read a deadline
//! that a GUI callback changed: the fd alone tells it when to dispatch.
//! [`Reactor::timers_in_fd`] says whether that holds on this platform;
//! where it does not, a host also wakes at [`Reactor::next_deadline`] and
//! is told of changes through [`HostLoop::deadline_changed`].
//!
//! The standalone loop ([`Reactor::run`]) is the first implementation;
//! `braid-glib`, `braid-calloop` and `braid-winit` implement the same
//! contract for their loops, and a hand-written `poll(2)` loop needs a few
//! dozen lines (see `examples/poll_host.rs`).
//!
//! [`Reactor::as_fd`]: std::os::fd::AsFd::as_fd
//! [`Reactor::timers_in_fd`]: crate::Reactor::timers_in_fd
//! [`Reactor::next_deadline`]: crate::Reactor::next_deadline
//! [`Reactor::run`]: crate::Reactor::run

use std::time::Instant;

/// What a reactor tells the loop that hosts it.
///
/// Implement it for a loop braid ships no adapter for, and attach it with
/// [`Reactor::attach_host`](crate::Reactor::attach_host). The loop itself
/// watches the reactor's fd and calls
/// [`Reactor::dispatch`](crate::Reactor::dispatch) when it is readable.
pub trait HostLoop {
    /// The reactor has stopped: its shutdown triggers ran and its
    /// connections and listeners are closed. The host should end its loop
    /// (quit a `glib::MainLoop`, exit a calloop run, leave the winit pump).
    fn reactor_stopped(&self);

    /// The earliest timer deadline changed outside a dispatch. Called only
    /// where [`Reactor::timers_in_fd`](crate::Reactor::timers_in_fd) is
    /// false; with a timerfd the reactor's fd wakes the host by itself.
    fn deadline_changed(&self, deadline: Option<Instant>) {
        let _ = deadline;
    }
}

/// How much one [`Reactor::dispatch`](crate::Reactor::dispatch) may do, so
/// that a flood on one socket cannot freeze a GUI. Whatever is left stays
/// ready for the next dispatch (registrations are level-triggered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub(crate) io_events: usize,
    pub(crate) calls: usize,
    pub(crate) reads_per_event: usize,
}

impl Budget {
    /// At most `n` I/O events and `n` queued calls and timers per dispatch.
    /// `n` is raised to 1.
    pub fn new(n: usize) -> Self {
        Budget {
            io_events: n.max(1),
            calls: n.max(1),
            ..Budget::default()
        }
    }

    /// How many reads (of up to 64 KiB each) one ready connection may do
    /// per dispatch before the others get their turn (default 4).
    pub fn reads_per_event(mut self, n: usize) -> Self {
        self.reads_per_event = n.max(1);
        self
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            io_events: 256,
            calls: 1024,
            reads_per_event: 4,
        }
    }
}

/// What one dispatch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dispatched {
    /// I/O events handled.
    pub io_events: usize,
    /// Calls run: `call_soon`, `call_from_thread` and due timers.
    pub calls: usize,
    /// The reactor stopped during this dispatch.
    pub stopped: bool,
}
