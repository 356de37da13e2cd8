//! A small `ssh`: `HOST[:PORT] COMMAND...` runs the command over SSH on
//! braid's reactor and exits with its status. Logs in as `$USER` with
//! `~/.ssh/id_ed25519` (or `--key FILE`) and/or `--password-env VAR`,
//! checking the host against `~/.ssh/known_hosts` (`--accept-new` adds
//! a host seen for the first time, as OpenSSH's `accept-new`).
//!
//! ```text
//! cargo run -p braid-ssh --example ssh -- localhost:2222 uname -a
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use braid::Reactor;
use braid_ssh::{ClientKey, ExitReport, HostKeyPolicy, SshClient, SshClientConfig};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/".into()));
    let mut key = home.join(".ssh/id_ed25519");
    let mut known = home.join(".ssh/known_hosts");
    let mut user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut password = None;
    let mut accept_new = false;
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        let mut value = || {
            if args.is_empty() {
                None
            } else {
                Some(args.remove(0))
            }
        };
        match flag.as_str() {
            "--key" => key = value().map(PathBuf::from).unwrap_or(key),
            "--known-hosts" => known = value().map(PathBuf::from).unwrap_or(known),
            "--user" => user = value().unwrap_or(user),
            "--password-env" => password = value().and_then(|v| std::env::var(v).ok()),
            "--accept-new" => accept_new = true,
            _ => {
                eprintln!("ssh: unknown option {flag}");
                return ExitCode::from(255);
            }
        }
    }
    if args.len() < 2 {
        eprintln!("usage: ssh [--user U] [--key FILE] [--known-hosts FILE] [--password-env VAR] [--accept-new] HOST[:PORT] COMMAND...");
        return ExitCode::from(255);
    }
    let target = args.remove(0);
    let command = args.join(" ");
    let (host, port) = match target.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(22)),
        None => (target, 22),
    };
    let mut config = SshClientConfig::new(user, &known).host_keys(HostKeyPolicy::KnownHosts {
        path: known.clone(),
        accept_new,
    });
    if let Ok(k) = ClientKey::from_openssh_file(&key) {
        config = config.key(k);
    }
    if let Some(p) = password {
        config = config.password(p);
    }
    let reactor = Reactor::new().expect("a reactor");
    let r = reactor.clone();
    let result = reactor.block_on(async move {
        let ssh = SshClient::connect(&r, &host, port, config).await?;
        let out = ssh.exec(&command).await;
        ssh.disconnect();
        out
    });
    match result {
        Ok(Ok(out)) => {
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
            match out.exit {
                Some(ExitReport::Status(s)) => ExitCode::from(s.min(255) as u8),
                Some(ExitReport::Signal { name, .. }) => {
                    eprintln!("ssh: the command was killed by SIG{name}");
                    ExitCode::from(255)
                }
                None => ExitCode::from(255),
            }
        }
        Ok(Err(e)) => {
            eprintln!("ssh: {e}");
            ExitCode::from(255)
        }
        Err(e) => {
            eprintln!("ssh: {e}");
            ExitCode::from(255)
        }
    }
}
