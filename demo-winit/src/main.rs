//! `demo-winit`: braid's shared canvas in a winit window.
//!
//! ```text
//! demo-winit                 serve a canvas from this window and join it
//! demo-winit HOST:PORT       join someone's canvas (braid canvas, or another demo-winit)
//! demo-winit --server-only   only the server, no window (the canvas server)
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use demo_winit::gui::{self, Options};
use demo_winit::server::{CanvasServer, ServerConfig};

const USAGE: &str =
    "usage: demo-winit [HOST:PORT] [--name NAME] [--listen ADDR] [--save FILE] [--echo]
       demo-winit --server-only [--listen ADDR] [--save FILE] [--rate PER_SECOND] [--max-points N]

With no HOST:PORT, the window serves a canvas (on --listen, default
127.0.0.1 and a free port) and joins it; a second demo-winit joins with
the address it prints. Draw with the left button; Escape quits.
--server-only serves the canvas without a window: --rate limits each
client's messages per second (default 240), --max-points how many points
the picture keeps (default 1,000,000; the oldest strokes go first).";

#[derive(Debug)]
struct Args {
    opts: Options,
    server_only: bool,
    /// Messages per second per client (server only).
    rate: f64,
    /// Points the picture keeps (server only).
    max_points: usize,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let user = std::env::var("USER").unwrap_or_default();
    let mut a = Args {
        opts: Options {
            server: None,
            name: if user.is_empty() || user == "root" {
                format!("user{}", std::process::id() % 1000)
            } else {
                user
            },
            listen: "127.0.0.1:0".parse().unwrap(),
            save: None,
            echo: false,
        },
        server_only: false,
        rate: 240.0,
        max_points: 1_000_000,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--name" => a.opts.name = value("--name")?,
            "--listen" => {
                let v = value("--listen")?;
                a.opts.listen = v.parse().map_err(|_| {
                    format!("--listen wants an address like 127.0.0.1:7070, not {v}")
                })?;
            }
            "--save" => a.opts.save = Some(PathBuf::from(value("--save")?)),
            "--echo" => a.opts.echo = true,
            "--server-only" => a.server_only = true,
            "--rate" => {
                let v = value("--rate")?;
                a.rate = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .ok_or(format!("--rate wants messages per second, not {v}"))?;
            }
            "--max-points" => {
                let v = value("--max-points")?;
                a.max_points = v
                    .parse()
                    .map_err(|_| format!("--max-points wants a count, not {v}"))?;
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => {
                let addr: SocketAddr = s
                    .to_socket_addrs()
                    .map_err(|e| format!("cannot resolve {s}: {e}"))?
                    .next()
                    .ok_or(format!("{s} resolves to no address"))?;
                a.opts.server = Some(addr);
            }
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BRAID_LOG")
                .unwrap_or_else(|_| "warn,demo_winit=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("demo-winit: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = if args.server_only {
        serve(&args)
    } else {
        gui::run(args.opts)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo-winit: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let opts = &args.opts;
    let reactor = braid::Reactor::new()?;
    let mut cfg = ServerConfig::default();
    cfg.save = opts.save.clone();
    cfg.echo = opts.echo;
    cfg.rate_per_second = args.rate.max(1.0);
    cfg.burst = cfg.rate_per_second * 2.0;
    cfg.max_points = args.max_points;
    let server = CanvasServer::new(&reactor, cfg)?;
    let port = server.listen(opts.listen)?;
    println!("braid canvas: listening on {}", port.local_addr());
    // SIGINT/SIGTERM end the run cleanly (the picture is saved as it goes).
    let r = reactor.clone();
    let _signals = reactor.watch_signals(&[libc::SIGINT, libc::SIGTERM], move |_| r.stop())?;
    reactor.run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Args, String> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let a = parse(&["127.0.0.1:7070", "--name", "ann", "--echo"]).unwrap();
        assert_eq!(a.opts.server, Some("127.0.0.1:7070".parse().unwrap()));
        assert_eq!(a.opts.name, "ann");
        assert!(a.opts.echo && !a.server_only);
        assert!(parse(&["--server-only"]).unwrap().server_only);
        let s = parse(&["--server-only", "--rate", "50", "--max-points", "9"]).unwrap();
        assert_eq!((s.rate, s.max_points), (50.0, 9));
        assert!(parse(&["--rate", "-1"]).unwrap_err().contains("--rate"));
        assert!(parse(&["--max-points", "x"])
            .unwrap_err()
            .contains("--max-points"));
        assert!(parse(&["--listen", "x"]).unwrap_err().contains("--listen"));
        assert!(parse(&["--what"]).unwrap_err().contains("unknown option"));
        assert!(parse(&["--name"]).unwrap_err().contains("needs a value"));
    }
}
