//! Protocols and the factories that build them.

use std::cell::RefCell;
use std::rc::Rc;

use crate::connector::Connector;
use crate::error::{CloseReason, ConnectError};
use crate::transport::{Address, Transport};

/// What happens on a connection: bytes in, writes out. Twisted's
/// `Protocol`.
///
/// A protocol never touches a socket or the clock: it reacts to what its
/// transport delivers, so the same code runs over TCP, TLS, in memory under
/// test, and under every host loop. Each callback gets the transport; keep a
/// clone to write from elsewhere (a GUI handler, a timer).
///
/// A panic in any callback is caught, logged, and ends this connection
/// only; `connection_lost` then follows with
/// [`CloseKind::Panicked`](crate::CloseKind::Panicked).
///
/// # Examples
///
/// ```
/// use braid::{Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, transport: &Transport, data: &[u8]) {
///         transport.write(data);
///     }
/// }
/// ```
pub trait Protocol: 'static {
    /// The connection is up.
    #[doc(alias = "connectionMade")]
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Bytes arrived. They come in pieces of any size, one byte or many
    /// messages at once: never assume a piece is a message.
    #[doc(alias = "dataReceived")]
    fn data_received(&mut self, transport: &Transport, data: &[u8]);

    /// The peer shut down its write side (half-close). The default closes
    /// the connection once pending writes are sent; override it to go on
    /// writing (Twisted's `IHalfCloseableProtocol.readConnectionLost`).
    #[doc(alias = "readConnectionLost")]
    fn read_eof(&mut self, transport: &Transport) {
        transport.lose_connection();
    }

    /// The connection is gone, for `reason`. Called exactly once per
    /// connection, whatever the order of closes on either side.
    #[doc(alias = "connectionLost")]
    fn connection_lost(&mut self, reason: &CloseReason) {
        let _ = reason;
    }

    /// The handshake of a layer under this protocol finished (Twisted's
    /// `IHandshakeListener.handshakeCompleted`): for TLS, the peer is
    /// verified, and `braid-tls`'s `tls_info` tells the ALPN protocol and
    /// the peer's certificates. Never called on a connection without such
    /// a layer.
    #[doc(alias = "handshakeCompleted")]
    fn handshake_completed(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// A file descriptor arrived over a Unix socket (Twisted's
    /// `IFileDescriptorReceiver.fileDescriptorReceived`), before the bytes
    /// it came with. The default closes it.
    #[doc(alias = "fileDescriptorReceived")]
    fn file_descriptor_received(&mut self, transport: &Transport, fd: crate::fd::OwnedFd) {
        let _ = (transport, fd);
    }
}

impl<P: Protocol + ?Sized> Protocol for Box<P> {
    fn connection_made(&mut self, t: &Transport) {
        (**self).connection_made(t)
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        (**self).data_received(t, data)
    }
    fn read_eof(&mut self, t: &Transport) {
        (**self).read_eof(t)
    }
    fn connection_lost(&mut self, reason: &CloseReason) {
        (**self).connection_lost(reason)
    }
    fn handshake_completed(&mut self, t: &Transport) {
        (**self).handshake_completed(t)
    }
    fn file_descriptor_received(&mut self, t: &Transport, fd: crate::fd::OwnedFd) {
        (**self).file_descriptor_received(t, fd)
    }
}

/// A protocol shared with the rest of the application: the connection holds
/// one clone, a GUI another (and calls its methods between dispatches).
impl<P: Protocol> Protocol for Rc<RefCell<P>> {
    fn connection_made(&mut self, t: &Transport) {
        self.borrow_mut().connection_made(t)
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.borrow_mut().data_received(t, data)
    }
    fn read_eof(&mut self, t: &Transport) {
        self.borrow_mut().read_eof(t)
    }
    fn connection_lost(&mut self, reason: &CloseReason) {
        self.borrow_mut().connection_lost(reason)
    }
    fn handshake_completed(&mut self, t: &Transport) {
        self.borrow_mut().handshake_completed(t)
    }
    fn file_descriptor_received(&mut self, t: &Transport, fd: crate::fd::OwnedFd) {
        self.borrow_mut().file_descriptor_received(t, fd)
    }
}

/// Builds a protocol for each connection. Twisted's `Factory`.
///
/// Any `FnMut(&Address) -> P` closure is a factory, which covers most
/// servers:
///
/// ```no_run
/// # use braid::{Protocol, Reactor, Transport};
/// # struct Echo;
/// # impl Protocol for Echo { fn data_received(&mut self, t: &Transport, d: &[u8]) { t.write(d) } }
/// let reactor = Reactor::new()?;
/// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_peer: &braid::Address| Echo)?;
/// println!("listening on {}", port.local_addr());
/// # std::io::Result::Ok(())
/// ```
pub trait Factory: 'static {
    /// A protocol for a connection with `addr`, or `None` to refuse it.
    #[doc(alias = "buildProtocol")]
    fn build_protocol(&mut self, addr: &Address) -> Option<Box<dyn Protocol>>;

    /// Called when a listener starts using this factory.
    #[doc(alias = "startFactory")]
    fn start_factory(&mut self) {}

    /// Called when that listener stops.
    #[doc(alias = "stopFactory")]
    fn stop_factory(&mut self) {}
}

impl<F, P> Factory for F
where
    F: FnMut(&Address) -> P + 'static,
    P: Protocol,
{
    fn build_protocol(&mut self, addr: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(self(addr)))
    }
}

/// A factory for outgoing connections, told how its attempts go. Twisted's
/// `ClientFactory`.
///
/// A closure factory is a client factory that ignores failures.
pub trait ClientFactory: Factory {
    /// An attempt started.
    #[doc(alias = "startedConnecting")]
    fn started_connecting(&mut self, connector: &Connector) {
        let _ = connector;
    }

    /// An attempt failed; `connector.connect()` tries again.
    #[doc(alias = "clientConnectionFailed")]
    fn client_connection_failed(&mut self, connector: &Connector, reason: &ConnectError) {
        let _ = (connector, reason);
    }

    /// An established connection was lost (after the protocol's
    /// `connection_lost`); `connector.connect()` reconnects.
    #[doc(alias = "clientConnectionLost")]
    fn client_connection_lost(&mut self, connector: &Connector, reason: &CloseReason) {
        let _ = (connector, reason);
    }
}

impl<F, P> ClientFactory for F
where
    F: FnMut(&Address) -> P + 'static,
    P: Protocol,
{
}
