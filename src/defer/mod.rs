//! Results not computed yet: [`Deferred`] (callback chains) and its
//! combinators. Futures and tasks live on the reactor
//! ([`Reactor::spawn_local`](crate::Reactor::spawn_local)); the two convert
//! both ways.

mod deferred;
mod failure;

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

pub use deferred::{Deferred, Resolver};
pub use failure::{Failure, FailureKind};

/// Waits for all of `ds`; succeeds with their values in order, or fails
/// with the first failure (fail fast), cancelling the others. Twisted's
/// `gatherResults(consumeErrors=True)`.
///
/// # Examples
///
/// ```
/// use braid::{gather, Deferred, Failure};
///
/// let a: Deferred<u32> = Deferred::new();
/// let b: Deferred<u32> = Deferred::new();
/// let (ra, rb) = (a.resolver(), b.resolver());
/// let all = gather(vec![a, b]);
/// rb.callback(2);
/// ra.callback(1);
/// assert_eq!(all.result().unwrap().unwrap(), vec![1, 2]);
/// ```
#[doc(alias = "gatherResults")]
pub fn gather<T: 'static, E: From<Failure> + fmt::Debug + 'static>(
    ds: Vec<Deferred<T, E>>,
) -> Deferred<Vec<T>, E> {
    let all = DeferredList::new(ds, true);
    all.add_callback_result(|results| results.into_iter().collect())
}

/// The per-input tails of a combinator, by index: cancelling them cancels
/// the inputs still waiting.
type Tails<E> = Vec<Option<Deferred<(), E>>>;

/// Cancels every tail but `except` (whose callback is the one running).
fn cancel_others<E: From<Failure> + fmt::Debug + 'static>(tails: Tails<E>, except: usize) {
    for (j, t) in tails.into_iter().enumerate() {
        if let (true, Some(t)) = (j != except, t) {
            t.cancel();
        }
    }
}

/// Waits for the first success among `ds`, with its index; fails with the
/// last failure if all fail. The others are cancelled once one succeeds.
/// Twisted's `DeferredList(fireOnOneCallback=True)`.
pub fn first_success<T: 'static, E: From<Failure> + fmt::Debug + 'static>(
    ds: Vec<Deferred<T, E>>,
) -> Deferred<(usize, T), E> {
    struct State<T: 'static, E: 'static> {
        resolver: Option<Resolver<(usize, T), E>>,
        left: usize,
        tails: Tails<E>,
    }
    let out = Deferred::new();
    let n = ds.len();
    if n == 0 {
        out.resolver()
            .errback(E::from(Failure::msg("first_success of no Deferreds")));
        return out;
    }
    let state = Rc::new(RefCell::new(State {
        resolver: Some(out.resolver()),
        left: n,
        tails: Vec::new(),
    }));
    for (i, d) in ds.into_iter().enumerate() {
        let st = state.clone();
        let tail = d.add_both(move |r: Result<T, E>| {
            let mut s = st.borrow_mut();
            s.left -= 1;
            let Some(res) = s.resolver.take() else {
                return Ok(());
            };
            match r {
                Ok(v) => {
                    let tails = std::mem::take(&mut s.tails);
                    drop(s);
                    res.callback((i, v));
                    cancel_others(tails, i);
                }
                Err(e) if s.left == 0 => {
                    drop(s);
                    res.errback(e);
                }
                Err(_) => s.resolver = Some(res),
            }
            Ok::<(), E>(())
        });
        state.borrow_mut().tails.push(Some(tail));
    }
    out
}

/// Waits for every one of several Deferreds: Twisted's `DeferredList`.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeferredList;

impl DeferredList {
    /// Succeeds, once all of `ds` have fired, with each one's result in
    /// order; the failures are consumed into the list (none is reported as
    /// unhandled). With `fail_fast`, the first failure fails the whole list
    /// at once instead, and the others are cancelled.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T: 'static, E: From<Failure> + fmt::Debug + 'static>(
        ds: Vec<Deferred<T, E>>,
        fail_fast: bool,
    ) -> Deferred<Vec<Result<T, E>>, E> {
        struct State<T: 'static, E: 'static> {
            results: Vec<Option<Result<T, E>>>,
            left: usize,
            resolver: Option<Resolver<Vec<Result<T, E>>, E>>,
            tails: Tails<E>,
        }
        let out = Deferred::new();
        let n = ds.len();
        let state = Rc::new(RefCell::new(State {
            results: (0..n).map(|_| None).collect(),
            left: n,
            resolver: Some(out.resolver()),
            tails: Vec::new(),
        }));
        if n == 0 {
            let r = state.borrow_mut().resolver.take();
            if let Some(r) = r {
                r.callback(Vec::new());
            }
            return out;
        }
        for (i, d) in ds.into_iter().enumerate() {
            let st = state.clone();
            let tail = d.add_both(move |r: Result<T, E>| {
                let mut s = st.borrow_mut();
                if s.resolver.is_none() {
                    return Ok(()); // already failed fast
                }
                if fail_fast && r.is_err() {
                    let res = s.resolver.take();
                    let tails = std::mem::take(&mut s.tails);
                    drop(s);
                    if let (Some(res), Err(e)) = (res, r) {
                        res.errback(e);
                    }
                    cancel_others(tails, i);
                    return Ok(());
                }
                s.results[i] = Some(r);
                s.left -= 1;
                if s.left == 0 {
                    let res = s.resolver.take();
                    let all: Vec<Result<T, E>> = s
                        .results
                        .drain(..)
                        .map(|r| r.expect("every result is in"))
                        .collect();
                    drop(s);
                    if let Some(res) = res {
                        res.callback(all);
                    }
                }
                Ok(())
            });
            state.borrow_mut().tails.push(Some(tail));
        }
        out
    }
}
