//! The CFRunLoop host.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use braid::{Budget, HostGuard, HostLoop, Reactor};
use core_foundation::base::{CFOptionFlags, TCFType};
use core_foundation::date::CFAbsoluteTimeGetCurrent;
use core_foundation::filedescriptor::{
    kCFFileDescriptorReadCallBack, CFFileDescriptor, CFFileDescriptorContext, CFFileDescriptorRef,
};
use core_foundation::runloop::{
    kCFRunLoopCommonModes, CFRunLoop, CFRunLoopSource, CFRunLoopTimer, CFRunLoopTimerContext,
    CFRunLoopTimerRef, CFRunLoopTimerSetNextFireDate,
};

/// Where the deadline timer rests when no deadline is pending: far away.
const NEVER: f64 = 1.0e12;

/// Attaches `reactor` to this thread's run loop with the default budget.
///
/// Keep the returned guard: dropping it detaches the reactor.
///
/// # Errors
///
/// `AlreadyExists` if another host already drives `reactor`; `Other` if
/// Core Foundation refuses the descriptor.
pub fn attach(reactor: &Reactor) -> io::Result<Attached> {
    Attached::new(reactor, Budget::default())
}

struct Host {
    reactor: Reactor,
    budget: Budget,
    run_loop: CFRunLoop,
    on_stop: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// A panic that escaped a dispatch: never unwound through Core
    /// Foundation's C frames, kept for [`Attached::resume_panic`].
    panic: RefCell<Option<Box<dyn Any + Send>>>,
    stopped: Cell<bool>,
    /// Only where the reactor keeps no timers in its fd (a fake clock).
    timer: RefCell<Option<CFRunLoopTimer>>,
}

impl Host {
    fn dispatch(&self) {
        let r = catch_unwind(AssertUnwindSafe(|| self.reactor.dispatch(self.budget)));
        if let Err(p) = r {
            tracing::error!("a panic escaped a reactor dispatch; stopping the run loop");
            *self.panic.borrow_mut() = Some(p);
            self.run_loop.stop();
        }
    }
}

impl HostLoop for Host {
    fn reactor_stopped(&self) {
        self.stopped.set(true);
        let fs = std::mem::take(&mut *self.on_stop.borrow_mut());
        for f in fs {
            f();
        }
    }

    fn deadline_changed(&self, deadline: Option<Instant>) {
        if let Some(t) = &*self.timer.borrow() {
            let at = match deadline {
                Some(d) => {
                    // SAFETY: reads the clock.
                    let now = unsafe { CFAbsoluteTimeGetCurrent() };
                    now + d.saturating_duration_since(Instant::now()).as_secs_f64()
                }
                None => NEVER,
            };
            // SAFETY: a live timer owned by this host.
            unsafe { CFRunLoopTimerSetNextFireDate(t.as_concrete_TypeRef(), at) };
        }
    }
}

extern "C" fn fd_ready(f: CFFileDescriptorRef, _: CFOptionFlags, info: *mut c_void) {
    // SAFETY: `info` is the `Host` the `Attached` keeps alive; the
    // descriptor is invalidated (and so never calls back) before it goes.
    let host = unsafe { &*(info as *const Host) };
    host.dispatch();
    // CFFileDescriptor callbacks are one-shot: ask for the next one. If
    // work is left (the budget ran out), the kqueue is still readable and
    // the run loop calls again on its next pass.
    // SAFETY: `f` is the live descriptor this callback belongs to.
    unsafe {
        core_foundation::filedescriptor::CFFileDescriptorEnableCallBacks(
            f,
            kCFFileDescriptorReadCallBack,
        )
    };
}

extern "C" fn deadline_due(_: CFRunLoopTimerRef, info: *mut c_void) {
    // SAFETY: as in `fd_ready`: the timer is invalidated before the host
    // goes.
    let host = unsafe { &*(info as *const Host) };
    host.dispatch();
    host.deadline_changed(host.reactor.next_deadline());
}

/// A reactor attached to a run loop. Dropping it detaches.
#[must_use = "the reactor is detached from the run loop when this is dropped: keep it alive"]
pub struct Attached {
    host: Rc<Host>,
    fd: CFFileDescriptor,
    source: CFRunLoopSource,
    _guard: HostGuard,
}

impl Attached {
    /// Attaches to this thread's run loop with a chosen dispatch budget.
    ///
    /// # Errors
    ///
    /// As [`attach`].
    pub fn new(reactor: &Reactor, budget: Budget) -> io::Result<Attached> {
        let host = Rc::new(Host {
            reactor: reactor.clone(),
            budget,
            run_loop: CFRunLoop::get_current(),
            on_stop: RefCell::default(),
            panic: RefCell::default(),
            stopped: Cell::new(false),
            timer: RefCell::default(),
        });
        let guard = reactor.attach_host(host.clone())?;
        let info = Rc::as_ptr(&host) as *mut c_void;
        let context = CFFileDescriptorContext {
            version: 0,
            info,
            retain: None,
            release: None,
            copyDescription: None,
        };
        let fd = CFFileDescriptor::new(reactor.as_raw_fd(), false, fd_ready, Some(&context))
            .ok_or_else(|| io::Error::other("CFFileDescriptorCreate refused the reactor's fd"))?;
        let source = fd
            .to_run_loop_source(0)
            .ok_or_else(|| io::Error::other("no run loop source for the reactor's fd"))?;
        // SAFETY: the common-modes constant is a static CFString.
        host.run_loop
            .add_source(&source, unsafe { kCFRunLoopCommonModes });
        fd.enable_callbacks(kCFFileDescriptorReadCallBack);
        if !reactor.timers_in_fd() {
            let mut context = CFRunLoopTimerContext {
                version: 0,
                info,
                retain: None,
                release: None,
                copyDescription: None,
            };
            // A repeating timer whose next fire date follows the reactor's
            // deadline (one CF object for the attachment's life).
            let timer = CFRunLoopTimer::new(NEVER, NEVER, 0, 0, deadline_due, &mut context);
            // SAFETY: as above.
            host.run_loop
                .add_timer(&timer, unsafe { kCFRunLoopCommonModes });
            *host.timer.borrow_mut() = Some(timer);
            host.deadline_changed(reactor.next_deadline());
        }
        Ok(Attached {
            host,
            fd,
            source,
            _guard: guard,
        })
    }

    /// Stops the run loop this was attached to (`CFRunLoopStop`) when the
    /// reactor stops: what ends [`run`](Self::run) or a tool's
    /// `CFRunLoopRun`. For an AppKit app use [`on_stop`](Self::on_stop)
    /// with `NSApplication::terminate` (or winit's exit) instead.
    pub fn stop_run_loop_on_stop(&self) {
        let run_loop = self.host.run_loop.clone();
        self.on_stop(move || run_loop.stop());
    }

    /// Runs `f` when the reactor stops (after its shutdown triggers).
    pub fn on_stop(&self, f: impl FnOnce() + 'static) {
        self.host.on_stop.borrow_mut().push(Box::new(f));
    }

    /// Runs this thread's run loop (`CFRunLoopRun`) until it is stopped
    /// ([`stop_run_loop_on_stop`](Self::stop_run_loop_on_stop)), then
    /// resumes a panic that escaped a dispatch, if any.
    pub fn run(&self) {
        while !self.host.stopped.get() && self.host.panic.borrow().is_none() {
            CFRunLoop::run_current();
        }
        self.resume_panic();
    }

    /// Resumes a panic that escaped a dispatch (caught there, so that it
    /// never unwinds through Core Foundation), if one did.
    pub fn resume_panic(&self) {
        let p = self.host.panic.borrow_mut().take();
        if let Some(p) = p {
            std::panic::resume_unwind(p);
        }
    }

    /// The reactor.
    pub fn reactor(&self) -> &Reactor {
        &self.host.reactor
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        self.host
            .run_loop
            .remove_source(&self.source, unsafe { kCFRunLoopCommonModes });
        self.fd.invalidate();
        if let Some(t) = self.host.timer.borrow_mut().take() {
            // SAFETY: a live timer; invalidating it removes it everywhere.
            unsafe { core_foundation::runloop::CFRunLoopTimerInvalidate(t.as_concrete_TypeRef()) };
        }
    }
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached")
            .field("reactor", &self.host.reactor)
            .field("budget", &self.host.budget)
            .finish()
    }
}
