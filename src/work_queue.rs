//! The job queue shared by braid's worker pools (the thread pool and the
//! database pool): a closable, bounded FIFO that worker threads block on.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

struct State<J> {
    jobs: VecDeque<J>,
    idle: usize,
    closed: bool,
}

/// Why [`WorkQueue::push`] refused a job.
pub(crate) enum Refused {
    Closed,
    Full(usize),
}

pub(crate) struct WorkQueue<J> {
    state: Mutex<State<J>>,
    ready: Condvar,
}

impl<J> WorkQueue<J> {
    pub(crate) fn new() -> Self {
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
    pub(crate) fn push(&self, job: J, max: usize) -> Result<bool, (J, Refused)> {
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
    pub(crate) fn pop(&self) -> Option<J> {
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
    pub(crate) fn close(&self) -> Vec<J> {
        let drained: Vec<J> = {
            let mut s = self.lock();
            s.closed = true;
            s.jobs.drain(..).collect()
        };
        self.ready.notify_all();
        drained
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().jobs.len()
    }
}
