//! `braid mail` (feature `cli`): an SMTP server delivering into Maildirs,
//! and `braid mail send`, a client, for the `braid` command.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;

use braid::Reactor;
use braid_cred::{InMemoryChecker, PasswordFileChecker, Portal};
use clap::{Args, Subcommand};

use crate::client::{self, ClientConfig, TlsPolicy};
use crate::server::{Server, SessionConfig};
use crate::{Maildir, Queue, QueueConfig, Router};
use std::time::Duration;

/// `braid mail`: an ESMTP server (or, with `send`, a client).
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MailArgs {
    /// `send`: hand a message from stdin to a server.
    #[command(subcommand)]
    pub command: Option<MailCommand>,
    /// The server's options.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `braid mail`'s subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum MailCommand {
    /// Send the message on stdin (`braid mail send --server H:P --from A --to B < msg`).
    Send(SendArgs),
}

/// `braid mail`: serve SMTP.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 2525)]
    pub port: u16,
    /// Reactors (threads) serving the port, sharing it with SO_REUSEPORT
    /// and delivering into the same Maildirs. Not with --spool (each
    /// worker's runner shares --queue-postgres instead).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Deliver into `DIR/<user>/{tmp,new,cur}`.
    #[arg(long)]
    pub maildir: Option<PathBuf>,
    /// A local domain (repeatable; default localhost).
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// A user and password, NAME:PASSWORD (repeatable): the mailboxes and
    /// who may AUTH.
    #[arg(long = "user")]
    pub users: Vec<String>,
    /// The argon2 password file of `braid passwd`: its users are the
    /// mailboxes and who may AUTH.
    #[arg(long = "users")]
    pub users_file: Option<PathBuf>,
    /// Certificate chain (PEM) for STARTTLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for STARTTLS.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Offer AUTH without TLS too (only for tests on loopback).
    #[arg(long)]
    pub auth_without_tls: bool,
    /// The name to greet with.
    #[arg(long, default_value = "localhost")]
    pub hostname: String,
    /// Largest message, in bytes.
    #[arg(long, default_value_t = 10_240_000)]
    pub max_size: usize,
    /// Refuse messages with bare CR or LF instead of normalising them.
    #[arg(long)]
    pub reject_bare_newlines: bool,
    /// Relay mail for other domains (from authenticated users) through
    /// this smarthost, HOST:PORT.
    #[arg(long, requires = "queue", conflicts_with = "mx")]
    pub relay: Option<String>,
    /// Deliver mail for other domains (from authenticated users) to each
    /// domain's MX hosts, looked up with braid's DNS resolver
    /// (/etc/resolv.conf, or --dns-server).
    #[arg(long, requires = "queue")]
    pub mx: bool,
    /// The SMTP port of MX hosts (25; another for tests).
    #[arg(long, default_value_t = 25)]
    pub mx_port: u16,
    /// Ask this DNS server (HOST:PORT) instead of /etc/resolv.conf's.
    #[arg(long)]
    pub dns_server: Option<std::net::SocketAddr>,
    /// The relay queue's spool directory (it survives restarts).
    #[arg(long, group = "queue")]
    pub spool: Option<PathBuf>,
    /// The relay queue in PostgreSQL instead (postgres://user:pw@host/db):
    /// one queue for every worker and every `braid mail` given it.
    #[arg(long, group = "queue", env = "BRAID_MAIL_QUEUE_POSTGRES")]
    pub queue_postgres: Option<String>,
    /// With --queue-postgres: seconds a runner's claim on a message holds
    /// unless renewed (it is, while the attempt runs): how long one that
    /// died keeps its messages from the others.
    #[arg(long, default_value_t = 60, requires = "queue_postgres")]
    pub queue_lease: u64,
    /// Require STARTTLS with the smarthost (else used when offered).
    #[arg(long)]
    pub relay_tls: bool,
    /// Trust this CA (PEM) for the smarthost's certificate.
    #[arg(long)]
    pub relay_ca: Option<PathBuf>,
    /// AUTH with the smarthost as NAME:PASSWORD (only under TLS).
    #[arg(long, env = "BRAID_MAIL_RELAY_USER")]
    pub relay_user: Option<String>,
    /// Seconds before the first retry of a deferred message (doubling
    /// up to --max-backoff).
    #[arg(long, default_value_t = 300)]
    pub retry_after: u64,
    /// Longest wait between retries, in seconds.
    #[arg(long, default_value_t = 4000)]
    pub max_backoff: u64,
    /// Seconds a message may wait before it is bounced (5 days).
    #[arg(long, default_value_t = 432_000)]
    pub queue_lifetime: u64,
}

/// `braid mail send`.
#[derive(Args, Debug, Clone)]
pub struct SendArgs {
    /// The server, HOST:PORT.
    #[arg(long, default_value = "localhost:25")]
    pub server: String,
    /// The envelope sender.
    #[arg(long)]
    pub from: String,
    /// A recipient (repeatable).
    #[arg(long, required = true)]
    pub to: Vec<String>,
    /// Require STARTTLS (fail rather than send in plain text).
    #[arg(long, conflicts_with = "no_tls")]
    pub tls: bool,
    /// Never STARTTLS.
    #[arg(long)]
    pub no_tls: bool,
    /// Trust this CA (PEM) for the server's certificate.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// AUTH as NAME:PASSWORD.
    #[arg(long, env = "BRAID_MAIL_USER")]
    pub user: Option<String>,
    /// Allow AUTH without TLS.
    #[arg(long)]
    pub auth_without_tls: bool,
    /// The name to say in EHLO.
    #[arg(long, default_value = "localhost")]
    pub helo: String,
}

/// Starts what `args` describes on `reactor` (the `braid` command then
/// runs the reactor). The server prints where it listens on the first
/// line of stdout; `send` exits the process when it is done (0 sent, 75
/// try later, 1 refused).
///
/// # Errors
///
/// Bad options, unreadable files, the listener's error.
pub fn start(reactor: &Reactor, args: MailArgs) -> Result<(), String> {
    match args.command {
        Some(MailCommand::Send(s)) => start_send(reactor, s),
        None => {
            println!("{}", start_server(reactor, args.serve, None)?);
            Ok(())
        }
    }
}

/// Whether `args` asks for several reactors (`--workers N`, N > 1).
pub fn wants_workers(args: &MailArgs) -> bool {
    args.command.is_none() && args.serve.workers > 1
}

/// Runs `--workers` reactors, one thread each, serving one port (a socket
/// systemd passed, if any) into the same Maildirs, until SIGINT or
/// SIGTERM. Not with a relay queue (`--spool`): its runner is one per
/// spool.
///
/// # Errors
///
/// Bad arguments, the listener's error, or a worker's.
pub fn run_workers(args: MailArgs) -> Result<(), String> {
    use braid::workers::{self, SharedPort};
    use std::sync::{Arc, Mutex};
    let serve = args.serve;
    if serve.spool.is_some() {
        return Err(
            "--workers with --spool: a spool has one runner; use --queue-postgres (shared by the workers) or --workers 1"
                .into(),
        );
    }
    let addr = SocketAddr::new(serve.host, serve.port);
    let port = match SharedPort::systemd() {
        Some(p) => p,
        None => {
            SharedPort::reuse_port(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?
        }
    };
    let line = Arc::new(Mutex::new(String::new()));
    let (l, p) = (line.clone(), port.clone());
    let n = usize::from(serve.workers);
    workers::run_with_ready(
        n,
        move |reactor, i| {
            let said =
                start_server(reactor, serve.clone(), Some(&p)).map_err(std::io::Error::other)?;
            if i == 0 {
                *l.lock().unwrap_or_else(|e| e.into_inner()) = said;
            }
            Ok(())
        },
        move || println!("{}", line.lock().unwrap_or_else(|e| e.into_inner())),
    )
    .map_err(|e| e.to_string())
}

/// Sets up one reactor's server; the line that says where it listens.
fn start_server(
    reactor: &Reactor,
    args: ServeArgs,
    shared: Option<&braid::workers::SharedPort>,
) -> Result<String, String> {
    let root = args
        .maildir
        .ok_or("--maildir DIR is required to serve (or use `braid mail send`)")?;
    let domains = if args.domains.is_empty() {
        vec!["localhost".to_owned()]
    } else {
        args.domains
    };
    let mut maildir = Maildir::new(reactor, &root, &domains).hostname(&args.hostname);
    let mut portal = None;
    if !args.users.is_empty() {
        let mut checker = InMemoryChecker::new();
        let mut names = Vec::new();
        for u in &args.users {
            let (name, pw) = u
                .split_once(':')
                .ok_or_else(|| format!("--user {u:?}: expected NAME:PASSWORD"))?;
            checker = checker.user(name, pw);
            names.push(name.to_owned());
        }
        maildir = maildir.users(names);
        portal = Some(Portal::new(reactor, |_: &str, _: ()| ((), None)).checker(checker));
    } else if let Some(file) = &args.users_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--users {}: {e}", file.display()))?;
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim()))
            .filter(|n| !n.is_empty() && !n.starts_with('#'))
            .collect();
        maildir = maildir.users(names);
        portal = Some(
            Portal::new(reactor, |_: &str, _: ()| ((), None))
                .checker(PasswordFileChecker::new(file)),
        );
    }
    let config = SessionConfig {
        hostname: args.hostname.clone(),
        max_message_size: args.max_size,
        auth_without_tls: args.auth_without_tls,
        bare_newlines: if args.reject_bare_newlines {
            crate::server::BareNewlines::Reject
        } else {
            crate::server::BareNewlines::Normalize
        },
        ..SessionConfig::default()
    };
    let mut router = Router::new(maildir).max_size(args.max_size);
    let next_hop = match (&args.relay, args.mx) {
        (Some(relay), _) => {
            let (host, port) =
                host_port(relay).ok_or_else(|| format!("--relay {relay:?}: expected HOST:PORT"))?;
            Some(crate::NextHop::Smarthost { host, port })
        }
        (None, true) => {
            use braid_names::client::{Hosts, ResolvConf, Resolver};
            let resolver = match args.dns_server {
                Some(server) => Resolver::new(
                    reactor,
                    ResolvConf::with_nameservers([server]),
                    Hosts::default(),
                ),
                None => Resolver::system(reactor).map_err(|e| format!("resolver: {e}"))?,
            };
            // The MX hosts' addresses through the same resolver.
            reactor.install_name_resolver(std::rc::Rc::new(resolver.clone()));
            Some(crate::NextHop::Mx {
                resolver,
                port: args.mx_port,
            })
        }
        (None, false) => None,
    };
    let queue_config = match (next_hop, &args.spool, &args.queue_postgres) {
        (Some(hop), Some(spool), _) => Some((QueueConfig::with_next_hop(spool, hop), "--spool")),
        (Some(hop), None, Some(url)) => {
            let db = braid_db::postgres::PgConfig::parse(url)
                .map_err(|e| format!("--queue-postgres: {e}"))?;
            let mut qc = QueueConfig::in_postgres(db, hop);
            qc.lease = Duration::from_secs(args.queue_lease.max(1));
            Some((qc, "--queue-postgres"))
        }
        _ => None,
    };
    if let Some((mut qc, what)) = queue_config {
        qc.min_backoff = Duration::from_secs(args.retry_after);
        qc.max_backoff = Duration::from_secs(args.max_backoff.max(args.retry_after));
        qc.lifetime = Duration::from_secs(args.queue_lifetime);
        qc.hostname = args.hostname.clone();
        qc.client.helo = args.hostname.clone();
        if args.relay_tls {
            qc.client.tls = TlsPolicy::Required;
        }
        if let Some(ca) = &args.relay_ca {
            qc.client.tls_config = braid_tls::ClientConfig::with_root_pem_file(ca)
                .map_err(|e| format!("--relay-ca: {e}"))?;
        }
        if let Some(u) = &args.relay_user {
            let (n, p) = u
                .split_once(':')
                .ok_or("--relay-user: expected NAME:PASSWORD")?;
            qc.client.credentials = Some((n.to_owned(), p.to_owned()));
        }
        let queue = Queue::open(reactor, qc).map_err(|e| format!("{what}: {e}"))?;
        queue.start();
        router = router.relay(queue);
    }
    let mut server = Server::new(reactor, config, router);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let tls = braid_tls::ServerConfig::from_pem_files(cert, key).map_err(|e| e.to_string())?;
        server = server.tls(tls);
    }
    if let Some(p) = portal {
        server = server.auth(p);
    }
    let server = Rc::new(server);
    let port = match shared {
        Some(p) => p.listen(reactor, server.factory()),
        None => reactor.listen_tcp(SocketAddr::new(args.host, args.port), server.factory()),
    }
    .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    tracing::info!(addr = %port.local_addr(), maildir = %root.display(), ?domains, "SMTP server listening");
    // The first line on stdout: where we listen (scripts and tests read it).
    let workers = match args.workers {
        1 => String::new(),
        n => format!(" ({n} workers)"),
    };
    Ok(format!(
        "braid mail: SMTP{workers} on {}",
        port.local_addr()
    ))
}

/// `HOST:PORT` (or `[V6]:PORT`).
fn host_port(s: &str) -> Option<(String, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    Some((h.trim_matches(['[', ']']).to_owned(), p.parse().ok()?))
}

fn start_send(reactor: &Reactor, args: SendArgs) -> Result<(), String> {
    let (host, port) = args
        .server
        .rsplit_once(':')
        .and_then(|(h, p)| {
            Some((
                h.trim_matches(['[', ']']).to_owned(),
                p.parse::<u16>().ok()?,
            ))
        })
        .ok_or_else(|| format!("--server {:?}: expected HOST:PORT", args.server))?;
    let mut message = Vec::new();
    std::io::stdin()
        .read_to_end(&mut message)
        .map_err(|e| format!("reading the message from stdin: {e}"))?;
    let mut config = ClientConfig {
        helo: args.helo,
        tls: if args.tls {
            TlsPolicy::Required
        } else if args.no_tls {
            TlsPolicy::Never
        } else {
            TlsPolicy::Opportunistic
        },
        auth_without_tls: args.auth_without_tls,
        ..ClientConfig::default()
    };
    if let Some(ca) = &args.ca {
        config.tls_config =
            braid_tls::ClientConfig::with_root_pem_file(ca).map_err(|e| e.to_string())?;
    }
    if let Some(u) = &args.user {
        let (n, p) = u.split_once(':').ok_or("--user: expected NAME:PASSWORD")?;
        config.credentials = Some((n.to_owned(), p.to_owned()));
    }
    let r = reactor.clone();
    let (from, to) = (args.from, args.to);
    drop(reactor.spawn_local(async move {
        let result = client::send(&r, &host, port, &config, &from, &to, &message[..]).await;
        let code = match result {
            Ok(sent) => {
                println!("sent: {}", sent.reply);
                for (who, why) in &sent.refused {
                    println!("refused <{who}>: {why}");
                }
                0
            }
            Err(e) => {
                eprintln!("braid mail send: {e}");
                if e.is_transient() {
                    75
                } else {
                    1
                }
            }
        };
        std::process::exit(code);
    }));
    Ok(())
}
