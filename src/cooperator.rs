//! Long work split into steps run between frames: Twisted's
//! `task.Cooperator` and `cooperate`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::defer::{Deferred, Failure, Resolver};
use crate::panics::catch_panic;
use crate::reactor::{DelayedCall, Reactor, WeakReactor};

/// What a cooperative task's step says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// More to do: call the step again.
    Continue,
    /// Finished: the task's Deferred fires.
    Done,
}

type StepFn = Box<dyn FnMut() -> Step>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    Running,
    Paused,
    Done,
}

struct TaskInner {
    step: RefCell<StepFn>,
    state: Cell<TaskState>,
    done: RefCell<Option<Resolver<(), Failure>>>,
    /// How it ended, kept until `when_done` asks (if it had not yet).
    outcome: RefCell<Option<Result<(), Failure>>>,
    cooperator: Weak<CoopInner>,
    steps: Cell<u64>,
}

struct CoopInner {
    me: Weak<CoopInner>,
    reactor: WeakReactor,
    budget: Duration,
    tasks: RefCell<Vec<Rc<TaskInner>>>,
    /// The next turn, when one is scheduled.
    turn: RefCell<Option<DelayedCall>>,
    /// Index of the task the next turn starts with (round robin).
    next: Cell<usize>,
}

/// Runs long work in small steps between the host loop's other work, with
/// a time budget per turn: Twisted's `Cooperator`. A GUI indexes a mailbox,
/// parses a large file or fills a table this way on its own thread, and
/// every frame still gets drawn.
///
/// Each turn calls the tasks' steps round robin until the budget (default
/// 10 ms, as Twisted's) is spent, then yields to the loop and takes another
/// turn at once (a zero-delay call, so input and redraws queued meanwhile
/// go first).
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use braid::{Cooperator, Reactor, Step};
///
/// let reactor = Reactor::new()?;
/// let coop = Cooperator::new(&reactor);
/// let sum = Rc::new(Cell::new(0u64));
/// let (s, mut n) = (sum.clone(), 0u64);
/// let task = coop.cooperate(move || {
///     n += 1;
///     s.set(s.get() + n);
///     if n == 10_000 { Step::Done } else { Step::Continue }
/// });
/// reactor.block_on(task.when_done())?.unwrap();
/// assert_eq!(sum.get(), 50_005_000);
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct Cooperator {
    inner: Rc<CoopInner>,
}

impl Cooperator {
    /// A cooperator on `reactor` with a 10 ms budget per turn.
    pub fn new(reactor: &Reactor) -> Cooperator {
        Self::with_budget(reactor, Duration::from_millis(10))
    }

    /// A cooperator spending at most `budget` per turn (at least one step
    /// runs each turn, whatever the budget).
    pub fn with_budget(reactor: &Reactor, budget: Duration) -> Cooperator {
        Cooperator {
            inner: Rc::new_cyclic(|me| CoopInner {
                me: me.clone(),
                reactor: reactor.downgrade(),
                budget,
                tasks: RefCell::default(),
                turn: RefCell::default(),
                next: Cell::new(0),
            }),
        }
    }

    /// Runs `step` until it says [`Step::Done`] (Twisted's `cooperate`).
    /// A panic in it ends the task with [`Failure::panicked`].
    pub fn cooperate(&self, step: impl FnMut() -> Step + 'static) -> CooperativeTask {
        let task = Rc::new(TaskInner {
            step: RefCell::new(Box::new(step)),
            state: Cell::new(TaskState::Running),
            done: RefCell::default(),
            outcome: RefCell::default(),
            cooperator: self.inner.me.clone(),
            steps: Cell::new(0),
        });
        self.inner.tasks.borrow_mut().push(task.clone());
        self.inner.schedule();
        CooperativeTask { inner: task }
    }

    /// Tasks not finished yet (running or paused).
    pub fn tasks(&self) -> usize {
        self.inner.tasks.borrow().len()
    }
}

impl CoopInner {
    fn schedule(&self) {
        if self.turn.borrow().is_some() {
            return;
        }
        let runnable = self
            .tasks
            .borrow()
            .iter()
            .any(|t| t.state.get() == TaskState::Running);
        if !runnable {
            return;
        }
        let (Some(reactor), Some(me)) = (self.reactor.upgrade(), self.me.upgrade()) else {
            return;
        };
        let call = reactor.call_later(Duration::ZERO, move || me.run_turn());
        *self.turn.borrow_mut() = Some(call);
    }

    fn run_turn(&self) {
        self.turn.borrow_mut().take();
        // Real time: the budget is the thread's time spent on steps, whatever
        // clock the reactor's timers run on.
        let started = std::time::Instant::now();
        loop {
            let task = {
                let tasks = self.tasks.borrow();
                let running: Vec<&Rc<TaskInner>> = tasks
                    .iter()
                    .filter(|t| t.state.get() == TaskState::Running)
                    .collect();
                if running.is_empty() {
                    break;
                }
                let i = self.next.get() % running.len();
                self.next.set(i + 1);
                running[i].clone()
            };
            task.run_step();
            if started.elapsed() >= self.budget {
                break;
            }
        }
        self.tasks
            .borrow_mut()
            .retain(|t| t.state.get() != TaskState::Done);
        self.schedule();
    }
}

impl TaskInner {
    fn run_step(self: &Rc<Self>) {
        self.steps.set(self.steps.get() + 1);
        let r = match self.step.try_borrow_mut() {
            Ok(mut f) => catch_panic("cooperative task", &mut *f),
            Err(_) => return,
        };
        match r {
            Some(Step::Continue) => {}
            Some(Step::Done) => self.finish(Ok(())),
            None => self.finish(Err(Failure::panicked("a cooperative task's step panicked"))),
        }
    }

    fn finish(&self, result: Result<(), Failure>) {
        if self.state.replace(TaskState::Done) == TaskState::Done {
            return;
        }
        let done = self.done.borrow_mut().take();
        match done {
            Some(r) => r.resolve(result),
            // Nobody asked yet: kept for when_done.
            None => *self.outcome.borrow_mut() = Some(result),
        }
    }
}

/// A task running on a [`Cooperator`]: Twisted's `CooperativeTask`.
#[derive(Clone)]
pub struct CooperativeTask {
    inner: Rc<TaskInner>,
}

impl CooperativeTask {
    /// Stops taking steps until [`resume`](Self::resume).
    pub fn pause(&self) {
        if self.inner.state.get() == TaskState::Running {
            self.inner.state.set(TaskState::Paused);
        }
    }

    /// Takes steps again.
    pub fn resume(&self) {
        if self.inner.state.get() == TaskState::Paused {
            self.inner.state.set(TaskState::Running);
            if let Some(c) = self.inner.cooperator.upgrade() {
                c.schedule();
            }
        }
    }

    /// Ends the task now: its Deferred fails with [`Failure::cancelled`].
    pub fn stop(&self) {
        self.inner.finish(Err(Failure::cancelled()));
    }

    /// Whether the task finished (done, failed or stopped).
    pub fn is_done(&self) -> bool {
        self.inner.state.get() == TaskState::Done
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.inner.steps.get()
    }

    /// A Deferred that fires when the task is done, or fails if it
    /// panicked or was stopped (Twisted's `whenDone`). One per task: a
    /// second call gets a Deferred that has already failed.
    #[doc(alias = "whenDone")]
    pub fn when_done(&self) -> Deferred<(), Failure> {
        if let Some(result) = self.inner.outcome.borrow_mut().take() {
            return match result {
                Ok(()) => Deferred::succeed(()),
                Err(f) => Deferred::fail(f),
            };
        }
        if self.is_done() {
            return Deferred::fail(Failure::msg("when_done was already asked for"));
        }
        let d = Deferred::new();
        *self.inner.done.borrow_mut() = Some(d.resolver());
        d
    }
}

impl fmt::Debug for CooperativeTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CooperativeTask")
            .field("state", &self.inner.state.get())
            .field("steps", &self.inner.steps.get())
            .finish()
    }
}

impl fmt::Debug for Cooperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cooperator")
            .field("budget", &self.inner.budget)
            .field("tasks", &self.tasks())
            .finish()
    }
}
