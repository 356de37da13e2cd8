//! Co-operating web servers over Perspective Broker (Twisted's
//! `twisted.web.distrib`), and per-user sites.
//!
//! ```text
//!   HTTP client ──▶ front Site ── /blog ──▶ Subscription ══ PB (Unix socket or TCP) ══▶ Publisher ──▶ Site (its own user)
//!                        │                    ▲  copy of the request (twisted.web.server.Request)     │
//!                        │                    └── setResponseCode · setHeader · write · finish ◀──────┘
//!                        └── /~alice/ ──▶ UserDirectory ──▶ ~alice/.braid-web.sock, or ~alice/public_html
//! ```
//!
//! A front server hands every request under a path to a *publisher*: a
//! separate process, often running as another Unix user, that renders it
//! with its own permissions and writes the response back over PB. Both
//! halves speak Twisted's wire: a braid front works with a Twisted
//! `ResourcePublisher`, and a Twisted `ResourceSubscription` with a braid
//! [`Publisher`].
//!
//! - [`Subscription`] (Twisted's `ResourceSubscription`) is a leaf
//!   [`Resource`] that forwards requests; it connects on first use and
//!   again after the connection drops. Where Twisted answers `200` with an
//!   error page, it answers `503 Service Unavailable` when the publisher
//!   cannot be reached, `502 Bad Gateway` when it fails or its connection
//!   drops before the response starts (a response already started is cut
//!   short, so the client sees it incomplete), and `504 Gateway Timeout`
//!   when it stops answering for [`SubscriptionConfig::response_timeout`].
//! - [`Publisher`] (Twisted's `ResourcePublisher`) serves a [`Site`] to any
//!   front.
//! - [`UserDirectory`] (Twisted's `UserDirectory`) serves `/~user/` from
//!   the user's own publisher socket, or their `public_html`.
//!
//! ```no_run
//! use braid_web::distrib::{Publisher, Subscription};
//! use braid_web::{FnResource, Response, Site, Tree};
//! use braid::Reactor;
//!
//! let reactor = Reactor::new()?;
//! // The publisher (usually another process, as another user; on Unix
//! // most often on a Unix socket: `listen_unix`, and "unix:PATH" below).
//! let blog = Site::new(FnResource::leaf(|req| Response::text(format!("post {}\n", req.postpath().join("/")))));
//! reactor.listen_tcp("127.0.0.1:7001".parse().unwrap(), Publisher::new(&reactor, blog).factory())?;
//! // The front: /blog/... goes to the publisher.
//! let front = Tree::new().child("blog", Subscription::new(&reactor, "127.0.0.1:7001".parse().unwrap()));
//! reactor.listen_tcp("127.0.0.1:8080".parse().unwrap(), Site::new(front))?;
//! reactor.run()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! # Flow control and sizes
//!
//! Twisted's publisher sends `write` calls without waiting for their
//! answers, so only a publisher's registered producer is held back
//! (`pauseProducing` and `resumeProducing`, which a braid front calls as
//! the client reads). A braid front also answers each `write` only when
//! its client has taken most of what is queued, and a braid publisher
//! keeps at most [`WRITE_WINDOW`] bytes unanswered, so a braid pair is
//! flow-controlled end to end whatever the resource does.
//!
//! Banana caps a string at 640 KiB ([`PIECE`]). Responses are written in
//! pieces of at most that on both sides, so their size is unbounded. A
//! request body travels in the copied request (`content_data`), so a
//! braid front sending to a Twisted publisher answers `413` for a body
//! over 640 KiB. Between a braid front and a braid publisher, a larger
//! body goes in pieces the publisher pulls as its resource reads, up to
//! [`SubscriptionConfig::max_body`] (the front asks the publisher with a
//! `braidCapabilities` call the first time a large body comes, once per
//! connection; Twisted answers it with an error).
//!
//! Past 640 KiB a Twisted front cannot send the body at all: its
//! `callRemote` raises, and Twisted 26.10 answers `500` on a connection it
//! already has and never answers a request that opened the connection.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::str::FromStr;
use std::task::Poll;
use std::time::Duration;

use braid::{Address, Deferred, DelayedCall, Failure, Reactor, Resolver};
use braid_pb::{
    Args, Caller, CopyTypes, LocalObject, Object, PbClientFactory, PbError, PbErrorKind,
    PbServerFactory, Referenceable, RemoteReference, Reply as PbReply, Value,
};
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use crate::{Body, BodyWriter, File, Reply, Request, Resource, Response, Site};

/// The copy type of a request on the wire: Twisted's
/// `twisted.web.server.Request`, whose state is its `__dict__`.
pub const REQUEST_TYPE: &str = "twisted.web.server.Request";

/// What a publisher answers `request` with: Twisted's `NOT_DONE_YET`
/// (the response comes through the request's remote methods).
pub const NOT_DONE_YET: i64 = 1;

/// The largest piece of a body in one call: banana's string limit
/// (Twisted's `SIZE_LIMIT`, 640 KiB).
pub const PIECE: usize = braid_pb::banana::SIZE_LIMIT;

/// The most response bytes a braid publisher has written and the front
/// not yet answered.
pub const WRITE_WINDOW: usize = 4 * 64 * 1024;

const CAPABILITIES: &str = "braidCapabilities";
const CAP_BODY_PIECES: &str = "body-pieces";

/// Where a publisher listens: `unix:PATH`, or `HOST:PORT` (also written
/// `tcp:HOST:PORT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublisherAddress {
    /// A Unix stream socket.
    Unix(PathBuf),
    /// A TCP host (a name or an address) and port.
    Tcp(String, u16),
}

/// A publisher address that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadAddress(pub String);

impl fmt::Display for BadAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a publisher address (unix:PATH or HOST:PORT): {:?}",
            self.0
        )
    }
}

impl std::error::Error for BadAddress {}

impl FromStr for PublisherAddress {
    type Err = BadAddress;

    fn from_str(s: &str) -> Result<Self, BadAddress> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(BadAddress(s.to_owned()));
            }
            return Ok(PublisherAddress::Unix(PathBuf::from(p)));
        }
        let hp = s.strip_prefix("tcp:").unwrap_or(s);
        let (host, port) = hp
            .rsplit_once(':')
            .ok_or_else(|| BadAddress(s.to_owned()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| BadAddress(s.to_owned()))?;
        if host.is_empty() {
            return Err(BadAddress(s.to_owned()));
        }
        Ok(PublisherAddress::Tcp(host.to_owned(), port))
    }
}

impl fmt::Display for PublisherAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublisherAddress::Unix(p) => write!(f, "unix:{}", p.display()),
            PublisherAddress::Tcp(h, p) if h.contains(':') => write!(f, "[{h}]:{p}"),
            PublisherAddress::Tcp(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

mod exchange;
mod publisher;
mod subscription;
mod users;

pub use publisher::Publisher;
pub use subscription::{Subscription, SubscriptionConfig};
pub use users::{UserDirectory, USER_SOCKET};

/// What a received `str` or `bytes` says, as text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        Value::Shared(_, inner) => text(inner),
        _ => None,
    }
}

fn raw(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Str(s) => Some(s.as_bytes().to_vec()),
        Value::Bytes(b) => Some(b.clone()),
        Value::Shared(_, inner) => raw(inner),
        _ => None,
    }
}

/// A call's first two arguments, each `bytes` or `str`.
fn two_strings(args: &Args, method: &str, a: &str, b: &str) -> Result<(Vec<u8>, Vec<u8>), PbError> {
    match (args.require(0, a).map(raw)?, args.require(1, b).map(raw)?) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(PbError::new(
            "builtins.TypeError",
            format!("{method} takes bytes or str"),
        )),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::None => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Shared(_, inner) => truthy(inner),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "unix:/tmp/a.sock".parse(),
            Ok(PublisherAddress::Unix("/tmp/a.sock".into()))
        );
        assert_eq!(
            "127.0.0.1:8789".parse(),
            Ok(PublisherAddress::Tcp("127.0.0.1".into(), 8789))
        );
        assert_eq!(
            "tcp:[::1]:80".parse(),
            Ok(PublisherAddress::Tcp("::1".into(), 80))
        );
        assert_eq!(
            PublisherAddress::Tcp("::1".into(), 80).to_string(),
            "[::1]:80"
        );
        assert!("unix:".parse::<PublisherAddress>().is_err());
        assert!("nohost".parse::<PublisherAddress>().is_err());
        assert!(":80".parse::<PublisherAddress>().is_err());
        assert!("h:99999".parse::<PublisherAddress>().is_err());
    }
}
