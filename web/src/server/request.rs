//! What a resource is given: the request's head, its body, where traversal
//! stands in the path, and its upgrade.

use std::fmt;
use std::rc::Rc;

use bytes::Bytes;
use http::header::{self};
use http::{HeaderMap, Method, Uri, Version};

use crate::body::{Body, BodyError};
use braid::aio::Stream;
use braid::Address;
use braid::Reactor;

use super::*;

/// An HTTP request as a resource sees it (Twisted's `Request`): the head,
/// the body still to be read, and where traversal stands in the path.
pub struct Request {
    pub(super) head: http::request::Parts,
    pub(super) body: Body,
    pub(super) peer: Address,
    pub(super) secure: bool,
    pub(super) prepath: Vec<String>,
    pub(super) postpath: Vec<String>,
    pub(super) reactor: Reactor,
    pub(super) conn: Option<Rc<ConnInfo>>,
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

    /// Sets where the request stands in a tree: a request that came over
    /// PB carries the paths its front walked (Twisted's copied `prepath`
    /// and `postpath`), and `secure` as the front saw it.
    #[cfg_attr(not(feature = "distrib"), allow(dead_code))]
    pub(crate) fn with_paths(
        mut self,
        prepath: Vec<String>,
        postpath: Vec<String>,
        secure: bool,
    ) -> Request {
        self.prepath = prepath;
        self.postpath = postpath;
        self.secure = secure;
        self
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

pub(crate) fn split_path(path: &str) -> Result<Vec<String>, BadPath> {
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

pub(super) fn decode_form(s: &str) -> String {
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

pub(super) fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return h.split(']').next().map_or(h, |x| &h[..x.len() + 1]);
    }
    h.rsplit_once(':').map_or(h, |(a, _)| a)
}
