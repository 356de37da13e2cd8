//! Linux pieces of the Unix backend: the reactor's timers in a timerfd,
//! a child's exit as a pidfd, both readable through the poller (epoll).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A monotonic kernel timer whose expiry makes its fd readable.
#[derive(Debug)]
pub(crate) struct TimerFd(OwnedFd);

impl TimerFd {
    pub(crate) fn new() -> io::Result<Option<TimerFd>> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that we own.
        Ok(Some(TimerFd(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    /// Arms the timer to expire after `after` (zero or less: at once), or
    /// disarms it with `None`.
    pub(crate) fn set(&self, after: Option<Duration>) -> io::Result<()> {
        let mut spec: libc::itimerspec = unsafe { std::mem::zeroed() };
        if let Some(d) = after {
            // A zero it_value disarms; one nanosecond means "now".
            let d = d.max(Duration::from_nanos(1));
            spec.it_value.tv_sec = d.as_secs().min(i64::MAX as u64 / 2) as libc::time_t;
            spec.it_value.tv_nsec = d.subsec_nanos() as libc::c_long;
        }
        // SAFETY: `spec` is a valid itimerspec; the old value is not wanted.
        let r =
            unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Clears the expiry so the fd stops being readable.
    pub(crate) fn clear(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a local buffer; errors
        // (EAGAIN when nothing expired) are harmless and ignored.
        unsafe {
            libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
        }
    }
}

impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// A descriptor that becomes readable when the child `pid` exits (a pidfd
/// on Linux). `Unsupported` elsewhere.
pub(crate) fn process_fd(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open returns a new descriptor we then own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
