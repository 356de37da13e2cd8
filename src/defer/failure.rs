//! Twisted's `Failure`: an error on its way down a callback chain.

use std::error::Error;
use std::fmt;

/// What kind of failure, for the common cases braid itself produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The operation was cancelled ([`Deferred::cancel`](crate::Deferred::cancel)).
    Cancelled,
    /// A timeout ran out ([`Deferred::add_timeout`](crate::Deferred::add_timeout)).
    TimedOut,
    /// Code panicked (a thread-pool job, a task); the message is kept.
    Panicked,
    /// The reactor shut down before the work could run.
    Shutdown,
    /// Nothing will ever fire the Deferred: every resolver was dropped
    /// unfired (a timer the stopping reactor dropped, a worker gone).
    Abandoned,
    /// Any other error; see [`Failure::error`].
    Error,
}

/// An error travelling down a [`Deferred`](crate::Deferred) chain: any
/// `Error + Send + Sync`, or one of braid's own kinds. The default error
/// type of `Deferred`; typed chains use their own error type and implement
/// `From<Failure>` for it.
///
/// Like `anyhow::Error`, it does not implement `std::error::Error` itself,
/// so that any error converts into it with `?`.
///
/// # Examples
///
/// ```
/// use braid::Failure;
///
/// let f = Failure::from(std::io::Error::other("disk on fire"));
/// assert!(f.downcast_ref::<std::io::Error>().is_some());
/// assert!(!f.is_cancelled());
/// assert!(Failure::cancelled().is_cancelled());
/// ```
pub struct Failure {
    kind: FailureKind,
    error: Option<Box<dyn Error + Send + Sync>>,
    message: Option<String>,
}

impl Failure {
    fn of(kind: FailureKind, message: Option<String>) -> Self {
        Failure {
            kind,
            error: None,
            message,
        }
    }

    /// A cancellation.
    pub fn cancelled() -> Self {
        Self::of(FailureKind::Cancelled, None)
    }

    /// A timeout.
    pub fn timed_out() -> Self {
        Self::of(FailureKind::TimedOut, None)
    }

    /// The reactor shut down first.
    pub fn shutdown() -> Self {
        Self::of(FailureKind::Shutdown, None)
    }

    /// Nothing will ever fire the Deferred (every resolver was dropped).
    pub fn abandoned() -> Self {
        Self::of(FailureKind::Abandoned, None)
    }

    /// A panic, with its message.
    pub fn panicked(message: impl Into<String>) -> Self {
        Self::of(FailureKind::Panicked, Some(message.into()))
    }

    /// A failure with a message and no error type behind it.
    pub fn msg(message: impl Into<String>) -> Self {
        Self::of(FailureKind::Error, Some(message.into()))
    }

    /// The kind.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// Cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.kind == FailureKind::Cancelled
    }

    /// Timed out.
    pub fn is_timeout(&self) -> bool {
        self.kind == FailureKind::TimedOut
    }

    /// A panic.
    pub fn is_panic(&self) -> bool {
        self.kind == FailureKind::Panicked
    }

    /// The error behind it, if there is one.
    pub fn error(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        self.error.as_deref()
    }

    /// The error behind it, if it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error.as_ref()?.downcast_ref::<E>()
    }

    /// The error behind it as a boxed error (braid's own kinds become a
    /// message error).
    pub fn into_error(self) -> Box<dyn Error + Send + Sync> {
        match self.error {
            Some(e) => e,
            None => self.to_string().into(),
        }
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            kind: FailureKind::Error,
            error: Some(Box::new(e)),
            message: None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.error, &self.message, self.kind) {
            (Some(e), _, _) => write!(f, "{e}"),
            (None, Some(m), FailureKind::Panicked) => write!(f, "panicked: {m}"),
            (None, Some(m), _) => f.write_str(m),
            (None, None, FailureKind::Cancelled) => f.write_str("cancelled"),
            (None, None, FailureKind::TimedOut) => f.write_str("timed out"),
            (None, None, FailureKind::Shutdown) => f.write_str("the reactor shut down"),
            (None, None, FailureKind::Abandoned) => f.write_str(
                "abandoned: nothing will fire this Deferred (its resolver was dropped, as a stopping reactor drops its timers)",
            ),
            (None, None, _) => f.write_str("failure"),
        }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failure({:?}: {self})", self.kind)
    }
}
