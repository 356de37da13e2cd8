//! The HTTP server: a [`Site`] over a tree of [`Resource`]s (Twisted's
//! `twisted.web.server.Site` and `twisted.web.resource`).

use braid_tls::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};

use super::body::{Body, BodyError, BodyWriter};
use super::rt::{HyperIo, ReactorTimer};
use braid::aio::{Stream, StreamProtocol};
use braid::Address;
use braid::Deferred;
use braid::Reactor;
use braid::{Factory, Protocol};

/// An HTTP request as a resource sees it (Twisted's `Request`): the head,
/// the body still to be read, and where traversal stands in the path.
pub struct Request {
    head: http::request::Parts,
    body: Body,
    peer: Address,
    secure: bool,
    prepath: Vec<String>,
    postpath: Vec<String>,
    reactor: Reactor,
    conn: Option<Rc<ConnInfo>>,
}

impl Request {
    /// A request from its parts, for tests of resources and for code that
    /// builds requests itself. The path is split into
    /// [`postpath`](Self::postpath).
    ///
    /// # Errors
    ///
    /// [`BadPath`] if a path segment is not valid UTF-8 once decoded.
    pub fn new(
        req: http::Request<Body>,
        peer: Address,
        reactor: &Reactor,
    ) -> Result<Request, BadPath> {
        let (head, body) = req.into_parts();
        let postpath = split_path(head.uri.path())?;
        Ok(Request {
            head,
            body,
            peer,
            secure: false,
            prepath: Vec::new(),
            postpath,
            reactor: reactor.clone(),
            conn: None,
        })
    }

    /// Takes the connection over once the response goes out, if the
    /// response is `101 Switching Protocols` (or a `2xx` to `CONNECT`):
    /// `f` gets the connection as an async stream, with any bytes the
    /// client sent after the request. Otherwise `f` is dropped. HTTP/1.1
    /// only (HTTP/2 has no upgrades).
    pub fn on_upgrade(&self, f: impl FnOnce(Upgraded) + 'static) {
        if let Some(c) = &self.conn {
            *c.upgrade.borrow_mut() = Some(Box::new(f));
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.head.method
    }

    /// The request target as sent (origin form, or absolute form through a
    /// proxy).
    pub fn uri(&self) -> &Uri {
        &self.head.uri
    }

    /// The path, still percent-encoded.
    pub fn path(&self) -> &str {
        self.head.uri.path()
    }

    /// The query string, if any, still encoded.
    pub fn query(&self) -> Option<&str> {
        self.head.uri.query()
    }

    /// The query's arguments, decoded (`+` as a space), in order (Twisted's
    /// `request.args`).
    pub fn args(&self) -> Vec<(String, String)> {
        self.query().map(parse_query).unwrap_or_default()
    }

    /// The first query argument called `name`.
    pub fn arg(&self, name: &str) -> Option<String> {
        self.args()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// One header's value as text (`None` if absent or not visible ASCII).
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.head.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The host the client asked for: the `Host` header (or the authority
    /// of an absolute-form target), without the port.
    pub fn host(&self) -> Option<&str> {
        let h = self.head.uri.host().or_else(|| self.header(header::HOST))?;
        Some(strip_port(h))
    }

    /// The client's address.
    pub fn peer(&self) -> &Address {
        &self.peer
    }

    /// Whether the request came over TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The path segments traversed so far, decoded (Twisted's `prepath`).
    pub fn prepath(&self) -> &[String] {
        &self.prepath
    }

    /// The path segments still to traverse, decoded: for a leaf resource,
    /// the rest of the path (Twisted's `postpath`).
    pub fn postpath(&self) -> &[String] {
        &self.postpath
    }

    /// The reactor serving the request.
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// Typed values attached to the request (`http::Extensions`).
    pub fn extensions(&self) -> &http::Extensions {
        &self.head.extensions
    }

    /// The body, to read piece by piece ([`Body::chunk`]).
    pub fn body_mut(&mut self) -> &mut Body {
        &mut self.body
    }

    /// Takes the body out (an empty one is left).
    pub fn take_body(&mut self) -> Body {
        std::mem::take(&mut self.body)
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    ///
    /// # Errors
    ///
    /// [`BodyError::TooLarge`] past the limit, or the body's error (a
    /// timeout, a cut connection).
    pub async fn read_body(&mut self, limit: usize) -> Result<Bytes, BodyError> {
        self.take_body().collect(limit).await
    }

    /// The head and body as an `http::Request` (for forwarding it).
    pub fn into_http(self) -> http::Request<Body> {
        http::Request::from_parts(self.head, self.body)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.head.method)
            .field("uri", &self.head.uri)
            .field("peer", &self.peer)
            .field("postpath", &self.postpath)
            .finish()
    }
}

/// A connection taken over after an upgrade ([`Request::on_upgrade`]).
pub struct Upgraded {
    /// The connection.
    pub stream: Stream,
    /// Bytes the client sent after the request, already read off the
    /// connection: handle them before reading `stream`.
    pub read_buf: Bytes,
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded")
            .field("stream", &self.stream)
            .field("read_buf", &self.read_buf.len())
            .finish()
    }
}

/// A path segment that is not valid UTF-8 once percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPath;

impl fmt::Display for BadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("path segment is not UTF-8 once decoded")
    }
}

impl std::error::Error for BadPath {}

fn split_path(path: &str) -> Result<Vec<String>, BadPath> {
    let p = path.strip_prefix('/').unwrap_or(path);
    if p.is_empty() {
        return Ok(Vec::new());
    }
    p.split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| BadPath)
        })
        .collect()
}

fn decode_form(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses `a=1&b=two+words` into decoded pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode_form(k), decode_form(v)),
            None => (decode_form(p), String::new()),
        })
        .collect()
}

fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return h.split(']').next().map_or(h, |x| &h[..x.len() + 1]);
    }
    h.rsplit_once(':').map_or(h, |(a, _)| a)
}

/// An HTTP response: status, headers and a [`Body`].
pub struct Response {
    inner: http::Response<Body>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: StatusCode) -> Response {
        let mut inner = http::Response::new(Body::empty());
        *inner.status_mut() = status;
        Response { inner }
    }

    /// `200 OK` with a body and its content type.
    pub fn with_content(content_type: &str, body: impl Into<Body>) -> Response {
        Response::new(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
    }

    /// `200 OK`, `text/plain; charset=utf-8`.
    pub fn text(body: impl Into<Body>) -> Response {
        Response::with_content("text/plain; charset=utf-8", body)
    }

    /// `200 OK`, `text/html; charset=utf-8`.
    pub fn html(body: impl Into<Body>) -> Response {
        Response::with_content("text/html; charset=utf-8", body)
    }

    /// An error page: `status` with a short plain-text body.
    pub fn error(status: StatusCode, message: &str) -> Response {
        Response::new(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(format!("{} {}\n", status.as_u16(), message))
    }

    /// `404 Not Found` (Twisted's `NoResource`).
    pub fn not_found() -> Response {
        Response::error(StatusCode::NOT_FOUND, "Not Found")
    }

    /// A redirect (`302 Found` unless `status` says otherwise) to
    /// `location`.
    pub fn redirect(status: StatusCode, location: &str) -> Response {
        let mut r = Response::error(status, "Moved");
        if let Ok(v) = HeaderValue::from_str(location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    }

    /// `200 OK` with a streamed body and the writer that feeds it.
    pub fn streaming(content_type: &str) -> (Response, BodyWriter) {
        let (body, w) = Body::channel();
        (Response::with_content(content_type, body), w)
    }

    /// Adds a header (a value that is not a valid header value is
    /// dropped with a warning).
    pub fn header<K, V>(mut self, name: K, value: V) -> Response
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(k), Ok(v)) => {
                self.inner.headers_mut().append(k, v);
            }
            _ => tracing::warn!("invalid response header dropped"),
        }
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Body>) -> Response {
        *self.inner.body_mut() = body.into();
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// Sets the status.
    pub fn set_status(&mut self, status: StatusCode) {
        *self.inner.status_mut() = status;
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        self.inner.headers_mut()
    }

    /// The body, to read or replace.
    pub fn body_mut(&mut self) -> &mut Body {
        self.inner.body_mut()
    }

    /// As an `http::Response`.
    pub fn into_http(self) -> http::Response<Body> {
        self.inner
    }
}

impl From<http::Response<Body>> for Response {
    fn from(inner: http::Response<Body>) -> Self {
        Response { inner }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.inner.status())
            .field("headers", self.inner.headers())
            .finish()
    }
}

/// What rendering a resource gives: a response now, or one to come (from a
/// future or a [`Deferred`]; Twisted's `NOT_DONE_YET`).
pub struct Reply(ReplyKind);

// The common case (an answer at once) is kept unboxed: no allocation per
// request for it.
#[allow(clippy::large_enum_variant)]
enum ReplyKind {
    Now(Response),
    Later(Pin<Box<dyn Future<Output = Response>>>),
}

impl Reply {
    /// A response that a future will give.
    pub fn later(fut: impl Future<Output = Response> + 'static) -> Reply {
        Reply(ReplyKind::Later(Box::pin(fut)))
    }

    /// A response that a Deferred will give; its failure becomes a `500
    /// Internal Server Error` (the error is logged, not shown).
    pub fn deferred<E: fmt::Debug + 'static>(d: Deferred<Response, E>) -> Reply {
        Reply::later(async move {
            match d.await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = ?e, "a deferred response failed");
                    Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                }
            }
        })
    }

    /// The response, once there (for tests of resources, and for
    /// resources that wrap others).
    pub async fn into_response(self) -> Response {
        match self.0 {
            ReplyKind::Now(r) => r,
            ReplyKind::Later(f) => f.await,
        }
    }
}

impl From<Response> for Reply {
    fn from(r: Response) -> Self {
        Reply(ReplyKind::Now(r))
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ReplyKind::Now(r) => f.debug_tuple("Reply::Now").field(r).finish(),
            ReplyKind::Later(_) => f.write_str("Reply::Later"),
        }
    }
}

/// A node of the site's tree (Twisted's `IResource`).
///
/// The site walks the request's path one segment at a time, asking each
/// resource for [`child`](Self::child), until the path is used up or a
/// resource says it [`is_leaf`](Self::is_leaf); that resource
/// [`render`](Self::render)s the request, with the unwalked segments in
/// [`Request::postpath`].
pub trait Resource: 'static {
    /// Renders the request (Twisted's `render`). The default is `405
    /// Method Not Allowed`.
    fn render(&self, request: Request) -> Reply {
        let _ = request;
        Response::error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into()
    }

    /// The child for one path segment (decoded), or `None` for `404`
    /// (Twisted's `getChildWithDefault`).
    fn child(&self, segment: &str, request: &Request) -> Option<Rc<dyn Resource>> {
        let _ = (segment, request);
        None
    }

    /// A leaf renders every path below it (Twisted's `isLeaf`).
    fn is_leaf(&self) -> bool {
        false
    }

    /// Where traversal goes on when [`child`](Self::child) has nothing
    /// for a segment: that resource continues with the segment still
    /// unwalked (a directory of files under a few named pages, say).
    /// `None` (the default) answers `404`.
    fn fallback(&self) -> Option<Rc<dyn Resource>> {
        None
    }
}

impl<R: Resource + ?Sized> Resource for Rc<R> {
    fn render(&self, request: Request) -> Reply {
        (**self).render(request)
    }
    fn child(&self, segment: &str, request: &Request) -> Option<Rc<dyn Resource>> {
        (**self).child(segment, request)
    }
    fn is_leaf(&self) -> bool {
        (**self).is_leaf()
    }
    fn fallback(&self) -> Option<Rc<dyn Resource>> {
        (**self).fallback()
    }
}

/// A resource with named children (Twisted's `Resource` with `putChild`),
/// and optionally a resource of its own for its exact path.
#[derive(Default)]
pub struct Tree {
    children: HashMap<String, Rc<dyn Resource>>,
    index: Option<Rc<dyn Resource>>,
    fallback: Option<Rc<dyn Resource>>,
}

impl Tree {
    /// An empty tree: every path is `404`.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Adds a child at `segment` (Twisted's `putChild`).
    pub fn child(mut self, segment: &str, resource: impl Resource) -> Tree {
        self.children
            .insert(segment.to_owned(), Rc::new(resource) as Rc<dyn Resource>);
        self
    }

    /// Serves every path no child matches (and the tree's own path, if
    /// it has no index), as if mounted here: `Tree::new().child("api",
    /// api).fallback(File::new(dir))` serves files everywhere but `/api`.
    pub fn fallback(mut self, resource: impl Resource) -> Tree {
        self.fallback = Some(Rc::new(resource));
        self
    }

    /// What the tree's own path (and the same path with a trailing `/`)
    /// renders.
    pub fn index(mut self, resource: impl Resource) -> Tree {
        self.index = Some(Rc::new(resource));
        self
    }
}

impl Resource for Tree {
    fn render(&self, request: Request) -> Reply {
        match (&self.index, &self.fallback) {
            (Some(i), _) => i.render(request),
            (None, Some(f)) => f.render(request),
            (None, None) => Response::not_found().into(),
        }
    }

    fn child(&self, segment: &str, request: &Request) -> Option<Rc<dyn Resource>> {
        if let Some(c) = self.children.get(segment) {
            return Some(c.clone());
        }
        // "/dir/" ends with an empty segment: the directory itself.
        if segment.is_empty() && request.postpath.len() <= 1 && self.index.is_some() {
            return self.index.clone();
        }
        None
    }

    fn fallback(&self) -> Option<Rc<dyn Resource>> {
        self.fallback.clone()
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.children.keys().collect();
        names.sort();
        f.debug_struct("Tree")
            .field("children", &names)
            .field("index", &self.index.is_some())
            .finish()
    }
}

/// A resource from a function of the request.
///
/// ```
/// use braid_web::{FnResource, Response, Site, Tree};
///
/// let hello = FnResource::new(|_req| Response::text("hello\n"));
/// let files = FnResource::leaf(|req| {
///     Response::text(format!("asked for {}\n", req.postpath().join("/")))
/// });
/// let site = Site::new(Tree::new().child("hello", hello).child("files", files));
/// # let _ = site;
/// ```
pub struct FnResource<F> {
    f: F,
    leaf: bool,
}

impl<F, R> FnResource<F>
where
    F: Fn(Request) -> R + 'static,
    R: Into<Reply>,
{
    /// Renders its own path only (deeper paths are `404`).
    pub fn new(f: F) -> Self {
        FnResource { f, leaf: false }
    }

    /// Renders its path and every path below it.
    pub fn leaf(f: F) -> Self {
        FnResource { f, leaf: true }
    }
}

impl<F, R> Resource for FnResource<F>
where
    F: Fn(Request) -> R + 'static,
    R: Into<Reply>,
{
    fn render(&self, request: Request) -> Reply {
        (self.f)(request).into()
    }
    fn is_leaf(&self) -> bool {
        self.leaf
    }
}

impl<F> fmt::Debug for FnResource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnResource")
            .field("leaf", &self.leaf)
            .finish()
    }
}

/// Limits and timeouts of a [`Site`]. The defaults suit a server facing
/// the internet.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Time allowed for a request's head to arrive, counted from the
    /// connection's start or the end of the previous response (so it is
    /// also how long an idle keep-alive connection stays open). 30 s.
    pub header_timeout: Duration,
    /// A connection on which no byte moves either way for this long, while
    /// no resource is working on a request, is closed (a peer that stops
    /// reading a response, say). 60 s.
    pub idle_timeout: Duration,
    /// Time allowed between two pieces of a request body. 30 s.
    pub body_timeout: Duration,
    /// Largest request head, in bytes (at least 8,192): past it the answer
    /// is `431`. 16 KiB.
    pub max_head_size: usize,
    /// Most header fields in a request: past it the answer is `431`. 100.
    pub max_headers: usize,
    /// Keep connections open between requests. On.
    pub keep_alive: bool,
    /// Log every request at `INFO` on the `braid_web::access` target, in
    /// the Combined Log Format. On.
    pub access_log: bool,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_head_size: 16 * 1024,
            max_headers: 100,
            keep_alive: true,
            access_log: true,
        }
    }
}

/// The HTTP server (Twisted's `Site`): a resource tree served over any
/// braid listener.
///
/// `Site` is a [`Factory`], so it listens wherever a factory does:
/// `reactor.listen_tcp(addr, site.clone())`, `listen_unix`, or
/// [`Site::listen_tls`] (which offers HTTP/2 when built with the `http2`
/// feature).
///
/// ```no_run
/// use braid_web::{FnResource, Response, Site, Tree};
/// use braid::Reactor;
///
/// let reactor = Reactor::new()?;
/// let site = Site::new(Tree::new().child("hi", FnResource::new(|_| Response::text("hi\n"))));
/// let port = reactor.listen_tcp("127.0.0.1:8080".parse().unwrap(), site)?;
/// println!("serving on {}", port.local_addr());
/// reactor.run()?;
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct Site {
    inner: Rc<SiteInner>,
}

struct SiteInner {
    root: Rc<dyn Resource>,
    config: SiteConfig,
    /// Requests handed to resources (tests and metrics).
    rendered: Cell<u64>,
    /// hyper's timers for all of this site's connections.
    timer: RefCell<Option<ReactorTimer>>,
}

impl SiteInner {
    fn timer(&self, reactor: &Reactor) -> ReactorTimer {
        self.timer
            .borrow_mut()
            .get_or_insert_with(|| ReactorTimer::new(reactor))
            .clone()
    }
}

impl Site {
    /// A site serving `root` with the default [`SiteConfig`].
    pub fn new(root: impl Resource) -> Site {
        Site::with_config(root, SiteConfig::default())
    }

    /// A site with its own limits and timeouts.
    pub fn with_config(root: impl Resource, config: SiteConfig) -> Site {
        Site {
            inner: Rc::new(SiteInner {
                root: Rc::new(root),
                config,
                rendered: Cell::new(0),
                timer: RefCell::new(None),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SiteConfig {
        &self.inner.config
    }

    /// How many requests reached a resource so far (requests refused as
    /// malformed never do).
    pub fn requests_rendered(&self) -> u64 {
        self.inner.rendered.get()
    }

    /// Listens for HTTPS on `addr`, offering HTTP/2 by ALPN when built with
    /// the `http2` feature, HTTP/1.1 otherwise.
    ///
    /// # Errors
    ///
    /// The socket's error, or a TLS configuration error (as
    /// `InvalidInput`).
    pub fn listen_tls(
        &self,
        reactor: &Reactor,
        addr: std::net::SocketAddr,
        config: &braid_tls::ServerConfig,
    ) -> std::io::Result<braid::ListeningPort> {
        #[cfg(feature = "http2")]
        let alpn = ["h2", "http/1.1"].as_slice();
        #[cfg(not(feature = "http2"))]
        let alpn = ["http/1.1"].as_slice();
        let config = config.clone().alpn(alpn.iter().copied());
        reactor.listen_tls(addr, self.clone(), &config)
    }

    /// Serves HTTP on one async stream (any connection made into a
    /// [`Stream`]), as a task on `reactor`.
    pub fn serve_stream(&self, reactor: &Reactor, stream: Stream) {
        let site = self.inner.clone();
        drop(reactor.spawn_local(serve_connection(site, reactor.clone(), stream)));
    }
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field("config", &self.inner.config)
            .field("rendered", &self.inner.rendered.get())
            .finish()
    }
}

impl Factory for Site {
    fn build_protocol(&mut self, _addr: &Address) -> Option<Box<dyn Protocol>> {
        let site = self.clone();
        Some(Box::new(StreamProtocol::new(move |stream: Stream| {
            if let Some(reactor) = stream.transport().reactor() {
                site.serve_stream(&reactor, stream);
            }
        })))
    }
}

type UpgradeFn = Box<dyn FnOnce(Upgraded)>;

/// Per-connection state the service shares with the idle watchdog.
struct ConnInfo {
    peer: Address,
    secure: bool,
    /// Requests whose resource has not answered yet.
    working: Cell<u32>,
    /// Who takes the connection over if the response upgrades it.
    upgrade: RefCell<Option<UpgradeFn>>,
    /// The response sent was an upgrade.
    upgraded: Cell<bool>,
    /// The idle watchdog's next check (cancelled when the connection ends
    /// or is taken over, so closed connections leave no timers behind).
    idle_check: RefCell<Option<braid::DelayedCall>>,
}

impl ConnInfo {
    fn stop_watching(&self) {
        if let Some(c) = self.idle_check.borrow_mut().take() {
            c.cancel();
        }
    }
}

async fn serve_connection(site: Rc<SiteInner>, reactor: Reactor, stream: Stream) {
    if let Err(e) = stream.handshake().await {
        tracing::debug!(error = %e, "TLS handshake failed");
        return;
    }
    let (secure, alpn) = match stream.transport().tls_info() {
        Some(i) => (true, i.alpn_protocol),
        None => (false, None),
    };
    let info = Rc::new(ConnInfo {
        peer: stream.peer_addr(),
        secure,
        working: Cell::new(0),
        upgrade: RefCell::new(None),
        upgraded: Cell::new(false),
        idle_check: RefCell::new(None),
    });
    let conn_info = info.clone();
    let watching = info.clone();
    stream.on_lost(move || watching.stop_watching());
    let transport = stream.transport().clone();
    let h2 = alpn.as_deref() == Some(b"h2");
    let io = if h2 {
        HyperIo::new(stream)
    } else {
        HyperIo::guarded(
            stream,
            site.config.max_head_size.max(8192),
            site.config.max_headers,
        )
    };
    watch_idle(
        &reactor,
        &transport,
        io.activity(),
        info.clone(),
        site.config.idle_timeout,
    );
    let svc_site = site.clone();
    let svc_reactor = reactor.clone();
    let svc = hyper::service::service_fn(move |req| {
        handle(svc_site.clone(), svc_reactor.clone(), info.clone(), req)
    });
    let cfg = &site.config;
    let result = if h2 {
        serve_h2(&reactor, site.timer(&reactor), cfg, io, svc).await
    } else {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(site.timer(&reactor))
            .header_read_timeout(cfg.header_timeout)
            .max_buf_size(cfg.max_head_size.max(8192))
            .max_headers(cfg.max_headers)
            .keep_alive(cfg.keep_alive)
            .half_close(false);
        // Without `Send` I/O hyper cannot upgrade by itself, but it hands
        // the connection back when a response upgraded it.
        match b.serve_connection(io, svc).without_shutdown().await {
            Ok(parts) => {
                if conn_info.upgraded.get() {
                    let f = conn_info.upgrade.borrow_mut().take();
                    if let Some(f) = f {
                        // The connection is no longer HTTP: its new owner
                        // decides when it is idle.
                        conn_info.stop_watching();
                        f(Upgraded {
                            stream: parts.io.into_stream(),
                            read_buf: parts.read_buf,
                        });
                        return;
                    }
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
    // The close waits for unsent bytes: the watchdog stays until the
    // connection is gone, so a peer that never reads them cannot keep it.
    transport.lose_connection();
}

#[cfg(feature = "http2")]
async fn serve_h2<S>(
    reactor: &Reactor,
    timer: ReactorTimer,
    cfg: &SiteConfig,
    io: HyperIo,
    svc: S,
) -> Result<(), hyper::Error>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = LoggedBody>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: 'static,
{
    let mut b = hyper::server::conn::http2::Builder::new(super::rt::LocalExec(reactor.clone()));
    b.timer(timer)
        .max_header_list_size(cfg.max_head_size as u32)
        .keep_alive_interval(None);
    b.serve_connection(io, svc).await
}

#[cfg(not(feature = "http2"))]
async fn serve_h2<S>(
    _reactor: &Reactor,
    _timer: ReactorTimer,
    _cfg: &SiteConfig,
    _io: HyperIo,
    _svc: S,
) -> Result<(), hyper::Error> {
    // Never offered without the feature, so never negotiated.
    Ok(())
}

/// Closes the connection once no byte has moved for a whole period of
/// `idle` (so after between `idle` and twice that of quiet) while no
/// resource was working on a request. One timer per period, not one per
/// read: I/O only sets a flag.
fn watch_idle(
    reactor: &Reactor,
    transport: &braid::Transport,
    active: Rc<Cell<bool>>,
    info: Rc<ConnInfo>,
    idle: Duration,
) {
    fn arm(
        reactor: &Reactor,
        transport: braid::Transport,
        active: Rc<Cell<bool>>,
        info: Rc<ConnInfo>,
        idle: Duration,
    ) {
        let r = reactor.clone();
        let me = info.clone();
        let call = reactor.call_later(idle, move || {
            if transport.is_closed() {
                return;
            }
            if !active.replace(false) && info.working.get() == 0 {
                tracing::debug!(peer = %info.peer, "closing an idle HTTP connection");
                transport.abort_connection();
                return;
            }
            arm(&r, transport, active, info, idle);
        });
        *me.idle_check.borrow_mut() = Some(call);
    }
    arm(reactor, transport.clone(), active, info, idle);
}

/// Answers a request that must not reach a resource: the connection closes
/// after it.
fn refuse(status: StatusCode, why: &str) -> http::Response<LoggedBody> {
    tracing::debug!(%status, why, "refusing a malformed request");
    let mut r = http::Response::new(LoggedBody::plain(Body::from(format!(
        "{} {}\n",
        status.as_u16(),
        why
    ))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Checks hyper leaves to the application: framing that is ambiguous
/// (request smuggling) or a missing or doubled `Host`.
fn check_framing(req: &http::Request<hyper::body::Incoming>) -> Result<(), &'static str> {
    // One pass over the fields (names of standard headers compare as
    // tags, without hashing).
    let (mut cl, mut te, mut hosts) = (0, 0, 0);
    for (name, value) in req.headers() {
        if name == header::CONTENT_LENGTH {
            cl += 1;
            if value.is_empty() || !value.as_bytes().iter().all(u8::is_ascii_digit) {
                return Err("Content-Length is not a number");
            }
        } else if name == header::TRANSFER_ENCODING {
            te += 1;
            if !value.as_bytes().eq_ignore_ascii_case(b"chunked") {
                return Err("Transfer-Encoding other than chunked");
            }
        } else if name == header::HOST {
            hosts += 1;
        }
    }
    if cl > 1 {
        return Err("more than one Content-Length");
    }
    if te > 0 && cl > 0 {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if te > 1 {
        return Err("more than one Transfer-Encoding");
    }
    if req.version() == Version::HTTP_11 && hosts != 1 {
        return Err("HTTP/1.1 needs exactly one Host");
    }
    if hosts > 1 {
        return Err("more than one Host");
    }
    Ok(())
}

async fn handle(
    site: Rc<SiteInner>,
    reactor: Reactor,
    info: Rc<ConnInfo>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<LoggedBody>, Infallible> {
    if req.version() <= Version::HTTP_11 {
        if let Err(why) = check_framing(&req) {
            return Ok(refuse(StatusCode::BAD_REQUEST, why));
        }
    }
    let (head, body) = req.into_parts();
    let method_is_connect = head.method == Method::CONNECT;
    let postpath = match split_path(head.uri.path()) {
        Ok(p) => p,
        Err(_) => return Ok(refuse(StatusCode::BAD_REQUEST, "path is not UTF-8")),
    };
    let log = site.config.access_log.then(|| AccessLog {
        peer: info.peer.clone(),
        start: std::time::SystemTime::now(),
        line: format!("{} {} {:?}", head.method, head.uri, head.version),
        referer: head
            .headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        agent: head
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        status: 0,
        bytes: 0,
    });
    let request = Request {
        body: Body::incoming(body, &reactor, Some(site.config.body_timeout)),
        head,
        peer: info.peer.clone(),
        secure: info.secure,
        prepath: Vec::new(),
        postpath,
        reactor,
        conn: Some(info.clone()),
    };
    site.rendered.set(site.rendered.get() + 1);
    info.working.set(info.working.get() + 1);
    let response = render(&*site.root, request).await;
    info.working.set(info.working.get() - 1);
    let (parts, body) = response.into_http().into_parts();
    let upgrading = parts.status == StatusCode::SWITCHING_PROTOCOLS
        || (method_is_connect && parts.status.is_success());
    if upgrading && info.upgrade.borrow().is_some() {
        info.upgraded.set(true);
    } else {
        info.upgrade.borrow_mut().take();
    }
    let log = log.map(|mut l| {
        l.status = parts.status.as_u16();
        l
    });
    Ok(http::Response::from_parts(parts, LoggedBody { body, log }))
}

/// Walks the tree and renders; a panic in a resource's synchronous part
/// becomes a `500`.
async fn render(root: &dyn Resource, mut request: Request) -> Response {
    let picked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut here: Option<Rc<dyn Resource>> = None;
        // Fallbacks in a row (a cycle of them would never end).
        let mut hops = 0;
        loop {
            let node: &dyn Resource = here.as_deref().unwrap_or(root);
            if node.is_leaf() || request.postpath.is_empty() {
                break;
            }
            let seg = request.postpath[0].clone();
            match node.child(&seg, &request) {
                Some(c) => {
                    request.postpath.remove(0);
                    request.prepath.push(seg);
                    here = Some(c);
                    hops = 0;
                }
                None => match node.fallback() {
                    Some(f) if hops < 16 => {
                        here = Some(f);
                        hops += 1;
                    }
                    _ => return None,
                },
            }
        }
        let node: &dyn Resource = here.as_deref().unwrap_or(root);
        Some(node.render(request))
    }));
    match picked {
        Ok(Some(reply)) => reply.into_response().await,
        Ok(None) => Response::not_found(),
        Err(p) => {
            tracing::error!(panic = %braid::panic_message(&*p), "a resource panicked");
            Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

struct AccessLog {
    peer: Address,
    start: std::time::SystemTime,
    line: String,
    referer: Option<String>,
    agent: Option<String>,
    status: u16,
    bytes: u64,
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let host = match self.peer.socket_addr() {
            Some(a) => a.ip().to_string(),
            None => "-".to_owned(),
        };
        tracing::info!(
            target: "braid_web::access",
            "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\"",
            host,
            clf_date(self.start),
            self.line.replace('"', "%22"),
            self.status,
            self.bytes,
            self.referer.as_deref().unwrap_or("-").replace('"', "%22"),
            self.agent.as_deref().unwrap_or("-").replace('"', "%22"),
        );
    }
}

/// `26/Nov/2026:07:53:19 +0000`, as the Common Log Format writes dates.
pub(crate) fn clf_date(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A response body that counts what it sends and writes the access log
/// line when the response is done (or dropped).
pub(crate) struct LoggedBody {
    body: Body,
    log: Option<AccessLog>,
}

impl LoggedBody {
    fn plain(body: Body) -> LoggedBody {
        LoggedBody { body, log: None }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let r = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r {
            if let (Some(d), Some(l)) = (f.data_ref(), self.log.as_mut()) {
                l.bytes += d.len() as u64;
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_dates() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_679_599);
        assert_eq!(clf_date(t), "26/Nov/2026:07:53:19 +0000");
        assert_eq!(
            clf_date(std::time::UNIX_EPOCH),
            "01/Jan/1970:00:00:00 +0000"
        );
        let leap = std::time::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(clf_date(leap), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn paths_split_and_decode() {
        assert_eq!(split_path("/").unwrap(), Vec::<String>::new());
        assert_eq!(split_path("/a/b%20c/").unwrap(), vec!["a", "b c", ""]);
        assert_eq!(split_path("/a%2Fb").unwrap(), vec!["a/b"]);
        assert_eq!(split_path("/%ff"), Err(BadPath));
    }

    #[test]
    fn queries_decode() {
        assert_eq!(
            parse_query("a=1&b=two+words&c&d=%26"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), String::new()),
                ("d".into(), "&".into()),
            ]
        );
    }

    #[test]
    fn ports_strip() {
        assert_eq!(strip_port("example.com:80"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }
}
