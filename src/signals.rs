//! Signals handled on the reactor's thread, with no thread of their own:
//! what Twisted's `reactor.run()` installs for SIGINT and SIGTERM.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;

use crate::host::Budget;
use crate::panics::catch_panic;
use crate::reactor::{Reactor, Source, WeakReactor};
use crate::sys::{AsSource, SignalPipe};

type Handler = RefCell<Box<dyn FnMut(i32)>>;

struct Watched {
    reactor: WeakReactor,
    pipes: RefCell<Vec<(i32, SignalPipe, usize)>>,
    handler: Handler,
}

/// One signal's pipe in the poller.
struct One {
    watched: std::rc::Weak<Watched>,
    signal: i32,
}

impl Source for One {
    fn ready(&self, readable: bool, _: bool, _: &Budget) {
        let Some(w) = self.watched.upgrade() else {
            return;
        };
        if !readable {
            return;
        }
        let came = w
            .pipes
            .borrow()
            .iter()
            .find(|(s, ..)| *s == self.signal)
            .is_some_and(|(_, p, _)| p.drain());
        if came {
            if let Ok(mut h) = w.handler.try_borrow_mut() {
                catch_panic("signal handler", || h(self.signal));
            }
        }
    }

    fn shutdown(&self) {
        if let Some(w) = self.watched.upgrade() {
            w.deregister();
        }
    }
}

impl Watched {
    fn deregister(&self) {
        let pipes = std::mem::take(&mut *self.pipes.borrow_mut());
        if let Some(r) = self.reactor.upgrade() {
            for (_, pipe, key) in &pipes {
                r.deregister_fd(pipe.fd().source(), *key);
            }
        }
        // Dropping the pipes unregisters the signal handlers.
        drop(pipes);
    }
}

/// Signals being watched ([`Reactor::watch_signals`]); dropping it stops
/// watching (the process-wide handler stays installed, doing nothing more
/// for these signals: signal-hook cannot uninstall it safely).
#[must_use = "the signals are watched only while the SignalWatch lives"]
pub struct SignalWatch(Rc<Watched>);

impl fmt::Debug for SignalWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signals: Vec<i32> = self.0.pipes.borrow().iter().map(|p| p.0).collect();
        f.debug_struct("SignalWatch")
            .field("signals", &signals)
            .finish()
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        self.0.deregister();
    }
}

impl Reactor {
    /// Calls `handler` on the reactor thread, from a dispatch, whenever one
    /// of `signals` reaches the process: the way a server stops cleanly on
    /// SIGINT and SIGTERM (Twisted's `reactor.run()` installs the same)
    /// without a signal thread. Signals that arrive together may be
    /// reported once. The watch lasts until the returned [`SignalWatch`] is
    /// dropped or the reactor stops.
    ///
    /// # Errors
    ///
    /// A signal that cannot be handled (`SIGKILL`, `SIGSTOP`, a number out
    /// of range), or running out of descriptors.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let reactor = braid::Reactor::new()?;
    /// let r = reactor.clone();
    /// let _watch = reactor.watch_signals(&[libc::SIGINT, libc::SIGTERM], move |_| r.stop())?;
    /// reactor.run()?; // returns after Ctrl-C
    /// # std::io::Result::Ok(())
    /// ```
    pub fn watch_signals(
        &self,
        signals: &[i32],
        handler: impl FnMut(i32) + 'static,
    ) -> io::Result<SignalWatch> {
        let watched = Rc::new(Watched {
            reactor: self.downgrade(),
            pipes: RefCell::default(),
            handler: RefCell::new(Box::new(handler)),
        });
        let watch = SignalWatch(watched.clone());
        for &signal in signals {
            let pipe = SignalPipe::new(signal)?;
            let source = Rc::new(One {
                watched: Rc::downgrade(&watched),
                signal,
            });
            let key = self.register_fd(pipe.fd().raw_source(), source, true, false)?;
            watched.pipes.borrow_mut().push((signal, pipe, key));
        }
        Ok(watch)
    }
}
