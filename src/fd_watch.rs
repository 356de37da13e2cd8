//! A foreign file descriptor watched by the reactor: Twisted's
//! `addReader` / `addWriter`, for fds braid does not own a transport for
//! (another library's event loop, a device, an inotify fd).
//!
//! ```text
//!   Reactor::watch_fd(fd, readable, writable, on_ready)
//!     └─ fd in the reactor's poller (level-triggered) ─▶ on_ready(FdReady)
//!        from a dispatch, on the reactor's thread, while the fd stays ready
//!   FdWatch::set_interest(..)   start / stop reading or writing
//!   drop(FdWatch)               out of the poller, the fd closed with it
//! ```
//!
//! This is how a host that owns the loop can block in the reactor itself
//! instead of in a `poll(2)` over the reactor's fd and its own: it watches
//! its own fd here and does its work when told (braid-winit does this with
//! winit's fd, one syscall per wakeup fewer).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::rc::Rc;

use crate::host::Budget;
use crate::panics::catch_panic;
use crate::reactor::{Reactor, Source, WeakReactor};

/// What a watched fd is ready for, as the poller reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdReady {
    /// Readable (or at end of file, or in error: a read says which).
    pub readable: bool,
    /// Writable (or in error: a write says which).
    pub writable: bool,
}

type OnReady = RefCell<Box<dyn FnMut(FdReady)>>;

struct Watched {
    reactor: WeakReactor,
    fd: Box<dyn AsFd>,
    /// The poller key; `None` once out of the poller.
    key: Cell<Option<usize>>,
    interest: Cell<(bool, bool)>,
    on_ready: OnReady,
}

impl Watched {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn deregister(&self) {
        if let Some(key) = self.key.take() {
            if let Some(r) = self.reactor.upgrade() {
                r.deregister_fd(self.fd(), key);
            }
        }
    }
}

/// The reactor's side: the slab holds this, which holds the watch weakly,
/// so that dropping the [`FdWatch`] ends the watch.
struct Entry(std::rc::Weak<Watched>);

impl Source for Entry {
    fn ready(&self, readable: bool, writable: bool, _: &Budget) {
        let Some(w) = self.0.upgrade() else {
            return;
        };
        let (want_read, want_write) = w.interest.get();
        let ready = FdReady {
            readable: readable && want_read,
            writable: writable && want_write,
        };
        if !ready.readable && !ready.writable {
            return;
        }
        // A callback that re-enters (a nested loop) is not called again
        // inside itself; the fd is level-triggered, so nothing is lost.
        if let Ok(mut f) = w.on_ready.try_borrow_mut() {
            catch_panic("fd watch callback", || f(ready));
        };
    }

    fn shutdown(&self) {
        if let Some(w) = self.0.upgrade() {
            w.deregister();
        }
    }
}

/// A file descriptor in the reactor's poller ([`Reactor::watch_fd`]).
/// Dropping it takes the fd out of the poller and drops the fd (close it
/// by dropping; keep what you need by watching a `dup`, see
/// [`Reactor::watch_fd`]). The watch also ends when the reactor stops.
#[must_use = "the fd is watched only while the FdWatch lives"]
pub struct FdWatch(Rc<Watched>);

impl FdWatch {
    /// Changes what the fd is watched for: Twisted's `startReading` /
    /// `stopReading` / `startWriting` / `stopWriting` in one call. Watching
    /// for nothing keeps the fd registered and silent.
    ///
    /// # Errors
    ///
    /// If the poller refuses the change, or the watch has ended.
    #[doc(alias = "startReading")]
    #[doc(alias = "stopReading")]
    #[doc(alias = "startWriting")]
    #[doc(alias = "stopWriting")]
    pub fn set_interest(&self, readable: bool, writable: bool) -> io::Result<()> {
        let w = &self.0;
        let (Some(key), Some(r)) = (w.key.get(), w.reactor.upgrade()) else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the fd watch has ended (the reactor stopped)",
            ));
        };
        r.modify_fd(w.fd(), key, readable, writable)?;
        w.interest.set((readable, writable));
        Ok(())
    }

    /// What the fd is watched for: `(readable, writable)`.
    pub fn interest(&self) -> (bool, bool) {
        self.0.interest.get()
    }

    /// Whether the fd is still in the poller (false after the reactor
    /// stopped).
    pub fn is_active(&self) -> bool {
        self.0.key.get().is_some()
    }
}

impl Drop for FdWatch {
    fn drop(&mut self) {
        self.0.deregister();
    }
}

impl fmt::Debug for FdWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdWatch")
            .field("fd", &self.0.fd().as_raw_fd())
            .field("interest", &self.0.interest.get())
            .field("active", &self.is_active())
            .finish()
    }
}

impl Reactor {
    /// Watches `fd` and calls `on_ready` from a dispatch, on the reactor's
    /// thread, whenever it is ready for what is asked: Twisted's
    /// `addReader` / `addWriter`. The watch is level-triggered: `on_ready`
    /// is called again at each dispatch while the fd stays ready, so read
    /// until it would block (or stop reading with
    /// [`FdWatch::set_interest`]) and nothing is ever missed.
    ///
    /// The watch owns `fd` (an `OwnedFd`, a `File`, a socket): that is what
    /// makes it safe, as the fd can then not be closed while the poller
    /// holds it. To watch an fd someone else owns (another event loop's),
    /// watch a duplicate (`fd.try_clone_to_owned()`): it refers to the same
    /// open file, so its readiness is the same.
    ///
    /// # Errors
    ///
    /// If the poller refuses the fd (an fd epoll cannot watch, such as a
    /// regular file, or one already watched).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    ///
    /// let reactor = braid::Reactor::new()?;
    /// let (mut ours, theirs) = UnixStream::pair()?;
    /// theirs.set_nonblocking(true)?;
    /// let mut reader = theirs.try_clone()?;
    /// let r = reactor.clone();
    /// let _watch = reactor.watch_fd(theirs, true, false, move |ready| {
    ///     assert!(ready.readable);
    ///     let mut buf = [0u8; 16];
    ///     let n = reader.read(&mut buf).unwrap();
    ///     assert_eq!(&buf[..n], b"ping");
    ///     r.stop();
    /// })?;
    /// ours.write_all(b"ping")?;
    /// reactor.run()?;
    /// # std::io::Result::Ok(())
    /// ```
    #[doc(alias = "addReader")]
    #[doc(alias = "addWriter")]
    #[doc(alias = "removeReader")]
    #[doc(alias = "removeWriter")]
    pub fn watch_fd(
        &self,
        fd: impl AsFd + 'static,
        readable: bool,
        writable: bool,
        on_ready: impl FnMut(FdReady) + 'static,
    ) -> io::Result<FdWatch> {
        let watched = Rc::new(Watched {
            reactor: self.downgrade(),
            fd: Box::new(fd),
            key: Cell::new(None),
            interest: Cell::new((readable, writable)),
            on_ready: RefCell::new(Box::new(on_ready)),
        });
        let entry = Rc::new(Entry(Rc::downgrade(&watched)));
        let key = self.register_fd(watched.fd().as_raw_fd(), entry, readable, writable)?;
        watched.key.set(Some(key));
        Ok(FdWatch(watched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn readable_is_reported_while_data_waits_and_not_after() {
        let reactor = Reactor::new().unwrap();
        let (mut ours, theirs) = pair();
        let mut reader = theirs.try_clone().unwrap();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        let read_now = Rc::new(Cell::new(false));
        let rn = read_now.clone();
        let watch = reactor
            .watch_fd(theirs, true, false, move |ready| {
                assert_eq!(
                    ready,
                    FdReady {
                        readable: true,
                        writable: false
                    }
                );
                c.set(c.get() + 1);
                if rn.get() {
                    let mut buf = [0u8; 64];
                    while reader.read(&mut buf).is_ok_and(|n| n > 0) {}
                }
            })
            .unwrap();
        assert_eq!(reactor.iterate(Duration::ZERO).unwrap().io_events, 0);
        ours.write_all(b"x").unwrap();
        // Level-triggered: not read, so reported at every dispatch.
        reactor.iterate(Duration::ZERO).unwrap();
        reactor.iterate(Duration::ZERO).unwrap();
        assert_eq!(calls.get(), 2);
        read_now.set(true);
        reactor.iterate(Duration::ZERO).unwrap();
        assert_eq!(calls.get(), 3);
        reactor.iterate(Duration::ZERO).unwrap();
        assert_eq!(calls.get(), 3, "drained: no more calls");
        assert!(watch.is_active());
        assert_eq!(watch.interest(), (true, false));
    }

    #[test]
    fn interest_can_be_changed_and_dropping_ends_the_watch() {
        let reactor = Reactor::new().unwrap();
        let (mut ours, theirs) = pair();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let sources = reactor.source_count();
        let watch = reactor
            .watch_fd(theirs, false, true, move |r| s.borrow_mut().push(r))
            .unwrap();
        assert_eq!(reactor.source_count(), sources + 1);
        reactor.iterate(Duration::ZERO).unwrap();
        assert_eq!(
            seen.borrow().as_slice(),
            &[FdReady {
                readable: false,
                writable: true
            }]
        );
        watch.set_interest(false, false).unwrap();
        ours.write_all(b"x").unwrap();
        reactor.iterate(Duration::ZERO).unwrap();
        assert_eq!(seen.borrow().len(), 1, "watching nothing: silent");
        watch.set_interest(true, false).unwrap();
        reactor.iterate(Duration::ZERO).unwrap();
        assert_eq!(seen.borrow().len(), 2);
        assert!(seen.borrow()[1].readable);
        drop(watch);
        assert_eq!(reactor.source_count(), sources);
        reactor.iterate(Duration::ZERO).unwrap();
        assert_eq!(seen.borrow().len(), 2, "dropped: no more calls");
    }

    #[test]
    fn a_panicking_callback_is_contained_and_stopping_ends_the_watch() {
        let reactor = Reactor::new().unwrap();
        let (mut ours, theirs) = pair();
        let watch = reactor
            .watch_fd(theirs, true, false, |_| panic!("callback bug"))
            .unwrap();
        ours.write_all(b"x").unwrap();
        reactor.iterate(Duration::ZERO).unwrap();
        assert!(watch.is_active(), "a panic does not end the watch");
        let r = reactor.clone();
        reactor.call_soon(move || r.stop());
        reactor.run().unwrap();
        assert!(!watch.is_active());
        assert_eq!(
            watch.set_interest(true, true).unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    }

    #[test]
    fn the_same_fd_twice_is_refused() {
        let reactor = Reactor::new().unwrap();
        let (_ours, theirs) = pair();
        let again = theirs.try_clone().unwrap();
        let raw = theirs.as_raw_fd();
        let _watch = reactor.watch_fd(theirs, true, false, |_| {}).unwrap();
        // A duplicate is another fd: accepted. The same number is not.
        let dup = reactor.watch_fd(again, true, false, |_| {});
        assert!(dup.is_ok());
        // SAFETY: borrowing an fd that `_watch` keeps open for this test;
        // `ManuallyDrop` keeps the borrowed number from being closed twice.
        let same = std::mem::ManuallyDrop::new(unsafe {
            <UnixStream as std::os::fd::FromRawFd>::from_raw_fd(raw)
        });
        let same: &'static UnixStream = Box::leak(Box::new(same));
        assert!(reactor.watch_fd(same.as_fd(), true, false, |_| {}).is_err());
    }
}
