//! The job queue shared by worker pools (the reactor's thread pool, the
//! database pool of `braid-db`): a closable, bounded FIFO that worker
//! threads block on.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::defer::Failure;

struct State<J> {
    jobs: VecDeque<J>,
    idle: usize,
    closed: bool,
}

/// Why [`WorkQueue::push`] refused a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// The queue was closed (its pool is shutting down).
    Closed,
    /// The queue held its most jobs, given here.
    Full(usize),
}

impl Refused {
    /// The failure a refused job's Deferred gets: [`Failure::shutdown`]
    /// when closed, a message naming the limit when full.
    pub fn into_failure(self) -> Failure {
        match self {
            Refused::Closed => Failure::shutdown(),
            Refused::Full(max) => Failure::msg(format!("work queue full ({max} jobs)")),
        }
    }
}

/// A closable, bounded FIFO of jobs that worker threads block on.
///
/// ```
/// use std::sync::Arc;
/// use braid::threads::WorkQueue;
///
/// let q: Arc<WorkQueue<u32>> = Arc::new(WorkQueue::new());
/// let worker = { let q = q.clone(); std::thread::spawn(move || {
///     let mut sum = 0;
///     while let Some(n) = q.pop() { sum += n; }
///     sum
/// }) };
/// for n in 1..=3 { q.push(n, 100).ok(); }
/// while q.len() > 0 { std::thread::yield_now(); }
/// assert!(q.close().is_empty());
/// assert_eq!(worker.join().unwrap(), 6);
/// ```
pub struct WorkQueue<J> {
    state: Mutex<State<J>>,
    ready: Condvar,
}

impl<J> Default for WorkQueue<J> {
    fn default() -> Self {
        Self::new()
    }
}

impl<J> std::fmt::Debug for WorkQueue<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("len", &self.len())
            .finish()
    }
}

impl<J> WorkQueue<J> {
    /// An empty, open queue.
    pub fn new() -> Self {
        WorkQueue {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job` unless the queue is closed or holds `max` jobs. On
    /// success, tells whether no worker is idle to take it (start one).
    ///
    /// # Errors
    ///
    /// The job back, with why it was refused.
    pub fn push(&self, job: J, max: usize) -> Result<bool, (J, Refused)> {
        let mut s = self.lock();
        if s.closed {
            return Err((job, Refused::Closed));
        }
        if s.jobs.len() >= max {
            return Err((job, Refused::Full(max)));
        }
        s.jobs.push_back(job);
        let starved = s.idle < s.jobs.len();
        drop(s);
        self.ready.notify_one();
        Ok(starved)
    }

    /// The next job, waiting for one; `None` once closed and empty (the
    /// worker then exits).
    pub fn pop(&self) -> Option<J> {
        let mut s = self.lock();
        loop {
            if let Some(j) = s.jobs.pop_front() {
                return Some(j);
            }
            if s.closed {
                return None;
            }
            s.idle += 1;
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
            s.idle -= 1;
        }
    }

    /// Closes the queue and returns the jobs that never ran.
    pub fn close(&self) -> Vec<J> {
        let drained: Vec<J> = {
            let mut s = self.lock();
            s.closed = true;
            s.jobs.drain(..).collect()
        };
        self.ready.notify_all();
        drained
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// No job waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
