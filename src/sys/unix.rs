//! Unix backend of [`crate::sys`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use socket2::{SockAddr, Socket};

/// Flags for every send: `MSG_NOSIGNAL` where it exists. Apple platforms
/// have no such flag and use `SO_NOSIGPIPE` in [`prepare_stream`] instead.
#[cfg(not(any(target_os = "macos", target_os = "ios")))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(any(target_os = "macos", target_os = "ios"))]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// Makes a stream socket non-blocking and SIGPIPE-safe.
pub(crate) fn prepare_stream(socket: &Socket) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    socket.set_nosigpipe(true)?;
    Ok(())
}

/// Accepts one connection as a non-blocking, close-on-exec socket.
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let (s, a) = listener.accept()?;
        prepare_stream(&s)?;
        Ok((s, a))
    }
}

/// True for the errors that mean "no file descriptor left".
pub(crate) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// A descriptor held in reserve so that an accept loop can still take (and
/// close) a waiting connection when the process runs out of descriptors;
/// otherwise a level-triggered listener would spin. Twisted does the same.
#[derive(Debug)]
pub(crate) struct SpareFd(Option<OwnedFd>);

impl SpareFd {
    pub(crate) fn new() -> Self {
        SpareFd(open_dev_null())
    }
    /// Gives the spare up so that one `accept` can succeed.
    pub(crate) fn release(&mut self) -> bool {
        self.0.take().is_some()
    }
    /// Takes the spare back once the emergency is over.
    pub(crate) fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = open_dev_null();
        }
    }
}

fn open_dev_null() -> Option<OwnedFd> {
    // SAFETY: a constant, NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A monotonic kernel timer whose expiry makes its fd readable.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Debug)]
pub(crate) struct TimerFd(OwnedFd);

#[cfg(any(target_os = "linux", target_os = "android"))]
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

#[cfg(any(target_os = "linux", target_os = "android"))]
impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Platforms without timerfd: hosts honour `Reactor::next_deadline()`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[derive(Debug)]
pub(crate) struct TimerFd(std::convert::Infallible);

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl TimerFd {
    pub(crate) fn new() -> io::Result<Option<TimerFd>> {
        Ok(None)
    }
    pub(crate) fn set(&self, _after: Option<Duration>) -> io::Result<()> {
        match self.0 {}
    }
    pub(crate) fn clear(&self) {
        match self.0 {}
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self.0 {}
    }
}
