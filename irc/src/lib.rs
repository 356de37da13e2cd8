//! # braid-irc
//!
//! IRC for braid, Twisted's `words`: a server that ordinary IRC clients
//! use, and a client protocol that talks to real servers.
//!
//! ```text
//!   IrcServer ── Factory ──▶ one LineReceiver per client ─┐
//!      │  channels, nicks, flood limits, send-queue caps  │ braid core:
//!      ├── braid-cred Portal (PASS)                       │ listen_tcp,
//!      ├── braid-db History (SQLite/PostgreSQL, on JOIN)  │ Transport
//!      └── Cluster (postgres): other servers' users ◀─▶ tables + LISTEN/NOTIFY
//!   IrcClient ── a Protocol: typed IrcEvents, member lists┘
//! ```
//! Messages are parsed and
//! formatted by `irc-proto`; the protocol logic here is sans-IO (bytes and
//! time in, writes out) like every braid protocol.
//!
//! - [`IrcServer`]: registration, PING/PONG with idle and registration
//!   timeouts, JOIN/PART/QUIT, PRIVMSG/NOTICE, TOPIC, NAMES, WHO, LIST,
//!   NICK, MOTD, the usual error numerics, a flood limit and a send-queue
//!   cap per client; channel [`History`] kept in SQLite (through
//!   `braid-db`) and replayed on join.
//! - `Cluster` (feature `postgres`): several servers as one network
//!   through PostgreSQL; nicks, memberships and topics in tables, changes
//!   as `NOTIFY`s, dead servers swept.
//! - [`IrcClient`]: registration with nick-in-use retry, PING/PONG, typed
//!   [`IrcEvent`]s, member lists kept current, and sends as methods (long
//!   text split, never sent broken).
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "cli")]
pub mod cli;
mod client;
mod history;
mod names;
mod server;

pub use client::{ClientConfig, IrcClient, IrcEvent, MAX_TEXT};
pub use history::History;
pub use names::{irc_lower, is_valid_channel, is_valid_nick};
#[cfg(feature = "postgres")]
pub use server::{Cluster, ClusterConfig};
pub use server::{IrcServer, ServerConfig};

/// The longest line RFC 1459 allows, with its CRLF.
pub const MAX_LINE: usize = 512;

/// Formats one IRC line (with CRLF) through irc-proto; the last argument
/// becomes trailing where it needs to. `None` (logged) if irc-proto
/// refuses it.
pub(crate) fn format_message(prefix: Option<&str>, command: &str, args: &[&str]) -> Option<String> {
    match irc_proto::Message::new(prefix, command, args.to_vec()) {
        Ok(m) => Some(m.to_string()),
        Err(e) => {
            tracing::warn!(command, error = %e, "cannot format an IRC message");
            None
        }
    }
}
