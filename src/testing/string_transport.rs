//! A transport that records writes: Twisted's `StringTransport`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;

use crate::reactor::Reactor;
use crate::transport::{Address, AlreadyRegistered, Producer, Transport, TransportImpl};

#[derive(Default)]
struct Inner {
    written: RefCell<Vec<u8>>,
    disconnecting: Cell<bool>,
    aborted: Cell<bool>,
    write_shut: Cell<bool>,
    paused: Cell<bool>,
    producer: RefCell<Option<(Rc<dyn Producer>, bool)>>,
    watermarks: Cell<(usize, usize)>,
    nodelay: Cell<Option<bool>>,
    reactor: RefCell<Option<Reactor>>,
}

/// A transport that records what a protocol writes and what it asks for
/// (close, abort, pause), without any I/O. Hand [`transport`](Self::transport)
/// to a protocol's methods and inspect the record.
///
/// # Examples
///
/// ```
/// use braid::testing::StringTransport;
/// use braid::{Protocol, Transport};
///
/// struct Greeter;
/// impl Protocol for Greeter {
///     fn connection_made(&mut self, t: &Transport) {
///         t.write(b"hello");
///         t.lose_connection();
///     }
///     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
/// }
///
/// let st = StringTransport::new();
/// Greeter.connection_made(&st.transport());
/// assert_eq!(st.value(), b"hello");
/// assert!(st.is_disconnecting());
/// ```
#[derive(Clone)]
pub struct StringTransport {
    inner: Rc<Inner>,
}

impl StringTransport {
    /// An empty record.
    pub fn new() -> Self {
        let t = StringTransport {
            inner: Rc::new(Inner::default()),
        };
        t.inner
            .watermarks
            .set((crate::conn::DEFAULT_LOW, crate::conn::DEFAULT_HIGH));
        t
    }

    /// A record whose [`Transport::reactor`] is `reactor` (for protocols
    /// that set timers).
    pub fn with_reactor(reactor: &Reactor) -> Self {
        let t = Self::new();
        *t.inner.reactor.borrow_mut() = Some(reactor.clone());
        t
    }

    /// The transport to give to a protocol.
    pub fn transport(&self) -> Transport {
        Transport::new(Rc::new(self.clone()))
    }

    /// Everything written so far.
    pub fn value(&self) -> Vec<u8> {
        self.inner.written.borrow().clone()
    }

    /// Everything written so far, clearing the record.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.inner.written.borrow_mut())
    }

    /// `lose_connection` or `abort_connection` was called.
    pub fn is_disconnecting(&self) -> bool {
        self.inner.disconnecting.get()
    }

    /// `abort_connection` was called.
    pub fn is_aborted(&self) -> bool {
        self.inner.aborted.get()
    }

    /// `lose_write_connection` was called.
    pub fn is_write_shut(&self) -> bool {
        self.inner.write_shut.get()
    }

    /// Reading is paused.
    pub fn is_reading_paused(&self) -> bool {
        self.inner.paused.get()
    }

    /// Whether a producer is registered, and whether it is streaming.
    pub fn producer(&self) -> Option<bool> {
        self.inner.producer.borrow().as_ref().map(|(_, s)| *s)
    }

    /// What `set_nodelay` was last called with.
    pub fn nodelay(&self) -> Option<bool> {
        self.inner.nodelay.get()
    }
}

impl Default for StringTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StringTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StringTransport")
            .field("written", &self.inner.written.borrow().len())
            .field("disconnecting", &self.is_disconnecting())
            .finish()
    }
}

impl TransportImpl for StringTransport {
    fn write(&self, data: &[u8]) {
        self.inner.written.borrow_mut().extend_from_slice(data);
    }
    fn lose_connection(&self) {
        self.inner.disconnecting.set(true);
    }
    fn abort_connection(&self) {
        self.inner.disconnecting.set(true);
        self.inner.aborted.set(true);
    }
    fn lose_write_connection(&self) {
        self.inner.write_shut.set(true);
    }
    fn peer_addr(&self) -> Address {
        Address::Memory("peer".into())
    }
    fn local_addr(&self) -> Address {
        Address::Memory("local".into())
    }
    fn pause_reading(&self) {
        self.inner.paused.set(true);
    }
    fn resume_reading(&self) {
        self.inner.paused.set(false);
    }
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), AlreadyRegistered> {
        let mut slot = self.inner.producer.borrow_mut();
        if slot.is_some() {
            return Err(AlreadyRegistered::new(producer));
        }
        *slot = Some((producer, streaming));
        Ok(())
    }
    fn unregister_producer(&self) {
        self.inner.producer.borrow_mut().take();
    }
    fn set_write_watermarks(&self, low: usize, high: usize) {
        self.inner.watermarks.set((low, high));
    }
    fn write_buffer_len(&self) -> usize {
        0
    }
    fn is_closed(&self) -> bool {
        self.inner.disconnecting.get()
    }
    fn is_disconnecting(&self) -> bool {
        self.inner.disconnecting.get()
    }
    fn reactor(&self) -> Option<Reactor> {
        self.inner.reactor.borrow().clone()
    }
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.nodelay.set(Some(on));
        Ok(())
    }
}
