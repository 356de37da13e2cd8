//! The SOCKS client: connections through a SOCKS5 (or SOCKS4a) proxy, as a
//! layer, so the protocol above never sees the handshake.
//!
//! ```text
//!   your Protocol ─▶ SocksLayer ─▶ TCP to the proxy
//!     writes wait      │ greeting, RFC 1929 login, CONNECT (sans-IO: ClientHandshake)
//!     in the layer     └ then every byte passes through; handshake_completed() up
//! ```
//!
//! [`connect_socks`] is `connect_tcp` through a proxy for any client
//! factory; [`connect_stream`] gives an [`aio::Stream`](braid::aio::Stream);
//! [`handshake_over`] runs the handshake on a plain stream already
//! connected to the proxy, leaving the connection free of layers, so that
//! TLS can go on it next (what an HTTPS client through SOCKS needs).

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::aio::Stream;
use braid::layer::{Layer, Layered, PassThrough};
use braid::{
    Address, AlreadyRegistered, ClientFactory, CloseKind, CloseReason, ConnectError, Connector,
    Factory, Producer, Protocol, Reactor, Transport, TransportImpl,
};

pub use super::handshake::Target;

/// The SOCKS version to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Version {
    /// SOCKS5 (RFC 1928), with RFC 1929 login when credentials are given.
    #[default]
    V5,
    /// SOCKS4a: names resolved by the proxy, no password.
    V4a,
}

/// Why the proxy did not make the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocksErrorKind {
    /// The proxy refused the request (its reply code: SOCKS5's 1-8, or
    /// SOCKS4's 91-93).
    Refused(u8),
    /// The proxy accepts none of the offered authentication methods.
    NoAcceptableMethod,
    /// The login was refused.
    AuthFailed,
    /// The proxy said something that is not SOCKS.
    Protocol,
}

/// A SOCKS failure; it reaches the protocol as its connection's close
/// reason ([`CloseReason::io_error`] holds it), and [`connect_stream`]
/// returns it as an `io::Error` of a matching kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocksError {
    kind: SocksErrorKind,
}

impl SocksError {
    /// What went wrong.
    pub fn kind(&self) -> &SocksErrorKind {
        &self.kind
    }

    fn io_kind(&self) -> io::ErrorKind {
        match self.kind {
            SocksErrorKind::Refused(5) | SocksErrorKind::Refused(91) => {
                io::ErrorKind::ConnectionRefused
            }
            SocksErrorKind::Refused(2) => io::ErrorKind::PermissionDenied,
            SocksErrorKind::Refused(3) => io::ErrorKind::NetworkUnreachable,
            SocksErrorKind::Refused(4) => io::ErrorKind::HostUnreachable,
            SocksErrorKind::Refused(6) => io::ErrorKind::TimedOut,
            SocksErrorKind::Refused(_) => io::ErrorKind::ConnectionRefused,
            SocksErrorKind::AuthFailed | SocksErrorKind::NoAcceptableMethod => {
                io::ErrorKind::PermissionDenied
            }
            SocksErrorKind::Protocol => io::ErrorKind::InvalidData,
        }
    }

    /// As an `io::Error` (this error inside).
    pub fn into_io(self) -> io::Error {
        io::Error::new(self.io_kind(), self)
    }
}

impl fmt::Display for SocksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SocksErrorKind::Refused(c) => {
                let why = match c {
                    1 => "general failure",
                    2 => "not allowed by the proxy's rules",
                    3 => "network unreachable",
                    4 => "host unreachable",
                    5 => "connection refused",
                    6 => "TTL expired",
                    7 => "command not supported",
                    8 => "address type not supported",
                    91 => "request rejected or failed",
                    92 | 93 => "identd check failed",
                    _ => "unknown reply",
                };
                write!(f, "the SOCKS proxy refused: {why} ({c})")
            }
            SocksErrorKind::NoAcceptableMethod => {
                f.write_str("the SOCKS proxy accepts none of the offered login methods")
            }
            SocksErrorKind::AuthFailed => f.write_str("the SOCKS proxy refused the login"),
            SocksErrorKind::Protocol => f.write_str("the proxy does not speak SOCKS"),
        }
    }
}

impl std::error::Error for SocksError {}

fn err(kind: SocksErrorKind) -> SocksError {
    SocksError { kind }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CState {
    Greeting,
    Login,
    Request,
    Done,
}

/// The client side of a SOCKS handshake, sans-IO: [`start`](Self::start)
/// gives the first bytes to send; [`receive`](Self::receive) takes what the
/// proxy says and gives what to send next, until it is done.
#[derive(Debug)]
pub struct ClientHandshake {
    version: Version,
    target: Target,
    auth: Option<(String, String)>,
    state: CState,
    buf: Vec<u8>,
}

/// What [`ClientHandshake::receive`] asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// Wait for more.
    NeedMore,
    /// Send these bytes, then wait for more.
    Send(Vec<u8>),
    /// The tunnel is up; these bytes already came through it.
    Done(Vec<u8>),
}

impl ClientHandshake {
    /// A handshake asking for `target`, logging in with `auth` (SOCKS5).
    pub fn new(version: Version, target: Target, auth: Option<(String, String)>) -> Self {
        ClientHandshake {
            version,
            target,
            auth,
            state: CState::Greeting,
            buf: Vec::new(),
        }
    }

    /// The first bytes to send.
    pub fn start(&mut self) -> Vec<u8> {
        match self.version {
            Version::V5 => {
                if self.auth.is_some() {
                    vec![5, 2, 0, 2]
                } else {
                    vec![5, 1, 0]
                }
            }
            Version::V4a => {
                self.state = CState::Request;
                let (ip, port, name) = match &self.target {
                    Target::Addr(SocketAddr::V4(a)) => (a.ip().octets(), a.port(), None),
                    Target::Addr(a) => ([0, 0, 0, 1], a.port(), Some(a.ip().to_string())),
                    Target::Name(n, p) => ([0, 0, 0, 1], *p, Some(n.clone())),
                };
                let mut r = vec![4, 1];
                r.extend_from_slice(&port.to_be_bytes());
                r.extend_from_slice(&ip);
                r.push(0);
                if let Some(n) = name {
                    r.extend_from_slice(n.as_bytes());
                    r.push(0);
                }
                r
            }
        }
    }

    fn request5(&self) -> Vec<u8> {
        let mut r = vec![5, 1, 0];
        let port = match &self.target {
            Target::Addr(a) => {
                super::handshake::push_addr(&mut r, a.ip());
                a.port()
            }
            Target::Name(n, p) => {
                let n = &n.as_bytes()[..n.len().min(255)];
                r.push(3);
                r.push(n.len() as u8);
                r.extend_from_slice(n);
                *p
            }
        };
        r.extend_from_slice(&port.to_be_bytes());
        r
    }

    /// Bytes from the proxy.
    ///
    /// # Errors
    ///
    /// The proxy refused, or does not speak SOCKS.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<ClientStep, SocksError> {
        self.buf.extend_from_slice(bytes);
        loop {
            let b = &self.buf;
            match (self.version, self.state) {
                (_, CState::Done) => return Ok(ClientStep::Done(std::mem::take(&mut self.buf))),
                (Version::V4a, _) => {
                    if b.len() < 8 {
                        return Ok(ClientStep::NeedMore);
                    }
                    if b[0] != 0 {
                        return Err(err(SocksErrorKind::Protocol));
                    }
                    if b[1] != 0x5a {
                        return Err(err(SocksErrorKind::Refused(b[1])));
                    }
                    self.buf.drain(..8);
                    self.state = CState::Done;
                }
                (Version::V5, CState::Greeting) => {
                    if b.len() < 2 {
                        return Ok(ClientStep::NeedMore);
                    }
                    if b[0] != 5 {
                        return Err(err(SocksErrorKind::Protocol));
                    }
                    let m = b[1];
                    self.buf.drain(..2);
                    match (m, &self.auth) {
                        (0, _) => {
                            self.state = CState::Request;
                            return Ok(ClientStep::Send(self.request5()));
                        }
                        (2, Some((u, p))) => {
                            let (u, p) = (
                                &u.as_bytes()[..u.len().min(255)],
                                &p.as_bytes()[..p.len().min(255)],
                            );
                            let mut r = vec![1, u.len() as u8];
                            r.extend_from_slice(u);
                            r.push(p.len() as u8);
                            r.extend_from_slice(p);
                            self.state = CState::Login;
                            return Ok(ClientStep::Send(r));
                        }
                        _ => return Err(err(SocksErrorKind::NoAcceptableMethod)),
                    }
                }
                (Version::V5, CState::Login) => {
                    if b.len() < 2 {
                        return Ok(ClientStep::NeedMore);
                    }
                    if b[1] != 0 {
                        return Err(err(SocksErrorKind::AuthFailed));
                    }
                    self.buf.drain(..2);
                    self.state = CState::Request;
                    return Ok(ClientStep::Send(self.request5()));
                }
                (Version::V5, CState::Request) => {
                    if b.len() < 5 {
                        return Ok(ClientStep::NeedMore);
                    }
                    if b[0] != 5 {
                        return Err(err(SocksErrorKind::Protocol));
                    }
                    if b[1] != 0 {
                        return Err(err(SocksErrorKind::Refused(b[1])));
                    }
                    let len = match b[3] {
                        1 => 4 + 4 + 2,
                        4 => 4 + 16 + 2,
                        3 => 5 + b[4] as usize + 2,
                        _ => return Err(err(SocksErrorKind::Protocol)),
                    };
                    if b.len() < len {
                        return Ok(ClientStep::NeedMore);
                    }
                    self.buf.drain(..len);
                    self.state = CState::Done;
                }
            }
        }
    }
}

/// The layer that runs a [`ClientHandshake`] under a protocol.
struct SocksLayer {
    pass: PassThrough,
    hs: RefCell<ClientHandshake>,
    up: Cell<bool>,
    /// What the protocol wrote before the tunnel was up.
    pending: RefCell<Vec<u8>>,
    half_close: Cell<bool>,
}

impl SocksLayer {
    fn fail(&self, e: SocksError) {
        tracing::info!(error = %e, "SOCKS handshake failed");
        if let Some(l) = self.pass.lower() {
            l.abort_connection();
        }
        self.pass
            .deliver_lost(&CloseReason::with_error(CloseKind::Error, e.into_io()));
    }
}

impl TransportImpl for SocksLayer {
    fn write(&self, data: &[u8]) {
        if self.up.get() {
            self.pass.write(data)
        } else {
            self.pending.borrow_mut().extend_from_slice(data)
        }
    }
    fn lose_connection(&self) {
        self.pass.lose_connection()
    }
    fn abort_connection(&self) {
        self.pass.abort_connection()
    }
    fn lose_write_connection(&self) {
        if self.up.get() {
            self.pass.lose_write_connection()
        } else {
            self.half_close.set(true)
        }
    }
    fn peer_addr(&self) -> Address {
        self.pass.peer_addr()
    }
    fn local_addr(&self) -> Address {
        self.pass.local_addr()
    }
    fn pause_reading(&self) {
        self.pass.pause_reading()
    }
    fn resume_reading(&self) {
        self.pass.resume_reading()
    }
    fn register_producer(
        &self,
        p: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), AlreadyRegistered> {
        self.pass.register_producer(p, streaming)
    }
    fn unregister_producer(&self) {
        self.pass.unregister_producer()
    }
    fn set_write_watermarks(&self, low: usize, high: usize) {
        self.pass.set_write_watermarks(low, high)
    }
    fn write_buffer_len(&self) -> usize {
        self.pass.write_buffer_len() + self.pending.borrow().len()
    }
    fn is_closed(&self) -> bool {
        self.pass.is_closed()
    }
    fn is_disconnecting(&self) -> bool {
        self.pass.is_disconnecting()
    }
    fn reactor(&self) -> Option<Reactor> {
        self.pass.reactor()
    }
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.pass.set_nodelay(on)
    }
    fn find_layer(&self, id: TypeId) -> Option<Rc<dyn Any>> {
        self.pass.find_layer(id)
    }
    fn is_handshaking(&self) -> bool {
        !self.up.get()
    }
}

impl Layer for SocksLayer {
    fn start(&self, lower: Transport, upper: Transport) {
        let first = self.hs.borrow_mut().start();
        lower.write(&first);
        self.pass.start(lower, upper);
    }
    fn adopt_protocol(&self, protocol: Box<dyn Protocol>) {
        self.pass.adopt_protocol(protocol)
    }
    fn lower_data_received(&self, data: &[u8]) {
        if self.up.get() {
            self.pass.deliver(data);
            return;
        }
        let step = self.hs.borrow_mut().receive(data);
        match step {
            Err(e) => self.fail(e),
            Ok(ClientStep::NeedMore) => {}
            Ok(ClientStep::Send(b)) => {
                if let Some(l) = self.pass.lower() {
                    l.write(&b);
                }
            }
            Ok(ClientStep::Done(rest)) => {
                self.up.set(true);
                let pending = std::mem::take(&mut *self.pending.borrow_mut());
                if !pending.is_empty() {
                    self.pass.write(&pending);
                }
                if self.half_close.get() {
                    self.pass.lose_write_connection();
                }
                self.pass.call_protocol(|p, t| p.handshake_completed(t));
                if !rest.is_empty() {
                    self.pass.deliver(&rest);
                }
            }
        }
    }
    fn lower_read_eof(&self) {
        if self.up.get() {
            self.pass.deliver_eof();
        } else {
            self.fail(err(SocksErrorKind::Protocol));
        }
    }
    fn lower_connection_lost(&self, reason: &CloseReason) {
        self.pass.deliver_lost(reason)
    }
}

/// A client factory whose protocols run over a SOCKS handshake.
struct SocksFactory<F> {
    inner: F,
    version: Version,
    target: Target,
    auth: Option<(String, String)>,
}

impl<F: Factory> Factory for SocksFactory<F> {
    fn build_protocol(&mut self, addr: &Address) -> Option<Box<dyn Protocol>> {
        let p = self.inner.build_protocol(addr)?;
        let layer = Rc::new(SocksLayer {
            pass: PassThrough::default(),
            hs: RefCell::new(ClientHandshake::new(
                self.version,
                self.target.clone(),
                self.auth.clone(),
            )),
            up: Cell::new(false),
            pending: RefCell::default(),
            half_close: Cell::new(false),
        });
        Some(Box::new(Layered::new(layer, BoxedProtocol(p))))
    }
    fn start_factory(&mut self) {
        self.inner.start_factory()
    }
    fn stop_factory(&mut self) {
        self.inner.stop_factory()
    }
}

impl<F: ClientFactory> ClientFactory for SocksFactory<F> {
    fn started_connecting(&mut self, c: &Connector) {
        self.inner.started_connecting(c)
    }
    fn client_connection_failed(&mut self, c: &Connector, reason: &ConnectError) {
        self.inner.client_connection_failed(c, reason)
    }
    fn client_connection_lost(&mut self, c: &Connector, reason: &CloseReason) {
        self.inner.client_connection_lost(c, reason)
    }
}

struct BoxedProtocol(Box<dyn Protocol>);

impl Protocol for BoxedProtocol {
    fn connection_made(&mut self, t: &Transport) {
        self.0.connection_made(t)
    }
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        self.0.data_received(t, d)
    }
    fn read_eof(&mut self, t: &Transport) {
        self.0.read_eof(t)
    }
    fn connection_lost(&mut self, r: &CloseReason) {
        self.0.connection_lost(r)
    }
    fn handshake_completed(&mut self, t: &Transport) {
        self.0.handshake_completed(t)
    }
}

/// Connects to `target` through the SOCKS proxy at `proxy` (Twisted has
/// no SOCKS client: twisted#3514): `connect_tcp` for the proxy, with the
/// factory's protocol on top of the handshake. The protocol gets
/// `connection_made` at once (what it writes waits in the layer) and
/// `handshake_completed` once the tunnel is up; a refusal closes the
/// connection with a [`SocksError`] as its reason.
#[allow(clippy::too_many_arguments)]
pub fn connect_socks(
    reactor: &Reactor,
    proxy: SocketAddr,
    version: Version,
    target: Target,
    auth: Option<(String, String)>,
    factory: impl ClientFactory,
    timeout: Option<Duration>,
) -> Connector {
    reactor.connect_tcp(
        proxy,
        SocksFactory {
            inner: factory,
            version,
            target,
            auth,
        },
        timeout,
    )
}

/// An async stream to `target` through the proxy, once the tunnel is up.
///
/// # Errors
///
/// The connection to the proxy failed, or the proxy refused: an
/// `io::Error` of the matching kind (`ConnectionRefused`,
/// `HostUnreachable`, `PermissionDenied` for a refused login, ...) whose
/// text is the [`SocksError`]'s.
pub async fn connect_stream(
    reactor: &Reactor,
    proxy: SocketAddr,
    version: Version,
    target: Target,
    auth: Option<(String, String)>,
) -> io::Result<Stream> {
    let r = reactor.clone();
    let s = Stream::connect_with(move |f| {
        connect_socks(
            &r,
            proxy,
            version,
            target,
            auth,
            f,
            Some(Duration::from_secs(30)),
        );
    })
    .await?;
    s.handshake().await?;
    Ok(s)
}

/// Asks the proxy at the other end of `stream` (a plain connection, no
/// layer) for a tunnel to `target`, and returns once it is up. Nothing is
/// read past the proxy's reply: the protocol that follows must be one
/// whose client speaks first (HTTP, TLS), and a proxy that sends more is
/// refused.
///
/// # Errors
///
/// The connection failed, or the proxy refused (an `io::Error` whose inner
/// error is the [`SocksError`]), or it sent bytes after its reply.
pub async fn handshake_over(
    stream: &mut Stream,
    version: Version,
    target: Target,
    auth: Option<(String, String)>,
) -> io::Result<()> {
    use futures_util::{AsyncReadExt, AsyncWriteExt};
    let mut hs = ClientHandshake::new(version, target, auth);
    stream.write_all(&hs.start()).await?;
    let mut buf = [0u8; 512];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the SOCKS proxy closed the connection during the handshake",
            ));
        }
        match hs.receive(&buf[..n]).map_err(SocksError::into_io)? {
            ClientStep::NeedMore => {}
            ClientStep::Send(bytes) => stream.write_all(&bytes).await?,
            ClientStep::Done(rest) if rest.is_empty() => return Ok(()),
            ClientStep::Done(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the SOCKS proxy sent data before the client spoke",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socks::handshake::{Handshake, Step};

    /// The client handshake against the server handshake, byte by byte.
    fn against_server(
        version: Version,
        target: Target,
        auth: Option<(String, String)>,
        server_auth: bool,
    ) -> Result<Target, SocksError> {
        let mut c = ClientHandshake::new(version, target, auth);
        let mut s = Handshake::new(server_auth);
        let mut to_server = c.start();
        loop {
            let mut to_client = Vec::new();
            let sending = std::mem::take(&mut to_server);
            for b in sending {
                s.feed(&[b]);
                loop {
                    match s.step() {
                        Step::NeedMore => break,
                        Step::Reply(r) => to_client.extend(r),
                        Step::Auth { user, password } => {
                            let ok = (user.as_str(), password.as_str()) == ("u", "p");
                            match s.auth_done(ok) {
                                Step::Reply(r) | Step::Refuse(r, _) => to_client.extend(r),
                                _ => {}
                            }
                        }
                        Step::Refuse(r, _) => to_client.extend(r),
                        Step::Connect { target, .. } => {
                            to_client.extend(s.connect_reply(Ok("192.0.2.9:7".parse().unwrap())));
                            to_client.extend(b"early");
                            for b in to_client {
                                match c.receive(&[b])? {
                                    ClientStep::Done(rest) => {
                                        let mut rest = rest;
                                        // The rest arrives byte by byte too.
                                        while let Ok(ClientStep::Done(more)) = c.receive(&[]) {
                                            if more.is_empty() {
                                                break;
                                            }
                                            rest.extend(more);
                                        }
                                        assert!(b"early".starts_with(&rest));
                                        return Ok(target);
                                    }
                                    ClientStep::Send(b) => to_server.extend(b),
                                    ClientStep::NeedMore => {}
                                }
                            }
                            unreachable!("the client finished");
                        }
                    }
                }
            }
            if to_client.is_empty() {
                return Err(err(SocksErrorKind::Protocol));
            }
            for b in to_client {
                if let ClientStep::Send(x) = c.receive(&[b])? {
                    to_server.extend(x);
                }
            }
        }
    }

    #[test]
    fn the_client_talks_to_the_server_byte_by_byte() {
        let name = Target::Name("example.org".into(), 443);
        assert_eq!(
            against_server(Version::V5, name.clone(), None, false).unwrap(),
            name
        );
        let v6 = Target::Addr("[2001:db8::1]:80".parse().unwrap());
        assert_eq!(
            against_server(Version::V5, v6.clone(), None, false).unwrap(),
            v6
        );
        let auth = Some(("u".to_owned(), "p".to_owned()));
        assert_eq!(
            against_server(Version::V5, name.clone(), auth, true).unwrap(),
            name
        );
        let bad = Some(("u".to_owned(), "x".to_owned()));
        assert_eq!(
            against_server(Version::V5, name.clone(), bad, true)
                .unwrap_err()
                .kind(),
            &SocksErrorKind::AuthFailed
        );
        assert_eq!(
            against_server(Version::V5, name.clone(), None, true)
                .unwrap_err()
                .kind(),
            &SocksErrorKind::NoAcceptableMethod
        );
        assert_eq!(
            against_server(Version::V4a, name.clone(), None, false).unwrap(),
            name
        );
        let v4 = Target::Addr("192.0.2.1:25".parse().unwrap());
        assert_eq!(
            against_server(Version::V4a, v4.clone(), None, false).unwrap(),
            v4
        );
    }

    #[test]
    fn refusals_and_garbage_are_typed() {
        let mut c = ClientHandshake::new(Version::V5, Target::Name("x".into(), 1), None);
        c.start();
        assert!(matches!(c.receive(&[5, 0]), Ok(ClientStep::Send(_))));
        let e = c.receive(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(e.kind(), &SocksErrorKind::Refused(5));
        assert_eq!(e.clone().into_io().kind(), io::ErrorKind::ConnectionRefused);
        let mut c = ClientHandshake::new(Version::V5, Target::Name("x".into(), 1), None);
        c.start();
        assert_eq!(
            c.receive(b"HTTP/1.1 400").unwrap_err().kind(),
            &SocksErrorKind::Protocol
        );
    }
}
