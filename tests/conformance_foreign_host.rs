//! The conformance suite under a hand-written host that uses nothing but
//! the host contract: on Unix a poll(2) on the reactor's fd, on Windows a
//! wait on its completion port with the next deadline as the timeout, then
//! `Reactor::dispatch`. Its own timers (the suite's "host intervals") live
//! in the same wait, as a GUI toolkit's would. On Windows this is the path
//! every Windows host takes (`dispatch` ending with its closing wait).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::testing::conformance::{self, Harness, HostTick};
use braid::{Budget, HostLoop, Reactor};

/// Waits at most `timeout` for the reactor to have work; true if it has.
#[cfg(unix)]
fn wait_for_work(reactor: &Reactor, timeout: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: reactor.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Round up: waking early only loops once more.
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    // SAFETY: one pollfd we own, for the call's duration.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    n > 0 && fd.revents & libc::POLLIN != 0
}

#[cfg(windows)]
fn wait_for_work(reactor: &Reactor, timeout: Duration) -> bool {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::WAIT_OBJECT_0;
    use windows_sys::Win32::System::Threading::WaitForSingleObject;
    let ms = timeout
        .as_nanos()
        .div_ceil(1_000_000)
        .min(u32::MAX as u128 - 1) as u32;
    // SAFETY: waits on the reactor's live port handle.
    unsafe { WaitForSingleObject(reactor.as_raw_handle(), ms) == WAIT_OBJECT_0 }
}

struct Stopped(Cell<bool>);

impl HostLoop for Stopped {
    fn reactor_stopped(&self) {
        self.0.set(true);
    }
}

struct Interval {
    every: Duration,
    next: Instant,
    f: HostTick,
}

#[derive(Default)]
struct ForeignHost {
    intervals: RefCell<Vec<Interval>>,
}

impl Harness for ForeignHost {
    fn run(&self, reactor: &Reactor) {
        let host = Rc::new(Stopped(Cell::new(false)));
        let _attached = reactor.attach_host(host.clone()).expect("attach");
        while !host.0.get() {
            let now = Instant::now();
            // The host's own next timer, and the reactor's where its timers
            // are not in its fd.
            let mut until = self.intervals.borrow().iter().map(|i| i.next).min();
            if !reactor.timers_in_fd() {
                if let Some(d) = reactor.next_deadline() {
                    until = Some(until.map_or(d, |u| u.min(d)));
                }
            }
            let timeout = until.map_or(Duration::from_secs(3600), |t| {
                t.saturating_duration_since(now)
            });
            let woke = wait_for_work(reactor, timeout);
            let now = Instant::now();
            self.intervals.borrow_mut().retain_mut(|i| {
                if now < i.next {
                    return true;
                }
                i.next = now + i.every;
                (i.f)()
            });
            let due = !reactor.timers_in_fd() && reactor.next_deadline().is_some_and(|d| d <= now);
            if woke || due {
                reactor.dispatch(Budget::default());
            }
        }
    }

    fn host_interval(&self, every: Duration, f: HostTick) {
        self.intervals.borrow_mut().push(Interval {
            every,
            next: Instant::now() + every,
            f,
        });
    }

    fn name(&self) -> String {
        "foreign host".into()
    }
}

braid::conformance_tests!(ForeignHost::default());

#[test]
fn conformance_gui_stays_responsive_under_a_flood() {
    conformance::gui_stays_responsive_under_a_flood(&ForeignHost::default());
}

#[test]
#[cfg_attr(
    windows,
    ignore = "counts context switches from Linux's /proc: none on Windows, and under Wine they count wineserver round trips, not the program's wakeups"
)]
fn conformance_idle_costs_no_wakeups() {
    conformance::idle_costs_no_wakeups(&ForeignHost::default(), Duration::from_secs(1));
}
