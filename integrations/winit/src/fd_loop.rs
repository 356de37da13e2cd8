//! X11 and Wayland (Linux, the BSDs): the reactor watches winit's fd and
//! blocks in its own poller; winit is pumped with a zero timeout when its
//! fd is readable (or Xlib still holds events).

use std::cell::Cell;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::{Budget, Reactor};
use winit::application::ApplicationHandler;
use winit::event_loop::{ControlFlow, EventLoop};
use winit::platform::pump_events::{EventLoopExtPumpEvents, PumpStatus};

use crate::app::Wrapper;
use crate::{attach, finish, xpending, Error, Exit};

/// Pumps in a row while Xlib still holds queued events.
const MAX_REPUMPS: usize = 16;

pub(crate) fn run<T: 'static, A: ApplicationHandler<T>>(
    event_loop: &mut EventLoop<T>,
    reactor: &Reactor,
    app: &mut A,
    budget: Budget,
) -> Result<Exit, Error> {
    let (host, _guard) = attach(reactor)?;
    let mut app = Wrapper::new(app);
    let xlib = xpending::XPending::for_loop(event_loop);
    // winit's fd (its own epoll on X11 and Wayland) watched by the
    // reactor through a duplicate: readable means winit has work.
    let winit_ready = Rc::new(Cell::new(false));
    let flag = winit_ready.clone();
    let fd = event_loop.as_fd().try_clone_to_owned()?;
    let _watch = reactor.watch_fd(fd, true, false, move |_| flag.set(true))?;
    let mut pump = true; // the first pump delivers Init/Resumed
    loop {
        if pump {
            for _ in 0..MAX_REPUMPS {
                if let PumpStatus::Exit(code) =
                    event_loop.pump_app_events(Some(Duration::ZERO), &mut app)
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
