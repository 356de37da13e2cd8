//! Outgoing connections: Twisted's `IConnector`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::{Rc, Weak};
use std::time::Duration;

use socket2::{Domain, Protocol as IpProto, SockAddr, Socket, Type};

use crate::conn::Conn;
use crate::defer::{Deferred, Failure};
use crate::error::{ConnectError, ConnectErrorKind};
use crate::host::Budget;
use crate::panics::catch_panic;
use crate::protocol::ClientFactory;
use crate::reactor::{DelayedCall, Reactor, Source, WeakReactor};
use crate::stream_socket::StreamWire;
use crate::sys;
use crate::transport::{Address, Transport};

enum State {
    Idle,
    /// Resolving the host name on the thread pool.
    Resolving(Option<Deferred<(), Failure>>),
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
    /// The address being (or last) tried.
    dest: RefCell<Address>,
    /// A host name to resolve before each connect, with its port.
    host: Option<(String, u16)>,
    /// Addresses left to try in this round, in order.
    candidates: RefCell<VecDeque<Address>>,
    timeout: Option<Duration>,
    factory: RefCell<Box<dyn ClientFactory>>,
    state: RefCell<State>,
    /// Bumped per attempt, so a stale timeout cannot end a newer attempt.
    attempt: Cell<u64>,
    /// The factory's `start_factory` ran and its `stop_factory` has not.
    factory_started: Cell<bool>,
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
        dest: Address,
        host: Option<(String, u16)>,
        factory: Box<dyn ClientFactory>,
        timeout: Option<Duration>,
    ) -> Connector {
        Connector {
            inner: Rc::new_cyclic(|me| Inner {
                me: me.clone(),
                reactor: reactor.downgrade(),
                dest: RefCell::new(dest),
                host,
                candidates: RefCell::default(),
                timeout,
                factory: RefCell::new(factory),
                state: RefCell::new(State::Idle),
                attempt: Cell::new(0),
                factory_started: Cell::new(false),
            }),
        }
    }

    fn from_inner(inner: Rc<Inner>) -> Connector {
        Connector { inner }
    }

    /// A reference that does not keep the connector (and its factory)
    /// alive: what a factory that keeps its own connector holds, so the two
    /// do not keep each other alive for good.
    pub fn downgrade(&self) -> WeakConnector {
        WeakConnector(Rc::downgrade(&self.inner))
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
        // Twisted's BaseConnector.connect: doStart once, then doStop when
        // it stops trying (a failure or a loss the factory does not answer
        // with a new connect).
        if !self.inner.factory_started.replace(true) {
            self.with_factory(|f, _| f.start_factory());
        }
        self.with_factory(|f, c| f.started_connecting(c));
        match &self.inner.host {
            None => {
                *self.inner.candidates.borrow_mut() =
                    VecDeque::from([self.inner.dest.borrow().clone()]);
                self.try_next(&reactor);
            }
            Some((host, port)) => {
                *self.inner.state.borrow_mut() = State::Resolving(None);
                let me = self.clone();
                let tail = reactor.resolve(host, *port).add_both(move |r| {
                    me.on_resolved(r);
                    Ok::<(), Failure>(())
                });
                if let State::Resolving(slot) = &mut *self.inner.state.borrow_mut() {
                    *slot = Some(tail);
                }
            }
        }
    }

    fn on_resolved(&self, result: Result<Vec<SocketAddr>, Failure>) {
        if !matches!(*self.inner.state.borrow(), State::Resolving(_)) {
            return; // cancelled meanwhile
        }
        *self.inner.state.borrow_mut() = State::Idle;
        let Some(reactor) = self.inner.reactor.upgrade() else {
            return;
        };
        match result {
            Ok(addrs) if !addrs.is_empty() => {
                *self.inner.candidates.borrow_mut() = addrs.into_iter().map(Address::Tcp).collect();
                self.try_next(&reactor);
            }
            Ok(_) => self.report_failure(ConnectError::unresolved("no addresses".into())),
            Err(f) => self.report_failure(ConnectError::unresolved(f.to_string())),
        }
    }

    /// Starts an attempt at the next candidate address.
    fn try_next(&self, reactor: &Reactor) {
        let Some(addr) = self.inner.candidates.borrow_mut().pop_front() else {
            return;
        };
        *self.inner.dest.borrow_mut() = addr;
        let attempt = self.inner.attempt.get() + 1;
        self.inner.attempt.set(attempt);
        match self.start_socket() {
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
                    Err(e) => self.fail_later(reactor, ConnectError::from_io(e)),
                }
            }
            Err(e) => self.fail_later(reactor, ConnectError::from_io(e)),
        }
    }

    fn start_socket(&self) -> io::Result<Socket> {
        let (socket, target) = match &*self.inner.dest.borrow() {
            Address::Tcp(dest) => {
                let socket = Socket::new(
                    Domain::for_address(*dest),
                    Type::STREAM.cloexec(),
                    Some(IpProto::TCP),
                )?;
                (socket, SockAddr::from(*dest))
            }
            Address::Unix(Some(path)) => (
                Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?,
                SockAddr::unix(path)?,
            ),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot connect to {other}"),
                ))
            }
        };
        sys::prepare_stream(&socket)?;
        match socket.connect(&target) {
            Ok(()) => Ok(socket),
            Err(e) if sys::is_connect_in_progress(&e) => Ok(socket),
            Err(e) => Err(e),
        }
    }

    /// Failures are reported from the reactor, never from inside `connect`.
    fn fail_later(&self, reactor: &Reactor, err: ConnectError) {
        let me = self.clone();
        reactor.call_soon(move || me.after_failure(err));
    }

    /// An attempt failed: try the next address, or report the failure.
    fn after_failure(&self, err: ConnectError) {
        let more = !self.inner.candidates.borrow().is_empty();
        match self.inner.reactor.upgrade() {
            Some(r) if more && err.kind() != ConnectErrorKind::Cancelled => {
                tracing::debug!(dest = %self.inner.dest.borrow(), error = %err, "trying the next address");
                self.try_next(&r);
            }
            _ => {
                self.inner.candidates.borrow_mut().clear();
                self.report_failure(err);
            }
        }
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
                self.after_failure(err);
            }
            State::Resolving(tail) => {
                if let Some(t) = tail {
                    t.cancel();
                }
                self.report_failure(err);
            }
            other => *self.inner.state.borrow_mut() = other,
        }
    }

    fn report_failure(&self, err: ConnectError) {
        tracing::debug!(dest = %self.inner.dest.borrow(), error = %err, "connection attempt failed");
        self.with_factory(|f, c| f.client_connection_failed(c, &err));
        self.stop_factory_if_idle();
    }

    /// After a failure or a loss: the factory stops unless it started
    /// another attempt from its callback.
    fn stop_factory_if_idle(&self) {
        let idle = matches!(*self.inner.state.borrow(), State::Idle);
        if idle && self.inner.factory_started.replace(false) {
            self.with_factory(|f, _| f.stop_factory());
        }
    }

    fn with_factory(&self, f: impl FnOnce(&mut dyn ClientFactory, &Connector)) {
        match self.inner.factory.try_borrow_mut() {
            Ok(mut fac) => {
                catch_panic("client factory", || f(&mut **fac, self));
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
        self.inner.candidates.borrow_mut().clear();
        let dest = self.inner.dest.borrow().clone();
        let wire = match &dest {
            Address::Tcp(a) => StreamWire::tcp(socket, *a),
            _ => StreamWire::unix(socket),
        };
        let wire = match wire {
            Ok(w) => w,
            Err(e) => return self.report_failure(ConnectError::from_io(e)),
        };
        let mut built = None;
        self.with_factory(|f, _| built = f.build_protocol(&dest));
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
            c.stop_factory_if_idle();
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

    /// The address this connector connects (or last tried) to. For a host
    /// name, the address it resolved to.
    #[doc(alias = "getDestination")]
    pub fn destination(&self) -> Address {
        self.inner.dest.borrow().clone()
    }

    /// The host name this connector resolves, if it was given one.
    pub fn host(&self) -> Option<&str> {
        self.inner.host.as_ref().map(|(h, _)| h.as_str())
    }

    /// The connection's transport while it is up.
    pub fn transport(&self) -> Option<Transport> {
        match &*self.inner.state.borrow() {
            State::Connected(t) if !t.is_closed() => Some(t.clone()),
            _ => None,
        }
    }

    /// Whether an attempt (or the name resolution before it) is in
    /// progress.
    pub fn is_connecting(&self) -> bool {
        matches!(
            *self.inner.state.borrow(),
            State::Connecting { .. } | State::Resolving(_)
        )
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
            State::Resolving(_) => "resolving",
            State::Connecting { .. } => "connecting",
            State::Connected(_) => "connected",
        };
        f.debug_struct("Connector")
            .field("dest", &self.inner.dest.borrow())
            .field("host", &self.inner.host)
            .field("state", &state)
            .finish()
    }
}

/// A [`Connector`] that does not keep it alive (see
/// [`Connector::downgrade`]).
#[derive(Clone, Debug)]
pub struct WeakConnector(Weak<Inner>);

impl WeakConnector {
    /// The connector, if it is still alive.
    pub fn upgrade(&self) -> Option<Connector> {
        self.0.upgrade().map(Connector::from_inner)
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::testing::run_until;
    use crate::{Factory, Protocol, Transport};

    struct Quiet;
    impl Protocol for Quiet {
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    }

    struct Outcome(Rc<RefCell<Vec<String>>>);
    impl Factory for Outcome {
        fn build_protocol(&mut self, addr: &Address) -> Option<Box<dyn Protocol>> {
            self.0.borrow_mut().push(format!("made {addr}"));
            Some(Box::new(Quiet))
        }
    }
    impl ClientFactory for Outcome {
        fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
            self.0
                .borrow_mut()
                .push(format!("failed {:?}", reason.kind()));
        }
    }

    #[test]
    fn the_next_address_is_tried_after_a_refusal() {
        let reactor = Reactor::new().unwrap();
        let good = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Quiet)
            .unwrap();
        let refused = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        let c = Connector::new(
            &reactor,
            Address::Tcp(refused),
            None,
            Box::new(Outcome(log.clone())),
            None,
        );
        // As after resolving a name to two addresses, the dead one first.
        *c.inner.candidates.borrow_mut() =
            VecDeque::from([Address::Tcp(refused), Address::Tcp(good.local_addr())]);
        c.try_next(&reactor);
        run_until(&reactor, Duration::from_secs(20), || {
            !log.borrow().is_empty()
        })
        .unwrap();
        assert_eq!(*log.borrow(), vec![format!("made {}", good.local_addr())]);
    }
}
