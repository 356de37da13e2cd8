//! One forwarded response as the publisher's calls build it: the remote
//! request object a front hands its publisher (Twisted's `ViewPoint` on a
//! `server.Request`), and its flow control.

use super::subscription::Sub;
use super::*;

/// One forwarded response: what the publisher's calls build.
pub(super) struct Exchange {
    pub(super) sub: Weak<Sub>,
    pub(super) id: u64,
    pub(super) reactor: Reactor,
    pub(super) conditional_ok: bool,
    pub(super) if_none_match: Option<String>,
    pub(super) if_modified_since: Option<std::time::SystemTime>,
    pub(super) st: RefCell<ExState>,
}

pub(super) struct ExState {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    /// Resolves the resource's reply with the response head.
    pub(super) start: Option<Resolver<Response, Failure>>,
    pub(super) writer: Option<BodyWriter>,
    pub(super) ended: bool,
    /// A conditional request matched (`If-None-Match`, `If-Modified-Since`
    /// against `setETag`, `setLastModified`): a success becomes `304`, and
    /// what is written is dropped. Twisted's resources set `200` after
    /// asking (over PB the `CACHED` answer never reaches them in time).
    pub(super) not_modified: bool,
    pub(super) producer: Option<(RemoteReference, bool)>,
    pub(super) producer_gen: u64,
    pub(super) paused: bool,
    pub(super) timer: Option<DelayedCall>,
    /// What waits for the client to take what is queued.
    pub(super) waiters: Vec<Box<dyn FnOnce()>>,
    pub(super) draining: bool,
}

impl Exchange {
    /// The publisher did something: the response timeout starts again.
    pub(super) fn touch(self: &Rc<Self>) {
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

    pub(super) fn timed_out(self: &Rc<Self>) {
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
    pub(super) fn start(&self, st: &mut ExState) {
        let Some(start) = st.start.take() else {
            return;
        };
        if st.not_modified && st.status.is_success() {
            st.status = StatusCode::NOT_MODIFIED;
        }
        let mut response = if st.status == StatusCode::NOT_MODIFIED {
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

    pub(super) fn write(self: &Rc<Self>, data: Bytes) -> PbReply {
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
    pub(super) fn when_writable(self: &Rc<Self>, f: impl FnOnce() + 'static) {
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
    pub(super) async fn writable(&self) {
        std::future::poll_fn(|cx| {
            let st = self.st.borrow();
            match &st.writer {
                Some(w) if !st.ended => w.poll_ready(cx).map(|_| ()),
                _ => Poll::Ready(()),
            }
        })
        .await
    }

    pub(super) fn client_gone(&self) {
        let producer = {
            let mut st = self.st.borrow_mut();
            st.producer.take()
        };
        if let Some((p, _)) = producer {
            p.call_remote_no_answer("stopProducing", Args::new(vec![]));
        }
        self.end();
    }

    pub(super) fn finish(self: &Rc<Self>) {
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
    pub(super) fn fail(&self, status: StatusCode, why: &str) {
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

    pub(super) fn end(&self) {
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

    pub(super) fn set_header(&self, args: &Args) -> Result<Value, PbError> {
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

    pub(super) fn set_response_code(&self, args: &Args) -> Result<Value, PbError> {
        let code = args
            .require(0, "code")?
            .as_int()
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| PbError::value_error("not an HTTP status code"))?;
        let mut st = self.st.borrow_mut();
        if st.start.is_some() {
            st.status = code;
        }
        Ok(Value::None)
    }

    pub(super) fn add_cookie(&self, args: &Args) -> Result<Value, PbError> {
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

    pub(super) fn set_etag(&self, args: &Args) -> Result<Value, PbError> {
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
                st.not_modified = true;
            }
        }
        Ok(Value::None)
    }

    pub(super) fn set_last_modified(&self, args: &Args) -> Result<Value, PbError> {
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
                st.not_modified = true;
            }
        }
        Ok(Value::None)
    }

    pub(super) fn register_producer(self: &Rc<Self>, args: &Args) -> Result<Value, PbError> {
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
    pub(super) fn pull(self: &Rc<Self>, p: RemoteReference, gen: u64) {
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
pub(super) struct ExchangeObject(pub(super) Rc<Exchange>);

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
