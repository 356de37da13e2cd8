//! # braid-calloop
//!
//! braid's [`Reactor`] as a calloop [`EventSource`]: insert it into the
//! `calloop::EventLoop<Data>` your program already runs (a Smithay
//! compositor, a Wayland client) and it gets sockets, timers, protocols and
//! `call_from_thread` in that loop, with its own registration token.
//!
//! ```text
//!   calloop::EventLoop<Data>
//!     └─ ReactorSource: Generic(level) over Reactor::as_fd()
//!          readable ─▶ Reactor::dispatch(budget) ─▶ your callback(Dispatched, &mut Data)
//!   Reactor::stop() ─▶ LoopSignal::stop()  (if you asked for it)
//! ```
//!
//! ```no_run
//! use calloop::EventLoop;
//! use braid::Reactor;
//! use braid_calloop::ReactorSource;
//!
//! struct State { ticks: u64 }
//!
//! let reactor = Reactor::new()?;
//! let mut event_loop: EventLoop<State> = EventLoop::try_new()?;
//! let source = ReactorSource::new(&reactor)?.stop_loop_on_stop(event_loop.get_signal());
//! let _token = event_loop
//!     .handle()
//!     .insert_source(source, |_dispatched, _, state: &mut State| state.ticks += 1)
//!     .map_err(|e| e.error)?;
//! // ... listen_tcp / connect_tcp / call_later on `reactor` ...
//! event_loop.run(None, &mut State { ticks: 0 }, |_| {})?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The reactor's timers live in a timerfd inside its poller (Linux), so the
//! one fd is all calloop watches; [`ReactorSource::new`] refuses platforms
//! without it rather than miss deadlines.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;

use braid::{Budget, Dispatched, HostGuard, HostLoop, Reactor};
use calloop::generic::Generic;
use calloop::{
    EventSource, Interest, LoopSignal, Mode, Poll, PostAction, Readiness, Token, TokenFactory,
};

/// The reactor's fd, borrowed from the reactor it keeps alive.
struct ReactorFd(Reactor);

impl AsFd for ReactorFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[derive(Default)]
struct Host {
    signal: RefCell<Option<LoopSignal>>,
    on_stop: RefCell<Vec<Box<dyn FnOnce()>>>,
}

impl HostLoop for Host {
    fn reactor_stopped(&self) {
        for f in std::mem::take(&mut *self.on_stop.borrow_mut()) {
            f();
        }
        if let Some(s) = self.signal.borrow().as_ref() {
            s.stop();
            s.wakeup();
        }
    }
}

/// A reactor as a calloop event source. Its event is the [`Dispatched`]
/// summary of each dispatch. Removing the source from the loop (or
/// dropping it) detaches the reactor.
#[must_use = "insert the source into the event loop, or the reactor is never dispatched"]
pub struct ReactorSource {
    generic: Generic<ReactorFd>,
    reactor: Reactor,
    budget: Budget,
    host: Rc<Host>,
    _guard: HostGuard,
}

impl ReactorSource {
    /// A source for `reactor` with the default dispatch budget.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if another host drives the reactor; `Unsupported`
    /// where the reactor has no timerfd (its deadlines would be missed).
    pub fn new(reactor: &Reactor) -> io::Result<ReactorSource> {
        if !reactor.timers_in_fd() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "braid-calloop needs the reactor's timers in its fd (a timerfd: Linux)",
            ));
        }
        let host = Rc::new(Host::default());
        let guard = reactor.attach_host(host.clone())?;
        Ok(ReactorSource {
            generic: Generic::new(ReactorFd(reactor.clone()), Interest::READ, Mode::Level),
            reactor: reactor.clone(),
            budget: Budget::default(),
            host,
            _guard: guard,
        })
    }

    /// Sets how much one dispatch may do.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Stops the calloop loop (`signal.stop()`) when the reactor stops.
    pub fn stop_loop_on_stop(self, signal: LoopSignal) -> Self {
        *self.host.signal.borrow_mut() = Some(signal);
        self
    }

    /// Runs `f` when the reactor stops, after its shutdown triggers.
    pub fn on_stop(self, f: impl FnOnce() + 'static) -> Self {
        self.host.on_stop.borrow_mut().push(Box::new(f));
        self
    }

    /// The reactor.
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }
}

impl EventSource for ReactorSource {
    type Event = Dispatched;
    type Metadata = ();
    type Ret = ();
    type Error = io::Error;

    fn process_events<F>(
        &mut self,
        readiness: Readiness,
        token: Token,
        mut callback: F,
    ) -> io::Result<PostAction>
    where
        F: FnMut(Dispatched, &mut ()),
    {
        let (reactor, budget) = (&self.reactor, self.budget);
        self.generic.process_events(readiness, token, |_, _| {
            let d = reactor.dispatch(budget);
            callback(d, &mut ());
            Ok(PostAction::Continue)
        })
    }

    fn register(
        &mut self,
        poll: &mut Poll,
        token_factory: &mut TokenFactory,
    ) -> calloop::Result<()> {
        self.generic.register(poll, token_factory)
    }

    fn reregister(
        &mut self,
        poll: &mut Poll,
        token_factory: &mut TokenFactory,
    ) -> calloop::Result<()> {
        self.generic.reregister(poll, token_factory)
    }

    fn unregister(&mut self, poll: &mut Poll) -> calloop::Result<()> {
        self.generic.unregister(poll)
    }
}

impl fmt::Debug for ReactorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorSource")
            .field("reactor", &self.reactor)
            .field("budget", &self.budget)
            .finish()
    }
}
