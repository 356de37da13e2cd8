//! The one place that picks the platform.
//!
//! Every backend provides the same items (the "required items", as in mio's
//! `sys` module), so the rest of braid never writes `cfg(unix)`:
//!
//! - `SEND_FLAGS`: flags for every `send`/`sendmsg`, so that a write to a
//!   reset peer returns `EPIPE` instead of raising `SIGPIPE` (DESIGN fact 8).
//! - `prepare_stream(&Socket)`: make a fresh stream socket non-blocking and
//!   SIGPIPE-safe.
//! - `accept(&Socket)`: accept one connection, non-blocking and close-on-exec.
//! - `TimerFd`: a kernel timer readable through the poller, so that a host
//!   loop watches one fd for I/O and timers alike (DESIGN fact 1). `None`
//!   where the platform has none; hosts then honour `Reactor::next_deadline`.
//! - `SpareFd`: a reserved descriptor to survive `EMFILE` in accept loops.
//! - `is_fd_exhaustion(&io::Error)`: `EMFILE`/`ENFILE`.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(not(unix))]
compile_error!("braid supports Unix platforms (Linux first); other platforms are future work");
