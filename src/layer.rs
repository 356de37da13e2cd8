//! Layers: something that sits between a connection's wire and its
//! protocol. TLS is one (`braid-tls`); a SOCKS or STARTTLS handshake, a
//! compression layer or an SSH transport are others.
//!
//! ```text
//!        protocol            (unchanged: it keeps its Transport handle)
//!           ▲ │  data_received / write
//!     ┌─────┴─▼─────┐
//!     │    Layer    │        TransportImpl to the protocol above,
//!     │             │        lower_* events from the transport below
//!     └─────▲─┬─────┘
//!           │ ▼  lower: Transport (writes go to the wire)
//!        the wire            (TCP, Unix, in-memory, another layer, ...)
//! ```
//!
//! A layer is put on a connection in one of two ways:
//!
//! - **On a live connection**, with [`Transport::start_layer`]: everything
//!   written before the call goes to the wire as it was; everything written
//!   after it, through the protocol's handle or any clone of it, goes
//!   through the layer; every byte read after the current callback returns
//!   goes to the layer. No byte is lost or reordered. Called from inside a
//!   protocol callback, the protocol is handed to the layer as soon as that
//!   callback returns. This is how STARTTLS works.
//! - **From the first byte**, with [`Layered`]: a protocol that puts a layer
//!   under another protocol on whatever transport it is given (Twisted's
//!   `TLSMemoryBIOProtocol` is built this way).
//!
//! A layer can be found again through any handle above it with
//! [`Transport::layer`], for the information it offers (TLS: the peer's
//! certificates, the ALPN protocol).
//!
//! # Examples
//!
//! A layer that upper-cases everything the protocol above receives, started
//! in the middle of a connection:
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use braid::layer::{Layer, PassThrough};
//! use braid::testing::connected_pair;
//! use braid::{CloseReason, Protocol, Reactor, Transport};
//!
//! #[derive(Default)]
//! struct Shout(PassThrough);
//!
//! // What the protocol above writes goes down unchanged.
//! impl braid::TransportImpl for Shout {
//!     fn write(&self, data: &[u8]) { self.0.write(data) }
//! #   fn lose_connection(&self) { self.0.lose_connection() }
//! #   fn abort_connection(&self) { self.0.abort_connection() }
//! #   fn lose_write_connection(&self) { self.0.lose_write_connection() }
//! #   fn peer_addr(&self) -> braid::Address { self.0.peer_addr() }
//! #   fn local_addr(&self) -> braid::Address { self.0.local_addr() }
//! #   fn pause_reading(&self) { self.0.pause_reading() }
//! #   fn resume_reading(&self) { self.0.resume_reading() }
//! #   fn register_producer(&self, p: Rc<dyn braid::Producer>, s: bool) -> Result<(), braid::AlreadyRegistered> { self.0.register_producer(p, s) }
//! #   fn unregister_producer(&self) { self.0.unregister_producer() }
//! #   fn set_write_watermarks(&self, l: usize, h: usize) { self.0.set_write_watermarks(l, h) }
//! #   fn write_buffer_len(&self) -> usize { self.0.write_buffer_len() }
//! #   fn is_closed(&self) -> bool { self.0.is_closed() }
//! #   fn is_disconnecting(&self) -> bool { self.0.is_disconnecting() }
//! #   fn reactor(&self) -> Option<Reactor> { self.0.reactor() }
//!     // ... and the other methods, each handed to `self.0` the same way.
//! }
//! impl Layer for Shout {
//!     fn start(&self, lower: Transport, upper: Transport) { self.0.start(lower, upper) }
//!     fn adopt_protocol(&self, p: Box<dyn Protocol>) { self.0.adopt_protocol(p) }
//!     fn lower_data_received(&self, data: &[u8]) {
//!         self.0.deliver(&data.to_ascii_uppercase());
//!     }
//!     fn lower_read_eof(&self) { self.0.deliver_eof(); }
//!     fn lower_connection_lost(&self, reason: &CloseReason) { self.0.deliver_lost(reason) }
//! }
//!
//! #[derive(Default)]
//! struct Heard(Vec<u8>);
//! impl Protocol for Heard {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) {
//!         self.0.extend_from_slice(data);
//!         if data.ends_with(b"start\n") {
//!             t.start_layer(Rc::new(Shout::default())).unwrap();
//!         }
//!     }
//! }
//! struct Talk;
//! impl Protocol for Talk {
//!     fn connection_made(&mut self, t: &Transport) { t.write(b"start\n") }
//!     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
//! }
//!
//! let reactor = Reactor::new()?;
//! let heard = Rc::new(RefCell::new(Heard::default()));
//! let pair = connected_pair(&reactor, heard.clone(), Talk);
//! pair.pump(); // "start\n" arrives: the layer starts after that callback
//! pair.client().write(b"quiet words");
//! pair.pump();
//! assert_eq!(heard.borrow().0, b"start\nQUIET WORDS");
//! # std::io::Result::Ok(())
//! ```

use crate::fd::{BorrowedFd, OwnedFd};
use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;

use crate::error::CloseReason;
use crate::protocol::Protocol;
use crate::reactor::Reactor;
use crate::transport::{Address, AlreadyRegistered, Producer, Transport, TransportImpl};

/// A layer between a connection's wire and its protocol.
///
/// To the protocol above, a layer is its transport ([`TransportImpl`]:
/// what it writes goes through the layer). From the transport below, it
/// receives what a protocol would (the `lower_*` methods). See the
/// [module docs](self) for how a layer is started and an example.
///
/// Like every [`TransportImpl`], a layer must never call the protocol above
/// back synchronously from one of the protocol's own calls into it; events
/// for the protocol above come from the `lower_*` methods, or from the
/// reactor (`call_soon`).
pub trait Layer: TransportImpl {
    /// The layer goes to work: `lower` carries what it writes to the wire,
    /// `upper` is the handle the protocol above holds (so the layer can
    /// pass it to the protocol's callbacks). Called once, before any
    /// `lower_*` call; a layer sends its first bytes (a handshake's first
    /// flight) and arms its timers here.
    fn start(&self, lower: Transport, upper: Transport);

    /// Takes the protocol above. Called once, before or after
    /// [`start`](Self::start): on a live connection the protocol may be
    /// inside one of its callbacks when the layer starts, and is handed
    /// over when that callback returns.
    fn adopt_protocol(&self, protocol: Box<dyn Protocol>);

    /// Bytes from the transport below.
    fn lower_data_received(&self, data: &[u8]);

    /// The transport below reached end of file.
    fn lower_read_eof(&self);

    /// The transport below closed; the layer tells the protocol above (with
    /// the reason it prefers: a TLS failure rather than a clean close, say)
    /// and lets go of it.
    fn lower_connection_lost(&self, reason: &CloseReason);

    /// A file descriptor came with the next bytes from below. The default
    /// closes it.
    fn lower_file_descriptor_received(&self, fd: OwnedFd) {
        drop(fd);
    }

    /// The transport below finished a handshake of its own (a layer under
    /// this one). The default ignores it.
    fn lower_handshake_completed(&self) {}
}

/// A protocol that puts `layer` under `protocol` from the first byte, on
/// whatever transport it is given: the layer starts in `connection_made`,
/// then the protocol above gets its own `connection_made` with the layer's
/// handle.
pub struct Layered {
    layer: Rc<dyn Layer>,
    pending: Option<Box<dyn Protocol>>,
}

impl Layered {
    /// `protocol` over `layer`.
    pub fn new(layer: Rc<dyn Layer>, protocol: impl Protocol) -> Layered {
        Layered {
            layer,
            pending: Some(Box::new(protocol)),
        }
    }

    /// The protocol that receives for a layer already holding its protocol
    /// above: what [`Transport::start_layer`] puts in the connection's
    /// protocol slot.
    pub(crate) fn below(layer: Rc<dyn Layer>) -> Layered {
        Layered {
            layer,
            pending: None,
        }
    }

    /// The layer.
    pub fn layer(&self) -> &Rc<dyn Layer> {
        &self.layer
    }
}

impl fmt::Debug for Layered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layered")
            .field("started", &self.pending.is_none())
            .finish()
    }
}

impl Protocol for Layered {
    fn connection_made(&mut self, transport: &Transport) {
        let upper = Transport::new(self.layer.clone());
        self.layer.start(transport.clone(), upper.clone());
        if let Some(mut p) = self.pending.take() {
            p.connection_made(&upper);
            self.layer.adopt_protocol(p);
        }
    }

    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.layer.lower_data_received(data);
    }

    fn read_eof(&mut self, _: &Transport) {
        self.layer.lower_read_eof();
    }

    fn connection_lost(&mut self, reason: &CloseReason) {
        self.layer.lower_connection_lost(reason);
    }

    fn handshake_completed(&mut self, _: &Transport) {
        self.layer.lower_handshake_completed();
    }

    fn file_descriptor_received(&mut self, _: &Transport, fd: OwnedFd) {
        self.layer.lower_file_descriptor_received(fd);
    }
}

/// The plumbing most layers share: the transport below, the handle above,
/// and the protocol above with re-entrancy checks. A layer that only
/// changes bytes holds one, forwards [`Layer::start`] and
/// [`Layer::adopt_protocol`] to it, and passes what it makes of the bytes
/// below to [`deliver`](Self::deliver). `PassThrough` is itself a
/// [`TransportImpl`] that forwards every method to the transport below, so
/// the layer delegates to it the methods it does not change.
#[derive(Default)]
pub struct PassThrough {
    lower: RefCell<Option<Transport>>,
    upper: RefCell<Option<Transport>>,
    protocol: RefCell<Option<Box<dyn Protocol>>>,
}

impl fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassThrough")
            .field("started", &self.lower.borrow().is_some())
            .finish()
    }
}

impl PassThrough {
    /// Keeps the two transports (for [`Layer::start`]).
    pub fn start(&self, lower: Transport, upper: Transport) {
        *self.lower.borrow_mut() = Some(lower);
        *self.upper.borrow_mut() = Some(upper);
    }

    /// Keeps the protocol above (for [`Layer::adopt_protocol`]).
    pub fn adopt_protocol(&self, protocol: Box<dyn Protocol>) {
        *self.protocol.borrow_mut() = Some(protocol);
    }

    /// The transport below, once started and until it closed.
    pub fn lower(&self) -> Option<Transport> {
        self.lower.borrow().clone()
    }

    /// The handle the protocol above holds, once started.
    pub fn upper(&self) -> Option<Transport> {
        self.upper.borrow().clone()
    }

    /// Calls the protocol above with its handle. False (and nothing is
    /// called) before the protocol was adopted, after it was let go, or
    /// while it is inside one of its own callbacks.
    pub fn call_protocol(&self, f: impl FnOnce(&mut dyn Protocol, &Transport)) -> bool {
        let Some(handle) = self.upper() else {
            return false;
        };
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            tracing::warn!("layer: protocol re-entered from a nested dispatch; call skipped");
            return false;
        };
        let Some(p) = slot.as_mut() else {
            return false;
        };
        f(&mut **p, &handle);
        true
    }

    /// Passes bytes to the protocol above.
    pub fn deliver(&self, data: &[u8]) -> bool {
        self.call_protocol(|p, t| p.data_received(t, data))
    }

    /// Passes end of file to the protocol above.
    pub fn deliver_eof(&self) -> bool {
        self.call_protocol(|p, t| p.read_eof(t))
    }

    /// Tells the protocol above that the connection was lost, then lets go
    /// of it and of both transports (which breaks the reference cycles).
    pub fn deliver_lost(&self, reason: &CloseReason) {
        let protocol = self
            .protocol
            .try_borrow_mut()
            .ok()
            .and_then(|mut s| s.take());
        if let Some(mut p) = protocol {
            p.connection_lost(reason);
        }
        let lower = self.lower.borrow_mut().take();
        let upper = self.upper.borrow_mut().take();
        drop((lower, upper));
    }
}

fn not_connected<T>() -> io::Result<T> {
    Err(io::ErrorKind::NotConnected.into())
}

/// Every method goes to the transport below: a layer delegates to its
/// `PassThrough` the methods it does not change.
impl TransportImpl for PassThrough {
    fn write(&self, data: &[u8]) {
        if let Some(l) = self.lower() {
            l.write(data)
        }
    }
    fn write_sequence(&self, data: &[&[u8]]) {
        if let Some(l) = self.lower() {
            l.write_sequence(data)
        }
    }
    fn lose_connection(&self) {
        if let Some(l) = self.lower() {
            l.lose_connection()
        }
    }
    fn abort_connection(&self) {
        if let Some(l) = self.lower() {
            l.abort_connection()
        }
    }
    fn lose_write_connection(&self) {
        if let Some(l) = self.lower() {
            l.lose_write_connection()
        }
    }
    fn peer_addr(&self) -> Address {
        self.lower()
            .map_or(Address::Memory("closed".into()), |l| l.peer_addr())
    }
    fn local_addr(&self) -> Address {
        self.lower()
            .map_or(Address::Memory("closed".into()), |l| l.local_addr())
    }
    fn pause_reading(&self) {
        if let Some(l) = self.lower() {
            l.pause_reading()
        }
    }
    fn resume_reading(&self) {
        if let Some(l) = self.lower() {
            l.resume_reading()
        }
    }
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), AlreadyRegistered> {
        match self.lower() {
            Some(l) => l.register_producer(producer, streaming),
            None => Err(AlreadyRegistered::new(producer)),
        }
    }
    fn unregister_producer(&self) {
        if let Some(l) = self.lower() {
            l.unregister_producer()
        }
    }
    fn set_write_watermarks(&self, low: usize, high: usize) {
        if let Some(l) = self.lower() {
            l.set_write_watermarks(low, high)
        }
    }
    fn write_buffer_len(&self) -> usize {
        self.lower().map_or(0, |l| l.write_buffer_len())
    }
    fn is_closed(&self) -> bool {
        self.lower().is_none_or(|l| l.is_closed())
    }
    fn is_disconnecting(&self) -> bool {
        self.lower().is_none_or(|l| l.is_disconnecting())
    }
    fn reactor(&self) -> Option<Reactor> {
        self.lower()?.reactor()
    }
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self.lower() {
            Some(l) => l.set_nodelay(on),
            None => not_connected(),
        }
    }
    fn send_file_descriptor(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        match self.lower() {
            Some(l) => l.send_file_descriptor(fd),
            None => not_connected(),
        }
    }
    fn find_layer(&self, id: TypeId) -> Option<Rc<dyn Any>> {
        self.lower()?.find_layer_by_id(id)
    }
    fn is_handshaking(&self) -> bool {
        self.lower().is_some_and(|l| l.is_handshaking())
    }
    fn is_secure(&self) -> bool {
        self.lower().is_some_and(|l| l.is_secure())
    }
}
