//! The socket under a stream connection: TCP or Unix, connected and
//! non-blocking, as the `Wire` a `Conn` reads and writes.

use crate::sys::AsSource;
use std::cell::RefCell;
use std::io::{self, IoSlice, Read};
use std::net::SocketAddr;
use std::rc::Rc;

use socket2::Socket;

use crate::conn::Wire;
use crate::reactor::{Reactor, Source};
use crate::sys;
use crate::transport::Address;

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
        let local = crate::sys::address_of(&socket.local_addr()?);
        let peer = crate::sys::address_of(&socket.peer_addr()?);
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
        let fd = self.with(|s| Ok(s.raw_source()))?;
        reactor.register_fd(fd, source, true, false)
    }

    fn set_interest(
        &self,
        reactor: &Reactor,
        key: usize,
        read: bool,
        write: bool,
    ) -> io::Result<()> {
        self.with(|s| reactor.modify_fd(s.source(), key, read, write))
    }

    fn close(&self, reactor: &Reactor, key: usize) {
        let socket = self.socket.borrow_mut().take();
        if let Some(s) = socket {
            reactor.deregister_fd(s.source(), key);
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

    fn recv_fds(&self, buf: &mut [u8], fds: &mut Vec<crate::fd::OwnedFd>) -> io::Result<usize> {
        self.with(|s| sys::recv_with_fds(s, buf, fds))
    }

    fn send_fds(
        &self,
        bufs: &[IoSlice<'_>],
        fds: &[crate::fd::BorrowedFd<'_>],
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

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use super::*;

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
