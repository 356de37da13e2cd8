//! The SSH server: a braid [`Factory`] whose connections run sunset's
//! server state machine, log users in through a cred [`Portal`], and run
//! each session channel's [`Protocol`] (from the user's [`Avatar`]) on the
//! channel as a transport.

mod conn;
mod events;

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use braid::{Address, Factory, Protocol, Reactor};
use braid_cred::Portal;

use crate::keys::HostKey;
use crate::session::Avatar;

/// Limits and choices of an [`SshServer`]. The defaults are OpenSSH's.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SshServerConfig {
    /// Failed logins (passwords and signed keys) before the connection is
    /// dropped (OpenSSH's `MaxAuthTries`, 6).
    pub max_auth_tries: u32,
    /// Time to log in before the connection is dropped (OpenSSH's
    /// `LoginGraceTime`, 120 s).
    pub login_grace: Duration,
    /// Channels open at once on one connection (OpenSSH's `MaxSessions`,
    /// 10; sunset's table holds 16).
    pub max_channels: usize,
    /// Offer password logins.
    pub password_auth: bool,
    /// Offer public-key logins.
    pub pubkey_auth: bool,
    /// Bytes read from the client and not yet taken by the SSH layer
    /// before reading pauses.
    pub max_pending_input: usize,
    /// A new key exchange after this many bytes either way (RFC 4253 9;
    /// 1 GiB, what OpenSSH uses with chacha20-poly1305).
    pub rekey_after_bytes: u64,
    /// And after this long (RFC 4253 9 suggests an hour).
    pub rekey_after: Option<Duration>,
}

impl Default for SshServerConfig {
    fn default() -> Self {
        SshServerConfig {
            max_auth_tries: 6,
            login_grace: Duration::from_secs(120),
            max_channels: 10,
            password_auth: true,
            pubkey_auth: true,
            max_pending_input: 256 * 1024,
            rekey_after_bytes: 1 << 30,
            rekey_after: Some(Duration::from_secs(3600)),
        }
    }
}

pub(crate) struct Shared<A> {
    pub(crate) reactor: Reactor,
    pub(crate) host_keys: Vec<HostKey>,
    pub(crate) portal: Portal<A, ()>,
    pub(crate) config: SshServerConfig,
}

/// An SSH server (Twisted's `SSHFactory` with a conch portal): give it to
/// [`Reactor::listen_tcp`] (or any listener). Users log in through the
/// portal's checkers (a `braid passwd` file, an
/// [`AuthorizedKeysChecker`](crate::AuthorizedKeysChecker)); its realm
/// makes each user's [`Avatar`], which says what `exec`, `shell` and
/// subsystems run.
///
/// ```no_run
/// use braid::Reactor;
/// use braid_cred::{PasswordFileChecker, Portal};
/// use braid_ssh::{AuthorizedKeysChecker, HostKey, ProcessAvatar, SshServer};
///
/// let reactor = Reactor::new()?;
/// let portal = Portal::new(&reactor, |_user: &str, _: ()| (ProcessAvatar::new(), None))
///     .checker(PasswordFileChecker::new("users.passwd"))
///     .checker(AuthorizedKeysChecker::dir("authorized_keys"));
/// let host_key = HostKey::load_or_generate("ssh_host_ed25519_key")?;
/// let server = SshServer::new(&reactor, vec![host_key], portal);
/// reactor.listen_tcp("0.0.0.0:2222".parse().unwrap(), server)?;
/// reactor.run()?;
/// # std::io::Result::Ok(())
/// ```
pub struct SshServer<A> {
    shared: Rc<Shared<A>>,
}

impl<A> Clone for SshServer<A> {
    fn clone(&self) -> Self {
        SshServer {
            shared: self.shared.clone(),
        }
    }
}

impl<A> fmt::Debug for SshServer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshServer")
            .field("host_keys", &self.shared.host_keys)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl<A: Avatar> SshServer<A> {
    /// A server with these host keys (at least one) and logins through
    /// `portal`, with OpenSSH's limits.
    ///
    /// # Panics
    ///
    /// If `host_keys` is empty.
    pub fn new(reactor: &Reactor, host_keys: Vec<HostKey>, portal: Portal<A, ()>) -> Self {
        SshServer::with_config(reactor, host_keys, portal, SshServerConfig::default())
    }

    /// [`new`](Self::new) with other limits.
    ///
    /// # Panics
    ///
    /// If `host_keys` is empty.
    pub fn with_config(
        reactor: &Reactor,
        host_keys: Vec<HostKey>,
        portal: Portal<A, ()>,
        config: SshServerConfig,
    ) -> Self {
        assert!(!host_keys.is_empty(), "an SSH server needs a host key");
        SshServer {
            shared: Rc::new(Shared {
                reactor: reactor.clone(),
                host_keys,
                portal,
                config,
            }),
        }
    }

    /// The protocol for one connection, for a transport made some other
    /// way (a test's in-memory pair, an adopted socket).
    pub fn connection(&self) -> Box<dyn Protocol> {
        Box::new(conn::ServerConnection::new(self.shared.clone()))
    }
}

impl<A: Avatar> Factory for SshServer<A> {
    fn build_protocol(&mut self, _addr: &Address) -> Option<Box<dyn Protocol>> {
        Some(self.connection())
    }
}

// The tests log in to a ProcessAvatar, which is Unix only.
#[cfg(all(test, unix))]
mod tests;
