//! Datagrams: UDP (plain, connected, multicast) and Unix datagram sockets,
//! with one protocol trait (Twisted's `DatagramProtocol`).
//!
//! ```no_run
//! use braid::datagram::{DatagramPort, DatagramProtocol};
//! use braid::{Address, Reactor};
//!
//! struct Echo;
//! impl DatagramProtocol for Echo {
//!     fn datagram_received(&mut self, port: &DatagramPort, data: &[u8], from: &Address) {
//!         let _ = port.send_to(data, from);
//!     }
//! }
//!
//! let reactor = Reactor::new()?;
//! let port = reactor.listen_udp("127.0.0.1:9999".parse().unwrap(), Echo)?;
//! println!("UDP echo on {}", port.local_addr());
//! reactor.run()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! Sending never blocks and never queues: a datagram the socket buffer
//! cannot take fails with `WouldBlock`, and the caller decides (UDP may
//! drop anyway). Errors the network reports later (an ICMP "port
//! unreachable" for a connected socket) reach
//! [`DatagramProtocol::connection_refused`] or
//! [`DatagramProtocol::receive_error`]; they never close the port.

use crate::sys::AsSource;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::{Rc, Weak};

use socket2::{Domain, Protocol as IpProto, SockAddr, Socket, Type};

use crate::host::Budget;
use crate::panics::catch_panic;
use crate::reactor::{Reactor, Source, WeakReactor};
use crate::transport::Address;

/// Datagrams read per readiness event, before other sources get a turn.
const READS_PER_EVENT: usize = 64;

/// What a datagram port's user implements (Twisted's `DatagramProtocol`).
pub trait DatagramProtocol: 'static {
    /// The port is open (Twisted's `startProtocol`).
    #[doc(alias = "startProtocol")]
    fn start_protocol(&mut self, port: &DatagramPort) {
        let _ = port;
    }

    /// A datagram arrived from `from`.
    #[doc(alias = "datagramReceived")]
    fn datagram_received(&mut self, port: &DatagramPort, data: &[u8], from: &Address);

    /// A connected UDP port's peer refused a datagram (ICMP port
    /// unreachable). The port stays open.
    #[doc(alias = "connectionRefused")]
    fn connection_refused(&mut self, port: &DatagramPort) {
        let _ = port;
    }

    /// Another error reported by a receive (for example ICMP host
    /// unreachable on a connected port). The port stays open. The default
    /// logs it.
    fn receive_error(&mut self, port: &DatagramPort, error: &io::Error) {
        let _ = port;
        tracing::debug!(%error, "datagram receive error");
    }

    /// The port closed (Twisted's `stopProtocol`).
    #[doc(alias = "stopProtocol")]
    fn stop_protocol(&mut self) {}
}

struct Inner {
    me: Weak<Inner>,
    reactor: WeakReactor,
    socket: RefCell<Option<Socket>>,
    key: Cell<usize>,
    local: Address,
    connected: RefCell<Option<Address>>,
    protocol: RefCell<Option<Box<dyn DatagramProtocol>>>,
    paused: Cell<bool>,
}

/// An open datagram socket (Twisted's `udp.Port`): the transport a
/// [`DatagramProtocol`] sends with. Clone it freely; `stop_listening`
/// closes it.
#[derive(Clone)]
pub struct DatagramPort {
    inner: Rc<Inner>,
}

fn to_sockaddr(addr: &Address) -> io::Result<SockAddr> {
    match addr {
        Address::Tcp(a) => Ok(SockAddr::from(*a)),
        Address::Unix(Some(p)) => SockAddr::unix(p),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot send a datagram to {other}"),
        )),
    }
}

impl DatagramPort {
    fn with<R>(&self, f: impl FnOnce(&Socket) -> io::Result<R>) -> io::Result<R> {
        match &*self.inner.socket.borrow() {
            Some(s) => f(s),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Sends one datagram to `to` (an IP address for UDP, a path for Unix
    /// datagram sockets).
    ///
    /// # Errors
    ///
    /// `WouldBlock` when the socket buffer is full (nothing is queued), a
    /// message too long for the socket, or the OS's error.
    pub fn send_to(&self, data: &[u8], to: &Address) -> io::Result<()> {
        let to = to_sockaddr(to)?;
        let n = self.with(|s| s.send_to_with_flags(data, &to, crate::sys::SEND_FLAGS))?;
        check_whole(n, data.len())
    }

    /// Sends one datagram to the connected peer (Twisted's `write` on a
    /// connected port).
    ///
    /// # Errors
    ///
    /// `NotConnected` if [`connect`](Self::connect) was not called;
    /// `ConnectionRefused` if an earlier datagram was refused; as
    /// [`send_to`](Self::send_to) otherwise.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        if self.inner.connected.borrow().is_none() {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let n = self.with(|s| s.send_with_flags(data, crate::sys::SEND_FLAGS))?;
        check_whole(n, data.len())
    }

    /// Connects the port to one peer: only its datagrams are received, and
    /// refusals are reported (Twisted's `connect`).
    pub fn connect(&self, peer: &Address) -> io::Result<()> {
        let to = to_sockaddr(peer)?;
        self.with(|s| s.connect(&to))?;
        *self.inner.connected.borrow_mut() = Some(peer.clone());
        Ok(())
    }

    /// The connected peer, if any.
    pub fn peer(&self) -> Option<Address> {
        self.inner.connected.borrow().clone()
    }

    /// The local address (with the port the OS chose, for port 0).
    #[doc(alias = "getHost")]
    pub fn local_addr(&self) -> Address {
        self.inner.local.clone()
    }

    /// Joins an IPv4 multicast group on `interface` (unspecified: the
    /// default one), or an IPv6 group on interface index `0`.
    #[doc(alias = "joinGroup")]
    pub fn join_multicast(&self, group: IpAddr, interface: Option<Ipv4Addr>) -> io::Result<()> {
        match group {
            IpAddr::V4(g) => {
                self.with(|s| s.join_multicast_v4(&g, &interface.unwrap_or(Ipv4Addr::UNSPECIFIED)))
            }
            IpAddr::V6(g) => self.with(|s| s.join_multicast_v6(&g, 0)),
        }
    }

    /// Leaves a multicast group joined with
    /// [`join_multicast`](Self::join_multicast).
    #[doc(alias = "leaveGroup")]
    pub fn leave_multicast(&self, group: IpAddr, interface: Option<Ipv4Addr>) -> io::Result<()> {
        match group {
            IpAddr::V4(g) => {
                self.with(|s| s.leave_multicast_v4(&g, &interface.unwrap_or(Ipv4Addr::UNSPECIFIED)))
            }
            IpAddr::V6(g) => self.with(|s| s.leave_multicast_v6(&g, 0)),
        }
    }

    /// Whether this host's own multicast datagrams come back to it
    /// (default on).
    #[doc(alias = "setLoopbackMode")]
    pub fn set_multicast_loop(&self, on: bool) -> io::Result<()> {
        match self.inner.local.socket_addr() {
            Some(SocketAddr::V6(_)) => self.with(|s| s.set_multicast_loop_v6(on)),
            _ => self.with(|s| s.set_multicast_loop_v4(on)),
        }
    }

    /// The time-to-live of outgoing multicast datagrams (default 1).
    #[doc(alias = "setTTL")]
    pub fn set_multicast_ttl(&self, ttl: u32) -> io::Result<()> {
        match self.inner.local.socket_addr() {
            Some(SocketAddr::V6(_)) => self.with(|s| s.set_multicast_hops_v6(ttl)),
            _ => self.with(|s| s.set_multicast_ttl_v4(ttl)),
        }
    }

    /// The interface outgoing IPv4 multicast datagrams leave by (default:
    /// chosen by the routing table; `127.0.0.1` keeps them on this host).
    #[doc(alias = "setOutgoingInterface")]
    pub fn set_multicast_interface(&self, interface: Ipv4Addr) -> io::Result<()> {
        self.with(|s| s.set_multicast_if_v4(&interface))
    }

    /// Allows sending to broadcast addresses.
    #[doc(alias = "setBroadcastAllowed")]
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.with(|s| s.set_broadcast(on))
    }

    /// Stops reading datagrams (the kernel keeps, then drops, what comes).
    pub fn pause_reading(&self) {
        self.inner.set_reading(false);
    }

    /// Reads datagrams again.
    pub fn resume_reading(&self) {
        self.inner.set_reading(true);
    }

    /// Closes the socket and calls `stop_protocol`. A Unix datagram
    /// socket's file is removed.
    #[doc(alias = "stopListening")]
    pub fn stop_listening(&self) {
        self.inner.stop();
    }

    /// Whether the port is open.
    pub fn is_listening(&self) -> bool {
        self.inner.socket.borrow().is_some()
    }
}

fn check_whole(sent: usize, len: usize) -> io::Result<()> {
    if sent == len {
        Ok(())
    } else {
        Err(io::Error::other(format!("sent {sent} of {len} bytes")))
    }
}

impl fmt::Debug for DatagramPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramPort")
            .field("local", &self.inner.local)
            .field("connected", &*self.inner.connected.borrow())
            .field("listening", &self.is_listening())
            .finish()
    }
}

impl Inner {
    fn port(&self) -> Option<DatagramPort> {
        Some(DatagramPort {
            inner: self.me.upgrade()?,
        })
    }

    fn set_reading(&self, on: bool) {
        self.paused.set(!on);
        let Some(r) = self.reactor.upgrade() else {
            return;
        };
        if let Some(s) = &*self.socket.borrow() {
            if let Err(e) = r.modify_fd(s.source(), self.key.get(), on, false) {
                tracing::error!(error = %e, "cannot change datagram port interest");
            }
        }
    }

    /// Calls the protocol; a panic closes the port.
    fn call(&self, f: impl FnOnce(&mut dyn DatagramProtocol, &DatagramPort)) {
        let Some(port) = self.port() else { return };
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            tracing::warn!("datagram protocol re-entered; call skipped");
            return;
        };
        let Some(p) = slot.as_mut() else { return };
        let ok = catch_panic("datagram protocol", || f(&mut **p, &port));
        drop(slot);
        if ok.is_none() {
            self.stop();
        }
    }

    fn read_some(&self, reactor: &Reactor) {
        for _ in 0..READS_PER_EVENT {
            if self.paused.get() || self.protocol.try_borrow_mut().is_err() {
                return;
            }
            let mut buf = reactor.take_read_buf();
            let r = match &*self.socket.borrow() {
                // SAFETY of the cast: recv_from only writes initialised
                // bytes into the buffer, which is already initialised.
                Some(s) => s.recv_from(as_uninit(&mut buf)),
                None => {
                    reactor.put_read_buf(buf);
                    return;
                }
            };
            match r {
                Ok((n, from)) => {
                    let from = crate::sys::address_of(&from);
                    self.call(|p, port| p.datagram_received(port, &buf[..n], &from));
                    reactor.put_read_buf(buf);
                }
                Err(e) => {
                    reactor.put_read_buf(buf);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return,
                        io::ErrorKind::Interrupted => {}
                        _ if crate::sys::is_datagram_refusal(&e) => {
                            self.call(|p, port| p.connection_refused(port))
                        }
                        _ => self.call(|p, port| p.receive_error(port, &e)),
                    }
                }
            }
        }
    }

    fn stop(&self) {
        let socket = self.socket.borrow_mut().take();
        let Some(socket) = socket else { return };
        if let Some(r) = self.reactor.upgrade() {
            r.deregister_fd(socket.source(), self.key.get());
        }
        drop(socket);
        if let Address::Unix(Some(path)) = &self.local {
            let _ = std::fs::remove_file(path);
        }
        let protocol = self
            .protocol
            .try_borrow_mut()
            .ok()
            .and_then(|mut p| p.take());
        if let Some(mut p) = protocol {
            catch_panic("stop_protocol", || p.stop_protocol());
        }
    }
}

fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: u8 and MaybeUninit<u8> have the same layout, and the caller
    // only reads back bytes the kernel wrote.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}

impl Source for Inner {
    fn ready(&self, readable: bool, _writable: bool, _budget: &Budget) {
        if readable {
            if let Some(r) = self.reactor.upgrade() {
                self.read_some(&r);
            }
        }
    }

    fn shutdown(&self) {
        self.stop();
    }
}

fn open(
    reactor: &Reactor,
    socket: Socket,
    protocol: Box<dyn DatagramProtocol>,
) -> io::Result<DatagramPort> {
    socket.set_nonblocking(true)?;
    let local = crate::sys::address_of(&socket.local_addr()?);
    let fd = socket.raw_source();
    let inner = Rc::new_cyclic(|me| Inner {
        me: me.clone(),
        reactor: reactor.downgrade(),
        socket: RefCell::new(Some(socket)),
        key: Cell::new(usize::MAX),
        local,
        connected: RefCell::new(None),
        protocol: RefCell::new(Some(protocol)),
        paused: Cell::new(false),
    });
    let key = reactor.register_fd(fd, inner.clone(), true, false)?;
    inner.key.set(key);
    inner.call(|p, port| p.start_protocol(port));
    Ok(DatagramPort { inner })
}

fn udp_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(IpProto::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

impl Reactor {
    /// Opens a UDP port on `addr` (port 0 picks one; see
    /// [`DatagramPort::local_addr`]) for `protocol` (Twisted's
    /// `listenUDP`).
    #[doc(alias = "listenUDP")]
    pub fn listen_udp(
        &self,
        addr: SocketAddr,
        protocol: impl DatagramProtocol,
    ) -> io::Result<DatagramPort> {
        let socket = udp_socket(addr)?;
        socket.bind(&addr.into())?;
        open(self, socket, Box::new(protocol))
    }

    /// Opens a UDP port for multicast on `port` of every interface, shared
    /// with other sockets on the same port (`SO_REUSEADDR` and
    /// `SO_REUSEPORT`, Twisted's `listenMultiple`); then
    /// [`join_multicast`](DatagramPort::join_multicast) a group. The port
    /// receives the groups it joined only (on Linux, `IP_MULTICAST_ALL`
    /// off).
    #[doc(alias = "listenMulticast")]
    pub fn listen_multicast(
        &self,
        port: u16,
        ipv6: bool,
        protocol: impl DatagramProtocol,
    ) -> io::Result<DatagramPort> {
        let addr = if ipv6 {
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))
        } else {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
        };
        let socket = udp_socket(addr)?;
        crate::sys::share_datagram_port(&socket)?;
        // Only the groups this socket joined, not every group any socket
        // on the host joined (Linux's default for a wildcard bind).
        #[cfg(target_os = "linux")]
        if ipv6 {
            socket.set_multicast_all_v6(false)?;
        } else {
            socket.set_multicast_all_v4(false)?;
        }
        socket.bind(&addr.into())?;
        open(self, socket, Box::new(protocol))
    }

    /// Opens a Unix datagram socket bound to `path` (Twisted's
    /// `listenUNIXDatagram`). A stale file there is replaced; the file is
    /// removed when the port stops.
    #[doc(alias = "listenUNIXDatagram")]
    #[cfg(unix)]
    pub fn listen_unix_datagram(
        &self,
        path: impl AsRef<std::path::Path>,
        protocol: impl DatagramProtocol,
    ) -> io::Result<DatagramPort> {
        let path = path.as_ref();
        if let Ok(m) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !m.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let socket = Socket::new(Domain::UNIX, Type::DGRAM, None)?;
        socket.bind(&SockAddr::unix(path)?)?;
        open(self, socket, Box::new(protocol))
    }

    /// An unbound Unix datagram socket for sending (its datagrams arrive
    /// from an unnamed address, so they cannot be answered).
    #[cfg(unix)]
    pub fn unix_datagram_client(
        &self,
        protocol: impl DatagramProtocol,
    ) -> io::Result<DatagramPort> {
        let socket = Socket::new(Domain::UNIX, Type::DGRAM, None)?;
        open(self, socket, Box::new(protocol))
    }
}
