//! HTTP on the reactor (Twisted's `twisted.web`), with hyper 1.x doing the
//! parsing and framing.
//!
//! - Server: a [`Site`] serves a tree of [`Resource`]s; resources answer at
//!   once or later (a future or a [`Deferred`](crate::Deferred)) and can
//!   stream bodies with backpressure ([`Response::streaming`]).
//! - Static files: [`File`] serves a directory with ranges, conditional
//!   requests and listings.
//! - Client: [`Agent`] with a keep-alive pool per host, redirects and
//!   HTTPS.
//! - Proxies: [`ReverseProxy`] (a resource) and [`ForwardProxy`] (a site
//!   with `CONNECT` tunnels, loopback-only by default).
//!
//! hyper runs on braid through its runtime traits: connections are braid
//! transports (so HTTP runs over TCP, TLS, Unix sockets and the in-memory
//! test transport alike, inside any host loop), tasks run on the reactor's
//! local executor and timeouts on the reactor's clock.

mod body;
mod client;
mod guard;
mod proxy;
mod rt;
mod server;
mod static_files;

pub use body::{Body, BodyError, BodyWriter, WRITER_HIGH_WATER};
pub use client::{Agent, AgentConfig, ClientError, ClientResponse};
pub use proxy::{ForwardProxy, ReverseProxy};
pub use server::{
    parse_query, BadPath, FnResource, Reply, Request, Resource, Response, Site, SiteConfig, Tree,
};
pub use static_files::{content_type, File};

pub use bytes::Bytes;
pub use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
