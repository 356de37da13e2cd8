//! Outgoing connections: Twisted's `IConnector`.

use crate::sys::AsSource;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use socket2::{Domain, Protocol as IpProto, SockAddr, Socket, Type};

use crate::conn::Conn;
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
    /// Resolving the name and racing attempts (Happy Eyeballs).
    Racing(Race),
    Connected(Transport),
}

/// One round of [`Connector::connect`]: the name's resolution and the
/// attempts in flight (RFC 8305).
struct Race {
    round: u64,
    /// The resolver has not completed yet.
    resolving: bool,
    /// IPv4 addresses wait: no IPv6 one is known and the resolution is not
    /// over, and the Resolution Delay has not passed.
    hold_v4: bool,
    resolution_delay: Option<DelayedCall>,
    /// Addresses not tried yet, by family (Unix paths go with IPv4).
    v6: VecDeque<Address>,
    v4: VecDeque<Address>,
    /// Every address seen this round, so a resolver's repeats are dropped.
    seen: Vec<SocketAddr>,
    last_was_v6: bool,
    attempts: Vec<Pending>,
    /// The next attempt may start as soon as an address is ready: at the
    /// start, when an attempt failed, or when the attempt delay passed.
    may_start: bool,
    stagger: Option<DelayedCall>,
    last_error: Option<ConnectError>,
    resolve_error: Option<io::Error>,
}

/// A socket whose connect is in progress.
struct Pending {
    id: u64,
    socket: Socket,
    key: usize,
    addr: Address,
    timer: Option<DelayedCall>,
}

impl Race {
    fn new(round: u64, resolving: bool) -> Race {
        Race {
            round,
            resolving,
            hold_v4: resolving,
            resolution_delay: None,
            v6: VecDeque::new(),
            v4: VecDeque::new(),
            seen: Vec::new(),
            last_was_v6: false,
            attempts: Vec::new(),
            may_start: true,
            stagger: None,
            last_error: None,
            resolve_error: None,
        }
    }

    /// The next address to try: the families alternate, IPv6 first.
    fn next_address(&mut self) -> Option<Address> {
        let v4_ok = !self.hold_v4;
        let pick_v6 = if self.last_was_v6 && v4_ok && !self.v4.is_empty() {
            false
        } else {
            !self.v6.is_empty()
        };
        if pick_v6 {
            self.last_was_v6 = true;
            self.v6.pop_front()
        } else if v4_ok {
            self.last_was_v6 = false;
            self.v4.pop_front()
        } else {
            None
        }
    }

    fn exhausted(&self) -> bool {
        !self.resolving && self.attempts.is_empty() && self.v6.is_empty() && self.v4.is_empty()
    }

    /// Cancels the timers and closes every socket in flight.
    fn abandon(self, reactor: Option<&Reactor>) {
        for t in [self.resolution_delay, self.stagger].into_iter().flatten() {
            t.cancel();
        }
        for p in self.attempts {
            if let Some(t) = p.timer {
                t.cancel();
            }
            if let Some(r) = reactor {
                r.deregister_fd(p.socket.source(), p.key);
            }
        }
    }
}

struct Inner {
    me: Weak<Inner>,
    reactor: WeakReactor,
    /// The address being (or last) tried.
    dest: RefCell<Address>,
    /// A host name to resolve before each connect, with its port.
    host: Option<(String, u16)>,
    timeout: Option<Duration>,
    factory: RefCell<Box<dyn ClientFactory>>,
    state: RefCell<State>,
    /// Ids for rounds and attempts, so a stale timer or answer cannot touch
    /// a newer one.
    ids: Cell<u64>,
    /// The factory's `start_factory` ran and its `stop_factory` has not.
    factory_started: Cell<bool>,
}

impl Inner {
    fn next_id(&self) -> u64 {
        let id = self.ids.get() + 1;
        self.ids.set(id);
        id
    }
}

/// One outgoing connection and its retries: Twisted's `IConnector`.
///
/// Returned by [`Reactor::connect_tcp`](crate::Reactor::connect_tcp) and
/// [`Reactor::connect_tcp_host`](crate::Reactor::connect_tcp_host) and
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
                timeout,
                factory: RefCell::new(factory),
                state: RefCell::new(State::Idle),
                ids: Cell::new(0),
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
        if !matches!(*self.inner.state.borrow(), State::Idle) {
            return; // started_connecting connected or cancelled already
        }
        let round = self.inner.next_id();
        let literal = match &self.inner.host {
            None => Some(self.inner.dest.borrow().clone()),
            Some((host, port)) => {
                crate::hostname::ip_literal(host).map(|ip| Address::Tcp(SocketAddr::new(ip, *port)))
            }
        };
        match literal {
            Some(addr) => {
                let mut race = Race::new(round, false);
                match &addr {
                    Address::Tcp(a) if a.is_ipv6() => race.v6.push_back(addr),
                    _ => race.v4.push_back(addr),
                }
                *self.inner.state.borrow_mut() = State::Racing(race);
                self.advance(&reactor, round);
            }
            None => {
                *self.inner.state.borrow_mut() = State::Racing(Race::new(round, true));
                let (host, port) = self.inner.host.clone().expect("a host to resolve");
                let receiver = Rc::new(Receiver {
                    inner: self.inner.clone(),
                    round,
                });
                reactor
                    .name_resolver()
                    .resolve_host_name(&reactor, &host, port, receiver);
            }
        }
    }

    /// The race of `round`, if it is still the one running.
    fn with_race<R>(&self, round: u64, f: impl FnOnce(&mut Race) -> R) -> Option<R> {
        match &mut *self.inner.state.borrow_mut() {
            State::Racing(race) if race.round == round => Some(f(race)),
            _ => None,
        }
    }

    fn addresses_resolved(&self, round: u64, addrs: &[SocketAddr]) {
        let Some(reactor) = self.inner.reactor.upgrade() else {
            return;
        };
        let start_delay = self.with_race(round, |race| {
            for a in addrs {
                if race.seen.contains(a) {
                    continue;
                }
                race.seen.push(*a);
                if a.is_ipv6() {
                    race.v6.push_back(Address::Tcp(*a));
                    race.hold_v4 = false;
                    if let Some(t) = race.resolution_delay.take() {
                        t.cancel();
                    }
                } else {
                    race.v4.push_back(Address::Tcp(*a));
                }
            }
            race.hold_v4 && !race.v4.is_empty() && race.resolution_delay.is_none()
        });
        if start_delay == Some(true) {
            let me = self.inner.me.clone();
            let weak_reactor = self.inner.reactor.clone();
            let timer = reactor.call_later(crate::hostname::RESOLUTION_DELAY, move || {
                let (Some(inner), Some(r)) = (me.upgrade(), weak_reactor.upgrade()) else {
                    return;
                };
                let c = Connector::from_inner(inner);
                c.with_race(round, |race| {
                    race.hold_v4 = false;
                    race.resolution_delay = None;
                });
                c.advance(&r, round);
            });
            self.with_race(round, |race| race.resolution_delay = Some(timer));
        }
        self.advance(&reactor, round);
    }

    fn resolution_complete(&self, round: u64, result: io::Result<()>) {
        let Some(reactor) = self.inner.reactor.upgrade() else {
            return;
        };
        self.with_race(round, |race| {
            race.resolving = false;
            race.hold_v4 = false;
            if let Some(t) = race.resolution_delay.take() {
                t.cancel();
            }
            race.resolve_error = result.err();
        });
        self.advance(&reactor, round);
    }

    /// Starts the next attempt if one may start, or reports the failure
    /// when nothing is left to try.
    fn advance(&self, reactor: &Reactor, round: u64) {
        enum Next {
            Start(Address),
            GiveUp,
            Wait,
        }
        let next = self.with_race(round, |race| {
            if race.may_start {
                if let Some(addr) = race.next_address() {
                    race.may_start = false;
                    if let Some(t) = race.stagger.take() {
                        t.cancel();
                    }
                    return Next::Start(addr);
                }
            }
            if race.exhausted() {
                Next::GiveUp
            } else {
                Next::Wait
            }
        });
        match next {
            Some(Next::Start(addr)) => self.start_attempt(reactor, round, addr),
            Some(Next::GiveUp) => self.give_up(round),
            Some(Next::Wait) | None => {}
        }
    }

    /// Every address failed (or none came): the factory hears of it.
    fn give_up(&self, round: u64) {
        let prev = std::mem::replace(&mut *self.inner.state.borrow_mut(), State::Idle);
        let State::Racing(race) = prev else {
            *self.inner.state.borrow_mut() = prev;
            return;
        };
        debug_assert_eq!(race.round, round);
        let resolve_error = race.resolve_error;
        let err = match race.last_error {
            Some(e) => e,
            None => match resolve_error {
                Some(e) => ConnectError::unresolved_with(e),
                None => ConnectError::unresolved("no addresses".into()),
            },
        };
        self.report_failure(err);
    }

    fn start_attempt(&self, reactor: &Reactor, round: u64, addr: Address) {
        *self.inner.dest.borrow_mut() = addr.clone();
        let id = self.inner.next_id();
        let started = self.start_socket(&addr).and_then(|socket| {
            // The registration owns the attempt: a dropped Connector handle
            // must not cancel a fire-and-forget connect_tcp.
            let source = Rc::new(Attempt(self.inner.clone(), id));
            let key = reactor.register_fd(socket.raw_source(), source, false, true)?;
            Ok((socket, key))
        });
        let (socket, key) = match started {
            Ok(s) => s,
            Err(e) => {
                // Failures are reported from the reactor, never from inside
                // `connect`.
                self.with_race(round, |race| {
                    race.last_error = Some(ConnectError::from_io(e));
                    race.may_start = true;
                });
                let me = self.clone();
                reactor.call_soon(move || {
                    if let Some(r) = me.inner.reactor.upgrade() {
                        me.advance(&r, round);
                    }
                });
                return;
            }
        };
        let timer = self.inner.timeout.map(|t| {
            let me = self.inner.me.clone();
            reactor.call_later(t, move || {
                if let Some(inner) = me.upgrade() {
                    Connector::from_inner(inner)
                        .attempt_failed(id, ConnectError::new(ConnectErrorKind::TimedOut));
                }
            })
        });
        // RFC 8305's Connection Attempt Delay: the next address gets its
        // turn after this long even if this attempt is still out.
        let me = self.inner.me.clone();
        let weak_reactor = self.inner.reactor.clone();
        let stagger = reactor.call_later(crate::hostname::CONNECTION_ATTEMPT_DELAY, move || {
            let (Some(inner), Some(r)) = (me.upgrade(), weak_reactor.upgrade()) else {
                return;
            };
            let c = Connector::from_inner(inner);
            c.with_race(round, |race| {
                race.stagger = None;
                race.may_start = true;
            });
            c.advance(&r, round);
        });
        let pending = Pending {
            id,
            socket,
            key,
            addr,
            timer,
        };
        let kept = self.with_race(round, move |race| {
            race.attempts.push(pending);
            race.stagger = Some(stagger);
        });
        debug_assert!(kept.is_some(), "the race ended while an attempt started");
    }

    fn start_socket(&self, dest: &Address) -> io::Result<Socket> {
        let (socket, target) = match dest {
            Address::Tcp(dest) => {
                let socket =
                    Socket::new(Domain::for_address(*dest), Type::STREAM, Some(IpProto::TCP))?;
                (socket, SockAddr::from(*dest))
            }
            Address::Unix(Some(path)) => (
                Socket::new(Domain::UNIX, Type::STREAM, None)?,
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

    /// The race the attempt `id` belongs to, and the attempt taken out of
    /// it.
    fn take_attempt(&self, id: u64) -> Option<(u64, Pending)> {
        match &mut *self.inner.state.borrow_mut() {
            State::Racing(race) => {
                let at = race.attempts.iter().position(|p| p.id == id)?;
                Some((race.round, race.attempts.swap_remove(at)))
            }
            _ => None,
        }
    }

    /// One attempt failed: the next address starts at once.
    fn attempt_failed(&self, id: u64, err: ConnectError) {
        let Some((round, pending)) = self.take_attempt(id) else {
            return;
        };
        let reactor = self.inner.reactor.upgrade();
        if let Some(t) = pending.timer {
            t.cancel();
        }
        if let Some(r) = &reactor {
            r.deregister_fd(pending.socket.source(), pending.key);
        }
        tracing::debug!(dest = %pending.addr, error = %err, "connection attempt failed");
        drop(pending.socket);
        self.with_race(round, |race| {
            race.last_error = Some(err);
            race.may_start = true;
        });
        if let Some(r) = reactor {
            self.advance(&r, round);
        }
    }

    /// Ends the round with `err`, whatever is in flight.
    fn fail(&self, err: ConnectError) {
        let prev = std::mem::replace(&mut *self.inner.state.borrow_mut(), State::Idle);
        match prev {
            State::Racing(race) => {
                race.abandon(self.inner.reactor.upgrade().as_ref());
                self.report_failure(err);
            }
            other => *self.inner.state.borrow_mut() = other,
        }
    }

    fn report_failure(&self, err: ConnectError) {
        tracing::debug!(dest = %self.inner.dest.borrow(), error = %err, "connecting failed");
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

    /// An attempt's socket became writable: connected, or failed.
    fn on_writable(&self, id: u64) {
        let err = match &*self.inner.state.borrow() {
            State::Racing(race) => match race.attempts.iter().find(|p| p.id == id) {
                Some(p) => p.socket.take_error(),
                None => return,
            },
            _ => return,
        };
        match err {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => {
                self.attempt_failed(id, ConnectError::from_io(e));
                return;
            }
        }
        let Some((_, won)) = self.take_attempt(id) else {
            return;
        };
        let Some(reactor) = self.inner.reactor.upgrade() else {
            return;
        };
        if let Some(t) = won.timer {
            t.cancel();
        }
        reactor.deregister_fd(won.socket.source(), won.key);
        // The other attempts lose (RFC 8305: cancel them once one is up).
        let prev = std::mem::replace(&mut *self.inner.state.borrow_mut(), State::Idle);
        if let State::Racing(race) = prev {
            race.abandon(Some(&reactor));
        }
        *self.inner.dest.borrow_mut() = won.addr.clone();
        let dest = won.addr;
        let wire = match &dest {
            Address::Tcp(a) => StreamWire::tcp(won.socket, *a),
            _ => StreamWire::unix(won.socket),
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
        matches!(*self.inner.state.borrow(), State::Racing(_))
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
            State::Racing(r) if r.attempts.is_empty() => "resolving",
            State::Racing(_) => "connecting",
            State::Connected(_) => "connected",
        };
        f.debug_struct("Connector")
            .field("dest", &self.inner.dest.borrow())
            .field("host", &self.inner.host)
            .field("state", &state)
            .finish()
    }
}

/// The connector's side of a name resolution (one round's).
struct Receiver {
    inner: Rc<Inner>,
    round: u64,
}

impl crate::hostname::ResolutionReceiver for Receiver {
    fn addresses_resolved(&self, addresses: &[SocketAddr]) {
        Connector::from_inner(self.inner.clone()).addresses_resolved(self.round, addresses);
    }

    fn resolution_complete(&self, result: io::Result<()>) {
        Connector::from_inner(self.inner.clone()).resolution_complete(self.round, result);
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
struct Attempt(Rc<Inner>, u64);

impl Source for Attempt {
    fn ready(&self, _readable: bool, writable: bool, _budget: &Budget) {
        if writable {
            Connector::from_inner(self.0.clone()).on_writable(self.1);
        }
    }

    fn shutdown(&self) {
        Connector::from_inner(self.0.clone()).stop_connecting();
    }
}

#[cfg(test)]
mod tests;
