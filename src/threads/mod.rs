//! Threads: blocking work off the reactor thread, results back on it.
//! Twisted's `deferToThread`, `reactor.getThreadPool()` and
//! `blockingCallFromThread`.
//!
//! - [`Reactor::defer_to_thread`] runs a closure on the reactor's
//!   [`ThreadPool`].
//! - [`Reactor::deferred_from_thread`] makes a Deferred and a `Send`
//!   [`ThreadResolver`] that fires it, on the reactor thread, from any
//!   thread: what a pool of one's own is built on (the SQLite pool of
//!   `braid-db` keeps one connection per worker this way), with a
//!   [`WorkQueue`] for its jobs.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use std::marker::PhantomData;

use crate::defer::{Deferred, Failure};
use crate::panics::panic_message;
use crate::reactor::{Completion, Reactor, ReactorHandle, ShutdownPhase, WeakReactor};

mod work_queue;
pub use work_queue::{Refused, WorkQueue};

pub(crate) type Output = Box<dyn Any + Send>;
type Job = (usize, Box<dyn FnOnce() -> Output + Send>);

/// Default most worker threads (Twisted's default pool has 10).
pub const DEFAULT_MAX_THREADS: usize = 10;
/// Default most queued jobs before `defer_to_thread` fails at once.
pub const DEFAULT_MAX_QUEUE: usize = 100_000;

/// The reactor's thread pool (see [`Reactor::thread_pool`]).
///
/// - **Size**: workers start on demand, up to `max_threads` (default 10),
///   and then stay for the reactor's life; an idle pool costs no wakeups.
/// - **Queue**: at most `max_queue` jobs wait (default 100,000); past that
///   `defer_to_thread` returns a Deferred that has already failed.
/// - **Shutdown**: when the reactor stops (its `Before` phase) the pool
///   takes no more jobs and every job still queued fails with
///   [`Failure::shutdown`]; jobs already running finish, the workers are
///   joined (so shutdown waits for them), and their results are delivered
///   before the reactor's loop ends. No job is lost silently.
pub struct ThreadPool {
    queue: Arc<WorkQueue<Job>>,
    handle: ReactorHandle,
    reactor: WeakReactor,
    in_flight: Rc<Cell<usize>>,
    workers: RefCell<Vec<JoinHandle<()>>>,
    max_threads: Cell<usize>,
    max_queue: Cell<usize>,
}

impl ThreadPool {
    pub(crate) fn new(reactor: &Reactor) -> Rc<ThreadPool> {
        let pool = Rc::new(ThreadPool {
            queue: Arc::new(WorkQueue::new()),
            handle: reactor.handle(),
            reactor: reactor.downgrade(),
            in_flight: Rc::default(),
            workers: RefCell::default(),
            max_threads: Cell::new(DEFAULT_MAX_THREADS),
            max_queue: Cell::new(DEFAULT_MAX_QUEUE),
        });
        let p = Rc::downgrade(&pool);
        reactor.add_shutdown_trigger(ShutdownPhase::Before, move || {
            if let Some(p) = p.upgrade() {
                p.close();
            }
        });
        let p = Rc::downgrade(&pool);
        reactor.add_shutdown_trigger(ShutdownPhase::During, move || {
            if let Some(p) = p.upgrade() {
                p.join();
            }
        });
        pool
    }

    /// Sets the most worker threads (at least 1). Lowering it does not
    /// stop workers already started.
    pub fn set_max_threads(&self, n: usize) {
        self.max_threads.set(n.max(1));
    }

    /// Sets the most queued jobs (at least 1).
    pub fn set_max_queue(&self, n: usize) {
        self.max_queue.set(n.max(1));
    }

    /// Worker threads started so far.
    pub fn threads(&self) -> usize {
        self.workers.borrow().len()
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Jobs submitted whose results have not been delivered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    pub(crate) fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Deferred<T, Failure> {
        let (d, completion) = completion_for::<T>();
        let Some(reactor) = self.reactor.upgrade() else {
            completion(Err(Failure::shutdown()));
            return d;
        };
        let job: Box<dyn FnOnce() -> Output + Send> = Box::new(move || Box::new(f()) as Output);
        let in_flight = self.in_flight.clone();
        in_flight.set(in_flight.get() + 1);
        let counted: Completion = Box::new(move |r| {
            in_flight.set(in_flight.get() - 1);
            completion(r)
        });
        let id = reactor.register_completion(counted);
        match self.queue.push((id, job), self.max_queue.get()) {
            Ok(starved) => {
                if starved && self.workers.borrow().len() < self.max_threads.get() {
                    self.spawn_worker();
                }
            }
            Err((_, why)) => reactor.complete(id, Err(why.into_failure())),
        }
        d
    }

    fn spawn_worker(&self) {
        let queue = self.queue.clone();
        let handle = self.handle.clone();
        let n = self.workers.borrow().len();
        let spawned = std::thread::Builder::new()
            .name(format!("braid-pool-{n}"))
            .spawn(move || worker(queue, handle));
        match spawned {
            Ok(j) => self.workers.borrow_mut().push(j),
            Err(e) => tracing::error!(error = %e, "cannot start a pool thread"),
        }
    }

    fn close(&self) {
        let queued = self.queue.close();
        if let Some(r) = self.reactor.upgrade() {
            for (id, job) in queued {
                drop(job);
                r.complete(id, Err(Failure::shutdown()));
            }
        }
    }

    fn join(&self) {
        self.close();
        let workers = std::mem::take(&mut *self.workers.borrow_mut());
        for w in workers {
            let _ = w.join();
        }
    }
}

fn worker(queue: Arc<WorkQueue<Job>>, handle: ReactorHandle) {
    while let Some((id, job)) = queue.pop() {
        let result =
            catch_unwind(AssertUnwindSafe(job)).map_err(|p| Failure::panicked(panic_message(&*p)));
        let sent = handle.call_from_thread_with(move |r| r.complete(id, result));
        if sent.is_err() {
            return; // the reactor is gone: nobody to deliver to
        }
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .field("max_threads", &self.max_threads.get())
            .field("queued", &self.queued())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// Fires a Deferred on the reactor thread from any thread: made by
/// [`Reactor::deferred_from_thread`].
///
/// `Send`: give it to a worker thread, which calls
/// [`resolve`](Self::resolve) with the result; the Deferred fires on the
/// reactor thread at its next dispatch. Dropped unresolved (a worker that
/// panicked or exited), it fails the Deferred with a message, so no caller
/// waits forever. If the reactor is gone by then, the result is dropped.
#[must_use = "a ThreadResolver fires its Deferred only when resolved"]
pub struct ThreadResolver<T: Send + 'static> {
    handle: ReactorHandle,
    id: usize,
    done: bool,
    _t: PhantomData<fn(T)>,
}

impl<T: Send + 'static> ThreadResolver<T> {
    /// Delivers `result` to the Deferred, on the reactor thread.
    pub fn resolve(mut self, result: Result<T, Failure>) {
        self.done = true;
        self.send(result.map(|v| Box::new(v) as Output));
    }

    /// Delivers `result` at once, from the reactor thread: for a job that
    /// never reached a worker (refused, or still queued at shutdown), so
    /// its Deferred fails before the caller looks at it.
    ///
    /// # Panics
    ///
    /// If `reactor` is not the reactor that made this resolver.
    pub fn resolve_now(mut self, reactor: &Reactor, result: Result<T, Failure>) {
        assert!(
            Arc::ptr_eq(&self.handle.shared, &reactor.handle().shared),
            "resolve_now on another reactor than the resolver's"
        );
        self.done = true;
        reactor.complete(self.id, result.map(|v| Box::new(v) as Output));
    }

    fn send(&self, result: Result<Output, Failure>) {
        let id = self.id;
        // The reactor gone means nobody waits for the result.
        let _ = self
            .handle
            .call_from_thread_with(move |r| r.complete(id, result));
    }
}

impl<T: Send + 'static> Drop for ThreadResolver<T> {
    fn drop(&mut self) {
        if !self.done {
            self.send(Err(Failure::msg(
                "the worker dropped its result without resolving it",
            )));
        }
    }
}

impl<T: Send + 'static> fmt::Debug for ThreadResolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadResolver")
            .field("id", &self.id)
            .finish()
    }
}

/// A Deferred for a `T` computed on another thread, and the reactor-side
/// completion that fires it from a type-erased result.
pub(crate) fn completion_for<T: Send + 'static>() -> (Deferred<T, Failure>, Completion) {
    let d = Deferred::new();
    let resolver = d.resolver();
    let completion: Completion = Box::new(move |r: Result<Output, Failure>| {
        resolver.resolve(r.map(|b| {
            *b.downcast::<T>()
                .expect("a job's output has the job's type")
        }));
    });
    (d, completion)
}

impl Reactor {
    /// A Deferred that another thread fires with the [`ThreadResolver`]
    /// returned beside it; its callbacks run on the reactor thread.
    ///
    /// ```
    /// let reactor = braid::Reactor::new()?;
    /// let (d, resolver) = reactor.deferred_from_thread::<u64>();
    /// std::thread::spawn(move || resolver.resolve(Ok((1..=10).sum())));
    /// assert_eq!(reactor.block_on(d)?.unwrap(), 55);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn deferred_from_thread<T: Send + 'static>(
        &self,
    ) -> (Deferred<T, Failure>, ThreadResolver<T>) {
        let (d, completion) = completion_for::<T>();
        let id = self.register_completion(completion);
        let resolver = ThreadResolver {
            handle: self.handle(),
            id,
            done: false,
            _t: PhantomData,
        };
        (d, resolver)
    }

    /// The reactor's thread pool, created (with no threads yet) on first
    /// use. Configure it before the first job.
    #[doc(alias = "getThreadPool")]
    pub fn thread_pool(&self) -> Rc<ThreadPool> {
        let mut slot = self.inner.pool.borrow_mut();
        if let Some(p) = &*slot {
            return p.clone();
        }
        let p = ThreadPool::new(self);
        *slot = Some(p.clone());
        p
    }

    /// Runs `f` on the thread pool; its result (or its panic, as
    /// [`Failure::panicked`]) fires the returned Deferred on the reactor
    /// thread. Await it, or chain callbacks onto it.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = braid::Reactor::new()?;
    /// let r = reactor.clone();
    /// let sum = reactor.block_on(async move {
    ///     r.defer_to_thread(|| (1..=100u64).sum::<u64>()).await
    /// })?;
    /// assert_eq!(sum.unwrap(), 5050);
    /// # std::io::Result::Ok(())
    /// ```
    #[doc(alias = "deferToThread")]
    pub fn defer_to_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Deferred<T, Failure> {
        self.thread_pool().submit(f)
    }
}
