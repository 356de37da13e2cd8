//! # braid-proxy
//!
//! ```text
//!   client ─▶ listener ─▶ PortForward ───────────────┐
//!   client ─▶ listener ─▶ SocksServer: handshake ─────┼─▶ connect ─▶ splice(client, target)
//!                         (SOCKS4/4a/5, RFC 1929       │   (backpressure both ways,
//!                          through braid-cred)         │    half-close passed on)
//!
//!   your Protocol ─▶ socks::client layer ─▶ TCP to any SOCKS5/4a proxy
//! ```
//!
//! Proxies for braid, as Twisted's `portforward` and `socks`: forward a
//! port to one target ([`PortForward`]), or let clients pick their target
//! through SOCKS ([`SocksServer`]: SOCKS4, SOCKS4a and SOCKS5 with
//! user/password, where Twisted has SOCKS4 only). Both join the two
//! connections with [`splice`], which keeps memory bounded when one side
//! is faster than the other and passes a half-close on exactly. Names are
//! resolved off the reactor thread; the SOCKS handshake is a sans-IO state
//! machine ([`socks::handshake`]) with a cap on what it buffers. The other
//! way round, [`socks::client`] connects through a SOCKS5 or SOCKS4a proxy
//! as a layer, so any protocol runs over it unchanged. Both servers reach
//! their targets through an [`outbound::Connect`] (TCP by default), so a
//! test or an application can put any transport there.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod outbound;
mod portforward;
pub mod socks;
mod splice;

pub use portforward::PortForward;
pub use socks::{Cidr, SocksServer};
pub use splice::{splice, Spliced};
