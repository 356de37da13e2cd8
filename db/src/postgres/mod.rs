//! PostgreSQL on the reactor itself (the `postgres` feature): the
//! rust-postgres project's sans-IO `postgres-protocol` for the wire, braid's
//! async streams for the sockets, no threads and no tokio.
//!
//! ```text
//!   PgPool::run_query(sql, params) ─▶ an idle connection (or a new one, up to the cap,
//!        │                             or wait for one) ─▶ Parse/Bind/Describe/Execute/Sync
//!   Deferred ◀── rows as rusqlite `Value`s ◀── RowDescription, DataRow…, CommandComplete
//!   PgPool::listen(channel, f) ─▶ its own connection: LISTEN, then every NOTIFY as f(..),
//!                                  reconnecting (and listening again) if the server goes
//! ```
//!
//! Why on the reactor and not `postgres` on the pool's threads: the
//! `postgres` crate is tokio-postgres driving a tokio runtime of its own
//! per connection, which is what braid exists to avoid; and `LISTEN`/
//! `NOTIFY` (what several `braid chat` servers need between them) are
//! events on a connection, which a reactor delivers as they come and a
//! blocking worker could only poll for.
//!
//! The API is the SQLite pool's: [`run_query`](PgPool::run_query),
//! [`run_operation`](PgPool::run_operation),
//! [`run_interaction`](PgPool::run_interaction) (a transaction: committed
//! on `Ok`, rolled back on `Err`), with rusqlite's [`Value`] for
//! parameters and columns. Parameters always travel apart from the SQL
//! (the extended protocol's Bind, in text form, typed by the server):
//! nothing is ever put into the statement's text. Failures are
//! [`Failure`]s holding a [`PgError`] (`failure.downcast_ref::<PgError>()`)
//! with the server's SQLSTATE. A connection the server dropped (a
//! restart) is noticed when it is next taken and replaced; a query that
//! was running on it fails with [`PgErrorKind::ConnectionLost`] and is not
//! sent again (it may have run).

mod users;
mod wire;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use braid::{Deferred, Failure, JoinHandle, Reactor};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend;
use rusqlite::types::Value;

pub use users::PgPasswordChecker;
pub use wire::Connect;
use wire::{field_text, tcp_connect, Conn, Outcome};

/// How to reach the server.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// Host name or address.
    pub host: String,
    /// Port (5432).
    pub port: u16,
    /// The role to log in as.
    pub user: String,
    /// Its password (SCRAM-SHA-256, MD5 or clear text, as the server asks).
    pub password: Option<String>,
    /// The database (the user's name if empty).
    pub database: String,
    /// Time allowed to connect and log in. 10 s.
    pub connect_timeout: Duration,
    /// The largest message accepted from the server (a row, an error).
    /// 64 MiB.
    pub max_message: usize,
}

impl fmt::Debug for PgConfig {
    /// The password is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// Parses `postgres://user:password@host:port/database` (or
    /// `postgresql://`); user and password percent-decoded.
    ///
    /// ```
    /// let c = braid_db::postgres::PgConfig::parse("postgres://chat:s%40cret@db.internal/braid").unwrap();
    /// assert_eq!((c.user.as_str(), c.password.as_deref(), c.host.as_str(), c.port, c.database.as_str()),
    ///            ("chat", Some("s@cret"), "db.internal", 5432, "braid"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`PgErrorKind::Config`] for anything else.
    pub fn parse(url: &str) -> Result<PgConfig, PgError> {
        let bad = || {
            PgError::new(
                PgErrorKind::Config,
                "expected postgres://user[:password]@host[:port][/database]",
            )
        };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(bad)?;
        let (auth, rest) = rest.rsplit_once('@').ok_or_else(bad)?;
        let (user, password) = match auth.split_once(':') {
            Some((u, p)) => (decode(u), Some(decode(p))),
            None => (decode(auth), None),
        };
        let (hostport, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().map_err(|_| bad())?)
            }
            _ => (hostport, 5432),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if user.is_empty() || host.is_empty() {
            return Err(bad());
        }
        Ok(PgConfig {
            host: host.to_owned(),
            port,
            database: if database.is_empty() {
                user.clone()
            } else {
                decode(database)
            },
            user,
            password,
            connect_timeout: Duration::from_secs(10),
            max_message: 64 << 20,
        })
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PgErrorKind {
    /// A bad URL or setting.
    Config,
    /// The server could not be reached (refused, unreachable, timed out).
    Connect,
    /// The login was refused (SQLSTATE 28xxx) or needs a method braid does
    /// not speak.
    Auth,
    /// The server refused the statement: [`PgError::code`] has the
    /// SQLSTATE (`23505` a unique violation, `42601` a syntax error, ...).
    Server,
    /// The connection ended while a statement ran (the server restarted,
    /// the network failed): it may or may not have run.
    ConnectionLost,
    /// The server said something that is not PostgreSQL's protocol, or
    /// more than the cap.
    Protocol,
}

/// A PostgreSQL failure, with the server's fields when it sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    kind: PgErrorKind,
    code: Option<String>,
    message: String,
    detail: Option<String>,
}

impl PgError {
    fn new(kind: PgErrorKind, message: impl Into<String>) -> PgError {
        PgError {
            kind,
            code: None,
            message: message.into(),
            detail: None,
        }
    }

    fn from_fields(body: &backend::ErrorResponseBody) -> PgError {
        let mut e = PgError::new(PgErrorKind::Server, "");
        let mut fields = body.fields();
        while let Ok(Some(f)) = fields.next() {
            match f.type_() {
                b'C' => e.code = Some(field_text(&f)),
                b'M' => e.message = field_text(&f),
                b'D' => e.detail = Some(field_text(&f)),
                _ => {}
            }
        }
        if e.code.as_deref().is_some_and(|c| c.starts_with("28")) {
            e.kind = PgErrorKind::Auth;
        }
        e
    }

    fn io(kind: PgErrorKind, e: &io::Error) -> PgError {
        PgError::new(kind, e.to_string())
    }

    /// The kind of failure.
    pub fn kind(&self) -> PgErrorKind {
        self.kind
    }

    /// The SQLSTATE the server gave, if it gave one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The server's (or braid's) words.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The server's detail line, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(c) => write!(f, "PostgreSQL {c}: {}", self.message)?,
            None => write!(f, "PostgreSQL: {}", self.message)?,
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PgError {}

/// A `NOTIFY` heard by [`PgPool::listen`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The channel.
    pub channel: String,
    /// The payload (empty if none).
    pub payload: String,
    /// The server process that sent it.
    pub process_id: i32,
}

/// A pool of PostgreSQL connections on the reactor (see the
/// [module](self)). Cloning gives another handle to the same pool.
#[derive(Clone)]
pub struct PgPool {
    inner: Rc<Pool>,
}

struct Pool {
    reactor: Reactor,
    config: PgConfig,
    connect: Connect,
    max: usize,
    idle: RefCell<Vec<Conn>>,
    open: Cell<usize>,
    waiting: RefCell<VecDeque<Waker>>,
}

impl fmt::Debug for PgPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPool")
            .field("config", &self.inner.config)
            .field("open", &self.inner.open.get())
            .field("idle", &self.inner.idle.borrow().len())
            .finish()
    }
}

/// A connection taken from the pool; back in it when dropped, unless it
/// broke.
struct Lease {
    pool: Rc<Pool>,
    conn: Option<Conn>,
    broken: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        match self.conn.take() {
            Some(c) if !self.broken => self.pool.idle.borrow_mut().push(c),
            _ => self.pool.open.set(self.pool.open.get() - 1),
        }
        if let Some(w) = self.pool.waiting.borrow_mut().pop_front() {
            w.wake();
        }
    }
}

impl Lease {
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<Outcome, PgError> {
        let conn = self.conn.as_mut().expect("a leased connection");
        let r = conn.execute(sql, params).await;
        if let Err(e) = &r {
            self.broken |= matches!(e.kind, PgErrorKind::ConnectionLost | PgErrorKind::Protocol);
        }
        r
    }
}

impl PgPool {
    /// A pool of at most `connections` connections to `config`'s server,
    /// made as they are needed.
    pub fn new(reactor: &Reactor, config: PgConfig, connections: usize) -> PgPool {
        PgPool::with_connect(reactor, config, connections, tcp_connect())
    }

    /// A pool whose connections come from `connect` instead of TCP to
    /// `config`'s host (the login still uses `config`).
    pub fn with_connect(
        reactor: &Reactor,
        config: PgConfig,
        connections: usize,
        connect: Connect,
    ) -> PgPool {
        PgPool {
            inner: Rc::new(Pool {
                reactor: reactor.clone(),
                config,
                connect,
                max: connections.max(1),
                idle: RefCell::default(),
                open: Cell::new(0),
                waiting: RefCell::default(),
            }),
        }
    }

    /// The reactor the pool runs on.
    pub fn reactor(&self) -> &Reactor {
        &self.inner.reactor
    }

    /// Connections open now (idle or in use).
    pub fn open_connections(&self) -> usize {
        self.inner.open.get()
    }

    async fn lease(&self) -> Result<Lease, PgError> {
        let pool = &self.inner;
        loop {
            let idle = pool.idle.borrow_mut().pop();
            if let Some(mut c) = idle {
                if c.still_good() {
                    return Ok(Lease {
                        pool: pool.clone(),
                        conn: Some(c),
                        broken: false,
                    });
                }
                // The server dropped it while idle (a restart): a new one.
                tracing::info!("PostgreSQL connection went away while idle; reconnecting");
                pool.open.set(pool.open.get() - 1);
                continue;
            }
            if pool.open.get() < pool.max {
                pool.open.set(pool.open.get() + 1);
                return match Conn::connect(&pool.reactor, &pool.config, &pool.connect).await {
                    Ok(c) => Ok(Lease {
                        pool: pool.clone(),
                        conn: Some(c),
                        broken: false,
                    }),
                    Err(e) => {
                        pool.open.set(pool.open.get() - 1);
                        if let Some(w) = pool.waiting.borrow_mut().pop_front() {
                            w.wake();
                        }
                        Err(e)
                    }
                };
            }
            // Every connection is busy: wait for one to come back.
            let mut queued = false;
            poll_fn(|cx| {
                if queued {
                    return Poll::Ready(());
                }
                queued = true;
                pool.waiting.borrow_mut().push_back(cx.waker().clone());
                Poll::Pending
            })
            .await;
        }
    }

    fn spawn<T: 'static>(
        &self,
        f: impl Future<Output = Result<T, PgError>> + 'static,
    ) -> Deferred<T, Failure> {
        let d = Deferred::new();
        let done = d.resolver();
        drop(self.inner.reactor.spawn_local(async move {
            done.resolve(f.await.map_err(Failure::from));
        }));
        d
    }

    /// Runs `sql` with `params` (`$1`, `$2`, ...) and gives every row, as
    /// the SQLite pool's `run_query` does. Twisted's `runQuery`.
    #[doc(alias = "runQuery")]
    pub fn run_query(&self, sql: &str, params: Vec<Value>) -> Deferred<Vec<Vec<Value>>, Failure> {
        let (me, sql) = (self.clone(), sql.to_owned());
        self.spawn(async move {
            let mut lease = me.lease().await?;
            Ok(lease.execute(&sql, &params).await?.rows)
        })
    }

    /// Runs a statement and gives the number of rows it changed (or
    /// returned). Twisted's `runOperation`.
    #[doc(alias = "runOperation")]
    pub fn run_operation(&self, sql: &str, params: Vec<Value>) -> Deferred<u64, Failure> {
        let (me, sql) = (self.clone(), sql.to_owned());
        self.spawn(async move {
            let mut lease = me.lease().await?;
            Ok(lease.execute(&sql, &params).await?.affected)
        })
    }

    /// Runs `f` inside one transaction on one connection: committed if
    /// its future gives `Ok`, rolled back if it gives `Err`. Twisted's
    /// `runInteraction`.
    ///
    /// ```no_run
    /// # fn demo(pool: braid_db::postgres::PgPool) {
    /// use rusqlite::types::Value;
    /// let d = pool.run_interaction(|tx| async move {
    ///     tx.execute("UPDATE accounts SET balance = balance - $1 WHERE id = $2", vec![Value::Integer(10), Value::Integer(1)]).await?;
    ///     tx.execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2", vec![Value::Integer(10), Value::Integer(2)]).await?;
    ///     Ok(())
    /// });
    /// # drop(d); }
    /// ```
    #[doc(alias = "runInteraction")]
    pub fn run_interaction<T, F, Fut>(&self, f: F) -> Deferred<T, Failure>
    where
        T: 'static,
        F: FnOnce(Transaction) -> Fut + 'static,
        Fut: Future<Output = Result<T, Failure>> + 'static,
    {
        let me = self.clone();
        let d = Deferred::new();
        let done = d.resolver();
        drop(self.inner.reactor.spawn_local(async move {
            let result = async {
                let mut lease = me.lease().await.map_err(Failure::from)?;
                lease.execute("BEGIN", &[]).await.map_err(Failure::from)?;
                let lease = Rc::new(RefCell::new(Some(lease)));
                let out = f(Transaction {
                    lease: lease.clone(),
                })
                .await;
                let mut lease = lease
                    .borrow_mut()
                    .take()
                    .ok_or_else(|| Failure::msg("the transaction's connection is in use"))?;
                match out {
                    Ok(v) => {
                        lease.execute("COMMIT", &[]).await.map_err(Failure::from)?;
                        Ok(v)
                    }
                    Err(e) => {
                        // A failed rollback leaves the connection in doubt.
                        if lease.execute("ROLLBACK", &[]).await.is_err() {
                            lease.broken = true;
                        }
                        Err(e)
                    }
                }
            }
            .await;
            done.resolve(result);
        }));
        d
    }

    /// Listens on `channel` on a connection of its own: every `NOTIFY`
    /// on it is given to `on_notify`, on the reactor thread. If the
    /// connection is lost it is made again (1 s, doubling to 30 s) and
    /// listens again; notifications sent meanwhile are lost (PostgreSQL
    /// keeps none for a listener that is gone). Stop it with
    /// [`PgListener::stop`].
    #[doc(alias = "LISTEN")]
    pub fn listen(&self, channel: &str, on_notify: impl Fn(Notification) + 'static) -> PgListener {
        self.listen_with(channel, on_notify, |_| {})
    }

    /// [`listen`](Self::listen), also telling `on_state` when listening
    /// starts (`true`: after each `LISTEN`, the first and every one after a
    /// reconnection) and when it is lost (`false`). What a listener that
    /// mirrors a table needs: read the table again on `true`, as anything
    /// notified while it was gone was lost.
    pub fn listen_with(
        &self,
        channel: &str,
        on_notify: impl Fn(Notification) + 'static,
        on_state: impl Fn(bool) + 'static,
    ) -> PgListener {
        let (reactor, config) = (self.inner.reactor.clone(), self.inner.config.clone());
        let connect = self.inner.connect.clone();
        let sql = format!("LISTEN \"{}\"", channel.replace('"', "\"\""));
        let on_notify: Rc<dyn Fn(Notification)> = Rc::new(on_notify);
        let listening = Rc::new(Cell::new(false));
        let l = listening.clone();
        let task = reactor.clone().spawn_local(async move {
            let mut wait = Duration::from_secs(1);
            loop {
                match Conn::connect(&reactor, &config, &connect).await {
                    Ok(mut c) => {
                        c.notify = Some(on_notify.clone());
                        if let Err(e) = c.execute(&sql, &[]).await {
                            tracing::warn!(error = %e, "PostgreSQL LISTEN failed");
                        } else {
                            l.set(true);
                            on_state(true);
                            wait = Duration::from_secs(1);
                            // Nothing more to send: read notifications until it ends.
                            let e = loop {
                                if let Err(e) = c.read().await {
                                    break e;
                                }
                            };
                            l.set(false);
                            on_state(false);
                            tracing::info!(error = %e, "PostgreSQL listener lost; reconnecting");
                        }
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "PostgreSQL listener cannot connect; retrying")
                    }
                }
                reactor.sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        });
        PgListener { task, listening }
    }
}

/// A connection inside [`PgPool::run_interaction`]'s transaction.
pub struct Transaction {
    lease: Rc<RefCell<Option<Lease>>>,
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transaction")
    }
}

impl Transaction {
    async fn run(&self, sql: &str, params: Vec<Value>) -> Result<Outcome, Failure> {
        let mut lease = self
            .lease
            .borrow_mut()
            .take()
            .ok_or_else(|| Failure::msg("one statement at a time in a transaction"))?;
        let r = lease.execute(sql, &params).await;
        *self.lease.borrow_mut() = Some(lease);
        r.map_err(Failure::from)
    }

    /// A query in the transaction: its rows.
    pub async fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>, Failure> {
        Ok(self.run(sql, params).await?.rows)
    }

    /// A statement in the transaction: the rows it changed.
    pub async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, Failure> {
        Ok(self.run(sql, params).await?.affected)
    }
}

/// A running [`PgPool::listen`].
#[derive(Debug)]
pub struct PgListener {
    task: JoinHandle<()>,
    listening: Rc<Cell<bool>>,
}

impl PgListener {
    /// Whether it is connected and listening now.
    pub fn is_listening(&self) -> bool {
        self.listening.get()
    }

    /// Stops listening and closes its connection.
    pub fn stop(&self) {
        self.task.abort();
        self.listening.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::wire::column;
    use super::*;

    #[test]
    fn urls_and_columns() {
        let c = PgConfig::parse("postgresql://u@[::1]:6543").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.database.as_str(), c.password),
            ("::1", 6543, "u", None)
        );
        assert!(PgConfig::parse("mysql://u@h").is_err());
        assert!(PgConfig::parse("postgres://h").is_err());
        assert!(
            !format!("{:?}", PgConfig::parse("postgres://u:hunter2@h").unwrap())
                .contains("hunter2")
        );
        assert_eq!(column(23, Some(b"42")), Value::Integer(42));
        assert_eq!(column(16, Some(b"t")), Value::Integer(1));
        assert_eq!(column(701, Some(b"1.5")), Value::Real(1.5));
        assert_eq!(column(17, Some(b"\\x00ff")), Value::Blob(vec![0, 255]));
        assert_eq!(column(25, None), Value::Null);
        assert_eq!(
            column(1700, Some(b"1.10")),
            Value::Text("1.10".into()),
            "numeric stays exact"
        );
    }
}
