//! The relay queue as a PostgreSQL table (feature `postgres`): one queue
//! for every worker and machine given the database.
//!
//! ```text
//!   enqueue ─▶ INSERT braid_mail_queue (envelope + message) ─▶ NOTIFY braid_mail_queue
//!   runner  ─▶ UPDATE … SET lease_until = now + LEASE WHERE id IN
//!              (SELECT … due, not leased … FOR UPDATE SKIP LOCKED)   (up to its free slots)
//!              ─▶ attempt ─▶ DELETE (sent or bounced) | UPDATE next_at, lease cleared (deferred)
//!   idle    ─▶ wakes on NOTIFY (an enqueue anywhere), a local enqueue, or when the
//!              next message is due (at least every 30 s)
//! ```
//!
//! Due times and leases are the database's clock (`now()`), so machines
//! whose clocks differ still take turns; a message's age (for the
//! lifetime) is the enqueuing machine's. A runner extends the leases of
//! its attempts under way three times a lease (`QueueConfig::lease`, a
//! minute); one that dies mid-attempt leaves its leases to run out, then
//! another runner tries those messages again: the window SMTP itself
//! leaves, as with the spool.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use braid::{Failure, Reactor};
use braid_db::postgres::{PgConfig, PgListener, PgPool, Transaction};
use braid_db::rusqlite::types::Value;

use super::{Entry, Queue};

/// The longest a runner sleeps between looks at the table.
const POLL: Duration = Duration::from_secs(30);
const CHANNEL: &str = "braid_mail_queue";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS braid_mail_queue (
    id text PRIMARY KEY,
    sender text NOT NULL,
    recipients text NOT NULL,
    attempts integer NOT NULL,
    first_at bigint NOT NULL,
    next_at bigint NOT NULL,
    lease_until bigint,
    leased_by text,
    message bytea NOT NULL)";
const INDEX: &str = "CREATE INDEX IF NOT EXISTS braid_mail_queue_due ON braid_mail_queue (next_at)";
const NOW: &str = "extract(epoch from now())::bigint";

/// The queue's table, its pool and its listener.
pub(super) struct PgStore {
    pool: PgPool,
    /// How long a claim holds (see `QueueConfig::lease`).
    lease: Duration,
    node: String,
    _listener: PgListener,
    schema_ready: Cell<bool>,
    waiting: Cell<usize>,
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::Text(s)) => s.clone(),
        _ => String::new(),
    }
}

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Integer(i)) => *i,
        _ => 0,
    }
}

impl PgStore {
    /// The queue in `config`'s database; `wake` is called when another
    /// process enqueues.
    pub(super) fn new(
        reactor: &Reactor,
        config: PgConfig,
        lease: Duration,
        wake: impl Fn() + 'static,
    ) -> PgStore {
        let pool = PgPool::new(reactor, config, 4);
        let listener = pool.listen_with(CHANNEL, move |_| wake(), |_| {});
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        PgStore {
            pool,
            lease: lease.max(Duration::from_secs(1)),
            node: format!("{:08x}", h.finish() & 0xffff_ffff),
            _listener: listener,
            schema_ready: Cell::new(false),
            waiting: Cell::new(0),
        }
    }

    /// This runner's name in the table's leases (random, new at each start).
    pub(super) fn node(&self) -> &str {
        &self.node
    }

    /// Messages in the queue at the last look.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.get()
    }

    /// Runs `f` in a transaction after making sure the table exists.
    async fn run<T: 'static, F, Fut>(&self, f: F) -> Result<T, Failure>
    where
        F: FnOnce(Transaction) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<T, Failure>> + 'static,
    {
        let ready = self.schema_ready.get();
        let lock = !ready;
        let r = self
            .pool
            .run_interaction(move |tx| async move {
                if lock {
                    tx.query("SELECT pg_advisory_xact_lock(7467527203)", vec![])
                        .await?;
                    tx.execute(SCHEMA, vec![]).await?;
                    tx.execute(INDEX, vec![]).await?;
                }
                f(tx).await
            })
            .await;
        if r.is_ok() {
            self.schema_ready.set(true);
        }
        r
    }

    /// Stores a new message, committed before this returns.
    pub(super) async fn put(&self, id: &str, entry: &Entry, data: Vec<u8>) -> Result<(), Failure> {
        let params = vec![
            Value::Text(id.to_owned()),
            Value::Text(entry.from.clone()),
            Value::Text(entry.to.join("\n")),
            Value::Integer(entry.first as i64),
            Value::Blob(data),
        ];
        self.run(move |tx| async move {
            tx.execute(
                &format!(
                    "INSERT INTO braid_mail_queue \
                     (id, sender, recipients, attempts, first_at, next_at, message) \
                     VALUES ($1, $2, $3, 0, $4, {NOW}, $5)"
                ),
                params,
            )
            .await?;
            // Delivered at commit: idle runners everywhere look.
            tx.query(
                "SELECT pg_notify($1, '')",
                vec![Value::Text(CHANNEL.into())],
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Takes up to `room` due messages for this runner; with how many
    /// wait in all and how long until the next may be due.
    async fn claim(
        &self,
        room: usize,
    ) -> Result<(Vec<(String, Entry)>, usize, Option<u64>), Failure> {
        let node = self.node.clone();
        let lease = self.lease.as_secs() as i64;
        self.run(move |tx| async move {
            let rows = if room == 0 {
                Vec::new()
            } else {
                tx.query(
                    &format!(
                        "UPDATE braid_mail_queue SET lease_until = {NOW} + $2, leased_by = $3 \
                         WHERE id IN (SELECT id FROM braid_mail_queue \
                         WHERE next_at <= {NOW} AND (lease_until IS NULL OR lease_until < {NOW}) \
                         ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
                         RETURNING id, sender, recipients, attempts, first_at, next_at"
                    ),
                    vec![
                        Value::Integer(room as i64),
                        Value::Integer(lease),
                        Value::Text(node),
                    ],
                )
                .await?
            };
            let claimed = rows
                .iter()
                .map(|r| {
                    let to = text(r.get(2));
                    (
                        text(r.first()),
                        Entry {
                            from: text(r.get(1)),
                            to: to.lines().map(str::to_owned).collect(),
                            attempts: int(r.get(3)) as u32,
                            first: int(r.get(4)) as u64,
                            next: int(r.get(5)) as u64,
                        },
                    )
                })
                .collect();
            let left = tx
                .query(
                    &format!(
                        "SELECT count(*), min(greatest(next_at, coalesce(lease_until, 0))) - {NOW} \
                         FROM braid_mail_queue"
                    ),
                    vec![],
                )
                .await?;
            let row = left.first();
            let waiting = int(row.and_then(|r| r.first())) as usize;
            let next = match row.and_then(|r| r.get(1)) {
                Some(Value::Integer(s)) => Some((*s).max(0) as u64),
                _ => None,
            };
            Ok((claimed, waiting, next))
        })
        .await
    }

    /// The bytes of a message this runner holds.
    pub(super) async fn message(&self, id: &str) -> Result<Vec<u8>, Failure> {
        let rows = self
            .pool
            .run_query(
                "SELECT message FROM braid_mail_queue WHERE id = $1",
                vec![Value::Text(id.to_owned())],
            )
            .await?;
        match rows.first().and_then(|r| r.first()) {
            Some(Value::Blob(b)) => Ok(b.clone()),
            _ => Err(Failure::msg(format!(
                "queue: message {id} is not in the table"
            ))),
        }
    }

    /// Defers a message this runner holds by `wait` seconds (the
    /// database's clock) and lets it go.
    pub(super) async fn reschedule(
        &self,
        id: &str,
        entry: &Entry,
        wait: u64,
    ) -> Result<(), Failure> {
        self.pool
            .run_operation(
                &format!(
                    "UPDATE braid_mail_queue SET recipients = $2, attempts = $3, \
                     next_at = {NOW} + $4, lease_until = NULL, leased_by = NULL \
                     WHERE id = $1 AND leased_by = $5"
                ),
                vec![
                    Value::Text(id.to_owned()),
                    Value::Text(entry.to.join("\n")),
                    Value::Integer(i64::from(entry.attempts)),
                    Value::Integer(wait as i64),
                    Value::Text(self.node.clone()),
                ],
            )
            .await
            .map(drop)
    }

    /// Extends the leases this runner holds.
    async fn renew(&self) -> Result<u64, Failure> {
        self.pool
            .run_operation(
                &format!(
                    "UPDATE braid_mail_queue SET lease_until = {NOW} + $2 \
                     WHERE leased_by = $1 AND lease_until IS NOT NULL"
                ),
                vec![
                    Value::Text(self.node.clone()),
                    Value::Integer(self.lease.as_secs() as i64),
                ],
            )
            .await
    }

    /// Removes a message this runner holds (sent or bounced).
    pub(super) async fn remove(&self, id: &str) -> Result<(), Failure> {
        self.pool
            .run_operation(
                "DELETE FROM braid_mail_queue WHERE id = $1 AND leased_by = $2",
                vec![Value::Text(id.to_owned()), Value::Text(self.node.clone())],
            )
            .await
            .map(drop)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self._listener.stop();
    }
}

impl Queue {
    /// The runner of a queue in PostgreSQL: claims what is due, up to
    /// its free slots, attempts each, and sleeps until woken or the next
    /// message is due.
    pub(super) async fn run_shared(&self) {
        let Some(pg) = &self.inner.pg else { return };
        let (q, pg_lease) = (self.clone(), pg.lease);
        drop(self.inner.reactor.spawn_local(async move {
            loop {
                // Renewed three times a lease: a slow attempt keeps it.
                q.inner.reactor.sleep(pg_lease / 3).await;
                let busy = !q.inner.in_flight.borrow().is_empty();
                if let (true, Some(pg)) = (busy, &q.inner.pg) {
                    if let Err(f) = pg.renew().await {
                        tracing::warn!(failure = %f, "queue: cannot extend its leases");
                    }
                }
            }
        }));
        loop {
            let room = self
                .inner
                .config
                .concurrency
                .saturating_sub(self.inner.in_flight.borrow().len());
            let mut wait = POLL;
            match pg.claim(room).await {
                Ok((claimed, waiting, next)) => {
                    pg.waiting.set(waiting);
                    if let Some(s) = next {
                        wait = Duration::from_secs(s.clamp(1, POLL.as_secs()));
                    }
                    for (id, entry) in claimed {
                        self.inner.entries.borrow_mut().insert(id.clone(), entry);
                        self.inner.in_flight.borrow_mut().insert(id.clone());
                        let q = self.clone();
                        drop(self.inner.reactor.spawn_local(async move {
                            q.attempt(&id).await;
                            q.inner.in_flight.borrow_mut().remove(&id);
                            q.wake();
                        }));
                    }
                }
                Err(f) => {
                    tracing::warn!(failure = %f, "queue: cannot look at PostgreSQL; trying again");
                    wait = Duration::from_secs(5);
                }
            }
            let _ = self.inner.reactor.timeout(wait, self.woken()).await;
        }
    }
}
