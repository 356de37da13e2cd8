//! # braid-tls
//!
//! TLS on rustls for braid: a layer over any braid transport (Twisted's
//! `TLSMemoryBIOProtocol`), so the same code secures TCP, Unix sockets and
//! the in-memory test transport.
//!
//! ```text
//!   protocol (plain text)          e.g. LineReceiver, hyper, PB
//!        ▲ │
//!   ┌────┴─▼─────┐
//!   │  TlsLayer  │  a braid::layer::Layer: rustls' state machine,
//!   └────▲─┬─────┘  handshake timer, close_notify, typed failures
//!        │ ▼ ciphertext
//!   any braid transport: TCP · Unix · in-memory · another layer
//! ```
//!
//! It is built only on braid's public API: the TLS session is a
//! [`braid::layer::Layer`], so it starts on a live connection with
//! [`Transport::start_layer`] and from the first byte with
//! [`braid::layer::Layered`], like any layer a third party could write.
//!
//! - [`TlsReactorExt::listen_tls`] and [`TlsReactorExt::connect_tls`] wrap
//!   every protocol a factory builds in a [`TlsProtocol`].
//! - [`TlsTransportExt::start_tls`] upgrades a running connection in place
//!   (STARTTLS): what was written before the call goes out in plain text
//!   first, and everything read after it goes through TLS.
//! - [`TlsProtocol::new`] with [`TlsStart::client`] or [`TlsStart::server`]
//!   wraps a protocol by hand, over any transport (for example
//!   [`connected_pair`](braid::testing::connected_pair)).
//!
//! The wrapped protocol sees plain text. Its `connection_made` is called at
//! once, as in Twisted; what it writes before the handshake is done is sent
//! when the handshake completes, and
//! [`Protocol::handshake_completed`]
//! tells it when that is (and [`TlsTransportExt::tls_info`] then gives the
//! negotiated ALPN protocol, version and peer certificates). A handshake
//! that fails, a peer that sends something that is not TLS, or a connection
//! cut without `close_notify` ends the connection with
//! [`CloseKind::Tls`], and
//! [`TlsCloseReasonExt::tls_error`] says why, as a [`TlsError`]. `lose_connection` sends `close_notify` before closing.
//!
//! Clients verify the server's certificate chain against the platform's
//! roots (or, if the platform has none, the Mozilla roots of
//! `webpki-roots`), and its name against the host name, unless told to trust
//! other roots.
//!
//! ```no_run
//! use braid_tls::{ClientConfig, TlsReactorExt};
//! use braid::{Address, Protocol, Reactor, Transport};
//!
//! struct Get;
//! impl Protocol for Get {
//!     fn connection_made(&mut self, t: &Transport) {
//!         t.write(b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n");
//!     }
//!     fn data_received(&mut self, _: &Transport, data: &[u8]) {
//!         print!("{}", String::from_utf8_lossy(data));
//!     }
//! }
//!
//! let reactor = Reactor::new()?;
//! reactor.connect_tls_host("example.com", 443, |_: &Address| Get, &ClientConfig::new(), None);
//! reactor.run()?;
//! # std::io::Result::Ok(())
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config;
mod layer;
#[cfg(feature = "testing")]
pub mod testing;

/// The extension traits, for `use braid_tls::prelude::*`.
pub mod prelude {
    pub use crate::{TlsCloseReasonExt, TlsReactorExt, TlsStreamExt, TlsTransportExt};
}

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub use config::{ClientConfig, ServerConfig};
use layer::TlsLayer;
pub use layer::TlsProtocol;
/// The rustls crate braid uses, for configurations built by hand.
pub use rustls;

use std::rc::Rc;

use braid::aio::Stream;
use braid::{
    Address, ClientFactory, CloseKind, CloseReason, ConnectError, Connector, Factory,
    ListeningPort, Protocol, Reactor, Transport,
};

/// Handshakes that take longer than this fail with
/// [`TlsErrorKind::TimedOut`], unless the configuration says otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What kind of TLS failure ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The peer's certificate is not valid for the name we asked for.
    NameMismatch,
    /// The peer's certificate has expired (or is not valid yet).
    Expired,
    /// The peer's certificate chain does not lead to a trusted root.
    UnknownIssuer,
    /// The peer's certificate was refused for another reason (revoked,
    /// wrong usage, malformed, missing when required).
    BadCertificate,
    /// The peer sent bytes that are not TLS (for example a plain-text
    /// client on a TLS port).
    NotTls,
    /// The peer sent an alert: it refused our certificate, our protocol
    /// version, or something else about us.
    PeerAlert,
    /// No ALPN protocol in common.
    NoApplicationProtocol,
    /// The connection closed before the handshake finished.
    HandshakeEof,
    /// The connection was cut without `close_notify` after the handshake,
    /// so the data may have been truncated by an attacker.
    Truncated,
    /// The handshake did not finish in time.
    TimedOut,
    /// A configuration problem: unreadable PEM, a key that does not match,
    /// an invalid server name.
    Config,
    /// `start_tls` on a transport that cannot be upgraded, or twice.
    Unsupported,
    /// Any other protocol violation.
    Protocol,
}

/// A TLS failure, with the rustls error behind it when there is one.
#[derive(Debug, Clone)]
pub struct TlsError {
    kind: TlsErrorKind,
    detail: String,
    source: Option<rustls::Error>,
}

impl TlsError {
    /// An error of `kind` described by `detail`.
    pub fn new(kind: TlsErrorKind, detail: impl Into<String>) -> Self {
        TlsError {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    /// Classifies a rustls error.
    pub fn from_rustls(e: rustls::Error) -> Self {
        use rustls::{CertificateError as C, Error as E};
        let kind = match &e {
            E::InvalidCertificate(c) => match c {
                C::NotValidForName | C::NotValidForNameContext { .. } => TlsErrorKind::NameMismatch,
                C::Expired | C::ExpiredContext { .. } | C::NotValidYet => TlsErrorKind::Expired,
                C::NotValidYetContext { .. } => TlsErrorKind::Expired,
                C::UnknownIssuer => TlsErrorKind::UnknownIssuer,
                _ => TlsErrorKind::BadCertificate,
            },
            E::NoCertificatesPresented => TlsErrorKind::BadCertificate,
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => TlsErrorKind::NotTls,
            E::AlertReceived(_) => TlsErrorKind::PeerAlert,
            E::NoApplicationProtocol => TlsErrorKind::NoApplicationProtocol,
            _ => TlsErrorKind::Protocol,
        };
        TlsError {
            kind,
            detail: e.to_string(),
            source: Some(e),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// The rustls error, when rustls reported it.
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        self.source.as_ref()
    }

    pub(crate) fn config(detail: impl Into<String>) -> Self {
        TlsError::new(TlsErrorKind::Config, detail)
    }

    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TlsErrorKind::NameMismatch => "certificate not valid for this name",
            TlsErrorKind::Expired => "certificate expired or not yet valid",
            TlsErrorKind::UnknownIssuer => "certificate from an unknown issuer",
            TlsErrorKind::BadCertificate => "certificate refused",
            TlsErrorKind::NotTls => "peer does not speak TLS",
            TlsErrorKind::PeerAlert => "peer refused the handshake",
            TlsErrorKind::NoApplicationProtocol => "no ALPN protocol in common",
            TlsErrorKind::HandshakeEof => "connection closed during the TLS handshake",
            TlsErrorKind::Truncated => "connection closed without close_notify",
            TlsErrorKind::TimedOut => "TLS handshake timed out",
            TlsErrorKind::Config => "TLS configuration error",
            TlsErrorKind::Unsupported => "TLS not available here",
            TlsErrorKind::Protocol => "TLS protocol error",
        };
        if self.detail.is_empty() {
            f.write_str(what)
        } else {
            write!(f, "{what} ({})", self.detail)
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// What a TLS session negotiated, from [`TlsTransportExt::tls_info`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The handshake has finished.
    pub handshake_complete: bool,
    /// The ALPN protocol both sides chose, if any.
    pub alpn_protocol: Option<Vec<u8>>,
    /// The TLS version, such as `TLSv1_3`, once negotiated.
    pub protocol_version: Option<rustls::ProtocolVersion>,
    /// The peer's certificate chain, leaf first (empty if it sent none).
    pub peer_certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The server name: the one we asked for (client) or the one the
    /// client sent in SNI (server).
    pub server_name: Option<String>,
    /// This side is the client.
    pub is_client: bool,
}

/// One side of a TLS session to start: for [`TlsTransportExt::start_tls`]
/// and [`TlsProtocol`].
#[derive(Clone, Debug)]
pub struct TlsStart {
    pub(crate) role: Role,
    pub(crate) received: Vec<u8>,
}

#[derive(Clone, Debug)]
pub(crate) enum Role {
    Client(std::sync::Arc<rustls::ClientConfig>, String, Duration),
    Server(std::sync::Arc<rustls::ServerConfig>, Duration),
}

impl TlsStart {
    /// The client side, checking the server's certificate against
    /// `server_name` (a host name or an IP address).
    pub fn client(config: &ClientConfig, server_name: &str) -> Result<TlsStart, TlsError> {
        Ok(TlsStart {
            role: Role::Client(config.build()?, server_name.to_owned(), config.timeout()),
            received: Vec::new(),
        })
    }

    /// The server side.
    pub fn server(config: &ServerConfig) -> Result<TlsStart, TlsError> {
        Ok(TlsStart {
            role: Role::Server(config.build()?, config.timeout()),
            received: Vec::new(),
        })
    }

    /// TLS bytes the protocol has already been given: what followed the
    /// command that started TLS in the same read (for example the peer's
    /// first handshake message, when the peer that answers the command is
    /// the one that starts the handshake). They are read before anything
    /// that arrives later. Plain text that an attacker may have injected
    /// after a STARTTLS command must not be passed here.
    pub fn already_received(mut self, bytes: &[u8]) -> TlsStart {
        self.received.extend_from_slice(bytes);
        self
    }
}

/// TLS's reading of why a connection ended.
pub trait TlsCloseReasonExt {
    /// The TLS failure that ended the connection, if that is what ended it.
    fn tls_error(&self) -> Option<&TlsError>;
}

impl TlsCloseReasonExt for CloseReason {
    fn tls_error(&self) -> Option<&TlsError> {
        self.io_error()?.get_ref()?.downcast_ref::<TlsError>()
    }
}

/// The close reason for a TLS failure.
fn close_reason(e: TlsError) -> CloseReason {
    CloseReason::with_error(CloseKind::Tls, e.into_io())
}

/// TLS on a live connection: STARTTLS, and what the session negotiated.
pub trait TlsTransportExt {
    /// Upgrades a running connection to TLS (STARTTLS; Twisted's
    /// `startTLS`), through [`Transport::start_layer`]. Everything written
    /// before the call is sent in plain text first; everything written
    /// after it, through this handle or any clone, is encrypted; every
    /// byte read after the current callback returns goes through TLS. The
    /// protocol stays the same and keeps this handle; it gets
    /// [`handshake_completed`](braid::Protocol::handshake_completed) when
    /// the handshake is done.
    ///
    /// Bytes the protocol has already received are its own: plain text
    /// that followed a STARTTLS command in the same read must be thrown
    /// away (RFC 3207, section 6: it may be an injection), while TLS bytes
    /// that did (the peer's first handshake message, when the peer that
    /// answers the command starts the handshake) are handed over with
    /// [`TlsStart::already_received`].
    ///
    /// # Errors
    ///
    /// [`TlsErrorKind::Unsupported`] if the transport cannot be upgraded,
    /// already speaks TLS, or is closing.
    #[doc(alias = "startTLS")]
    fn start_tls(&self, start: TlsStart) -> Result<(), TlsError>;

    /// What the TLS session under this connection negotiated, or `None`
    /// without TLS.
    fn tls_info(&self) -> Option<TlsInfo>;
}

impl TlsTransportExt for Transport {
    fn start_tls(&self, start: TlsStart) -> Result<(), TlsError> {
        if self.layer::<TlsLayer>().is_some() {
            return Err(TlsError::new(
                TlsErrorKind::Unsupported,
                "this connection already speaks TLS",
            ));
        }
        let layer: Rc<dyn braid::layer::Layer> = TlsLayer::new(Ok(start));
        self.start_layer(layer).map_err(|e| {
            let why = match e.kind() {
                io::ErrorKind::NotConnected => "the connection is closing".to_owned(),
                io::ErrorKind::Unsupported => "this transport cannot be upgraded".to_owned(),
                _ => e.to_string(),
            };
            TlsError::new(TlsErrorKind::Unsupported, why)
        })
    }

    fn tls_info(&self) -> Option<TlsInfo> {
        self.layer::<TlsLayer>().map(|l| l.info())
    }
}

/// `factory` with every connection it serves wrapped in TLS as a server:
/// for a listener made some other way than
/// [`listen_tls`](TlsReactorExt::listen_tls) (an adopted socket, a port
/// shared by workers, a Unix socket).
///
/// # Errors
///
/// The configuration's (as `InvalidData`).
///
/// ```no_run
/// use braid::{Address, Protocol, Reactor, Transport};
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn data_received(&mut self, t: &Transport, _: &[u8]) {
///         t.write(b"hello over TLS\n");
///     }
/// }
/// let reactor = Reactor::new()?;
/// let config = braid_tls::ServerConfig::from_pem_files("cert.pem", "key.pem")
///     .map_err(std::io::Error::other)?;
/// let tls = braid_tls::server_factory(|_: &Address| Hello, &config)?;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let port = reactor.adopt_stream_port(listener.into(), tls)?;
/// # let _ = port;
/// # std::io::Result::Ok(())
/// ```
pub fn server_factory(factory: impl Factory, config: &ServerConfig) -> io::Result<impl Factory> {
    let start = TlsStart::server(config).map_err(TlsError::into_io)?;
    Ok(TlsFactory {
        inner: factory,
        start: Ok(start),
        last: None,
    })
}

/// A factory whose protocols are wrapped in TLS.
struct TlsFactory<F> {
    inner: F,
    start: Result<TlsStart, TlsError>,
    /// The layer of the latest connection (a client has one at a time),
    /// so `client_connection_lost` can report its TLS failure. Held
    /// strongly (the connection drops its protocol before it tells the
    /// factory); a closed layer keeps no session state.
    last: Option<Rc<TlsLayer>>,
}

impl<F: Factory> Factory for TlsFactory<F> {
    fn build_protocol(&mut self, addr: &Address) -> Option<Box<dyn Protocol>> {
        let p = self.inner.build_protocol(addr)?;
        let tls = TlsProtocol::new(self.start.clone(), p);
        self.last = Some(tls.layer());
        Some(Box::new(tls))
    }
    fn start_factory(&mut self) {
        self.inner.start_factory()
    }
    fn stop_factory(&mut self) {
        self.inner.stop_factory()
    }
}

impl<F: ClientFactory> ClientFactory for TlsFactory<F> {
    fn started_connecting(&mut self, connector: &Connector) {
        self.inner.started_connecting(connector)
    }
    fn client_connection_failed(&mut self, connector: &Connector, reason: &ConnectError) {
        self.inner.client_connection_failed(connector, reason)
    }
    fn client_connection_lost(&mut self, connector: &Connector, reason: &CloseReason) {
        // The socket closed cleanly after the alert; what ended the
        // connection was the TLS failure, and that is what to report.
        let failure = self.last.take().and_then(|l| l.ended_with());
        match failure {
            Some(e) => self
                .inner
                .client_connection_lost(connector, &close_reason(e)),
            None => self.inner.client_connection_lost(connector, reason),
        }
    }
}

/// TLS listeners and connections on the reactor: Twisted's `listenSSL`
/// and `connectSSL`.
pub trait TlsReactorExt {
    /// Listens on TCP `addr`; every connection speaks TLS as the server
    /// described by `config` (Twisted's `listenSSL`).
    ///
    /// # Errors
    ///
    /// The socket's error, or the configuration's (as `InvalidData`).
    #[doc(alias = "listenSSL")]
    fn listen_tls(
        &self,
        addr: SocketAddr,
        factory: impl Factory,
        config: &ServerConfig,
    ) -> io::Result<ListeningPort>;

    /// Connects to `addr` over TCP and speaks TLS as a client, checking the
    /// server's certificate against `server_name` (Twisted's `connectSSL`).
    /// An invalid `server_name` or configuration fails the connection with
    /// [`TlsErrorKind::Config`].
    #[doc(alias = "connectSSL")]
    fn connect_tls(
        &self,
        addr: SocketAddr,
        server_name: &str,
        factory: impl ClientFactory,
        config: &ClientConfig,
        timeout: Option<Duration>,
    ) -> Connector;

    /// Resolves `host`, connects, and speaks TLS as a client checking the
    /// certificate against `host`.
    fn connect_tls_host(
        &self,
        host: &str,
        port: u16,
        factory: impl ClientFactory,
        config: &ClientConfig,
        timeout: Option<Duration>,
    ) -> Connector;
}

impl TlsReactorExt for Reactor {
    fn listen_tls(
        &self,
        addr: SocketAddr,
        factory: impl Factory,
        config: &ServerConfig,
    ) -> io::Result<ListeningPort> {
        self.listen_tcp(addr, server_factory(factory, config)?)
    }

    fn connect_tls(
        &self,
        addr: SocketAddr,
        server_name: &str,
        factory: impl ClientFactory,
        config: &ClientConfig,
        timeout: Option<Duration>,
    ) -> Connector {
        let factory = TlsFactory {
            inner: factory,
            start: TlsStart::client(config, server_name),
            last: None,
        };
        self.connect_tcp(addr, factory, timeout)
    }

    fn connect_tls_host(
        &self,
        host: &str,
        port: u16,
        factory: impl ClientFactory,
        config: &ClientConfig,
        timeout: Option<Duration>,
    ) -> Connector {
        let factory = TlsFactory {
            inner: factory,
            start: TlsStart::client(config, host),
            last: None,
        };
        self.connect_tcp_host(host, port, factory, timeout)
    }
}

/// Async TLS streams: [`braid::aio::Stream`] over a TLS client connection.
#[allow(async_fn_in_trait)] // the reactor is single-threaded: no Send futures
pub trait TlsStreamExt: Sized {
    /// Connects to `host:port` through TLS, checking the server's
    /// certificate against `host`. The stream is usable at once;
    /// [`Stream::handshake`] waits for the handshake.
    ///
    /// # Errors
    ///
    /// The connection attempt's error (TLS failures surface on first use).
    async fn connect_tls_host(
        reactor: &Reactor,
        host: &str,
        port: u16,
        config: &ClientConfig,
        timeout: Option<Duration>,
    ) -> io::Result<Self>;
}

impl TlsStreamExt for Stream {
    async fn connect_tls_host(
        reactor: &Reactor,
        host: &str,
        port: u16,
        config: &ClientConfig,
        timeout: Option<Duration>,
    ) -> io::Result<Stream> {
        let r = reactor.clone();
        let host = host.to_owned();
        let config = config.clone();
        Stream::connect_with(move |f| {
            r.connect_tls_host(&host, port, f, &config, timeout);
        })
        .await
    }
}
