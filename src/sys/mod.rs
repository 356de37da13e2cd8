//! The one place that picks the platform.
//!
//! Backends: `unix.rs` (POSIX) with `linux.rs` (timerfd, pidfd) or
//! `kqueue.rs` (macOS, iOS, the BSDs: `EVFILT_TIMER`, `EVFILT_PROC`);
//! `windows.rs` (WinSock on polling's IOCP); `no_timer.rs` where the
//! poller holds no timer. Every backend provides the items below (the
//! "required items", as in mio's `sys` module), so that outside this module
//! only the public API's own differences name a platform (the Unix-only
//! modules, `AsFd` or `AsHandle` on `Reactor`):
//!
//! - `RawSource`, `BorrowedSource`, `AsSource`: what the poller registers
//!   (a descriptor; on Windows a socket).
//! - `WAIT_SUBMITS_REGISTRATIONS`: whether registration changes reach the
//!   kernel only inside a wait (IOCP), so that a host's dispatch ends with a
//!   zero-timeout wait and a change outside a dispatch wakes the host.
//! - `SEND_FLAGS`: flags for every `send`/`sendmsg`, so that a write to a
//!   reset peer returns `EPIPE` instead of raising `SIGPIPE` (a GTK or C
//!   host may leave SIGPIPE at its default, which would kill the process).
//! - `prepare_stream(&Socket)`: make a fresh stream socket non-blocking and
//!   SIGPIPE-safe. `accept(&Socket)`: accept one connection, non-blocking
//!   and close-on-exec. `is_listener(&Socket)`: `SO_ACCEPTCONN`.
//! - `address_of(&SockAddr)`: braid's `Address` for a socket address.
//! - `share_datagram_port`, `is_datagram_refusal`: multicast port sharing
//!   and an ICMP refusal as each platform reports it.
//! - `TimerFd`: a kernel timer readable through the poller, so that a host
//!   loop watches one fd for I/O and timers alike (a deadline changed
//!   outside a dispatch, by a GUI callback, is honoured without the host
//!   re-reading it). `None` where the platform has none; hosts then honour
//!   `Reactor::next_deadline`.
//! - `SpareFd`: a reserved descriptor to survive `EMFILE` in accept loops.
//! - `is_fd_exhaustion(&io::Error)`: `EMFILE`/`ENFILE` (`WSAEMFILE`).
//! - `is_connect_in_progress(&io::Error)`: a non-blocking connect under way.
//! - `MAX_FDS`, `send_with_fds`, `recv_with_fds`: descriptors passed over
//!   Unix sockets (`SCM_RIGHTS`); plain sends and receives on Windows.
//! - `set_reuse_port`, `listen_sockets`: ports shared between reactors,
//!   sockets systemd passed (none on Windows).
//! - `SignalPipe`, `STOP_SIGNALS`: a signal routed to a socket or
//!   descriptor the poller watches (on Windows a console event).
//! - `release_free_memory()`: asks the allocator to give memory it holds
//!   free back to the system (glibc's `malloc_trim`; nothing where there
//!   is no such call).
//!
//! Unix only, for the Unix-only modules: `read_fd`, `writev_fd`,
//! `set_nonblocking`, `write_end_hung_up` (pipes, terminals and files under
//! child processes and stdio); `always_ready_fd()`, `is_unpollable` (a
//! stand-in for a regular file, which epoll refuses); `point_at_dev_null`;
//! `process_fd(pid)` (a pidfd or an `EVFILT_PROC` kqueue; `Unsupported`
//! elsewhere, and the reactor polls for the exit), `signal_process`,
//! `SIGKILL`; `listen_fds` (systemd's descriptors).
//!
//! Nothing outside this module calls `libc` or `windows-sys` (tests aside).

#[cfg(kqueue)]
mod kqueue;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(kqueue)]
pub(crate) use kqueue::{process_fd, TimerFd};
#[cfg(target_os = "linux")]
pub(crate) use linux::{process_fd, TimerFd};
#[cfg(any(windows, all(unix, not(any(target_os = "linux", kqueue)))))]
mod no_timer;
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

/// Reads a signal pipe empty (it is non-blocking): whether anything came.
fn drain(mut read: impl std::io::Read) -> bool {
    let mut any = false;
    let mut buf = [0u8; 64];
    while let Ok(n) = read.read(&mut buf) {
        if n == 0 {
            break;
        }
        any = true;
    }
    any
}
