//! Outgoing connections: Twisted's `IConnector`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::{Rc, Weak};
use std::time::Duration;

use socket2::{Domain, Protocol as IpProto, Socket, Type};

use crate::conn::Conn;
use crate::error::{ConnectError, ConnectErrorKind};
use crate::host::Budget;
use crate::protocol::ClientFactory;
use crate::reactor::{DelayedCall, Reactor, Source, WeakReactor};
use crate::sys;
use crate::tcp::TcpWire;
use crate::transport::{Address, Transport};
use crate::util::guard;

enum State {
    Idle,
    Connecting {
        socket: Socket,
        key: usize,
        timer: Option<DelayedCall>,
    },
    Connected(Transport),
}

struct Inner {
    me: Weak<Inner>,
    reactor: WeakReactor,
    dest: SocketAddr,
    timeout: Option<Duration>,
    factory: RefCell<Box<dyn ClientFactory>>,
    state: RefCell<State>,
    /// Bumped per attempt, so a stale timeout cannot end a newer attempt.
    attempt: Cell<u64>,
}

/// One outgoing connection and its retries: Twisted's `IConnector`.
///
/// Returned by [`Reactor::connect_tcp`](crate::Reactor::connect_tcp) and
/// handed to every [`ClientFactory`] callback. Clones are the same
/// connector, so GUI code can keep one to reach the transport or to
/// disconnect.
#[derive(Clone)]
pub struct Connector {
    inner: Rc<Inner>,
}

impl Connector {
    pub(crate) fn new(
        reactor: &Reactor,
        dest: SocketAddr,
        factory: Box<dyn ClientFactory>,
        timeout: Option<Duration>,
    ) -> Connector {
        Connector {
            inner: Rc::new_cyclic(|me| Inner {
                me: me.clone(),
                reactor: reactor.downgrade(),
                dest,
                timeout,
                factory: RefCell::new(factory),
                state: RefCell::new(State::Idle),
                attempt: Cell::new(0),
            }),
        }
    }

    fn from_inner(inner: Rc<Inner>) -> Connector {
        Connector { inner }
    }

    /// Starts an attempt (again, after a failure or a lost connection). A
    /// no-op while connecting or connected.
    pub fn connect(&self) {
        if !matches!(*self.inner.state.borrow(), State::Idle) {
            return;
        }
        let Some(reactor) = self.inner.reactor.upgrade() else {
            return;
        };
        if reactor.is_stopped() {
            return;
        }
        self.with_factory(|f, c| f.started_connecting(c));
        let attempt = self.inner.attempt.get() + 1;
        self.inner.attempt.set(attempt);
        match self.start_socket(&reactor) {
            Ok(socket) => {
                let fd = socket.as_raw_fd();
                // The registration owns the attempt: a dropped Connector handle
                // must not cancel a fire-and-forget connect_tcp.
                let source = Rc::new(Attempt(self.inner.clone()));
                match reactor.register_fd(fd, source, false, true) {
                    Ok(key) => {
                        let timer = self.inner.timeout.map(|t| {
                            let me = self.inner.me.clone();
                            reactor.call_later(t, move || {
                                if let Some(inner) = me.upgrade() {
                                    if inner.attempt.get() == attempt {
                                        Connector::from_inner(inner)
                                            .fail(ConnectError::new(ConnectErrorKind::TimedOut));
                                    }
                                }
                            })
                        });
                        *self.inner.state.borrow_mut() = State::Connecting { socket, key, timer };
                    }
                    Err(e) => self.fail_later(&reactor, ConnectError::from_io(e)),
                }
            }
            Err(e) => self.fail_later(&reactor, ConnectError::from_io(e)),
        }
    }

    fn start_socket(&self, _reactor: &Reactor) -> io::Result<Socket> {
        let dest = self.inner.dest;
        let socket = Socket::new(
            Domain::for_address(dest),
            Type::STREAM.cloexec(),
            Some(IpProto::TCP),
        )?;
        sys::prepare_stream(&socket)?;
        match socket.connect(&dest.into()) {
            Ok(()) => Ok(socket),
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock =>
            {
                Ok(socket)
            }
            Err(e) => Err(e),
        }
    }

    /// Failures are reported from the reactor, never from inside `connect`.
    fn fail_later(&self, reactor: &Reactor, err: ConnectError) {
        let me = self.clone();
        reactor.call_soon(move || me.report_failure(err));
    }

    /// Ends the current attempt with `err`.
    fn fail(&self, err: ConnectError) {
        let prev = std::mem::replace(&mut *self.inner.state.borrow_mut(), State::Idle);
        match prev {
            State::Connecting { socket, key, timer } => {
                if let Some(t) = timer {
                    t.cancel();
                }
                if let Some(r) = self.inner.reactor.upgrade() {
                    r.deregister_fd(socket.as_fd(), key);
                }
                drop(socket);
                self.report_failure(err);
            }
            other => *self.inner.state.borrow_mut() = other,
        }
    }

    fn report_failure(&self, err: ConnectError) {
        tracing::debug!(dest = %self.inner.dest, error = %err, "connection attempt failed");
        self.with_factory(|f, c| f.client_connection_failed(c, &err));
    }

    fn with_factory(&self, f: impl FnOnce(&mut dyn ClientFactory, &Connector)) {
        match self.inner.factory.try_borrow_mut() {
            Ok(mut fac) => {
                guard("client factory", || f(&mut **fac, self));
            }
            Err(_) => tracing::warn!("client factory re-entered; notification skipped"),
        }
    }

    /// The attempt's socket became writable: connected, or failed.
    fn on_writable(&self) {
        let err = match &*self.inner.state.borrow() {
            State::Connecting { socket, .. } => socket.take_error(),
            _ => return,
        };
        match err {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => {
                self.fail(ConnectError::from_io(e));
                return;
            }
        }
        let prev = std::mem::replace(&mut *self.inner.state.borrow_mut(), State::Idle);
        let State::Connecting { socket, key, timer } = prev else {
            return;
        };
        if let Some(t) = timer {
            t.cancel();
        }
        let Some(reactor) = self.inner.reactor.upgrade() else {
            return;
        };
        reactor.deregister_fd(socket.as_fd(), key);
        let dest = self.inner.dest;
        let wire = match TcpWire::new(socket, dest) {
            Ok(w) => w,
            Err(e) => return self.report_failure(ConnectError::from_io(e)),
        };
        let mut built = None;
        self.with_factory(|f, _| built = f.build_protocol(&Address::Tcp(dest)));
        let Some(protocol) = built else {
            return self.report_failure(ConnectError::new(ConnectErrorKind::Declined));
        };
        // Strong: the connection keeps its connector (and factory) alive
        // until connection_lost has been reported; the hook is taken then,
        // which breaks the connector -> transport -> hook cycle.
        let inner = self.inner.clone();
        let on_lost = Box::new(move |reason: &crate::CloseReason| {
            *inner.state.borrow_mut() = State::Idle;
            let c = Connector::from_inner(inner);
            c.with_factory(|f, c| f.client_connection_lost(c, reason));
        });
        match Conn::start(&reactor, wire, protocol, Some(on_lost)) {
            Ok(conn) => {
                if !conn.transport().is_closed() {
                    *self.inner.state.borrow_mut() = State::Connected(conn.transport());
                }
            }
            Err(e) => self.report_failure(ConnectError::from_io(e)),
        }
    }

    /// Abandons the attempt in progress; the factory is told it failed with
    /// [`ConnectErrorKind::Cancelled`].
    #[doc(alias = "stopConnecting")]
    pub fn stop_connecting(&self) {
        self.fail(ConnectError::new(ConnectErrorKind::Cancelled));
    }

    /// Stops connecting, or closes the connection cleanly if it is up.
    pub fn disconnect(&self) {
        let transport = match &*self.inner.state.borrow() {
            State::Connected(t) => Some(t.clone()),
            _ => None,
        };
        match transport {
            Some(t) => t.lose_connection(),
            None => self.stop_connecting(),
        }
    }

    /// Where this connector connects to.
    #[doc(alias = "getDestination")]
    pub fn destination(&self) -> Address {
        Address::Tcp(self.inner.dest)
    }

    /// The connection's transport while it is up.
    pub fn transport(&self) -> Option<Transport> {
        match &*self.inner.state.borrow() {
            State::Connected(t) if !t.is_closed() => Some(t.clone()),
            _ => None,
        }
    }

    /// Whether an attempt is in progress.
    pub fn is_connecting(&self) -> bool {
        matches!(*self.inner.state.borrow(), State::Connecting { .. })
    }

    /// The reactor this connector belongs to.
    pub fn reactor(&self) -> Option<Reactor> {
        self.inner.reactor.upgrade()
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.inner.state.borrow() {
            State::Idle => "idle",
            State::Connecting { .. } => "connecting",
            State::Connected(_) => "connected",
        };
        f.debug_struct("Connector")
            .field("dest", &self.inner.dest)
            .field("state", &state)
            .finish()
    }
}

/// The poller's view of an attempt in progress.
struct Attempt(Rc<Inner>);

impl Source for Attempt {
    fn ready(&self, _readable: bool, writable: bool, _budget: &Budget) {
        if writable {
            Connector::from_inner(self.0.clone()).on_writable();
        }
    }

    fn shutdown(&self) {
        Connector::from_inner(self.0.clone()).stop_connecting();
    }
}
