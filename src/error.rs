//! Why a connection ended, and why one could not be made.

use std::error::Error;
use std::fmt;
use std::io;

/// What kind of end a connection came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseKind {
    /// Closed cleanly, by either side (Twisted's `ConnectionDone`).
    Done,
    /// The peer reset the connection, or a write hit a closed pipe.
    Reset,
    /// Closed at once by [`Transport::abort_connection`](crate::Transport::abort_connection).
    Aborted,
    /// The network or a protocol timeout gave up on the peer.
    TimedOut,
    /// A protocol callback panicked; the panic was logged.
    Panicked,
    /// The reactor shut down.
    Shutdown,
    /// Any other I/O error; see [`CloseReason::io_error`].
    Error,
    /// A security layer failed: a refused certificate, a peer that does
    /// not speak TLS, a cut without `close_notify`. The layer's error is
    /// behind [`CloseReason::io_error`] (`braid-tls` reads it back as a
    /// `TlsError`).
    Tls,
}

/// Why a connection was lost: the argument of
/// [`Protocol::connection_lost`](crate::Protocol::connection_lost).
#[derive(Debug)]
pub struct CloseReason {
    kind: CloseKind,
    error: Option<io::Error>,
}

impl CloseReason {
    /// A reason of the given kind, with no I/O error behind it.
    pub fn new(kind: CloseKind) -> Self {
        CloseReason { kind, error: None }
    }

    /// Classifies an I/O error.
    pub fn from_io(error: io::Error) -> Self {
        let kind = match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => CloseKind::Reset,
            io::ErrorKind::TimedOut => CloseKind::TimedOut,
            io::ErrorKind::UnexpectedEof => CloseKind::Done,
            _ => CloseKind::Error,
        };
        CloseReason {
            kind,
            error: Some(error),
        }
    }

    /// A reason of the given kind with the error behind it: a layer's own
    /// failure (a TLS error, say) travels as the `io::Error`'s inner error,
    /// where [`io_error`](Self::io_error) and a downcast find it.
    pub fn with_error(kind: CloseKind, error: io::Error) -> Self {
        CloseReason {
            kind,
            error: Some(error),
        }
    }

    /// What kind of close this was.
    pub fn kind(&self) -> CloseKind {
        self.kind
    }

    /// A clean close by either side.
    pub fn is_clean(&self) -> bool {
        self.kind == CloseKind::Done
    }

    /// Reset by the peer.
    pub fn is_reset(&self) -> bool {
        self.kind == CloseKind::Reset
    }

    /// Aborted locally.
    pub fn is_aborted(&self) -> bool {
        self.kind == CloseKind::Aborted
    }

    /// Timed out.
    pub fn is_timeout(&self) -> bool {
        self.kind == CloseKind::TimedOut
    }

    /// The I/O error behind it, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            CloseKind::Done => "connection closed cleanly",
            CloseKind::Reset => "connection reset by peer",
            CloseKind::Aborted => "connection aborted",
            CloseKind::TimedOut => "connection timed out",
            CloseKind::Panicked => "protocol callback panicked",
            CloseKind::Shutdown => "reactor shut down",
            CloseKind::Error => "connection lost",
            CloseKind::Tls => "TLS failure",
        };
        match &self.error {
            Some(e) => write!(f, "{what}: {e}"),
            None => f.write_str(what),
        }
    }
}

impl Error for CloseReason {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.as_ref().map(|e| e as _)
    }
}

/// What kind of failure a connection attempt met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectErrorKind {
    /// Nothing listens there (`ECONNREFUSED`).
    Refused,
    /// The attempt outlived its timeout.
    TimedOut,
    /// No route to the host or network.
    Unreachable,
    /// Stopped by [`Connector::stop_connecting`](crate::Connector::stop_connecting)
    /// or the reactor's shutdown.
    Cancelled,
    /// The factory declined to build a protocol.
    Declined,
    /// The host name did not resolve to any address.
    Unresolved,
    /// Any other I/O error.
    Other,
}

/// Why a connection attempt failed: the argument of
/// [`ClientFactory::client_connection_failed`](crate::ClientFactory::client_connection_failed).
#[derive(Debug)]
pub struct ConnectError {
    kind: ConnectErrorKind,
    error: Option<io::Error>,
}

impl ConnectError {
    /// An error of the given kind with no I/O error behind it.
    pub fn new(kind: ConnectErrorKind) -> Self {
        ConnectError { kind, error: None }
    }

    /// The host name did not resolve, for the reason given.
    pub fn unresolved(why: String) -> Self {
        ConnectError {
            kind: ConnectErrorKind::Unresolved,
            error: Some(io::Error::new(io::ErrorKind::NotFound, why)),
        }
    }

    /// The host name did not resolve: the resolver's error (a typed one
    /// stays inside, for `io_error().get_ref()` to find).
    pub fn unresolved_with(error: io::Error) -> Self {
        ConnectError {
            kind: ConnectErrorKind::Unresolved,
            error: Some(error),
        }
    }

    /// Classifies an I/O error.
    pub fn from_io(error: io::Error) -> Self {
        let kind = match error.kind() {
            io::ErrorKind::ConnectionRefused => ConnectErrorKind::Refused,
            io::ErrorKind::TimedOut => ConnectErrorKind::TimedOut,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                ConnectErrorKind::Unreachable
            }
            _ => ConnectErrorKind::Other,
        };
        ConnectError {
            kind,
            error: Some(error),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ConnectErrorKind {
        self.kind
    }

    /// Refused by the peer.
    pub fn is_refused(&self) -> bool {
        self.kind == ConnectErrorKind::Refused
    }

    /// Timed out.
    pub fn is_timeout(&self) -> bool {
        self.kind == ConnectErrorKind::TimedOut
    }

    /// The I/O error behind it, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ConnectErrorKind::Refused => "connection refused",
            ConnectErrorKind::TimedOut => "connection attempt timed out",
            ConnectErrorKind::Unreachable => "peer unreachable",
            ConnectErrorKind::Cancelled => "connection attempt cancelled",
            ConnectErrorKind::Declined => "factory declined the connection",
            ConnectErrorKind::Unresolved => "host name did not resolve",
            ConnectErrorKind::Other => "connection failed",
        };
        let plain = matches!(
            self.kind,
            ConnectErrorKind::Refused | ConnectErrorKind::TimedOut | ConnectErrorKind::Unreachable
        );
        match &self.error {
            // The OS's words would only say the kind again
            // ("connection refused: Connection refused (os error 111)").
            Some(e) if plain && e.raw_os_error().is_some() => {
                write!(f, "{what} (os error {})", e.raw_os_error().unwrap_or(0))
            }
            Some(e) => write!(f, "{what}: {e}"),
            None => f.write_str(what),
        }
    }
}

impl Error for ConnectError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.as_ref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_say_the_kind_once() {
        #[cfg(unix)]
        let code = libc::ECONNREFUSED;
        #[cfg(windows)]
        let code = 10061; // WSAECONNREFUSED
        let refused = ConnectError::from_io(io::Error::from_raw_os_error(code));
        assert_eq!(refused.kind(), ConnectErrorKind::Refused);
        assert_eq!(
            refused.to_string(),
            format!("connection refused (os error {code})")
        );
        assert!(refused.source().is_some(), "the OS error stays the source");
        let other = ConnectError::from_io(io::Error::other("no route to the moon"));
        assert_eq!(other.to_string(), "connection failed: no route to the moon");
        assert_eq!(
            ConnectError::new(ConnectErrorKind::Cancelled).to_string(),
            "connection attempt cancelled"
        );
    }
}
