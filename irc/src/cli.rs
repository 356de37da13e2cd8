//! `braid chat` (feature `cli`): the subcommand's options and what it
//! sets up, for the `braid` command.

use std::net::{IpAddr, SocketAddr};

use braid::Reactor;
use clap::Args;

use crate::{IrcServer, ServerConfig};

/// `braid chat`: an IRC server.
#[derive(Args, Debug)]
pub struct ChatArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 6667)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The server's name in its messages.
    #[arg(long, default_value = "braid.irc")]
    pub name: String,
    /// A message-of-the-day line (repeatable).
    #[arg(long)]
    pub motd: Vec<String>,
    /// Require this password (PASS) from clients.
    #[arg(long, env = "BRAID_CHAT_PASSWORD", conflicts_with = "users_postgres")]
    pub password: Option<String>,
    /// Require each user's own password (PASS, the nick as user name),
    /// checked against this PostgreSQL's `braid_users` table (`braid
    /// passwd postgres://... NICK` adds them); several servers share it.
    #[arg(long, env = "BRAID_CHAT_USERS_POSTGRES")]
    pub users_postgres: Option<String>,
    /// Keep channel history in this SQLite file and replay it on join.
    #[arg(long, conflicts_with = "history_postgres")]
    pub history: Option<std::path::PathBuf>,
    /// Keep channel history in PostgreSQL instead
    /// (postgres://user:password@host/db), shared by every server given it.
    #[arg(long, env = "BRAID_CHAT_HISTORY_POSTGRES")]
    pub history_postgres: Option<String>,
    /// Messages of history kept per channel.
    #[arg(long, default_value_t = 100)]
    pub history_lines: usize,
    /// Be one of several servers sharing channels, users and messages
    /// through this PostgreSQL (postgres://user:password@host/db); the
    /// history goes there too unless --history names a file. Clients are
    /// taken once the other servers are known.
    #[arg(long, env = "BRAID_CHAT_CLUSTER")]
    pub cluster: Option<String>,
    /// Lines a client may send in a burst before the rate applies.
    #[arg(long, default_value_t = 20)]
    pub flood_burst: u32,
    /// Lines per second a client may send after its burst (more wait
    /// their turn, none is dropped).
    #[arg(long, default_value_t = 4)]
    pub flood_per_second: u32,
}

/// Starts the IRC server `args` describes on `reactor` (the `braid`
/// command then runs the reactor), and prints where it listens on the
/// first line of stdout.
///
/// # Errors
///
/// The listener's error.
pub fn start(reactor: &Reactor, args: ChatArgs) -> std::io::Result<()> {
    let mut config = ServerConfig {
        name: args.name,
        flood_burst: args.flood_burst,
        flood_per_second: args.flood_per_second,
        ..ServerConfig::default()
    };
    if !args.motd.is_empty() {
        config.motd = args.motd;
    }
    if let Some(pw) = args.password {
        config.password = Some(std::rc::Rc::new(braid_cred::SharedPasswordChecker::new(
            &pw,
        )));
    }
    if let Some(url) = &args.users_postgres {
        let cfg = braid_db::postgres::PgConfig::parse(url).map_err(std::io::Error::other)?;
        let pool = braid_db::postgres::PgPool::new(reactor, cfg, 2);
        config.password = Some(std::rc::Rc::new(
            braid_db::postgres::PgPasswordChecker::new(pool),
        ));
    }
    let pg = |url: &str| braid_db::postgres::PgConfig::parse(url).map_err(std::io::Error::other);
    let history_pg = match (&args.history_postgres, &args.history, &args.cluster) {
        (Some(url), _, _) | (None, None, Some(url)) => Some(pg(url)?),
        _ => None,
    };
    if let Some(cfg) = history_pg {
        let pool = braid_db::postgres::PgPool::new(reactor, cfg, 2);
        config.history = Some(crate::History::postgres(pool, args.history_lines));
    } else if let Some(path) = &args.history {
        let pool = braid_db::ConnectionPool::sqlite(reactor, path, 1);
        config.history = Some(crate::History::new(pool, args.history_lines));
    }
    let cluster = match &args.cluster {
        Some(url) => Some(crate::Cluster::postgres(reactor, pg(url)?)),
        None => None,
    };
    config.cluster = cluster.clone();
    let server = IrcServer::new(config);
    // Bound now, so that a port in use is an error at once.
    let port = server.listen(reactor, SocketAddr::new(args.host, args.port))?;
    let addr = port.local_addr();
    let announce = move || {
        // First line on stdout: where we listen (scripts and tests read it).
        println!("braid chat: IRC on {addr}");
        tracing::info!(%addr, "IRC server listening");
    };
    match cluster {
        None => announce(),
        Some(cluster) => {
            tracing::info!("joining the cluster: waiting for PostgreSQL");
            // Clients are accepted once the others are known: until then
            // the port is bound but not read (the backlog holds them).
            port.pause_accepting();
            let _ready = cluster.when_ready().add_callback(move |()| {
                port.resume_accepting();
                tracing::info!(node = %cluster.node(), "in the cluster");
                announce();
            });
        }
    }
    Ok(())
}
