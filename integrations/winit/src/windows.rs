//! Windows: the contract there is "one waitable handle plus the next
//! deadline". winit is pumped with a zero timeout, then the thread sleeps
//! in `MsgWaitForMultipleObjectsEx` on the reactor's completion port with
//! the earlier of the reactor's next deadline and the application's
//! `WaitUntil` as the timeout: woken by a window message, a completion
//! (socket ready, `call_from_thread`, `call_soon`) or the deadline. One
//! thread, no polling slice. A deadline that passes while window messages
//! keep the wait busy is still honoured: winit's pump returns after each
//! redraw with messages left (by design), so "messages waiting" alone
//! must not starve the reactor's timers.

use std::os::windows::io::AsRawHandle;
use std::time::{Duration, Instant};

use braid::{Budget, Reactor};
use windows_sys::Win32::Foundation::{HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Threading::INFINITE;
use windows_sys::Win32::UI::WindowsAndMessaging::{
    MsgWaitForMultipleObjectsEx, MWMO_INPUTAVAILABLE, QS_ALLINPUT,
};
use winit::application::ApplicationHandler;
use winit::event_loop::{ControlFlow, EventLoop};
use winit::platform::pump_events::{EventLoopExtPumpEvents, PumpStatus};

use crate::app::Wrapper;
use crate::{attach, finish, Error, Exit};

pub(crate) fn run<T: 'static, A: ApplicationHandler<T>>(
    event_loop: &mut EventLoop<T>,
    reactor: &Reactor,
    app: &mut A,
    budget: Budget,
) -> Result<Exit, Error> {
    let (host, _guard) = attach(reactor)?;
    let mut app = Wrapper::new(app);
    let port = reactor.as_raw_handle() as HANDLE;
    loop {
        if let PumpStatus::Exit(code) = event_loop.pump_app_events(Some(Duration::ZERO), &mut app) {
            return Ok(finish(reactor, &host, budget, code));
        }
        if host.stopped.get() {
            return Ok(Exit::ReactorStopped);
        }
        let now = Instant::now();
        let mut until = reactor.next_deadline();
        match app.control_flow() {
            ControlFlow::Poll => until = Some(now),
            ControlFlow::WaitUntil(t) => until = Some(until.map_or(t, |d| d.min(t))),
            ControlFlow::Wait => {}
        }
        let ms = match until {
            // Round up: a wait that ends early only loops once more.
            Some(t) => t
                .saturating_duration_since(now)
                .as_nanos()
                .div_ceil(1_000_000)
                .min(u128::from(INFINITE - 1)) as u32,
            None => INFINITE,
        };
        // SAFETY: waits on the reactor's live port handle; no other handle.
        let woke =
            unsafe { MsgWaitForMultipleObjectsEx(1, &port, ms, QS_ALLINPUT, MWMO_INPUTAVAILABLE) };
        // The port (a completion is queued) or a deadline come: dispatch.
        // Window messages alone only pump again, unless a deadline passed
        // meanwhile (a busy window must not starve the reactor's timers).
        let due = until.is_some_and(|t| Instant::now() >= t);
        if woke == WAIT_OBJECT_0 || woke != WAIT_OBJECT_0 + 1 || due {
            reactor.dispatch(budget);
            if host.stopped.get() {
                return Ok(Exit::ReactorStopped);
            }
        }
    }
}
