//! A DNS client on the reactor (Twisted's `names.client`): lookups of
//! every common type, a cache, and a [`HostnameResolver`] for
//! `connect_tcp_host` with Happy Eyeballs.
//!
//! ```text
//!   Resolver::system(&reactor)      /etc/resolv.conf + /etc/hosts, read once
//!      | lookup(name, type) -> Deferred<Answer, ResolveError>   (also .await)
//!      v
//!   /etc/hosts (A/AAAA/PTR) ─ found ─▶ answer
//!      | not found
//!      v
//!   Lookup (sans-IO, lookup.rs) ◀── Cache (TTLs, NXDOMAIN/NODATA per RFC 2308)
//!      | Transmit { server, Udp|Tcp, payload }
//!      v
//!   this driver: a UDP socket per lookup (a fresh random port), TCP on TC,
//!   timers on the reactor's clock (fake in tests)
//! ```
//!
//! Everything runs on the reactor thread without blocking it; there are
//! no helper threads. Install it for host names with
//! `reactor.install_name_resolver(Rc::new(resolver))`: then
//! `connect_tcp_host` asks AAAA and A at once and races the answers
//! (RFC 8305). getaddrinfo on the pool ([`braid::hostname::GaiResolver`],
//! the default) stays there for nsswitch users (mDNS, LDAP).
//!
//! ```no_run
//! use braid::Reactor;
//! use braid_names::client::Resolver;
//!
//! let reactor = Reactor::new()?;
//! let resolver = Resolver::system(&reactor)?;
//! let r = reactor.clone();
//! resolver.lookup_mail_exchange("example.org").add_both(move |mx| {
//!     match mx {
//!         Ok(mx) => println!("{mx:?}"),
//!         Err(e) => println!("{e}"), // "example.org: no such domain (NXDOMAIN)"
//!     }
//!     r.stop();
//!     Ok::<(), braid::Failure>(())
//! });
//! reactor.run()?;
//! # std::io::Result::Ok(())
//! ```

mod cache;
mod config;
mod lookup;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::rc::Rc;

use braid::aio::Stream;
use braid::datagram::{DatagramPort, DatagramProtocol};
use braid::hostname::{HostnameResolver, ResolutionReceiver};
use braid::{Address, Deferred, DelayedCall, Failure, JoinHandle, Reactor, WeakReactor};
use futures_util::{AsyncReadExt, AsyncWriteExt};
use hickory_proto::rr::rdata::{SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

pub use cache::{Cache, Cached, DEFAULT_CACHE_SIZE, MAX_NEGATIVE_TTL, MAX_TTL};
pub use config::{Hosts, ResolvConf};
pub use lookup::{Answer, Lookup, Over, ResolveError, ResolveErrorKind, Transmit, EDNS_UDP_SIZE};

impl From<Failure> for ResolveError {
    /// A reactor-side failure (shutdown, cancellation) as an I/O error.
    fn from(f: Failure) -> Self {
        ResolveError::new(ResolveErrorKind::Io, f.to_string())
    }
}

/// A DNS resolver on the reactor (see the [module](self) picture).
/// Clones share the settings and the cache.
#[derive(Clone, Debug)]
pub struct Resolver {
    shared: Rc<Shared>,
}

#[derive(Debug)]
struct Shared {
    reactor: WeakReactor,
    conf: ResolvConf,
    hosts: Hosts,
    cache: Rc<RefCell<Cache>>,
}

impl Resolver {
    /// A resolver with these settings and hosts.
    pub fn new(reactor: &Reactor, conf: ResolvConf, hosts: Hosts) -> Resolver {
        Resolver {
            shared: Rc::new(Shared {
                reactor: reactor.downgrade(),
                conf,
                hosts,
                cache: Rc::default(),
            }),
        }
    }

    /// The system's resolver: `/etc/resolv.conf` and `/etc/hosts`, read
    /// now (two small files; do it at start-up, not in a busy loop).
    ///
    /// # Errors
    ///
    /// A file exists and cannot be read.
    pub fn system(reactor: &Reactor) -> io::Result<Resolver> {
        Ok(Resolver::new(
            reactor,
            ResolvConf::from_file(Path::new("/etc/resolv.conf"))?,
            Hosts::from_file(Path::new("/etc/hosts"))?,
        ))
    }

    /// The settings.
    pub fn config(&self) -> &ResolvConf {
        &self.shared.conf
    }

    /// The cache the lookups share.
    pub fn cache(&self) -> &RefCell<Cache> {
        &self.shared.cache
    }

    /// Looks up `name`'s `rtype` records: `/etc/hosts` first for A, AAAA
    /// (and PTR names under `in-addr.arpa`/`ip6.arpa`), then the cache,
    /// then the servers. The Deferred is also a future.
    #[doc(alias = "lookupRecord")]
    pub fn lookup(&self, name: &str, rtype: RecordType) -> Deferred<Answer, ResolveError> {
        if let Some(answer) = self.hosts_answer(name, rtype) {
            return Deferred::succeed(answer);
        }
        let Some(reactor) = self.shared.reactor.upgrade() else {
            return Deferred::fail(ResolveError::new(ResolveErrorKind::Io, name));
        };
        let d = Deferred::new();
        let lookup = Lookup::new(
            name,
            rtype,
            &self.shared.conf,
            self.shared.cache.clone(),
            reactor.now(),
        );
        let run = Rc::new(RefCell::new(Run {
            lookup,
            reactor: reactor.downgrade(),
            udp4: None,
            udp6: None,
            timer: None,
            tcp: None,
            tcp_generation: 0,
            done: Some(d.resolver()),
        }));
        pump(&run);
        d
    }

    fn hosts_answer(&self, name: &str, rtype: RecordType) -> Option<Answer> {
        let hosts = &self.shared.hosts;
        let owner = Name::from_utf8(name).ok()?;
        let records: Vec<Record> = match rtype {
            RecordType::A | RecordType::AAAA => hosts
                .get(name)
                .iter()
                .filter_map(|ip| match (ip, rtype) {
                    (IpAddr::V4(a), RecordType::A) => Some(RData::A((*a).into())),
                    (IpAddr::V6(a), RecordType::AAAA) => Some(RData::AAAA((*a).into())),
                    _ => None,
                })
                .map(|data| Record::from_rdata(owner.clone(), 0, data))
                .collect(),
            RecordType::PTR => {
                let ip = reverse_ip(&owner)?;
                hosts
                    .names_of(ip)
                    .iter()
                    .filter_map(|n| Name::from_utf8(format!("{n}.")).ok())
                    .map(|n| {
                        Record::from_rdata(
                            owner.clone(),
                            0,
                            RData::PTR(hickory_proto::rr::rdata::PTR(n)),
                        )
                    })
                    .collect()
            }
            _ => return None,
        };
        if records.is_empty() {
            return None;
        }
        Some(Answer {
            canonical_name: owner,
            records,
            from_cache: false,
        })
    }

    /// IPv4 addresses (A records).
    #[doc(alias = "lookupAddress")]
    pub fn lookup_address(&self, name: &str) -> Deferred<Vec<Ipv4Addr>, ResolveError> {
        self.lookup(name, RecordType::A).add_callback(|a| {
            data(&a, |d| match d {
                RData::A(a) => Some(a.0),
                _ => None,
            })
        })
    }

    /// IPv6 addresses (AAAA records).
    #[doc(alias = "lookupIPV6Address")]
    pub fn lookup_ipv6_address(&self, name: &str) -> Deferred<Vec<Ipv6Addr>, ResolveError> {
        self.lookup(name, RecordType::AAAA).add_callback(|a| {
            data(&a, |d| match d {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
        })
    }

    /// Mail exchangers (MX), by preference, lowest first.
    #[doc(alias = "lookupMailExchange")]
    pub fn lookup_mail_exchange(&self, name: &str) -> Deferred<Vec<(u16, Name)>, ResolveError> {
        self.lookup(name, RecordType::MX).add_callback(|a| {
            let mut mx = data(&a, |d| match d {
                RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                _ => None,
            });
            mx.sort_by_key(|(p, _)| *p);
            mx
        })
    }

    /// Text records (TXT), each one's strings joined.
    #[doc(alias = "lookupText")]
    pub fn lookup_text(&self, name: &str) -> Deferred<Vec<String>, ResolveError> {
        self.lookup(name, RecordType::TXT).add_callback(|a| {
            data(&a, |d| match d {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>(),
                ),
                _ => None,
            })
        })
    }

    /// Services (SRV), e.g. `_sip._tcp.example.org`.
    #[doc(alias = "lookupService")]
    pub fn lookup_service(&self, name: &str) -> Deferred<Vec<SRV>, ResolveError> {
        self.lookup(name, RecordType::SRV).add_callback(|a| {
            data(&a, |d| match d {
                RData::SRV(s) => Some(s.clone()),
                _ => None,
            })
        })
    }

    /// The names of an address (PTR under `in-addr.arpa` or `ip6.arpa`).
    #[doc(alias = "lookupPointer")]
    pub fn lookup_pointer(&self, ip: IpAddr) -> Deferred<Vec<Name>, ResolveError> {
        self.lookup(&reverse_name(ip), RecordType::PTR)
            .add_callback(|a| {
                data(&a, |d| match d {
                    RData::PTR(p) => Some(p.0.clone()),
                    _ => None,
                })
            })
    }

    /// The zone's name servers (NS).
    #[doc(alias = "lookupNameservers")]
    pub fn lookup_nameservers(&self, name: &str) -> Deferred<Vec<Name>, ResolveError> {
        self.lookup(name, RecordType::NS).add_callback(|a| {
            data(&a, |d| match d {
                RData::NS(n) => Some(n.0.clone()),
                _ => None,
            })
        })
    }

    /// The zone's start of authority (SOA).
    #[doc(alias = "lookupAuthority")]
    pub fn lookup_authority(&self, name: &str) -> Deferred<SOA, ResolveError> {
        let asked = name.to_owned();
        self.lookup(name, RecordType::SOA)
            .add_callback_result(move |a| {
                data(&a, |d| match d {
                    RData::SOA(s) => Some(s.clone()),
                    _ => None,
                })
                .into_iter()
                .next()
                .ok_or_else(|| ResolveError::new(ResolveErrorKind::NoData, asked))
            })
    }

    /// Where a CNAME points.
    #[doc(alias = "lookupCanonicalName")]
    pub fn lookup_canonical_name(&self, name: &str) -> Deferred<Name, ResolveError> {
        let asked = name.to_owned();
        self.lookup(name, RecordType::CNAME)
            .add_callback_result(move |a| {
                data(&a, |d| match d {
                    RData::CNAME(c) => Some(c.0.clone()),
                    _ => None,
                })
                .into_iter()
                .next()
                .ok_or_else(|| ResolveError::new(ResolveErrorKind::NoData, asked))
            })
    }

    /// Addresses of both families, IPv6 first: AAAA and A asked at once.
    /// Fails only if both lookups did.
    pub fn lookup_ip(&self, name: &str) -> Deferred<Vec<IpAddr>, ResolveError> {
        let v6 = self.lookup_ipv6_address(name);
        let v4 = self.lookup_address(name);
        let d = Deferred::new();
        let done = d.resolver();
        let both = Rc::new(RefCell::new((None, None, Some(done))));
        let b = both.clone();
        v6.add_both(move |r| {
            b.borrow_mut().0 = Some(r.map(|a| a.into_iter().map(IpAddr::from).collect()));
            settle_ip(&b);
            Ok::<(), ResolveError>(())
        });
        v4.add_both(move |r| {
            both.borrow_mut().1 = Some(r.map(|a| a.into_iter().map(IpAddr::from).collect()));
            settle_ip(&both);
            Ok::<(), ResolveError>(())
        });
        d
    }
}

type IpResult = Option<Result<Vec<IpAddr>, ResolveError>>;
type IpPair = RefCell<(
    IpResult,
    IpResult,
    Option<braid::Resolver<Vec<IpAddr>, ResolveError>>,
)>;

fn settle_ip(both: &Rc<IpPair>) {
    let mut b = both.borrow_mut();
    let (Some(v6), Some(v4)) = (&b.0, &b.1) else {
        return;
    };
    let result = match (v6, v4) {
        (Err(e6), Err(e4)) => Err(worse(e6, e4).clone()),
        _ => {
            let mut all: Vec<IpAddr> = v6.iter().chain(v4.iter()).flatten().copied().collect();
            all.dedup();
            Ok(all)
        }
    };
    if let Some(done) = b.2.take() {
        drop(b);
        done.resolve(result);
    }
}

/// Of two failures, the one that says more: a failure to get an answer
/// over a negative answer, else the IPv4 one.
fn worse<'a>(v6: &'a ResolveError, v4: &'a ResolveError) -> &'a ResolveError {
    if v4.is_negative() && !v6.is_negative() {
        v6
    } else {
        v4
    }
}

fn data<T>(a: &Answer, f: impl Fn(&RData) -> Option<T>) -> Vec<T> {
    a.records.iter().filter_map(|r| f(&r.data)).collect()
}

/// `192.0.2.1` -> `1.2.0.192.in-addr.arpa.`; IPv6 by nibbles under
/// `ip6.arpa.`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut s = String::with_capacity(73);
            for byte in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

/// The address a reverse name stands for, if it is one.
fn reverse_ip(name: &Name) -> Option<IpAddr> {
    let text = name.to_ascii().to_ascii_lowercase();
    let text = text.trim_end_matches('.');
    if let Some(v4) = text.strip_suffix(".in-addr.arpa") {
        let mut o: Vec<u8> = v4
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        if o.len() != 4 {
            return None;
        }
        o.reverse();
        return Some(IpAddr::from([o[0], o[1], o[2], o[3]]));
    }
    let v6 = text.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = v6
        .split('.')
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 1))
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in nibbles.rchunks(2).enumerate() {
        bytes[i] = (pair[1] << 4) | pair[0];
    }
    Some(IpAddr::from(bytes))
}

/// One lookup being driven.
struct Run {
    lookup: Lookup,
    reactor: WeakReactor,
    udp4: Option<DatagramPort>,
    udp6: Option<DatagramPort>,
    timer: Option<DelayedCall>,
    tcp: Option<JoinHandle<()>>,
    /// Bumped per TCP exchange: a stale one's answer is not heard.
    tcp_generation: u64,
    done: Option<braid::Resolver<Answer, ResolveError>>,
}

type RunRef = Rc<RefCell<Run>>;

/// Sends what the lookup wants sent, then finishes it or sets its timer.
fn pump(run: &RunRef) {
    let Some(reactor) = run.borrow().reactor.upgrade() else {
        return;
    };
    loop {
        let next = run.borrow_mut().lookup.poll_transmit();
        let Some(t) = next else { break };
        match t.over {
            lookup::Over::Udp => {
                if let Err(e) = send_udp(run, &reactor, &t) {
                    tracing::debug!(server = %t.server, error = %e, "DNS query not sent");
                    run.borrow_mut()
                        .lookup
                        .handle_transport_error(Over::Udp, reactor.now());
                }
            }
            lookup::Over::Tcp => start_tcp(run, &reactor, t),
        }
    }
    let outcome = run.borrow_mut().lookup.poll_outcome();
    if let Some(outcome) = outcome {
        return finish(run, &reactor, outcome);
    }
    let mut r = run.borrow_mut();
    if let Some(t) = r.timer.take() {
        t.cancel();
    }
    if let Some(deadline) = r.lookup.poll_timeout() {
        let me = run.clone();
        let wait = deadline.saturating_duration_since(reactor.now());
        r.timer = Some(reactor.call_later(wait, move || {
            let now = match me.borrow().reactor.upgrade() {
                Some(r) => r.now(),
                None => return,
            };
            {
                let mut m = me.borrow_mut();
                m.timer = None;
                m.lookup.handle_timeout(now);
                // A TCP exchange that outlived its try is not waited for.
                if let Some(t) = m.tcp.take() {
                    t.abort();
                }
            }
            pump(&me);
        }));
    }
}

fn finish(run: &RunRef, reactor: &Reactor, outcome: Result<Answer, ResolveError>) {
    let (done, ports) = {
        let mut r = run.borrow_mut();
        if let Some(t) = r.timer.take() {
            t.cancel();
        }
        if let Some(t) = r.tcp.take() {
            t.abort();
        }
        (r.done.take(), [r.udp4.take(), r.udp6.take()])
    };
    // Closed from the reactor: this may run inside one of their callbacks.
    reactor.call_soon(move || ports.into_iter().flatten().for_each(|p| p.stop_listening()));
    if let Some(done) = done {
        done.resolve(outcome);
    }
}

/// Hears the answers on a lookup's UDP socket.
struct Answers(RunRef);

impl DatagramProtocol for Answers {
    fn datagram_received(&mut self, _: &DatagramPort, data: &[u8], from: &Address) {
        let (Address::Tcp(from), Some(reactor)) = (from, self.0.borrow().reactor.upgrade()) else {
            return;
        };
        self.0
            .borrow_mut()
            .lookup
            .handle_response(*from, Over::Udp, data, reactor.now());
        pump(&self.0);
    }

    fn connection_refused(&mut self, _: &DatagramPort) {
        self.network_error();
    }

    fn receive_error(&mut self, _: &DatagramPort, error: &io::Error) {
        tracing::debug!(%error, "DNS socket error");
        self.network_error();
    }
}

impl Answers {
    /// ICMP unreachable for the server asked: no point waiting for it.
    fn network_error(&self) {
        let Some(reactor) = self.0.borrow().reactor.upgrade() else {
            return;
        };
        self.0
            .borrow_mut()
            .lookup
            .handle_transport_error(Over::Udp, reactor.now());
        pump(&self.0);
    }
}

fn send_udp(run: &RunRef, reactor: &Reactor, t: &Transmit) -> io::Result<()> {
    let v6 = t.server.is_ipv6();
    let existing = {
        let r = run.borrow();
        if v6 {
            r.udp6.clone()
        } else {
            r.udp4.clone()
        }
    };
    let port = match existing {
        Some(p) => p,
        None => {
            let bind: SocketAddr = if v6 {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            };
            let p = reactor.listen_udp(bind, Answers(run.clone()))?;
            let mut r = run.borrow_mut();
            if v6 {
                r.udp6 = Some(p.clone());
            } else {
                r.udp4 = Some(p.clone());
            }
            p
        }
    };
    port.send_to(&t.payload, &Address::Tcp(t.server))
}

fn start_tcp(run: &RunRef, reactor: &Reactor, t: Transmit) {
    let generation = {
        let mut r = run.borrow_mut();
        if let Some(old) = r.tcp.take() {
            old.abort();
        }
        r.tcp_generation += 1;
        r.tcp_generation
    };
    let me = Rc::downgrade(run);
    let r = reactor.clone();
    let task = reactor.spawn_local(async move {
        let result = tcp_exchange(&r, t.server, &t.payload).await;
        let Some(run) = me.upgrade() else { return };
        if run.borrow().tcp_generation != generation {
            return;
        }
        {
            let mut m = run.borrow_mut();
            m.tcp = None;
            match &result {
                Ok(bytes) => m
                    .lookup
                    .handle_response(t.server, Over::Tcp, bytes, r.now()),
                Err(e) => {
                    tracing::debug!(server = %t.server, error = %e, "DNS over TCP failed");
                    m.lookup.handle_transport_error(Over::Tcp, r.now());
                }
            }
        }
        pump(&run);
    });
    run.borrow_mut().tcp = Some(task);
}

/// One query over TCP (RFC 7766): the message behind its two-byte
/// length, and one framed answer back (65,535 bytes at most, the frame's
/// own cap).
async fn tcp_exchange(
    reactor: &Reactor,
    server: SocketAddr,
    payload: &[u8],
) -> io::Result<Vec<u8>> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut stream = Stream::connect(reactor, server).await?;
    let mut framed = Vec::with_capacity(payload.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(payload);
    stream.write_all(&framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut answer = vec![0u8; u16::from_be_bytes(len).into()];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

impl HostnameResolver for Resolver {
    /// AAAA and A at once; each family's addresses go to the receiver as
    /// soon as its answer is in, so the connector can start (RFC 8305).
    fn resolve_host_name(
        &self,
        reactor: &Reactor,
        host: &str,
        port: u16,
        receiver: Rc<dyn ResolutionReceiver>,
    ) {
        let left = Rc::new(Cell::new(2u8));
        let errors: Rc<RefCell<Vec<ResolveError>>> = Rc::default();
        let any = Rc::new(Cell::new(false));
        for rtype in [RecordType::AAAA, RecordType::A] {
            let (left, errors, any, receiver) =
                (left.clone(), errors.clone(), any.clone(), receiver.clone());
            let d = self.lookup(host, rtype);
            let r = reactor.clone();
            // An answer from /etc/hosts is ready at once: given from the
            // reactor all the same.
            let deliver = move |result: Result<Answer, ResolveError>| {
                match result {
                    Ok(a) => {
                        let addrs: Vec<SocketAddr> = a
                            .records
                            .iter()
                            .filter_map(|rec| match &rec.data {
                                RData::A(a) => Some(SocketAddr::new(IpAddr::V4(a.0), port)),
                                RData::AAAA(a) => Some(SocketAddr::new(IpAddr::V6(a.0), port)),
                                _ => None,
                            })
                            .collect();
                        any.set(any.get() || !addrs.is_empty());
                        receiver.addresses_resolved(&addrs);
                    }
                    Err(e) => errors.borrow_mut().push(e),
                }
                left.set(left.get() - 1);
                if left.get() == 0 {
                    let errors = errors.borrow();
                    let result = match (any.get(), &errors[..]) {
                        (true, _) | (false, []) => Ok(()),
                        (false, [one]) => Err(io::Error::from(one.clone())),
                        (false, [a, b, ..]) => Err(io::Error::from(worse(a, b).clone())),
                    };
                    receiver.resolution_complete(result);
                }
            };
            d.add_both(move |result| {
                r.call_soon(move || deliver(result));
                Ok::<(), ResolveError>(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_both_ways() {
        for ip in ["192.0.2.1", "2001:db8::567:89ab", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let name = reverse_name(ip);
            assert_eq!(
                reverse_ip(&Name::from_utf8(&name).unwrap()),
                Some(ip),
                "{name}"
            );
        }
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa."
        );
        assert_eq!(reverse_ip(&Name::from_utf8("example.org.").unwrap()), None);
        assert_eq!(
            reverse_ip(&Name::from_utf8("1.2.in-addr.arpa.").unwrap()),
            None
        );
    }
}
