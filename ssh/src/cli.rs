//! `braid ssh` (feature `cli`): an SSH server whose sessions run as the
//! server's own user, for the `braid` command.

use std::net::IpAddr;
#[cfg(unix)]
use std::net::SocketAddr;
use std::path::PathBuf;

use braid::Reactor;
#[cfg(unix)]
use braid_cred::{PasswordFileChecker, Portal};
use clap::Args;

#[cfg(unix)]
use crate::{AuthorizedKeysChecker, HostKey, ProcessAvatar, SshServer, SshServerConfig};

/// `braid ssh`: an SSH server (commands and shells on a pty, as the
/// server's user, like Twisted's `conch` with one avatar).
#[derive(Args, Debug, Clone)]
pub struct SshArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 2222)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The host key (an OpenSSH ed25519 private key); made and saved
    /// there, with its .pub, if missing.
    #[arg(long)]
    pub host_key: PathBuf,
    /// The argon2 password file of `braid passwd`: who may log in, and
    /// their passwords.
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// An authorized_keys file whose keys log in as any user of --users.
    #[arg(long, conflicts_with = "authorized_keys_dir", requires = "users")]
    pub authorized_keys: Option<PathBuf>,
    /// A directory of authorized_keys files, `DIR/<user>`.
    #[arg(long)]
    pub authorized_keys_dir: Option<PathBuf>,
    /// The shell that runs commands (`SHELL -c COMMAND`) and sessions.
    #[arg(long, default_value = "/bin/sh")]
    pub shell: String,
    /// Serve `sftp` and `scp` over this directory (clients see it as /).
    #[arg(long)]
    pub sftp_root: Option<PathBuf>,
    /// Failed logins before a connection is dropped.
    #[arg(long, default_value_t = 6)]
    pub max_auth_tries: u32,
}

/// Starts `braid ssh` on `reactor`: on Windows, an error that says why
/// not.
///
/// # Errors
///
/// Always, on Windows.
#[cfg(not(unix))]
pub fn start(_: &Reactor, _: SshArgs) -> Result<(), String> {
    Err(
        "braid ssh runs sessions as processes on pseudo-terminals, which braid offers on Unix only"
            .into(),
    )
}

/// Starts `braid ssh` on `reactor`.
///
/// # Errors
///
/// No way to log in was given, the host key cannot be read or made, or
/// the listener's error.
#[cfg(unix)]
pub fn start(reactor: &Reactor, args: SshArgs) -> Result<(), String> {
    if args.users.is_none() && args.authorized_keys_dir.is_none() {
        return Err("nobody could log in: give --users, --authorized-keys-dir, or both".into());
    }
    let key = HostKey::load_or_generate(&args.host_key).map_err(|e| e.to_string())?;
    let mut avatar = ProcessAvatar::new().with_shell(args.shell.clone());
    if let Some(root) = &args.sftp_root {
        avatar = avatar.sftp_root(root);
    }
    let mut portal = Portal::new(reactor, move |_user: &str, _: ()| (avatar.clone(), None));
    let config = SshServerConfig {
        max_auth_tries: args.max_auth_tries,
        password_auth: args.users.is_some(),
        pubkey_auth: args.authorized_keys.is_some() || args.authorized_keys_dir.is_some(),
        ..SshServerConfig::default()
    };
    if let Some(users) = &args.users {
        portal = portal.checker(PasswordFileChecker::new(users));
        if let Some(keys) = &args.authorized_keys {
            portal = portal.checker(AuthorizedKeysChecker::file_for_users_in(keys, users));
        }
    }
    if let Some(dir) = &args.authorized_keys_dir {
        portal = portal.checker(AuthorizedKeysChecker::dir(dir));
    }
    let fingerprint = key.fingerprint();
    let server = SshServer::with_config(reactor, vec![key], portal, config);
    let addr = SocketAddr::new(args.host, args.port);
    let port = reactor
        .listen_tcp(addr, server)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    // First line on stdout: where we listen (scripts and tests read it).
    println!("braid ssh: listening on {}", port.local_addr());
    tracing::info!(addr = %port.local_addr(), %fingerprint, "ssh listening");
    Ok(())
}
