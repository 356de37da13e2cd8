//! `demo-gtk`: braid's GTK4 chat client.
//!
//! ```text
//! demo-gtk                      serve a chat from this window and join it
//! demo-gtk HOST[:PORT]          join someone else's (connect form prefilled)
//! ```
//!
//! Options: `--tls` (IRC over TLS, usually port 6697), `--nick N`,
//! `--channel C`, `--password P`, `--history FILE`
//! (SQLite chat log), `--listen ADDR` (where the embedded server listens,
//! default 127.0.0.1:0), `--connect` (skip the form), `--echo` (print what
//! the window shows, for tests).

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use braid::Reactor;
use demo_gtk::ui::{add_quit_action, App, Options};
use gtk4 as gtk;
use gtk4::prelude::*;
use gtk4::{gio, glib};

const USAGE: &str =
    "usage: demo-gtk [HOST[:PORT]] [--tls] [--nick N] [--channel C] [--password P] \
[--history FILE] [--listen ADDR] [--connect] [--echo]

With no HOST, braid's IRC server runs inside this window (on --listen,
default 127.0.0.1 and a free port) and the client joins it; a second
demo-gtk joins with the address it prints.";

fn default_nick() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    let nick: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
        .take(16)
        .collect();
    if braid_irc::is_valid_nick(&nick) && nick != "root" {
        nick
    } else {
        format!("guest{}", std::process::id() % 1000)
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        server: None,
        nick: default_nick(),
        channel: "#braid".into(),
        password: None,
        tls: false,
        history: demo_gtk::history::default_path(),
        listen: "127.0.0.1:0".parse().unwrap(),
        connect: false,
        echo: false,
    };
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--nick" => opts.nick = value("--nick")?,
            "--channel" => opts.channel = value("--channel")?,
            "--password" => opts.password = Some(value("--password")?),
            "--tls" => opts.tls = true,
            "--history" => opts.history = PathBuf::from(value("--history")?),
            "--listen" => {
                let v = value("--listen")?;
                opts.listen = v.parse().map_err(|_| {
                    format!("--listen wants an address like 127.0.0.1:6667, not {v}")
                })?;
            }
            "--connect" => opts.connect = true,
            "--echo" => opts.echo = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => {
                let (host, port) = match s.rsplit_once(':') {
                    // "::1" alone is an address, not host "::" port 1.
                    Some((h, p)) if !h.is_empty() && !h.ends_with(':') => {
                        let port = p.parse().map_err(|_| format!("bad port in {s}"))?;
                        (h.trim_matches(['[', ']']).to_owned(), port)
                    }
                    _ => (s.to_owned(), 6667),
                };
                opts.server = Some((host, port));
            }
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BRAID_LOG")
                .unwrap_or_else(|_| "warn,demo_gtk=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("demo-gtk: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = gtk::init() {
        eprintln!("demo-gtk: cannot open a display ({e}); is DISPLAY or WAYLAND_DISPLAY set?");
        return ExitCode::from(1);
    }
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo-gtk: cannot make a reactor: {e}");
            return ExitCode::from(1);
        }
    };
    let attached = match braid_glib::attach(&reactor, &glib::MainContext::default()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo-gtk: cannot attach the reactor to GTK's loop: {e}");
            return ExitCode::from(1);
        }
    };
    // NON_UNIQUE: a second window is a second client (and maybe a second
    // server), not a message to the first process over D-Bus.
    let app = gtk::Application::builder()
        .application_id("org.braid.DemoGtk")
        .flags(gio::ApplicationFlags::NON_UNIQUE)
        .build();
    let a = app.clone();
    attached.on_stop(move || a.quit());
    let keep: Rc<RefCell<Option<Rc<App>>>> = Rc::default();
    let k = keep.clone();
    app.connect_activate(move |app| {
        if k.borrow().is_some() {
            return;
        }
        let window = App::build(app, &reactor, opts.clone());
        add_quit_action(app, &window);
        window.start();
        *k.borrow_mut() = Some(window);
    });
    let code = app.run_with_args::<&str>(&[]);
    drop(keep);
    drop(attached);
    if code == glib::ExitCode::SUCCESS {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn addresses_and_options() {
        let o = parse(&["irc.example.org:6697", "--nick", "ann", "--connect"]).unwrap();
        assert_eq!(o.server, Some(("irc.example.org".into(), 6697)));
        assert_eq!(o.nick, "ann");
        assert!(o.connect);
        assert!(!o.tls);
        assert!(parse(&["irc.example.org:6697", "--tls"]).unwrap().tls);
        assert_eq!(parse(&["irc.example.org"]).unwrap().server.unwrap().1, 6667);
        assert_eq!(
            parse(&["[::1]:7000"]).unwrap().server,
            Some(("::1".into(), 7000))
        );
        assert_eq!(parse(&["::1"]).unwrap().server, Some(("::1".into(), 6667)));
        assert!(parse(&[]).unwrap().server.is_none());
        assert!(parse(&["host:notaport"]).unwrap_err().contains("bad port"));
        assert!(parse(&["--nick"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--bogus"]).unwrap_err().contains("unknown option"));
        assert!(parse(&["--listen", "nope"])
            .unwrap_err()
            .contains("--listen"));
    }
}
