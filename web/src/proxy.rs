//! Proxies: a reverse proxy resource (Twisted's `ReverseProxyResource`)
//! and a forward proxy with `CONNECT` tunnels (Twisted's `proxy.Proxy`).

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::rc::Rc;
use std::task::Poll;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};

use super::client::{Agent, ClientError};
use super::server::{Reply, Request, Resource, Response, Upgraded};
use braid::aio::Stream;

/// Headers that belong to one connection, not to the message (RFC 9110
/// §7.6.1); a proxy never forwards them.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Removes hop-by-hop headers, those `Connection` names included.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    h.remove(header::TRANSFER_ENCODING);
}

fn gateway_error(e: &ClientError) -> Response {
    tracing::debug!(error = %e, "proxied request failed");
    match e {
        ClientError::TimedOut => Response::error(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout"),
        _ => Response::error(StatusCode::BAD_GATEWAY, "Bad Gateway"),
    }
}

/// Sends `request` (its method and body) to `uri` with `headers`; the
/// backend's answer, streamed, or a gateway error.
fn forward(agent: &Agent, request: &mut Request, uri: Uri, headers: HeaderMap) -> Reply {
    let mut req = http::Request::new(request.take_body());
    *req.method_mut() = request.method().clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    let agent = agent.clone();
    Reply::later(async move {
        match agent.send(req).await {
            Ok(resp) => into_response(resp),
            Err(e) => gateway_error(&e),
        }
    })
}

fn into_response(resp: super::client::ClientResponse) -> Response {
    let (mut parts, body) = resp.into_http().into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // hyper sets the framing again for the body it sends.
    let mut r = Response::new(parts.status).body(body);
    *r.headers_mut() = parts.headers;
    r
}

/// Forwards every request below it to a backend (Twisted's
/// `ReverseProxyResource`): the path below the resource is appended to the
/// backend's path, `Host` becomes the backend's, and the client's address is
/// added to `X-Forwarded-For`. Bodies stream both ways.
///
/// ```no_run
/// use braid_web::{Agent, ReverseProxy, Site, Tree};
/// use braid::Reactor;
///
/// let reactor = Reactor::new()?;
/// let agent = Agent::new(&reactor);
/// let proxy = ReverseProxy::new(&agent, "http://127.0.0.1:8081/app").unwrap();
/// let site = Site::new(Tree::new().child("app", proxy));
/// # let _ = site;
/// # std::io::Result::Ok(())
/// ```
pub struct ReverseProxy {
    agent: Agent,
    scheme: String,
    authority: String,
    base_path: String,
}

impl ReverseProxy {
    /// A proxy to `backend` (`http://host:port/prefix`, or `https://` with
    /// the `tls` feature).
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidUrl`] if `backend` is not an absolute URL.
    pub fn new(agent: &Agent, backend: &str) -> Result<ReverseProxy, ClientError> {
        let bad = || ClientError::InvalidUrl(backend.to_owned());
        let uri: Uri = backend.parse().map_err(|_| bad())?;
        let scheme = uri.scheme_str().ok_or_else(bad)?.to_owned();
        let authority = uri.authority().ok_or_else(bad)?.as_str().to_owned();
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(ReverseProxy {
            agent: agent.clone(),
            scheme,
            authority,
            base_path,
        })
    }

    fn target(&self, req: &Request) -> String {
        // The raw (still encoded) path below this resource.
        let raw: Vec<&str> = req.path().trim_start_matches('/').split('/').collect();
        let skip = req.prepath().len().min(raw.len());
        let rest = raw[skip..].join("/");
        let mut url = format!(
            "{}://{}{}/{}",
            self.scheme, self.authority, self.base_path, rest
        );
        if let Some(q) = req.query() {
            url.push('?');
            url.push_str(q);
        }
        url
    }
}

impl Resource for ReverseProxy {
    fn render(&self, mut request: Request) -> Reply {
        let url = self.target(&request);
        let Ok(uri) = url.parse::<Uri>() else {
            return Response::error(StatusCode::BAD_REQUEST, "Bad Request").into();
        };
        let mut headers = request.headers().clone();
        strip_hop_by_hop(&mut headers);
        if let Ok(v) = HeaderValue::from_str(&self.authority) {
            headers.insert(header::HOST, v);
        }
        if let Some(ip) = request.peer().socket_addr().map(|a| a.ip()) {
            let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&xff) {
                headers.insert("x-forwarded-for", v);
            }
        }
        let proto = if request.is_secure() { "https" } else { "http" };
        headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
        forward(&self.agent, &mut request, uri, headers)
    }

    fn is_leaf(&self) -> bool {
        true
    }
}

impl fmt::Debug for ReverseProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ReverseProxy({}://{}{})",
            self.scheme, self.authority, self.base_path
        )
    }
}

/// A forward HTTP proxy (Twisted's `proxy.Proxy`): absolute-form requests
/// (`GET http://host/path`) are forwarded with an [`Agent`], and `CONNECT
/// host:port` opens a tunnel (for HTTPS through the proxy). Serve it as a
/// site's root: `Site::new(ForwardProxy::new(&agent))`.
///
/// Closed to the world by default: only clients on loopback addresses are
/// served, others get `403`. [`allow`](Self::allow) opens it to networks.
pub struct ForwardProxy {
    agent: Agent,
    allowed: Vec<(IpAddr, u8)>,
    tunnels: bool,
}

impl ForwardProxy {
    /// A proxy for loopback clients only, with `CONNECT` tunnels.
    pub fn new(agent: &Agent) -> ForwardProxy {
        ForwardProxy {
            agent: agent.clone(),
            allowed: Vec::new(),
            tunnels: true,
        }
    }

    /// Also serves clients in `network`/`prefix` (`10.0.0.0`, 8, say;
    /// `0.0.0.0`, 0 for everyone).
    pub fn allow(mut self, network: IpAddr, prefix: u8) -> ForwardProxy {
        self.allowed.push((network, prefix));
        self
    }

    /// Serves clients in a network given as `addr/prefix` (or a single
    /// address).
    ///
    /// # Errors
    ///
    /// The text, if it is not an address with an optional prefix.
    pub fn allow_cidr(self, cidr: &str) -> Result<ForwardProxy, String> {
        let (a, p) = match cidr.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (cidr, None),
        };
        let ip: IpAddr = a.parse().map_err(|_| format!("not an address: {cidr}"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix: {cidr}"))?,
            None => max,
        };
        Ok(self.allow(ip, prefix))
    }

    /// Turns `CONNECT` tunnels off (`405`).
    pub fn tunnels(mut self, on: bool) -> ForwardProxy {
        self.tunnels = on;
        self
    }

    fn admits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_loopback()
            || self
                .allowed
                .iter()
                .any(|(net, prefix)| in_network(ip, *net, *prefix))
    }
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix.min(32))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix.min(128))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Resource for ForwardProxy {
    fn render(&self, mut request: Request) -> Reply {
        let allowed = request
            .peer()
            .socket_addr()
            .is_some_and(|a| self.admits(a.ip()));
        if !allowed {
            return Response::error(StatusCode::FORBIDDEN, "Forbidden").into();
        }
        if request.method() == Method::CONNECT {
            if !self.tunnels {
                return Response::error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
                    .into();
            }
            return connect_tunnel(request);
        }
        let uri = request.uri().clone();
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Response::error(StatusCode::BAD_REQUEST, "Not a proxy request").into();
        }
        let mut headers = request.headers().clone();
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        forward(&self.agent, &mut request, uri, headers)
    }

    fn is_leaf(&self) -> bool {
        true
    }
}

impl fmt::Debug for ForwardProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardProxy")
            .field("allowed", &self.allowed)
            .field("tunnels", &self.tunnels)
            .finish()
    }
}

fn connect_tunnel(request: Request) -> Reply {
    let Some(authority) = request.uri().authority().cloned() else {
        return Response::error(StatusCode::BAD_REQUEST, "CONNECT needs host:port").into();
    };
    let Some(port) = authority.port_u16() else {
        return Response::error(StatusCode::BAD_REQUEST, "CONNECT needs host:port").into();
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let reactor = request.reactor().clone();
    let request = Rc::new(request);
    Reply::later(async move {
        let timeout = Some(std::time::Duration::from_secs(10));
        match Stream::connect_host_timeout(&reactor, &host, port, timeout).await {
            Ok(upstream) => {
                let r = reactor.clone();
                request.on_upgrade(move |client: Upgraded| {
                    drop(r.spawn_local(splice(client, upstream)));
                });
                Response::new(StatusCode::OK)
            }
            Err(e) => {
                tracing::debug!(error = %e, %host, port, "CONNECT failed");
                Response::error(StatusCode::BAD_GATEWAY, "Bad Gateway")
            }
        }
    })
}

/// Copies bytes both ways until both directions end.
async fn splice(client: Upgraded, upstream: Stream) {
    let Upgraded { stream, read_buf } = client;
    if !read_buf.is_empty() {
        upstream.transport().write(&read_buf);
    }
    let a = pipe(&stream, &upstream);
    let b = pipe(&upstream, &stream);
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut a_done, mut b_done) = (false, false);
    std::future::poll_fn(|cx| {
        if !a_done {
            a_done = a.as_mut().poll(cx).is_ready();
        }
        if !b_done {
            b_done = b.as_mut().poll(cx).is_ready();
        }
        if a_done && b_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    stream.transport().lose_connection();
    upstream.transport().lose_connection();
}

async fn pipe(from: &Stream, to: &Stream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = std::future::poll_fn(|cx| {
            from.poll_read_with(cx, buf.len(), |a, b| {
                buf[..a.len()].copy_from_slice(a);
                buf[a.len()..a.len() + b.len()].copy_from_slice(b);
            })
        })
        .await;
        match n {
            Ok(0) | Err(_) => {
                to.transport().lose_write_connection();
                return;
            }
            Ok(n) => {
                if std::future::poll_fn(|cx| to.poll_write_all(cx, &[&buf[..n]]))
                    .await
                    .is_err()
                {
                    from.transport().lose_connection();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_network(ip("10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(!in_network(ip("11.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_network(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_network(ip("fd00::1"), ip("fd00::"), 8));
        assert!(!in_network(ip("fd00::1"), ip("10.0.0.0"), 8));
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
