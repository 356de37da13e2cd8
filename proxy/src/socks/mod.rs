//! A SOCKS 4/4a/5 server (Twisted's `socks`, which is SOCKS4 only).
//!
//! ```text
//!   client ──▶ listener ──▶ serve(): Handshake (sans-IO, handshake.rs)
//!                             │ RFC 1929 user/password ─▶ braid-cred Portal (throttled)
//!                             │ CONNECT ─▶ allowed peer? ─▶ connect (names off the reactor thread)
//!                             └ reply (bound address or the failure's code) ─▶ splice(client, target)
//! ```
//!
//! Loopback clients only unless [`SocksServer::allow`] says more; BIND and
//! UDP ASSOCIATE are refused with "command not supported".

pub mod client;
pub mod handshake;

use std::future::poll_fn;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use braid::aio::{Stream, StreamProtocol};
use braid::{Address, Factory, Reactor};
use braid_cred::{Credentials, Portal};

use crate::outbound::{Connect, Tcp};
use crate::portforward::connect_unless_lost;
use crate::splice::splice;
use handshake::{Failure, Handshake, Step, Target};

/// An address range: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?}: not an address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .parse()
                .ok()
                .filter(|&b| b <= max)
                .ok_or(format!("{s:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { addr, bits })
    }
}

/// A SOCKS server.
///
/// ```
/// use braid_proxy::SocksServer;
///
/// let reactor = braid::Reactor::new()?;
/// let socks = SocksServer::new(&reactor).allow("10.0.0.0/8".parse().unwrap());
/// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), socks.factory())?;
/// # let _ = port;
/// # std::io::Result::Ok(())
/// ```
pub struct SocksServer {
    reactor: Reactor,
    portal: Option<Portal<(), ()>>,
    allow: Vec<Cidr>,
    timeout: Duration,
    outbound: Rc<dyn Connect>,
}

impl std::fmt::Debug for SocksServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocksServer")
            .field("login", &self.portal.is_some())
            .field("allow", &self.allow)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SocksServer {
    /// A server for loopback clients, without authentication.
    pub fn new(reactor: &Reactor) -> SocksServer {
        SocksServer {
            reactor: reactor.clone(),
            portal: None,
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            timeout: Duration::from_secs(30),
            outbound: Rc::new(Tcp),
        }
    }

    /// Reaches targets through `outbound` instead of TCP.
    pub fn connect_with(mut self, outbound: impl Connect) -> Self {
        self.outbound = Rc::new(outbound);
        self
    }

    /// Clients in `range` may use the proxy too.
    pub fn allow(mut self, range: Cidr) -> Self {
        self.allow.push(range);
        self
    }

    /// SOCKS5 clients must log in (RFC 1929) through `portal`; SOCKS4 and
    /// 4a, which carry no password, are refused.
    pub fn users(mut self, portal: Portal<(), ()>) -> Self {
        self.portal = Some(portal);
        self
    }

    /// How long a handshake, and a connection attempt, may take (30 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// A factory for any listener.
    pub fn factory(self) -> impl Factory {
        let me = Rc::new(self);
        move |_: &Address| {
            let me = me.clone();
            StreamProtocol::new(move |s| {
                let r = me.reactor.clone();
                drop(r.spawn_local(serve(me, s)));
            })
        }
    }

    fn allowed(&self, peer: &Address) -> bool {
        match peer {
            Address::Tcp(a) => self.allow.iter().any(|c| c.contains(a.ip())),
            // Unix sockets and in-memory pairs are local.
            _ => true,
        }
    }
}

async fn write(stream: &Stream, bytes: &[u8]) -> bool {
    bytes.is_empty()
        || poll_fn(|cx| stream.poll_write_all(cx, &[bytes]))
            .await
            .is_ok()
}

async fn serve(server: Rc<SocksServer>, stream: Stream) {
    let peer = stream.peer_addr();
    let reactor = server.reactor.clone();
    let mut hs = Handshake::new(server.portal.is_some());
    let deadline = reactor.now() + server.timeout;
    loop {
        // Read what has come, within the handshake's deadline.
        let left = deadline.saturating_duration_since(reactor.now());
        let read = poll_fn(|cx| {
            stream.poll_read_with(cx, 4096, |a, b| {
                hs.feed(a);
                hs.feed(b);
            })
        });
        match reactor.timeout(left, read).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return,
            Err(_) => {
                tracing::info!(%peer, "SOCKS handshake timed out");
                stream.transport().lose_connection();
                return;
            }
        }
        loop {
            let step = match hs.step() {
                Step::Auth { user, password } => {
                    let ok = match &server.portal {
                        Some(p) => {
                            let host = match &peer {
                                Address::Tcp(a) => a.ip().to_string(),
                                other => other.to_string(),
                            };
                            p.login(Credentials::password(&user, &password), (), &host)
                                .await
                                .is_ok()
                        }
                        None => false,
                    };
                    if !ok {
                        tracing::info!(%peer, user, "SOCKS login failed");
                    }
                    hs.auth_done(ok)
                }
                s => s,
            };
            match step {
                Step::NeedMore => break,
                Step::Reply(b) => {
                    if !write(&stream, &b).await {
                        return;
                    }
                }
                Step::Refuse(b, why) => {
                    tracing::info!(%peer, why, "SOCKS request refused");
                    write(&stream, &b).await;
                    stream.transport().lose_connection();
                    return;
                }
                Step::Connect { target, .. } => {
                    if !server.allowed(&peer) {
                        tracing::info!(%peer, %target, "SOCKS client not allowed");
                        write(&stream, &hs.connect_reply(Err(Failure::NotAllowed))).await;
                        stream.transport().lose_connection();
                        return;
                    }
                    let (host, port) = match &target {
                        Target::Addr(a) => (a.ip().to_string(), a.port()),
                        Target::Name(n, p) => (n.clone(), *p),
                    };
                    let out = connect_unless_lost(
                        &*server.outbound,
                        &reactor,
                        &stream,
                        &host,
                        port,
                        server.timeout,
                    )
                    .await;
                    let outbound = match out {
                        None => return,
                        Some(Err(e)) => {
                            tracing::info!(%peer, %target, error = %e, "SOCKS target unreachable");
                            write(&stream, &hs.connect_reply(Err(Failure::from_io(&e)))).await;
                            stream.transport().lose_connection();
                            return;
                        }
                        Some(Ok(s)) => s,
                    };
                    let bound = match outbound.local_addr() {
                        Address::Tcp(a) => a,
                        _ => "0.0.0.0:0".parse().unwrap(),
                    };
                    tracing::debug!(%peer, %target, "SOCKS connected");
                    if !write(&stream, &hs.connect_reply(Ok(bound))).await {
                        return;
                    }
                    // Bytes the client sent before our reply go first.
                    if !write(&outbound, &hs.take_rest()).await {
                        return;
                    }
                    splice(stream, outbound).await;
                    return;
                }
                _ => break,
            }
        }
    }
}
