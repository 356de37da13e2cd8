//! The HTTP server: a [`Site`] over a tree of [`Resource`]s (Twisted's
//! `twisted.web.server.Site` and `twisted.web.resource`).

use braid_tls::prelude::*;
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, StatusCode, Version};

use crate::body::Body;
use crate::rt::{Exchanges, HyperIo, IdleSweep, ReactorTimer};
use braid::aio::{Stream, StreamProtocol};
use braid::Address;
use braid::Reactor;
use braid::{Factory, Protocol};

mod access_log;
mod h1;
mod request;
mod resource;
mod response;

use access_log::*;
pub use request::*;
pub use resource::*;
pub use response::*;

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
    /// hyper's HTTP/1 settings, made once for all connections.
    h1: RefCell<Option<Rc<hyper::server::conn::http1::Builder>>>,
    /// Finds connections idle in hyper.
    sweep: RefCell<Option<IdleSweep>>,
}

impl SiteInner {
    fn timer(&self, reactor: &Reactor) -> ReactorTimer {
        self.timer
            .borrow_mut()
            .get_or_insert_with(|| ReactorTimer::new(reactor))
            .clone()
    }

    fn sweep(&self, reactor: &Reactor) -> IdleSweep {
        self.sweep
            .borrow_mut()
            .get_or_insert_with(|| IdleSweep::new(reactor))
            .clone()
    }

    fn h1_builder(&self, reactor: &Reactor) -> Rc<hyper::server::conn::http1::Builder> {
        if let Some(b) = &*self.h1.borrow() {
            return b.clone();
        }
        let cfg = &self.config;
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(self.timer(reactor))
            .header_read_timeout(cfg.header_timeout)
            .max_buf_size(cfg.max_head_size.max(8192))
            .max_headers(cfg.max_headers)
            .keep_alive(cfg.keep_alive)
            .half_close(false);
        let b = Rc::new(b);
        *self.h1.borrow_mut() = Some(b.clone());
        b
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
                h1: RefCell::new(None),
                sweep: RefCell::new(None),
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

    /// How many times an HTTP/1 connection idle between requests let go of
    /// its parser's state and buffers (tests and metrics). A keep-alive
    /// connection on which no byte has come for half a second to a second
    /// after its last response holds only its stream and a timer entry,
    /// some 1.7 KB in all, until its next request starts.
    pub fn idle_releases(&self) -> u64 {
        self.inner
            .sweep
            .borrow()
            .as_ref()
            .map_or(0, IdleSweep::releases)
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

    /// The site as a TLS server factory (ALPN as in
    /// [`listen_tls`](Self::listen_tls)), for a listener made another way
    /// (a port shared by workers, an adopted socket).
    ///
    /// # Errors
    ///
    /// The configuration's.
    pub fn tls_factory(
        &self,
        config: &braid_tls::ServerConfig,
    ) -> std::io::Result<impl braid::Factory> {
        #[cfg(feature = "http2")]
        let alpn = ["h2", "http/1.1"].as_slice();
        #[cfg(not(feature = "http2"))]
        let alpn = ["http/1.1"].as_slice();
        let config = config.clone().alpn(alpn.iter().copied());
        braid_tls::server_factory(self.clone(), &config)
    }

    /// Renders `request` through the site's tree as if it had arrived over
    /// HTTP (the traversal walks [`Request::postpath`]): how a
    /// [`distrib::Publisher`](crate::distrib::Publisher) serves requests
    /// that came over PB, and a way to test a whole tree without sockets.
    ///
    /// ```
    /// use braid_web::{FnResource, Request, Response, Site, Tree};
    /// use braid::{Address, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let site = Site::new(Tree::new().child("hi", FnResource::new(|_| Response::text("hi\n"))));
    /// let req = http::Request::get("/hi").body(Default::default()).unwrap();
    /// let req = Request::new(req, Address::Memory("test".into()), &reactor).unwrap();
    /// let response = reactor.block_on(site.render(req))?;
    /// assert_eq!(response.status(), 200);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn render(&self, request: Request) -> impl std::future::Future<Output = Response> {
        let site = self.inner.clone();
        site.rendered.set(site.rendered.get() + 1);
        async move { render(&*site.root, request).await }
    }

    /// Serves HTTP on one async stream (any connection made into a
    /// [`Stream`]), as a task on `reactor`.
    pub fn serve_stream(&self, reactor: &Reactor, stream: Stream) {
        let site = self.inner.clone();
        if stream.transport().is_handshaking() {
            let r = reactor.clone();
            drop(reactor.spawn_local(async move {
                match stream.handshake().await {
                    Ok(()) => start_serving(site, &r, stream),
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                }
            }));
        } else {
            start_serving(site, reactor, stream);
        }
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
    /// Requests and responses, counted to tell when hyper is idle.
    exchanges: Rc<Exchanges>,
}

impl ConnInfo {
    fn stop_watching(&self) {
        if let Some(c) = self.idle_check.borrow_mut().take() {
            c.cancel();
        }
    }
}

/// Serves a connection whose handshake (if any) is done: HTTP/2 as a task
/// awaiting hyper, HTTP/1 as an [`h1::H1Conn`].
fn start_serving(site: Rc<SiteInner>, reactor: &Reactor, stream: Stream) {
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
        exchanges: Rc::default(),
    });
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
            info.exchanges.clone(),
            site.sweep(reactor),
        )
    };
    watch_idle(
        reactor,
        &transport,
        io.activity(),
        info.clone(),
        site.config.idle_timeout,
    );
    let svc_site = site.clone();
    let svc_reactor = reactor.clone();
    let svc_info = info.clone();
    let svc = hyper::service::service_fn(move |req| {
        handle(svc_site.clone(), svc_reactor.clone(), svc_info.clone(), req)
    });
    let timer = site.timer(reactor);
    if h2 {
        let r = reactor.clone();
        drop(reactor.spawn_local(async move {
            if let Err(e) = serve_h2(&r, timer, &site.config, io, svc).await {
                tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
            }
            transport.lose_connection();
        }));
    } else {
        let conn = h1::H1Conn::new(
            site.h1_builder(reactor),
            timer,
            site.config.header_timeout,
            svc,
            info,
            io,
        );
        drop(reactor.spawn_local(conn));
    }
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

/// The service hyper calls for each request: counts it as started, and
/// as finished when its response body is done (or the answer is dropped
/// before there is one), so that the connection knows when it is idle.
fn handle(
    site: Rc<SiteInner>,
    reactor: Reactor,
    info: Rc<ConnInfo>,
    req: http::Request<hyper::body::Incoming>,
) -> Counted<impl Future<Output = Result<http::Response<LoggedBody>, Infallible>>> {
    let exchanges = info.exchanges.clone();
    exchanges.started.set(exchanges.started.get() + 1);
    Counted {
        answer: respond(site, reactor, info, req),
        done: Finished(Some(exchanges)),
    }
}

pin_project_lite::pin_project! {
    /// A response on its way, counted (see [`handle`]). Written out rather
    /// than an `async fn` around `respond`, which would hold the answer's
    /// state twice and copy it at every request.
    struct Counted<F> {
        #[pin]
        answer: F,
        done: Finished,
    }
}

impl<F> Future for Counted<F>
where
    F: Future<Output = Result<http::Response<LoggedBody>, Infallible>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Poll::Ready(Ok(mut response)) = this.answer.poll(cx) else {
            return Poll::Pending;
        };
        // From here the response body counts as the response finishing.
        response.body_mut().done = this.done.0.take();
        Poll::Ready(Ok(response))
    }
}

/// Counts a response as finished if dropped before its body exists (hyper
/// dropped the service's future).
struct Finished(Option<Rc<Exchanges>>);

impl Drop for Finished {
    fn drop(&mut self) {
        if let Some(e) = self.0.take() {
            e.finished.set(e.finished.get() + 1);
        }
    }
}

async fn respond(
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
    Ok(http::Response::from_parts(
        parts,
        LoggedBody {
            body,
            log,
            done: None,
        },
    ))
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
