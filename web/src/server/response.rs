//! What a resource answers: a [`Response`] now, or a [`Reply`] later (a
//! future or a Deferred).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::body::{Body, BodyWriter};
use braid::Deferred;

/// An HTTP response: status, headers and a [`Body`].
pub struct Response {
    pub(super) inner: http::Response<Body>,
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
pub(super) enum ReplyKind {
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
