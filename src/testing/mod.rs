//! Test doubles that ship with braid (feature `testing`): Twisted's
//! `internet.testing` and `iosim`.
//!
//! - [`StringTransport`]: a transport that records what was written, for
//!   calling a protocol's methods directly.
//! - [`MemoryReactor`]: a reactor on a [`FakeClock`], advanced by the test.
//! - [`connected_pair`]: a client and a server protocol joined by an
//!   in-memory connection that runs braid's real connection code (buffers,
//!   watermarks, half-close, `connection_lost` exactly once), pumped by
//!   the test.
//! - [`feed_in_chunks`]: deliver input to a protocol split at any size,
//!   down to one byte, as Twisted's docs ask of every protocol test.
//! - [`run_until`]: drive a real reactor over loopback until a condition
//!   holds, with a limit instead of sleeps.
//! - [`conformance`]: the suite every host loop runs.
//! - [`window`]: a GUI example driven in a real window (its printed state,
//!   real keystrokes).

pub mod conformance;
mod pair;
mod string_transport;
pub mod window;

use std::io;
use std::time::{Duration, Instant};

pub use crate::reactor::FakeClock;
pub use pair::{connected_pair, Pair};
pub use string_transport::StringTransport;

use crate::host::Dispatched;
use crate::protocol::Protocol;
use crate::reactor::Reactor;

/// A reactor whose time is a [`FakeClock`]: Twisted's `MemoryReactorClock`.
///
/// Timers run only when the test advances the clock; real sockets still
/// work, which lets a test drive a server's idle timeout over loopback
/// without waiting for it.
#[derive(Debug, Clone)]
pub struct MemoryReactor {
    reactor: Reactor,
    clock: FakeClock,
}

impl MemoryReactor {
    /// A reactor at fake time zero.
    ///
    /// # Panics
    ///
    /// If the poller cannot be created (out of file descriptors).
    pub fn new() -> Self {
        let clock = FakeClock::new();
        let reactor = Reactor::with_clock(clock.clone()).expect("create a poller");
        MemoryReactor { reactor, clock }
    }

    /// The reactor.
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// The clock.
    pub fn clock(&self) -> &FakeClock {
        &self.clock
    }

    /// Advances the clock by `by` and runs everything that became due,
    /// including calls those calls scheduled for no later than the new time.
    pub fn advance(&self, by: Duration) -> Dispatched {
        self.clock.advance(by);
        self.reactor.run_due()
    }

    /// Advances in `steps` equal steps over `total`, running due calls
    /// after each: Twisted's `Clock.pump`.
    pub fn pump(&self, total: Duration, steps: u32) {
        let steps = steps.max(1);
        for _ in 0..steps {
            self.advance(total / steps);
        }
    }
}

impl Default for MemoryReactor {
    fn default() -> Self {
        Self::new()
    }
}

/// Delivers `data` to `protocol` in pieces of `chunk` bytes (the last may be
/// shorter); `chunk` 0 means all at once.
pub fn feed_in_chunks<P: Protocol + ?Sized>(
    protocol: &mut P,
    transport: &crate::Transport,
    data: &[u8],
    chunk: usize,
) {
    if chunk == 0 {
        protocol.data_received(transport, data);
        return;
    }
    for piece in data.chunks(chunk) {
        protocol.data_received(transport, piece);
    }
}

/// The standalone loop ([`Reactor::run`]) as a conformance [`Harness`]:
/// host timers are reactor timers.
///
/// [`Harness`]: conformance::Harness
#[derive(Default)]
pub struct StandaloneHarness {
    intervals: std::cell::RefCell<Vec<(Duration, conformance::HostTick)>>,
}

impl std::fmt::Debug for StandaloneHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandaloneHarness").finish_non_exhaustive()
    }
}

impl conformance::Harness for StandaloneHarness {
    fn run(&self, reactor: &Reactor) {
        for (every, f) in self.intervals.borrow_mut().drain(..) {
            fn tick(r: Reactor, every: Duration, mut f: conformance::HostTick) {
                let r2 = r.clone();
                r.call_later(every, move || {
                    // Run "outside" the timer's own bookkeeping, as a host
                    // callback would: a fresh call_soon.
                    let r3 = r2.clone();
                    r2.call_soon(move || {
                        if f() {
                            tick(r3, every, f);
                        }
                    });
                });
            }
            tick(reactor.clone(), every, f);
        }
        reactor.run().expect("standalone run");
    }

    fn host_interval(&self, every: Duration, f: conformance::HostTick) {
        self.intervals.borrow_mut().push((every, f));
    }

    fn name(&self) -> String {
        "standalone".into()
    }
}

/// Silences the panic hook for panics whose message starts with
/// `"deliberate panic"`, so tests of panic isolation do not bury real
/// failures under backtraces. Other panics print as before. Idempotent.
pub fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !msg.starts_with("deliberate panic") {
                previous(info);
            }
        }));
    });
}

/// Iterates a real reactor until `d` fires, and gives its result: what a
/// test of something that answers with a Deferred waits with.
///
/// ```
/// use std::time::Duration;
/// use braid::{Deferred, Failure, Reactor};
///
/// let reactor = Reactor::new()?;
/// let d: Deferred<u32, Failure> = Deferred::new();
/// let r = d.resolver();
/// reactor.call_soon(move || r.resolve(Ok(7)));
/// let got = braid::testing::run_until_fired(&reactor, Duration::from_secs(5), d)?;
/// assert_eq!(got.unwrap(), 7);
/// # std::io::Result::Ok(())
/// ```
///
/// # Errors
///
/// `TimedOut` if `limit` passes first, or the poller's error.
pub fn run_until_fired<T: 'static, E>(
    reactor: &Reactor,
    limit: Duration,
    d: crate::Deferred<T, E>,
) -> io::Result<Result<T, E>>
where
    E: From<crate::Failure> + std::fmt::Debug + 'static,
{
    let out = std::rc::Rc::new(std::cell::RefCell::new(None));
    let o = out.clone();
    d.add_both(move |r| {
        *o.borrow_mut() = Some(r);
        Ok::<(), E>(())
    });
    run_until(reactor, limit, || out.borrow().is_some())?;
    let r = out.borrow_mut().take();
    Ok(r.expect("fired"))
}

/// Iterates a real reactor until `done()` holds.
///
/// # Errors
///
/// `TimedOut` if `limit` passes first (a failing test ends instead of
/// hanging), or the poller's error.
pub fn run_until(
    reactor: &Reactor,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> io::Result<()> {
    let end = Instant::now() + limit;
    while !done() {
        let now = Instant::now();
        if now >= end {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "condition not met in time",
            ));
        }
        reactor.iterate((end - now).min(Duration::from_millis(100)))?;
    }
    Ok(())
}
