//! `braid web` (feature `cli`): the subcommand's options and what it sets
//! up, for the `braid` command (Twisted's `twist web`).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use braid::Reactor;
use clap::Args;

use crate::distrib::{BadAddress, PublisherAddress, Subscription, UserDirectory};

/// `braid web`: an HTTP server of static files and reverse proxies, or a
/// forward proxy.
#[derive(Args, Debug, Clone)]
pub struct WebArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Directory (or file) to serve.
    #[arg(long)]
    pub path: Option<std::path::PathBuf>,
    /// Do not list directories without an index.html (403 instead).
    #[arg(long)]
    pub no_listing: bool,
    /// Mount a reverse proxy: `/prefix=http://backend:port/path`, or a
    /// bare URL for the whole site (repeatable).
    #[arg(long = "proxy", value_name = "PREFIX=URL")]
    pub proxies: Vec<String>,
    /// Be a forward proxy (absolute-form requests and CONNECT tunnels)
    /// instead of serving files.
    #[arg(long)]
    pub forward_proxy: bool,
    /// Forward proxy: also serve clients in this network (`10.0.0.0/8`;
    /// repeatable). Loopback clients are always served.
    #[arg(long = "allow", value_name = "CIDR")]
    pub allow: Vec<String>,
    /// HTTPS: certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// HTTPS: private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Reactors (threads) serving the port: one per core is the usual
    /// choice. The port is shared with SO_REUSEPORT.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,
    /// With --workers: one socket every worker accepts from (balanced by
    /// load, for long-lived connections) instead of SO_REUSEPORT.
    #[arg(long)]
    pub shared_accept: bool,
    /// Mount a distributed resource (Twisted's web.distrib): requests
    /// under `/prefix` go over PB to the publisher at `unix:PATH` or
    /// `HOST:PORT` (repeatable).
    #[arg(long = "distrib", value_name = "PREFIX=ADDRESS")]
    pub distrib: Vec<String>,
    /// Serve the site over PB as a publisher, at `unix:PATH` or
    /// `tcp:[HOST:]PORT`, for a front's `--distrib`, instead of over HTTP.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "personal")]
    pub publish: Option<String>,
    /// Publish at `~/.braid-web.sock`, where a front's `--user-dirs` finds
    /// this user's site as `/~user/` (Twisted's `twist web --personal`).
    #[arg(long)]
    pub personal: bool,
    /// Serve `/~user/` from each user's publisher socket
    /// (`~user/.braid-web.sock`) or, where none runs, `~user/public_html`.
    #[arg(long)]
    pub user_dirs: bool,
}

/// Sets up what `args` asks for on `reactor` (the `braid` command then runs
/// the reactor), and prints where it listens on the first line of stdout.
///
/// # Errors
///
/// Bad arguments (`InvalidInput`) or the listener's error.
pub fn start(reactor: &Reactor, args: WebArgs) -> std::io::Result<()> {
    println!("{}", start_on(reactor, args, None)?);
    Ok(())
}

/// Runs `args.workers` reactors, one thread each, serving one port (a
/// socket systemd passed, if any), until SIGINT or SIGTERM; prints where
/// it listens once.
///
/// # Errors
///
/// Bad arguments, the listener's error, or a worker's.
pub fn run_workers(args: WebArgs) -> std::io::Result<()> {
    use braid::workers::{self, SharedPort};
    if args.publish.is_some() || args.personal {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "--publish serves one reactor: leave out --workers",
        ));
    }
    let addr = SocketAddr::new(args.host, args.port);
    let port = match SharedPort::systemd() {
        Some(p) => p,
        None if args.shared_accept => SharedPort::single_at(addr)?,
        None => SharedPort::reuse_port(addr)?,
    };
    let n = usize::from(args.workers);
    let what = Arc::new(Mutex::new(String::new()));
    let (w, p) = (what.clone(), port.clone());
    workers::run_with_ready(
        n,
        move |reactor, i| {
            let line = start_on(reactor, args.clone(), Some(&p))?;
            if i == 0 {
                *w.lock().unwrap_or_else(|e| e.into_inner()) = line;
            }
            Ok(())
        },
        // Said once, when every worker takes connections.
        move || println!("{}", what.lock().unwrap_or_else(|e| e.into_inner())),
    )
}

/// Sets up one reactor's server; the line that says where it listens.
fn start_on(
    reactor: &Reactor,
    args: WebArgs,
    shared: Option<&braid::workers::SharedPort>,
) -> std::io::Result<String> {
    use crate::{Agent, File, ForwardProxy, ReverseProxy, Site, Tree};
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let agent = Agent::new(reactor);
    let (site, what) = if args.forward_proxy {
        let mut proxy = ForwardProxy::new(&agent);
        for cidr in &args.allow {
            proxy = proxy.allow_cidr(cidr).map_err(bad)?;
        }
        (Site::new(proxy), "forward proxy".to_owned())
    } else {
        let mut tree = Tree::new();
        let mut what = Vec::new();
        let mut whole_site: Option<ReverseProxy> = None;
        for p in &args.proxies {
            let (prefix, url) = match p.split_once('=') {
                Some((prefix, url)) => (prefix.trim_matches('/'), url),
                None => ("", p.as_str()),
            };
            let proxy = ReverseProxy::new(&agent, url).map_err(|e| bad(e.to_string()))?;
            what.push(format!("/{prefix} -> {url}"));
            if prefix.is_empty() {
                whole_site = Some(proxy);
            } else if prefix.contains('/') {
                return Err(bad(format!("--proxy prefix must be one segment: {p}")));
            } else {
                tree = tree.child(prefix, proxy);
            }
        }
        for d in &args.distrib {
            let (prefix, address) = d
                .split_once('=')
                .ok_or_else(|| bad(format!("--distrib wants PREFIX=ADDRESS: {d}")))?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() || prefix.contains('/') {
                return Err(bad(format!("--distrib prefix must be one segment: {d}")));
            }
            let address: PublisherAddress = address
                .parse()
                .map_err(|e: BadAddress| bad(e.to_string()))?;
            what.push(format!("/{prefix} -> publisher {address}"));
            tree = tree.child(prefix, Subscription::new(reactor, address));
        }
        let rest: Option<std::rc::Rc<dyn crate::Resource>> = match (&args.path, whole_site) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "--path and a whole-site --proxy exclude each other".into()
                ))
            }
            (Some(path), None) => {
                if !path.exists() {
                    return Err(bad(format!(
                        "no such file or directory: {}",
                        path.display()
                    )));
                }
                what.push(format!("files from {}", path.display()));
                Some(std::rc::Rc::new(File::new(path).listings(!args.no_listing)))
            }
            (None, Some(proxy)) => Some(std::rc::Rc::new(proxy)),
            (None, None) if args.proxies.is_empty() && args.distrib.is_empty() && !args.user_dirs => {
                return Err(bad(
                    "say what to serve: --path DIR, --proxy, --distrib, --user-dirs or --forward-proxy"
                        .into(),
                ))
            }
            (None, None) => None,
        };
        if args.user_dirs {
            what.push("/~user/ from users' publishers or public_html".to_owned());
            tree = tree.fallback(UserDirectory::new(reactor).then(rest));
        } else if let Some(rest) = rest {
            tree = tree.fallback(rest);
        }
        (Site::new(tree), what.join(", "))
    };
    if args.personal {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                bad("--personal publishes in the home directory: HOME is not set".into())
            })?;
        let sock = std::path::Path::new(&home).join(crate::distrib::USER_SOCKET);
        return publish(reactor, site, &format!("unix:{}", sock.display()), &what);
    }
    if let Some(at) = &args.publish {
        return publish(reactor, site, at, &what);
    }
    let addr = SocketAddr::new(args.host, args.port);
    let (port, scheme) = match (&args.tls_cert, &args.tls_key, shared) {
        (Some(cert), Some(key), shared) => {
            let cfg = braid_tls::ServerConfig::from_pem_files(cert, key)
                .map_err(|e| bad(e.to_string()))?;
            let port = match shared {
                Some(p) => p.listen(reactor, site.tls_factory(&cfg)?)?,
                None => site.listen_tls(reactor, addr, &cfg)?,
            };
            (port, "https")
        }
        (_, _, Some(p)) => (p.listen(reactor, site)?, "http"),
        _ => (reactor.listen_tcp(addr, site)?, "http"),
    };
    let workers = match args.workers {
        1 => String::new(),
        n => format!(", {n} workers"),
    };
    tracing::info!(addr = %port.local_addr(), "web server listening");
    Ok(format!(
        "braid web: {scheme}://{} ({what}{workers})",
        port.local_addr()
    ))
}

/// Serves `site` over PB at `unix:PATH` or `tcp:[HOST:]PORT`.
fn publish(reactor: &Reactor, site: crate::Site, at: &str, what: &str) -> std::io::Result<String> {
    use crate::distrib::Publisher;
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let publisher = Publisher::new(reactor, site);
    if let Some(path) = at.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(bad("--publish unix: needs a path".into()));
        }
        #[cfg(unix)]
        {
            reactor.listen_unix(path, publisher.factory())?;
            tracing::info!(path, "publishing over PB");
            return Ok(format!("braid web: publishing unix:{path} ({what})"));
        }
        #[cfg(not(unix))]
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "--publish unix: needs Unix sockets, which braid does not offer on Windows: publish on tcp:PORT",
        ));
    }
    let hp = at.strip_prefix("tcp:").unwrap_or(at);
    let addr: SocketAddr = match hp.parse::<u16>() {
        Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        Err(_) => hp.parse().map_err(|_| {
            bad(format!(
                "--publish wants unix:PATH or tcp:[HOST:]PORT: {at}"
            ))
        })?,
    };
    let port = reactor.listen_tcp(addr, publisher.factory())?;
    tracing::info!(addr = %port.local_addr(), "publishing over PB");
    Ok(format!(
        "braid web: publishing tcp:{} ({what})",
        port.local_addr()
    ))
}
