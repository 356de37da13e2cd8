//! # braid-names
//!
//! ```text
//!  server:
//!   UDP datagram ─┐                         ┌─▶ answer (TC and cut to 512 / EDNS size over UDP)
//!                 ├─▶ Authority::answer ────┤
//!   TCP (2-byte   ┘   (sans-IO: zones from  └─▶ dropped (not DNS) / FORMERR / REFUSED
//!   length frames)     RFC 1035 master files)
//!
//!  client:
//!   Resolver::lookup(name, type) ─▶ /etc/hosts ─▶ Cache ─▶ Lookup (sans-IO) ─▶ UDP, TCP on TC
//!   reactor.install_name_resolver(Rc::new(resolver)) ─▶ connect_tcp_host: AAAA + A, Happy Eyeballs
//! ```
//!
//! DNS for braid, as Twisted's `names`: a resolver on the reactor
//! ([`client::Resolver`]: `/etc/resolv.conf` and `/etc/hosts`, UDP with
//! per-server timeouts and retries, TCP when an answer is truncated,
//! EDNS0, a cache that honours TTLs and negative answers, typed errors),
//! and an authoritative server
//! ([`DnsServer`]) for zones read from master files ([`Zone`]), over UDP
//! and TCP, on hickory-proto's wire format. It answers NXDOMAIN and NODATA
//! with the SOA (RFC 2308), follows CNAMEs inside the zone, adds the
//! addresses of MX, NS and SRV targets, refuses names outside its zones
//! (it is no open resolver), and truncates UDP answers to 512 bytes or the
//! client's EDNS size (Twisted's server never truncates: twisted#6949).

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod authority;
#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
mod server;

pub use authority::{Authority, Transport, Zone, ZoneError};
pub use server::DnsServer;
