//! Where the poller holds no kernel timer (Windows' port; Unix platforms
//! with neither timerfd nor kqueue): `TimerFd::new` says `None`, and hosts
//! honour `Reactor::next_deadline()`.

use std::io;
use std::time::Duration;

/// Never made: [`TimerFd::new`] returns `None`.
#[derive(Debug)]
pub(crate) struct TimerFd(std::convert::Infallible);

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

#[cfg(unix)]
impl std::os::fd::AsFd for TimerFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self.0 {}
    }
}

#[cfg(windows)]
impl super::AsSource for TimerFd {
    fn raw_source(&self) -> super::RawSource {
        match self.0 {}
    }
    fn source(&self) -> super::BorrowedSource<'_> {
        match self.0 {}
    }
}
