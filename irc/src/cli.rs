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
    #[arg(long, env = "BRAID_CHAT_PASSWORD")]
    pub password: Option<String>,
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
    if let Some(url) = &args.history_postgres {
        let cfg = braid_db::postgres::PgConfig::parse(url).map_err(std::io::Error::other)?;
        let pool = braid_db::postgres::PgPool::new(reactor, cfg, 2);
        config.history = Some(crate::History::postgres(pool, args.history_lines));
    } else if let Some(path) = &args.history {
        let pool = braid_db::ConnectionPool::sqlite(reactor, path, 1);
        config.history = Some(crate::History::new(pool, args.history_lines));
    }
    let server = IrcServer::new(config);
    let port = server.listen(reactor, SocketAddr::new(args.host, args.port))?;
    // First line on stdout: where we listen (scripts and tests read it).
    println!("braid chat: IRC on {}", port.local_addr());
    tracing::info!(addr = %port.local_addr(), "IRC server listening");
    Ok(())
}
