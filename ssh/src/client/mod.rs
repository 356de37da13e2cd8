//! The SSH client (Twisted's `conch.client`): connect, check the host key
//! against `known_hosts`, log in by key or password, then run commands
//! (output collected, or any braid protocol on the session channel, with
//! a terminal if asked) and forward local ports, all on the reactor's
//! thread. Results are [`Deferred`]s, which are futures too.

mod conn;
mod known_hosts;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use braid::{Deferred, ListeningPort, Protocol, Reactor};
use ssh_key::PrivateKey;
use sunset::SignKey;

use crate::channel::{ExitReport, PtyRequest};
pub(crate) use conn::ClientInner;

/// A key to log in with (an OpenSSH private key, unencrypted, ed25519).
#[derive(Clone)]
pub struct ClientKey(pub(crate) SignKey);

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientKey(..)")
    }
}

impl ClientKey {
    /// The key in an OpenSSH private key file (`~/.ssh/id_ed25519`).
    ///
    /// # Errors
    ///
    /// The file cannot be read, is encrypted, or holds another algorithm.
    pub fn from_openssh_file(path: impl AsRef<Path>) -> io::Result<ClientKey> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)?;
        let bad = |e: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        };
        let k = PrivateKey::from_openssh(&text).map_err(|e| bad(e.to_string()))?;
        if k.is_encrypted() {
            return Err(bad("encrypted keys are not supported yet".into()));
        }
        SignKey::try_from(k)
            .map(ClientKey)
            .map_err(|e| bad(e.to_string()))
    }
}

/// How the server's host key is checked.
#[derive(Clone, Debug)]
pub enum HostKeyPolicy {
    /// Against an OpenSSH `known_hosts` file: a listed host with another
    /// key is [`SshError::HostKeyChanged`]; an unlisted one is
    /// [`SshError::HostKeyUnknown`], or added to the file when
    /// `accept_new` (OpenSSH's `StrictHostKeyChecking=accept-new`).
    KnownHosts {
        /// The file.
        path: PathBuf,
        /// Trust and remember a host seen for the first time.
        accept_new: bool,
    },
    /// Exactly this key (`ssh-ed25519 AAAA...`).
    Exactly(String),
    /// Any key: no protection against a man in the middle. For tests.
    InsecureAcceptAny,
}

/// Who to log in as, how, and what to trust.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SshClientConfig {
    /// The user name.
    pub username: String,
    /// A password to try after the keys.
    pub password: Option<String>,
    /// Keys to try, in order.
    pub keys: Vec<ClientKey>,
    /// How the host key is checked.
    pub host_keys: HostKeyPolicy,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl SshClientConfig {
    /// `username`, checking hosts against `known_hosts`, no keys or
    /// password yet.
    pub fn new(username: impl Into<String>, known_hosts: impl Into<PathBuf>) -> Self {
        SshClientConfig {
            username: username.into(),
            password: None,
            keys: Vec::new(),
            host_keys: HostKeyPolicy::KnownHosts {
                path: known_hosts.into(),
                accept_new: false,
            },
            connect_timeout: Duration::from_secs(30),
        }
    }

    /// Adds a key to try.
    pub fn key(mut self, key: ClientKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Sets the password to try.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets how host keys are checked.
    pub fn host_keys(mut self, policy: HostKeyPolicy) -> Self {
        self.host_keys = policy;
        self
    }
}

/// Why a connection or a session failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SshError {
    /// The TCP connection failed.
    Connect(String),
    /// `known_hosts` lists the host with another key: possibly a man in
    /// the middle. The server's key fingerprint is given.
    HostKeyChanged {
        /// `[host]:port` as in `known_hosts`.
        host: String,
        /// SHA-256 fingerprint of the key the server showed.
        fingerprint: String,
    },
    /// The host is not in `known_hosts` (and new hosts are not accepted).
    HostKeyUnknown {
        /// `[host]:port` as in `known_hosts`.
        host: String,
        /// SHA-256 fingerprint of the key the server showed.
        fingerprint: String,
    },
    /// No key or password was accepted.
    AuthFailed,
    /// The server or the SSH layer broke the protocol.
    Protocol(String),
    /// The connection closed.
    Closed,
    /// The server refused to open a channel.
    ChannelRefused,
}

impl fmt::Display for SshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshError::Connect(e) => write!(f, "cannot connect: {e}"),
            SshError::HostKeyChanged { host, fingerprint } => write!(
                f,
                "the host key of {host} changed (now {fingerprint}): refusing to connect"
            ),
            SshError::HostKeyUnknown { host, fingerprint } => {
                write!(f, "{host} is not a known host (its key is {fingerprint})")
            }
            SshError::AuthFailed => f.write_str("permission denied: no key or password accepted"),
            SshError::Protocol(e) => write!(f, "SSH protocol error: {e}"),
            SshError::Closed => f.write_str("the connection closed"),
            SshError::ChannelRefused => f.write_str("the server refused the channel"),
        }
    }
}

impl std::error::Error for SshError {}

/// A Deferred cancelled or a callback that panicked.
impl From<braid::Failure> for SshError {
    fn from(f: braid::Failure) -> SshError {
        SshError::Protocol(format!("{f:?}"))
    }
}

/// What to run on a new session channel.
#[derive(Clone, Debug, Default)]
pub struct SessionRequest {
    /// `exec` this; `None` asks for a shell.
    pub command: Option<String>,
    /// A terminal of this type and size first (`pty-req`).
    pub pty: Option<PtyRequest>,
    /// Environment variables to ask for (`env`; servers accept few:
    /// OpenSSH only its `AcceptEnv` list, braid's avatars `LANG`, `LC_*`).
    pub env: Vec<(String, String)>,
}

/// A command's output and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// What it wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
    /// Its exit status or signal, if the server said.
    pub exit: Option<ExitReport>,
}

/// A logged-in SSH connection. Clone freely; it closes when
/// [`disconnect`](Self::disconnect) is called or the server goes.
#[derive(Clone)]
pub struct SshClient {
    pub(crate) inner: Rc<ClientInner>,
}

impl fmt::Debug for SshClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshClient").finish_non_exhaustive()
    }
}

impl SshClient {
    /// Connects to `host:port`, checks the host key, logs in: the
    /// Deferred fires with the client once logged in.
    ///
    /// ```no_run
    /// use braid::Reactor;
    /// use braid_ssh::{ClientKey, SshClient, SshClientConfig};
    ///
    /// let reactor = Reactor::new()?;
    /// let config = SshClientConfig::new("alice", "/home/alice/.ssh/known_hosts")
    ///     .key(ClientKey::from_openssh_file("/home/alice/.ssh/id_ed25519")?);
    /// let r = reactor.clone();
    /// reactor.spawn_local(async move {
    ///     match SshClient::connect(&r, "example.org", 22, config).await {
    ///         Ok(ssh) => {
    ///             let out = ssh.exec("uptime").await;
    ///             println!("{out:?}");
    ///         }
    ///         Err(e) => eprintln!("{e}"),
    ///     }
    ///     r.stop();
    /// });
    /// reactor.run()?;
    /// # std::io::Result::Ok(())
    /// ```
    pub fn connect(
        reactor: &Reactor,
        host: &str,
        port: u16,
        config: SshClientConfig,
    ) -> Deferred<SshClient, SshError> {
        conn::connect(reactor, host, port, config)
    }

    /// Runs `command` (stdin empty), collecting stdout, stderr and the
    /// exit status.
    pub fn exec(&self, command: &str) -> Deferred<ExecOutput, SshError> {
        conn::exec(self, command)
    }

    /// Opens a session channel running `request`, with `protocol` on it:
    /// the remote stdout is its data, its writes the remote stdin;
    /// `transport.layer::<SessionChannel>()` gives stderr
    /// ([`on_stderr`](crate::SessionChannel::on_stderr)) and the exit
    /// ([`remote_exit`](crate::SessionChannel::remote_exit)).
    ///
    /// # Errors
    ///
    /// [`SshError::Closed`] once disconnected, or the channel table full.
    pub fn session(
        &self,
        request: SessionRequest,
        protocol: impl Protocol,
    ) -> Result<(), SshError> {
        self.inner.open_session(request, Box::new(protocol))
    }

    /// Local forwarding (`ssh -L`): connections to `listen` are carried to
    /// `host:port` as seen from the server.
    ///
    /// # Errors
    ///
    /// The listener's error.
    pub fn forward_local(
        &self,
        listen: SocketAddr,
        host: &str,
        port: u16,
    ) -> io::Result<ListeningPort> {
        self.inner.forward_local(listen, host, port)
    }

    /// Closes the connection.
    pub fn disconnect(&self) {
        self.inner.disconnect();
    }
}
