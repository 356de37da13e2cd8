//! The one place that picks the platform.
//!
//! Every backend provides the same items (the "required items", as in mio's
//! `sys` module), so the rest of braid never writes `cfg(unix)`:
//!
//! - `SEND_FLAGS`: flags for every `send`/`sendmsg`, so that a write to a
//!   reset peer returns `EPIPE` instead of raising `SIGPIPE` (a GTK or C host may leave SIGPIPE at its default, which would kill the process).
//! - `prepare_stream(&Socket)`: make a fresh stream socket non-blocking and
//!   SIGPIPE-safe.
//! - `accept(&Socket)`: accept one connection, non-blocking and close-on-exec.
//! - `TimerFd`: a kernel timer readable through the poller, so that a host
//!   loop watches one fd for I/O and timers alike (a deadline changed outside a dispatch, by a GUI callback, is honoured without the host re-reading it). `None`
//!   where the platform has none; hosts then honour `Reactor::next_deadline`.
//! - `SpareFd`: a reserved descriptor to survive `EMFILE` in accept loops.
//! - `is_fd_exhaustion(&io::Error)`: `EMFILE`/`ENFILE`.
//! - `is_connect_in_progress(&io::Error)`: a non-blocking connect under way.
//! - `MAX_FDS`, `send_with_fds`, `recv_with_fds`: descriptors passed over
//!   Unix sockets (`SCM_RIGHTS`).
//! - `read_fd`, `writev_fd`, `set_nonblocking`, `write_end_hung_up`: pipes,
//!   terminals and files under child processes and stdio.
//! - `always_ready_fd()`, `is_unpollable(&io::Error)`: a stand-in the
//!   poller can watch for a regular file (always ready), which epoll
//!   refuses; `point_at_dev_null(fd)` for a standard descriptor let go.
//! - `process_fd(pid)`: a descriptor readable when a child exits (a pidfd;
//!   `Unsupported` where there is none, and the reactor reaps by signal);
//!   `signal_process(pid, pidfd, signal)`, `SIGKILL`.
//!
//! - `SignalPipe`: a signal routed to a descriptor the poller watches.
//! - `release_free_memory()`: asks the allocator to give memory it holds
//!   free back to the system (glibc's `malloc_trim`; nothing where there
//!   is no such call).
//!
//! Nothing outside this module calls `libc` (tests aside).

#[cfg(kqueue)]
mod kqueue;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(kqueue)]
pub(crate) use kqueue::{process_fd, TimerFd};
#[cfg(target_os = "linux")]
pub(crate) use linux::{process_fd, TimerFd};
#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

#[cfg(not(any(unix, windows)))]
compile_error!(
    "braid supports Unix (Linux, macOS, the BSDs) and Windows; this platform is not done"
);
