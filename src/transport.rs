//! Transports: where a protocol's bytes go. Twisted's `ITransport`,
//! `IProducer` and `IConsumer`.

use std::any::{Any, TypeId};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

use crate::layer::Layer;
use crate::reactor::Reactor;

/// The address of one end of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// An IP endpoint: TCP, or UDP for datagram ports.
    Tcp(SocketAddr),
    /// A Unix socket path (`None` for an unnamed socket).
    Unix(Option<PathBuf>),
    /// An in-memory endpoint of the test doubles.
    Memory(String),
    /// A pipe to or from a child process: its pid and the child's
    /// descriptor (0 stdin, 1 stdout, 2 stderr).
    Process {
        /// The child's process id.
        pid: u32,
        /// The child's descriptor number.
        fd: u8,
    },
    /// This process's own stdin and stdout.
    Stdio,
}

impl Address {
    /// The socket address, for TCP.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Address::Tcp(a) => Some(*a),
            _ => None,
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Tcp(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Self {
        Address::Unix(Some(p))
    }
}

impl From<&std::path::Path> for Address {
    fn from(p: &std::path::Path) -> Self {
        Address::Unix(Some(p.to_path_buf()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "{a}"),
            Address::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Address::Unix(None) => f.write_str("unix:(unnamed)"),
            Address::Memory(n) => write!(f, "memory:{n}"),
            Address::Process { pid, fd } => write!(f, "process:{pid}:{fd}"),
            Address::Stdio => f.write_str("stdio"),
        }
    }
}

/// Something that writes into a transport and can be told to pause:
/// Twisted's `IProducer`/`IPushProducer`.
///
/// Registered with [`Transport::register_producer`]. A *streaming* (push)
/// producer writes whenever it likes and is paused when the transport's
/// write buffer rises above its high watermark, resumed when it falls
/// below the low one. A *pull* producer writes once each time it is resumed,
/// which happens whenever the buffer has drained.
///
/// The methods take `&self` because they are re-entrant, as in Twisted:
/// `pause_producing` is called from inside [`Transport::write`] when that
/// write crosses the high watermark, even while the producer is inside its
/// own `resume_producing`. So a producer that writes in a loop
/// (`while !self.paused.get() { t.write(..) }`) sees the pause at once and
/// memory stays bounded. Keep state in `Cell`s; a `RefCell` borrow must not
/// be held across a write.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use braid::{Producer, Transport};
///
/// struct Counter { t: Transport, paused: Cell<bool>, n: Cell<u64> }
///
/// impl Producer for Counter {
///     fn pause_producing(&self) { self.paused.set(true) }
///     fn resume_producing(&self) {
///         self.paused.set(false);
///         while !self.paused.get() && self.n.get() < 1_000_000 {
///             self.n.set(self.n.get() + 1);
///             self.t.write(format!("{}\n", self.n.get()).as_bytes());
///         }
///     }
///     fn stop_producing(&self) { self.paused.set(true) }
/// }
/// ```
pub trait Producer {
    /// Stop writing for now.
    #[doc(alias = "pauseProducing")]
    fn pause_producing(&self);
    /// Writing may go on (for a pull producer: write the next piece).
    #[doc(alias = "resumeProducing")]
    fn resume_producing(&self);
    /// The consumer is gone: stop for good.
    #[doc(alias = "stopProducing")]
    fn stop_producing(&self);
}

/// The implementation side of a transport: TCP, in-memory, a layer over
/// another transport, or one of your own (an SSH channel, a tunnel). Protocols never see it; they hold
/// a [`Transport`].
///
/// Every method must be safe to call from inside a protocol callback and
/// must never call the protocol back synchronously:
/// `connection_lost` is delivered later, from the reactor.
pub trait TransportImpl {
    /// Queue bytes; never blocks.
    fn write(&self, data: &[u8]);
    /// Queue several pieces, as one vectored write where possible.
    fn write_sequence(&self, data: &[&[u8]]) {
        for d in data {
            self.write(d);
        }
    }
    /// Send what is buffered, then close.
    fn lose_connection(&self);
    /// Close now, discarding what is buffered.
    fn abort_connection(&self);
    /// Send what is buffered, then shut the write side down (half-close).
    fn lose_write_connection(&self);
    /// The peer's address.
    fn peer_addr(&self) -> Address;
    /// This end's address.
    fn local_addr(&self) -> Address;
    /// Stop delivering received data until resumed.
    fn pause_reading(&self);
    /// Deliver received data again.
    fn resume_reading(&self);
    /// See [`Transport::register_producer`].
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), AlreadyRegistered>;
    /// See [`Transport::unregister_producer`].
    fn unregister_producer(&self);
    /// See [`Transport::set_write_watermarks`].
    fn set_write_watermarks(&self, low: usize, high: usize);
    /// Bytes written but not yet sent.
    fn write_buffer_len(&self) -> usize;
    /// True once the connection is closed.
    fn is_closed(&self) -> bool;
    /// True once `lose_connection` was called or the connection closed.
    fn is_disconnecting(&self) -> bool;
    /// The reactor that drives this transport, if any.
    fn reactor(&self) -> Option<Reactor>;
    /// Sets `TCP_NODELAY` (on by default for TCP).
    ///
    /// # Errors
    ///
    /// `Unsupported` for transports that are not TCP.
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let _ = on;
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Queues a duplicate of `fd` to travel with the next byte written.
    /// The default refuses with `Unsupported`.
    fn send_file_descriptor(&self, fd: crate::fd::BorrowedFd<'_>) -> io::Result<()> {
        let _ = fd;
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Puts `layer` between this connection's wire and its protocol, in
    /// place (see [`Transport::start_layer`]). The default refuses with
    /// `Unsupported`.
    fn start_layer(&self, layer: Rc<dyn Layer>) -> io::Result<()> {
        let _ = layer;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this transport cannot take a layer",
        ))
    }

    /// The layer of type `id` running on (or being) this transport, for
    /// [`Transport::layer`]. A layer answers for its own type and asks the
    /// transport below for any other. The default: none.
    fn find_layer(&self, id: TypeId) -> Option<Rc<dyn Any>> {
        let _ = id;
        None
    }

    /// A layer's handshake is under way: `Protocol::handshake_completed`
    /// follows when it is done. The default: false.
    fn is_handshaking(&self) -> bool {
        false
    }

    /// A layer secures the connection (encryption and the peer's identity
    /// checked as its configuration asks: TLS after its handshake, an SSH
    /// channel). The default: false.
    fn is_secure(&self) -> bool {
        false
    }
}

/// A connection's transport, as its protocol and the rest of the
/// application see it: a cheap, clonable handle (`!Send`).
///
/// GUI code can keep a clone and write from a button handler; writes from
/// outside a dispatch are sent at once, writes inside one are coalesced and
/// sent at its end. Writes after the connection closed are dropped, as in
/// Twisted.
#[derive(Clone)]
pub struct Transport(Rc<dyn TransportImpl>);

impl Transport {
    /// Wraps a transport implementation.
    pub fn new(imp: Rc<dyn TransportImpl>) -> Self {
        Transport(imp)
    }

    /// Queues `data` for sending. Never blocks and never raises `SIGPIPE`.
    pub fn write(&self, data: &[u8]) {
        self.0.write(data)
    }

    /// Queues several pieces at once.
    #[doc(alias = "writeSequence")]
    pub fn write_sequence(&self, data: &[&[u8]]) {
        self.0.write_sequence(data)
    }

    /// Sends what is buffered, then closes. `connection_lost` follows with
    /// a clean reason.
    #[doc(alias = "loseConnection")]
    pub fn lose_connection(&self) {
        self.0.lose_connection()
    }

    /// Closes now, discarding unsent data. `connection_lost` follows with
    /// [`CloseKind::Aborted`](crate::CloseKind::Aborted).
    #[doc(alias = "abortConnection")]
    pub fn abort_connection(&self) {
        self.0.abort_connection()
    }

    /// Sends what is buffered, then shuts down the write side; the peer
    /// sees end-of-file and may keep sending.
    #[doc(alias = "loseWriteConnection")]
    pub fn lose_write_connection(&self) {
        self.0.lose_write_connection()
    }

    /// The peer's address.
    #[doc(alias = "getPeer")]
    pub fn peer_addr(&self) -> Address {
        self.0.peer_addr()
    }

    /// This end's address.
    #[doc(alias = "getHost")]
    pub fn local_addr(&self) -> Address {
        self.0.local_addr()
    }

    /// Stops reading from the peer until [`resume_reading`](Self::resume_reading).
    #[doc(alias = "pauseProducing")]
    pub fn pause_reading(&self) {
        self.0.pause_reading()
    }

    /// Reads from the peer again.
    #[doc(alias = "resumeProducing")]
    pub fn resume_reading(&self) {
        self.0.resume_reading()
    }

    /// Registers the producer that feeds this transport (Twisted's
    /// `registerProducer`). See [`Producer`] for streaming versus pull.
    ///
    /// # Errors
    ///
    /// Gives the producer back ([`AlreadyRegistered::into_producer`]) if
    /// another one is registered or the connection is closed.
    #[doc(alias = "registerProducer")]
    pub fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), AlreadyRegistered> {
        self.0.register_producer(producer, streaming)
    }

    /// Forgets the registered producer, without stopping it.
    #[doc(alias = "unregisterProducer")]
    pub fn unregister_producer(&self) {
        self.0.unregister_producer()
    }

    /// Sets the write buffer's watermarks: a streaming producer is paused
    /// at `high` bytes or more and resumed at `low` or fewer. Defaults: 16
    /// KiB and 64 KiB.
    pub fn set_write_watermarks(&self, low: usize, high: usize) {
        self.0.set_write_watermarks(low, high)
    }

    /// Bytes written but not yet sent.
    pub fn write_buffer_len(&self) -> usize {
        self.0.write_buffer_len()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Whether `lose_connection` was called or the connection closed.
    pub fn is_disconnecting(&self) -> bool {
        self.0.is_disconnecting()
    }

    /// The reactor driving this transport, for timers (`call_later`).
    pub fn reactor(&self) -> Option<Reactor> {
        self.0.reactor()
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// `Unsupported` on transports that are not TCP, or the socket's error.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.0.set_nodelay(on)
    }

    /// Passes a file descriptor to the peer over a Unix socket
    /// (`SCM_RIGHTS`; Twisted's `sendFileDescriptor`). A duplicate of `fd`
    /// is queued and travels with the next byte written after this call,
    /// so write at least one byte after it; the peer's protocol gets it in
    /// [`file_descriptor_received`](crate::Protocol::file_descriptor_received)
    /// just before the `data_received` that holds that byte (which may
    /// also hold plain bytes written before it, never another descriptor's
    /// byte).
    ///
    /// # Errors
    ///
    /// `Unsupported` on transports other than Unix sockets; `NotConnected`
    /// once closing; the error of duplicating `fd`.
    #[doc(alias = "sendFileDescriptor")]
    pub fn send_file_descriptor(&self, fd: crate::fd::BorrowedFd<'_>) -> io::Result<()> {
        self.0.send_file_descriptor(fd)
    }

    /// Puts `layer` between this connection's wire and its protocol, in
    /// place: the way STARTTLS is done (`braid-tls` builds its `start_tls`
    /// on it). Everything written before the call goes to the wire as it
    /// was; everything written after it, through this handle or any clone,
    /// goes through the layer; every byte read after the current callback
    /// returns goes to the layer. The protocol stays the same and keeps this
    /// handle: when called from inside one of its callbacks, it is handed to
    /// the layer as soon as that callback returns. See [`crate::layer`].
    ///
    /// # Errors
    ///
    /// `Unsupported` if the transport cannot take a layer, `AlreadyExists`
    /// if a layer runs on it already, `NotConnected` once closing.
    pub fn start_layer(&self, layer: Rc<dyn Layer>) -> io::Result<()> {
        self.0.start_layer(layer)
    }

    /// The layer of type `L` on this connection (the nearest one, when
    /// layers are stacked), for the information it offers.
    pub fn layer<L: Any>(&self) -> Option<Rc<L>> {
        self.0.find_layer(TypeId::of::<L>())?.downcast::<L>().ok()
    }

    /// [`layer`](Self::layer) by type id, for layers that ask the
    /// transport below them.
    pub fn find_layer_by_id(&self, id: TypeId) -> Option<Rc<dyn Any>> {
        self.0.find_layer(id)
    }

    /// A layer's handshake (TLS, say) is under way;
    /// [`Protocol::handshake_completed`](crate::Protocol::handshake_completed)
    /// follows when it is done.
    pub fn is_handshaking(&self) -> bool {
        self.0.is_handshaking()
    }

    /// A layer secures this connection (TLS after its handshake, an SSH
    /// channel): what a protocol checks before it accepts a password in
    /// clear.
    pub fn is_secure(&self) -> bool {
        self.0.is_secure()
    }

    /// Whether two handles are the same transport.
    pub fn ptr_eq(&self, other: &Transport) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("peer", &self.peer_addr())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A transport is itself a producer of received data: registering one
/// transport as the producer of another (a proxy) pauses reading from the
/// first while the second's write buffer is full; registering a transport
/// as its own producer makes an echo that stops reading from a peer that
/// does not read.
///
/// ```no_run
/// use std::rc::Rc;
/// use braid::{Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn connection_made(&mut self, t: &Transport) {
///         t.register_producer(Rc::new(t.clone()), true).unwrap();
///     }
///     fn data_received(&mut self, t: &Transport, data: &[u8]) {
///         t.write(data);
///     }
/// }
/// ```
impl Producer for Transport {
    fn pause_producing(&self) {
        self.pause_reading()
    }
    fn resume_producing(&self) {
        self.resume_reading()
    }
    fn stop_producing(&self) {
        self.lose_connection()
    }
}

/// A transport's reading as the producer another transport's writes push
/// back on, without the close: pausing and resuming it pause and resume
/// reading (as [`Transport`]'s own producer does), but the consumer
/// stopping leaves the connection open, for the relay's own protocol to
/// close when it decides (a proxy whose other side went away still sends
/// what it buffered, an SSH channel whose TCP peer closed still reports
/// its exit).
///
/// ```
/// use std::rc::Rc;
/// use braid::testing::StringTransport;
/// use braid::{PauseReading, Producer};
///
/// let inbound = StringTransport::new();
/// let outbound = StringTransport::new();
/// // What `outbound` cannot take yet stops reading from `inbound`.
/// let reading = Rc::new(PauseReading(inbound.transport()));
/// outbound.transport().register_producer(reading.clone(), true).unwrap();
/// reading.pause_producing();
/// assert!(inbound.is_reading_paused());
/// reading.resume_producing();
/// assert!(!inbound.is_reading_paused());
/// // The consumer stopping leaves the connection open.
/// reading.stop_producing();
/// assert!(!inbound.is_disconnecting() && !inbound.is_aborted());
/// ```
#[derive(Clone, Debug)]
pub struct PauseReading(pub Transport);

impl Producer for PauseReading {
    fn pause_producing(&self) {
        self.0.pause_reading();
    }
    fn resume_producing(&self) {
        self.0.resume_reading();
    }
    fn stop_producing(&self) {}
}

/// [`Transport::register_producer`] refused: a producer is already
/// registered, or the connection is closed. Carries the producer back.
///
/// ```
/// use std::rc::Rc;
/// use braid::testing::StringTransport;
/// use braid::Producer;
///
/// struct Idle;
/// impl Producer for Idle {
///     fn pause_producing(&self) {}
///     fn resume_producing(&self) {}
///     fn stop_producing(&self) {}
/// }
///
/// let t = StringTransport::new();
/// t.transport().register_producer(Rc::new(Idle), true).unwrap();
/// let second: Rc<dyn Producer> = Rc::new(Idle);
/// let refused = t.transport().register_producer(second.clone(), true).unwrap_err();
/// assert!(Rc::ptr_eq(&refused.into_producer(), &second));
/// ```
pub struct AlreadyRegistered(Rc<dyn Producer>);

impl AlreadyRegistered {
    /// The refusal of `producer`.
    pub fn new(producer: Rc<dyn Producer>) -> Self {
        AlreadyRegistered(producer)
    }

    /// The producer that was refused.
    pub fn into_producer(self) -> Rc<dyn Producer> {
        self.0
    }
}

impl fmt::Debug for AlreadyRegistered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AlreadyRegistered")
    }
}

impl fmt::Display for AlreadyRegistered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a producer is already registered (or the connection is closed)")
    }
}

impl std::error::Error for AlreadyRegistered {}
