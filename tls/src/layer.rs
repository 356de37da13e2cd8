//! The TLS layer: a protocol to the transport below, a transport to the
//! protocol above.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read, Write};
use std::rc::{Rc, Weak};

use rustls::pki_types::ServerName;

use braid::fd::OwnedFd;
use std::any::{Any, TypeId};

use braid::catch_panic as guard;
use braid::layer::{Layer, Layered};
use braid::{
    Address, AlreadyRegistered, CloseKind, CloseReason, DelayedCall, Producer, Protocol, Reactor,
    Transport, TransportImpl,
};

use super::{Role, TlsError, TlsErrorKind, TlsInfo, TlsStart};

/// Plain text is read out of rustls this much at a time.
const PLAINTEXT_CHUNK: usize = 64 * 1024;
/// Ciphertext kept while the protocol above has paused reading; past
/// this the transport below is certainly paused too, so it cannot grow
/// much beyond one read.
const KEEP_OUT: usize = 64 * 1024;

thread_local! {
    static PLAIN: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static CIPHER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

fn take_scratch(which: &'static std::thread::LocalKey<Cell<Vec<u8>>>, len: usize) -> Vec<u8> {
    let mut v = which.with(|c| c.take());
    if v.len() < len {
        v.resize(len, 0);
    }
    v
}

fn put_scratch(which: &'static std::thread::LocalKey<Cell<Vec<u8>>>, mut v: Vec<u8>) {
    if v.capacity() > 4 * KEEP_OUT {
        v = Vec::new(); // do not keep a huge buffer for good
    }
    which.with(|c| c.set(v));
}

#[derive(Default)]
struct St {
    handshaken: bool,
    /// Plain text written before the handshake finished (held by rustls).
    early: usize,
    paused: bool,
    drain_queued: bool,
    /// Ciphertext received while paused.
    stash: Vec<u8>,
    close_after_handshake: bool,
    shut_after_handshake: bool,
    /// `lose_connection` was called: no more writes.
    closing: bool,
    /// `close_notify` was sent by the write side.
    write_shut: bool,
    /// The peer's `close_notify` was seen and passed up as `read_eof`.
    peer_closed: bool,
    error: Option<TlsError>,
    /// The TLS failure the connection ended with, for the client factory.
    ended_with: Option<TlsError>,
    dead: bool,
    /// A producer registered before the handshake finished: it goes to the
    /// transport below when it does (streaming ones paused until then), so
    /// it cannot fill memory with plain text that cannot be sent yet.
    waiting_producer: Option<(Rc<dyn Producer>, bool)>,
    timer: Option<DelayedCall>,
}

/// A TLS session as a braid [`Layer`].
pub(crate) struct TlsLayer {
    me: Weak<TlsLayer>,
    tls: RefCell<Option<rustls::Connection>>,
    server_name: Option<String>,
    timeout: std::time::Duration,
    lower: RefCell<Option<Transport>>,
    upper_handle: RefCell<Option<Transport>>,
    upper: RefCell<Option<Box<dyn Protocol>>>,
    st: RefCell<St>,
}

impl TlsLayer {
    /// A layer for `start`; a configuration error is kept and ends the
    /// connection as soon as it begins.
    pub(crate) fn new(mut start: Result<TlsStart, TlsError>) -> Rc<TlsLayer> {
        let mut error = None;
        let received = start
            .as_mut()
            .map(|s| std::mem::take(&mut s.received))
            .unwrap_or_default();
        let (tls, server_name, timeout) = match start {
            Ok(TlsStart {
                role: Role::Client(config, name, timeout),
                ..
            }) => {
                let conn = ServerName::try_from(name.clone())
                    .map_err(|e| TlsError::config(format!("server name {name:?}: {e}")))
                    .and_then(|sn| {
                        rustls::ClientConnection::new(config, sn).map_err(TlsError::from_rustls)
                    });
                match conn {
                    Ok(c) => (Some(rustls::Connection::Client(c)), Some(name), timeout),
                    Err(e) => {
                        error = Some(e);
                        (None, Some(name), timeout)
                    }
                }
            }
            Ok(TlsStart {
                role: Role::Server(config, timeout),
                ..
            }) => match rustls::ServerConnection::new(config) {
                Ok(c) => (Some(rustls::Connection::Server(c)), None, timeout),
                Err(e) => {
                    error = Some(TlsError::from_rustls(e));
                    (None, None, timeout)
                }
            },
            Err(e) => {
                error = Some(e);
                (None, None, super::DEFAULT_HANDSHAKE_TIMEOUT)
            }
        };
        let mut tls = tls;
        if let Some(c) = tls.as_mut() {
            // The transport below buffers without limit; so does this.
            c.set_buffer_limit(None);
        }
        Rc::new_cyclic(|me| TlsLayer {
            me: me.clone(),
            tls: RefCell::new(tls),
            server_name,
            timeout,
            lower: RefCell::new(None),
            upper_handle: RefCell::new(None),
            upper: RefCell::new(None),
            st: RefCell::new(St {
                error,
                stash: received,
                ..St::default()
            }),
        })
    }

    pub(crate) fn set_upper(&self, p: Box<dyn Protocol>) {
        *self.upper.borrow_mut() = Some(p);
    }

    /// Connects the layer: `lower` carries ciphertext, `upper` is the
    /// handle the protocol above sees.
    pub(crate) fn attach(&self, lower: Transport, upper: Transport) {
        *self.lower.borrow_mut() = Some(lower);
        *self.upper_handle.borrow_mut() = Some(upper);
    }

    /// Starts the handshake timer and sends the first flight.
    pub(crate) fn begin(&self) {
        let config_error = self.st.borrow().error.is_some();
        if config_error {
            self.close_lower();
            return;
        }
        if let Some(r) = self.lower().and_then(|l| l.reactor()) {
            let me = self.me.clone();
            let timer = r.call_later(self.timeout, move || {
                if let Some(l) = me.upgrade() {
                    l.fail(TlsError::new(TlsErrorKind::TimedOut, ""));
                }
            });
            self.st.borrow_mut().timer = Some(timer);
        }
        self.flush_tls();
        if !self.st.borrow().stash.is_empty() {
            self.queue_drain();
        }
    }

    /// Processes held ciphertext from the reactor (in order: anything that
    /// arrives meanwhile queues behind it).
    fn queue_drain(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.drain_queued || st.dead {
                return;
            }
            st.drain_queued = true;
        }
        if let Some(r) = self.reactor() {
            let me = self.me.clone();
            r.call_soon(move || {
                if let Some(l) = me.upgrade() {
                    l.drain();
                }
            });
        }
    }

    fn lower(&self) -> Option<Transport> {
        self.lower.borrow().clone()
    }

    fn reactor(&self) -> Option<Reactor> {
        self.lower()?.reactor()
    }

    /// Calls the protocol above; false if it is busy or gone.
    fn call_upper(&self, f: impl FnOnce(&mut dyn Protocol, &Transport)) -> bool {
        let Some(handle) = self.upper_handle.borrow().clone() else {
            return false;
        };
        let Ok(mut slot) = self.upper.try_borrow_mut() else {
            tracing::warn!("TLS: protocol re-entered from a nested dispatch; call skipped");
            return false;
        };
        let Some(p) = slot.as_mut() else {
            return false;
        };
        f(&mut **p, &handle);
        true
    }

    /// Encrypted bytes from below.
    pub(crate) fn receive(&self, data: &[u8]) {
        {
            let mut st = self.st.borrow_mut();
            if st.dead || st.error.is_some() || st.peer_closed {
                return;
            }
            if (st.paused && st.handshaken) || !st.stash.is_empty() {
                // Behind what is held: in order, from the queued drain.
                st.stash.extend_from_slice(data);
                return;
            }
        }
        self.process(data);
    }

    fn process(&self, mut data: &[u8]) {
        loop {
            if !self.deliver_plaintext() {
                let mut st = self.st.borrow_mut();
                if st.dead || st.error.is_some() || st.peer_closed {
                    break;
                }
                if st.handshaken {
                    // Paused: the rest waits for resume_reading.
                    st.stash.extend_from_slice(data);
                    break;
                }
                // Paused during the handshake: the handshake goes on.
            }
            if data.is_empty() {
                break;
            }
            let r = {
                let mut tls = self.tls.borrow_mut();
                let Some(c) = tls.as_mut() else { return };
                match c.read_tls(&mut data) {
                    Ok(_) => c
                        .process_new_packets()
                        .map(|_| ())
                        .map_err(TlsError::from_rustls),
                    Err(e) => Err(TlsError::new(TlsErrorKind::Protocol, e.to_string())),
                }
            };
            if let Err(e) = r {
                self.fail(e);
                return;
            }
            self.check_handshake();
        }
        self.flush_tls();
    }

    /// Passes what rustls has decrypted up; false if the protocol paused
    /// or the session ended meanwhile.
    fn deliver_plaintext(&self) -> bool {
        loop {
            {
                let st = self.st.borrow();
                if st.paused || st.dead || st.error.is_some() || st.peer_closed {
                    return false;
                }
            }
            let mut buf = take_scratch(&PLAIN, PLAINTEXT_CHUNK);
            let r = {
                let mut tls = self.tls.borrow_mut();
                let Some(c) = tls.as_mut() else {
                    put_scratch(&PLAIN, buf);
                    return false;
                };
                c.reader().read(&mut buf)
            };
            match r {
                Ok(0) => {
                    put_scratch(&PLAIN, buf);
                    // close_notify: the peer will send no more.
                    self.st.borrow_mut().peer_closed = true;
                    self.call_upper(|p, t| p.read_eof(t));
                    return false;
                }
                Ok(n) => {
                    self.call_upper(|p, t| p.data_received(t, &buf[..n]));
                    put_scratch(&PLAIN, buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    put_scratch(&PLAIN, buf);
                    return true;
                }
                Err(e) => {
                    put_scratch(&PLAIN, buf);
                    self.fail(TlsError::new(TlsErrorKind::Protocol, e.to_string()));
                    return false;
                }
            }
        }
    }

    fn check_handshake(&self) {
        let done = {
            let tls = self.tls.borrow();
            tls.as_ref().is_some_and(|c| !c.is_handshaking())
        };
        if !done {
            return;
        }
        let timer = {
            let mut st = self.st.borrow_mut();
            if st.handshaken {
                return;
            }
            st.handshaken = true;
            st.early = 0;
            st.timer.take()
        };
        if let Some(t) = timer {
            t.cancel();
        }
        // rustls sends the plain text written during the handshake now.
        self.flush_tls();
        if self.st.borrow().paused {
            if let Some(l) = self.lower() {
                l.pause_reading();
            }
        }
        let waiting = self.st.borrow_mut().waiting_producer.take();
        if let Some((producer, streaming)) = waiting {
            if let Some(l) = self.lower() {
                if l.register_producer(producer.clone(), streaming).is_ok() && streaming {
                    guard("producer", || producer.resume_producing());
                }
            }
        }
        self.call_upper(|p, t| p.handshake_completed(t));
        let (close, shut) = {
            let st = self.st.borrow();
            (st.close_after_handshake, st.shut_after_handshake)
        };
        if close {
            self.st.borrow_mut().closing = false;
            self.lose_connection();
        } else if shut {
            self.lose_write_connection();
        }
    }

    /// Sends what rustls has ready for the wire.
    fn flush_tls(&self) {
        let mut out = take_scratch(&CIPHER, 0);
        out.clear();
        {
            let mut tls = self.tls.borrow_mut();
            let Some(c) = tls.as_mut() else {
                put_scratch(&CIPHER, out);
                return;
            };
            while c.wants_write() {
                match c.write_tls(&mut out) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        if !out.is_empty() {
            if let Some(l) = self.lower() {
                l.write(&out);
            }
        }
        put_scratch(&CIPHER, out);
    }

    /// Ends the session with `e`: the alert rustls queued goes out, then
    /// the connection closes and the protocol above learns why.
    pub(crate) fn fail(&self, e: TlsError) {
        {
            let mut st = self.st.borrow_mut();
            if st.dead || st.error.is_some() {
                return;
            }
            tracing::debug!(error = %e, "TLS session failed");
            st.error = Some(e);
        }
        self.flush_tls();
        self.close_lower();
    }

    fn close_lower(&self) {
        if let Some(l) = self.lower() {
            if l.write_buffer_len() > KEEP_OUT {
                l.abort_connection();
            } else {
                l.lose_connection();
            }
        }
    }

    /// The transport below reached end of file.
    pub(crate) fn lower_eof(&self) {
        let (handshaken, peer_closed) = {
            let st = self.st.borrow();
            (st.handshaken, st.peer_closed)
        };
        if peer_closed {
            // The protocol above already had its read_eof from close_notify.
            return;
        }
        let kind = if handshaken {
            TlsErrorKind::Truncated
        } else {
            TlsErrorKind::HandshakeEof
        };
        self.fail(TlsError::new(kind, ""));
    }

    /// The transport below closed: tell the protocol above, then let go.
    pub(crate) fn lower_lost(&self, reason: &CloseReason) {
        let (error, timer) = {
            let mut st = self.st.borrow_mut();
            if st.dead {
                return;
            }
            st.dead = true;
            st.stash = Vec::new();
            st.ended_with = st.error.clone();
            (st.error.take(), st.timer.take())
        };
        let waiting = self.st.borrow_mut().waiting_producer.take();
        if let Some((p, _)) = waiting {
            guard("stop_producing", || p.stop_producing());
        }
        if let Some(t) = timer {
            t.cancel();
        }
        let peer_closed = self.st.borrow().peer_closed;
        let ours = match error {
            Some(e) => Some(crate::close_reason(e)),
            // The peer said close_notify and hung up: our own close_notify
            // meeting a closed socket does not make that end unclean.
            None if peer_closed && reason.is_reset() => Some(CloseReason::new(CloseKind::Done)),
            None => None,
        };
        let protocol = self.upper.try_borrow_mut().ok().and_then(|mut s| s.take());
        if let Some(mut p) = protocol {
            p.connection_lost(ours.as_ref().unwrap_or(reason));
        }
        let lower = self.lower.borrow_mut().take();
        let upper = self.upper_handle.borrow_mut().take();
        // The session's buffers go too: a client factory keeps the layer
        // of its last connection to report how it ended.
        let session = self.tls.borrow_mut().take();
        drop((lower, upper, session));
    }

    fn drain(&self) {
        self.st.borrow_mut().drain_queued = false;
        let stash = std::mem::take(&mut self.st.borrow_mut().stash);
        if guard("TLS protocol callback", || self.process(&stash)).is_none() {
            if let Some(l) = self.lower() {
                l.abort_connection();
            }
        }
    }

    fn write_plain(&self, data: &[u8]) -> bool {
        {
            let st = self.st.borrow();
            if st.closing || st.write_shut || st.dead || st.error.is_some() || data.is_empty() {
                return false;
            }
        }
        let handshaken = {
            let mut tls = self.tls.borrow_mut();
            let Some(c) = tls.as_mut() else { return false };
            if c.writer().write_all(data).is_err() {
                return false;
            }
            !c.is_handshaking()
        };
        if !handshaken {
            self.st.borrow_mut().early += data.len();
        }
        true
    }

    /// The TLS failure that ended the connection, if one did.
    pub(crate) fn ended_with(&self) -> Option<TlsError> {
        self.st.borrow().ended_with.clone()
    }

    pub(crate) fn info(&self) -> TlsInfo {
        let tls = self.tls.borrow();
        let handshake_complete = self.st.borrow().handshaken;
        let mut info = TlsInfo {
            handshake_complete,
            alpn_protocol: None,
            protocol_version: None,
            peer_certificates: Vec::new(),
            server_name: self.server_name.clone(),
            is_client: self.server_name.is_some(),
        };
        if let Some(c) = tls.as_ref() {
            info.alpn_protocol = c.alpn_protocol().map(<[u8]>::to_vec);
            info.protocol_version = c.protocol_version();
            info.peer_certificates = c
                .peer_certificates()
                .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default();
            if let rustls::Connection::Server(s) = c {
                info.server_name = s.server_name().map(str::to_owned);
                info.is_client = false;
            }
        }
        info
    }
}

impl TransportImpl for TlsLayer {
    fn write(&self, data: &[u8]) {
        if self.write_plain(data) {
            self.flush_tls();
        }
    }

    fn write_sequence(&self, data: &[&[u8]]) {
        let mut any = false;
        for d in data {
            any |= self.write_plain(d);
        }
        if any {
            self.flush_tls();
        }
    }

    fn lose_connection(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.closing || st.dead {
                return;
            }
            st.closing = true;
            if !st.handshaken && st.error.is_none() {
                // What was written goes out once the handshake is done.
                st.close_after_handshake = true;
                return;
            }
        }
        if let Some(c) = self.tls.borrow_mut().as_mut() {
            c.send_close_notify();
        }
        self.flush_tls();
        if let Some(l) = self.lower() {
            l.lose_connection();
        }
    }

    fn abort_connection(&self) {
        if let Some(l) = self.lower() {
            l.abort_connection();
        }
    }

    fn lose_write_connection(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.closing || st.write_shut || st.dead {
                return;
            }
            if !st.handshaken && st.error.is_none() {
                st.shut_after_handshake = true;
                return;
            }
            st.write_shut = true;
        }
        if let Some(c) = self.tls.borrow_mut().as_mut() {
            c.send_close_notify();
        }
        self.flush_tls();
        if let Some(l) = self.lower() {
            l.lose_write_connection();
        }
    }

    fn peer_addr(&self) -> Address {
        self.lower()
            .map(|l| l.peer_addr())
            .unwrap_or(Address::Memory("closed".into()))
    }

    fn local_addr(&self) -> Address {
        self.lower()
            .map(|l| l.local_addr())
            .unwrap_or(Address::Memory("closed".into()))
    }

    fn pause_reading(&self) {
        let handshaken = {
            let mut st = self.st.borrow_mut();
            st.paused = true;
            st.handshaken
        };
        // The handshake goes on whatever the protocol above wants: only
        // its plain text waits. The transport below pauses once there is
        // no more handshake to read.
        if handshaken {
            if let Some(l) = self.lower() {
                l.pause_reading();
            }
        }
    }

    fn resume_reading(&self) {
        let was = std::mem::replace(&mut self.st.borrow_mut().paused, false);
        if let Some(l) = self.lower() {
            l.resume_reading();
        }
        if was {
            // Plain text and ciphertext held while paused go up from the
            // reactor, not from inside this call.
            self.queue_drain();
        }
    }

    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), AlreadyRegistered> {
        let Some(l) = self.lower() else {
            return Err(AlreadyRegistered::new(producer));
        };
        {
            let mut st = self.st.borrow_mut();
            if !st.handshaken {
                if st.waiting_producer.is_some() || st.dead || l.is_closed() {
                    return Err(AlreadyRegistered::new(producer));
                }
                st.waiting_producer = Some((producer.clone(), streaming));
                drop(st);
                if streaming {
                    producer.pause_producing();
                }
                return Ok(());
            }
        }
        l.register_producer(producer, streaming)
    }

    fn unregister_producer(&self) {
        let waiting = self.st.borrow_mut().waiting_producer.take();
        drop(waiting);
        if let Some(l) = self.lower() {
            l.unregister_producer();
        }
    }

    fn set_write_watermarks(&self, low: usize, high: usize) {
        if let Some(l) = self.lower() {
            l.set_write_watermarks(low, high);
        }
    }

    fn write_buffer_len(&self) -> usize {
        self.lower().map_or(0, |l| l.write_buffer_len()) + self.st.borrow().early
    }

    fn is_closed(&self) -> bool {
        self.lower().is_none_or_closed()
    }

    fn is_disconnecting(&self) -> bool {
        self.st.borrow().closing || self.lower().is_none_or(|l| l.is_disconnecting())
    }

    fn reactor(&self) -> Option<Reactor> {
        TlsLayer::reactor(self)
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self.lower() {
            Some(l) => l.set_nodelay(on),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn find_layer(&self, id: TypeId) -> Option<Rc<dyn Any>> {
        if id == TypeId::of::<TlsLayer>() {
            return self.me.upgrade().map(|me| me as Rc<dyn Any>);
        }
        self.lower()?.find_layer_by_id(id)
    }

    fn is_handshaking(&self) -> bool {
        !self.st.borrow().handshaken
    }

    fn is_secure(&self) -> bool {
        let st = self.st.borrow();
        st.handshaken && !st.dead
    }

    fn send_file_descriptor(&self, fd: braid::fd::BorrowedFd<'_>) -> io::Result<()> {
        // It travels with the next record, which carries the next bytes.
        match self.lower() {
            Some(l) => l.send_file_descriptor(fd),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Layer for TlsLayer {
    fn start(&self, lower: Transport, upper: Transport) {
        self.attach(lower, upper);
        self.begin();
    }

    fn adopt_protocol(&self, protocol: Box<dyn Protocol>) {
        self.set_upper(protocol);
    }

    fn lower_data_received(&self, data: &[u8]) {
        self.receive(data);
    }

    fn lower_read_eof(&self) {
        self.lower_eof();
    }

    fn lower_connection_lost(&self, reason: &CloseReason) {
        self.lower_lost(reason);
    }

    fn lower_file_descriptor_received(&self, fd: OwnedFd) {
        self.call_upper(|p, t| p.file_descriptor_received(t, fd));
    }
}

trait ClosedExt {
    fn is_none_or_closed(&self) -> bool;
}

impl ClosedExt for Option<Transport> {
    fn is_none_or_closed(&self) -> bool {
        self.as_ref().is_none_or(|l| l.is_closed())
    }
}

/// A protocol wrapped in TLS: put it on any transport, and the protocol
/// inside sees plain text (Twisted's `TLSMemoryBIOProtocol`).
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use braid::testing::connected_pair;
/// use braid_tls::testing as test_pki;
/// use braid_tls::{TlsProtocol, TlsStart};
/// use braid::{Protocol, Reactor, Transport};
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &Transport) { t.write(b"hello") }
///     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
/// }
/// #[derive(Default)]
/// struct Heard(Vec<u8>);
/// impl Protocol for Heard {
///     fn data_received(&mut self, _: &Transport, d: &[u8]) { self.0.extend_from_slice(d) }
/// }
///
/// let reactor = Reactor::new()?;
/// let heard = Rc::new(RefCell::new(Heard::default()));
/// let pair = connected_pair(
///     &reactor,
///     TlsProtocol::new(TlsStart::server(&test_pki::server_config()), heard.clone()),
///     TlsProtocol::new(TlsStart::client(&test_pki::client_config(), "localhost"), Hello),
/// );
/// pair.pump();
/// assert_eq!(heard.borrow().0, b"hello");
/// # std::io::Result::Ok(())
/// ```
pub struct TlsProtocol {
    layer: Rc<TlsLayer>,
    below: Layered,
}

impl TlsProtocol {
    /// Wraps `protocol` in the TLS side `start` describes. A configuration
    /// error (in `start`) ends the connection as soon as it is made, with
    /// [`TlsErrorKind::Config`].
    pub fn new(start: Result<TlsStart, TlsError>, protocol: impl Protocol) -> Self {
        let layer = TlsLayer::new(start);
        let below = Layered::new(layer.clone(), protocol);
        TlsProtocol { layer, below }
    }

    pub(crate) fn layer(&self) -> Rc<TlsLayer> {
        self.layer.clone()
    }
}

impl fmt::Debug for TlsProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsProtocol")
            .field("handshaken", &self.layer.st.borrow().handshaken)
            .finish()
    }
}

impl Protocol for TlsProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        self.below.connection_made(transport);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.below.data_received(transport, data);
    }

    fn read_eof(&mut self, transport: &Transport) {
        self.below.read_eof(transport);
    }

    fn connection_lost(&mut self, reason: &CloseReason) {
        self.below.connection_lost(reason);
    }

    fn file_descriptor_received(&mut self, transport: &Transport, fd: OwnedFd) {
        self.below.file_descriptor_received(transport, fd);
    }
}
