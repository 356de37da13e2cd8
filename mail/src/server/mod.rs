//! The ESMTP server (Twisted's `ESMTP` with an `IMessageDelivery`).
//!
//! ```text
//!   connection ─▶ aio::Stream ─▶ serve() ─▶ Session (sans-IO, session.rs)
//!                                  │  Mail / Rcpt ─▶ Delivery::mail_from / rcpt_to
//!                                  │  DataStart   ─▶ Delivery::begin ─▶ Message
//!                                  │  Data(chunk) ─▶ Message::write (awaited: backpressure)
//!                                  │  DataEnd     ─▶ Message::commit ─▶ 250 once stored
//!                                  │  Auth        ─▶ braid_cred::Portal (throttled)
//!                                  └  StartTls    ─▶ braid_tls start-in-place
//! ```
//!
//! [`Server::factory`] serves any listener (TCP, Unix, TLS-from-the-start
//! on port 465); [`serve`] runs one session over any [`Stream`], so a
//! custom transport carries SMTP too.

pub mod session;

use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use braid::aio::{Stream, StreamProtocol};
use braid::Address;
use braid::{Factory, Reactor};
use braid_cred::{Credentials, Portal};
use braid_tls::{TlsStart, TlsTransportExt};

use crate::reply::Reply;
pub use session::{BareNewlines, Envelope, Event, Session, SessionConfig, SessionInfo};

/// Where accepted mail goes: the application's half of the server
/// (Twisted's `IMessageDelivery` and `IMessage`). Each step may take its
/// time (a database lookup, a disk write on the thread pool); the session
/// waits for it, and the client for its reply.
#[allow(async_fn_in_trait)] // the reactor is single-threaded: no Send futures
pub trait Delivery: 'static {
    /// A message being stored.
    type Message: Message;

    /// `MAIL FROM`: accept this sender? The default accepts everyone.
    #[doc(alias = "validateFrom")]
    async fn mail_from(&self, info: &SessionInfo, from: &str) -> Result<(), Reply> {
        let _ = (info, from);
        Ok(())
    }

    /// `RCPT TO`: accept this recipient? Refuse with `550 5.1.1` (no such
    /// user), `554 5.7.1` (relaying denied), `450`/`451` to try later.
    #[doc(alias = "validateTo")]
    async fn rcpt_to(&self, info: &SessionInfo, envelope: &Envelope, to: &str)
        -> Result<(), Reply>;

    /// The data begins: open a message for the envelope's recipients.
    async fn begin(&self, info: &SessionInfo, envelope: &Envelope) -> Result<Self::Message, Reply>;
}

/// One message being received (Twisted's `IMessage`).
#[allow(async_fn_in_trait)] // the reactor is single-threaded: no Send futures
pub trait Message: 'static {
    /// More of the message (dot-unstuffed, CRLF line ends). The session
    /// reads no more from the client until this returns: slow storage
    /// slows the client, it never fills memory. An error refuses the
    /// message at its end.
    #[doc(alias = "lineReceived")]
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Reply>;

    /// The data ended: make the message durable, then say its queue id.
    /// The client is told `250` only after this returns `Ok`.
    #[doc(alias = "eomReceived")]
    async fn commit(self) -> Result<String, Reply>;

    /// The message was refused or the client left: throw it away.
    #[doc(alias = "connectionLost")]
    fn abort(self);
}

/// An ESMTP server: session limits, a delivery, optional TLS and AUTH.
///
/// ```
/// use braid_mail::server::{Delivery, Envelope, Server, SessionConfig, SessionInfo};
/// use braid_mail::{Maildir, Reply};
/// use std::rc::Rc;
///
/// let reactor = braid::Reactor::new()?;
/// let dir = std::env::temp_dir().join(format!("braid-doc-{}", std::process::id()));
/// let maildir = Maildir::new(&reactor, &dir, ["example.org"]);
/// let server = Rc::new(Server::new(&reactor, SessionConfig::default(), maildir));
/// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), server.factory())?;
/// # let _ = port;
/// # std::io::Result::Ok(())
/// ```
pub struct Server<D> {
    reactor: Reactor,
    config: Rc<SessionConfig>,
    delivery: Rc<D>,
    portal: Option<Portal<(), ()>>,
    tls: Option<braid_tls::ServerConfig>,
}

impl<D> std::fmt::Debug for Server<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("auth", &self.portal.is_some())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl<D: Delivery> Server<D> {
    /// A server delivering into `delivery`. STARTTLS and AUTH are off
    /// until [`tls`](Self::tls) and [`auth`](Self::auth) turn them on.
    pub fn new(reactor: &Reactor, mut config: SessionConfig, delivery: D) -> Server<D> {
        config.starttls = false;
        config.auth = false;
        Server {
            reactor: reactor.clone(),
            config: Rc::new(config),
            delivery: Rc::new(delivery),
            portal: None,
            tls: None,
        }
    }

    /// Offers STARTTLS with this certificate.
    pub fn tls(mut self, config: braid_tls::ServerConfig) -> Self {
        Rc::make_mut(&mut self.config).starttls = true;
        self.tls = Some(config);
        self
    }

    /// Offers `AUTH PLAIN LOGIN`, checked by `portal` (which throttles
    /// peers that fail repeatedly). Only after TLS unless
    /// [`SessionConfig::auth_without_tls`] says otherwise.
    pub fn auth(mut self, portal: Portal<(), ()>) -> Self {
        Rc::make_mut(&mut self.config).auth = true;
        self.portal = Some(portal);
        self
    }

    /// The session configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The delivery.
    pub fn delivery(&self) -> &Rc<D> {
        &self.delivery
    }

    /// A factory for any listener: each connection is served as a task on
    /// the reactor.
    pub fn factory(self: &Rc<Self>) -> impl Factory {
        let server = self.clone();
        move |_: &Address| {
            let server = server.clone();
            StreamProtocol::new(move |stream| {
                let r = server.reactor.clone();
                drop(r.spawn_local(serve(server, stream)));
            })
        }
    }
}

/// Serves one SMTP session on `stream` until it ends.
pub async fn serve<D: Delivery>(server: Rc<Server<D>>, stream: Stream) {
    let reactor = server.reactor.clone();
    let peer = stream.peer_addr().to_string();
    let mut session = Session::new(server.config.clone(), &peer, reactor.now());
    let mut message: Option<D::Message> = None;
    let mut write_error: Option<Reply> = None;
    tracing::debug!(peer, "SMTP session");
    loop {
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Mail { from } => {
                    let r = server.delivery.mail_from(session.info(), &from).await;
                    session.answer(r.map(|()| String::new()));
                }
                Event::Rcpt { to } => {
                    let env = session.envelope().cloned().unwrap_or_default();
                    let r = server.delivery.rcpt_to(session.info(), &env, &to).await;
                    session.answer(r.map(|()| String::new()));
                }
                Event::Auth { username, password } => {
                    let r = match &server.portal {
                        Some(p) => p
                            .login(
                                Credentials::password(&username, &password),
                                (),
                                &peer_host(&peer),
                            )
                            .await
                            .map(|ok| ok.avatar_id)
                            .map_err(|_| Reply::auth_failed()),
                        None => Err(Reply::auth_failed()),
                    };
                    session.answer(r);
                }
                Event::DataStart => {
                    let env = session.envelope().cloned().unwrap_or_default();
                    match server.delivery.begin(session.info(), &env).await {
                        Ok(m) => {
                            message = Some(m);
                            write_error = None;
                            session.answer(Ok(String::new()));
                        }
                        Err(r) => session.answer(Err(r)),
                    }
                }
                Event::Data(chunk) => {
                    if let (Some(m), None) = (message.as_mut(), &write_error) {
                        if let Err(r) = m.write(&chunk).await {
                            write_error = Some(r);
                        }
                    }
                }
                Event::DataEnd => {
                    let r = match (message.take(), write_error.take()) {
                        (Some(m), None) => m.commit().await,
                        (Some(m), Some(e)) => {
                            m.abort();
                            Err(e)
                        }
                        (None, _) => Err(Reply::new(451, [4, 3, 0], "Error: no message open")),
                    };
                    if let Ok(id) = &r {
                        tracing::info!(peer, id, "message accepted");
                    }
                    session.answer(r);
                }
                Event::DataAborted => {
                    if let Some(m) = message.take() {
                        m.abort();
                    }
                }
                Event::StartTls => {
                    if flush(&stream, &mut session).await.is_err() {
                        return;
                    }
                    discard_buffered(&stream);
                    let started = match &server.tls {
                        Some(cfg) => TlsStart::server(cfg)
                            .and_then(|s| stream.transport().start_tls(s))
                            .map_err(|e| e.to_string()),
                        None => Err("no TLS configured".to_owned()),
                    };
                    if let Err(e) = started {
                        tracing::warn!(peer, error = %e, "STARTTLS failed");
                        stream.transport().lose_connection();
                        return;
                    }
                    session.tls_started();
                }
                Event::Close => {}
            }
        }
        if flush(&stream, &mut session).await.is_err() {
            break;
        }
        if session.is_closed() {
            stream.transport().lose_connection();
            break;
        }
        let deadline = session.poll_timeout();
        let read = read_into(&stream, &mut session, &reactor);
        let n = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(reactor.now());
                match reactor.timeout(left, read).await {
                    Ok(r) => r,
                    Err(_) => {
                        session.handle_timeout(reactor.now());
                        continue;
                    }
                }
            }
            None => read.await,
        };
        match n {
            Ok(0) | Err(_) => {
                tracing::debug!(peer, "SMTP client went away");
                session.connection_lost();
                break;
            }
            Ok(_) => {}
        }
    }
    if let Some(m) = message.take() {
        m.abort();
    }
}

/// The address without its port: what failures are throttled by.
fn peer_host(peer: &str) -> String {
    peer.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| peer.to_owned())
}

async fn flush(stream: &Stream, session: &mut Session) -> std::io::Result<()> {
    if !session.has_output() {
        return Ok(());
    }
    let out = session.take_output();
    poll_fn(|cx| stream.poll_write_all(cx, &[&out]))
        .await
        .map(|_| ())
}

/// Reads what has arrived straight into the session (no read buffer of
/// the session's own: an idle connection holds none).
fn read_into<'a>(
    stream: &'a Stream,
    session: &'a mut Session,
    reactor: &'a Reactor,
) -> impl Future<Output = std::io::Result<usize>> + 'a {
    poll_fn(move |cx| {
        stream.poll_read_with(cx, 64 * 1024, |a, b| {
            let now = reactor.now();
            session.receive(a, now);
            session.receive(b, now);
        })
    })
}

/// Throws away what the stream has already received: plain text that
/// followed STARTTLS (RFC 3207 section 6).
pub(crate) fn discard_buffered(stream: &Stream) {
    let mut cx = Context::from_waker(Waker::noop());
    while let Poll::Ready(Ok(n)) = stream.poll_read_with(&mut cx, usize::MAX, |_, _| {}) {
        if n == 0 {
            break;
        }
        tracing::info!(n, "discarded bytes received before TLS");
    }
}
