//! Turning host names into addresses: Twisted's `IHostnameResolver`.
//!
//! ```text
//!  connect_tcp_host("example.org", 443)       Reactor::resolve(..)
//!              |                                     |
//!              v                                     v
//!   reactor.name_resolver(): Rc<dyn HostnameResolver>   (installed, or the default)
//!              |  resolve_host_name(reactor, host, port, receiver)
//!              v
//!   GaiResolver (default): getaddrinfo on the thread pool, honours nsswitch
//!   braid-names' DNS resolver: AAAA and A over the network, at once
//!              |
//!              v
//!   receiver.addresses_resolved(&[..])  (any number of times, on the reactor thread)
//!   receiver.resolution_complete(Ok(()) | Err(io::Error))   (once)
//! ```
//!
//! The connector behind [`Reactor::connect_tcp_host`] is such a receiver:
//! it starts connecting as soon as the first addresses arrive, the way
//! Happy Eyeballs (RFC 8305) asks, instead of waiting for every answer. A
//! resolver that knows addresses of one family before the other (a DNS
//! resolver asking for AAAA and A at once) hands each batch over when it
//! has it.
//!
//! Install a resolver of one's own (a test double, a DNS resolver, a
//! service-discovery client) with [`Reactor::install_name_resolver`]:
//!
//! ```
//! use std::io;
//! use std::net::SocketAddr;
//! use std::rc::Rc;
//! use braid::hostname::{HostnameResolver, ResolutionReceiver};
//! use braid::Reactor;
//!
//! /// Every name is the loopback address.
//! struct Loopback;
//! impl HostnameResolver for Loopback {
//!     fn resolve_host_name(
//!         &self,
//!         reactor: &Reactor,
//!         _host: &str,
//!         port: u16,
//!         receiver: Rc<dyn ResolutionReceiver>,
//!     ) {
//!         // Answers are given from the reactor, never from inside the call.
//!         reactor.call_soon(move || {
//!             receiver.addresses_resolved(&[SocketAddr::from(([127, 0, 0, 1], port))]);
//!             receiver.resolution_complete(Ok(()));
//!         });
//!     }
//! }
//!
//! let reactor = Reactor::new()?;
//! reactor.install_name_resolver(Rc::new(Loopback));
//! let addrs = reactor.resolve("anything.example", 80);
//! reactor.iterate(std::time::Duration::ZERO)?;
//! let expected: SocketAddr = "127.0.0.1:80".parse().unwrap();
//! assert_eq!(addrs.result().unwrap().unwrap(), vec![expected]);
//! # io::Result::Ok(())
//! ```

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use crate::defer::{Deferred, Failure};
use crate::reactor::Reactor;

/// How long [`Reactor::connect_tcp_host`] waits for IPv6 addresses when
/// IPv4 ones came first (RFC 8305's Resolution Delay, 50 ms).
pub const RESOLUTION_DELAY: Duration = Duration::from_millis(50);

/// How long [`Reactor::connect_tcp_host`] gives an attempt before starting
/// the next one beside it (RFC 8305's Connection Attempt Delay: 250 ms, as
/// Chrome and Firefox use).
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Something that turns a host name into socket addresses, on the reactor
/// thread, without blocking it: Twisted's `IHostnameResolver`.
///
/// Implementations must answer from the reactor (a later callback, a
/// thread's completion), never from inside `resolve_host_name`, and must
/// call [`ResolutionReceiver::resolution_complete`] exactly once, after the
/// last [`ResolutionReceiver::addresses_resolved`].
#[doc(alias = "IHostnameResolver")]
pub trait HostnameResolver: 'static {
    /// Starts resolving `host` for `port`. IP literals never reach a
    /// resolver: the reactor answers those itself.
    #[doc(alias = "resolveHostName")]
    fn resolve_host_name(
        &self,
        reactor: &Reactor,
        host: &str,
        port: u16,
        receiver: Rc<dyn ResolutionReceiver>,
    );
}

/// What hears a resolution's answers: Twisted's `IResolutionReceiver`.
#[doc(alias = "IResolutionReceiver")]
pub trait ResolutionReceiver {
    /// More addresses are known (a batch; a resolver may call this several
    /// times, once per address family for example).
    #[doc(alias = "addressResolved")]
    fn addresses_resolved(&self, addresses: &[SocketAddr]);

    /// The resolution is over: `Ok` even if no address came (the caller
    /// decides what none means), `Err` when it failed. A resolver with a
    /// typed error puts it inside the `io::Error` (`io::Error::new(kind,
    /// err)`), where `get_ref` and `downcast` find it again.
    #[doc(alias = "resolutionComplete")]
    fn resolution_complete(&self, result: io::Result<()>);
}

/// The default resolver: the C library's `getaddrinfo` on the reactor's
/// thread pool, so `/etc/hosts`, nsswitch (mDNS, LDAP, systemd-resolved)
/// and the system's address sorting (RFC 6724) all apply. Its answer
/// arrives in one batch.
#[derive(Debug, Default, Clone, Copy)]
pub struct GaiResolver;

impl HostnameResolver for GaiResolver {
    fn resolve_host_name(
        &self,
        reactor: &Reactor,
        host: &str,
        port: u16,
        receiver: Rc<dyn ResolutionReceiver>,
    ) {
        let host = host.to_owned();
        reactor
            .defer_to_thread(move || {
                use std::net::ToSocketAddrs;
                (host.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>())
            })
            .add_both(move |r| {
                match r {
                    Ok(Ok(addrs)) => {
                        receiver.addresses_resolved(&addrs);
                        receiver.resolution_complete(Ok(()));
                    }
                    Ok(Err(e)) => receiver.resolution_complete(Err(e)),
                    Err(f) => receiver.resolution_complete(Err(failure_to_io(f))),
                }
                Ok::<(), Failure>(())
            });
    }
}

fn failure_to_io(f: Failure) -> io::Error {
    match f.into_error().downcast::<io::Error>() {
        Ok(e) => *e,
        Err(other) => io::Error::new(io::ErrorKind::NotFound, other),
    }
}

/// `host` as an IP address, brackets allowed (`[::1]`).
pub(crate) fn ip_literal(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// Collects a resolution into a Deferred (for [`Reactor::resolve`]).
struct Collect {
    addrs: RefCell<Vec<SocketAddr>>,
    done: RefCell<Option<crate::defer::Resolver<Vec<SocketAddr>, Failure>>>,
}

impl ResolutionReceiver for Collect {
    fn addresses_resolved(&self, addresses: &[SocketAddr]) {
        let mut mine = self.addrs.borrow_mut();
        for a in addresses {
            if !mine.contains(a) {
                mine.push(*a);
            }
        }
    }

    fn resolution_complete(&self, result: io::Result<()>) {
        if let Some(done) = self.done.borrow_mut().take() {
            let addrs = std::mem::take(&mut *self.addrs.borrow_mut());
            done.resolve(result.map(|()| addrs).map_err(Failure::from));
        }
    }
}

impl Reactor {
    /// Makes `resolver` the one host names go through, from now on: in
    /// [`connect_tcp_host`](Self::connect_tcp_host),
    /// [`resolve`](Self::resolve) and everything built on them (Twisted's
    /// `installNameResolver`). The default is [`GaiResolver`].
    #[doc(alias = "installNameResolver")]
    pub fn install_name_resolver(&self, resolver: Rc<dyn HostnameResolver>) {
        *self.inner.name_resolver.borrow_mut() = Some(resolver);
    }

    /// The resolver host names go through (Twisted's `nameResolver`).
    #[doc(alias = "nameResolver")]
    pub fn name_resolver(&self) -> Rc<dyn HostnameResolver> {
        self.inner
            .name_resolver
            .borrow()
            .clone()
            .unwrap_or_else(|| Rc::new(GaiResolver))
    }

    /// Resolves `host:port` to socket addresses through the installed
    /// [`HostnameResolver`] (by default getaddrinfo on the thread pool):
    /// the reactor thread never blocks on DNS. An IP literal resolves at
    /// once. The Deferred fails if the resolver failed, and holds an empty
    /// list if it found nothing.
    pub fn resolve(&self, host: &str, port: u16) -> Deferred<Vec<SocketAddr>, Failure> {
        if let Some(ip) = ip_literal(host) {
            return Deferred::succeed(vec![SocketAddr::new(ip, port)]);
        }
        let d = Deferred::new();
        let receiver = Rc::new(Collect {
            addrs: RefCell::default(),
            done: RefCell::new(Some(d.resolver())),
        });
        self.name_resolver()
            .resolve_host_name(self, host, port, receiver);
        d
    }
}

impl fmt::Debug for dyn HostnameResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostnameResolver")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run_until;

    #[test]
    fn literals_need_no_resolver() {
        assert_eq!(ip_literal("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(ip_literal("10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(ip_literal("example.org"), None);
    }

    #[test]
    fn getaddrinfo_answers_on_the_reactor_thread() {
        let reactor = Reactor::new().unwrap();
        let d = reactor.resolve("localhost", 7);
        run_until(&reactor, Duration::from_secs(20), || d.is_ready()).unwrap();
        let addrs = d.result().unwrap().unwrap();
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 7),
            "{addrs:?}"
        );
        let bad = reactor.resolve("no-such-host.invalid", 7);
        run_until(&reactor, Duration::from_secs(20), || bad.is_ready()).unwrap();
        assert!(bad.result().unwrap().is_err());
    }
}
