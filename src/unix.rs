//! Unix-domain stream sockets: listening on a path (with a stale socket
//! file cleaned up and permissions set), connecting to one, and passing
//! file descriptors with `SCM_RIGHTS`. Datagram sockets on paths are in
//! [`datagram`](crate::datagram).

use std::fmt;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::connector::Connector;
use crate::listener::{start_listening, Listener};
use crate::protocol::{ClientFactory, Factory};
use crate::reactor::Reactor;
use crate::transport::Address;

/// Removes the socket file at `path` if it is still the one we bound.
pub(crate) fn remove_if_ours(path: &Path, ino: u64) {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() && m.ino() == ino {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Clears the way for binding `path`: a socket file nobody listens on
/// (left by a process that died) is removed; a live one is an error.
fn clear_stale(path: &Path) -> io::Result<()> {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return Ok(()); // nothing there
    };
    if !m.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by a listening process", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::debug!(path = %path.display(), "removing a stale socket file");
            std::fs::remove_file(path)
        }
        Err(e) => Err(e),
    }
}

/// Where and how to listen on a Unix socket.
#[derive(Clone, Debug)]
pub struct UnixListenOptions {
    /// Permission bits for the socket file (default 0o666 as Twisted, so
    /// the directory's permissions decide who may connect). Set with
    /// `chmod` right after `bind`.
    pub mode: u32,
    /// Remove a socket file nobody listens on before binding (default on).
    pub remove_stale: bool,
    /// The accept backlog (default 1024).
    pub backlog: i32,
}

impl Default for UnixListenOptions {
    fn default() -> Self {
        UnixListenOptions {
            mode: 0o666,
            remove_stale: true,
            backlog: 1024,
        }
    }
}

/// A listening Unix socket; its file is removed when it stops.
#[derive(Clone)]
pub struct UnixListeningPort {
    inner: Rc<Listener>,
    path: PathBuf,
}

impl UnixListeningPort {
    /// The socket file's path.
    #[doc(alias = "getHost")]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the socket and removes its file (if it is still ours).
    #[doc(alias = "stopListening")]
    pub fn stop_listening(&self) {
        self.inner.stop();
    }

    /// Whether the port still accepts connections.
    pub fn is_listening(&self) -> bool {
        self.inner.is_listening()
    }
}

impl fmt::Debug for UnixListeningPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListeningPort")
            .field("addr", self.inner.address())
            .field("listening", &self.is_listening())
            .finish()
    }
}

impl Reactor {
    /// Listens on a Unix stream socket at `path` with the default
    /// [`UnixListenOptions`] (Twisted's `listenUNIX`).
    #[doc(alias = "listenUNIX")]
    pub fn listen_unix(
        &self,
        path: impl AsRef<Path>,
        factory: impl Factory,
    ) -> io::Result<UnixListeningPort> {
        self.listen_unix_with(path, factory, &UnixListenOptions::default())
    }

    /// Listens on a Unix stream socket at `path`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if another process listens there; `AlreadyExists` if
    /// the path is something other than a socket; the OS's error
    /// otherwise.
    pub fn listen_unix_with(
        &self,
        path: impl AsRef<Path>,
        factory: impl Factory,
        options: &UnixListenOptions,
    ) -> io::Result<UnixListeningPort> {
        let path = path.as_ref().to_path_buf();
        if options.remove_stale {
            clear_stale(&path)?;
        }
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.bind(&SockAddr::unix(&path)?)?;
        let ino = std::fs::symlink_metadata(&path)?.ino();
        let set_up = (|| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(options.mode))?;
            socket.listen(options.backlog)?;
            socket.set_nonblocking(true)
        })();
        if let Err(e) = set_up {
            remove_if_ours(&path, ino);
            return Err(e);
        }
        let addr = Address::Unix(Some(path.clone()));
        match start_listening(
            self,
            socket,
            addr,
            Some((path.clone(), ino)),
            Box::new(factory),
        ) {
            Ok(inner) => Ok(UnixListeningPort { inner, path }),
            Err(e) => {
                remove_if_ours(&path, ino);
                Err(e)
            }
        }
    }

    /// Connects to the Unix stream socket at `path` (Twisted's
    /// `connectUNIX`); the factory hears of success or failure as for TCP.
    #[doc(alias = "connectUNIX")]
    pub fn connect_unix(
        &self,
        path: impl AsRef<Path>,
        factory: impl ClientFactory,
        timeout: Option<Duration>,
    ) -> Connector {
        let addr = Address::Unix(Some(path.as_ref().to_path_buf()));
        let c = Connector::new(self, addr, None, Box::new(factory), timeout);
        c.connect();
        c
    }
}
