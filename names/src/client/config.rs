//! What the system says about name resolution: `/etc/resolv.conf` and
//! `/etc/hosts`, parsed the way glibc reads them.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// glibc's limits (`resolv.h`): at most 3 servers are used, `ndots` is
/// capped at 15, `timeout` at 30 s and `attempts` at 5.
const MAX_SERVERS: usize = 3;
const MAX_NDOTS: u8 = 15;
const MAX_TIMEOUT: u64 = 30;
const MAX_ATTEMPTS: u8 = 5;

/// Resolver settings: `/etc/resolv.conf` (`resolv.conf(5)`), or built by
/// hand.
///
/// ```
/// use braid_names::client::ResolvConf;
///
/// let conf = ResolvConf::parse(
///     "nameserver 192.0.2.53\nsearch corp.example example.org\noptions ndots:2 timeout:3 attempts:4\n",
/// );
/// assert_eq!(conf.nameservers, ["192.0.2.53:53".parse().unwrap()]);
/// assert_eq!(conf.search, ["corp.example", "example.org"]);
/// assert_eq!((conf.ndots, conf.attempts), (2, 4));
/// assert_eq!(conf.timeout.as_secs(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// The servers, tried in order (port 53 from the file; any port when
    /// built by hand).
    pub nameservers: Vec<SocketAddr>,
    /// Domains appended to names with fewer than `ndots` dots (and tried
    /// after the name itself for the others).
    pub search: Vec<String>,
    /// Dots a name needs to be tried as it is first (default 1).
    pub ndots: u8,
    /// How long the first round waits for each server (default 5 s); later
    /// rounds wait longer, as glibc's do.
    pub timeout: Duration,
    /// Rounds over the servers (default 2).
    pub attempts: u8,
    /// Every query over TCP (`options use-vc`).
    pub use_tcp: bool,
    /// Send EDNS0 (on by default: braid's client always offers a 1232-byte
    /// UDP size, unlike Twisted's, twisted#5670). A server that answers
    /// FORMERR or NOTIMP to it is asked again without.
    pub edns: bool,
}

impl Default for ResolvConf {
    /// glibc's defaults with no file: the local server.
    fn default() -> Self {
        ResolvConf {
            nameservers: vec![SocketAddr::from(([127, 0, 0, 1], 53))],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
            use_tcp: false,
            edns: true,
        }
    }
}

impl ResolvConf {
    /// Settings that ask `servers` (any port), with the other defaults.
    pub fn with_nameservers(servers: impl IntoIterator<Item = SocketAddr>) -> ResolvConf {
        ResolvConf {
            nameservers: servers.into_iter().collect(),
            ..ResolvConf::default()
        }
    }

    /// Parses a `resolv.conf`. Unknown lines and options are ignored (as
    /// glibc does); with no `nameserver` line, the local server is used.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            ..ResolvConf::default()
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A scope (`fe80::1%eth0`) is dropped; the port is 53.
                    let ip = words.next().and_then(|w| w.split('%').next());
                    if let Some(ip) = ip.and_then(|w| w.parse::<IpAddr>().ok()) {
                        if conf.nameservers.len() < MAX_SERVERS {
                            conf.nameservers.push(SocketAddr::new(ip, 53));
                        }
                    }
                }
                // The last of `domain` and `search` wins.
                Some("domain") => conf.search = words.next().map(domain).into_iter().collect(),
                Some("search") => conf.search = words.map(domain).collect(),
                Some("options") => {
                    for opt in words {
                        let (key, value) = opt.split_once(':').unwrap_or((opt, ""));
                        let n = value.parse::<u64>().ok();
                        match (key, n) {
                            ("ndots", Some(n)) => conf.ndots = n.min(MAX_NDOTS.into()) as u8,
                            ("timeout", Some(n)) => {
                                conf.timeout = Duration::from_secs(n.clamp(1, MAX_TIMEOUT));
                            }
                            ("attempts", Some(n)) => {
                                conf.attempts = n.clamp(1, MAX_ATTEMPTS.into()) as u8;
                            }
                            ("use-vc", _) => conf.use_tcp = true,
                            ("edns0", _) => conf.edns = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers = ResolvConf::default().nameservers;
        }
        conf
    }

    /// Reads and parses `path`. A missing file gives the defaults (as for
    /// glibc).
    ///
    /// # Errors
    ///
    /// The file exists and cannot be read.
    pub fn from_file(path: &Path) -> io::Result<ResolvConf> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(ResolvConf::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ResolvConf::default()),
            Err(e) => Err(e),
        }
    }
}

fn domain(w: &str) -> String {
    w.trim_end_matches('.').to_ascii_lowercase()
}

/// `/etc/hosts`: names to addresses, looked at before DNS for address
/// lookups (nsswitch's usual `files dns`).
///
/// ```
/// use braid_names::client::Hosts;
///
/// let hosts = Hosts::parse("127.0.0.1 localhost\n::1 localhost ip6-localhost # loopback\n192.0.2.7 Build.Example build\n");
/// assert_eq!(hosts.get("LOCALHOST").len(), 2);
/// assert_eq!(hosts.get("build.example.")[0].to_string(), "192.0.2.7");
/// assert!(hosts.get("elsewhere").is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts {
    by_name: HashMap<String, Vec<IpAddr>>,
    by_addr: HashMap<IpAddr, Vec<String>>,
}

impl Hosts {
    /// Parses a hosts file: an address, then names; `#` starts a comment.
    /// Lines whose address does not parse are skipped.
    pub fn parse(text: &str) -> Hosts {
        let mut hosts = Hosts::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(ip) = words
                .next()
                .and_then(|w| w.split('%').next())
                .and_then(|w| w.parse::<IpAddr>().ok())
            else {
                continue;
            };
            for name in words {
                hosts.add(name, ip);
            }
        }
        hosts
    }

    /// Adds `name` for `ip`.
    pub fn add(&mut self, name: &str, ip: IpAddr) {
        let name = domain(name);
        let ips = self.by_name.entry(name.clone()).or_default();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
        let names = self.by_addr.entry(ip).or_default();
        if !names.contains(&name) {
            names.push(name);
        }
    }

    /// Reads and parses `path`; a missing file is an empty one.
    ///
    /// # Errors
    ///
    /// The file exists and cannot be read.
    pub fn from_file(path: &Path) -> io::Result<Hosts> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Hosts::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Hosts::default()),
            Err(e) => Err(e),
        }
    }

    /// The addresses of `name` (any case, trailing dot or not), in file
    /// order.
    pub fn get(&self, name: &str) -> &[IpAddr] {
        self.by_name
            .get(&domain(name))
            .map_or(&[][..], Vec::as_slice)
    }

    /// The names of `ip`, the canonical one first.
    pub fn names_of(&self, ip: IpAddr) -> &[String] {
        self.by_addr.get(&ip).map_or(&[][..], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_reads_as_glibc_does() {
        let conf = ResolvConf::parse(
            "# generated\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver bogus\n\
             nameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n\
             search a.example b.example.\ndomain last.example\n\
             options ndots:99 timeout:0 attempts:9 rotate use-vc\nsortlist 10.0.0.0\n",
        );
        assert_eq!(
            conf.nameservers,
            [
                "10.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
                "10.0.0.2:53".parse().unwrap(),
            ],
            "three at most, bad lines skipped"
        );
        assert_eq!(
            conf.search,
            ["last.example"],
            "the last of domain/search wins"
        );
        assert_eq!(conf.ndots, 15);
        assert_eq!(conf.timeout, Duration::from_secs(1));
        assert_eq!(conf.attempts, 5);
        assert!(conf.use_tcp);
        let empty = ResolvConf::parse("");
        assert_eq!(empty, ResolvConf::default());
    }

    #[test]
    fn hosts_map_both_ways() {
        let hosts = Hosts::parse("192.0.2.1 a.example a\n192.0.2.2 a.example\nnot-an-ip b\n");
        assert_eq!(hosts.get("A").len(), 1);
        assert_eq!(hosts.get("a.example").len(), 2);
        assert!(hosts.get("b").is_empty());
        assert_eq!(
            hosts.names_of("192.0.2.1".parse().unwrap()),
            ["a.example", "a"]
        );
    }
}
