//! This process's stdin and stdout as one transport (Twisted's
//! `StandardIO`), for command-line programs built on braid: a protocol
//! reads what is typed or piped in and writes to stdout, with the same
//! buffering, backpressure and half-close as a socket.
//!
//! ```no_run
//! use braid::{Protocol, Reactor, Transport};
//!
//! struct Shout;
//! impl Protocol for Shout {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) {
//!         t.write(&data.to_ascii_uppercase());
//!     }
//!     fn connection_lost(&mut self, _: &braid::CloseReason) {
//!         // stdin ended (read_eof's default closes the transport).
//!     }
//! }
//!
//! let reactor = Reactor::new()?;
//! let stdio = reactor.stdio(Shout)?;
//! # let _ = stdio;
//! reactor.run()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! Descriptors 0 and 1 are made non-blocking while the transport is open
//! (their original flags come back when it closes). Closing the transport
//! points them at `/dev/null`, so whoever reads our stdout sees end of
//! file while later `println!`s still have somewhere to go. Regular files
//! (`< input.txt`, `> output.txt`) work too, although epoll cannot watch
//! them: they are always ready.

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use crate::conn::{Conn, Wire};
use crate::process::set_nonblocking;
use crate::protocol::Protocol;
use crate::reactor::{Reactor, Source, WeakReactor};
use crate::sys;
use crate::transport::{Address, Transport};

/// One side: this process's own descriptor, or one handed over.
enum End {
    /// fd 0 or 1: never closed, pointed at /dev/null instead.
    Std(RawFd),
    Owned(OwnedFd),
}

impl End {
    fn raw(&self) -> RawFd {
        match self {
            End::Std(fd) => *fd,
            End::Owned(fd) => fd.as_raw_fd(),
        }
    }
}

struct Side {
    end: RefCell<Option<End>>,
    /// An always-ready eventfd standing in for a descriptor epoll refuses
    /// (a regular file).
    proxy: Option<OwnedFd>,
    key: Cell<usize>,
    was_nonblocking: bool,
}

impl Side {
    fn new(end: End) -> io::Result<Side> {
        // SAFETY: the descriptor is open for as long as `end` lives.
        let fd = unsafe { BorrowedFd::borrow_raw(end.raw()) };
        let was_nonblocking = set_nonblocking(fd, true)?;
        Ok(Side {
            end: RefCell::new(Some(end)),
            proxy: None,
            key: Cell::new(usize::MAX),
            was_nonblocking,
        })
    }

    fn poll_fd(&self) -> Option<RawFd> {
        if let Some(p) = &self.proxy {
            return Some(p.as_raw_fd());
        }
        self.end.borrow().as_ref().map(End::raw)
    }

    fn register(
        &mut self,
        reactor: &Reactor,
        source: Rc<dyn Source>,
        read: bool,
    ) -> io::Result<usize> {
        let fd = self.poll_fd().ok_or(io::ErrorKind::NotConnected)?;
        match reactor.register_fd(fd, source.clone(), read, false) {
            Err(e) if sys::is_unpollable(&e) => {
                // A regular file: always readable and writable.
                let efd = sys::always_ready_fd()?;
                let key = reactor.register_fd(efd.as_raw_fd(), source, read, false)?;
                self.proxy = Some(efd);
                Ok(key)
            }
            other => other,
        }
    }

    fn modify(&self, reactor: &Reactor, read: bool, write: bool) -> io::Result<()> {
        let Some(fd) = self.poll_fd() else {
            return Ok(());
        };
        // SAFETY: the descriptor is open (checked above) for the call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        reactor.modify_fd(fd, self.key.get(), read, write)
    }

    /// Deregisters, restores the flags, and closes (or, for 0 and 1,
    /// points the descriptor at /dev/null).
    fn close(&self, reactor: Option<&Reactor>) {
        let Some(fd) = self.poll_fd() else { return };
        if let Some(r) = reactor {
            // SAFETY: still open here.
            r.deregister_fd(unsafe { BorrowedFd::borrow_raw(fd) }, self.key.get());
        }
        let end = self.end.borrow_mut().take();
        match end {
            Some(End::Std(fd)) => {
                // SAFETY: fd 0 or 1 stays open until dup2 replaces it.
                let _ =
                    set_nonblocking(unsafe { BorrowedFd::borrow_raw(fd) }, self.was_nonblocking);
                sys::point_at_dev_null(fd);
            }
            Some(End::Owned(fd)) => {
                let _ = set_nonblocking(fd.as_fd(), self.was_nonblocking);
            }
            None => {}
        }
    }
}

struct StdioWire {
    input: RefCell<Side>,
    output: RefCell<Side>,
    reactor: RefCell<Option<WeakReactor>>,
}

impl Wire for StdioWire {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let input = self.input.borrow();
        let end = input.end.borrow();
        let Some(fd) = end.as_ref().map(End::raw) else {
            return Ok(0);
        };
        // SAFETY: the descriptor is open while `end` is borrowed.
        sys::read_fd(unsafe { BorrowedFd::borrow_raw(fd) }, buf)
    }

    fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let output = self.output.borrow();
        let end = output.end.borrow();
        let Some(fd) = end.as_ref().map(End::raw) else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        // SAFETY: the descriptor is open while `end` is borrowed.
        sys::writev_fd(unsafe { BorrowedFd::borrow_raw(fd) }, bufs)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        let reactor = self
            .reactor
            .borrow()
            .as_ref()
            .and_then(WeakReactor::upgrade);
        self.output.borrow().close(reactor.as_ref());
        Ok(())
    }

    fn register(&self, reactor: &Reactor, source: Rc<dyn Source>) -> io::Result<usize> {
        *self.reactor.borrow_mut() = Some(reactor.downgrade());
        let key = self
            .input
            .borrow_mut()
            .register(reactor, source.clone(), true)?;
        self.input.borrow().key.set(key);
        let registered = self.output.borrow_mut().register(reactor, source, false);
        match registered {
            Ok(k) => self.output.borrow().key.set(k),
            Err(e) => {
                self.input.borrow().close(Some(reactor));
                return Err(e);
            }
        }
        Ok(key)
    }

    fn set_interest(
        &self,
        reactor: &Reactor,
        _key: usize,
        read: bool,
        write: bool,
    ) -> io::Result<()> {
        self.input.borrow().modify(reactor, read, false)?;
        self.output.borrow().modify(reactor, false, write)
    }

    fn close(&self, reactor: &Reactor, _key: usize) {
        self.input.borrow().close(Some(reactor));
        self.output.borrow().close(Some(reactor));
    }

    fn peer_addr(&self) -> Address {
        Address::Stdio
    }

    fn local_addr(&self) -> Address {
        Address::Stdio
    }
}

impl Reactor {
    /// Runs `protocol` on this process's stdin and stdout (Twisted's
    /// `StandardIO`). Call it once per process.
    ///
    /// # Errors
    ///
    /// The error of making the descriptors non-blocking or registering
    /// them.
    #[doc(alias = "StandardIO")]
    pub fn stdio(&self, protocol: impl Protocol) -> io::Result<Transport> {
        self.start_stdio(End::Std(0), End::Std(1), protocol)
    }

    /// [`stdio`](Self::stdio) on other descriptors: `input` is read,
    /// `output` written, both closed with the transport (pipes, files,
    /// terminals; for tests, or for a program given its descriptors).
    pub fn stdio_on(
        &self,
        input: OwnedFd,
        output: OwnedFd,
        protocol: impl Protocol,
    ) -> io::Result<Transport> {
        self.start_stdio(End::Owned(input), End::Owned(output), protocol)
    }

    fn start_stdio(
        &self,
        input: End,
        output: End,
        protocol: impl Protocol,
    ) -> io::Result<Transport> {
        let wire = StdioWire {
            input: RefCell::new(Side::new(input)?),
            output: RefCell::new(Side::new(output)?),
            reactor: RefCell::new(None),
        };
        let conn = Conn::start(self, wire, Box::new(protocol), None)?;
        Ok(conn.transport())
    }
}
