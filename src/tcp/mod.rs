//! TCP: listening ports and outgoing connections (by address or host
//! name). The socket under a connection is `stream_socket`'s, shared with
//! Unix sockets; the accept loop is `listener`'s.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, Protocol as IpProto, Socket, Type};

use crate::listener::{start_listening, Listener};
use crate::protocol::Factory;
use crate::reactor::Reactor;
use crate::transport::Address;

pub use crate::connector::Connector;

/// A listening TCP port: Twisted's `IListeningPort`.
///
/// Dropping the handle leaves the port listening; call
/// [`stop_listening`](Self::stop_listening) to close it (the reactor's
/// shutdown closes it too).
#[derive(Clone)]
pub struct ListeningPort {
    pub(crate) inner: Rc<Listener>,
}

impl ListeningPort {
    /// The bound address: with port 0, the port the system picked.
    #[doc(alias = "getHost")]
    pub fn local_addr(&self) -> SocketAddr {
        self.inner
            .address()
            .socket_addr()
            .expect("a TCP port has an IP address")
    }

    /// Closes the port (connections already accepted stay open) and calls
    /// the factory's `stop_factory`. Idempotent.
    #[doc(alias = "stopListening")]
    pub fn stop_listening(&self) {
        self.inner.stop();
    }

    /// Whether the port is still listening.
    pub fn is_listening(&self) -> bool {
        self.inner.is_listening()
    }

    /// Stops accepting connections without closing the port: new ones
    /// wait in the kernel's accept queue (up to its backlog) until
    /// [`resume_accepting`](Self::resume_accepting). For a server that is
    /// bound but not ready to serve yet (a cluster still joining), or one
    /// shedding load.
    #[doc(alias = "stopReading")]
    pub fn pause_accepting(&self) {
        self.inner.hold(true);
    }

    /// Accepts connections again after
    /// [`pause_accepting`](Self::pause_accepting).
    #[doc(alias = "startReading")]
    pub fn resume_accepting(&self) {
        self.inner.hold(false);
    }
}

impl fmt::Debug for ListeningPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListeningPort")
            .field("addr", self.inner.address())
            .field("listening", &self.is_listening())
            .finish()
    }
}

/// How [`Reactor::listen_tcp_with`] makes its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpListenOptions {
    /// The accept queue's length (`listen(2)`'s backlog). 1024.
    pub backlog: i32,
    /// Share the port with other sockets that ask for it too, the kernel
    /// spreading new connections between them: `SO_REUSEPORT` on Linux,
    /// `SO_REUSEPORT_LB` on FreeBSD. What a reactor per core uses (see
    /// [`workers`](crate::workers)). Off.
    pub reuse_port: bool,
}

impl Default for TcpListenOptions {
    fn default() -> Self {
        TcpListenOptions {
            backlog: 1024,
            reuse_port: false,
        }
    }
}

impl TcpListenOptions {
    /// With the port shared (see [`reuse_port`](Self::reuse_port)).
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }
}

/// A bound TCP socket for `addr`, not yet listening.
pub(crate) fn bind_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(IpProto::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        crate::sys::set_reuse_port(&socket)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

pub(crate) fn listen(
    reactor: &Reactor,
    addr: SocketAddr,
    factory: Box<dyn Factory>,
    options: TcpListenOptions,
) -> io::Result<ListeningPort> {
    let socket = bind_socket(addr, options.reuse_port)?;
    socket.listen(options.backlog)?;
    adopt(reactor, socket, factory)
}

/// Serves a socket that must already be a listening TCP socket.
pub(crate) fn adopt_listening(
    reactor: &Reactor,
    socket: Socket,
    factory: Box<dyn Factory>,
) -> io::Result<ListeningPort> {
    let listening = crate::sys::is_listener(&socket).unwrap_or(false);
    let tcp = socket.local_addr()?.as_socket().is_some();
    if !(listening && tcp) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a listening TCP socket",
        ));
    }
    adopt(reactor, socket, factory)
}

fn adopt(
    reactor: &Reactor,
    socket: Socket,
    factory: Box<dyn Factory>,
) -> io::Result<ListeningPort> {
    socket.set_nonblocking(true)?;
    let bound = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP socket"))?;
    let inner = start_listening(reactor, socket, Address::Tcp(bound), None, factory)?;
    Ok(ListeningPort { inner })
}

impl Reactor {
    /// Listens for TCP connections on `addr`, building a protocol for each
    /// with `factory`. Port 0 picks a free port:
    /// [`ListeningPort::local_addr`] tells which.
    ///
    /// The accept loop survives running out of file descriptors: it keeps a
    /// spare descriptor to accept and close the waiting peer, and resumes
    /// serving once descriptors are free.
    ///
    /// # Errors
    ///
    /// The socket's error: address in use, permission denied, ...
    ///
    /// # Examples
    ///
    /// ```
    /// use braid::{Address, Protocol, Reactor, Transport};
    ///
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     fn data_received(&mut self, t: &Transport, data: &[u8]) {
    ///         t.write(data);
    ///     }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Echo)?;
    /// assert_ne!(port.local_addr().port(), 0);
    /// port.stop_listening();
    /// # std::io::Result::Ok(())
    /// ```
    #[doc(alias = "listenTCP")]
    pub fn listen_tcp(
        &self,
        addr: SocketAddr,
        factory: impl crate::Factory,
    ) -> io::Result<ListeningPort> {
        listen(self, addr, Box::new(factory), TcpListenOptions::default())
    }

    /// [`listen_tcp`](Self::listen_tcp) with a backlog of one's own, or
    /// the port shared between reactors ([`TcpListenOptions::reuse_port`]).
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn listen_tcp_with(
        &self,
        addr: SocketAddr,
        factory: impl crate::Factory,
        options: TcpListenOptions,
    ) -> io::Result<ListeningPort> {
        listen(self, addr, Box::new(factory), options)
    }

    /// Serves connections on a TCP socket that is already listening
    /// (Twisted's `adoptStreamPort`): one inherited from a parent process,
    /// passed by systemd ([`workers::listen_fds`](crate::workers::listen_fds)),
    /// or one socket shared by several reactors, each given its own
    /// duplicate (`OwnedFd::try_clone`). The descriptor is made
    /// non-blocking and is closed when the port stops.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if it is not a listening TCP socket.
    #[doc(alias = "adoptStreamPort")]
    #[cfg(unix)]
    pub fn adopt_stream_port(
        &self,
        fd: std::os::fd::OwnedFd,
        factory: impl crate::Factory,
    ) -> io::Result<ListeningPort> {
        adopt_listening(self, Socket::from(fd), Box::new(factory))
    }

    /// Serves connections on a TCP socket that is already listening
    /// (Twisted's `adoptStreamPort`): one inherited from a parent process,
    /// or one socket shared by several reactors, each given its own
    /// duplicate (`OwnedSocket::try_clone`). The socket is made
    /// non-blocking and is closed when the port stops.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if it is not a listening TCP socket.
    #[doc(alias = "adoptStreamPort")]
    #[cfg(windows)]
    pub fn adopt_stream_port(
        &self,
        socket: std::os::windows::io::OwnedSocket,
        factory: impl crate::Factory,
    ) -> io::Result<ListeningPort> {
        adopt_listening(self, Socket::from(socket), Box::new(factory))
    }

    /// Connects to `addr`; the factory builds the protocol once connected,
    /// or hears of the failure (refused, unreachable, or `timeout` passed).
    /// Failures are always reported from the reactor, never from inside
    /// this call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use braid::{Address, Protocol, Reactor, Transport};
    ///
    /// struct Hello;
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, t: &Transport) {
    ///         t.write(b"hello\n");
    ///     }
    ///     fn data_received(&mut self, _: &Transport, data: &[u8]) {
    ///         println!("{}", String::from_utf8_lossy(data));
    ///     }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// let connector = reactor.connect_tcp(
    ///     "127.0.0.1:7000".parse().unwrap(),
    ///     |_: &Address| Hello,
    ///     Some(Duration::from_secs(5)),
    /// );
    /// reactor.run()?;
    /// # std::io::Result::Ok(())
    /// ```
    #[doc(alias = "connectTCP")]
    pub fn connect_tcp(
        &self,
        addr: SocketAddr,
        factory: impl crate::ClientFactory,
        timeout: Option<Duration>,
    ) -> Connector {
        let c = Connector::new(self, Address::Tcp(addr), None, Box::new(factory), timeout);
        c.connect();
        c
    }

    /// Connects to `host:port` with Happy Eyeballs (RFC 8305).
    ///
    /// The name goes through the installed
    /// [`HostnameResolver`](crate::hostname::HostnameResolver) (by default
    /// getaddrinfo on the thread pool, so `/etc/hosts` and nsswitch apply;
    /// `braid-names` has a DNS resolver that asks for AAAA and A at once)
    /// and never blocks the reactor. Connecting starts as soon as addresses
    /// arrive: IPv6 ones at once, IPv4 ones after
    /// [`RESOLUTION_DELAY`](crate::hostname::RESOLUTION_DELAY) if the IPv6
    /// answer is still out. The addresses are tried alternating between the
    /// families, IPv6 first; a new attempt starts when the one before fails
    /// or after [`CONNECTION_ATTEMPT_DELAY`](crate::hostname::CONNECTION_ATTEMPT_DELAY)
    /// without an answer, the earlier ones going on; the first to connect
    /// wins and the others are abandoned. `timeout` applies to each
    /// attempt. The factory hears of failure only when every address failed
    /// (or the name did not resolve: `ConnectErrorKind::Unresolved`), with
    /// the last attempt's error. Each reconnect resolves the name again.
    pub fn connect_tcp_host(
        &self,
        host: &str,
        port: u16,
        factory: impl crate::ClientFactory,
        timeout: Option<Duration>,
    ) -> Connector {
        let placeholder = SocketAddr::from(([0, 0, 0, 0], port));
        let c = Connector::new(
            self,
            Address::Tcp(placeholder),
            Some((host.to_owned(), port)),
            Box::new(factory),
            timeout,
        );
        c.connect();
        c
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::testing::run_until;
    use crate::{Protocol, Transport};

    struct Quit(Rc<Cell<u32>>);
    impl Protocol for Quit {
        fn connection_made(&mut self, t: &Transport) {
            t.lose_connection();
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
        fn connection_lost(&mut self, _: &crate::CloseReason) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn closed_connections_and_attempts_leave_no_registration() {
        let reactor = Reactor::new().unwrap();
        let lost = Rc::new(Cell::new(0));
        let l = lost.clone();
        let port = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
                Quit(l.clone())
            })
            .unwrap();
        assert_eq!(reactor.source_count(), 1);
        let l = lost.clone();
        for _ in 0..50 {
            let l = l.clone();
            reactor.connect_tcp(port.local_addr(), move |_: &Address| Quit(l.clone()), None);
        }
        run_until(&reactor, Duration::from_secs(20), || lost.get() == 100).unwrap();
        assert_eq!(reactor.source_count(), 1, "only the listener is left");
        port.stop_listening();
        assert_eq!(reactor.source_count(), 0);
    }
}
