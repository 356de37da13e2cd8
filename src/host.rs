//! The event-loop abstraction: what any loop must do to drive a reactor.
//!
//! ```text
//!            the host loop (standalone, glib, calloop, winit, yours)
//!     watches ONE fd ── Reactor::as_fd() ── readable means "dispatch me"
//!     (on Windows: ONE handle, Reactor::as_handle(), + the next deadline)
//!         │                                     ▲
//!         │ readable                            │ becomes readable when:
//!         ▼                                     │  · a socket is ready
//!     Reactor::dispatch(Budget)                 │  · a timer is due (timerfd, kqueue)
//!         │ never blocks; runs ready I/O,       │  · call_soon / a write from
//!         │ due timers, queued calls, at most   │    outside a dispatch
//!         │ a budget of each; what is left      │  · call_from_thread from
//!         │ keeps the fd readable               │    any thread
//!         ▼
//!     HostLoop::reactor_stopped()  ◀── the reactor stopped: end your loop
//! ```
//!
//! ## The contract on each platform
//!
//! | platform | what a host waits on | timers |
//! |---|---|---|
//! | Linux (epoll) | the reactor's fd ([`AsFd`]), readable means "dispatch" | inside the fd (a timerfd in the poller) |
//! | macOS, iOS, the BSDs (kqueue) | the reactor's fd, a kqueue, readable (to `poll`, `select`, another kqueue, `CFFileDescriptor`) while it holds an event | inside the fd (`EVFILT_TIMER` in a kqueue of its own, in the poller) |
//! | Windows (IOCP) | the reactor's completion port ([`AsHandle`]), signalled while a completion is queued (Windows 10 and later), with [`Reactor::next_deadline`] as the wait's timeout | in the host's wait: [`HostLoop::deadline_changed`] tells of changes made outside a dispatch |
//!
//! "One pollable fd" on Unix, "one waitable handle plus the next deadline"
//! on Windows. [`Reactor::timers_in_fd`] says which holds (false also for
//! a reactor on a fake clock). On Windows, polling hands registration
//! changes and re-arms to the kernel only inside a wait, so
//! [`Reactor::dispatch`] ends with a zero-timeout wait of its own (what it
//! collects is kept for the next dispatch, and the port is signalled for
//! it): a host that blocks on the port after a dispatch misses nothing.
//!
//! The standalone loop ([`Reactor::run`]) is the first implementation;
//! `braid-glib`, `braid-calloop`, `braid-winit`, `braid-qt` and
//! `braid-cocoa` implement the same contract for their loops, and a
//! hand-written loop needs a few dozen lines (`examples/poll_host.rs` for
//! poll(2); `tests/poll_host.rs` also has the Windows form, a
//! `WaitForSingleObject` on the port).
//!
//! [`Reactor::timers_in_fd`]: crate::Reactor::timers_in_fd
//! [`Reactor::next_deadline`]: crate::Reactor::next_deadline
//! [`Reactor::run`]: crate::Reactor::run
//! [`Reactor::dispatch`]: crate::Reactor::dispatch
#![cfg_attr(
    unix,
    doc = "[`AsFd`]: std::os::fd::AsFd",
    doc = "[`AsHandle`]: https://doc.rust-lang.org/std/os/windows/io/trait.AsHandle.html"
)]
#![cfg_attr(
    windows,
    doc = "[`AsFd`]: https://doc.rust-lang.org/std/os/fd/trait.AsFd.html",
    doc = "[`AsHandle`]: std::os::windows::io::AsHandle"
)]

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
    /// false (Windows, a fake clock); with timers in the fd the reactor's
    /// fd wakes the host by itself.
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
