//! Giving memory back: after a burst of closes, the reactor asks the
//! allocator to return what the closed connections freed (glibc keeps
//! freed memory resident unless it sits at the top of its heap).

use std::time::Duration;

use super::Reactor;

/// Sources open at once before a burst of closes releases memory.
const RELEASE_AFTER: usize = 1024;
/// How long after the closes the release comes.
const RELEASE_DELAY: Duration = Duration::from_secs(1);

impl Reactor {
    /// A source closed, leaving `live`: after a burst, a release.
    pub(crate) fn source_closed(&self, live: usize) {
        let peak = self.inner.sources_peak.get();
        if peak >= RELEASE_AFTER
            && live <= peak / 2
            && self.inner.release_memory.get()
            && !self.inner.release_pending.replace(true)
        {
            // Scheduled at the end of a dispatch (a source may close while
            // the timers are borrowed), and run once the burst of closes
            // is over.
            self.inner.release_wanted.set(true);
        }
    }

    pub(crate) fn schedule_release(&self) {
        let r = self.downgrade();
        // Not cancelled by dropping the handle.
        drop(self.call_later(RELEASE_DELAY, move || {
            if let Some(r) = r.upgrade() {
                r.inner.release_pending.set(false);
                r.inner.sources_peak.set(r.inner.sources.borrow().len());
                crate::sys::release_free_memory();
            }
        }));
    }

    /// Asks the allocator, a second from now, to return the memory it holds
    /// free to the system (see
    /// [`set_release_memory_after_close`](Self::set_release_memory_after_close)):
    /// for code that has just freed much (a server whose idle connections
    /// let their buffers go, say). Requests while one is pending are one
    /// request. Nothing when the release is turned off.
    pub fn release_memory_soon(&self) {
        if self.inner.release_memory.get() && !self.inner.release_pending.replace(true) {
            self.inner.release_wanted.set(true);
            self.wake();
        }
    }

    /// Whether, after a burst of connections closes, the reactor asks the
    /// allocator to return the memory they freed to the system (on by
    /// default). When at least 1,024 sources were open at once and half
    /// or more have closed, it does so once, a second after, on the
    /// reactor thread (glibc's `malloc_trim`, which takes a few
    /// milliseconds for a heap of hundreds of megabytes; nothing on other
    /// allocators and platforms). Without it, a server that held 10,000
    /// connections keeps most of the memory they used resident after they
    /// are gone: glibc returns only the top of its heap by itself.
    pub fn set_release_memory_after_close(&self, on: bool) {
        self.inner.release_memory.set(on);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::{Budget, Source};
    use crate::FakeClock;
    use std::rc::Rc;

    struct Dummy;
    impl Source for Dummy {
        fn ready(&self, _: bool, _: bool, _: &Budget) {}
        fn shutdown(&self) {}
    }

    fn burst(reactor: &Reactor, open: usize) -> Vec<usize> {
        (0..open).map(|_| reactor.track(Rc::new(Dummy))).collect()
    }

    #[test]
    fn memory_is_released_once_after_a_burst_of_closes() {
        let clock = FakeClock::new();
        let reactor = Reactor::with_clock(clock.clone()).unwrap();
        let keys = burst(&reactor, RELEASE_AFTER);
        // Closing fewer than half: nothing.
        for &k in &keys[..RELEASE_AFTER / 2 - 1] {
            reactor.untrack(k);
        }
        reactor.run_due();
        assert!(!reactor.inner.release_pending.get());
        // Half closed: one release, scheduled at the end of a dispatch,
        // run a second later; more closes meanwhile add none.
        for &k in &keys[RELEASE_AFTER / 2 - 1..RELEASE_AFTER - 10] {
            reactor.untrack(k);
        }
        assert!(reactor.inner.release_pending.get());
        assert!(reactor.inner.release_wanted.get());
        assert!(
            reactor.next_deadline().is_none(),
            "scheduled only by a dispatch"
        );
        reactor.run_due();
        assert!(!reactor.inner.release_wanted.get());
        assert!(reactor.next_deadline().is_some());
        clock.advance(RELEASE_DELAY);
        reactor.run_due();
        assert!(!reactor.inner.release_pending.get());
        assert_eq!(
            reactor.inner.sources_peak.get(),
            10,
            "the peak starts again"
        );
        assert!(reactor.next_deadline().is_none());
        // The last ten are far below 1,024 sources: no release for them.
        for &k in &keys[RELEASE_AFTER - 10..] {
            reactor.untrack(k);
        }
        reactor.run_due();
        assert!(!reactor.inner.release_pending.get());
    }

    #[test]
    fn the_release_can_be_turned_off() {
        let reactor = Reactor::new().unwrap();
        reactor.set_release_memory_after_close(false);
        for k in burst(&reactor, RELEASE_AFTER) {
            reactor.untrack(k);
        }
        assert!(!reactor.inner.release_pending.get());
    }
}
