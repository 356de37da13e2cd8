//! Async TCP streams on the reactor, implementing the `futures-io` traits
//! (`AsyncRead`, `AsyncWrite`), so that runtime-agnostic async crates
//! (WebSocket, TLS, HTTP) run over braid inside any host loop.

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

#[derive(Default)]
struct State {
    inbox: VecDeque<u8>,
    eof: bool,
    lost: Option<io::ErrorKind>,
    reading_paused: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    /// The transport asked us (as its producer) to stop writing.
    write_paused: Cell<bool>,
}

/// Connects a [`State`] to a connection: the protocol side.
struct StreamProtocol {
    state: Rc<RefCell<State>>,
    on_made: Option<Box<dyn FnOnce(Transport)>>,
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

impl Protocol for StreamProtocol {
    fn connection_made(&mut self, t: &Transport) {
        let _ = t.register_producer(Rc::new(WriteGate(self.state.clone())), true);
        if let Some(f) = self.on_made.take() {
            f(t.clone());
        }
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
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

    fn read_eof(&mut self, _t: &Transport) {
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
        let (r, w) = {
            let mut s = self.state.borrow_mut();
            s.lost = Some(if reason.is_clean() {
                io::ErrorKind::BrokenPipe
            } else {
                reason
                    .io_error()
                    .map(|e| e.kind())
                    .unwrap_or(io::ErrorKind::ConnectionAborted)
            });
            if reason.is_clean() {
                s.eof = true;
            }
            (s.read_waker.take(), s.write_waker.take())
        };
        for w in [r, w].into_iter().flatten() {
            w.wake();
        }
    }
}

/// An async TCP connection: `futures-io`'s `AsyncRead + AsyncWrite` over a
/// braid transport. Closing (`poll_close`) shuts the write side down;
/// dropping the stream closes the connection after pending writes.
pub struct TcpStream {
    state: Rc<RefCell<State>>,
    transport: Transport,
}

impl TcpStream {
    /// Connects to `addr`, failing after `timeout` if given.
    ///
    /// # Errors
    ///
    /// The connection attempt's error (refused, timed out, ...).
    pub async fn connect(
        reactor: &Reactor,
        addr: SocketAddr,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        struct Once {
            state: Rc<RefCell<State>>,
            made: Option<Box<dyn FnOnce(Transport)>>,
            failed: Option<Box<dyn FnOnce(io::Error)>>,
        }
        impl Factory for Once {
            fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
                Some(Box::new(StreamProtocol {
                    state: self.state.clone(),
                    on_made: self.made.take(),
                }))
            }
        }
        impl ClientFactory for Once {
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
        let d: Deferred<io::Result<TcpStream>, Failure> = Deferred::new();
        let ok = RefCell::new(Some(d.resolver()));
        let ok = Rc::new(ok);
        let err = ok.clone();
        let state = Rc::new(RefCell::new(State::default()));
        let st = state.clone();
        reactor.connect_tcp(
            addr,
            Once {
                state: state.clone(),
                made: Some(Box::new(move |t| {
                    if let Some(r) = ok.borrow_mut().take() {
                        r.callback(Ok(TcpStream {
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
            },
            timeout,
        );
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
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.state.borrow_mut();
        if !s.inbox.is_empty() {
            let n = buf.len().min(s.inbox.len());
            for (dst, src) in buf.iter_mut().zip(s.inbox.drain(..n)) {
                *dst = src;
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
        if let Some(kind) = s.lost {
            return Poll::Ready(Err(kind.into()));
        }
        s.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        {
            let mut s = self.state.borrow_mut();
            if let Some(kind) = s.lost {
                return Poll::Ready(Err(kind.into()));
            }
            if s.write_paused.get() {
                s.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        // No borrow held: this write may pause us re-entrantly.
        self.transport.write(buf);
        Poll::Ready(Ok(buf.len()))
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

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.transport.lose_connection();
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("peer", &self.peer_addr())
            .finish()
    }
}

#[derive(Default)]
struct Backlog {
    ready: VecDeque<TcpStream>,
    waker: Option<Waker>,
}

/// A TCP listener whose connections are accepted as async [`TcpStream`]s.
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
                        bl.ready.push_back(TcpStream {
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
    pub fn accept(&self) -> impl Future<Output = io::Result<TcpStream>> + '_ {
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
