//! TCP: listening ports, outgoing connections, and the socket under a TCP
//! connection.

pub(crate) mod listen;

use std::cell::RefCell;
use std::io::{self, IoSlice, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::time::Duration;

use socket2::Socket;

use crate::conn::Wire;
use crate::reactor::{Reactor, Source};
use crate::sys;
use crate::transport::Address;

pub use crate::connector::Connector;
pub(crate) use listen::listen;
pub use listen::ListeningPort;

/// A connected, non-blocking TCP socket.
/// A connected stream socket under a connection: TCP or Unix.
pub(crate) struct StreamWire {
    socket: RefCell<Option<Socket>>,
    addrs: Addrs,
}

/// The two ends' addresses: kept small for TCP (idle connections are
/// counted in bytes), boxed for the rarer Unix sockets.
enum Addrs {
    Tcp { local: SocketAddr, peer: SocketAddr },
    Other(Box<(Address, Address)>),
}

impl StreamWire {
    pub(crate) fn tcp(socket: Socket, peer: SocketAddr) -> io::Result<StreamWire> {
        // TCP_NODELAY on by default: protocols write whole messages and the
        // reactor already coalesces writes made in one dispatch.
        socket.set_tcp_nodelay(true)?;
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))?;
        Ok(StreamWire {
            socket: RefCell::new(Some(socket)),
            addrs: Addrs::Tcp { local, peer },
        })
    }

    pub(crate) fn unix(socket: Socket) -> io::Result<StreamWire> {
        let local = crate::unix::address_of(&socket.local_addr()?);
        let peer = crate::unix::address_of(&socket.peer_addr()?);
        Ok(StreamWire {
            socket: RefCell::new(Some(socket)),
            addrs: Addrs::Other(Box::new((local, peer))),
        })
    }

    fn is_tcp(&self) -> bool {
        matches!(self.addrs, Addrs::Tcp { .. })
    }

    fn with<R>(&self, f: impl FnOnce(&Socket) -> io::Result<R>) -> io::Result<R> {
        match &*self.socket.borrow() {
            Some(s) => f(s),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Wire for StreamWire {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.with(|mut s| s.read(buf))
    }

    fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.with(|s| s.send_vectored_with_flags(bufs, sys::SEND_FLAGS))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.with(|s| s.shutdown(std::net::Shutdown::Write))
    }

    fn register(&self, reactor: &Reactor, source: Rc<dyn Source>) -> io::Result<usize> {
        let fd = self.with(|s| Ok(s.as_raw_fd()))?;
        reactor.register_fd(fd, source, true, false)
    }

    fn set_interest(
        &self,
        reactor: &Reactor,
        key: usize,
        read: bool,
        write: bool,
    ) -> io::Result<()> {
        self.with(|s| reactor.modify_fd(s.as_fd(), key, read, write))
    }

    fn close(&self, reactor: &Reactor, key: usize) {
        let socket = self.socket.borrow_mut().take();
        if let Some(s) = socket {
            reactor.deregister_fd(s.as_fd(), key);
            drop(s);
        }
    }

    fn peer_addr(&self) -> Address {
        match &self.addrs {
            Addrs::Tcp { peer, .. } => Address::Tcp(*peer),
            Addrs::Other(a) => a.1.clone(),
        }
    }

    fn local_addr(&self) -> Address {
        match &self.addrs {
            Addrs::Tcp { local, .. } => Address::Tcp(*local),
            Addrs::Other(a) => a.0.clone(),
        }
    }

    fn passes_fds(&self) -> bool {
        !self.is_tcp()
    }

    fn recv_fds(&self, buf: &mut [u8], fds: &mut Vec<std::os::fd::OwnedFd>) -> io::Result<usize> {
        self.with(|s| sys::recv_with_fds(s, buf, fds))
    }

    fn send_fds(
        &self,
        bufs: &[IoSlice<'_>],
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> io::Result<usize> {
        self.with(|s| sys::send_with_fds(s, bufs, fds))
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        if !self.is_tcp() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        self.with(|s| s.set_tcp_nodelay(on))
    }
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
        listen(self, addr, Box::new(factory), 1024)
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

    /// Connects to `host:port`: the name is resolved on the thread pool
    /// (getaddrinfo, so `/etc/hosts` is honoured) and never blocks the
    /// reactor, then each address is tried in turn, `timeout` applying to
    /// each attempt. The factory hears of failure only when every address
    /// failed (or the name did not resolve: `ConnectErrorKind::Unresolved`).
    /// Each reconnect resolves the name again.
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

    /// Resolves `host:port` to socket addresses on the thread pool: the
    /// reactor thread never blocks on DNS. An IP literal resolves at once.
    pub fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> crate::Deferred<Vec<SocketAddr>, crate::Failure> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        {
            return crate::Deferred::succeed(vec![SocketAddr::new(ip, port)]);
        }
        let host = host.to_owned();
        self.defer_to_thread(move || {
            use std::net::ToSocketAddrs;
            (host.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
        })
        .add_callback_result(|r| r.map_err(crate::Failure::from))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::net::TcpStream;

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

    #[test]
    fn nodelay_is_on_by_default() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let peer = s.peer_addr().unwrap();
        let wire = StreamWire::tcp(Socket::from(s), peer).unwrap();
        let on = wire.with(|s| s.tcp_nodelay()).unwrap();
        assert!(on);
    }
}
