//! `braid`: serve braid's batteries from the shell, as Twisted's `twist`.
//!
//! ```text
//! braid chat --port 6667             an IRC server
//! braid canvas --port 7070           a shared canvas (demo-winit's server)
//! braid passwd FILE USER             add or change a user in a password file
//! braid web --path DIR               serve a directory over HTTP
//! braid web --proxy /api=URL         ... with a reverse proxy mounted at /api
//! braid web --forward-proxy          an HTTP forward proxy with CONNECT
//! braid --help                       every subcommand
//! ```
//!
//! Each subcommand is a variant of [`Command`] and a function that sets up
//! listeners on the reactor; `main` runs the reactor and stops it cleanly
//! on SIGINT or SIGTERM. Adding a battery means adding both.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use braid::Reactor;
use braid_irc::{IrcServer, ServerConfig};
use clap::{Args, Parser, Subcommand};

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
    Chat(ChatArgs),
    /// A shared-canvas server for demo-winit clients (strokes and
    /// cursors, a rate limit per client, the picture for late joiners).
    Canvas(CanvasArgs),
    /// Add or change a user's password in a password file (argon2id
    /// hashes, for cred's PasswordFileChecker). The password is read from
    /// the terminal without echo (twice), or as one line from stdin.
    Passwd(PasswdArgs),
    /// An HTTP server: static files (ranges, conditional requests,
    /// listings), reverse proxies mounted at paths, or a forward proxy
    /// with CONNECT tunnels (loopback clients only unless --allow).
    Web(WebArgs),
}

#[derive(Args)]
struct WebArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Directory (or file) to serve.
    #[arg(long)]
    path: Option<std::path::PathBuf>,
    /// Do not list directories without an index.html (403 instead).
    #[arg(long)]
    no_listing: bool,
    /// Mount a reverse proxy: `/prefix=http://backend:port/path`, or a
    /// bare URL for the whole site (repeatable).
    #[arg(long = "proxy", value_name = "PREFIX=URL")]
    proxies: Vec<String>,
    /// Be a forward proxy (absolute-form requests and CONNECT tunnels)
    /// instead of serving files.
    #[arg(long)]
    forward_proxy: bool,
    /// Forward proxy: also serve clients in this network (`10.0.0.0/8`;
    /// repeatable). Loopback clients are always served.
    #[arg(long = "allow", value_name = "CIDR")]
    allow: Vec<String>,
    /// HTTPS: certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// HTTPS: private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

fn web(reactor: &Reactor, args: WebArgs) -> std::io::Result<()> {
    use braid_web::{Agent, File, ForwardProxy, ReverseProxy, Site, Tree};
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
        match (&args.path, whole_site) {
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
                tree = tree.fallback(File::new(path).listings(!args.no_listing));
            }
            (None, Some(proxy)) => tree = tree.fallback(proxy),
            (None, None) if args.proxies.is_empty() => {
                return Err(bad(
                    "say what to serve: --path DIR, --proxy, or --forward-proxy".into(),
                ))
            }
            (None, None) => {}
        }
        (Site::new(tree), what.join(", "))
    };
    let addr = SocketAddr::new(args.host, args.port);
    let (port, scheme) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let cfg = braid_tls::ServerConfig::from_pem_files(cert, key)
                .map_err(|e| bad(e.to_string()))?;
            (site.listen_tls(reactor, addr, &cfg)?, "https")
        }
        _ => (reactor.listen_tcp(addr, site)?, "http"),
    };
    println!("braid web: {scheme}://{} ({what})", port.local_addr());
    tracing::info!(addr = %port.local_addr(), "web server listening");
    Ok(())
}

#[derive(Args)]
struct PasswdArgs {
    /// The password file (created with mode 0600 if missing).
    file: std::path::PathBuf,
    /// The user to add or change.
    user: String,
}

/// Reads a line from stdin; from a terminal, without echo.
fn read_secret(prompt: &str) -> std::io::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut saved: Option<libc::termios> = None;
    if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) == 0 {
                saved = Some(t);
                t.c_lflag &= !libc::ECHO;
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn passwd(args: PasswdArgs) -> std::io::Result<()> {
    use std::io::IsTerminal;
    let password = read_secret(&format!("New password for {}: ", args.user))?;
    if std::io::stdin().is_terminal() {
        let again = read_secret("Again: ")?;
        if again != password {
            return Err(std::io::Error::other("the passwords differ"));
        }
    }
    if password.is_empty() {
        return Err(std::io::Error::other("an empty password is not allowed"));
    }
    braid_cred::set_password(&args.file, &args.user, &password)?;
    println!("braid passwd: {} set in {}", args.user, args.file.display());
    Ok(())
}

#[derive(Args)]
struct CanvasArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 7070)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Keep the picture in this file (appended to, loaded at start).
    #[arg(long)]
    save: Option<std::path::PathBuf>,
    /// Messages (cursor moves, strokes) per second per client.
    #[arg(long, default_value_t = 240.0)]
    rate: f64,
    /// Points the picture keeps; the oldest strokes go first.
    #[arg(long, default_value_t = 1_000_000)]
    max_points: usize,
}

fn canvas(reactor: &Reactor, args: CanvasArgs) -> std::io::Result<()> {
    let mut config = demo_winit::server::ServerConfig::default();
    config.save = args.save;
    config.rate_per_second = args.rate.max(1.0);
    config.burst = config.rate_per_second * 2.0;
    config.max_points = args.max_points;
    let server = demo_winit::server::CanvasServer::new(reactor, config)?;
    let port = server.listen(SocketAddr::new(args.host, args.port))?;
    println!("braid canvas: listening on {}", port.local_addr());
    tracing::info!(addr = %port.local_addr(), strokes = server.stroke_count(), "canvas server listening");
    Ok(())
}

#[derive(Args)]
struct ChatArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 6667)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The server's name in its messages.
    #[arg(long, default_value = "braid.irc")]
    name: String,
    /// A message-of-the-day line (repeatable).
    #[arg(long)]
    motd: Vec<String>,
    /// Require this password (PASS) from clients.
    #[arg(long, env = "BRAID_CHAT_PASSWORD")]
    password: Option<String>,
    /// Keep channel history in this SQLite file and replay it on join.
    #[arg(long)]
    history: Option<std::path::PathBuf>,
    /// Messages of history kept per channel.
    #[arg(long, default_value_t = 100)]
    history_lines: usize,
}

fn chat(reactor: &Reactor, args: ChatArgs) -> std::io::Result<()> {
    let mut config = ServerConfig::default();
    config.name = args.name;
    if !args.motd.is_empty() {
        config.motd = args.motd;
    }
    if let Some(pw) = args.password {
        config.password = Some(std::rc::Rc::new(braid_cred::SharedPasswordChecker::new(
            &pw,
        )));
    }
    if let Some(path) = &args.history {
        let pool = braid_db::ConnectionPool::sqlite(reactor, path, 1);
        config.history = Some(braid_irc::History::new(pool, args.history_lines));
    }
    let server = IrcServer::new(config);
    let port = server.listen(reactor, SocketAddr::new(args.host, args.port))?;
    // First line on stdout: where we listen (scripts and tests read it).
    println!("braid chat: IRC on {}", port.local_addr());
    tracing::info!(addr = %port.local_addr(), "IRC server listening");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("braid: cannot create the reactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = match cli.command {
        Command::Chat(args) => chat(&reactor, args),
        Command::Canvas(args) => canvas(&reactor, args),
        Command::Web(args) => web(&reactor, args),
        Command::Passwd(args) => {
            // A one-shot command: no reactor to run.
            return match passwd(args) {
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
    // SIGINT/SIGTERM stop the reactor through its Send handle: listeners
    // and connections close, shutdown triggers run, then we exit.
    let handle = reactor.handle();
    match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(mut signals) => {
            std::thread::Builder::new()
                .name("braid-signals".into())
                .spawn(move || {
                    if let Some(sig) = signals.forever().next() {
                        tracing::info!(signal = sig, "shutting down");
                        handle.stop();
                    }
                })
                .expect("start the signal thread");
        }
        Err(e) => tracing::warn!(error = %e, "cannot watch SIGINT/SIGTERM"),
    }
    match reactor.run() {
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
