//! The front's half: [`Subscription`] (Twisted's `ResourceSubscription`).

use super::exchange::{ExState, Exchange, ExchangeObject};
use super::*;

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

pub(super) struct Sub {
    me: Weak<Sub>,
    reactor: Reactor,
    address: PublisherAddress,
    pub(super) config: SubscriptionConfig,
    conn: RefCell<Conn>,
    pub(super) live: RefCell<HashMap<u64, Weak<Exchange>>>,
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
            #[cfg(unix)]
            PublisherAddress::Unix(p) => drop(self.reactor.connect_unix(p, factory, timeout)),
            #[cfg(not(unix))]
            PublisherAddress::Unix(_) => {
                drop(factory);
                self.not_connected(
                    "a unix: publisher needs Unix sockets, which braid does not offer on Windows",
                );
                return;
            }
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
            not_modified: false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-a"), "X-A");
        assert_eq!(canonical("host"), "Host");
    }
}
