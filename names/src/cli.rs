//! `braid dns` (feature `cli`): an authoritative DNS server for zones
//! from master files, for the `braid` command.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use braid::Reactor;
use clap::Args;

use crate::{Authority, DnsServer, Zone};

/// `braid dns`: serve zones over UDP and TCP.
#[derive(Args, Debug)]
pub struct DnsArgs {
    /// Port to listen on, UDP and TCP (0 picks a free one).
    #[arg(long, default_value_t = 5353)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// A zone, ORIGIN=FILE (an RFC 1035 master file; repeatable).
    #[arg(long = "zone", required = true)]
    pub zones: Vec<String>,
}

/// Starts `braid dns` on `reactor`; prints where it listens on the first
/// line of stdout.
///
/// # Errors
///
/// A zone that does not load, or a socket's error.
pub fn start(reactor: &Reactor, args: DnsArgs) -> Result<(), String> {
    let mut authority = Authority::new();
    for z in &args.zones {
        let (origin, file) = z
            .split_once('=')
            .ok_or_else(|| format!("--zone {z:?}: expected ORIGIN=FILE"))?;
        let zone =
            Zone::load(origin, &PathBuf::from(file)).map_err(|e| format!("--zone {z}: {e}"))?;
        tracing::info!(origin = %zone.origin(), "zone loaded");
        authority = authority.zone(zone);
    }
    let server = DnsServer::new(reactor, authority);
    let (udp, tcp) = server
        .listen(SocketAddr::new(args.host, args.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    println!("braid dns: listening on {}", tcp.local_addr());
    tracing::info!(addr = %tcp.local_addr(), "DNS server listening (UDP and TCP)");
    // The reactor keeps both ports open after their handles go.
    drop((udp, tcp));
    Ok(())
}
