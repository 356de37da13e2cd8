//! Async streams on the reactor, implementing the `futures-io` traits
//! (`AsyncRead`, `AsyncWrite`), so that runtime-agnostic async crates
//! (WebSocket, TLS, HTTP) run over braid inside any host loop.
//!
//! A [`Stream`] wraps any connection: TCP ([`Stream::connect`],
//! [`TcpListener`]), or any other transport a protocol can run on (Unix
//! sockets, TLS, an SSH channel, the in-memory pair), through
//! [`StreamProtocol`]: give it to any listener or connector as the
//! protocol, and it hands the connection over as a `Stream`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};

use crate::connector::Connector;
use crate::defer::{Deferred, Failure};
use crate::error::{CloseReason, ConnectError};
use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::reactor::Reactor;
use crate::tcp::ListeningPort;
use crate::transport::{Address, Producer, Transport};

/// Unread bytes above which reading from the socket pauses.
const INBOX_HIGH: usize = 256 * 1024;
/// ... and below which it resumes.
const INBOX_LOW: usize = 64 * 1024;
/// Capacity an emptied inbox keeps for the next read; a larger one is
/// freed.
const INBOX_KEEP: usize = 4 * 1024;

#[derive(Default)]
struct State {
    inbox: VecDeque<u8>,
    eof: bool,
    /// Why the connection ended, if it ended uncleanly (kind and text).
    lost: Option<(io::ErrorKind, Rc<str>)>,
    /// A layer's handshake (TLS) completed.
    handshake_done: bool,
    handshake_waker: Option<Waker>,
    /// Run once when the connection is lost.
    on_lost: Option<Box<dyn FnOnce()>>,
    reading_paused: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    /// The transport asked us (as its producer) to stop writing.
    write_paused: Cell<bool>,
    /// The protocol the connection was handed to by
    /// [`Stream::into_protocol`]: every later event goes to it.
    handed_to: Option<Box<dyn Protocol>>,
    handed_off: bool,
}

/// The protocol side of a [`Stream`]: put it on any connection (from any
/// listener, connector or custom transport), and it hands the connection
/// to async code as a [`Stream`] as soon as it is made.
///
/// ```
/// use braid::aio::{Stream, StreamProtocol};
/// use braid::testing::connected_pair;
/// use futures_util::{AsyncReadExt, AsyncWriteExt};
/// use std::{cell::RefCell, rc::Rc};
///
/// let reactor = braid::Reactor::new()?;
/// let streams: Rc<RefCell<Vec<Stream>>> = Rc::default();
/// let (a, b) = (streams.clone(), streams.clone());
/// let pair = connected_pair(
///     &reactor,
///     StreamProtocol::new(move |s| a.borrow_mut().push(s)),
///     StreamProtocol::new(move |s| b.borrow_mut().push(s)),
/// );
/// let mut client = streams.borrow_mut().pop().unwrap();
/// let mut server = streams.borrow_mut().pop().unwrap();
/// let r = reactor.clone();
/// let task = reactor.spawn_local(async move {
///     client.write_all(b"ping").await.unwrap();
///     let mut buf = [0; 4];
///     server.read_exact(&mut buf).await.unwrap();
///     buf
/// });
/// pair.pump();
/// reactor.run_due();
/// pair.pump();
/// assert_eq!(r.block_on(task)?.unwrap(), *b"ping");
/// # std::io::Result::Ok(())
/// ```
pub struct StreamProtocol {
    state: Rc<RefCell<State>>,
    on_made: Option<Box<dyn FnOnce(Transport)>>,
}

impl StreamProtocol {
    /// A protocol that hands its connection to `f` as an async stream as
    /// soon as it is made: how async code (HTTP, for one) serves
    /// connections from any listener, TLS ones included.
    pub fn new(f: impl FnOnce(Stream) + 'static) -> StreamProtocol {
        let state: Rc<RefCell<State>> = Rc::default();
        let st = state.clone();
        StreamProtocol {
            state,
            on_made: Some(Box::new(move |transport| {
                f(Stream {
                    state: st,
                    transport,
                })
            })),
        }
    }
}

/// The writer side as the transport's producer: pause and resume wake the
/// task blocked in `poll_write`. Only `Cell`s are touched here, since the
/// calls come from inside `Transport::write`.
struct WriteGate(Rc<RefCell<State>>);

impl Producer for WriteGate {
    fn pause_producing(&self) {
        if let Ok(s) = self.0.try_borrow() {
            s.write_paused.set(true);
        }
    }
    fn resume_producing(&self) {
        let w = match self.0.try_borrow_mut() {
            Ok(mut s) => {
                s.write_paused.set(false);
                s.write_waker.take()
            }
            Err(_) => None,
        };
        if let Some(w) = w {
            w.wake();
        }
    }
    fn stop_producing(&self) {}
}

impl StreamProtocol {
    /// After [`Stream::into_protocol`]: the event goes to that protocol.
    /// False if the connection is still the stream's.
    fn forward(&self, f: impl FnOnce(&mut dyn Protocol)) -> bool {
        let taken = {
            let mut s = self.state.borrow_mut();
            if !s.handed_off {
                return false;
            }
            s.handed_to.take()
        };
        match taken {
            Some(mut p) => {
                f(&mut *p);
                self.state.borrow_mut().handed_to = Some(p);
            }
            None => tracing::warn!("aio: handed-off protocol re-entered; event skipped"),
        }
        true
    }
}

impl Protocol for StreamProtocol {
    fn connection_made(&mut self, t: &Transport) {
        let _ = t.register_producer(Rc::new(WriteGate(self.state.clone())), true);
        if let Some(f) = self.on_made.take() {
            f(t.clone());
        }
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        if self.forward(|p| p.data_received(t, data)) {
            return;
        }
        let w = {
            let mut s = self.state.borrow_mut();
            s.inbox.extend(data);
            if s.inbox.len() >= INBOX_HIGH && !s.reading_paused {
                s.reading_paused = true;
                t.pause_reading();
            }
            s.read_waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn handshake_completed(&mut self, t: &Transport) {
        if self.forward(|p| p.handshake_completed(t)) {
            return;
        }
        let w = {
            let mut s = self.state.borrow_mut();
            s.handshake_done = true;
            s.handshake_waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn read_eof(&mut self, t: &Transport) {
        if self.forward(|p| p.read_eof(t)) {
            return;
        }
        // Half-close: the write side stays open, as with any TCP stream.
        let w = {
            let mut s = self.state.borrow_mut();
            s.eof = true;
            s.read_waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn connection_lost(&mut self, reason: &CloseReason) {
        if self.forward(|p| p.connection_lost(reason)) {
            let f = self.state.borrow_mut().on_lost.take();
            if let Some(f) = f {
                f();
            }
            return;
        }
        let (r, w) = {
            let mut s = self.state.borrow_mut();
            let kind = if reason.is_clean() {
                io::ErrorKind::BrokenPipe
            } else {
                reason
                    .io_error()
                    .map(|e| e.kind())
                    .unwrap_or(io::ErrorKind::ConnectionAborted)
            };
            s.lost = Some((kind, reason.to_string().into()));
            if reason.is_clean() {
                s.eof = true;
            }
            (s.read_waker.take(), s.write_waker.take())
        };
        let (h, f) = {
            let mut s = self.state.borrow_mut();
            (s.handshake_waker.take(), s.on_lost.take())
        };
        for w in [r, w, h].into_iter().flatten() {
            w.wake();
        }
        if let Some(f) = f {
            f();
        }
    }
}

impl fmt::Debug for StreamProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamProtocol").finish_non_exhaustive()
    }
}

/// The client factory behind [`Stream::connect`] and its siblings: given
/// by [`Stream::connect_with`] to pass to a `connect_*` method.
pub struct StreamFactory {
    state: Rc<RefCell<State>>,
    made: Option<Box<dyn FnOnce(Transport)>>,
    failed: Option<Box<dyn FnOnce(io::Error)>>,
}
impl fmt::Debug for StreamFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamFactory").finish_non_exhaustive()
    }
}

impl Factory for StreamFactory {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        Some(Box::new(StreamProtocol {
            state: self.state.clone(),
            on_made: self.made.take(),
        }))
    }
}
impl ClientFactory for StreamFactory {
    fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
        if let Some(f) = self.failed.take() {
            let kind = reason
                .io_error()
                .map(|e| e.kind())
                .unwrap_or(io::ErrorKind::Other);
            f(io::Error::new(kind, reason.to_string()));
        }
    }
}

/// An async connection: `futures-io`'s `AsyncRead + AsyncWrite` over any
/// braid transport (TCP, Unix, TLS, in-memory, a custom one). Closing
/// (`poll_close`) shuts the write side down; dropping the stream closes the
/// connection after pending writes.
pub struct Stream {
    state: Rc<RefCell<State>>,
    transport: Transport,
}

/// The former name of [`Stream`], from when it carried only TCP.
pub type TcpStream = Stream;

impl Stream {
    /// Connects to `addr` over TCP (as `tokio::net::TcpStream::connect`
    /// does, on this reactor).
    ///
    /// # Errors
    ///
    /// The connection attempt's error (refused, unreachable, ...).
    pub async fn connect(reactor: &Reactor, addr: SocketAddr) -> io::Result<Stream> {
        Self::connect_timeout(reactor, addr, None).await
    }

    /// [`connect`](Self::connect), failing with `TimedOut` after `timeout`
    /// if given (as `std::net::TcpStream::connect_timeout`).
    ///
    /// # Errors
    ///
    /// The connection attempt's error (refused, timed out, ...).
    pub async fn connect_timeout(
        reactor: &Reactor,
        addr: SocketAddr,
        timeout: Option<Duration>,
    ) -> io::Result<Stream> {
        let r = reactor.clone();
        Self::connect_with(move |f| {
            r.connect_tcp(addr, f, timeout);
        })
        .await
    }

    /// Connects to `host:port` as
    /// [`Reactor::connect_tcp_host`](crate::Reactor::connect_tcp_host) does:
    /// the name through the installed resolver, off the reactor thread (by
    /// default getaddrinfo on the pool, honouring `/etc/hosts` and
    /// nsswitch), then Happy Eyeballs over the addresses.
    ///
    /// # Errors
    ///
    /// The resolution's or the connection attempt's error.
    pub async fn connect_host(reactor: &Reactor, host: &str, port: u16) -> io::Result<Stream> {
        Self::connect_host_timeout(reactor, host, port, None).await
    }

    /// [`connect_host`](Self::connect_host), each attempt failing after
    /// `timeout` if given.
    ///
    /// # Errors
    ///
    /// The resolution's or the connection attempt's error.
    pub async fn connect_host_timeout(
        reactor: &Reactor,
        host: &str,
        port: u16,
        timeout: Option<Duration>,
    ) -> io::Result<Stream> {
        let r = reactor.clone();
        let host = host.to_owned();
        Self::connect_with(move |f| {
            r.connect_tcp_host(&host, port, f, timeout);
        })
        .await
    }

    /// Waits for a layer's handshake (TLS) to complete: at once on a
    /// connection without one.
    ///
    /// # Errors
    ///
    /// The error that ended the connection first (a TLS failure, say).
    pub async fn handshake(&self) -> io::Result<()> {
        if self.transport.is_handshaking() {
            return std::future::poll_fn(|cx| {
                let mut s = self.state.borrow_mut();
                if s.handshake_done {
                    return Poll::Ready(Ok(()));
                }
                if let Some((kind, msg)) = &s.lost {
                    return Poll::Ready(Err(io::Error::new(*kind, msg.to_string())));
                }
                s.handshake_waker = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
        }
        Ok(())
    }

    /// Connects through `start`, which is given the client factory to pass
    /// to a `connect_*` method (TLS's, a SOCKS proxy's, one of your own).
    ///
    /// # Errors
    ///
    /// The connection attempt's error, as the factory heard it.
    pub async fn connect_with(start: impl FnOnce(StreamFactory)) -> io::Result<Stream> {
        let d: Deferred<io::Result<Stream>, Failure> = Deferred::new();
        let ok = RefCell::new(Some(d.resolver()));
        let ok = Rc::new(ok);
        let err = ok.clone();
        let state = Rc::new(RefCell::new(State::default()));
        let st = state.clone();
        start(StreamFactory {
            state: state.clone(),
            made: Some(Box::new(move |t| {
                if let Some(r) = ok.borrow_mut().take() {
                    r.callback(Ok(Stream {
                        state: st,
                        transport: t,
                    }));
                }
            })),
            failed: Some(Box::new(move |e| {
                if let Some(r) = err.borrow_mut().take() {
                    r.callback(Err(e));
                }
            })),
        });
        d.await.map_err(|f| io::Error::other(f.to_string()))?
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Address {
        self.transport.peer_addr()
    }

    /// This end's address.
    pub fn local_addr(&self) -> Address {
        self.transport.local_addr()
    }

    /// The underlying transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// A cheap, cloneable handle for "send this now" from any callback on
    /// the reactor's thread (a GTK button, a timer), with no task, no
    /// `split()` and no async mutex: it is the stream's transport, so what
    /// it writes goes out in order with what the stream's own
    /// `AsyncWrite` side writes, at message granularity. It never blocks;
    /// watch [`Transport::write_buffer_len`] to hold back from a peer that
    /// does not read.
    ///
    /// ```no_run
    /// # async fn demo(reactor: braid::Reactor) -> std::io::Result<()> {
    /// use braid::aio::Stream;
    /// let stream = Stream::connect(&reactor, "127.0.0.1:7000".parse().unwrap()).await?;
    /// let send = stream.writer();
    /// // In a GTK app: button.connect_clicked(move |_| send.write(b"hello\n"));
    /// send.write(b"hello\n");
    /// # drop(stream); Ok(()) }
    /// ```
    pub fn writer(&self) -> Transport {
        self.transport.clone()
    }

    /// Runs `f` once when the connection is lost (at once if it is): notice
    /// of loss for code that is not polling the stream (a watchdog timer
    /// to cancel, say).
    pub fn on_lost(&self, f: impl FnOnce() + 'static) {
        let lost = {
            let mut s = self.state.borrow_mut();
            if s.lost.is_none() {
                s.on_lost = Some(Box::new(f));
                return;
            }
            f
        };
        lost();
    }

    /// Hands the connection to `protocol`, as if it had been the
    /// connection's protocol from the start, and gives up the stream: what
    /// a server that negotiates with async code and then only moves bytes
    /// does (a proxy after its handshake, a server after an HTTP
    /// `Upgrade`), so that the bytes reach a callback without the stream's
    /// buffer in between.
    ///
    /// `protocol` gets `connection_made` now, then what was received and
    /// not read (one `data_received`), then the end of input or the loss
    /// if they came already, and every later event. Reading resumes if
    /// the stream had paused it. The stream's write side stops being the
    /// transport's producer, so `protocol` may register its own. A hook
    /// set with [`on_lost`](Self::on_lost) still runs.
    ///
    /// ```
    /// use braid::aio::{Stream, StreamProtocol};
    /// use braid::testing::connected_pair;
    /// use braid::{Protocol, Transport};
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// /// Echoes what it gets.
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     fn data_received(&mut self, t: &Transport, data: &[u8]) {
    ///         t.write(data);
    ///     }
    /// }
    ///
    /// /// Keeps what it gets.
    /// struct Heard(Rc<RefCell<Vec<u8>>>);
    /// impl Protocol for Heard {
    ///     fn data_received(&mut self, _: &Transport, data: &[u8]) {
    ///         self.0.borrow_mut().extend_from_slice(data);
    ///     }
    /// }
    ///
    /// let reactor = braid::Reactor::new()?;
    /// let streams: Rc<RefCell<Vec<Stream>>> = Rc::default();
    /// let s = streams.clone();
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// let pair = connected_pair(
    ///     &reactor,
    ///     StreamProtocol::new(move |x| s.borrow_mut().push(x)),
    ///     Heard(got.clone()),
    /// );
    /// pair.client().write(b"first ");
    /// pair.pump();
    /// let server = streams.borrow_mut().pop().unwrap();
    /// server.into_protocol(Echo); // "first " was waiting: echoed now
    /// pair.client().write(b"then");
    /// pair.pump();
    /// pair.pump();
    /// assert_eq!(&got.borrow()[..], b"first then");
    /// # std::io::Result::Ok(())
    /// ```
    pub fn into_protocol(self, protocol: impl Protocol) {
        let mut protocol: Box<dyn Protocol> = Box::new(protocol);
        let transport = self.transport.clone();
        let (inbox, eof, lost, paused) = {
            let mut s = self.state.borrow_mut();
            s.handed_off = true;
            s.read_waker = None;
            s.write_waker = None;
            let inbox: Vec<u8> = std::mem::take(&mut s.inbox).into();
            (
                inbox,
                s.eof,
                s.lost.clone(),
                std::mem::take(&mut s.reading_paused),
            )
        };
        // `handed_off` keeps the stream's Drop from closing.
        let state = self.state.clone();
        drop(self);
        transport.unregister_producer();
        protocol.connection_made(&transport);
        if !inbox.is_empty() {
            protocol.data_received(&transport, &inbox);
        }
        match lost {
            Some((kind, text)) => {
                // The stream kept only the kind and the words of the loss.
                let reason = if kind == io::ErrorKind::BrokenPipe {
                    CloseReason::new(crate::CloseKind::Done)
                } else {
                    CloseReason::from_io(io::Error::new(kind, text.to_string()))
                };
                if eof {
                    protocol.read_eof(&transport);
                }
                protocol.connection_lost(&reason);
                return;
            }
            None if eof => protocol.read_eof(&transport),
            None => {}
        }
        state.borrow_mut().handed_to = Some(protocol);
        if paused {
            transport.resume_reading();
        }
    }

    /// Frees the buffer of received bytes if it is empty: for a connection
    /// going idle, so that it holds no memory while it waits (the next
    /// bytes to arrive allocate it again).
    pub fn shrink(&self) {
        let mut s = self.state.borrow_mut();
        if s.inbox.is_empty() {
            s.inbox = VecDeque::new();
        }
    }

    /// Reads up to `max` bytes without an intermediate buffer: `copy` is
    /// given them as two slices (the inbox is a ring) to copy where the
    /// caller wants them (hyper's read buffer, say). Ready with the count,
    /// 0 at EOF.
    ///
    /// # Errors
    ///
    /// Why the connection ended, if it ended uncleanly.
    pub fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        max: usize,
        copy: impl FnOnce(&[u8], &[u8]),
    ) -> Poll<io::Result<usize>> {
        let mut s = self.state.borrow_mut();
        if !s.inbox.is_empty() {
            let n = max.min(s.inbox.len());
            let (a, b) = s.inbox.as_slices();
            let a = &a[..n.min(a.len())];
            let b = &b[..n - a.len()];
            copy(a, b);
            s.inbox.drain(..n);
            if s.inbox.is_empty() && s.inbox.capacity() > INBOX_KEEP {
                // A burst is over: a stream holds no big buffer between
                // them (`shrink` frees a small one too).
                s.inbox = VecDeque::new();
            }
            if s.reading_paused && s.inbox.len() <= INBOX_LOW {
                s.reading_paused = false;
                drop(s);
                self.transport.resume_reading();
            }
            return Poll::Ready(Ok(n));
        }
        if s.eof {
            return Poll::Ready(Ok(0));
        }
        if let Some((kind, msg)) = &s.lost {
            return Poll::Ready(Err(io::Error::new(*kind, msg.to_string())));
        }
        s.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Writes `bufs` in order, all or nothing, in one `write_sequence`:
    /// `Pending` while the transport's buffer is above its high-water mark.
    ///
    /// # Errors
    ///
    /// Why the connection ended, once it has.
    pub fn poll_write_all(&self, cx: &mut Context<'_>, bufs: &[&[u8]]) -> Poll<io::Result<usize>> {
        {
            let mut s = self.state.borrow_mut();
            if let Some((kind, msg)) = &s.lost {
                return Poll::Ready(Err(io::Error::new(*kind, msg.to_string())));
            }
            if s.write_paused.get() {
                s.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        // No borrow held: this write may pause us re-entrantly.
        self.transport.write_sequence(bufs);
        Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_with(cx, buf.len(), |a, b| {
            buf[..a.len()].copy_from_slice(a);
            buf[a.len()..a.len() + b.len()].copy_from_slice(b);
        })
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_all(cx, &[buf])
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // As for any non-blocking TCP stream, written data is already on
        // its way; the transport sends it as the socket accepts it.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.transport.lose_write_connection();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.state.borrow().handed_off {
            self.transport.lose_connection();
        }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("peer", &self.peer_addr())
            .finish()
    }
}

#[derive(Default)]
struct Backlog {
    ready: VecDeque<Stream>,
    waker: Option<Waker>,
}

/// A TCP listener whose connections are accepted as async [`Stream`]s.
pub struct TcpListener {
    backlog: Rc<RefCell<Backlog>>,
    port: ListeningPort,
}

impl TcpListener {
    /// Listens on `addr` (port 0 picks one).
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn bind(reactor: &Reactor, addr: SocketAddr) -> io::Result<TcpListener> {
        let backlog: Rc<RefCell<Backlog>> = Rc::default();
        let b = backlog.clone();
        let port = reactor.listen_tcp(addr, move |_: &Address| {
            let state = Rc::new(RefCell::new(State::default()));
            let st = state.clone();
            let b = b.clone();
            StreamProtocol {
                state,
                on_made: Some(Box::new(move |t| {
                    let w = {
                        let mut bl = b.borrow_mut();
                        bl.ready.push_back(Stream {
                            state: st,
                            transport: t,
                        });
                        bl.waker.take()
                    };
                    if let Some(w) = w {
                        w.wake();
                    }
                })),
            }
        })?;
        Ok(TcpListener { backlog, port })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.port.local_addr()
    }

    /// The next connection.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the listener was closed.
    pub fn accept(&self) -> impl Future<Output = io::Result<Stream>> + '_ {
        std::future::poll_fn(move |cx| {
            let mut b = self.backlog.borrow_mut();
            if let Some(s) = b.ready.pop_front() {
                return Poll::Ready(Ok(s));
            }
            if !self.port.is_listening() {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            }
            b.waker = Some(cx.waker().clone());
            Poll::Pending
        })
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.port.stop_listening();
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.local_addr())
            .finish()
    }
}

#[cfg(test)]
mod tests;
