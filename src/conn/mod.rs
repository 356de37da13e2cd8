//! The lifecycle of one connection, written once for every byte stream
//! (TCP, in-memory pairs, and later Unix sockets and pipes): write buffer
//! and watermarks, producers, lose/abort/half-close, `connection_lost`
//! exactly once, and panic isolation.

mod buffer;

use crate::fd::{BorrowedFd, OwnedFd};
use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
#[cfg(unix)]
use std::os::fd::AsFd;
use std::rc::{Rc, Weak};

use crate::error::{CloseKind, CloseReason};
use crate::host::Budget;
use crate::layer::{Layer, Layered};
use crate::panics::catch_panic;
use crate::protocol::Protocol;
use crate::reactor::{Flush, Reactor, Source, WeakReactor};
use crate::transport::{Address, AlreadyRegistered, Producer, Transport, TransportImpl};

use buffer::WriteBuffer;

/// Writes at least this large skip the write buffer when it is empty.
const WRITE_THROUGH: usize = 16 * 1024;

/// Default watermarks of the write buffer.
pub(crate) const DEFAULT_LOW: usize = 16 * 1024;
pub(crate) const DEFAULT_HIGH: usize = 64 * 1024;

/// A byte stream under a connection.
pub(crate) trait Wire: 'static {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    fn shutdown_write(&self) -> io::Result<()>;
    /// Registers with the reactor; returns the source key.
    fn register(&self, reactor: &Reactor, source: Rc<dyn Source>) -> io::Result<usize>;
    fn set_interest(
        &self,
        reactor: &Reactor,
        key: usize,
        read: bool,
        write: bool,
    ) -> io::Result<()>;
    /// Deregisters and closes the stream.
    fn close(&self, reactor: &Reactor, key: usize);
    fn peer_addr(&self) -> Address;
    fn local_addr(&self) -> Address;
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let _ = on;
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Whether file descriptors can travel with the bytes (Unix sockets).
    fn passes_fds(&self) -> bool {
        false
    }
    /// `recv`, collecting descriptors that came with the bytes.
    fn recv_fds(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        let _ = fds;
        self.recv(buf)
    }
    /// `send_vectored` with descriptors attached to the first byte.
    fn send_fds(&self, bufs: &[IoSlice<'_>], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        let _ = (bufs, fds);
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    /// `lose_connection`: flush, then close.
    Closing,
    Closed,
}

#[derive(Debug)]
struct ProducerState {
    streaming: bool,
    /// What the producer was last told (streaming).
    paused: bool,
    /// A pull producer was asked for data and has not written since.
    asked: bool,
}

struct State {
    phase: Phase,
    read_eof: bool,
    shut_requested: bool,
    write_shut: bool,
    reading_paused: bool,
    buf: WriteBuffer,
    low: usize,
    high: usize,
    producer: Option<ProducerState>,
    interest: (bool, bool),
    flush_queued: bool,
    /// Bytes sent so far: with the buffer's length, the stream position
    /// at which a queued descriptor goes.
    sent: u64,
    /// Descriptors to send, each with the stream position of the byte it
    /// travels with.
    // Boxed on purpose: 8 bytes on every idle connection instead of 32,
    // for a queue only Unix sockets passing descriptors ever fill.
    #[allow(clippy::box_collection)]
    fds_out: Option<Box<VecDeque<(u64, OwnedFd)>>>,
    /// `start_layer` was called inside a protocol callback: the protocol
    /// goes under the layer when the callback returns.
    wrap_pending: bool,
    /// The reactor is stopping and waits for this connection to send what
    /// it had buffered.
    shutting_down: bool,
}

pub(crate) type LostHook = Box<dyn FnOnce(&CloseReason)>;

pub(crate) struct Conn<W: Wire> {
    me: Weak<Conn<W>>,
    reactor: WeakReactor,
    wire: W,
    key: Cell<usize>,
    st: RefCell<State>,
    protocol: RefCell<Option<Box<dyn Protocol>>>,
    producer: RefCell<Option<Rc<dyn Producer>>>,
    on_lost: RefCell<Option<LostHook>>,
    /// The layer `start_layer` put on the connection (a `Cell`, not a
    /// `RefCell`: idle connections are counted in bytes).
    layer: Cell<Option<Rc<dyn Layer>>>,
}

impl<W: Wire> Conn<W> {
    /// Registers a new connection and calls `connection_made`.
    pub(crate) fn start(
        reactor: &Reactor,
        wire: W,
        protocol: Box<dyn Protocol>,
        on_lost: Option<LostHook>,
    ) -> io::Result<Rc<Conn<W>>> {
        let conn = Rc::new_cyclic(|me| Conn {
            me: me.clone(),
            reactor: reactor.downgrade(),
            wire,
            key: Cell::new(usize::MAX),
            st: RefCell::new(State {
                phase: Phase::Open,
                read_eof: false,
                shut_requested: false,
                write_shut: false,
                reading_paused: false,
                buf: WriteBuffer::default(),
                low: DEFAULT_LOW,
                high: DEFAULT_HIGH,
                producer: None,
                interest: (true, false),
                flush_queued: false,
                sent: 0,
                fds_out: None,
                wrap_pending: false,
                shutting_down: false,
            }),
            protocol: RefCell::new(Some(protocol)),
            producer: RefCell::new(None),
            on_lost: RefCell::new(on_lost),
            layer: Cell::new(None),
        });
        let key = conn.wire.register(reactor, conn.clone())?;
        conn.key.set(key);
        let t = conn.transport();
        conn.call_protocol(|p| p.connection_made(&t));
        Ok(conn)
    }

    pub(crate) fn transport(&self) -> Transport {
        let me: Rc<dyn TransportImpl> = self.me.upgrade().expect("a live connection");
        Transport::new(me)
    }

    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    pub(crate) fn wire(&self) -> &W {
        &self.wire
    }

    /// Calls the protocol; a panic closes the connection.
    fn call_protocol(&self, f: impl FnOnce(&mut dyn Protocol)) {
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            tracing::warn!("protocol re-entered from a nested dispatch; call skipped");
            return;
        };
        let Some(p) = slot.as_mut() else { return };
        let ok = catch_panic("protocol callback", || f(&mut **p));
        self.wrap_now(&mut slot);
        drop(slot);
        if ok.is_none() {
            self.close(CloseReason::new(CloseKind::Panicked));
        }
    }

    fn on_readable(&self, budget: &Budget) {
        let Some(reactor) = self.reactor.upgrade() else {
            return;
        };
        for _ in 0..budget.reads_per_event {
            {
                let st = self.st.borrow();
                if st.phase != Phase::Open || st.read_eof || st.reading_paused {
                    return;
                }
            }
            if self.protocol.try_borrow_mut().is_err() {
                return; // busy in an outer callback: read later
            }
            let mut buf = reactor.take_read_buf();
            let mut fds = Vec::new();
            let r = if self.wire.passes_fds() {
                self.wire.recv_fds(&mut buf, &mut fds)
            } else {
                self.wire.recv(&mut buf)
            };
            if !fds.is_empty() {
                let t = self.transport();
                for fd in fds {
                    self.call_protocol(|p| p.file_descriptor_received(&t, fd));
                }
            }
            match r {
                Ok(0) => {
                    reactor.put_read_buf(buf);
                    self.on_eof();
                    return;
                }
                Ok(n) => {
                    let t = self.transport();
                    self.call_protocol(|p| p.data_received(&t, &buf[..n]));
                    let full = n == buf.len();
                    reactor.put_read_buf(buf);
                    if !full {
                        return; // drained, most likely
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    reactor.put_read_buf(buf);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => reactor.put_read_buf(buf),
                Err(e) => {
                    reactor.put_read_buf(buf);
                    self.close(CloseReason::from_io(e));
                    return;
                }
            }
        }
    }

    fn on_eof(&self) {
        let write_shut = {
            let mut st = self.st.borrow_mut();
            st.read_eof = true;
            st.write_shut
        };
        self.update_interest();
        if write_shut {
            self.close(CloseReason::new(CloseKind::Done));
        } else {
            let t = self.transport();
            self.call_protocol(|p| p.read_eof(&t));
        }
    }

    /// Sends as much of the buffer as the stream takes.
    fn flush_now(&self) {
        self.st.borrow_mut().flush_queued = false;
        loop {
            let res = {
                let st = self.st.borrow();
                if st.phase == Phase::Closed || st.buf.is_empty() {
                    break;
                }
                match st.buf.first() {
                    _ if st.fds_out.is_some() => self.send_with_fds(&st),
                    Some((only, true)) => self.wire.send_vectored(&[IoSlice::new(only)]),
                    _ => {
                        let mut iov = [IoSlice::new(&[]); buffer::MAX_IOV];
                        let n = st.buf.slices(&mut iov);
                        self.wire.send_vectored(&iov[..n])
                    }
                }
            };
            match res {
                Ok(0) => break,
                Ok(n) => {
                    let mut st = self.st.borrow_mut();
                    st.buf.consume(n);
                    st.sent += n as u64;
                    let sent = st.sent;
                    if let Some(fds) = st.fds_out.as_mut() {
                        // Those sent with the bytes just written.
                        while fds.front().is_some_and(|f| f.0 < sent) {
                            fds.pop_front();
                        }
                        if fds.is_empty() {
                            st.fds_out = None;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(CloseReason::from_io(e));
                    return;
                }
            }
        }
        let (phase, empty, shut_now, read_eof) = {
            let st = self.st.borrow();
            (
                st.phase,
                st.buf.is_empty(),
                st.shut_requested && !st.write_shut,
                st.read_eof,
            )
        };
        if phase == Phase::Closed {
            return;
        }
        if empty && phase == Phase::Closing {
            self.close(self.clean_close());
            return;
        }
        if empty && shut_now {
            self.st.borrow_mut().write_shut = true;
            if let Err(e) = self.wire.shutdown_write() {
                self.close(CloseReason::from_io(e));
                return;
            }
            if read_eof {
                self.close(CloseReason::new(CloseKind::Done));
                return;
            }
        }
        self.update_interest();
        self.sync_producer();
    }

    /// Sends up to the next descriptor's byte, or that byte's run with the
    /// descriptors that go with it.
    fn send_with_fds(&self, st: &State) -> io::Result<usize> {
        let Some((data, _)) = st.buf.first() else {
            return Ok(0);
        };
        let Some(queued) = st.fds_out.as_deref() else {
            return Ok(0);
        };
        let at = queued[0].0;
        if at > st.sent {
            // Plain bytes before the descriptor's position.
            let n = ((at - st.sent) as usize).min(data.len());
            return self.wire.send_vectored(&[IoSlice::new(&data[..n])]);
        }
        let fds: Vec<BorrowedFd<'_>> = queued
            .iter()
            .take_while(|f| f.0 == at)
            .take(crate::sys::MAX_FDS)
            .map(|f| f.1.as_fd())
            .collect();
        // Bytes up to the next group of descriptors, so each group is sent
        // with its own byte.
        let next = queued.iter().find(|f| f.0 > at).map(|f| f.0);
        let n = next.map_or(data.len(), |p| ((p - st.sent) as usize).min(data.len()));
        self.wire.send_fds(&[IoSlice::new(&data[..n])], &fds)
    }

    /// A large write with nothing queued goes to the socket at once,
    /// without being copied; only what the socket does not take is queued.
    /// (Small writes are queued and coalesced into one send per dispatch.)
    fn write_through(&self, data: &[u8]) {
        let sent = match self.wire.send_vectored(&[IoSlice::new(data)]) {
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                0
            }
            Err(e) => {
                self.close(CloseReason::from_io(e));
                return;
            }
        };
        let queued = {
            let mut st = self.st.borrow_mut();
            st.sent += sent as u64;
            st.buf.push(&data[sent..]);
            if let Some(ps) = st.producer.as_mut() {
                ps.asked = false;
            }
            !st.buf.is_empty()
        };
        if queued {
            self.schedule_flush();
        }
        self.sync_producer();
    }

    /// Flush at the end of the dispatch, or now if outside one.
    fn schedule_flush(&self) {
        let Some(reactor) = self.reactor.upgrade() else {
            return;
        };
        if reactor.in_dispatch() {
            let mut st = self.st.borrow_mut();
            if !st.flush_queued {
                st.flush_queued = true;
                drop(st);
                if let Some(me) = self.me.upgrade() {
                    reactor.queue_flush(me);
                }
            }
        } else {
            self.flush_now();
        }
    }

    fn update_interest(&self) {
        let Some(reactor) = self.reactor.upgrade() else {
            return;
        };
        let want = {
            let st = self.st.borrow();
            if st.phase == Phase::Closed {
                return;
            }
            (
                st.phase == Phase::Open && !st.read_eof && !st.reading_paused,
                !st.buf.is_empty(),
            )
        };
        if want == self.st.borrow().interest {
            return;
        }
        match self
            .wire
            .set_interest(&reactor, self.key.get(), want.0, want.1)
        {
            Ok(()) => self.st.borrow_mut().interest = want,
            Err(e) => self.close(CloseReason::from_io(e)),
        }
    }

    /// Tells the producer what the buffer level asks for, until they agree.
    fn sync_producer(&self) {
        loop {
            let resume = {
                let mut st = self.st.borrow_mut();
                let (len, low, high, open) =
                    (st.buf.len(), st.low, st.high, st.phase == Phase::Open);
                let Some(ps) = st.producer.as_mut() else {
                    return;
                };
                if ps.streaming {
                    if !ps.paused && len >= high {
                        false
                    } else if ps.paused && len <= low && open {
                        true
                    } else {
                        return;
                    }
                } else if !ps.asked && len == 0 && open {
                    true
                } else {
                    return;
                }
            };
            let Some(p) = self.producer.borrow().clone() else {
                return;
            };
            {
                let mut st = self.st.borrow_mut();
                if let Some(ps) = st.producer.as_mut() {
                    ps.paused = !resume;
                    ps.asked = resume;
                }
            }
            // Re-entrant by design: a producer writing inside
            // resume_producing is paused from inside that write.
            let ok = catch_panic("producer", || {
                if resume {
                    p.resume_producing()
                } else {
                    p.pause_producing()
                }
            });
            if ok.is_none() {
                self.close(CloseReason::new(CloseKind::Panicked));
                return;
            }
        }
    }

    /// Closes at once; `connection_lost` is delivered later, exactly once.
    pub(crate) fn close(&self, reason: CloseReason) {
        {
            let mut st = self.st.borrow_mut();
            if st.phase == Phase::Closed {
                return;
            }
            st.phase = Phase::Closed;
            st.buf.clear();
            st.producer = None;
        }
        let reactor = self.reactor.upgrade();
        if self.st.borrow().shutting_down {
            if let Some(r) = &reactor {
                r.drained();
            }
        }
        if let Some(r) = &reactor {
            self.wire.close(r, self.key.get());
        }
        let producer = self
            .producer
            .try_borrow_mut()
            .ok()
            .and_then(|mut p| p.take());
        if let Some(p) = producer {
            catch_panic("stop_producing", || p.stop_producing());
        }
        let Some(me) = self.me.upgrade() else { return };
        match reactor {
            Some(r) => r.call_soon(move || me.deliver_lost(reason)),
            None => me.deliver_lost(reason),
        }
    }

    fn deliver_lost(&self, reason: CloseReason) {
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            // Inside a nested dispatch of one of its own callbacks: later.
            if let (Some(r), Some(me)) = (self.reactor.upgrade(), self.me.upgrade()) {
                r.call_soon(move || me.deliver_lost(reason));
            }
            return;
        };
        let protocol = slot.take();
        drop(slot);
        if let Some(mut p) = protocol {
            catch_panic("connection_lost", || p.connection_lost(&reason));
            // Dropped here: this breaks the protocol -> transport -> conn cycle.
        }
        drop(self.layer.take()); // breaks conn -> layer -> conn
        let hook = self.on_lost.borrow_mut().take();
        if let Some(h) = hook {
            catch_panic("client_connection_lost", || h(&reason));
        }
    }
}

impl<W: Wire> Source for Conn<W> {
    fn ready(&self, readable: bool, writable: bool, budget: &Budget) {
        if writable {
            self.flush_now();
        }
        if readable {
            self.on_readable(budget);
        }
    }

    fn shutdown(&self) {
        self.close(CloseReason::new(CloseKind::Shutdown));
    }

    fn begin_shutdown(&self) -> bool {
        let (open, buffered) = {
            let st = self.st.borrow();
            (st.phase != Phase::Closed, !st.buf.is_empty())
        };
        // With a layer (TLS), its own close goes first (close_notify),
        // however little is buffered.
        let layered = self.layer().is_some();
        if !open || (!buffered && !layered) {
            self.shutdown();
            return false;
        }
        self.st.borrow_mut().shutting_down = true;
        match self.layer() {
            Some(l) => l.lose_connection(),
            None => self.raw_lose_connection(),
        }
        // Closed at once or later, it tells the reactor (drained()).
        true
    }
}

impl<W: Wire> Flush for Conn<W> {
    fn flush(&self) {
        if self.st.borrow().flush_queued {
            self.flush_now();
        }
    }
}

/// The transport methods without a layer: what the protocol uses on a plain
/// connection, and what a layer started on it writes to.
impl<W: Wire> Conn<W> {
    fn raw_write(&self, data: &[u8]) {
        {
            let mut st = self.st.borrow_mut();
            if st.phase != Phase::Open || st.shut_requested || data.is_empty() {
                return;
            }
            // Not with a pull producer: it would be asked for more from
            // inside its own write, before it counted what it wrote.
            let pull = st.producer.as_ref().is_some_and(|p| !p.streaming);
            if st.buf.is_empty() && data.len() >= WRITE_THROUGH && !pull && st.fds_out.is_none() {
                drop(st);
                return self.write_through(data);
            }
            st.buf.push(data);
            if let Some(ps) = st.producer.as_mut() {
                ps.asked = false;
            }
        }
        self.schedule_flush();
        self.sync_producer();
    }

    fn raw_write_sequence(&self, data: &[&[u8]]) {
        {
            let mut st = self.st.borrow_mut();
            if st.phase != Phase::Open || st.shut_requested {
                return;
            }
            for d in data {
                st.buf.push(d);
            }
            if let Some(ps) = st.producer.as_mut() {
                ps.asked = false;
            }
        }
        self.schedule_flush();
        self.sync_producer();
    }

    fn raw_lose_connection(&self) {
        let empty = {
            let mut st = self.st.borrow_mut();
            if st.phase != Phase::Open {
                return;
            }
            st.phase = Phase::Closing;
            st.buf.is_empty()
        };
        if empty {
            self.close(self.clean_close());
        } else {
            self.update_interest();
            self.schedule_flush();
        }
    }

    /// A clean close's reason: `Done`, or `Shutdown` when the reactor's
    /// stop asked for it.
    fn clean_close(&self) -> CloseReason {
        if self.st.borrow().shutting_down {
            CloseReason::new(CloseKind::Shutdown)
        } else {
            CloseReason::new(CloseKind::Done)
        }
    }

    fn raw_abort_connection(&self) {
        self.close(CloseReason::new(CloseKind::Aborted));
    }

    fn raw_lose_write_connection(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.phase != Phase::Open || st.shut_requested {
                return;
            }
            st.shut_requested = true;
        }
        self.schedule_flush();
    }

    fn raw_peer_addr(&self) -> Address {
        self.wire.peer_addr()
    }

    fn raw_local_addr(&self) -> Address {
        self.wire.local_addr()
    }

    fn raw_pause_reading(&self) {
        self.st.borrow_mut().reading_paused = true;
        self.update_interest();
    }

    fn raw_resume_reading(&self) {
        self.st.borrow_mut().reading_paused = false;
        self.update_interest();
    }

    fn raw_register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), AlreadyRegistered> {
        {
            let mut st = self.st.borrow_mut();
            if st.producer.is_some() || st.phase == Phase::Closed {
                return Err(AlreadyRegistered::new(producer));
            }
            st.producer = Some(ProducerState {
                streaming,
                paused: false,
                asked: false,
            });
        }
        *self.producer.borrow_mut() = Some(producer);
        self.sync_producer();
        Ok(())
    }

    fn raw_unregister_producer(&self) {
        self.st.borrow_mut().producer = None;
        let dropped = self.producer.borrow_mut().take();
        drop(dropped);
    }

    fn raw_set_write_watermarks(&self, low: usize, high: usize) {
        {
            let mut st = self.st.borrow_mut();
            st.high = high.max(1);
            st.low = low.min(st.high - 1);
        }
        self.sync_producer();
    }

    fn raw_write_buffer_len(&self) -> usize {
        self.st.borrow().buf.len()
    }

    fn raw_is_closed(&self) -> bool {
        self.st.borrow().phase == Phase::Closed
    }

    fn raw_is_disconnecting(&self) -> bool {
        self.st.borrow().phase != Phase::Open
    }

    fn raw_reactor(&self) -> Option<Reactor> {
        self.reactor.upgrade()
    }

    fn raw_set_nodelay(&self, on: bool) -> io::Result<()> {
        self.wire.set_nodelay(on)
    }
}

impl<W: Wire> Conn<W> {
    fn raw_send_file_descriptor(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        if !self.wire.passes_fds() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only Unix sockets carry file descriptors",
            ));
        }
        let fd = fd.try_clone_to_owned()?;
        let mut st = self.st.borrow_mut();
        if st.phase != Phase::Open || st.shut_requested {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let at = st.sent + st.buf.len() as u64;
        st.fds_out
            .get_or_insert_with(Box::default)
            .push_back((at, fd));
        Ok(())
    }
}

/// What a protocol's transport handle calls: the plain methods, or the
/// layer's once `start_layer` put one on the connection.
macro_rules! via_layer {
    ($self:ident, $m:ident ( $($a:expr),* ), $raw:ident) => {{
        if let Some(layer) = $self.layer() {
            return layer.$m($($a),*);
        }
        $self.$raw($($a),*)
    }};
}

/// One line per method: through the layer if there is one (`$via`), else
/// the plain method; and the connection's plain transport under a layer.
macro_rules! transport_methods {
    ($( fn $m:ident(&self $(, $a:ident : $t:ty)*) $(-> $r:ty)? => $raw:ident; )*) => {
        impl<W: Wire> TransportImpl for Conn<W> {
            $( fn $m(&self $(, $a: $t)*) $(-> $r)? { via_layer!(self, $m($($a),*), $raw) } )*
            fn start_layer(&self, layer: Rc<dyn Layer>) -> io::Result<()> {
                self.start_layer_in_place(layer)
            }
            fn find_layer(&self, id: TypeId) -> Option<Rc<dyn Any>> {
                self.layer()?.find_layer(id)
            }
            fn is_handshaking(&self) -> bool {
                self.layer().is_some_and(|l| l.is_handshaking())
            }
            fn is_secure(&self) -> bool {
                self.layer().is_some_and(|l| l.is_secure())
            }
        }

        /// The connection's plain transport, under a layer started in place.
        struct RawConn<W: Wire>(Rc<Conn<W>>);

        impl<W: Wire> TransportImpl for RawConn<W> {
            $( fn $m(&self $(, $a: $t)*) $(-> $r)? { self.0.$raw($($a),*) } )*
        }
    };
}

transport_methods! {
    fn write(&self, data: &[u8]) => raw_write;
    fn write_sequence(&self, data: &[&[u8]]) => raw_write_sequence;
    fn lose_connection(&self) => raw_lose_connection;
    fn abort_connection(&self) => raw_abort_connection;
    fn lose_write_connection(&self) => raw_lose_write_connection;
    fn peer_addr(&self) -> Address => raw_peer_addr;
    fn local_addr(&self) -> Address => raw_local_addr;
    fn pause_reading(&self) => raw_pause_reading;
    fn resume_reading(&self) => raw_resume_reading;
    fn register_producer(&self, producer: Rc<dyn Producer>, streaming: bool) -> Result<(), AlreadyRegistered> => raw_register_producer;
    fn unregister_producer(&self) => raw_unregister_producer;
    fn set_write_watermarks(&self, low: usize, high: usize) => raw_set_write_watermarks;
    fn write_buffer_len(&self) -> usize => raw_write_buffer_len;
    fn is_closed(&self) -> bool => raw_is_closed;
    fn is_disconnecting(&self) -> bool => raw_is_disconnecting;
    fn reactor(&self) -> Option<Reactor> => raw_reactor;
    fn set_nodelay(&self, on: bool) -> io::Result<()> => raw_set_nodelay;
    fn send_file_descriptor(&self, fd: BorrowedFd<'_>) -> io::Result<()> => raw_send_file_descriptor;
}

impl<W: Wire> Conn<W> {
    fn layer(&self) -> Option<Rc<dyn Layer>> {
        let layer = self.layer.take();
        self.layer.set(layer.clone());
        layer
    }

    fn start_layer_in_place(&self, layer: Rc<dyn Layer>) -> io::Result<()> {
        if self.layer().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a layer runs on this connection already",
            ));
        }
        {
            let st = self.st.borrow();
            if st.phase != Phase::Open || st.shut_requested {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the connection is closing",
                ));
            }
        }
        let Some(me) = self.me.upgrade() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        self.layer.set(Some(layer.clone()));
        match self.protocol.try_borrow_mut() {
            Ok(mut slot) => {
                if let Some(p) = slot.take() {
                    layer.adopt_protocol(p);
                    *slot = Some(Box::new(Layered::below(layer.clone())));
                }
            }
            // Inside one of the protocol's callbacks: handed over when it returns.
            Err(_) => self.st.borrow_mut().wrap_pending = true,
        }
        layer.start(Transport::new(Rc::new(RawConn(me))), self.transport());
        Ok(())
    }

    /// Puts the protocol under the layer `start_layer` put on the connection.
    fn wrap_now(&self, slot: &mut Option<Box<dyn Protocol>>) {
        if !std::mem::take(&mut self.st.borrow_mut().wrap_pending) {
            return;
        }
        let Some(layer) = self.layer() else {
            return;
        };
        if let Some(p) = slot.take() {
            layer.adopt_protocol(p);
            *slot = Some(Box::new(Layered::below(layer)));
        }
    }
}
