//! # braid-web
//!
//! HTTP on the reactor (Twisted's `twisted.web`), with hyper 1.x doing the
//! parsing and framing.
//!
//! ```text
//!   Site ── Factory ──▶ aio::StreamProtocol ──▶ aio::Stream ──▶ HyperIo ──▶ hyper (h1/h2)
//!    │                  (any listener: TCP,      (braid core)    framing     │
//!    │                   Unix, braid-tls)                        check       ▼
//!    └── Resource tree: Tree · FnResource · File · ReverseProxy ◀── Request → Reply
//!   Agent ── pool per host ── Stream::connect_with (TCP, braid-tls) ── hyper client
//!   hyper's runtime: LocalExec (spawn_local) · ReactorTimer (the reactor's clock)
//! ```
//!
//! - Server: a [`Site`] serves a tree of [`Resource`]s; resources answer at
//!   once or later (a future or a [`Deferred`](braid::Deferred)) and can
//!   stream bodies with backpressure ([`Response::streaming`]).
//! - Static files: [`File`] serves a directory with ranges, conditional
//!   requests and listings.
//! - Client: [`Agent`] with a keep-alive pool per host, redirects and
//!   HTTPS.
//! - Proxies: [`ReverseProxy`] (a resource) and [`ForwardProxy`] (a site
//!   with `CONNECT` tunnels, loopback-only by default).
//!
//! ```no_run
//! use braid_web::{Agent, File, FnResource, Reply, Response, Site, StatusCode, Tree};
//! use braid::Reactor;
//!
//! let reactor = Reactor::new()?;
//! let agent = Agent::new(&reactor);
//! let root = Tree::new()
//!     .child("hello", FnResource::new(|_| Response::text("hello\n")))
//!     .child("later", FnResource::new(move |_| {
//!         let agent = agent.clone();
//!         // Answer later, with what another server said.
//!         Reply::later(async move {
//!             match agent.get("http://127.0.0.1:9000/").await {
//!                 Ok(r) => Response::text(r.text(1 << 20).await.unwrap_or_default()),
//!                 Err(e) => Response::error(StatusCode::BAD_GATEWAY, &e.to_string()),
//!             }
//!         })
//!     }))
//!     .fallback(File::new("./public"));
//! reactor.listen_tcp("127.0.0.1:8080".parse().unwrap(), Site::new(root))?;
//! reactor.run()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! hyper runs on braid through its runtime traits: connections are braid
//! transports (so HTTP runs over TCP, TLS, Unix sockets and the in-memory
//! test transport alike, inside any host loop), tasks run on the reactor's
//! local executor and timeouts on the reactor's clock.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod body;
#[cfg(feature = "cli")]
pub mod cli;
mod client;
#[cfg(feature = "distrib")]
pub mod distrib;
mod framing_check;
mod proxy;
mod rt;
mod server;
mod static_files;
#[cfg(feature = "testing")]
pub mod testing;
mod tunnel;

pub use body::{Body, BodyError, BodyWriter, WRITER_HIGH_WATER};
pub use client::{Agent, AgentConfig, ClientError, ClientResponse};
pub use proxy::{ForwardProxy, ReverseProxy};
pub use server::{
    parse_query, BadPath, FnResource, Reply, Request, Resource, Response, Site, SiteConfig, Tree,
};
pub use static_files::{content_type, File};
pub use tunnel::{Proxy, ProxyKind};

pub use bytes::Bytes;
/// The request-framing guard, for the fuzz target (not a stable API).
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Runs the guard over `pieces` in order: the bytes it lets through,
    /// the violation if one was found, the most it ever held back, and
    /// what it holds at the end (an unfinished head, say).
    pub fn guard(
        pieces: &[&[u8]],
        max_head: usize,
    ) -> (Vec<u8>, Option<&'static str>, usize, usize) {
        let mut g = super::framing_check::FramingCheck::new(max_head, 100);
        let mut out = Vec::new();
        let mut most = 0;
        for p in pieces {
            let mut b = bytes::BytesMut::new();
            let r = g.feed(p, &mut b);
            out.extend_from_slice(&b);
            if let Err(e) = r {
                return (out, Some(e), most, 0);
            }
            most = most.max(g.held_len());
        }
        let held = g.held_len();
        (out, None, most, held)
    }
}

pub use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
