//! An SSH channel as a braid transport (Twisted's `SSHChannel`): any
//! [`Protocol`] runs on it unchanged. Writes queue in the channel and go
//! out as the peer's window allows; a producer registered on the channel
//! is paused while more than the high watermark waits. What arrives is
//! held against the window this side advertises: while the protocol has
//! paused reading, the peer's window is not reopened, so it stops sending
//! (SSH's flow control is braid's backpressure, both ways).
//!
//! [`SessionChannel`] is the typed information of a session channel
//! (`transport.layer::<SessionChannel>()`): the user, the terminal asked
//! for, stderr, the exit status, window changes and signals.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};

use braid::{
    catch_panic, Address, AlreadyRegistered, CloseKind, CloseReason, Producer, Protocol, Reactor,
    Transport, TransportImpl,
};

/// Default high watermark of a channel's write queue: a producer is
/// paused above it (the window OpenSSH advertises is 2 MiB).
pub const CHANNEL_HIGH_WATER: usize = 256 * 1024;

/// The connection a channel belongs to, as the channel sees it.
pub(crate) trait ChannelHost {
    /// Something changed (a write, a close, a resume): run the connection
    /// soon.
    fn kick(&self);
    fn reactor(&self) -> Option<Reactor>;
    fn peer_addr(&self) -> Address;
    fn local_addr(&self) -> Address;
}

/// A terminal the client asked for (`pty-req`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtyRequest {
    /// The `TERM` value ("xterm-256color").
    pub term: String,
    /// The size asked for.
    pub size: WindowSize,
}

/// A terminal's size (`pty-req`, `window-change`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowSize {
    /// Columns of characters.
    pub cols: u32,
    /// Rows of characters.
    pub rows: u32,
    /// Width in pixels, 0 if unknown.
    pub width: u32,
    /// Height in pixels, 0 if unknown.
    pub height: u32,
}

/// How a session's command ended, sent before the channel closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReport {
    /// `exit-status`: the command's exit code.
    Status(u32),
    /// `exit-signal`: the signal's name without "SIG" ("KILL"), whether a
    /// core was dumped, a message.
    Signal {
        /// The name, as RFC 4254 6.10 spells it ("TERM", "SEGV").
        name: String,
        /// A core was dumped.
        core_dumped: bool,
        /// A message for the user.
        message: String,
    },
}

type WinchHandler = Box<dyn Fn(WindowSize)>;
type SignalHandler = Box<dyn Fn(&str)>;
type DataHandler = Box<dyn Fn(&[u8])>;

/// One channel's state, shared by its transport, its [`SessionChannel`]
/// and the connection.
pub(crate) struct ChanInner {
    pub(crate) me: Weak<ChanInner>,
    pub(crate) host: Weak<dyn ChannelHost>,
    /// sunset's local number.
    pub(crate) num: u32,
    pub(crate) username: String,
    pub(crate) protocol: RefCell<Option<Box<dyn Protocol>>>,
    /// Written by the protocol, not yet sent (stdout, then stderr).
    pub(crate) outbox: RefCell<VecDeque<u8>>,
    pub(crate) errbox: RefCell<VecDeque<u8>>,
    /// Received, not yet given to the protocol (the peer's window is
    /// reopened only as this drains).
    pub(crate) inbox: RefCell<VecDeque<u8>>,
    /// A client's: stderr received, for the handler.
    pub(crate) errinbox: RefCell<VecDeque<u8>>,
    pub(crate) reading_paused: Cell<bool>,
    /// The peer sent EOF; delivered as `read_eof` once the inbox drained.
    pub(crate) eof_received: Cell<bool>,
    pub(crate) eof_delivered: Cell<bool>,
    /// `lose_connection`: send what is queued, then EOF, exit, CLOSE.
    pub(crate) closing: Cell<bool>,
    /// `lose_write_connection`: send what is queued, then EOF.
    pub(crate) write_shut: Cell<bool>,
    pub(crate) aborted: Cell<bool>,
    pub(crate) exit: RefCell<Option<ExitReport>>,
    pub(crate) exit_sent: Cell<bool>,
    /// `connection_lost` was called (or is on its way).
    pub(crate) lost: Cell<bool>,
    pub(crate) started: Cell<bool>,
    producer: RefCell<Option<(Rc<dyn Producer>, bool)>>,
    producer_paused: Cell<bool>,
    high: Cell<usize>,
    low: Cell<usize>,
    pub(crate) pty: RefCell<Option<PtyRequest>>,
    pub(crate) env: RefCell<Vec<(String, String)>>,
    on_winch: RefCell<Option<WinchHandler>>,
    on_signal: RefCell<Option<SignalHandler>>,
    on_stderr: RefCell<Option<DataHandler>>,
    /// A client's: how the remote command ended.
    pub(crate) remote_exit: RefCell<Option<ExitReport>>,
    /// A client's: requests to send (window changes, signals).
    pub(crate) requests: RefCell<Vec<ChannelRequest>>,
}

/// A request a client sends on its session channel.
#[derive(Clone, Debug)]
pub(crate) enum ChannelRequest {
    WindowChange(WindowSize),
    Signal(String),
}

impl ChanInner {
    pub(crate) fn new(host: Weak<dyn ChannelHost>, num: u32, username: &str) -> Rc<ChanInner> {
        Rc::new_cyclic(|me| ChanInner {
            me: me.clone(),
            host,
            num,
            username: username.to_owned(),
            protocol: RefCell::new(None),
            outbox: RefCell::default(),
            errbox: RefCell::default(),
            inbox: RefCell::default(),
            errinbox: RefCell::default(),
            reading_paused: Cell::new(false),
            eof_received: Cell::new(false),
            eof_delivered: Cell::new(false),
            closing: Cell::new(false),
            write_shut: Cell::new(false),
            aborted: Cell::new(false),
            exit: RefCell::new(None),
            exit_sent: Cell::new(false),
            lost: Cell::new(false),
            started: Cell::new(false),
            producer: RefCell::new(None),
            producer_paused: Cell::new(false),
            high: Cell::new(CHANNEL_HIGH_WATER),
            low: Cell::new(CHANNEL_HIGH_WATER / 4),
            pty: RefCell::new(None),
            env: RefCell::default(),
            on_winch: RefCell::new(None),
            on_signal: RefCell::new(None),
            on_stderr: RefCell::new(None),
            remote_exit: RefCell::new(None),
            requests: RefCell::default(),
        })
    }

    pub(crate) fn transport(&self) -> Transport {
        Transport::new(self.me.upgrade().expect("a live channel"))
    }

    fn kick(&self) {
        if let Some(h) = self.host.upgrade() {
            h.kick();
        }
    }

    /// Bytes queued for the peer.
    pub(crate) fn queued(&self) -> usize {
        self.outbox.borrow().len() + self.errbox.borrow().len()
    }

    /// Whether writes are refused: closing, shut or gone.
    fn write_closed(&self) -> bool {
        self.closing.get() || self.write_shut.get() || self.lost.get() || self.aborted.get()
    }

    /// Calls the protocol, panics isolated: a panic aborts this channel.
    pub(crate) fn call(&self, f: impl FnOnce(&mut dyn Protocol, &Transport)) {
        let t = self.transport();
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            return;
        };
        let Some(p) = slot.as_mut() else { return };
        let ok = catch_panic("ssh channel protocol", || f(&mut **p, &t));
        drop(slot);
        if ok.is_none() {
            self.abort_connection();
        }
    }

    /// Starts `protocol` on this channel: `connection_made`.
    pub(crate) fn start(&self, protocol: Box<dyn Protocol>) {
        *self.protocol.borrow_mut() = Some(protocol);
        self.started.set(true);
        self.call(|p, t| p.connection_made(t));
    }

    /// Tells the producer what the queue asks for.
    pub(crate) fn sync_producer(&self) {
        let queued = self.queued();
        let Some((p, streaming)) = self.producer.borrow().clone() else {
            return;
        };
        if streaming && queued > self.high.get() && !self.producer_paused.replace(true) {
            p.pause_producing();
        } else if queued <= self.low.get() && (self.producer_paused.replace(false) || !streaming) {
            // A paused streaming producer goes on; a pull producer is
            // asked for more each time the queue drains.
            p.resume_producing();
        }
    }

    /// The channel is gone: `connection_lost` once, the producer
    /// stopped.
    pub(crate) fn lost(&self, kind: CloseKind) {
        if self.lost.get() {
            return;
        }
        // What arrived before the close is the protocol's: given to it
        // before the end (read in the same turn as the peer's CLOSE).
        if self.started.get() {
            let rest: Vec<u8> = self.inbox.borrow_mut().drain(..).collect();
            if !rest.is_empty() {
                self.call(|p, t| p.data_received(t, &rest));
            }
            let err: Vec<u8> = self.errinbox.borrow_mut().drain(..).collect();
            if !err.is_empty() {
                self.stderr_received(&err);
            }
        }
        if self.lost.replace(true) {
            return;
        }
        self.outbox.borrow_mut().clear();
        self.errbox.borrow_mut().clear();
        self.inbox.borrow_mut().clear();
        if let Some((p, _)) = self.producer.borrow_mut().take() {
            p.stop_producing();
        }
        let p = self.protocol.borrow_mut().take();
        if let Some(mut p) = p {
            let _ = catch_panic("ssh channel connection_lost", || {
                p.connection_lost(&CloseReason::new(kind))
            });
        }
        self.on_winch.borrow_mut().take();
        self.on_signal.borrow_mut().take();
        self.on_stderr.borrow_mut().take();
    }

    pub(crate) fn window_changed(&self, size: WindowSize) {
        if let Some(p) = self.pty.borrow_mut().as_mut() {
            p.size = size;
        }
        if let Some(f) = self.on_winch.borrow().as_ref() {
            let _ = catch_panic("ssh window-change handler", || f(size));
        }
    }

    pub(crate) fn stderr_received(&self, data: &[u8]) {
        if let Some(f) = self.on_stderr.borrow().as_ref() {
            let _ = catch_panic("ssh stderr handler", || f(data));
        }
    }

    pub(crate) fn signalled(&self, name: &str) {
        if let Some(f) = self.on_signal.borrow().as_ref() {
            let _ = catch_panic("ssh signal handler", || f(name));
        }
    }
}

impl TransportImpl for ChanInner {
    fn write(&self, data: &[u8]) {
        if self.write_closed() || data.is_empty() {
            return;
        }
        self.outbox.borrow_mut().extend(data);
        self.sync_producer();
        self.kick();
    }
    fn lose_connection(&self) {
        if !self.closing.replace(true) {
            self.kick();
        }
    }
    fn abort_connection(&self) {
        if !self.aborted.replace(true) {
            self.outbox.borrow_mut().clear();
            self.errbox.borrow_mut().clear();
            self.closing.set(true);
            self.kick();
        }
    }
    fn lose_write_connection(&self) {
        if !self.write_shut.replace(true) {
            self.kick();
        }
    }
    fn peer_addr(&self) -> Address {
        self.host
            .upgrade()
            .map_or(Address::Memory("ssh channel".into()), |h| h.peer_addr())
    }
    fn local_addr(&self) -> Address {
        self.host
            .upgrade()
            .map_or(Address::Memory("ssh channel".into()), |h| h.local_addr())
    }
    fn pause_reading(&self) {
        self.reading_paused.set(true);
    }
    fn resume_reading(&self) {
        if self.reading_paused.replace(false) {
            self.kick();
        }
    }
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), AlreadyRegistered> {
        if self.producer.borrow().is_some() || self.lost.get() {
            return Err(AlreadyRegistered::new(producer));
        }
        *self.producer.borrow_mut() = Some((producer.clone(), streaming));
        self.producer_paused.set(false);
        if !streaming {
            producer.resume_producing();
        }
        self.sync_producer();
        Ok(())
    }
    fn unregister_producer(&self) {
        self.producer.borrow_mut().take();
        self.producer_paused.set(false);
    }
    fn set_write_watermarks(&self, low: usize, high: usize) {
        self.high.set(high.max(1));
        self.low.set(low.min(high));
        self.sync_producer();
    }
    fn write_buffer_len(&self) -> usize {
        self.queued()
    }
    fn is_closed(&self) -> bool {
        self.lost.get()
    }
    fn is_disconnecting(&self) -> bool {
        self.closing.get() && !self.lost.get()
    }
    fn reactor(&self) -> Option<Reactor> {
        self.host.upgrade().and_then(|h| h.reactor())
    }
    fn find_layer(&self, id: TypeId) -> Option<Rc<dyn Any>> {
        (id == TypeId::of::<SessionChannel>()).then(|| {
            Rc::new(SessionChannel {
                inner: self.me.clone(),
            }) as Rc<dyn Any>
        })
    }
    fn is_secure(&self) -> bool {
        true
    }
}

/// What a protocol running on a session channel can ask and tell beyond
/// a transport: `transport.layer::<SessionChannel>()`.
///
/// ```
/// use braid::{Protocol, Transport};
/// use braid_ssh::SessionChannel;
///
/// /// `exec` of anything: says who you are on stderr, exits 3.
/// struct WhoAmI;
/// impl Protocol for WhoAmI {
///     fn connection_made(&mut self, t: &Transport) {
///         if let Some(ch) = t.layer::<SessionChannel>() {
///             ch.write_stderr(format!("you are {}\n", ch.username()).as_bytes());
///             ch.set_exit(braid_ssh::ExitReport::Status(3));
///         }
///         t.lose_connection();
///     }
///     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
/// }
/// ```
#[derive(Clone)]
pub struct SessionChannel {
    inner: Weak<ChanInner>,
}

impl fmt::Debug for SessionChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.upgrade() {
            Some(c) => f
                .debug_struct("SessionChannel")
                .field("num", &c.num)
                .field("user", &c.username)
                .finish(),
            None => f.write_str("SessionChannel(closed)"),
        }
    }
}

impl SessionChannel {
    pub(crate) fn new(inner: Weak<ChanInner>) -> Self {
        SessionChannel { inner }
    }

    /// The user this session belongs to.
    pub fn username(&self) -> String {
        self.inner
            .upgrade()
            .map(|c| c.username.clone())
            .unwrap_or_default()
    }

    /// The terminal the client asked for, if any (`pty-req`).
    pub fn pty(&self) -> Option<PtyRequest> {
        self.inner.upgrade()?.pty.borrow().clone()
    }

    /// The environment variables the server accepted (`env`).
    pub fn env(&self) -> Vec<(String, String)> {
        self.inner
            .upgrade()
            .map(|c| c.env.borrow().clone())
            .unwrap_or_default()
    }

    /// Writes to the session's stderr (`SSH_MSG_CHANNEL_EXTENDED_DATA`).
    pub fn write_stderr(&self, data: &[u8]) {
        let Some(c) = self.inner.upgrade() else {
            return;
        };
        if c.write_closed() || data.is_empty() {
            return;
        }
        c.errbox.borrow_mut().extend(data);
        c.sync_producer();
        c.kick();
    }

    /// How the command ended, sent (as `exit-status` or `exit-signal`)
    /// after the output and before the channel's CLOSE. Call it, then
    /// `lose_connection`.
    pub fn set_exit(&self, exit: ExitReport) {
        if let Some(c) = self.inner.upgrade() {
            *c.exit.borrow_mut() = Some(exit);
            c.kick();
        }
    }

    /// A client's session: called with what the remote command writes to
    /// its stderr (its stdout is the channel's data).
    pub fn on_stderr(&self, f: impl Fn(&[u8]) + 'static) {
        if let Some(c) = self.inner.upgrade() {
            *c.on_stderr.borrow_mut() = Some(Box::new(f));
        }
    }

    /// A client's session: how the remote command ended, once the server
    /// said (`exit-status`/`exit-signal`, before the channel closes).
    pub fn remote_exit(&self) -> Option<ExitReport> {
        self.inner.upgrade()?.remote_exit.borrow().clone()
    }

    /// A client's session: tells the server the terminal is now `size`
    /// (`window-change`; the remote program gets `SIGWINCH`).
    pub fn window_change(&self, size: WindowSize) {
        self.request(ChannelRequest::WindowChange(size));
    }

    /// A client's session: asks the server to send the remote command
    /// the signal `name` ("INT", "TERM": RFC 4254 6.9, without "SIG").
    pub fn signal(&self, name: &str) {
        self.request(ChannelRequest::Signal(name.to_owned()));
    }

    fn request(&self, r: ChannelRequest) {
        if let Some(c) = self.inner.upgrade() {
            if !c.lost.get() {
                c.requests.borrow_mut().push(r);
                c.kick();
            }
        }
    }

    /// Called with the new size on each `window-change`.
    pub fn on_window_change(&self, f: impl Fn(WindowSize) + 'static) {
        if let Some(c) = self.inner.upgrade() {
            *c.on_winch.borrow_mut() = Some(Box::new(f));
        }
    }

    /// Called with the signal's name ("INT", without "SIG") on each
    /// `signal` request.
    pub fn on_signal(&self, f: impl Fn(&str) + 'static) {
        if let Some(c) = self.inner.upgrade() {
            *c.on_signal.borrow_mut() = Some(Box::new(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoHost;
    impl ChannelHost for NoHost {
        fn kick(&self) {}
        fn reactor(&self) -> Option<Reactor> {
            None
        }
        fn peer_addr(&self) -> Address {
            Address::Memory("peer".into())
        }
        fn local_addr(&self) -> Address {
            Address::Memory("local".into())
        }
    }

    struct Record(Rc<RefCell<Vec<String>>>);
    impl Protocol for Record {
        fn data_received(&mut self, _: &Transport, data: &[u8]) {
            self.0
                .borrow_mut()
                .push(format!("data {}", String::from_utf8_lossy(data)));
        }
        fn connection_lost(&mut self, _: &CloseReason) {
            self.0.borrow_mut().push("lost".into());
        }
    }

    #[test]
    fn data_read_with_the_close_reaches_the_protocol_before_the_end() {
        let host: Rc<dyn ChannelHost> = Rc::new(NoHost);
        let chan = ChanInner::new(Rc::downgrade(&host), 0, "alice");
        let log = Rc::new(RefCell::new(Vec::new()));
        chan.start(Box::new(Record(log.clone())));
        let err = Rc::new(RefCell::new(Vec::new()));
        let e2 = err.clone();
        SessionChannel::new(Rc::downgrade(&chan))
            .on_stderr(move |d| e2.borrow_mut().extend_from_slice(d));
        chan.inbox.borrow_mut().extend(b"last words");
        chan.errinbox.borrow_mut().extend(b"oops");
        chan.lost(CloseKind::Done);
        assert_eq!(*log.borrow(), ["data last words", "lost"]);
        assert_eq!(*err.borrow(), b"oops");
        // Once only.
        chan.lost(CloseKind::Done);
        assert_eq!(log.borrow().len(), 2);
    }

    #[test]
    fn writes_queue_and_pause_the_producer_above_the_high_watermark() {
        struct P(Rc<Cell<i32>>);
        impl Producer for P {
            fn pause_producing(&self) {
                self.0.set(self.0.get() - 1);
            }
            fn resume_producing(&self) {
                self.0.set(self.0.get() + 1);
            }
            fn stop_producing(&self) {}
        }
        let host: Rc<dyn ChannelHost> = Rc::new(NoHost);
        let chan = ChanInner::new(Rc::downgrade(&host), 0, "alice");
        let t = chan.transport();
        let state = Rc::new(Cell::new(0));
        t.register_producer(Rc::new(P(state.clone())), true)
            .unwrap();
        t.set_write_watermarks(10, 100);
        t.write(&[0; 101]);
        assert_eq!(state.get(), -1, "paused");
        assert_eq!(t.write_buffer_len(), 101);
        chan.outbox.borrow_mut().drain(..95);
        chan.sync_producer();
        assert_eq!(state.get(), 0, "resumed");
    }
}
