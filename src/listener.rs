//! The accept loop under every listening stream socket (TCP and Unix):
//! a connection per accepted socket, accepts bounded per event, and
//! survival when the process runs out of descriptors.

use crate::sys::AsSource;
use std::cell::{Cell, RefCell};
use std::io;
use std::rc::{Rc, Weak};
use std::time::Duration;

use socket2::Socket;

use crate::conn::Conn;
use crate::host::Budget;
use crate::panics::catch_panic;
use crate::protocol::Factory;
use crate::reactor::{Reactor, Source, WeakReactor};
use crate::sys::{self, SpareFd};
use crate::transport::Address;

use crate::stream_socket::StreamWire;

/// How long accepting pauses when even the spare fd is gone.
const EMFILE_BACKOFF: Duration = Duration::from_millis(100);
/// Connections accepted per readiness event, before others get a turn.
const ACCEPTS_PER_EVENT: usize = 64;

pub(crate) struct Listener {
    me: Weak<Listener>,
    reactor: WeakReactor,
    socket: RefCell<Option<Socket>>,
    key: Cell<usize>,
    addr: Address,
    /// A Unix socket file to remove on stop: its path and inode.
    #[cfg_attr(not(unix), allow(dead_code))]
    unix_file: Option<(std::path::PathBuf, u64)>,
    factory: RefCell<Box<dyn Factory>>,
    spare: RefCell<SpareFd>,
    paused: Cell<bool>,
    /// Paused by its owner ([`ListeningPort::pause_accepting`]), apart
    /// from the pause for running out of descriptors.
    ///
    /// [`ListeningPort::pause_accepting`]: crate::ListeningPort::pause_accepting
    held: Cell<bool>,
}

/// Registers a bound, listening, non-blocking socket and starts its factory.
pub(crate) fn start_listening(
    reactor: &Reactor,
    socket: Socket,
    bound: Address,
    unix_file: Option<(std::path::PathBuf, u64)>,
    factory: Box<dyn Factory>,
) -> io::Result<Rc<Listener>> {
    let fd = socket.raw_source();
    let listener = Rc::new_cyclic(|me| Listener {
        me: me.clone(),
        reactor: reactor.downgrade(),
        socket: RefCell::new(Some(socket)),
        key: Cell::new(usize::MAX),
        addr: bound.clone(),
        unix_file,
        factory: RefCell::new(factory),
        spare: RefCell::new(SpareFd::new()),
        paused: Cell::new(false),
        held: Cell::new(false),
    });
    let key = reactor.register_fd(fd, listener.clone(), true, false)?;
    listener.key.set(key);
    catch_panic("start_factory", || {
        listener.factory.borrow_mut().start_factory()
    });
    tracing::debug!(addr = %bound, "listening");
    Ok(listener)
}

impl Listener {
    pub(crate) fn is_listening(&self) -> bool {
        self.socket.borrow().is_some()
    }

    pub(crate) fn address(&self) -> &Address {
        &self.addr
    }

    pub(crate) fn stop(&self) {
        let socket = self.socket.borrow_mut().take();
        let Some(socket) = socket else { return };
        if let Some(r) = self.reactor.upgrade() {
            r.deregister_fd(socket.source(), self.key.get());
        }
        drop(socket);
        #[cfg(unix)]
        if let Some((path, ino)) = &self.unix_file {
            crate::unix::remove_if_ours(path, *ino);
        }
        if let Ok(mut f) = self.factory.try_borrow_mut() {
            catch_panic("stop_factory", || f.stop_factory());
        }
        tracing::debug!(addr = %self.addr, "stopped listening");
    }

    fn accept_some(&self, reactor: &Reactor) {
        for _ in 0..ACCEPTS_PER_EVENT {
            let accepted = match &*self.socket.borrow() {
                Some(s) => sys::accept(s),
                None => return,
            };
            match accepted {
                Ok((socket, addr)) => self.spawn(reactor, socket, &addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) if sys::is_fd_exhaustion(&e) => {
                    self.out_of_fds(reactor, &e);
                    return;
                }
                Err(e) => {
                    tracing::error!(addr = %self.addr, error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    /// Out of descriptors: give up the spare to accept and close one
    /// waiting peer (so it is told at once and the listener stops being
    /// readable), or pause accepting briefly if there is no spare.
    fn out_of_fds(&self, reactor: &Reactor, e: &io::Error) {
        let mut spare = self.spare.borrow_mut();
        if spare.release() {
            let dropped = match &*self.socket.borrow() {
                Some(s) => sys::accept(s).map(drop).is_ok(),
                None => false,
            };
            spare.restore();
            tracing::warn!(addr = %self.addr, error = %e, dropped, "out of file descriptors: refused a connection");
            return;
        }
        drop(spare);
        tracing::warn!(addr = %self.addr, error = %e, "out of file descriptors and no spare: pausing accepts");
        self.set_accepting(reactor, false);
        let me = self.me.clone();
        let r = reactor.clone();
        reactor.call_later(EMFILE_BACKOFF, move || {
            if let Some(l) = me.upgrade() {
                l.spare.borrow_mut().restore();
                l.set_accepting(&r, true);
            }
        });
    }

    /// Stops or starts accepting at its owner's word: connections wait in
    /// the kernel's accept queue meanwhile.
    pub(crate) fn hold(&self, held: bool) {
        if self.held.replace(held) == held {
            return;
        }
        if let Some(r) = self.reactor.upgrade() {
            self.set_accepting(&r, !held);
        }
    }

    fn set_accepting(&self, reactor: &Reactor, on: bool) {
        let on = on && !self.held.get();
        self.paused.set(!on);
        if let Some(s) = &*self.socket.borrow() {
            if let Err(e) = reactor.modify_fd(s.source(), self.key.get(), on, false) {
                tracing::error!(error = %e, "cannot change listener interest");
            }
        }
    }

    fn spawn(&self, reactor: &Reactor, socket: Socket, from: &socket2::SockAddr) {
        let wire = match from.as_socket() {
            Some(peer) => StreamWire::tcp(socket, peer),
            None => StreamWire::unix(socket),
        };
        let wire = match wire {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot set up accepted socket");
                return;
            }
        };
        let addr = crate::conn::Wire::peer_addr(&wire);
        let peer = &addr;
        let built = match self.factory.try_borrow_mut() {
            Ok(mut f) => catch_panic("build_protocol", || f.build_protocol(&addr)).flatten(),
            Err(_) => None,
        };
        let Some(protocol) = built else {
            tracing::debug!(%peer, "factory refused connection");
            return; // dropping the wire closes the socket
        };
        if let Err(e) = Conn::start(reactor, wire, protocol, None) {
            tracing::warn!(%peer, error = %e, "cannot register connection");
        }
    }
}

impl Source for Listener {
    fn ready(&self, readable: bool, _writable: bool, _budget: &Budget) {
        if !readable || self.paused.get() {
            return;
        }
        if let Some(r) = self.reactor.upgrade() {
            self.accept_some(&r);
        }
    }

    fn shutdown(&self) {
        self.stop();
    }
}
