//! The publisher's half: [`Publisher`] (Twisted's `ResourcePublisher`).

use super::*;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
