//! # braid-winit
//!
//! Runs a winit 0.30 [`ApplicationHandler`] and a braid [`Reactor`] together
//! on the main thread: the window's events, the reactor's sockets and timers,
//! and `call_from_thread` calls all in one loop, with no network thread.
//!
//! winit cannot watch foreign fds, so the roles reverse: braid runs the loop.
//! The reactor watches winit's own fd (its event loop is `AsFd` on X11 and
//! Wayland) with [`Reactor::watch_fd`] and blocks in its own poller, as when
//! it runs alone (one `epoll_wait` per wakeup, no `poll(2)` on top); it
//! pumps winit with a zero timeout when winit has work, and sleeps as the
//! application's [`ControlFlow`] asks (`Wait`, `Poll`, `WaitUntil`).
//!
//! ```text
//!   Reactor::wait_and_dispatch(timeout from ControlFlow, budget)
//!     │ sockets, timers, call_from_thread  │ winit's fd readable (watch_fd
//!     ▼                                    ▼ raises a flag), or WaitUntil
//!   protocols run in the dispatch        EventLoop::pump_app_events(0, app)
//!                                          │ then, on X11: XPending?
//!                                          ▼ pump again (events already
//!                                            read into Xlib's queue do
//!                                            not make the fd readable)
//! ```
//!
//! ```no_run
//! use winit::application::ApplicationHandler;
//! use winit::event::WindowEvent;
//! use winit::event_loop::{ActiveEventLoop, EventLoop};
//! use winit::window::WindowId;
//!
//! struct App;
//! impl ApplicationHandler for App {
//!     fn resumed(&mut self, _: &ActiveEventLoop) {}
//!     fn window_event(&mut self, _: &ActiveEventLoop, _: WindowId, _: WindowEvent) {}
//! }
//!
//! let reactor = braid::Reactor::new()?;
//! let mut event_loop = EventLoop::new()?;
//! // ... listen_tcp / connect_tcp / call_later on `reactor` ...
//! let end = braid_winit::run_app(&mut event_loop, &reactor, &mut App)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Talking to the window from the network, and stopping
//!
//! Protocols run on the same thread as the [`ApplicationHandler`], so they
//! can hold `Rc` state the app reads when it redraws. To wake winit itself
//! (a new message should trigger a redraw now), give the protocol an
//! [`EventLoopProxy`](winit::event_loop::EventLoopProxy) from
//! `EventLoop::with_user_event()` and send a user event: the app gets it in
//! `user_event` and calls `request_redraw`. A protocol stops everything by
//! calling [`Reactor::stop`]: connections send what they had buffered,
//! and [`run_app`] returns [`Exit::ReactorStopped`]. The app closing its
//! window with `ActiveEventLoop::exit` stops the reactor in turn.
//!
//! ```no_run
//! use winit::application::ApplicationHandler;
//! use winit::event::WindowEvent;
//! use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
//! use winit::window::WindowId;
//! use braid::{Address, Protocol, Transport};
//!
//! /// Lines from the network become user events for the window.
//! struct Feed(EventLoopProxy<String>);
//! impl Protocol for Feed {
//!     fn data_received(&mut self, _: &Transport, data: &[u8]) {
//!         let _ = self.0.send_event(String::from_utf8_lossy(data).into_owned());
//!     }
//! }
//!
//! struct App { last: String }
//! impl ApplicationHandler<String> for App {
//!     fn resumed(&mut self, _: &ActiveEventLoop) {}
//!     fn user_event(&mut self, _: &ActiveEventLoop, line: String) {
//!         self.last = line; // then window.request_redraw()
//!     }
//!     fn window_event(&mut self, el: &ActiveEventLoop, _: WindowId, e: WindowEvent) {
//!         if matches!(e, WindowEvent::CloseRequested) {
//!             el.exit(); // run_app stops the reactor
//!         }
//!     }
//! }
//!
//! let reactor = braid::Reactor::new()?;
//! let mut event_loop = EventLoop::<String>::with_user_event().build()?;
//! let proxy = event_loop.create_proxy();
//! reactor.connect_tcp(
//!     "127.0.0.1:7000".parse().unwrap(),
//!     move |_: &Address| Feed(proxy.clone()),
//!     None,
//! );
//! braid_winit::run_app(&mut event_loop, &reactor, &mut App { last: String::new() })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## egui (eframe)
//!
//! eframe 0.32 and later hand their `ApplicationHandler` over
//! (`eframe::create_native`, egui PR #6750), and `run_app` runs it like
//! any other; the network then shares egui's thread and can hold `Rc`
//! state the UI draws, calling `egui::Context::request_repaint` when it
//! changes. `examples/egui_lines.rs` is the whole pattern, tested in a
//! real window:
//!
//! ```ignore
//! let mut event_loop = EventLoop::<eframe::UserEvent>::with_user_event().build()?;
//! let mut app = eframe::create_native("app", options, Box::new(|cc| Ok(Box::new(MyApp::new(cc)))), &event_loop);
//! braid_winit::run_app(&mut event_loop, &reactor, &mut app)?;
//! ```
//!
//! One trap: a UI that asks egui for something every frame that cannot
//! happen yet (`request_focus()` while the window has no keyboard focus)
//! repaints without end, and winit's X11 pump then never returns, so
//! nothing else on the thread runs. Ask once.
//!
//! ## Platforms
//!
//! - **X11**: the full design above.
//! - **Wayland** (feature `wayland`): the same (the conformance suite runs
//!   on weston), but winit's Wayland backend starts one helper thread of
//!   its own ("pump_events mon") at the first pump: woken through a condvar
//!   after every pump to poll the Wayland socket, asleep in `poll` while
//!   idle (no wakeups measured). It costs a thread and a futex wake per GUI
//!   wakeup, nothing per network wakeup. Set `WAYLAND_DISPLAY=` to force
//!   X11 where a second thread matters.
//! - **Elsewhere** (no winit fd): a documented fallback: winit is pumped
//!   with a timeout capped at [`FALLBACK_SLICE`] and the reactor dispatched
//!   between pumps, so network latency is bounded by the slice and an idle
//!   program wakes every slice.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod app;
mod xpending;

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::{Budget, HostLoop, Reactor};
use winit::application::ApplicationHandler;
use winit::event_loop::{ControlFlow, EventLoop};
use winit::platform::pump_events::{EventLoopExtPumpEvents, PumpStatus};

use app::Wrapper;

/// Where no winit fd exists: the longest winit pump between reactor
/// dispatches.
pub const FALLBACK_SLICE: Duration = Duration::from_millis(4);

/// Pumps in a row while Xlib still holds queued events.
const MAX_REPUMPS: usize = 16;

/// Why [`run_app`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// The reactor stopped (its shutdown triggers ran). winit's loop is
    /// left as it is: it can be pumped again by a later `run_app`.
    ReactorStopped,
    /// The application asked winit to exit (`ActiveEventLoop::exit`), with
    /// this code; the reactor was stopped in turn.
    WinitExited(i32),
}

/// An error from the loop itself.
#[derive(Debug)]
pub struct Error(io::Error);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "braid-winit loop failed: {}", self.0)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error(e)
    }
}

struct Host {
    stopped: Cell<bool>,
}

impl HostLoop for Host {
    fn reactor_stopped(&self) {
        self.stopped.set(true);
    }
}

/// Runs `app` and `reactor` together on this (the main) thread until the
/// reactor stops or the application exits winit's loop.
///
/// # Errors
///
/// If another host drives the reactor, or the poller fails.
pub fn run_app<T: 'static, A: ApplicationHandler<T>>(
    event_loop: &mut EventLoop<T>,
    reactor: &Reactor,
    app: &mut A,
) -> Result<Exit, Error> {
    run_app_with_budget(event_loop, reactor, app, Budget::default())
}

/// [`run_app`] with a chosen dispatch budget.
///
/// # Errors
///
/// As [`run_app`].
pub fn run_app_with_budget<T: 'static, A: ApplicationHandler<T>>(
    event_loop: &mut EventLoop<T>,
    reactor: &Reactor,
    app: &mut A,
    budget: Budget,
) -> Result<Exit, Error> {
    let host = Rc::new(Host {
        stopped: Cell::new(false),
    });
    let _guard = reactor.attach_host(host.clone())?;
    let mut app = Wrapper::new(app);
    let xlib = xpending::XPending::for_loop(event_loop);
    let has_fd = cfg!(any(
        target_os = "linux",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd"
    ));
    // winit's fd (its own epoll on X11 and Wayland) watched by the
    // reactor through a duplicate: readable means winit has work.
    let winit_ready = Rc::new(Cell::new(false));
    let _watch = if has_fd {
        let flag = winit_ready.clone();
        let fd = event_loop.as_fd().try_clone_to_owned()?;
        Some(reactor.watch_fd(fd, true, false, move |_| flag.set(true))?)
    } else {
        None
    };
    let mut pump = true; // the first pump delivers Init/Resumed
    loop {
        if pump {
            for _ in 0..MAX_REPUMPS {
                let timeout = if has_fd {
                    Duration::ZERO
                } else {
                    fallback_wait(reactor, &app)
                };
                if let PumpStatus::Exit(code) = event_loop.pump_app_events(Some(timeout), &mut app)
                {
                    return Ok(finish(reactor, &host, budget, code));
                }
                if !xlib.as_ref().is_some_and(|x| x.pending()) {
                    break;
                }
            }
        }
        if host.stopped.get() {
            return Ok(Exit::ReactorStopped);
        }
        if !has_fd {
            reactor.dispatch(budget);
            pump = true;
            continue;
        }
        let timeout = match app.control_flow() {
            ControlFlow::Wait => None,
            ControlFlow::Poll => Some(Duration::ZERO),
            ControlFlow::WaitUntil(t) => Some(t.saturating_duration_since(Instant::now())),
        };
        // One epoll_wait, as when the reactor runs alone: winit's fd is in
        // the reactor's poller and only raises a flag.
        reactor.wait_and_dispatch(timeout, budget)?;
        if host.stopped.get() {
            return Ok(Exit::ReactorStopped);
        }
        pump = winit_ready.replace(false)
            || match app.control_flow() {
                ControlFlow::Poll => true,
                ControlFlow::WaitUntil(t) => Instant::now() >= t,
                ControlFlow::Wait => false,
            };
    }
}

/// Stops the reactor after winit exited, running its shutdown.
fn finish(reactor: &Reactor, host: &Host, budget: Budget, code: i32) -> Exit {
    reactor.stop();
    for _ in 0..64 {
        if host.stopped.get() {
            break;
        }
        reactor.dispatch(budget);
    }
    Exit::WinitExited(code)
}

/// The fallback's pump timeout: until the reactor's next deadline or the
/// application's, capped at [`FALLBACK_SLICE`].
fn fallback_wait<T: 'static>(
    reactor: &Reactor,
    app: &Wrapper<'_, impl ApplicationHandler<T>>,
) -> Duration {
    let now = Instant::now();
    let mut wait = FALLBACK_SLICE;
    if let Some(d) = reactor.next_deadline() {
        wait = wait.min(d.saturating_duration_since(now));
    }
    match app.control_flow() {
        ControlFlow::Poll => Duration::ZERO,
        ControlFlow::WaitUntil(t) => wait.min(t.saturating_duration_since(now)),
        ControlFlow::Wait => wait,
    }
}
