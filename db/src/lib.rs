//! # braid-db
//!
//! A database connection pool for braid: Twisted's `adbapi`, over SQLite
//! (below) and, with the `postgres` feature, PostgreSQL on the reactor
//! itself ([`postgres::PgPool`], no threads).
//!
//! Each worker thread owns one connection for its whole life; queries run
//! there and their results fire Deferreds on the reactor thread, so a GUI
//! never waits on the disk.
//!
//! ```text
//!   reactor thread                       worker threads (one connection each)
//!   run_query(sql, params) ──WorkQueue──▶ worker 1: rusqlite::Connection
//!        │                               worker 2: ...
//!   Deferred ◀── ThreadResolver (call_from_thread) ── the rows, or a Failure
//! ```
//!
//! Built on the core's public worker-completion API
//! ([`Reactor::deferred_from_thread`], [`braid::threads::WorkQueue`]), as
//! any pool of one's own would be.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "postgres")]
pub mod postgres;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::types::Value;
use rusqlite::{Connection, Transaction};

use braid::threads::{ThreadResolver, WorkQueue};
use braid::{panic_message, Deferred, Failure, Reactor, ShutdownPhase, WeakReactor};
/// The rusqlite crate the pool runs, for its types (`Value`, `Connection`, `params!`).
pub use rusqlite;

/// A job for a worker: run on its connection, or failed unrun (refused,
/// or still queued at shutdown). Either way its Deferred fires.
trait Job: Send {
    fn run(self: Box<Self>, conn: &mut rusqlite::Result<Connection>);
    /// Fails the job's Deferred at once, on the reactor thread.
    fn fail(self: Box<Self>, reactor: &Reactor, failure: Failure);
}

struct Typed<T: Send + 'static, F> {
    f: F,
    resolver: ThreadResolver<T>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, Failure> + Send,
{
    fn run(self: Box<Self>, conn: &mut rusqlite::Result<Connection>) {
        let Typed { f, resolver } = *self;
        let result = match conn {
            Ok(c) => match catch_unwind(AssertUnwindSafe(|| f(c))) {
                Ok(r) => r,
                Err(p) => Err(Failure::panicked(panic_message(&*p))),
            },
            Err(e) => Err(Failure::msg(format!(
                "the database connection could not be opened: {e}"
            ))),
        };
        resolver.resolve(result);
    }

    fn fail(self: Box<Self>, reactor: &Reactor, failure: Failure) {
        self.resolver.resolve_now(reactor, Err(failure));
    }
}

type DbJob = Box<dyn Job>;
type Opener = Arc<dyn Fn() -> rusqlite::Result<Connection> + Send + Sync>;

/// A pool of SQLite connections on worker threads.
///
/// ```
/// use braid_db::ConnectionPool;
/// use rusqlite::types::Value;
///
/// let reactor = braid::Reactor::new()?;
/// let pool = ConnectionPool::sqlite_memory(&reactor);
/// let r = reactor.clone();
/// let rows = reactor.block_on(async move {
///     pool.run_operation("CREATE TABLE t (n INTEGER)", vec![]).await?;
///     pool.run_operation("INSERT INTO t VALUES (?1), (?2)", vec![Value::Integer(1), Value::Integer(2)]).await?;
///     pool.run_query("SELECT n FROM t ORDER BY n", vec![]).await
/// })?;
/// assert_eq!(rows.unwrap(), vec![vec![Value::Integer(1)], vec![Value::Integer(2)]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Cloning gives another handle to the same pool. The pool stops with the
/// reactor: queued work fails with [`Failure::shutdown`], running work
/// finishes and is delivered, connections close.
#[derive(Clone)]
pub struct ConnectionPool {
    inner: Rc<Inner>,
}

struct Inner {
    queue: Arc<WorkQueue<DbJob>>,
    reactor: WeakReactor,
    workers: std::cell::RefCell<Vec<JoinHandle<()>>>,
    path: Option<PathBuf>,
}

impl ConnectionPool {
    /// A pool of `connections` (at least 1) connections to the SQLite file
    /// at `path`, created if missing. Connections are opened by the
    /// workers, off the reactor thread; an error opening one fails the
    /// queries sent to it.
    pub fn sqlite(reactor: &Reactor, path: impl AsRef<Path>, connections: usize) -> ConnectionPool {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let open = move || {
            let c = Connection::open(&p)?;
            // Several connections to one file: wait for locks rather than
            // failing at once.
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            Ok(c)
        };
        Self::start(reactor, connections, Arc::new(open), Some(path))
    }

    /// A pool over a private in-memory database (one connection: each
    /// SQLite in-memory connection is a database of its own).
    pub fn sqlite_memory(reactor: &Reactor) -> ConnectionPool {
        Self::start(reactor, 1, Arc::new(Connection::open_in_memory), None)
    }

    /// A pool whose workers open their connection with `open` (to set
    /// pragmas, attach databases, open read-only, ...).
    pub fn with_opener(
        reactor: &Reactor,
        connections: usize,
        open: impl Fn() -> rusqlite::Result<Connection> + Send + Sync + 'static,
    ) -> ConnectionPool {
        Self::start(reactor, connections, Arc::new(open), None)
    }

    fn start(
        reactor: &Reactor,
        connections: usize,
        open: Opener,
        path: Option<PathBuf>,
    ) -> ConnectionPool {
        let queue = Arc::new(WorkQueue::new());
        let mut workers = Vec::new();
        for n in 0..connections.max(1) {
            let (q, o) = (queue.clone(), open.clone());
            match std::thread::Builder::new()
                .name(format!("braid-db-{n}"))
                .spawn(move || db_worker(q, o))
            {
                Ok(j) => workers.push(j),
                Err(e) => tracing::error!(error = %e, "cannot start a database thread"),
            }
        }
        let pool = ConnectionPool {
            inner: Rc::new(Inner {
                queue,
                reactor: reactor.downgrade(),
                workers: workers.into(),
                path,
            }),
        };
        let p = Rc::downgrade(&pool.inner);
        reactor.add_shutdown_trigger(ShutdownPhase::Before, move || {
            if let Some(p) = p.upgrade() {
                ConnectionPool { inner: p }.close_queue();
            }
        });
        let p = Rc::downgrade(&pool.inner);
        reactor.add_shutdown_trigger(ShutdownPhase::During, move || {
            if let Some(p) = p.upgrade() {
                ConnectionPool { inner: p }.close();
            }
        });
        pool
    }

    /// The database file, if the pool was made by [`sqlite`](Self::sqlite).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    ) -> Deferred<T, Failure> {
        let Some(reactor) = self.inner.reactor.upgrade() else {
            return Deferred::fail(Failure::shutdown());
        };
        let (d, resolver) = reactor.deferred_from_thread::<T>();
        let job: DbJob = Box::new(Typed { f, resolver });
        if let Err((job, why)) = self.inner.queue.push(job, usize::MAX) {
            job.fail(&reactor, why.into_failure());
        }
        d
    }

    /// Runs `sql` with `params` and returns every row as a vector of
    /// values. Twisted's `runQuery`.
    ///
    /// A bad statement fails the Deferred with the `rusqlite::Error`
    /// (reach it with [`Failure::downcast_ref`]).
    #[doc(alias = "runQuery")]
    pub fn run_query(&self, sql: &str, params: Vec<Value>) -> Deferred<Vec<Vec<Value>>, Failure> {
        let sql = sql.to_owned();
        self.submit(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let cols = stmt.column_count();
            let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
                (0..cols)
                    .map(|i| row.get::<_, Value>(i))
                    .collect::<rusqlite::Result<Vec<Value>>>()
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Runs a statement that returns no rows; gives the number of rows
    /// changed. Twisted's `runOperation`.
    #[doc(alias = "runOperation")]
    pub fn run_operation(&self, sql: &str, params: Vec<Value>) -> Deferred<usize, Failure> {
        let sql = sql.to_owned();
        self.submit(move |c| {
            Ok(c.prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(params))?)
        })
    }

    /// Runs `f` inside one transaction on a worker's connection: committed
    /// if `f` returns `Ok`, rolled back if it returns `Err` or panics.
    /// Twisted's `runInteraction`.
    #[doc(alias = "runInteraction")]
    pub fn run_interaction<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, Failure> + Send + 'static,
    ) -> Deferred<T, Failure> {
        self.submit(move |c| {
            let tx = c.transaction()?;
            let out = f(&tx)?; // an Err drops tx: rolled back
            tx.commit()?;
            Ok(out)
        })
    }

    fn close_queue(&self) {
        let queued = self.inner.queue.close();
        if let Some(r) = self.inner.reactor.upgrade() {
            for job in queued {
                job.fail(&r, Failure::shutdown());
            }
        }
    }

    /// Stops the pool: queued work fails with [`Failure::shutdown`], the
    /// workers finish what they run and close their connections. Waits for
    /// them (the reactor's shutdown does this by itself).
    pub fn close(&self) {
        self.close_queue();
        let workers = std::mem::take(&mut *self.inner.workers.borrow_mut());
        for w in workers {
            let _ = w.join();
        }
    }
}

fn db_worker(queue: Arc<WorkQueue<DbJob>>, open: Opener) {
    let mut conn = open();
    if let Err(e) = &conn {
        tracing::error!(error = %e, "cannot open the database connection");
    }
    while let Some(job) = queue.pop() {
        job.run(&mut conn);
    }
}

impl fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("path", &self.inner.path)
            .field("workers", &self.inner.workers.borrow().len())
            .finish()
    }
}
