//! macOS: winit's own loop (NSApplication's, on the main CFRunLoop) runs,
//! and the reactor is a source in that run loop through braid-cocoa (a
//! `CFFileDescriptor` on its kqueue, in the common modes, so sockets keep
//! running during live resize and menu tracking). The reactor stopping
//! makes the wrapper ask winit to exit at its next `about_to_wait`.

use std::cell::Cell;
use std::rc::Rc;

use braid::{Budget, Reactor};
use winit::application::ApplicationHandler;
use winit::error::EventLoopError;
use winit::event_loop::EventLoop;
use winit::platform::run_on_demand::EventLoopExtRunOnDemand;

use crate::app::Wrapper;
use crate::{Error, Exit};

pub(crate) fn run<T: 'static, A: ApplicationHandler<T>>(
    event_loop: &mut EventLoop<T>,
    reactor: &Reactor,
    app: &mut A,
    budget: Budget,
) -> Result<Exit, Error> {
    let attached = braid_cocoa::Attached::new(reactor, budget)?;
    let stopped = Rc::new(Cell::new(false));
    let s = stopped.clone();
    attached.on_stop(move || s.set(true));
    let mut app = Wrapper::new(app).exit_when(stopped.clone());
    let ran = event_loop.run_app_on_demand(&mut app);
    attached.resume_panic();
    if stopped.get() {
        return Ok(Exit::ReactorStopped);
    }
    let code = match ran {
        Ok(()) => 0,
        Err(EventLoopError::ExitFailure(code)) => code,
        Err(e) => return Err(Error(std::io::Error::other(e.to_string()))),
    };
    reactor.stop();
    Ok(Exit::WinitExited(code))
}
