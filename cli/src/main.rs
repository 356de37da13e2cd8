//! `braid`: serve braid's batteries from the shell, as Twisted's `twist`.
//!
//! ```text
//! braid chat --port 6667             an IRC server              (braid-irc)
//! braid web --path DIR               serve a directory over HTTP (braid-web)
//! braid web --proxy /api=URL         ... with a reverse proxy mounted at /api
//! braid web --forward-proxy          an HTTP forward proxy with CONNECT
//! braid mail --maildir DIR          an SMTP server into Maildirs (braid-mail)
//! braid mail send --server H:P ...   send the message on stdin
//! braid portforward --port P --to H:P  forward a port          (braid-proxy)
//! braid socks --port 1080            a SOCKS 4/4a/5 server     (braid-proxy)
//! braid dns --zone ORIGIN=FILE      an authoritative DNS server (braid-names)
//! braid ssh --host-key FILE --users F  an SSH server, commands on ptys (braid-ssh)
//! braid passwd FILE USER             add or change a user in a password file (braid-cred), or in PostgreSQL with a postgres:// URL
//! braid --help                       every subcommand
//! ```
//!
//! A thin dispatcher: each battery owns its subcommand (its `cli` module,
//! behind the battery's `cli` feature: the clap options and a function that
//! sets up listeners on a reactor), as Twisted's plugins own their `tap`.
//! `main` runs the reactor and stops it cleanly on SIGINT or SIGTERM.
//! Adding a battery's subcommand is one variant here.

use std::process::ExitCode;

use braid::Reactor;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "braid",
    version,
    about = "Serve braid's batteries from the shell"
)]
struct Cli {
    /// Log filter, as RUST_LOG (for example `info` or `braid=debug`).
    #[arg(long, global = true, default_value = "info", env = "BRAID_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// An IRC server (RFC 1459/2812 as ordinary clients need).
    Chat(braid_irc::cli::ChatArgs),
    /// An ESMTP server delivering into Maildirs (STARTTLS, AUTH, SIZE,
    /// PIPELINING, CHUNKING), or `braid mail send`, a client.
    Mail(Box<braid_mail::cli::MailArgs>),
    /// Forward a port to one target (Twisted's portforward).
    Portforward(braid_proxy::cli::PortForwardArgs),
    /// A SOCKS 4/4a/5 server (loopback clients only unless --allow).
    Socks(braid_proxy::cli::SocksArgs),
    /// An authoritative DNS server for zones from master files (UDP and TCP).
    Dns(braid_names::cli::DnsArgs),
    /// An SSH server: commands and shells (on a pty) as this user, logins
    /// by password (--users) or key (--authorized-keys[-dir]).
    Ssh(braid_ssh::cli::SshArgs),
    /// Add or change a user's password in a password file (argon2id
    /// hashes, for cred's PasswordFileChecker). The password is read from
    /// the terminal without echo (twice), or as one line from stdin.
    Passwd(braid_cred::cli::PasswdArgs),
    /// An HTTP server: static files (ranges, conditional requests,
    /// listings), reverse proxies mounted at paths, or a forward proxy
    /// with CONNECT tunnels (loopback clients only unless --allow).
    Web(braid_web::cli::WebArgs),
}

fn exit(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("braid: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    // Several reactors: the workers run until SIGINT/SIGTERM themselves.
    match &cli.command {
        Command::Web(args) if args.workers > 1 => {
            return exit(braid_web::cli::run_workers(args.clone()));
        }
        Command::Mail(args) if braid_mail::cli::wants_workers(args) => {
            return exit(
                braid_mail::cli::run_workers((**args).clone()).map_err(std::io::Error::other),
            );
        }
        _ => {}
    }
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("braid: cannot create the reactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = match cli.command {
        Command::Chat(args) => braid_irc::cli::start(&reactor, args),
        Command::Web(args) => braid_web::cli::start(&reactor, args),
        Command::Portforward(args) => {
            braid_proxy::cli::start_portforward(&reactor, args).map_err(std::io::Error::other)
        }
        Command::Dns(args) => {
            braid_names::cli::start(&reactor, args).map_err(std::io::Error::other)
        }
        Command::Ssh(args) => braid_ssh::cli::start(&reactor, args).map_err(std::io::Error::other),
        Command::Socks(args) => {
            braid_proxy::cli::start_socks(&reactor, args).map_err(std::io::Error::other)
        }
        Command::Mail(args) => {
            braid_mail::cli::start(&reactor, *args).map_err(std::io::Error::other)
        }
        Command::Passwd(args) => {
            // A one-shot command: no reactor to run.
            return match braid_cred::cli::run_with(args, set_password_in_postgres) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("braid passwd: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    if let Err(e) = started {
        eprintln!("braid: {e}");
        return ExitCode::FAILURE;
    }
    // SIGINT/SIGTERM stop the reactor from a dispatch (a self-pipe in the
    // poller, no signal thread): listeners and connections close, shutdown
    // triggers run, then we exit.
    let r = reactor.clone();
    let _signals = match reactor.watch_signals(&[libc::SIGINT, libc::SIGTERM], move |sig| {
        tracing::info!(signal = sig, "shutting down");
        r.stop();
    }) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGINT/SIGTERM");
            None
        }
    };
    exit(reactor.run())
}

/// `braid passwd postgres://... USER`: the user's argon2 hash into the
/// database's `braid_users` table (braid-db's `PgPasswordChecker`), on a
/// reactor run just for it.
fn set_password_in_postgres(url: &str, user: &str, password: &str) -> std::io::Result<()> {
    let config = braid_db::postgres::PgConfig::parse(url).map_err(std::io::Error::other)?;
    let reactor = braid::Reactor::new()?;
    let pool = braid_db::postgres::PgPool::new(&reactor, config, 1);
    let users = braid_db::postgres::PgPasswordChecker::new(pool);
    let set = users.set_password(user, password);
    reactor
        .block_on(set)?
        .map_err(|f| std::io::Error::other(f.to_string()))
}
