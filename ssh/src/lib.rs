//! # braid-ssh
//!
//! ```text
//!   TCP ──▶ SshServer ── sunset Runner (kex, ciphers, auth) ──▶ channels
//!            │   host keys (OpenSSH files)                       │
//!            └─▶ cred Portal ──▶ checkers (braid passwd file,    ├─ session: Avatar ─▶ Protocol
//!                               authorized_keys) ──▶ Avatar      │   (ProcessAvatar: $SHELL -c,
//!                                                                │    a real pty, exit status)
//!                                                                └─ each channel is a braid
//!                                                                   Transport (window = backpressure)
//! ```
//!
//! SSH servers for braid, in the manner of Twisted's `conch`: the SSH
//! protocol itself is [`sunset`]'s (curve25519 and ML-KEM hybrid key
//! exchange, ed25519 and ECDSA, chacha20-poly1305 and AES-GCM/CTR),
//! driven sans-IO on the reactor's thread; logins go through a
//! [`braid_cred::Portal`]; every session channel is a braid
//! [`Transport`](braid::Transport), so any braid protocol (a
//! `LineReceiver`, an IRC client, PB) runs over SSH unchanged, with the
//! SSH window as its producer/consumer backpressure.
//!
//! ```no_run
//! use braid::Reactor;
//! use braid_cred::{InMemoryChecker, Portal};
//! use braid_ssh::{HostKey, ProcessAvatar, SshServer};
//!
//! let reactor = Reactor::new()?;
//! // Every user who logs in runs commands as this process's user.
//! let portal = Portal::new(&reactor, |_user: &str, _: ()| (ProcessAvatar::new(), None))
//!     .checker(InMemoryChecker::new().user("alice", "correct horse"));
//! let key = HostKey::load_or_generate("ssh_host_ed25519_key")?;
//! reactor.listen_tcp("127.0.0.1:2222".parse().unwrap(), SshServer::new(&reactor, vec![key], portal))?;
//! reactor.run()?; // ssh -p 2222 alice@127.0.0.1 uptime
//! # std::io::Result::Ok(())
//! ```
//!
//! What sunset lacked for a server (sending EOF, CLOSE, `exit-status` and
//! `exit-signal`; `window-change` and `signal`; answering a login
//! asynchronously; per-channel flow control; OpenSSH's window sizes) is
//! patched in `vendor/sunset` (`BRAID-PATCH.md`). Not yet here: the
//! client, `direct-tcpip`/`tcpip-forward`, SFTP, rekeying by this side.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod chanio;
mod channel;
#[cfg(feature = "cli")]
pub mod cli;
mod client;
mod forward;
mod keys;
mod posix_attrs;
#[cfg(unix)]
mod process_session;
#[cfg(unix)]
mod pty;
mod server;
mod session;
pub mod sftp;

pub use channel::{ExitReport, PtyRequest, SessionChannel, WindowSize, CHANNEL_HIGH_WATER};
pub use client::{
    ClientKey, ExecOutput, HostKeyPolicy, SessionRequest, SshClient, SshClientConfig, SshError,
};
pub use keys::{AuthorizedKeysChecker, HostKey};
#[cfg(unix)]
pub use process_session::{ProcessAvatar, ProcessSession};
pub use server::{SshServer, SshServerConfig};
pub use session::Avatar;
pub use sftp::SftpServer;
