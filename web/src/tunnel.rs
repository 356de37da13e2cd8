//! How an [`Agent`](crate::Agent) reaches origins through a proxy: an
//! HTTP proxy (plain requests in absolute form, HTTPS through a `CONNECT`
//! tunnel) or a SOCKS5 / SOCKS4a proxy (every request through a tunnel;
//! the `socks` feature, on braid-proxy's client).
//!
//! ```text
//!   http://origin/x  ──HTTP proxy──▶ GET http://origin/x HTTP/1.1  (Proxy-Authorization)
//!   https://origin/x ──HTTP proxy──▶ CONNECT origin:443 ─ 200 ─▶ TLS to origin ─▶ GET /x
//!   any              ──SOCKS5────▶ greeting, RFC 1929 login, CONNECT origin ─▶ [TLS] ─▶ GET /x
//! ```
//!
//! The TLS session inside a tunnel is with the origin, checked against the
//! origin's name: the proxy sees only ciphertext.

use std::fmt;
use std::io;

use base64::Engine as _;
use braid::aio::Stream;
use braid::Reactor;
use futures_util::{AsyncReadExt, AsyncWriteExt};
use http::Uri;

use super::client::ClientError;

/// What kind of proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy (`http://`): `CONNECT` for HTTPS, absolute-form
    /// requests for plain HTTP.
    Http,
    /// SOCKS5 (RFC 1928) with the name resolved here (`socks5://`, as
    /// curl does).
    Socks5,
    /// SOCKS5 with the name resolved by the proxy (`socks5h://`).
    Socks5h,
    /// SOCKS4a (`socks4a://`): the name resolved by the proxy; no
    /// password.
    Socks4a,
}

/// A proxy an [`Agent`](crate::Agent) sends its requests through (see
/// [`AgentConfig::with_proxy`](crate::AgentConfig::with_proxy)).
///
/// ```
/// use braid_web::{Proxy, ProxyKind};
///
/// let p = Proxy::parse("http://sam:s%40cret@proxy.example:3128").unwrap();
/// assert_eq!(p.kind(), ProxyKind::Http);
/// assert_eq!((p.host(), p.port()), ("proxy.example", 3128));
/// assert_eq!(p.auth(), Some(("sam", "s@cret")));
/// assert_eq!(Proxy::parse("socks5h://127.0.0.1").unwrap().port(), 1080);
/// assert!(Proxy::parse("ftp://x").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    auth: Option<(String, String)>,
}

impl fmt::Debug for Proxy {
    /// The password is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.auth.as_ref().map(|a| &a.0))
            .finish()
    }
}

impl Proxy {
    /// A proxy of `kind` at `host:port`, without a login.
    pub fn new(kind: ProxyKind, host: &str, port: u16) -> Proxy {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Proxy {
            kind,
            host: host.to_ascii_lowercase(),
            port,
            auth: None,
        }
    }

    /// With a login: Basic `Proxy-Authorization` for an HTTP proxy, RFC
    /// 1929 for SOCKS5 (SOCKS4a has none: ignored there).
    pub fn with_auth(mut self, user: &str, password: &str) -> Proxy {
        self.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Parses a proxy URL as curl takes them: `http://`, `socks5://`,
    /// `socks5h://`, `socks4a://`, with an optional percent-encoded
    /// `user:password@`; the port defaults to 1080 for SOCKS and 80 for
    /// HTTP. A bare `host:port` is an HTTP proxy.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidUrl`] for another scheme or no host.
    pub fn parse(url: &str) -> Result<Proxy, ClientError> {
        let bad = || ClientError::InvalidUrl(redact(url));
        let with_scheme = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let uri: Uri = with_scheme.parse().map_err(|_| bad())?;
        let (kind, default_port) = match uri.scheme_str() {
            Some("http") => (ProxyKind::Http, 80),
            Some("socks5") => (ProxyKind::Socks5, 1080),
            Some("socks5h") => (ProxyKind::Socks5h, 1080),
            Some("socks4a") => (ProxyKind::Socks4a, 1080),
            _ => return Err(bad()),
        };
        let authority = uri.authority().ok_or_else(bad)?.as_str();
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        let mut proxy = Proxy::new(kind, host, uri.port_u16().unwrap_or(default_port));
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            proxy = proxy.with_auth(&decode(user), &decode(password));
        }
        Ok(proxy)
    }

    /// The kind.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host (a name or an address).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login, if any.
    pub fn auth(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// `Proxy-Authorization` for an HTTP proxy with a login.
    pub(crate) fn authorization(&self) -> Option<String> {
        let (u, p) = self.auth.as_ref()?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        Some(format!("Basic {token}"))
    }
}

/// `url` with any password replaced, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Whether `host` is exempt from the proxy by a `no_proxy` list as curl
/// reads it: `*` for every host, names matching themselves and every name
/// below them (`example.org` and `.example.org` both cover
/// `www.example.org`), addresses matching exactly.
pub(crate) fn bypassed(no_proxy: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    no_proxy.iter().any(|entry| {
        let e = entry
            .trim()
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let e = e
            .strip_prefix('[')
            .and_then(|e| e.strip_suffix(']'))
            .unwrap_or(&e);
        e == "*" || (!e.is_empty() && (host == e || host.ends_with(&format!(".{e}"))))
    })
}

/// The proxy settings in the environment, as curl reads them:
/// `https_proxy` (or `HTTPS_PROXY`) for HTTPS, `http_proxy` (lower case
/// only: the upper-case one can be set by a CGI request, "httpoxy") for
/// HTTP, `all_proxy`/`ALL_PROXY` for both, and `no_proxy`/`NO_PROXY`.
pub(crate) fn from_env(https: bool) -> (Option<Proxy>, Vec<String>) {
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    };
    let url = if https {
        var(&["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"])
    } else {
        var(&["http_proxy", "all_proxy", "ALL_PROXY"])
    };
    let no_proxy = var(&["no_proxy", "NO_PROXY"])
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    (url.and_then(|u| Proxy::parse(&u).ok()), no_proxy)
}

fn connect_error(proxy: &Proxy, e: &io::Error) -> ClientError {
    ClientError::Connect(
        e.kind(),
        format!("proxy {}:{}: {e}", proxy.host, proxy.port),
    )
}

/// A plain stream to `host:port` through `proxy`, the tunnel up: what TLS
/// to the origin (or plain HTTP) goes on next. For an HTTP proxy and a
/// plain-HTTP origin there is no tunnel: the stream goes to the proxy.
pub(crate) async fn open(
    reactor: &Reactor,
    proxy: &Proxy,
    host: &str,
    port: u16,
    tunnel: bool,
    timeout: std::time::Duration,
    max_head: usize,
) -> Result<Stream, ClientError> {
    let mut stream = Stream::connect_host_timeout(reactor, &proxy.host, proxy.port, Some(timeout))
        .await
        .map_err(|e| connect_error(proxy, &e))?;
    let timed_out = || {
        ClientError::Connect(
            io::ErrorKind::TimedOut,
            format!("proxy {}:{}: no answer", proxy.host, proxy.port),
        )
    };
    match proxy.kind {
        ProxyKind::Http if !tunnel => Ok(stream),
        ProxyKind::Http => {
            reactor
                .timeout(
                    timeout,
                    http_connect(&mut stream, proxy, host, port, max_head),
                )
                .await
                .map_err(|_| timed_out())??;
            Ok(stream)
        }
        ProxyKind::Socks5 | ProxyKind::Socks5h | ProxyKind::Socks4a => {
            reactor
                .timeout(timeout, socks(reactor, &mut stream, proxy, host, port))
                .await
                .map_err(|_| timed_out())??;
            Ok(stream)
        }
    }
}

#[cfg(feature = "socks")]
async fn socks(
    reactor: &Reactor,
    stream: &mut Stream,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(), ClientError> {
    use braid_proxy::socks::client::{handshake_over, Target, Version};
    let target = match (proxy.kind, host.parse::<std::net::IpAddr>()) {
        (_, Ok(ip)) => Target::Addr((ip, port).into()),
        (ProxyKind::Socks5, Err(_)) => {
            // socks5://: the name is resolved here, the address sent.
            let addrs = reactor.resolve(host, port).await.map_err(|e| {
                ClientError::Connect(io::ErrorKind::NotFound, format!("{host}: {e}"))
            })?;
            let first = addrs.first().copied().ok_or_else(|| {
                ClientError::Connect(io::ErrorKind::NotFound, format!("{host}: no addresses"))
            })?;
            Target::Addr(first)
        }
        (_, Err(_)) => Target::Name(host.to_owned(), port),
    };
    let (version, auth) = match proxy.kind {
        ProxyKind::Socks4a => (Version::V4a, None),
        _ => (Version::V5, proxy.auth.clone()),
    };
    handshake_over(stream, version, target, auth)
        .await
        .map_err(|e| connect_error(proxy, &e))
}

#[cfg(not(feature = "socks"))]
async fn socks(
    _: &Reactor,
    _: &mut Stream,
    proxy: &Proxy,
    _: &str,
    _: u16,
) -> Result<(), ClientError> {
    Err(ClientError::Connect(
        io::ErrorKind::Unsupported,
        format!(
            "proxy {}:{}: SOCKS needs braid-web's `socks` feature",
            proxy.host, proxy.port
        ),
    ))
}

/// `CONNECT host:port` to an HTTP proxy, and its answer's head (at most
/// `max_head` bytes). Nothing past the head is read: the proxy has nothing
/// to send before the client's TLS hello.
async fn http_connect(
    stream: &mut Stream,
    proxy: &Proxy,
    host: &str,
    port: u16,
    max_head: usize,
) -> Result<(), ClientError> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(a) = proxy.authorization() {
        req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| connect_error(proxy, &e))?;
    // Byte by byte up to the blank line, so that nothing of the tunnel is
    // taken (a head is small; this runs once per connection).
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= max_head {
            return Err(ClientError::Http(format!(
                "proxy {}:{}: CONNECT answer head over {max_head} bytes",
                proxy.host, proxy.port
            )));
        }
        let n = stream
            .read(&mut byte)
            .await
            .map_err(|e| connect_error(proxy, &e))?;
        if n == 0 {
            return Err(ClientError::Http(format!(
                "proxy {}:{} closed the connection before answering CONNECT",
                proxy.host, proxy.port
            )));
        }
        head.push(byte[0]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => {
            return Err(ClientError::Http(format!(
                "proxy {}:{}: not an HTTP answer to CONNECT",
                proxy.host, proxy.port
            )))
        }
    }
    let code = resp.code.unwrap_or(0);
    if (200..300).contains(&code) {
        return Ok(());
    }
    Err(ClientError::ProxyRefused(
        code,
        format!(
            "proxy {}:{} refused CONNECT {authority}: {code} {}",
            proxy.host,
            proxy.port,
            resp.reason.unwrap_or("")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matches_as_curl_does() {
        let list: Vec<String> = ["example.org", ".corp.test", "10.0.0.1", "[::1]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for host in [
            "example.org",
            "www.example.org",
            "a.corp.test",
            "corp.test",
            "10.0.0.1",
            "::1",
        ] {
            assert!(bypassed(&list, host), "{host}");
        }
        for host in ["badexample.org", "org", "10.0.0.10", "corp.test.evil"] {
            assert!(!bypassed(&list, host), "{host}");
        }
        assert!(bypassed(&["*".into()], "anything"));
        assert!(!bypassed(&[], "anything"));
    }

    #[test]
    fn urls_and_secrets() {
        let p = Proxy::parse("socks4a://user@[::1]:9050").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port()),
            (ProxyKind::Socks4a, "::1", 9050)
        );
        let p = Proxy::parse("127.0.0.1:3128").unwrap();
        assert_eq!((p.kind(), p.port()), (ProxyKind::Http, 3128));
        let p = Proxy::parse("http://a:b@h").unwrap();
        assert_eq!(p.authorization().unwrap(), "Basic YTpi");
        assert!(!format!("{p:?}").contains("\"b\""), "{p:?}");
        match Proxy::parse("gopher://u:secret@h") {
            Err(ClientError::InvalidUrl(u)) => assert!(!u.contains("secret"), "{u}"),
            other => panic!("{other:?}"),
        }
    }
}
