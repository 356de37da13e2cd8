//! What an [`Agent`](super::Agent) is told (its settings) and what it
//! says back when a request fails.

use std::fmt;
use std::io;
use std::time::Duration;

use braid::Failure;

use crate::body::BodyError;
use crate::tunnel::Proxy;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The URL is not an absolute `http` or `https` URL (or `https`
    /// without the `tls` feature).
    InvalidUrl(String),
    /// The connection could not be made (refused, unresolvable, timed
    /// out, TLS refused): the kind and the text.
    Connect(io::ErrorKind, String),
    /// No response head within the response timeout.
    TimedOut,
    /// More redirects than the limit.
    TooManyRedirects(usize),
    /// The exchange failed: the connection closed early, or the server
    /// sent something that is not HTTP.
    Http(String),
    /// Reading a body failed.
    Body(BodyError),
    /// The HTTP proxy answered `CONNECT` with this status (407: it wants
    /// a login, see [`Proxy::with_auth`](crate::Proxy::with_auth)), and
    /// the whole story.
    ProxyRefused(u16, String),
    /// A failure from the reactor (a cancelled task, a panic).
    Failed(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidUrl(u) => write!(f, "invalid URL: {u}"),
            ClientError::Connect(_, e) => write!(f, "cannot connect: {e}"),
            ClientError::TimedOut => f.write_str("timed out waiting for the response"),
            ClientError::TooManyRedirects(n) => write!(f, "more than {n} redirects"),
            ClientError::Http(e) => write!(f, "HTTP error: {e}"),
            ClientError::Body(e) => e.fmt(f),
            ClientError::ProxyRefused(_, e) => f.write_str(e),
            ClientError::Failed(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<Failure> for ClientError {
    fn from(f: Failure) -> Self {
        ClientError::Failed(f.to_string())
    }
}

impl From<BodyError> for ClientError {
    fn from(e: BodyError) -> Self {
        ClientError::Body(e)
    }
}

/// Timeouts, pool and redirect settings of an [`Agent`](crate::Agent).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Time allowed to connect (and for the TLS handshake). 10 s.
    pub connect_timeout: Duration,
    /// Time allowed from sending a request to its response head. 60 s.
    pub response_timeout: Duration,
    /// Time allowed between two pieces of a response body. 30 s.
    pub body_timeout: Duration,
    /// Redirects followed before [`ClientError::TooManyRedirects`]; 0
    /// (the default, as Twisted's plain `Agent`) returns redirects as
    /// responses.
    pub redirect_limit: usize,
    /// Idle connections kept per host. 8.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept. 60 s.
    pub idle_timeout: Duration,
    /// Largest response head, in bytes. 64 KiB.
    pub max_head_size: usize,
    /// The proxy for `http://` URLs, if any (see [`Proxy`]).
    pub http_proxy: Option<Proxy>,
    /// The proxy for `https://` URLs, if any: reached through a `CONNECT`
    /// (or SOCKS) tunnel, TLS end to end with the origin.
    pub https_proxy: Option<Proxy>,
    /// Hosts reached directly whatever the proxies say, as curl's
    /// `no_proxy`: `*`, names (and every name below them), addresses.
    pub no_proxy: Vec<String>,
}

impl AgentConfig {
    /// Sends every request through `proxy`.
    pub fn with_proxy(mut self, proxy: Proxy) -> AgentConfig {
        self.http_proxy = Some(proxy.clone());
        self.https_proxy = Some(proxy);
        self
    }

    /// The proxies the environment names, as curl reads them
    /// (`https_proxy`, `http_proxy` in lower case only, `all_proxy`,
    /// `no_proxy`); unset variables leave the settings as they are.
    pub fn with_proxy_from_env(mut self) -> AgentConfig {
        let (http, no_proxy) = crate::tunnel::from_env(false);
        let (https, _) = crate::tunnel::from_env(true);
        self.http_proxy = http.or(self.http_proxy);
        self.https_proxy = https.or(self.https_proxy);
        if !no_proxy.is_empty() {
            self.no_proxy = no_proxy;
        }
        self
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            redirect_limit: 0,
            max_idle_per_host: 8,
            idle_timeout: Duration::from_secs(60),
            max_head_size: 64 * 1024,
            http_proxy: None,
            https_proxy: None,
            no_proxy: Vec::new(),
        }
    }
}
