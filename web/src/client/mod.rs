//! The HTTP client (Twisted's `Agent`): any method, streamed bodies, a
//! keep-alive pool per host, redirects, HTTPS, timeouts.

use braid_tls::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};

use super::body::{Body, BodyError};
use super::rt::HyperIo;
use super::tunnel::{Proxy, ProxyKind};
use braid::aio::Stream;
use braid::Deferred;
use braid::Reactor;

mod config;

pub use config::{AgentConfig, ClientError};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    https: bool,
    host: String,
    port: u16,
    /// The proxy the connection goes through, if any.
    proxy: Option<Proxy>,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    #[cfg(feature = "http2")]
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            #[cfg(feature = "http2")]
            Sender::H2(s) => s.is_closed(),
        }
    }

    async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Sender::H1(s) => s.ready().await,
            #[cfg(feature = "http2")]
            Sender::H2(s) => s.ready().await,
        }
    }
}

struct Idle {
    sender: Sender,
    since: Instant,
}

struct AgentInner {
    reactor: Reactor,
    config: AgentConfig,
    pool: RefCell<HashMap<PoolKey, Vec<Idle>>>,
    tls: RefCell<Option<braid_tls::ClientConfig>>,
    connections: Cell<u64>,
}

/// An HTTP client (Twisted's `Agent`): requests as futures or Deferreds,
/// with keep-alive connections pooled per host, directly or through a
/// [`Proxy`] (HTTP with `CONNECT`, or SOCKS with the `socks` feature; see
/// [`AgentConfig::with_proxy`]).
///
/// ```no_run
/// use braid_web::Agent;
/// use braid::Reactor;
///
/// let reactor = Reactor::new()?;
/// let agent = Agent::new(&reactor);
/// let text = reactor.block_on(async move {
///     let resp = agent.get("http://127.0.0.1:8080/").await?;
///     resp.text(1 << 20).await
/// })??;
/// println!("{text}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Agent {
    inner: Rc<AgentInner>,
}

impl Agent {
    /// An agent with the default [`AgentConfig`].
    pub fn new(reactor: &Reactor) -> Agent {
        Agent::with_config(reactor, AgentConfig::default())
    }

    /// An agent with its own settings.
    pub fn with_config(reactor: &Reactor, config: AgentConfig) -> Agent {
        Agent {
            inner: Rc::new(AgentInner {
                reactor: reactor.clone(),
                config,
                pool: RefCell::default(),
                tls: RefCell::new(None),
                connections: Cell::new(0),
            }),
        }
    }

    /// Uses `config` for HTTPS (the platform's roots by default). With the
    /// `http2` feature, HTTP/2 is offered by ALPN.
    pub fn with_tls(self, config: braid_tls::ClientConfig) -> Agent {
        *self.inner.tls.borrow_mut() = Some(config);
        self
    }

    /// The settings.
    pub fn config(&self) -> &AgentConfig {
        &self.inner.config
    }

    /// Connections opened so far (a measure of pooling).
    pub fn connections_made(&self) -> u64 {
        self.inner.connections.get()
    }

    /// Idle connections in the pool.
    pub fn idle_connections(&self) -> usize {
        self.inner.pool.borrow().values().map(Vec::len).sum()
    }

    /// Closes every idle connection.
    pub fn close_idle(&self) {
        self.inner.pool.borrow_mut().clear();
    }

    /// `GET url`.
    ///
    /// # Errors
    ///
    /// See [`send`](Self::send).
    pub async fn get(&self, url: &str) -> Result<ClientResponse, ClientError> {
        self.request_async(Method::GET, url, HeaderMap::new(), Body::empty())
            .await
    }

    /// Any request, as a Deferred (Twisted's `Agent.request`).
    pub fn request(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Deferred<ClientResponse, ClientError> {
        let me = self.clone();
        let url = url.to_owned();
        let d = Deferred::new();
        let resolver = d.resolver();
        drop(self.inner.reactor.spawn_local(async move {
            resolver.resolve(me.request_async(method, &url, headers, body).await);
        }));
        d
    }

    /// Any request, as a future.
    ///
    /// # Errors
    ///
    /// See [`send`](Self::send).
    pub async fn request_async(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<ClientResponse, ClientError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| ClientError::InvalidUrl(url.to_owned()))?;
        let mut req = http::Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        self.send(req).await
    }

    /// Sends `req` (its URI absolute), following redirects up to the
    /// limit. A `Host` header is added when missing.
    ///
    /// # Errors
    ///
    /// [`ClientError`]: a bad URL, a failed connection, a timeout, too
    /// many redirects, or a broken exchange.
    pub async fn send(&self, req: http::Request<Body>) -> Result<ClientResponse, ClientError> {
        let (mut head, mut body) = req.into_parts();
        let mut redirects = 0;
        loop {
            let again = if self.inner.config.redirect_limit > 0 {
                body.try_clone()
            } else {
                None
            };
            let resp = self.send_once(&head, body).await?;
            let status = resp.status();
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let follow = self.inner.config.redirect_limit > 0
                && matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            let (Some(location), true) = (location, follow) else {
                return Ok(resp);
            };
            let keeps_method = matches!(status.as_u16(), 307 | 308);
            // 307/308 resend the body; a streamed one cannot be resent.
            let next_body = match (keeps_method, again) {
                (true, Some(b)) => b,
                (true, None) => return Ok(resp),
                (false, _) => Body::empty(),
            };
            redirects += 1;
            if redirects > self.inner.config.redirect_limit {
                return Err(ClientError::TooManyRedirects(
                    self.inner.config.redirect_limit,
                ));
            }
            let next = resolve(&head.uri, &location)
                .ok_or_else(|| ClientError::InvalidUrl(location.clone()))?;
            if origin(&next) != origin(&head.uri) {
                // Credentials belong to the origin they were meant for.
                for h in [
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::PROXY_AUTHORIZATION,
                ] {
                    head.headers.remove(h);
                }
            }
            if !keeps_method && head.method != Method::HEAD {
                head.method = Method::GET;
                for h in [
                    header::CONTENT_LENGTH,
                    header::CONTENT_TYPE,
                    header::TRANSFER_ENCODING,
                ] {
                    head.headers.remove(h);
                }
            }
            head.headers.remove(header::HOST);
            head.uri = next;
            body = next_body;
            drop(resp);
        }
    }

    /// One exchange, on a pooled connection if one is idle (retried once
    /// on a fresh connection if the pooled one turns out closed and the
    /// body can be sent again).
    async fn send_once(
        &self,
        head: &http::request::Parts,
        body: Body,
    ) -> Result<ClientResponse, ClientError> {
        let key = self.pool_key(&head.uri)?;
        let mut body = Some(body);
        for attempt in 0..2 {
            let (mut sender, reused) = match self.checkout(&key).await {
                Some(s) => (s, true),
                None => (self.connect(&key).await?, false),
            };
            let b = body.take().unwrap_or_default();
            let retry_body = if reused { b.try_clone() } else { None };
            let req = self.build(head, &key, &sender, b)?;
            let sent = self.inner.reactor.timeout(
                self.inner.config.response_timeout,
                send_request(&mut sender, req),
            );
            match sent.await {
                Err(_) => return Err(ClientError::TimedOut),
                Ok(Ok(resp)) => return Ok(self.wrap(resp, key, sender, head.uri.clone())),
                Ok(Err(e)) => {
                    let stale = reused
                        && attempt == 0
                        && (e.is_canceled() || e.is_incomplete_message() || e.is_closed());
                    match (stale, retry_body) {
                        (true, Some(b)) => {
                            tracing::debug!(error = %e, "pooled connection was closed; retrying");
                            body = Some(b);
                            continue;
                        }
                        _ => return Err(ClientError::Http(e.to_string())),
                    }
                }
            }
        }
        Err(ClientError::Http(
            "connection closed before the response".into(),
        ))
    }

    fn build(
        &self,
        head: &http::request::Parts,
        key: &PoolKey,
        sender: &Sender,
        body: Body,
    ) -> Result<http::Request<Body>, ClientError> {
        let mut req = http::Request::new(body);
        *req.method_mut() = head.method.clone();
        *req.headers_mut() = head.headers.clone();
        let is_h2 = !matches!(sender, Sender::H1(_));
        if is_h2 {
            *req.uri_mut() = head.uri.clone();
            *req.version_mut() = Version::HTTP_2;
            req.headers_mut().remove(header::HOST);
        } else {
            let pq = head
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let forward = key
                .proxy
                .as_ref()
                .filter(|p| p.kind() == ProxyKind::Http && !key.https);
            // Through an HTTP proxy a plain request names its origin in
            // full (RFC 9112 3.2.2), with the proxy's login.
            let target = match forward {
                Some(p) => {
                    if let Some(a) = p.authorization() {
                        if !req.headers().contains_key(header::PROXY_AUTHORIZATION) {
                            let v = HeaderValue::from_str(&a)
                                .map_err(|_| ClientError::InvalidUrl("proxy login".into()))?;
                            req.headers_mut().insert(header::PROXY_AUTHORIZATION, v);
                        }
                    }
                    format!("http://{}{pq}", host_header(key))
                }
                None => pq,
            };
            *req.uri_mut() = target
                .parse()
                .map_err(|_| ClientError::InvalidUrl(head.uri.to_string()))?;
            if !req.headers().contains_key(header::HOST) {
                let v = HeaderValue::from_str(&host_header(key))
                    .map_err(|_| ClientError::InvalidUrl(head.uri.to_string()))?;
                req.headers_mut().insert(header::HOST, v);
            }
        }
        Ok(req)
    }

    /// An idle connection to `key` that is still open, if any.
    async fn checkout(&self, key: &PoolKey) -> Option<Sender> {
        loop {
            let idle = {
                let mut pool = self.inner.pool.borrow_mut();
                let list = pool.get_mut(key)?;
                let now = self.inner.reactor.now();
                list.retain(|i| {
                    !i.sender.is_closed()
                        && now.saturating_duration_since(i.since) < self.inner.config.idle_timeout
                });
                let i = list.pop();
                #[cfg(feature = "http2")]
                if let Some(Idle {
                    sender: Sender::H2(s),
                    since,
                }) = &i
                {
                    // HTTP/2 multiplexes: the connection stays in the pool
                    // for other requests at the same time.
                    list.push(Idle {
                        sender: Sender::H2(s.clone()),
                        since: *since,
                    });
                }
                if list.is_empty() {
                    pool.remove(key);
                }
                i?
            };
            let mut s = idle.sender;
            if s.ready().await.is_ok() {
                return Some(s);
            }
        }
    }

    /// The key of `uri`'s connections: its origin, and the proxy that
    /// applies to it.
    fn pool_key(&self, uri: &Uri) -> Result<PoolKey, ClientError> {
        let mut key = pool_key(uri)?;
        let config = &self.inner.config;
        let proxy = if key.https {
            &config.https_proxy
        } else {
            &config.http_proxy
        };
        if !super::tunnel::bypassed(&config.no_proxy, &key.host) {
            key.proxy = proxy.clone();
        }
        Ok(key)
    }

    /// A stream to the origin through the key's proxy, TLS on it for
    /// HTTPS (with the origin, checked against its name).
    async fn connect_via(&self, key: &PoolKey, proxy: &Proxy) -> Result<Stream, ClientError> {
        let r = &self.inner.reactor;
        let config = &self.inner.config;
        let tunnel = key.https || proxy.kind() != ProxyKind::Http;
        let stream = super::tunnel::open(
            r,
            proxy,
            &key.host,
            key.port,
            tunnel,
            config.connect_timeout,
            config.max_head_size,
        )
        .await?;
        if key.https {
            let cfg = self.tls_config();
            let tls = |e: braid_tls::TlsError| {
                ClientError::Connect(io::ErrorKind::InvalidData, e.to_string())
            };
            braid_tls::TlsStart::client(&cfg, &key.host)
                .and_then(|start| stream.transport().start_tls(start))
                .map_err(tls)?;
            r.timeout(config.connect_timeout, stream.handshake())
                .await
                .map_err(|_| {
                    ClientError::Connect(io::ErrorKind::TimedOut, "TLS handshake timed out".into())
                })?
                .map_err(|e| ClientError::Connect(e.kind(), e.to_string()))?;
        }
        Ok(stream)
    }

    /// The TLS settings, ALPN included.
    fn tls_config(&self) -> braid_tls::ClientConfig {
        let cfg = self
            .inner
            .tls
            .borrow_mut()
            .get_or_insert_with(braid_tls::ClientConfig::new)
            .clone();
        #[cfg(feature = "http2")]
        let cfg = cfg.alpn(["h2", "http/1.1"]);
        #[cfg(not(feature = "http2"))]
        let cfg = cfg.alpn(["http/1.1"]);
        cfg
    }

    async fn connect(&self, key: &PoolKey) -> Result<Sender, ClientError> {
        let r = &self.inner.reactor;
        let t = Some(self.inner.config.connect_timeout);
        let cerr = |e: io::Error| ClientError::Connect(e.kind(), e.to_string());
        let stream = if let Some(proxy) = &key.proxy {
            self.connect_via(key, proxy).await?
        } else if key.https {
            {
                let cfg = self.tls_config();
                let s = Stream::connect_tls_host(r, &key.host, key.port, &cfg, t)
                    .await
                    .map_err(cerr)?;
                r.timeout(self.inner.config.connect_timeout, s.handshake())
                    .await
                    .map_err(|_| {
                        ClientError::Connect(
                            io::ErrorKind::TimedOut,
                            "TLS handshake timed out".into(),
                        )
                    })?
                    .map_err(cerr)?;
                s
            }
        } else {
            Stream::connect_host_timeout(r, &key.host, key.port, t)
                .await
                .map_err(cerr)?
        };
        let _ = stream.transport().set_nodelay(true);
        self.inner.connections.set(self.inner.connections.get() + 1);
        #[cfg(feature = "http2")]
        {
            let h2 = stream
                .transport()
                .tls_info()
                .and_then(|i| i.alpn_protocol)
                .is_some_and(|p| p == b"h2");
            if h2 {
                let io = HyperIo::new(stream);
                let (sender, conn) =
                    hyper::client::conn::http2::Builder::new(super::rt::LocalExec(r.clone()))
                        .timer(super::rt::ReactorTimer::new(r))
                        .handshake(io)
                        .await
                        .map_err(|e| ClientError::Http(e.to_string()))?;
                drop(r.spawn_local(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "HTTP/2 client connection ended");
                    }
                }));
                return Ok(Sender::H2(sender));
            }
        }
        let io = HyperIo::new(stream);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(self.inner.config.max_head_size.max(8192))
            .handshake(io)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        drop(r.spawn_local(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP/1 client connection ended");
            }
        }));
        Ok(Sender::H1(sender))
    }

    fn wrap(
        &self,
        resp: http::Response<hyper::body::Incoming>,
        key: PoolKey,
        sender: Sender,
        url: Uri,
    ) -> ClientResponse {
        let (parts, incoming) = resp.into_parts();
        let body = Body::incoming(
            incoming,
            &self.inner.reactor,
            Some(self.inner.config.body_timeout),
        );
        let closes = parts
            .headers
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let slot = PoolSlot {
            agent: Rc::downgrade(&self.inner),
            key,
            sender: Some(sender),
        };
        #[cfg(feature = "http2")]
        let slot = {
            // HTTP/2 multiplexes: the connection goes back at once.
            let mut slot = slot;
            if let Some(Sender::H2(s)) = &slot.sender {
                let s = s.clone();
                slot.give_back(Sender::H2(s));
            }
            slot
        };
        let mut body = PooledBody {
            inner: body,
            slot: (!closes).then_some(slot),
        };
        if http_body::Body::is_end_stream(&body.inner) {
            body.done();
        }
        ClientResponse {
            inner: http::Response::from_parts(parts, Body::wrap_typed(body)),
            url,
        }
    }
}

async fn send_request(
    sender: &mut Sender,
    req: http::Request<Body>,
) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
    match sender {
        Sender::H1(s) => s.send_request(req).await,
        #[cfg(feature = "http2")]
        Sender::H2(s) => s.send_request(req).await,
    }
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.inner.config)
            .field("idle", &self.idle_connections())
            .finish()
    }
}

/// Returns a connection to the pool when its response body is done.
struct PoolSlot {
    agent: Weak<AgentInner>,
    key: PoolKey,
    sender: Option<Sender>,
}

impl PoolSlot {
    fn give_back(&mut self, sender: Sender) {
        let Some(agent) = self.agent.upgrade() else {
            return;
        };
        if sender.is_closed() {
            return;
        }
        let mut pool = agent.pool.borrow_mut();
        let list = pool.entry(self.key.clone()).or_default();
        #[cfg(feature = "http2")]
        if matches!(sender, Sender::H2(_)) && list.iter().any(|i| matches!(i.sender, Sender::H2(_)))
        {
            // One entry per multiplexed connection is enough.
            return;
        }
        if list.len() < agent.config.max_idle_per_host {
            list.push(Idle {
                sender,
                since: agent.reactor.now(),
            });
        }
    }
}

struct PooledBody {
    inner: Body,
    slot: Option<PoolSlot>,
}

impl PooledBody {
    fn done(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            if let Some(Sender::H1(s)) = slot.sender.take() {
                slot.give_back(Sender::H1(s));
            }
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => self.done(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.done(),
            // A failed body leaves the connection in an unknown state.
            Poll::Ready(Some(Err(_))) => self.slot = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response received by an [`Agent`].
pub struct ClientResponse {
    inner: http::Response<Body>,
    url: Uri,
}

impl ClientResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The HTTP version the server answered with.
    pub fn version(&self) -> Version {
        self.inner.version()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// One header's value as text.
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.inner.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The URL that answered (after any redirects).
    pub fn url(&self) -> &Uri {
        &self.url
    }

    /// The body, to read piece by piece.
    pub fn body_mut(&mut self) -> &mut Body {
        self.inner.body_mut()
    }

    /// The whole body, refusing more than `limit` bytes.
    ///
    /// # Errors
    ///
    /// [`ClientError::Body`] with the body's error.
    pub async fn bytes(self, limit: usize) -> Result<Bytes, ClientError> {
        Ok(self.inner.into_body().collect(limit).await?)
    }

    /// The whole body as text (invalid UTF-8 replaced).
    ///
    /// # Errors
    ///
    /// As [`bytes`](Self::bytes).
    pub async fn text(self, limit: usize) -> Result<String, ClientError> {
        let b = self.bytes(limit).await?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// As an `http::Response`.
    pub fn into_http(self) -> http::Response<Body> {
        self.inner
    }
}

impl fmt::Debug for ClientResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponse")
            .field("status", &self.status())
            .field("url", &self.url)
            .finish()
    }
}

fn pool_key(uri: &Uri) -> Result<PoolKey, ClientError> {
    let bad = || ClientError::InvalidUrl(uri.to_string());
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad()),
    };
    let host = uri.host().ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(bad());
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok(PoolKey {
        https,
        host: host.to_ascii_lowercase(),
        port,
        proxy: None,
    })
}

/// The `Host` header for a connection's key: the port only if it is not
/// the scheme's default, IPv6 literals in brackets.
fn host_header(key: &PoolKey) -> String {
    let default = if key.https { 443 } else { 80 };
    let name = if key.host.contains(':') {
        format!("[{}]", key.host)
    } else {
        key.host.clone()
    };
    if key.port == default {
        name
    } else {
        format!("{name}:{}", key.port)
    }
}

fn origin(uri: &Uri) -> Option<PoolKey> {
    pool_key(uri).ok()
}

/// Resolves a `Location` against the URL it came from (absolute, or
/// absolute-path and relative references).
fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    if let Ok(u) = location.parse::<Uri>() {
        if u.scheme().is_some() {
            return Some(u);
        }
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let bp = base.path();
        let dir = &bp[..bp.rfind('/').map_or(0, |i| i + 1)];
        format!("{}{}", if dir.is_empty() { "/" } else { dir }, location)
    };
    format!("{scheme}://{authority}{path}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve() {
        let base: Uri = "http://a.example:8080/x/y?q=1".parse().unwrap();
        assert_eq!(resolve(&base, "/z").unwrap(), "http://a.example:8080/z");
        assert_eq!(resolve(&base, "z").unwrap(), "http://a.example:8080/x/z");
        assert_eq!(
            resolve(&base, "https://b.example/").unwrap(),
            "https://b.example/"
        );
        assert_eq!(
            resolve(&base, "//c.example/p").unwrap(),
            "http://c.example/p"
        );
    }

    #[test]
    fn pool_keys() {
        let k = pool_key(&"http://Example.com/".parse().unwrap()).unwrap();
        assert_eq!(
            (k.https, k.host.as_str(), k.port),
            (false, "example.com", 80)
        );
        let k = pool_key(&"https://[::1]:8443/".parse().unwrap()).unwrap();
        assert_eq!((k.https, k.host.as_str(), k.port), (true, "::1", 8443));
        assert!(pool_key(&"ftp://x/".parse().unwrap()).is_err());
        let host = |u: &str| host_header(&pool_key(&u.parse().unwrap()).unwrap());
        assert_eq!(host("http://Example.com/"), "example.com");
        assert_eq!(host("http://example.com:8080/"), "example.com:8080");
        assert_eq!(host("https://example.com:443/"), "example.com");
        assert_eq!(host("http://[::1]/"), "[::1]");
        assert_eq!(host("https://[::1]:8443/"), "[::1]:8443");
        assert!(pool_key(&"/relative".parse().unwrap()).is_err());
        assert_ne!(
            origin(&"http://a/".parse().unwrap()),
            origin(&"https://a/".parse().unwrap())
        );
    }
}
