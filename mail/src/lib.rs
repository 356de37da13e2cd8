//! # braid-mail
//!
//! ```text
//!   SMTP client ─▶ listener ─▶ server::serve ─▶ Session (sans-IO) ─▶ Delivery (yours, or Router)
//!                  (TCP, TLS,      │ STARTTLS: braid-tls, in place          │ local ──▶ Maildir (tmp/ → new/, fsynced)
//!                   any transport) │ AUTH: braid-cred Portal (throttled)    └ remote ─▶ Queue (spool) ─▶ smarthost
//!                                  ▼                                             (or PostgreSQL,  │ or MX hosts
//!                                                                                 shared)         │ 5xx: bounce to the sender
//!   client::send ─────────────────────▶ any SMTP server (EHLO, STARTTLS, AUTH, PIPELINING)
//! ```
//!
//! Mail for braid, as Twisted's `twisted.mail`: an ESMTP server whose
//! session is a pure state machine ([`server::Session`]) driven over any
//! braid connection, a [`Delivery`](server::Delivery) trait the
//! application implements (with [`Maildir`], the relay [`Queue`] and the
//! [`Router`] between them shipped), and a client ([`client::send`]) that
//! delivers a message to a server. The wire
//! format is Stalwart's `smtp-proto`; braid adds the state machine, the
//! limits and the I/O.
//!
//! The server refuses what Postfix refuses: relaying without
//! authentication, unknown users, lines over 1,000 octets, messages over
//! `SIZE` (also mid-DATA), too many recipients, bad sequences; only
//! `CRLF . CRLF` ends a message, and bare CR or LF in it are normalised
//! (or refused), so SMTP smuggling cannot split a message. Commands
//! pipelined behind `STARTTLS` are thrown away.
//!
//! ```
//! use braid_mail::server::{Server, SessionConfig};
//! use braid_mail::Maildir;
//! use std::rc::Rc;
//!
//! let reactor = braid::Reactor::new()?;
//! let root = std::env::temp_dir().join(format!("braid-mail-doc-{}", std::process::id()));
//! let maildir = Maildir::new(&reactor, &root, ["localhost"]).users(["alice"]);
//! let config = SessionConfig { hostname: "mx.localhost".into(), ..SessionConfig::default() };
//! let server = Rc::new(Server::new(&reactor, config, maildir));
//! let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), server.factory())?;
//! // reactor.run() (or the GUI's own loop) now serves SMTP on port.local_addr().
//! # let _ = port;
//! # std::io::Result::Ok(())
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
mod maildir;
pub mod queue;
mod reply;
mod router;
pub mod server;

pub use maildir::{Maildir, MaildirMessage};
pub use queue::{NextHop, Queue, QueueConfig};
pub use reply::Reply;
pub use router::{Router, RouterMessage};
