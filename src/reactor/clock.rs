//! Where the reactor gets the time from: the system's monotonic clock, or a
//! [`FakeClock`] that only moves when a test advances it.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The reactor's source of time.
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    System,
    Fake(FakeClock),
}

impl Clock {
    pub(crate) fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Fake(c) => c.now(),
        }
    }
}

/// A clock that moves only when told to: Twisted's `task.Clock`.
///
/// Give it to [`Reactor::with_clock`](crate::Reactor::with_clock) and every
/// `call_later` of that reactor runs on fake time, so a test of a 30-second
/// timeout takes microseconds and never sleeps. Clones share one time.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use braid::{FakeClock, Reactor};
///
/// let clock = FakeClock::new();
/// let reactor = Reactor::with_clock(clock.clone())?;
/// let fired = Rc::new(Cell::new(false));
/// let f = fired.clone();
/// reactor.call_later(Duration::from_secs(30), move || f.set(true));
///
/// clock.advance(Duration::from_secs(29));
/// reactor.run_due();
/// assert!(!fired.get());
/// clock.advance(Duration::from_secs(1));
/// reactor.run_due();
/// assert!(fired.get());
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
#[doc(alias = "Clock")]
pub struct FakeClock {
    start: Instant,
    now: Rc<Cell<Instant>>,
}

impl FakeClock {
    /// A clock that starts at the current instant and stands still.
    pub fn new() -> Self {
        let start = Instant::now();
        FakeClock {
            start,
            now: Rc::new(Cell::new(start)),
        }
    }

    /// The clock's current time.
    pub fn now(&self) -> Instant {
        self.now.get()
    }

    /// How far the clock has been advanced since it was made.
    pub fn elapsed(&self) -> Duration {
        self.now.get() - self.start
    }

    /// Moves the clock forward. Calls that became due run at the reactor's
    /// next dispatch (for example [`Reactor::run_due`](crate::Reactor::run_due)).
    pub fn advance(&self, by: Duration) {
        self.now.set(self.now.get() + by);
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FakeClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeClock")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}
