//! Message bodies: empty, whole, streamed from a [`BodyWriter`] with
//! backpressure, or arriving from the peer (with a timeout between pieces
//! and a size limit).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Frame, SizeHint};

use braid::{Reactor, Sleep};

/// Bytes a [`BodyWriter`] may have queued before
/// [`ready`](BodyWriter::ready) waits (its high-water mark).
pub const WRITER_HIGH_WATER: usize = 64 * 1024;

/// Why a body could not be read or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit given to [`Body::collect`].
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// No data arrived within the body timeout.
    TimedOut,
    /// The writer side was dropped or [`aborted`](BodyWriter::abort)
    /// before [`finish`](BodyWriter::finish): the message is cut short.
    Aborted,
    /// The connection failed or the peer sent a malformed body (the text
    /// says which).
    Io(String),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { limit } => write!(f, "body larger than {limit} bytes"),
            BodyError::TimedOut => f.write_str("timed out waiting for body data"),
            BodyError::Aborted => f.write_str("body aborted before its end"),
            BodyError::Io(e) => write!(f, "body error: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// A request or response body: an [`http_body::Body`] of [`Bytes`].
///
/// Made from a string or bytes (`"hi".into()`), empty
/// ([`Body::empty`]), streamed ([`Body::channel`]), or any other body
/// ([`Body::wrap`]). Bodies that arrive from the peer come with a size
/// hint; read them with [`chunk`](Body::chunk) or
/// [`collect`](Body::collect).
pub struct Body {
    kind: Kind,
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Channel(Rc<RefCell<Channel>>),
    Incoming(Incoming),
    Boxed(Pin<Box<dyn http_body::Body<Data = Bytes, Error = BodyError>>>),
}

struct Incoming {
    inner: hyper::body::Incoming,
    timeout: Option<(Reactor, Duration)>,
    sleep: Option<Sleep>,
}

impl Body {
    /// No body.
    pub fn empty() -> Body {
        Body { kind: Kind::Empty }
    }

    /// A streamed body and the writer that feeds it (Twisted's
    /// `request.write`). The body ends when the writer calls
    /// [`finish`](BodyWriter::finish); dropping the writer first aborts it
    /// (the peer sees a cut message, not a complete one).
    pub fn channel() -> (Body, BodyWriter) {
        let ch = Rc::new(RefCell::new(Channel::default()));
        (
            Body {
                kind: Kind::Channel(ch.clone()),
            },
            BodyWriter { ch },
        )
    }

    /// Any other body.
    pub fn wrap<B>(body: B) -> Body
    where
        B: http_body::Body<Data = Bytes> + 'static,
        B::Error: fmt::Display,
    {
        use http_body_util::BodyExt;
        Body {
            kind: Kind::Boxed(Box::pin(body.map_err(|e| BodyError::Io(e.to_string())))),
        }
    }

    /// A body whose errors are already [`BodyError`]s (kept as they are).
    pub(crate) fn wrap_typed<B>(body: B) -> Body
    where
        B: http_body::Body<Data = Bytes, Error = BodyError> + 'static,
    {
        Body {
            kind: Kind::Boxed(Box::pin(body)),
        }
    }

    pub(crate) fn incoming(
        inner: hyper::body::Incoming,
        reactor: &Reactor,
        timeout: Option<Duration>,
    ) -> Body {
        Body {
            kind: Kind::Incoming(Incoming {
                inner,
                timeout: timeout.map(|t| (reactor.clone(), t)),
                sleep: None,
            }),
        }
    }

    /// Whether the body is whole in memory (and so can be sent again, as
    /// after a redirect): empty or made from bytes.
    pub fn is_replayable(&self) -> bool {
        matches!(self.kind, Kind::Empty | Kind::Full(_))
    }

    /// A copy of a replayable body; `None` for streamed ones.
    pub fn try_clone(&self) -> Option<Body> {
        match &self.kind {
            Kind::Empty => Some(Body::empty()),
            Kind::Full(b) => Some(Body {
                kind: Kind::Full(b.clone()),
            }),
            _ => None,
        }
    }

    /// The next piece of data, `None` at the end (trailers are skipped).
    ///
    /// # Errors
    ///
    /// The body's error: the connection failed, the body timed out, or
    /// the writer aborted.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        loop {
            let frame =
                std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut *self), cx))
                    .await?;
            match frame {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        return Some(Ok(d));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The whole body, refusing more than `limit` bytes.
    ///
    /// # Errors
    ///
    /// [`BodyError::TooLarge`] past the limit (checked against the
    /// declared length first), or the body's own error.
    pub async fn collect(mut self, limit: usize) -> Result<Bytes, BodyError> {
        if http_body::Body::size_hint(&self).lower() > limit as u64 {
            return Err(BodyError::TooLarge { limit });
        }
        let mut out = BytesMut::new();
        while let Some(c) = self.chunk().await {
            let c = c?;
            if out.len() + c.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            if out.is_empty() {
                // One piece: no copy.
                out = BytesMut::from(&c[..]);
                if out.len() == c.len() {
                    continue;
                }
            }
            out.extend_from_slice(&c);
        }
        Ok(out.freeze())
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match &self.kind {
            Kind::Empty => "empty",
            Kind::Full(_) => "full",
            Kind::Channel(_) => "channel",
            Kind::Incoming(_) => "incoming",
            Kind::Boxed(_) => "boxed",
        };
        f.debug_struct("Body").field("kind", &k).finish()
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        if b.is_empty() {
            return Body::empty();
        }
        Body {
            kind: Kind::Full(Some(b)),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Bytes::from(b).into()
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Bytes::from_static(s).into()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Channel(ch) => ch.borrow_mut().poll_frame(cx),
            Kind::Boxed(b) => b.as_mut().poll_frame(cx),
            Kind::Incoming(inc) => match Pin::new(&mut inc.inner).poll_frame(cx) {
                Poll::Ready(r) => {
                    inc.sleep = None;
                    Poll::Ready(r.map(|r| r.map_err(|e| BodyError::Io(e.to_string()))))
                }
                Poll::Pending => {
                    if let Some((reactor, t)) = &inc.timeout {
                        let s = inc.sleep.get_or_insert_with(|| reactor.sleep(*t));
                        if Pin::new(s).poll(cx).is_ready() {
                            inc.sleep = None;
                            return Poll::Ready(Some(Err(BodyError::TimedOut)));
                        }
                    }
                    Poll::Pending
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Channel(ch) => {
                let ch = ch.borrow();
                // An aborted body is not at its end: hyper would send the
                // last chunk and the client take the cut body for whole.
                ch.finished && !ch.aborted && ch.queue.is_empty() && ch.trailers.is_none()
            }
            Kind::Incoming(i) => i.inner.is_end_stream(),
            Kind::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Channel(_) => SizeHint::default(),
            Kind::Incoming(i) => i.inner.size_hint(),
            Kind::Boxed(b) => b.size_hint(),
        }
    }
}

#[derive(Default)]
struct Channel {
    queue: VecDeque<Bytes>,
    queued: usize,
    finished: bool,
    aborted: bool,
    trailers: Option<HeaderMap>,
    /// The body was dropped (the peer went away): writes are discarded.
    closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Channel {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(b) = self.queue.pop_front() {
            self.queued -= b.len();
            if self.queued < WRITER_HIGH_WATER {
                if let Some(w) = self.writer.take() {
                    w.wake();
                }
            }
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if self.aborted {
            return Poll::Ready(Some(Err(BodyError::Aborted)));
        }
        if self.finished {
            return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        self.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Kind::Channel(ch) = &self.kind {
            let mut ch = ch.borrow_mut();
            ch.closed = true;
            ch.queue.clear();
            ch.queued = 0;
            if let Some(w) = ch.writer.take() {
                w.wake();
            }
        }
    }
}

/// Feeds a body made by [`Body::channel`]: Twisted's `request.write` and
/// `request.finish`, with backpressure.
///
/// [`write`](Self::write) never blocks and always queues; a producer that
/// can wait calls [`ready`](Self::ready) (or uses [`send`](Self::send)),
/// which waits while more than [`WRITER_HIGH_WATER`] bytes are queued, so
/// a fast source never outruns a slow peer.
pub struct BodyWriter {
    ch: Rc<RefCell<Channel>>,
}

impl BodyWriter {
    /// Queues `data` (Twisted's `request.write`).
    pub fn write(&self, data: impl Into<Bytes>) {
        let data = data.into();
        if data.is_empty() {
            return;
        }
        let w = {
            let mut ch = self.ch.borrow_mut();
            if ch.closed || ch.finished {
                return;
            }
            ch.queued += data.len();
            ch.queue.push_back(data);
            ch.reader.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Bytes written but not yet taken by the connection.
    pub fn queued(&self) -> usize {
        self.ch.borrow().queued
    }

    /// Whether the body's reader is gone (the peer disconnected or the
    /// response was dropped): further writes are discarded.
    pub fn is_closed(&self) -> bool {
        self.ch.borrow().closed
    }

    /// Waits until fewer than [`WRITER_HIGH_WATER`] bytes are queued.
    ///
    /// # Errors
    ///
    /// [`BodyError::Aborted`] if the reader is gone.
    pub async fn ready(&self) -> Result<(), BodyError> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// [`ready`](Self::ready) as a poll: `Ready(Ok)` while fewer than
    /// [`WRITER_HIGH_WATER`] bytes are queued, else `Pending` with `cx`'s
    /// waker kept for when the connection takes them.
    ///
    /// # Errors
    ///
    /// [`BodyError::Aborted`] if the reader is gone.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), BodyError>> {
        let mut ch = self.ch.borrow_mut();
        if ch.closed {
            return Poll::Ready(Err(BodyError::Aborted));
        }
        if ch.queued < WRITER_HIGH_WATER {
            return Poll::Ready(Ok(()));
        }
        ch.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Waits for room, then queues `data`.
    ///
    /// # Errors
    ///
    /// [`BodyError::Aborted`] if the reader is gone.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), BodyError> {
        self.ready().await?;
        self.write(data);
        Ok(())
    }

    /// Sets trailers, sent after the data (chunked HTTP/1.1 and HTTP/2).
    pub fn set_trailers(&self, trailers: HeaderMap) {
        self.ch.borrow_mut().trailers = Some(trailers);
    }

    /// Ends the body (Twisted's `request.finish`).
    pub fn finish(self) {
        let w = {
            let mut ch = self.ch.borrow_mut();
            ch.finished = true;
            ch.reader.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Ends the body as failed: the peer sees the message cut short.
    pub fn abort(self) {
        self.abort_inner();
    }

    fn abort_inner(&self) {
        let w = {
            let mut ch = self.ch.borrow_mut();
            if ch.finished {
                return;
            }
            ch.finished = true;
            ch.aborted = true;
            ch.reader.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        self.abort_inner();
    }
}

impl fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyWriter")
            .field("queued", &self.queued())
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    fn poll(b: &mut Body) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        http_body::Body::poll_frame(Pin::new(b), &mut cx)
    }

    fn data(p: Poll<Option<Result<Frame<Bytes>, BodyError>>>) -> Option<Bytes> {
        match p {
            Poll::Ready(Some(Ok(f))) => f.into_data().ok(),
            _ => None,
        }
    }

    #[test]
    fn an_aborted_channel_is_not_at_its_end() {
        let (mut body, w) = Body::channel();
        w.write("partial");
        w.abort();
        assert!(!http_body::Body::is_end_stream(&body));
        assert_eq!(data(poll(&mut body)).unwrap(), "partial");
        assert!(!http_body::Body::is_end_stream(&body));
        assert!(matches!(
            poll(&mut body),
            Poll::Ready(Some(Err(BodyError::Aborted)))
        ));
        let (body, w) = Body::channel();
        drop(w);
        assert!(!http_body::Body::is_end_stream(&body));
    }

    #[test]
    fn a_channel_carries_writes_then_ends() {
        let (mut body, w) = Body::channel();
        assert!(poll(&mut body).is_pending());
        w.write("ab");
        w.write(Bytes::new());
        w.write("cd");
        assert_eq!(w.queued(), 4);
        assert_eq!(data(poll(&mut body)).unwrap(), "ab");
        assert_eq!(data(poll(&mut body)).unwrap(), "cd");
        assert_eq!(w.queued(), 0);
        let mut t = HeaderMap::new();
        t.insert("x-sum", "1".parse().unwrap());
        w.set_trailers(t);
        w.finish();
        match poll(&mut body) {
            Poll::Ready(Some(Ok(f))) => assert!(f.is_trailers()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert!(http_body::Body::is_end_stream(&body));
    }

    #[test]
    fn a_dropped_writer_cuts_the_body_short() {
        let (mut body, w) = Body::channel();
        w.write("partial");
        drop(w);
        assert_eq!(data(poll(&mut body)).unwrap(), "partial");
        assert!(matches!(
            poll(&mut body),
            Poll::Ready(Some(Err(BodyError::Aborted)))
        ));
    }

    #[test]
    fn a_dropped_body_closes_the_writer() {
        let (body, w) = Body::channel();
        w.write(vec![0u8; WRITER_HIGH_WATER * 2]);
        assert!(!w.is_closed());
        drop(body);
        assert!(w.is_closed());
        assert_eq!(w.queued(), 0, "what was queued is released");
        w.write("ignored");
        assert_eq!(w.queued(), 0);
        // ready() says so at once instead of waiting for room.
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(w.ready());
        assert!(matches!(
            fut.as_mut().poll(&mut cx),
            Poll::Ready(Err(BodyError::Aborted))
        ));
    }

    #[test]
    fn full_bodies_replay_and_size_themselves() {
        let b: Body = "hello".into();
        assert!(b.is_replayable());
        assert_eq!(http_body::Body::size_hint(&b).exact(), Some(5));
        let mut c = b.try_clone().unwrap();
        assert_eq!(data(poll(&mut c)).unwrap(), "hello");
        assert!(matches!(poll(&mut c), Poll::Ready(None)));
        let (ch, _w) = Body::channel();
        assert!(!ch.is_replayable() && ch.try_clone().is_none());
        let e: Body = String::new().into();
        assert!(http_body::Body::is_end_stream(&e));
    }
}
