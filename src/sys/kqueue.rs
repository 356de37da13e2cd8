//! kqueue pieces of the Unix backend (macOS, iOS, the BSDs).
//!
//! The reactor's poller is itself a kqueue there, and a kqueue descriptor
//! is readable (to `poll`, `select` and another kqueue) while it holds a
//! pending event. So each piece below is a small private kqueue holding one
//! filter: the poller watches its descriptor like any other, and a host
//! loop still watches the poller's one descriptor for everything, as with
//! Linux's timerfd and pidfd.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Identifier of the one timer in a [`TimerFd`]'s kqueue.
const TIMER_ID: libc::uintptr_t = 1;

fn new_kqueue() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::kqueue() };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl on a descriptor we own. (kqueues are not inherited
    // across fork anyway; close-on-exec keeps them out of exec'd children.)
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(fd)
}

// The constants' types differ across the kqueue platforms (NetBSD's filter
// and flags are u32, the others' i16 and u16): the casts at the call sites
// are no-ops on some of them.
#[allow(clippy::unnecessary_cast)]
fn change(
    kq: BorrowedFd<'_>,
    ident: libc::uintptr_t,
    filter: i16,
    flags: u16,
    fflags: u32,
    data: i64,
) -> io::Result<()> {
    // SAFETY: an all-zero kevent is valid (the BSDs' extension fields
    // included); the fields that matter are set below.
    let mut ev: libc::kevent = unsafe { std::mem::zeroed() };
    ev.ident = ident;
    ev.filter = filter as _;
    ev.flags = flags as _;
    ev.fflags = fflags as _;
    ev.data = data as _;
    // SAFETY: one change, no events wanted back, no waiting.
    let r = unsafe {
        libc::kevent(
            kq.as_raw_fd(),
            &ev,
            1,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes every pending event out of `kq` without waiting, so its
/// descriptor stops being readable.
fn drain(kq: BorrowedFd<'_>) {
    // SAFETY: an all-zero kevent is a valid output buffer.
    let mut out: [libc::kevent; 4] = unsafe { std::mem::zeroed() };
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: no changes; at most 4 events into a local buffer; no waiting.
    unsafe {
        libc::kevent(
            kq.as_raw_fd(),
            std::ptr::null(),
            0,
            out.as_mut_ptr(),
            out.len() as _,
            &zero,
        )
    };
}

/// A monotonic one-shot timer (`EVFILT_TIMER`, in nanoseconds) in a kqueue
/// of its own: its descriptor is readable once the timer expired, as a
/// timerfd's is on Linux.
#[derive(Debug)]
pub(crate) struct TimerFd(OwnedFd);

#[allow(clippy::unnecessary_cast)] // see `change`
impl TimerFd {
    pub(crate) fn new() -> io::Result<Option<TimerFd>> {
        Ok(Some(TimerFd(new_kqueue()?)))
    }

    /// Arms the timer to expire after `after` (zero or less: at once), or
    /// disarms it with `None`.
    pub(crate) fn set(&self, after: Option<Duration>) -> io::Result<()> {
        // An expiry not yet taken would keep the descriptor readable.
        drain(self.0.as_fd());
        match after {
            // EV_ADD on an existing timer re-arms it with the new period.
            Some(d) => {
                let nanos = d.as_nanos().clamp(1, i64::MAX as u128) as i64;
                change(
                    self.0.as_fd(),
                    TIMER_ID,
                    libc::EVFILT_TIMER as i16,
                    (libc::EV_ADD | libc::EV_ENABLE | libc::EV_ONESHOT) as u16,
                    libc::NOTE_NSECONDS,
                    nanos,
                )
            }
            None => match change(
                self.0.as_fd(),
                TIMER_ID,
                libc::EVFILT_TIMER as i16,
                libc::EV_DELETE as u16,
                0,
                0,
            ) {
                // Not armed (or already fired: EV_ONESHOT deleted it).
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                r => r,
            },
        }
    }

    /// Clears the expiry so the descriptor stops being readable.
    pub(crate) fn clear(&self) {
        drain(self.0.as_fd());
    }
}

impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// A descriptor that becomes readable when the child `pid` exits: a kqueue
/// holding `EVFILT_PROC`/`NOTE_EXIT` for it (the kqueue platforms' pidfd).
/// The child stays a zombie until reaped, so its pid is not reused first.
#[allow(clippy::unnecessary_cast)] // see `change`
pub(crate) fn process_fd(pid: u32) -> io::Result<OwnedFd> {
    let kq = new_kqueue()?;
    change(
        kq.as_fd(),
        pid as libc::uintptr_t,
        libc::EVFILT_PROC as i16,
        (libc::EV_ADD | libc::EV_ONESHOT) as u16,
        libc::NOTE_EXIT,
        0,
    )?;
    Ok(kq)
}
