//! `braid portforward` and `braid socks` (feature `cli`): their options
//! and what they set up, for the `braid` command.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use braid::Reactor;
use braid_cred::{PasswordFileChecker, Portal};
use clap::Args;

use crate::{Cidr, PortForward, SocksServer};

/// `braid portforward`: forward a port to one target.
#[derive(Args, Debug)]
pub struct PortForwardArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Where connections go, HOST:PORT.
    #[arg(long)]
    pub to: String,
}

/// `braid socks`: a SOCKS 4/4a/5 server.
#[derive(Args, Debug)]
pub struct SocksArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 1080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The argon2 password file of `braid passwd`: SOCKS5 clients must log
    /// in (RFC 1929), SOCKS4/4a are refused.
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Clients from this range may use the proxy (repeatable; loopback
    /// always may).
    #[arg(long)]
    pub allow: Vec<Cidr>,
}

fn listening(what: &str, addr: SocketAddr) {
    // First line on stdout: where we listen (scripts and tests read it).
    println!("braid {what}: listening on {addr}");
    tracing::info!(%addr, "{what} listening");
}

/// Starts `braid portforward` on `reactor`.
///
/// # Errors
///
/// A bad `--to`, or the listener's error.
pub fn start_portforward(reactor: &Reactor, args: PortForwardArgs) -> Result<(), String> {
    let (host, port) = args
        .to
        .rsplit_once(':')
        .and_then(|(h, p)| {
            Some((
                h.trim_matches(['[', ']']).to_owned(),
                p.parse::<u16>().ok()?,
            ))
        })
        .ok_or_else(|| format!("--to {:?}: expected HOST:PORT", args.to))?;
    let forward = PortForward::new(reactor, &host, port);
    let listener = reactor
        .listen_tcp(SocketAddr::new(args.host, args.port), forward.factory())
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    listening("portforward", listener.local_addr());
    Ok(())
}

/// Starts `braid socks` on `reactor`.
///
/// # Errors
///
/// The listener's error.
pub fn start_socks(reactor: &Reactor, args: SocksArgs) -> Result<(), String> {
    let mut server = SocksServer::new(reactor);
    for c in args.allow {
        server = server.allow(c);
    }
    if let Some(file) = &args.users {
        if !file.exists() {
            return Err(format!("--users {}: no such file", file.display()));
        }
        server = server.users(
            Portal::new(reactor, |_: &str, _: ()| ((), None))
                .checker(PasswordFileChecker::new(file)),
        );
    }
    let listener = reactor
        .listen_tcp(SocketAddr::new(args.host, args.port), server.factory())
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    listening("socks", listener.local_addr());
    Ok(())
}
