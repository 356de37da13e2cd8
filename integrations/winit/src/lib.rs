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
//! application's [`ControlFlow`](winit::event_loop::ControlFlow) asks
//! (`Wait`, `Poll`, `WaitUntil`). That is X11 and Wayland; macOS and
//! Windows are below ("Platforms").
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
//! - **macOS**: winit exposes no fd there, so the roles reverse again:
//!   winit's own loop runs (`run_app_on_demand`), and the reactor is a
//!   source in the main `CFRunLoop` through `braid-cocoa` (a
//!   `CFFileDescriptor` on its kqueue, in the common modes: sockets keep
//!   running during live resize and menu tracking). Type-checked in CI,
//!   not yet run on a Mac.
//! - **Windows**: winit is pumped with a zero timeout, then the thread
//!   sleeps in `MsgWaitForMultipleObjectsEx` on the reactor's completion
//!   port with the next deadline (the reactor's or the app's `WaitUntil`)
//!   as its timeout. The conformance suite runs in CI under Wine 8.0 (a
//!   real window, drawn by Wine's X11 driver on Xvfb): every check but the
//!   idle one (under Wine winit's own wait never sleeps). Not yet run on
//!   real Windows.
//! - **Elsewhere**: a documented fallback: winit is pumped with a timeout
//!   capped at [`FALLBACK_SLICE`] and the reactor dispatched between
//!   pumps, so network latency is bounded by the slice and an idle program
//!   wakes every slice.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod app;
#[cfg(target_vendor = "apple")]
#[path = "apple.rs"]
mod platform;
#[cfg(free_unix)]
#[path = "fd_loop.rs"]
mod platform;
#[cfg(windows)]
#[path = "windows.rs"]
mod platform;
#[cfg(not(any(target_vendor = "apple", windows, free_unix)))]
#[path = "fallback.rs"]
mod platform;
#[cfg(free_unix)]
mod xpending;

use std::cell::Cell;
use std::fmt;
use std::io;
use std::time::Duration;

use braid::{Budget, HostLoop, Reactor};
use winit::application::ApplicationHandler;
use winit::event_loop::EventLoop;

/// Where braid has no host for winit's platform (neither a winit fd, nor
/// Cocoa's run loop, nor Windows' port): the longest winit pump between
/// reactor dispatches.
pub const FALLBACK_SLICE: Duration = Duration::from_millis(4);

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

// macOS: winit runs its own loop (braid-cocoa hosts the reactor).
#[cfg_attr(target_vendor = "apple", allow(dead_code))]
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
    platform::run(event_loop, reactor, app, budget)
}

/// Attaches the host that hears of the reactor's stop (every loop but
/// macOS's, where braid-cocoa is the host).
#[cfg_attr(target_vendor = "apple", allow(dead_code))]
fn attach(reactor: &Reactor) -> Result<(std::rc::Rc<Host>, braid::HostGuard), Error> {
    let host = std::rc::Rc::new(Host {
        stopped: Cell::new(false),
    });
    let guard = reactor.attach_host(host.clone())?;
    Ok((host, guard))
}

/// Stops the reactor after winit exited, running its shutdown.
#[cfg_attr(target_vendor = "apple", allow(dead_code))]
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
