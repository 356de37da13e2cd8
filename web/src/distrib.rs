//! Co-operating web servers over Perspective Broker (Twisted's
//! `twisted.web.distrib`), and per-user sites.
//!
//! ```text
//!   HTTP client ──▶ front Site ── /blog ──▶ Subscription ══ PB (Unix socket or TCP) ══▶ Publisher ──▶ Site (its own user)
//!                        │                    ▲  copy of the request (twisted.web.server.Request)     │
//!                        │                    └── setResponseCode · setHeader · write · finish ◀──────┘
//!                        └── /~alice/ ──▶ UserDirectory ──▶ ~alice/.braid-web.sock, or ~alice/public_html
//! ```
//!
//! A front server hands every request under a path to a *publisher*: a
//! separate process, often running as another Unix user, that renders it
//! with its own permissions and writes the response back over PB. Both
//! halves speak Twisted's wire: a braid front works with a Twisted
//! `ResourcePublisher`, and a Twisted `ResourceSubscription` with a braid
//! [`Publisher`].
//!
//! - [`Subscription`] (Twisted's `ResourceSubscription`) is a leaf
//!   [`Resource`] that forwards requests; it connects on first use and
//!   again after the connection drops. Where Twisted answers `200` with an
//!   error page, it answers `503 Service Unavailable` when the publisher
//!   cannot be reached, `502 Bad Gateway` when it fails or its connection
//!   drops before the response starts (a response already started is cut
//!   short, so the client sees it incomplete), and `504 Gateway Timeout`
//!   when it stops answering for [`SubscriptionConfig::response_timeout`].
//! - [`Publisher`] (Twisted's `ResourcePublisher`) serves a [`Site`] to any
//!   front.
//! - [`UserDirectory`] (Twisted's `UserDirectory`) serves `/~user/` from
//!   the user's own publisher socket, or their `public_html`.
//!
//! ```no_run
//! use braid_web::distrib::{Publisher, Subscription};
//! use braid_web::{FnResource, Response, Site, Tree};
//! use braid::Reactor;
//!
//! let reactor = Reactor::new()?;
//! // The publisher (usually another process, as another user).
//! let blog = Site::new(FnResource::leaf(|req| Response::text(format!("post {}\n", req.postpath().join("/")))));
//! reactor.listen_unix("/tmp/blog.sock", Publisher::new(&reactor, blog).factory())?;
//! // The front: /blog/... goes to the publisher.
//! let front = Tree::new().child("blog", Subscription::new(&reactor, "unix:/tmp/blog.sock".parse().unwrap()));
//! reactor.listen_tcp("127.0.0.1:8080".parse().unwrap(), Site::new(front))?;
//! reactor.run()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! # Flow control and sizes
//!
//! Twisted's publisher sends `write` calls without waiting for their
//! answers, so only a publisher's registered producer is held back
//! (`pauseProducing` and `resumeProducing`, which a braid front calls as
//! the client reads). A braid front also answers each `write` only when
//! its client has taken most of what is queued, and a braid publisher
//! keeps at most [`WRITE_WINDOW`] bytes unanswered, so a braid pair is
//! flow-controlled end to end whatever the resource does.
//!
//! Banana caps a string at 640 KiB ([`PIECE`]). Responses are written in
//! pieces of at most that on both sides, so their size is unbounded. A
//! request body travels in the copied request (`content_data`), so a
//! braid front sending to a Twisted publisher answers `413` for a body
//! over 640 KiB. Between a braid front and a braid publisher, a larger
//! body goes in pieces the publisher pulls as its resource reads, up to
//! [`SubscriptionConfig::max_body`] (the front asks the publisher with a
//! `braidCapabilities` call the first time a large body comes, once per
//! connection; Twisted answers it with an error).
//!
//! Past 640 KiB a Twisted front cannot send the body at all: its
//! `callRemote` raises, and Twisted 26.10 answers `500` on a connection it
//! already has and never answers a request that opened the connection.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::str::FromStr;
use std::task::Poll;
use std::time::Duration;

use braid::{Address, Deferred, DelayedCall, Failure, Reactor, Resolver};
use braid_pb::{
    Args, Caller, CopyTypes, LocalObject, Object, PbClientFactory, PbError, PbErrorKind,
    PbServerFactory, Referenceable, RemoteReference, Reply as PbReply, Value,
};
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use crate::{Body, BodyWriter, File, Reply, Request, Resource, Response, Site};

/// The copy type of a request on the wire: Twisted's
/// `twisted.web.server.Request`, whose state is its `__dict__`.
pub const REQUEST_TYPE: &str = "twisted.web.server.Request";

/// What a publisher answers `request` with: Twisted's `NOT_DONE_YET`
/// (the response comes through the request's remote methods).
pub const NOT_DONE_YET: i64 = 1;

/// The largest piece of a body in one call: banana's string limit
/// (Twisted's `SIZE_LIMIT`, 640 KiB).
pub const PIECE: usize = braid_pb::banana::SIZE_LIMIT;

/// The most response bytes a braid publisher has written and the front
/// not yet answered.
pub const WRITE_WINDOW: usize = 4 * 64 * 1024;

const CAPABILITIES: &str = "braidCapabilities";
const CAP_BODY_PIECES: &str = "body-pieces";

/// Where a publisher listens: `unix:PATH`, or `HOST:PORT` (also written
/// `tcp:HOST:PORT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublisherAddress {
    /// A Unix stream socket.
    Unix(PathBuf),
    /// A TCP host (a name or an address) and port.
    Tcp(String, u16),
}

/// A publisher address that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadAddress(pub String);

impl fmt::Display for BadAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a publisher address (unix:PATH or HOST:PORT): {:?}",
            self.0
        )
    }
}

impl std::error::Error for BadAddress {}

impl FromStr for PublisherAddress {
    type Err = BadAddress;

    fn from_str(s: &str) -> Result<Self, BadAddress> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(BadAddress(s.to_owned()));
            }
            return Ok(PublisherAddress::Unix(PathBuf::from(p)));
        }
        let hp = s.strip_prefix("tcp:").unwrap_or(s);
        let (host, port) = hp
            .rsplit_once(':')
            .ok_or_else(|| BadAddress(s.to_owned()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| BadAddress(s.to_owned()))?;
        if host.is_empty() {
            return Err(BadAddress(s.to_owned()));
        }
        Ok(PublisherAddress::Tcp(host.to_owned(), port))
    }
}

impl fmt::Display for PublisherAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublisherAddress::Unix(p) => write!(f, "unix:{}", p.display()),
            PublisherAddress::Tcp(h, p) if h.contains(':') => write!(f, "[{h}]:{p}"),
            PublisherAddress::Tcp(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// Limits and timeouts of a [`Subscription`].
#[derive(Clone, Debug)]
pub struct SubscriptionConfig {
    /// Time allowed to connect to the publisher (Twisted's 10 s).
    pub connect_timeout: Duration,
    /// A response whose publisher sends nothing for this long (while the
    /// client is not the one holding it back) is given up: `504` if it
    /// had not started, cut short if it had. 60 s.
    pub response_timeout: Duration,
    /// Largest request body forwarded (`413` past it). 64 MiB; a Twisted
    /// publisher takes at most [`PIECE`].
    pub max_body: usize,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        SubscriptionConfig {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
            max_body: 64 * 1024 * 1024,
        }
    }
}

/// A resource whose requests a publisher renders, over PB (Twisted's
/// `ResourceSubscription`). A leaf: every path below it goes to the
/// publisher, which walks the rest (`postpath`) from its own root.
///
/// Cloning gives another handle to the same connection.
#[derive(Clone)]
#[doc(alias = "ResourceSubscription")]
pub struct Subscription {
    inner: Rc<Sub>,
}

struct Sub {
    me: Weak<Sub>,
    reactor: Reactor,
    address: PublisherAddress,
    config: SubscriptionConfig,
    conn: RefCell<Conn>,
    live: RefCell<HashMap<u64, Weak<Exchange>>>,
    next_id: Cell<u64>,
    connects: Cell<u64>,
}

enum Conn {
    Idle,
    Connecting(Vec<Resolver<Connected, Failure>>),
    Ready(Connected),
}

#[derive(Clone)]
struct Connected {
    root: RemoteReference,
    /// Whether the publisher is braid's (it pulls large bodies in
    /// pieces): asked the first time a large body needs it.
    pieces: Rc<Cell<Option<bool>>>,
}

impl Subscription {
    /// Forwards to the publisher at `address`, with the default limits.
    pub fn new(reactor: &Reactor, address: PublisherAddress) -> Subscription {
        Subscription::with_config(reactor, address, SubscriptionConfig::default())
    }

    /// Forwards to the publisher at `address`.
    pub fn with_config(
        reactor: &Reactor,
        address: PublisherAddress,
        config: SubscriptionConfig,
    ) -> Subscription {
        Subscription {
            inner: Rc::new_cyclic(|me| Sub {
                me: me.clone(),
                reactor: reactor.clone(),
                address,
                config,
                conn: RefCell::new(Conn::Idle),
                live: RefCell::new(HashMap::new()),
                next_id: Cell::new(0),
                connects: Cell::new(0),
            }),
        }
    }

    /// Where the publisher is.
    pub fn address(&self) -> &PublisherAddress {
        &self.inner.address
    }

    /// Whether a connection to the publisher is up.
    pub fn is_connected(&self) -> bool {
        matches!(*self.inner.conn.borrow(), Conn::Ready(_))
    }

    /// Connections made so far (the first, and one after each drop).
    pub fn connections(&self) -> u64 {
        self.inner.connects.get()
    }

    /// Responses under way.
    pub fn in_flight(&self) -> usize {
        self.inner
            .live
            .borrow()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("address", &self.inner.address)
            .field("connected", &self.is_connected())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Resource for Subscription {
    fn render(&self, request: Request) -> Reply {
        Reply::later(forward(self.inner.clone(), request))
    }

    fn is_leaf(&self) -> bool {
        true
    }
}

impl Sub {
    fn publisher(&self) -> Deferred<Connected, Failure> {
        let mut conn = self.conn.borrow_mut();
        match &mut *conn {
            Conn::Ready(c) => Deferred::succeed(c.clone()),
            Conn::Connecting(waiters) => {
                let d = Deferred::new();
                waiters.push(d.resolver());
                d
            }
            Conn::Idle => {
                let d = Deferred::new();
                *conn = Conn::Connecting(vec![d.resolver()]);
                drop(conn);
                self.connect();
                d
            }
        }
    }

    fn connect(&self) {
        self.connects.set(self.connects.get() + 1);
        let factory = PbClientFactory::new();
        let root = factory.root_object();
        let timeout = Some(self.config.connect_timeout);
        match &self.address {
            PublisherAddress::Unix(p) => drop(self.reactor.connect_unix(p, factory, timeout)),
            PublisherAddress::Tcp(h, p) => {
                drop(self.reactor.connect_tcp_host(h, *p, factory, timeout))
            }
        }
        let me = self.me.clone();
        root.add_both(move |r| {
            let Some(sub) = me.upgrade() else {
                return Ok::<(), PbError>(());
            };
            match r {
                Err(e) => sub.not_connected(&e.value),
                Ok(root) => sub.connected(Connected {
                    root,
                    pieces: Rc::new(Cell::new(None)),
                }),
            }
            Ok(())
        });
    }

    fn connected(&self, c: Connected) {
        let Some(broker) = c.root.broker() else {
            self.not_connected("connection lost");
            return;
        };
        tracing::debug!(publisher = %self.address, "connected to publisher");
        let me = self.me.clone();
        broker.notify_on_disconnect(move || {
            if let Some(sub) = me.upgrade() {
                sub.lost();
            }
        });
        let old = std::mem::replace(&mut *self.conn.borrow_mut(), Conn::Ready(c.clone()));
        if let Conn::Connecting(waiters) = old {
            for w in waiters {
                w.callback(c.clone());
            }
        }
    }

    fn not_connected(&self, why: &str) {
        tracing::warn!(publisher = %self.address, why, "could not reach the publisher");
        let old = std::mem::replace(&mut *self.conn.borrow_mut(), Conn::Idle);
        if let Conn::Connecting(waiters) = old {
            for w in waiters {
                w.errback(Failure::msg(why.to_owned()));
            }
        }
    }

    fn lost(&self) {
        tracing::info!(publisher = %self.address, "publisher connection lost");
        *self.conn.borrow_mut() = Conn::Idle;
        let live: Vec<Weak<Exchange>> = self.live.borrow_mut().drain().map(|(_, w)| w).collect();
        for ex in live.iter().filter_map(Weak::upgrade) {
            ex.fail(
                StatusCode::BAD_GATEWAY,
                "the distributed server's connection was lost",
            );
        }
    }
}

/// A request body as read so far: whole, or its first part and the rest.
enum ReadBody {
    Whole(Bytes),
    Partial(BytesMut, Body),
}

async fn read_head_of_body(mut body: Body, max: usize) -> Result<ReadBody, crate::BodyError> {
    let mut got = BytesMut::new();
    while let Some(c) = body.chunk().await {
        let c = c?;
        got.extend_from_slice(&c);
        if got.len() > max {
            return Err(crate::BodyError::TooLarge { limit: max });
        }
        if got.len() > PIECE {
            return Ok(ReadBody::Partial(got, body));
        }
    }
    Ok(ReadBody::Whole(got.freeze()))
}

async fn forward(sub: Rc<Sub>, mut request: Request) -> Response {
    let body = match read_head_of_body(request.take_body(), sub.config.max_body).await {
        Ok(b) => b,
        Err(crate::BodyError::TooLarge { .. }) => {
            return Response::error(StatusCode::PAYLOAD_TOO_LARGE, "Request Body Too Large")
        }
        Err(e) => return Response::error(StatusCode::BAD_REQUEST, &format!("Bad Request: {e}")),
    };
    let conn = match sub.publisher().await {
        Ok(c) => c,
        Err(f) => {
            return Response::error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("Unable to connect to distributed server: {f}"),
            )
        }
    };
    let (content, more) = match body {
        ReadBody::Whole(b) => (b, None),
        ReadBody::Partial(..) if !takes_pieces(&conn).await => {
            return Response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Body Too Large for the distributed server (640 KiB)",
            )
        }
        ReadBody::Partial(mut first, rest) => {
            let head = first.split_to(PIECE).freeze();
            let source = BodySource {
                reactor: sub.reactor.clone(),
                queued: RefCell::new(first.freeze()),
                body: Rc::new(RefCell::new(Some(rest))),
                left: Rc::new(Cell::new(sub.config.max_body.saturating_sub(PIECE))),
            };
            (head, Some(LocalObject::new(source)))
        }
    };
    let id = sub.next_id.get();
    sub.next_id.set(id + 1);
    let started = Deferred::<Response, Failure>::new();
    let ex = Rc::new(Exchange {
        sub: sub.me.clone(),
        id,
        reactor: sub.reactor.clone(),
        conditional_ok: matches!(*request.method(), Method::GET | Method::HEAD),
        if_none_match: request.header(header::IF_NONE_MATCH).map(str::to_owned),
        if_modified_since: request
            .header(header::IF_MODIFIED_SINCE)
            .and_then(|v| httpdate::parse_http_date(v).ok()),
        st: RefCell::new(ExState {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            start: Some(started.resolver()),
            writer: None,
            ended: false,
            no_body: false,
            producer: None,
            producer_gen: 0,
            paused: false,
            timer: None,
            waiters: Vec::new(),
            draining: false,
        }),
    });
    sub.live.borrow_mut().insert(id, Rc::downgrade(&ex));
    ex.touch();
    let state = request_state(&request, content, more, ExchangeObject(ex.clone()));
    let answer = conn.root.call_remote(
        "request",
        Args::new(vec![Value::Copy(REQUEST_TYPE.into(), Box::new(state))]),
    );
    let weak = Rc::downgrade(&ex);
    answer.add_both(move |r| {
        if let Some(ex) = weak.upgrade() {
            match r {
                Ok(Value::Int(NOT_DONE_YET)) => {}
                // Twisted's front writes what a resource returned.
                Ok(v) => match v
                    .as_bytes()
                    .map(<[u8]>::to_vec)
                    .or_else(|| text(&v).map(String::into_bytes))
                {
                    Some(b) => {
                        ex.write(Bytes::from(b));
                        ex.finish();
                    }
                    None => ex.fail(
                        StatusCode::BAD_GATEWAY,
                        &format!("the distributed server answered a {}", v.kind()),
                    ),
                },
                Err(e) if e.kind() == PbErrorKind::ConnectionLost => ex.fail(
                    StatusCode::BAD_GATEWAY,
                    "the distributed server's connection was lost",
                ),
                Err(e) => ex.fail(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "the distributed server failed: {}: {}",
                        e.type_name, e.value
                    ),
                ),
            }
        }
        Ok::<(), PbError>(())
    });
    drop(ex);
    match started.await {
        Ok(r) => r,
        Err(f) => Response::error(StatusCode::BAD_GATEWAY, &f.to_string()),
    }
}

/// Whether the publisher takes a body in pieces: braid's answers
/// `braidCapabilities`, Twisted's fails it (and logs the failure, which is
/// why this is asked only when a body needs it, once per connection).
async fn takes_pieces(conn: &Connected) -> bool {
    if let Some(known) = conn.pieces.get() {
        return known;
    }
    let caps = conn.root.call_remote(CAPABILITIES, Args::new(vec![])).await;
    let yes = caps.ok().is_some_and(|v| {
        v.as_seq().is_some_and(|s| {
            s.iter()
                .any(|c| text(c).as_deref() == Some(CAP_BODY_PIECES))
        })
    });
    conn.pieces.set(Some(yes));
    yes
}

/// `("INET", host, port)` or `("UNIX", path)`, as Twisted copies
/// addresses.
fn address_tuple(a: &Address) -> Value {
    match a {
        Address::Tcp(sa) => Value::Tuple(vec![
            Value::str("INET"),
            Value::str(sa.ip().to_string()),
            Value::Int(i64::from(sa.port())),
        ]),
        Address::Unix(p) => Value::Tuple(vec![
            Value::str("UNIX"),
            Value::str(
                p.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        ]),
        _ => Value::Tuple(vec![
            Value::str("INET"),
            Value::str("0.0.0.0"),
            Value::Int(0),
        ]),
    }
}

fn bytes_list<'a>(items: impl Iterator<Item = &'a str>) -> Value {
    Value::List(items.map(|s| Value::bytes(s.as_bytes())).collect())
}

/// The request as Twisted's `Request.getStateToCopyFor` gives it.
fn request_state(
    req: &Request,
    content: Bytes,
    more: Option<LocalObject>,
    remote: ExchangeObject,
) -> Value {
    let key = |k: &str| Value::str(k);
    let mut headers: Vec<(String, Vec<&[u8]>)> = Vec::new();
    for (name, value) in req.headers() {
        match headers.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, vs)) => vs.push(value.as_bytes()),
            None => headers.push((name.as_str().to_owned(), vec![value.as_bytes()])),
        }
    }
    let headers = Value::List(
        headers
            .into_iter()
            .map(|(n, vs)| {
                Value::Tuple(vec![
                    Value::bytes(canonical(&n)),
                    Value::List(vs.into_iter().map(Value::bytes).collect()),
                ])
            })
            .collect(),
    );
    let mut args: Vec<(Value, Value)> = Vec::new();
    for (k, v) in req.args() {
        match args
            .iter_mut()
            .find(|(n, _)| n.as_bytes() == Some(k.as_bytes()))
        {
            Some((_, Value::List(vs))) => vs.push(Value::bytes(v)),
            _ => args.push((Value::bytes(k), Value::List(vec![Value::bytes(v)]))),
        }
    }
    let cookies: Vec<(Value, Value)> = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .map(|(k, v)| (Value::bytes(k), Value::bytes(v)))
        .collect();
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let version = match req.version() {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    };
    // The front's own address is not kept on a braid request; Twisted's
    // publisher needs the tuple's shape only.
    let host = req
        .header(header::HOST)
        .and_then(|h| h.parse::<std::net::SocketAddr>().ok())
        .map(Address::Tcp)
        .unwrap_or(Address::Memory(String::new()));
    let mut state = vec![
        (key("notifications"), Value::List(vec![])),
        (key("client"), address_tuple(req.peer())),
        (key("host"), address_tuple(&host)),
        (key("requestHeaders"), headers),
        (key("received_cookies"), Value::Dict(cookies)),
        (
            key("responseHeaders"),
            Value::Unpersistable(
                "instance of class twisted.web.http_headers.Headers deemed insecure".into(),
            ),
        ),
        (key("cookies"), Value::List(vec![])),
        (key("queued"), Value::Int(0)),
        (key("_adapterCache"), Value::Dict(vec![])),
        (key("args"), Value::Dict(args)),
        (key("method"), Value::bytes(req.method().as_str())),
        (key("uri"), Value::bytes(&uri)),
        (key("clientproto"), Value::bytes(version)),
        (key("path"), Value::bytes(req.path())),
        (
            key("prepath"),
            bytes_list(req.prepath().iter().map(String::as_str)),
        ),
        (
            key("postpath"),
            bytes_list(req.postpath().iter().map(String::as_str)),
        ),
        (key("sitepath"), Value::List(vec![])),
        (key("content_data"), Value::Bytes(content.to_vec())),
        (key("remote"), Value::Object(LocalObject::new(remote))),
    ];
    if req.is_secure() {
        state.push((key("_forceSSL"), Value::Bool(true)));
    }
    if let Some(more) = more {
        state.push((key("braid_body"), Value::Object(more)));
    }
    Value::Dict(state)
}

/// `content-type` → `Content-Type`, as Twisted sends header names.
fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = true;
    for c in name.chars() {
        out.push(if up { c.to_ascii_uppercase() } else { c });
        up = c == '-';
    }
    out
}

/// What a received `str` or `bytes` says, as text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        Value::Shared(_, inner) => text(inner),
        _ => None,
    }
}

fn raw(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Str(s) => Some(s.as_bytes().to_vec()),
        Value::Bytes(b) => Some(b.clone()),
        Value::Shared(_, inner) => raw(inner),
        _ => None,
    }
}

/// A call's first two arguments, each `bytes` or `str`.
fn two_strings(args: &Args, method: &str, a: &str, b: &str) -> Result<(Vec<u8>, Vec<u8>), PbError> {
    match (args.require(0, a).map(raw)?, args.require(1, b).map(raw)?) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(PbError::new(
            "builtins.TypeError",
            format!("{method} takes bytes or str"),
        )),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::None => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Shared(_, inner) => truthy(inner),
        _ => true,
    }
}

/// The rest of a large request body, read by a braid publisher.
struct BodySource {
    reactor: Reactor,
    queued: RefCell<Bytes>,
    body: Rc<RefCell<Option<Body>>>,
    /// What the front's limit still allows.
    left: Rc<Cell<usize>>,
}

impl Referenceable for BodySource {
    fn call(&self, _: &Caller, name: &str, _: Args) -> PbReply {
        if name != "read" {
            return PbReply::Now(Err(PbError::no_such_method(name)));
        }
        let first = std::mem::take(&mut *self.queued.borrow_mut());
        if !first.is_empty() {
            return PbReply::Now(Ok(Value::Bytes(first.to_vec())));
        }
        let Some(mut body) = self.body.borrow_mut().take() else {
            return PbReply::Now(Ok(Value::Bytes(Vec::new())));
        };
        let slot = self.body.clone();
        let left = self.left.clone();
        let d = Deferred::<Value, PbError>::new();
        let r = d.resolver();
        drop(self.reactor.spawn_local(async move {
            match body.chunk().await {
                None => r.callback(Value::Bytes(Vec::new())),
                Some(Err(e)) => r.errback(PbError::new("builtins.IOError", e.to_string())),
                Some(Ok(c)) if c.len() > left.get() => r.errback(PbError::new(
                    "builtins.ValueError",
                    "request body over the front's limit",
                )),
                Some(Ok(c)) => {
                    left.set(left.get() - c.len());
                    *slot.borrow_mut() = Some(body);
                    r.callback(Value::Bytes(c.to_vec()))
                }
            }
        }));
        PbReply::Later(d)
    }
}

/// One forwarded response: what the publisher's calls build.
struct Exchange {
    sub: Weak<Sub>,
    id: u64,
    reactor: Reactor,
    conditional_ok: bool,
    if_none_match: Option<String>,
    if_modified_since: Option<std::time::SystemTime>,
    st: RefCell<ExState>,
}

struct ExState {
    status: StatusCode,
    headers: HeaderMap,
    /// Resolves the resource's reply with the response head.
    start: Option<Resolver<Response, Failure>>,
    writer: Option<BodyWriter>,
    ended: bool,
    /// `304` or `HEAD`: what is written is dropped.
    no_body: bool,
    producer: Option<(RemoteReference, bool)>,
    producer_gen: u64,
    paused: bool,
    timer: Option<DelayedCall>,
    /// What waits for the client to take what is queued.
    waiters: Vec<Box<dyn FnOnce()>>,
    draining: bool,
}

impl Exchange {
    /// The publisher did something: the response timeout starts again.
    fn touch(self: &Rc<Self>) {
        let timeout = match self.sub.upgrade() {
            Some(s) => s.config.response_timeout,
            None => return,
        };
        let mut st = self.st.borrow_mut();
        if st.ended {
            return;
        }
        match &st.timer {
            Some(t) if t.active() => {
                t.reset(timeout);
            }
            _ => {
                let me = Rc::downgrade(self);
                st.timer = Some(self.reactor.call_later(timeout, move || {
                    if let Some(ex) = me.upgrade() {
                        ex.timed_out();
                    }
                }));
            }
        }
    }

    fn timed_out(self: &Rc<Self>) {
        let client_holds = {
            let st = self.st.borrow();
            st.writer
                .as_ref()
                .is_some_and(|w| w.queued() >= crate::WRITER_HIGH_WATER)
        };
        if client_holds {
            // The client is slow, not the publisher.
            self.st.borrow_mut().timer = None;
            self.touch();
        } else {
            self.fail(
                StatusCode::GATEWAY_TIMEOUT,
                "the distributed server stopped answering",
            );
        }
    }

    /// Sends the head, once: the first write or the finish.
    fn start(&self, st: &mut ExState) {
        let Some(start) = st.start.take() else {
            return;
        };
        let mut response = if st.no_body {
            Response::new(st.status)
        } else {
            let (body, writer) = Body::channel();
            st.writer = Some(writer);
            Response::new(st.status).body(body)
        };
        *response.headers_mut() = std::mem::take(&mut st.headers);
        if st.status == StatusCode::NOT_MODIFIED {
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
        start.callback(response);
    }

    fn write(self: &Rc<Self>, data: Bytes) -> PbReply {
        self.touch();
        let gone = || {
            PbReply::Now(Err(PbError::new(
                "twisted.internet.error.ConnectionDone",
                "the client is gone: the response is dropped",
            )))
        };
        let mut st = self.st.borrow_mut();
        if st.ended {
            return gone();
        }
        self.start(&mut st);
        let Some(w) = &st.writer else {
            return PbReply::Now(Ok(Value::None));
        };
        if w.is_closed() {
            // The client went away: stop the publisher's producer, and
            // a braid publisher through this answer.
            drop(st);
            self.client_gone();
            return gone();
        }
        w.write(data);
        if w.queued() < crate::WRITER_HIGH_WATER {
            return PbReply::Now(Ok(Value::None));
        }
        let pause = match &st.producer {
            Some((p, true)) if !st.paused => Some(p.clone()),
            _ => None,
        };
        if let Some(p) = &pause {
            st.paused = true;
            p.call_remote_no_answer("pauseProducing", Args::new(vec![]));
        }
        drop(st);
        // Answered when the client has taken most of it: a braid
        // publisher waits for the answer.
        let d = Deferred::<Value, PbError>::new();
        let r = d.resolver();
        let me = self.clone();
        self.when_writable(move || {
            if pause.is_some() {
                let resume = {
                    let mut st = me.st.borrow_mut();
                    let p = st.producer.clone();
                    match p {
                        Some((p, true)) if st.paused && !st.ended => {
                            st.paused = false;
                            Some(p)
                        }
                        _ => None,
                    }
                };
                if let Some(p) = resume {
                    p.call_remote_no_answer("resumeProducing", Args::new(vec![]));
                }
            }
            r.callback(Value::None);
        });
        PbReply::Later(d)
    }

    /// Runs `f` once the client has taken most of what is queued (or is
    /// gone, or the response ended), in order with the others waiting:
    /// the body writer wakes one waiter, so one task runs them all.
    fn when_writable(self: &Rc<Self>, f: impl FnOnce() + 'static) {
        let mut st = self.st.borrow_mut();
        st.waiters.push(Box::new(f));
        if st.draining {
            return;
        }
        st.draining = true;
        drop(st);
        let me = self.clone();
        drop(self.reactor.spawn_local(async move {
            loop {
                me.writable().await;
                let now = {
                    let mut st = me.st.borrow_mut();
                    let now = std::mem::take(&mut st.waiters);
                    if now.is_empty() {
                        st.draining = false;
                    }
                    now
                };
                if now.is_empty() {
                    return;
                }
                for f in now {
                    f();
                }
            }
        }));
    }

    /// Waits until the client has taken most of what is queued (or is
    /// gone, or the response ended).
    async fn writable(&self) {
        std::future::poll_fn(|cx| {
            let st = self.st.borrow();
            match &st.writer {
                Some(w) if !st.ended => w.poll_ready(cx).map(|_| ()),
                _ => Poll::Ready(()),
            }
        })
        .await
    }

    fn client_gone(&self) {
        let producer = {
            let mut st = self.st.borrow_mut();
            st.producer.take()
        };
        if let Some((p, _)) = producer {
            p.call_remote_no_answer("stopProducing", Args::new(vec![]));
        }
        self.end();
    }

    fn finish(self: &Rc<Self>) {
        let writer = {
            let mut st = self.st.borrow_mut();
            if st.ended {
                return;
            }
            self.start(&mut st);
            st.writer.take()
        };
        if let Some(w) = writer {
            w.finish();
        }
        self.end();
    }

    /// The response fails: an error page if it had not started, else cut
    /// short.
    fn fail(&self, status: StatusCode, why: &str) {
        let (start, writer) = {
            let mut st = self.st.borrow_mut();
            if st.ended {
                return;
            }
            (st.start.take(), st.writer.take())
        };
        tracing::warn!(
            id = self.id,
            status = status.as_u16(),
            why,
            "distributed response failed"
        );
        if let Some(s) = start {
            s.callback(Response::error(status, why));
        }
        if let Some(w) = writer {
            w.abort();
        }
        self.end();
    }

    fn end(&self) {
        let mut st = self.st.borrow_mut();
        st.ended = true;
        st.producer = None;
        if let Some(t) = st.timer.take() {
            t.cancel();
        }
        drop(st);
        if let Some(sub) = self.sub.upgrade() {
            sub.live.borrow_mut().remove(&self.id);
        }
    }

    fn set_header(&self, args: &Args) -> Result<Value, PbError> {
        let (name, value) = two_strings(args, "setHeader", "name", "value")?;
        let name =
            HeaderName::from_bytes(&name).map_err(|_| PbError::value_error("not a header name"))?;
        let value = HeaderValue::from_bytes(&value)
            .map_err(|_| PbError::value_error("not a header value"))?;
        let mut st = self.st.borrow_mut();
        if st.start.is_some() {
            st.headers.insert(name, value);
        }
        Ok(Value::None)
    }

    fn set_response_code(&self, args: &Args) -> Result<Value, PbError> {
        let code = args
            .require(0, "code")?
            .as_int()
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| PbError::value_error("not an HTTP status code"))?;
        let mut st = self.st.borrow_mut();
        if st.start.is_some() {
            st.status = code;
            st.no_body = st.no_body || code == StatusCode::NOT_MODIFIED;
        }
        Ok(Value::None)
    }

    fn add_cookie(&self, args: &Args) -> Result<Value, PbError> {
        let (k, v) = two_strings(args, "addCookie", "k", "v")?;
        let mut cookie = k;
        cookie.push(b'=');
        cookie.extend_from_slice(&v);
        let kw = |n: &str| {
            args.keywords
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v)
                .filter(|v| !matches!(v, Value::None))
        };
        for (arg, attr) in [
            ("expires", "Expires"),
            ("domain", "Domain"),
            ("path", "Path"),
            ("max_age", "Max-Age"),
            ("comment", "Comment"),
        ] {
            if let Some(val) = kw(arg) {
                let val = match val {
                    Value::Int(i) => i.to_string().into_bytes(),
                    other => raw(other).unwrap_or_default(),
                };
                cookie.extend_from_slice(format!("; {attr}=").as_bytes());
                cookie.extend_from_slice(&val);
            }
        }
        if kw("secure").is_some_and(truthy) {
            cookie.extend_from_slice(b"; Secure");
        }
        if kw("httpOnly").is_some_and(truthy) {
            cookie.extend_from_slice(b"; HttpOnly");
        }
        if let Some(s) = kw("sameSite").and_then(raw) {
            cookie.extend_from_slice(b"; SameSite=");
            cookie.extend_from_slice(&s);
        }
        let value =
            HeaderValue::from_bytes(&cookie).map_err(|_| PbError::value_error("not a cookie"))?;
        let mut st = self.st.borrow_mut();
        if st.start.is_some() {
            st.headers.append(header::SET_COOKIE, value);
        }
        Ok(Value::None)
    }

    fn set_etag(&self, args: &Args) -> Result<Value, PbError> {
        let tag = args
            .require(0, "etag")
            .map(raw)?
            .ok_or_else(|| PbError::new("builtins.TypeError", "setETag takes bytes"))?;
        let value =
            HeaderValue::from_bytes(&tag).map_err(|_| PbError::value_error("not an etag"))?;
        let tag = String::from_utf8_lossy(&tag).into_owned();
        let mut st = self.st.borrow_mut();
        if st.start.is_none() {
            return Ok(Value::None);
        }
        st.headers.insert(header::ETAG, value);
        if let Some(inm) = &self.if_none_match {
            let hit = inm.split(',').map(str::trim).any(|t| t == "*" || t == tag);
            if hit && self.conditional_ok {
                st.status = StatusCode::NOT_MODIFIED;
                st.no_body = true;
            }
        }
        Ok(Value::None)
    }

    fn set_last_modified(&self, args: &Args) -> Result<Value, PbError> {
        let secs = match args.require(0, "when")? {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            _ => {
                return Err(PbError::new(
                    "builtins.TypeError",
                    "setLastModified takes a number",
                ))
            }
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err(PbError::value_error("not a time"));
        }
        let when = std::time::UNIX_EPOCH + Duration::from_secs(secs.ceil() as u64);
        let mut st = self.st.borrow_mut();
        if st.start.is_none() {
            return Ok(Value::None);
        }
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(when)) {
            st.headers.insert(header::LAST_MODIFIED, v);
        }
        if let (Some(since), None) = (self.if_modified_since, &self.if_none_match) {
            if self.conditional_ok && since >= when {
                st.status = StatusCode::NOT_MODIFIED;
                st.no_body = true;
            }
        }
        Ok(Value::None)
    }

    fn register_producer(self: &Rc<Self>, args: &Args) -> Result<Value, PbError> {
        let p = args
            .require(0, "producer")?
            .as_remote()
            .cloned()
            .ok_or_else(|| {
                PbError::new(
                    "builtins.TypeError",
                    "registerProducer takes a referenceable",
                )
            })?;
        let streaming = args.get(1, "streaming").is_some_and(truthy);
        let gen = {
            let mut st = self.st.borrow_mut();
            if st.ended {
                return Ok(Value::None);
            }
            st.producer = Some((p.clone(), streaming));
            st.producer_gen += 1;
            st.paused = false;
            st.producer_gen
        };
        if !streaming {
            // A pull producer: ask for the next piece whenever the client
            // has taken the last.
            self.pull(p, gen);
        }
        Ok(Value::None)
    }
}

impl Drop for Exchange {
    /// The publisher's connection let go of the response before it ended
    /// (the broker releases its objects when the connection drops): the
    /// writer's drop cuts the body short; the count goes with it.
    fn drop(&mut self) {
        if let Some(sub) = self.sub.upgrade() {
            if let Ok(mut live) = sub.live.try_borrow_mut() {
                live.remove(&self.id);
            }
        }
    }
}

impl Exchange {
    /// Asks a pull producer for its next piece whenever the client has
    /// taken the last, until it is unregistered or the response ends.
    fn pull(self: &Rc<Self>, p: RemoteReference, gen: u64) {
        let me = self.clone();
        self.when_writable(move || {
            let current = {
                let st = me.st.borrow();
                !st.ended && st.producer_gen == gen && st.producer.is_some()
            };
            if !current {
                return;
            }
            let again = me.clone();
            drop(
                p.call_remote("resumeProducing", Args::new(vec![]))
                    .add_both(move |r| {
                        if r.is_ok() {
                            again.pull(p, gen);
                        }
                        Ok::<(), PbError>(())
                    }),
            );
        });
    }
}

/// The front's side of a response, as the publisher's remote `request`
/// object (Twisted's `ViewPoint` on a `server.Request`).
struct ExchangeObject(Rc<Exchange>);

impl Referenceable for ExchangeObject {
    fn call(&self, _: &Caller, name: &str, args: Args) -> PbReply {
        let ex = &self.0;
        if !matches!(name, "write") {
            ex.touch();
        }
        let r = match name {
            "write" => {
                return match args.require(0, "data").map(raw) {
                    Ok(Some(b)) => ex.write(Bytes::from(b)),
                    Ok(None) => {
                        PbReply::Now(Err(PbError::new("builtins.TypeError", "write takes bytes")))
                    }
                    Err(e) => PbReply::Now(Err(e)),
                }
            }
            "finish" => {
                ex.finish();
                Ok(Value::None)
            }
            "setHeader" => ex.set_header(&args),
            "setResponseCode" => ex.set_response_code(&args),
            "addCookie" => ex.add_cookie(&args),
            "setETag" => ex.set_etag(&args),
            "setLastModified" => ex.set_last_modified(&args),
            "registerProducer" => ex.register_producer(&args),
            "unregisterProducer" => {
                ex.st.borrow_mut().producer = None;
                Ok(Value::None)
            }
            // braid's: the publisher's response failed part-way.
            "abort" => {
                ex.fail(
                    StatusCode::BAD_GATEWAY,
                    "the distributed server's response failed",
                );
                Ok(Value::None)
            }
            other => Err(PbError::no_such_method(other)),
        };
        PbReply::Now(r)
    }
}

/// Serves a [`Site`] to fronts over PB (Twisted's `ResourcePublisher`):
/// each request copied from a front (braid's [`Subscription`] or
/// Twisted's `ResourceSubscription`) is rendered by the site's tree,
/// walking the path below the front's mount point, and the response is
/// written back through the front's remote methods.
///
/// Listen with [`factory`](Self::factory) on a Unix socket (the usual
/// way: the socket's directory says who may connect) or TCP. PB has no
/// login here, as in Twisted: whoever can connect can send requests.
#[derive(Clone)]
#[doc(alias = "ResourcePublisher")]
pub struct Publisher {
    site: Site,
    reactor: Reactor,
    served: Rc<Cell<u64>>,
}

impl Publisher {
    /// Publishes `site`.
    pub fn new(reactor: &Reactor, site: Site) -> Publisher {
        Publisher {
            site,
            reactor: reactor.clone(),
            served: Rc::default(),
        }
    }

    /// The PB root object (for a server factory of one's own).
    pub fn root(&self) -> LocalObject {
        let me = self.clone();
        Object::builder()
            .method(CAPABILITIES, |_, _| {
                Ok(Value::List(vec![Value::str(CAP_BODY_PIECES)]))
            })
            .method("request", move |_, args| me.request(args))
            .build()
    }

    /// A server factory publishing the site (accepting the request copy
    /// type).
    pub fn factory(&self) -> PbServerFactory {
        PbServerFactory::new(self.root()).copy_types(CopyTypes::default().register(REQUEST_TYPE))
    }

    /// Requests received so far.
    pub fn requests_served(&self) -> u64 {
        self.served.get()
    }

    fn request(&self, args: Args) -> Result<Value, PbError> {
        let state = match args.positional.first() {
            Some(Value::Copy(t, s)) if t == REQUEST_TYPE => s,
            Some(other) => {
                return Err(PbError::new(
                    "builtins.TypeError",
                    format!("request takes a {REQUEST_TYPE}, not a {}", other.kind()),
                ))
            }
            None => {
                return Err(PbError::new(
                    "builtins.TypeError",
                    "request takes a request",
                ))
            }
        };
        let copied = CopiedRequest::from_state(state).map_err(PbError::value_error)?;
        self.served.set(self.served.get() + 1);
        let site = self.site.clone();
        let reactor = self.reactor.clone();
        drop(
            self.reactor
                .spawn_local(serve_copied(site, reactor, copied)),
        );
        Ok(Value::Int(NOT_DONE_YET))
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("site", &self.site)
            .field("served", &self.served.get())
            .finish()
    }
}

/// A request received over PB, checked.
struct CopiedRequest {
    head: http::request::Parts,
    content: Bytes,
    more: Option<RemoteReference>,
    client: Address,
    prepath: Vec<String>,
    postpath: Vec<String>,
    secure: bool,
    remote: RemoteReference,
}

fn seq_of_text(v: &Value) -> Option<Vec<String>> {
    v.as_seq()?
        .iter()
        .map(|s| raw(s).map(|b| String::from_utf8_lossy(&b).into_owned()))
        .collect()
}

impl CopiedRequest {
    fn from_state(state: &Value) -> Result<CopiedRequest, String> {
        let state = match state {
            Value::Dict(d) => d,
            Value::Shared(_, inner) => return CopiedRequest::from_state(inner),
            other => return Err(format!("request state is a {}, not a dict", other.kind())),
        };
        let get = |k: &str| {
            state
                .iter()
                .find(|(key, _)| text(key).as_deref() == Some(k))
                .map(|(_, v)| v)
        };
        let need = |k: &str| get(k).ok_or_else(|| format!("request state has no {k:?}"));
        let method = raw(need("method")?).ok_or("method is not bytes")?;
        let method = Method::from_bytes(&method).map_err(|_| "not an HTTP method".to_owned())?;
        let uri = raw(need("uri")?).ok_or("uri is not bytes")?;
        let uri = Uri::try_from(uri).map_err(|e| format!("bad uri: {e}"))?;
        let version = match get("clientproto").and_then(raw).as_deref() {
            Some(b"HTTP/1.0") => Version::HTTP_10,
            Some(b"HTTP/0.9") => Version::HTTP_09,
            Some(b"HTTP/2") | Some(b"HTTP/2.0") => Version::HTTP_2,
            _ => Version::HTTP_11,
        };
        let mut headers = HeaderMap::new();
        if let Some(list) = get("requestHeaders") {
            for item in list.as_seq().ok_or("requestHeaders is not a list")? {
                let pair = item
                    .as_seq()
                    .filter(|p| p.len() == 2)
                    .ok_or("a header is not a pair")?;
                let name = raw(&pair[0]).ok_or("a header name is not bytes")?;
                let name =
                    HeaderName::from_bytes(&name).map_err(|_| "bad header name".to_owned())?;
                for v in pair[1].as_seq().ok_or("header values are not a list")? {
                    let v = raw(v).ok_or("a header value is not bytes")?;
                    let v =
                        HeaderValue::from_bytes(&v).map_err(|_| "bad header value".to_owned())?;
                    headers.append(name.clone(), v);
                }
                if headers.len() > 1000 {
                    return Err("more than 1,000 header fields".into());
                }
            }
        }
        let content = get("content_data").and_then(raw).unwrap_or_default();
        let more = get("braid_body").and_then(Value::as_remote).cloned();
        let remote = need("remote")?
            .as_remote()
            .cloned()
            .ok_or("remote is not a reference")?;
        let client = match get("client").and_then(Value::as_seq) {
            Some([kind, host, port]) if text(kind).as_deref() == Some("INET") => {
                let ip = text(host).and_then(|h| h.parse().ok());
                let port = port.as_int().and_then(|p| u16::try_from(p).ok());
                match (ip, port) {
                    (Some(ip), Some(port)) => Address::Tcp(std::net::SocketAddr::new(ip, port)),
                    _ => Address::Memory("front".into()),
                }
            }
            Some([kind, path]) if text(kind).as_deref() == Some("UNIX") => {
                Address::Unix(text(path).filter(|p| !p.is_empty()).map(PathBuf::from))
            }
            _ => Address::Memory("front".into()),
        };
        let prepath = get("prepath").and_then(seq_of_text).unwrap_or_default();
        let postpath = match get("postpath").and_then(seq_of_text) {
            Some(p) => p,
            None => crate::server::split_path(uri.path()).map_err(|e| e.to_string())?,
        };
        let secure = get("_forceSSL").is_some_and(truthy);
        let mut head = http::Request::new(()).into_parts().0;
        head.method = method;
        head.uri = uri;
        head.version = version;
        head.headers = headers;
        Ok(CopiedRequest {
            head,
            content: Bytes::from(content),
            more,
            client,
            prepath,
            postpath,
            secure,
            remote,
        })
    }
}

async fn serve_copied(site: Site, reactor: Reactor, c: CopiedRequest) {
    let body = match c.more {
        None => Body::from(c.content),
        Some(more) => {
            let (body, w) = Body::channel();
            w.write(c.content);
            drop(reactor.spawn_local(pull_body(more, w)));
            body
        }
    };
    let req = http::Request::from_parts(c.head, body);
    let request = match Request::new(req, c.client, &reactor) {
        Ok(r) => r.with_paths(c.prepath, c.postpath, c.secure),
        Err(e) => {
            send(
                &c.remote,
                Response::error(StatusCode::BAD_REQUEST, &e.to_string()),
            )
            .await;
            return;
        }
    };
    let response = site.render(request).await;
    send(&c.remote, response).await;
}

/// Reads a large body's pieces from the front as the resource takes them.
async fn pull_body(more: RemoteReference, w: BodyWriter) {
    loop {
        if w.ready().await.is_err() {
            return;
        }
        match more.call_remote("read", Args::new(vec![])).await {
            Ok(v) => match raw(&v) {
                Some(b) if !b.is_empty() => w.write(b),
                Some(_) => {
                    w.finish();
                    return;
                }
                None => {
                    w.abort();
                    return;
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "the front's body failed");
                w.abort();
                return;
            }
        }
    }
}

/// Hop-by-hop headers: the front's connection's business.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-connection"
            | "te"
            | "trailer"
    )
}

/// `Set-Cookie: k=v; Path=/; HttpOnly` as Twisted's `addCookie` arguments.
fn cookie_args(value: &[u8]) -> Option<Args> {
    let s = std::str::from_utf8(value).ok()?;
    let mut parts = s.split(';');
    let (k, v) = parts.next()?.trim().split_once('=')?;
    let mut args = Args::new(vec![Value::bytes(k), Value::bytes(v)]);
    for attr in parts {
        let (name, val) = match attr.trim().split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (attr.trim(), None),
        };
        let arg = match name.to_ascii_lowercase().as_str() {
            "expires" => "expires",
            "domain" => "domain",
            "path" => "path",
            "max-age" => "max_age",
            "comment" => "comment",
            "secure" => {
                args = args.kw("secure", true);
                continue;
            }
            "httponly" => {
                args = args.kw("httpOnly", true);
                continue;
            }
            // Twisted takes "lax" and "strict" only.
            "samesite"
                if val.is_some_and(|v| {
                    matches!(v.to_ascii_lowercase().as_str(), "lax" | "strict")
                }) =>
            {
                "sameSite"
            }
            _ => continue,
        };
        if let Some(v) = val {
            args = args.kw(arg, Value::bytes(v));
        }
    }
    Some(args)
}

/// Writes a response back through the front's remote request.
async fn send(remote: &RemoteReference, response: Response) {
    let (parts, mut body) = response.into_http().into_parts();
    let ignore = |d: Deferred<Value, PbError>| drop(d.add_errback(|_| Ok(Value::None)));
    ignore(remote.call_remote(
        "setResponseCode",
        Args::new(vec![Value::Int(i64::from(parts.status.as_u16()))]),
    ));
    for name in parts.headers.keys() {
        if hop_by_hop(name) {
            continue;
        }
        let values = parts.headers.get_all(name);
        if name == header::SET_COOKIE {
            for v in values {
                if let Some(args) = cookie_args(v.as_bytes()) {
                    ignore(remote.call_remote("addCookie", args));
                }
            }
            continue;
        }
        let mut joined = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(v.as_bytes());
        }
        ignore(remote.call_remote(
            "setHeader",
            Args::new(vec![Value::bytes(name.as_str()), Value::Bytes(joined)]),
        ));
    }
    let bodyless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    if !bodyless && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        if let Some(n) = http_body::Body::size_hint(&body).exact() {
            ignore(remote.call_remote(
                "setHeader",
                Args::new(vec![
                    Value::bytes("content-length"),
                    Value::bytes(n.to_string()),
                ]),
            ));
        }
    }
    let mut unanswered: VecDeque<(usize, Deferred<Value, PbError>)> = VecDeque::new();
    let mut in_flight = 0;
    while let Some(chunk) = body.chunk().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "a published response failed part-way");
                abort(remote);
                return;
            }
        };
        for piece in chunk.chunks(PIECE) {
            while in_flight > WRITE_WINDOW {
                let Some((n, d)) = unanswered.pop_front() else {
                    break;
                };
                in_flight -= n;
                if let Err(e) = d.await {
                    // The front dropped the response (its client went
                    // away) or the connection: stop producing it.
                    tracing::debug!(error = %e, "the front stopped taking the response");
                    return;
                }
            }
            in_flight += piece.len();
            unanswered.push_back((
                piece.len(),
                remote.call_remote("write", Args::new(vec![Value::bytes(piece)])),
            ));
        }
    }
    for (_, d) in unanswered {
        ignore(d);
    }
    ignore(remote.call_remote("finish", Args::new(vec![])));
}

/// Tells the front the response failed: braid's `abort`, and for a front
/// without one (Twisted's), the connection is closed so that the client
/// does not take a cut response for a whole one.
fn abort(remote: &RemoteReference) {
    let r = remote.clone();
    drop(
        remote
            .call_remote("abort", Args::new(vec![]))
            .add_errback(move |_| {
                if let Some(b) = r.broker() {
                    b.disconnect();
                }
                Ok(Value::None)
            }),
    );
}

/// Finds a user's home directory.
type UserDatabase = dyn Fn(&str) -> Option<PathBuf>;

/// Where a user's publisher listens.
#[derive(Clone, Debug)]
enum SocketPlace {
    /// This name in the user's home directory.
    InHome(String),
    /// A path with `{user}` in it.
    Template(String),
}

/// `/~user/` for every user of the system (Twisted's `UserDirectory`):
/// served by the user's own publisher when its socket exists
/// (`~user/.braid-web.sock`, or a configured path), else from
/// `~user/public_html` with the front's own permissions, else `404`.
///
/// Mount it as a fallback so that it sees the `~user` segment:
/// `Tree::new().fallback(UserDirectory::new(&reactor))`.
pub struct UserDirectory {
    reactor: Reactor,
    socket: SocketPlace,
    public_html: String,
    config: SubscriptionConfig,
    subs: RefCell<HashMap<PathBuf, Rc<Subscription>>>,
    rest: Option<Rc<dyn Resource>>,
    homes: Box<UserDatabase>,
}

/// The socket a user's publisher listens on, in their home directory.
pub const USER_SOCKET: &str = ".braid-web.sock";

impl UserDirectory {
    /// Users' sites at their `~/.braid-web.sock` or `~/public_html`.
    pub fn new(reactor: &Reactor) -> UserDirectory {
        UserDirectory {
            reactor: reactor.clone(),
            socket: SocketPlace::InHome(USER_SOCKET.to_owned()),
            public_html: "public_html".to_owned(),
            config: SubscriptionConfig::default(),
            subs: RefCell::default(),
            rest: None,
            homes: Box::new(home_of),
        }
    }

    /// Where users' home directories are, in place of the system's user
    /// database (Twisted's `userDatabase`): for tests, or users who are
    /// not system accounts. `None`: no such user.
    pub fn user_database(
        mut self,
        homes: impl Fn(&str) -> Option<PathBuf> + 'static,
    ) -> UserDirectory {
        self.homes = Box::new(homes);
        self
    }

    /// What serves every path that is not `/~user/...` (the directory's
    /// own path included): a site's files, say. `None`: `404`.
    pub fn then(mut self, rest: Option<Rc<dyn Resource>>) -> UserDirectory {
        self.rest = rest;
        self
    }

    /// Looks for each user's publisher at `template` with `{user}`
    /// replaced by the name (`/run/braid-web/{user}.sock`), not in their
    /// home directory.
    pub fn socket_path(mut self, template: &str) -> UserDirectory {
        self.socket = SocketPlace::Template(template.to_owned());
        self
    }

    /// The directory in each home served as files (`public_html`).
    pub fn public_html(mut self, name: &str) -> UserDirectory {
        self.public_html = name.to_owned();
        self
    }

    /// The limits of the subscriptions made for users.
    pub fn subscription_config(mut self, config: SubscriptionConfig) -> UserDirectory {
        self.config = config;
        self
    }

    fn user_resource(&self, user: &str) -> Option<Rc<dyn Resource>> {
        let home = (self.homes)(user)?;
        let socket = match &self.socket {
            SocketPlace::InHome(name) => home.join(name),
            SocketPlace::Template(t) => PathBuf::from(t.replace("{user}", user)),
        };
        if is_socket(&socket) {
            let sub = self
                .subs
                .borrow_mut()
                .entry(socket.clone())
                .or_insert_with(|| {
                    Rc::new(Subscription::with_config(
                        &self.reactor,
                        PublisherAddress::Unix(socket),
                        self.config.clone(),
                    ))
                })
                .clone();
            return Some(sub);
        }
        let files = home.join(&self.public_html);
        files
            .is_dir()
            .then(|| Rc::new(File::new(files)) as Rc<dyn Resource>)
    }
}

impl fmt::Debug for UserDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDirectory")
            .field("socket", &self.socket)
            .field("public_html", &self.public_html)
            .finish()
    }
}

impl Resource for UserDirectory {
    fn render(&self, request: Request) -> Reply {
        match &self.rest {
            Some(r) => r.render(request),
            None => Response::not_found().into(),
        }
    }

    fn fallback(&self) -> Option<Rc<dyn Resource>> {
        self.rest.clone()
    }

    fn child(&self, segment: &str, _: &Request) -> Option<Rc<dyn Resource>> {
        let user = segment.strip_prefix('~')?;
        let plausible = !user.is_empty()
            && user.len() <= 32
            && !user.starts_with(['-', '.'])
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !plausible {
            return None;
        }
        self.user_resource(user)
    }
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// The user's home directory, from the system's user database
/// (`getpwnam_r`, so NSS sources count).
fn home_of(user: &str) -> Option<PathBuf> {
    use std::ffi::{CStr, CString, OsStr};
    use std::os::unix::ffi::OsStrExt;
    let name = CString::new(user).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r writes it and points its
    // strings into `buf`, which outlives their use here.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        );
        if rc != 0 || out.is_null() || pw.pw_dir.is_null() {
            return None;
        }
        let dir = CStr::from_ptr(pw.pw_dir);
        Some(PathBuf::from(OsStr::from_bytes(dir.to_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "unix:/tmp/a.sock".parse(),
            Ok(PublisherAddress::Unix("/tmp/a.sock".into()))
        );
        assert_eq!(
            "127.0.0.1:8789".parse(),
            Ok(PublisherAddress::Tcp("127.0.0.1".into(), 8789))
        );
        assert_eq!(
            "tcp:[::1]:80".parse(),
            Ok(PublisherAddress::Tcp("::1".into(), 80))
        );
        assert_eq!(
            PublisherAddress::Tcp("::1".into(), 80).to_string(),
            "[::1]:80"
        );
        assert!("unix:".parse::<PublisherAddress>().is_err());
        assert!("nohost".parse::<PublisherAddress>().is_err());
        assert!(":80".parse::<PublisherAddress>().is_err());
        assert!("h:99999".parse::<PublisherAddress>().is_err());
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-a"), "X-A");
        assert_eq!(canonical("host"), "Host");
    }

    #[test]
    fn cookies_become_twisted_arguments() {
        let a = cookie_args(
            b"sid=abc; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=60; Partitioned",
        )
        .unwrap();
        assert_eq!(a.positional, vec![Value::bytes("sid"), Value::bytes("abc")]);
        let kw: Vec<&str> = a.keywords.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kw, ["path", "httpOnly", "secure", "sameSite", "max_age"]);
        // Twisted refuses SameSite=None: it is left out.
        let a = cookie_args(b"a=b; SameSite=None").unwrap();
        assert!(a.keywords.is_empty());
        assert!(cookie_args(b"no equals sign").is_none());
    }

    #[test]
    fn hostile_states_are_refused() {
        let remote_missing = Value::Dict(vec![
            (Value::str("method"), Value::bytes("GET")),
            (Value::str("uri"), Value::bytes("/")),
        ]);
        assert!(CopiedRequest::from_state(&remote_missing)
            .err()
            .unwrap()
            .contains("remote"));
        assert!(CopiedRequest::from_state(&Value::Int(3)).is_err());
        let bad_method = Value::Dict(vec![(Value::str("method"), Value::bytes("G E T"))]);
        assert!(CopiedRequest::from_state(&bad_method).is_err());
        let bad_header = Value::Dict(vec![
            (Value::str("method"), Value::bytes("GET")),
            (Value::str("uri"), Value::bytes("/")),
            (
                Value::str("requestHeaders"),
                Value::List(vec![Value::Tuple(vec![
                    Value::bytes("X"),
                    Value::bytes("1"),
                ])]),
            ),
        ]);
        assert!(CopiedRequest::from_state(&bad_header).is_err());
    }

    #[test]
    fn users_are_looked_up() {
        assert_eq!(home_of("root"), Some(PathBuf::from("/root")));
        assert_eq!(home_of("no-such-user-here"), None);
        assert_eq!(home_of("nul\0"), None);
    }
}
