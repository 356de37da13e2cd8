//! A client factory that reconnects with exponential backoff.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::connector::{Connector, WeakConnector};
use crate::error::{CloseReason, ConnectError};
use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::reactor::DelayedCall;
use crate::transport::Address;

struct State<F> {
    inner: F,
    initial_delay: Duration,
    max_delay: Duration,
    factor: f64,
    jitter: f64,
    /// The backoff curve, without jitter.
    nominal: Duration,
    /// The delay last scheduled (nominal plus jitter).
    delay: Duration,
    retries: u32,
    max_retries: Option<u32>,
    continue_trying: bool,
    pending: Option<DelayedCall>,
    /// Weak: the connector owns this factory.
    connector: Option<WeakConnector>,
    rng: fastrand::Rng,
}

/// Wraps a client factory so that a failed or lost connection is retried
/// after a growing, jittered delay: Twisted's `ReconnectingClientFactory`.
///
/// The delay starts at `initial_delay` (1 s), is multiplied by `factor`
/// (e) on each retry up to `max_delay` (1 hour); each scheduled delay is
/// jittered uniformly by ±`jitter` (0.12) of itself so that many clients do
/// not reconnect in step. Unlike Twisted, the jitter does not compound: the
/// curve grows from the un-jittered delay. A successful connection resets
/// it. Clones share one state, so keep a clone
/// to call [`stop_trying`](Self::stop_trying).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use braid::{Address, Protocol, Reactor, ReconnectingClientFactory, Transport};
///
/// struct Client;
/// impl Protocol for Client {
///     fn data_received(&mut self, _: &Transport, data: &[u8]) {}
/// }
///
/// let reactor = Reactor::new()?;
/// let factory = ReconnectingClientFactory::new(|_: &Address| Client)
///     .max_delay(Duration::from_secs(30));
/// let control = factory.clone();
/// reactor.connect_tcp("127.0.0.1:6667".parse().unwrap(), factory, None);
/// // later, from a "disconnect" button:
/// control.stop_trying();
/// # std::io::Result::Ok(())
/// ```
pub struct ReconnectingClientFactory<F> {
    state: Rc<RefCell<State<F>>>,
}

impl<F> Clone for ReconnectingClientFactory<F> {
    fn clone(&self) -> Self {
        ReconnectingClientFactory {
            state: self.state.clone(),
        }
    }
}

impl<F: ClientFactory> ReconnectingClientFactory<F> {
    /// Wraps `inner`, which builds the protocols and hears every event.
    pub fn new(inner: F) -> Self {
        let initial = Duration::from_secs(1);
        ReconnectingClientFactory {
            state: Rc::new(RefCell::new(State {
                inner,
                initial_delay: initial,
                max_delay: Duration::from_secs(3600),
                factor: std::f64::consts::E,
                jitter: 0.119_626_565_582,
                nominal: initial,
                delay: initial,
                retries: 0,
                max_retries: None,
                continue_trying: true,
                pending: None,
                connector: None,
                rng: fastrand::Rng::new(),
            })),
        }
    }

    /// The first delay (default 1 s).
    pub fn initial_delay(self, d: Duration) -> Self {
        {
            let mut s = self.state.borrow_mut();
            s.initial_delay = d;
            s.nominal = d;
            s.delay = d;
        }
        self
    }

    /// The longest delay (default 1 hour).
    pub fn max_delay(self, d: Duration) -> Self {
        self.state.borrow_mut().max_delay = d;
        self
    }

    /// The growth factor per retry (default e ≈ 2.718; at least 1).
    pub fn factor(self, f: f64) -> Self {
        self.state.borrow_mut().factor = f.max(1.0);
        self
    }

    /// The relative jitter, 0 to 1 (default 0.12).
    pub fn jitter(self, j: f64) -> Self {
        self.state.borrow_mut().jitter = j.clamp(0.0, 1.0);
        self
    }

    /// Gives up after `n` consecutive retries (default: never).
    pub fn max_retries(self, n: u32) -> Self {
        self.state.borrow_mut().max_retries = Some(n);
        self
    }

    /// Seeds the jitter's random source, for reproducible tests.
    pub fn seed(self, seed: u64) -> Self {
        self.state.borrow_mut().rng = fastrand::Rng::with_seed(seed);
        self
    }

    /// Stops retrying: cancels a pending retry and an attempt in progress.
    /// An established connection stays up.
    #[doc(alias = "stopTrying")]
    pub fn stop_trying(&self) {
        let (pending, connector) = {
            let mut s = self.state.borrow_mut();
            s.continue_trying = false;
            (
                s.pending.take(),
                s.connector.as_ref().and_then(|c| c.upgrade()),
            )
        };
        if let Some(p) = pending {
            p.cancel();
        }
        if let Some(c) = connector {
            if c.is_connecting() {
                c.stop_connecting();
            }
        }
    }

    /// Back to the initial delay and no retries counted (done
    /// automatically when a connection is made).
    #[doc(alias = "resetDelay")]
    pub fn reset_delay(&self) {
        let mut s = self.state.borrow_mut();
        s.nominal = s.initial_delay;
        s.delay = s.initial_delay;
        s.retries = 0;
    }

    /// The delay before the next retry.
    pub fn current_delay(&self) -> Duration {
        self.state.borrow().delay
    }

    /// Consecutive retries so far.
    pub fn retries(&self) -> u32 {
        self.state.borrow().retries
    }

    /// Whether a retry is scheduled.
    pub fn is_retry_pending(&self) -> bool {
        self.state
            .borrow()
            .pending
            .as_ref()
            .is_some_and(|p| p.active())
    }

    /// Runs `f` on the wrapped factory.
    pub fn with_inner<R>(&self, f: impl FnOnce(&mut F) -> R) -> R {
        f(&mut self.state.borrow_mut().inner)
    }

    /// Schedules the next attempt, if still trying.
    pub fn retry(&self, connector: &Connector) {
        let Some(reactor) = connector.reactor() else {
            return;
        };
        let delay = {
            let mut s = self.state.borrow_mut();
            if !s.continue_trying {
                return;
            }
            s.retries += 1;
            if s.max_retries.is_some_and(|m| s.retries > m) {
                tracing::info!(dest = %connector.destination(), retries = s.retries - 1, "giving up reconnecting");
                return;
            }
            let nominal = (s.nominal.as_secs_f64() * s.factor).min(s.max_delay.as_secs_f64());
            s.nominal = Duration::from_secs_f64(nominal);
            // Jitter what is scheduled, not the curve: Twisted stores the
            // jittered value and grows from it, which turns the delay into a
            // random walk around the curve.
            let spread = nominal * s.jitter * (2.0 * s.rng.f64() - 1.0);
            let d = Duration::from_secs_f64((nominal + spread).max(0.0)).min(s.max_delay);
            s.delay = d;
            d
        };
        tracing::debug!(dest = %connector.destination(), ?delay, "reconnecting later");
        // The pending retry owns the connector until it fires or is
        // cancelled (a fire-and-forget client has no other owner).
        let c = connector.clone();
        let call = reactor.call_later(delay, move || c.connect());
        self.state.borrow_mut().pending = Some(call);
    }
}

impl<F: ClientFactory> Factory for ReconnectingClientFactory<F> {
    fn build_protocol(&mut self, addr: &Address) -> Option<Box<dyn Protocol>> {
        self.reset_delay();
        self.state.borrow_mut().inner.build_protocol(addr)
    }
    fn start_factory(&mut self) {
        self.state.borrow_mut().inner.start_factory()
    }
    fn stop_factory(&mut self) {
        self.state.borrow_mut().inner.stop_factory()
    }
}

impl<F: ClientFactory> ClientFactory for ReconnectingClientFactory<F> {
    fn started_connecting(&mut self, connector: &Connector) {
        self.state.borrow_mut().connector = Some(connector.downgrade());
        self.state.borrow_mut().inner.started_connecting(connector);
    }

    fn client_connection_failed(&mut self, connector: &Connector, reason: &ConnectError) {
        self.state
            .borrow_mut()
            .inner
            .client_connection_failed(connector, reason);
        self.retry(connector);
    }

    fn client_connection_lost(&mut self, connector: &Connector, reason: &CloseReason) {
        self.state
            .borrow_mut()
            .inner
            .client_connection_lost(connector, reason);
        self.retry(connector);
    }
}

impl<F> fmt::Debug for ReconnectingClientFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("ReconnectingClientFactory")
            .field("delay", &s.delay)
            .field("retries", &s.retries)
            .field("continue_trying", &s.continue_trying)
            .finish()
    }
}
