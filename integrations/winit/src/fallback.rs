//! Platforms with no winit fd and no host of their own here: winit is
//! pumped with a timeout capped at [`FALLBACK_SLICE`] and the reactor
//! dispatched between pumps.

use std::time::{Duration, Instant};

use braid::{Budget, Reactor};
use winit::application::ApplicationHandler;
use winit::event_loop::{ControlFlow, EventLoop};
use winit::platform::pump_events::{EventLoopExtPumpEvents, PumpStatus};

use crate::app::Wrapper;
use crate::{attach, finish, Error, Exit, FALLBACK_SLICE};

pub(crate) fn run<T: 'static, A: ApplicationHandler<T>>(
    event_loop: &mut EventLoop<T>,
    reactor: &Reactor,
    app: &mut A,
    budget: Budget,
) -> Result<Exit, Error> {
    let (host, _guard) = attach(reactor)?;
    let mut app = Wrapper::new(app);
    loop {
        let timeout = fallback_wait(reactor, &app);
        if let PumpStatus::Exit(code) = event_loop.pump_app_events(Some(timeout), &mut app) {
            return Ok(finish(reactor, &host, budget, code));
        }
        if host.stopped.get() {
            return Ok(Exit::ReactorStopped);
        }
        reactor.dispatch(budget);
        if host.stopped.get() {
            return Ok(Exit::ReactorStopped);
        }
    }
}

/// The pump timeout: until the reactor's next deadline or the
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
