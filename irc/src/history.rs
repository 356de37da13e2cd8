//! Channel history for the IRC server, kept in SQLite through braid's
//! database pool (queries on the pool's threads, replies on the reactor
//! thread) or, with the `postgres` feature, in PostgreSQL through braid-db's
//! pool on the reactor: the last messages of each channel are replayed to
//! whoever joins. Several servers given the same PostgreSQL share it.

use std::fmt;
#[cfg(feature = "postgres")]
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use braid::{Deferred, Failure};
use braid_db::ConnectionPool;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS irc_history (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    prefix TEXT NOT NULL,
    command TEXT NOT NULL,
    text TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS irc_history_channel ON irc_history (channel, id);";

/// Where and how much channel history the server keeps.
#[derive(Clone)]
pub struct History {
    store: Store,
    keep: usize,
}

#[derive(Clone)]
enum Store {
    Sqlite(ConnectionPool),
    #[cfg(feature = "postgres")]
    Postgres(braid_db::postgres::PgPool, Rc<PgWriter>),
}

/// A message to record: channel, prefix, command, text, time.
#[cfg(feature = "postgres")]
type Record = (String, String, String, String, i64);

/// Records in the order they were said, one transaction at a time (the
/// pool's connections would otherwise commit them in any order: seen, a
/// later message stored before an earlier one, and the trim keeping the
/// wrong ones), each transaction taking what has queued meanwhile (up to
/// [`PG_BATCH`]) in one multi-row `INSERT` and one trim per channel: a busy
/// server's history keeps up with it. At most [`PG_QUEUED`] wait (the
/// database down or slow); beyond, records are refused, each refusal
/// logged.
#[cfg(feature = "postgres")]
#[derive(Default)]
struct PgWriter {
    queue: std::cell::RefCell<std::collections::VecDeque<Record>>,
    running: std::cell::Cell<bool>,
    /// The table is known to exist (made once per writer, not per record).
    schema_ready: std::cell::Cell<bool>,
}

/// Records per transaction, at most.
#[cfg(feature = "postgres")]
const PG_BATCH: usize = 256;
/// Records waiting for the database, at most.
#[cfg(feature = "postgres")]
const PG_QUEUED: usize = 10_000;

#[cfg(feature = "postgres")]
impl PgWriter {
    fn push(
        self: &Rc<Self>,
        pool: &braid_db::postgres::PgPool,
        reactor: &braid::Reactor,
        keep: i64,
        r: Record,
    ) {
        if self.queue.borrow().len() >= PG_QUEUED {
            tracing::warn!(
                channel = r.0,
                "IRC history: PostgreSQL is behind; a message is not recorded"
            );
            return;
        }
        self.queue.borrow_mut().push_back(r);
        if self.running.replace(true) {
            return;
        }
        let (me, pool) = (self.clone(), pool.clone());
        drop(reactor.spawn_local(async move {
            loop {
                let batch: Vec<Record> = {
                    let mut q = me.queue.borrow_mut();
                    let n = q.len().min(PG_BATCH);
                    q.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let n = batch.len();
                let schema = me.schema_ready.get();
                let done = pool
                    .run_interaction(move |tx| write_batch(tx, schema, keep, batch))
                    .await;
                match done {
                    Ok(()) => me.schema_ready.set(true),
                    Err(f) => {
                        tracing::warn!(failure = %f, lost = n, "cannot record IRC history")
                    }
                }
            }
            me.running.set(false);
        }));
    }
}

/// Makes the table if missing, under a lock: two transactions making it
/// at once (two servers starting, or a join's replay beside the first
/// record) would race in `CREATE TABLE`, and the loser's transaction
/// would fail (seen: a first burst of messages lost).
#[cfg(feature = "postgres")]
async fn pg_schema(tx: &braid_db::postgres::Transaction) -> Result<(), Failure> {
    tx.query("SELECT pg_advisory_xact_lock(7467527202)", vec![])
        .await?;
    tx.execute(PG_SCHEMA, vec![]).await?;
    tx.execute(PG_INDEX, vec![]).await?;
    Ok(())
}

/// One transaction: the records in one `INSERT`, then each channel
/// trimmed to `keep`.
#[cfg(feature = "postgres")]
async fn write_batch(
    tx: braid_db::postgres::Transaction,
    schema_ready: bool,
    keep: i64,
    batch: Vec<Record>,
) -> Result<(), Failure> {
    use braid_db::rusqlite::types::Value;
    if !schema_ready {
        pg_schema(&tx).await?;
    }
    let mut sql =
        String::from("INSERT INTO irc_history (channel, prefix, command, text, at) VALUES ");
    let mut params = Vec::with_capacity(batch.len() * 5);
    let mut channels: Vec<String> = Vec::new();
    for (i, (channel, prefix, command, text, at)) in batch.into_iter().enumerate() {
        let b = i * 5;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5
        ));
        if !channels.contains(&channel) {
            channels.push(channel.clone());
        }
        params.extend([
            Value::Text(channel),
            Value::Text(prefix),
            Value::Text(command),
            Value::Text(text),
            Value::Integer(at),
        ]);
    }
    // Rows take their ids in the order of the VALUES list: said order.
    tx.execute(&sql, params).await?;
    for channel in channels {
        tx.execute(
            "DELETE FROM irc_history WHERE channel = $1 AND id <= \
             (SELECT id FROM irc_history WHERE channel = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            vec![Value::Text(channel), Value::Integer(keep)],
        )
        .await?;
    }
    Ok(())
}

#[cfg(feature = "postgres")]
const PG_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS irc_history (
    id bigserial PRIMARY KEY,
    channel text NOT NULL,
    prefix text NOT NULL,
    command text NOT NULL,
    text text NOT NULL,
    at bigint NOT NULL
)";

#[cfg(feature = "postgres")]
const PG_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS irc_history_channel ON irc_history (channel, id)";

/// One remembered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remembered {
    pub(crate) prefix: String,
    pub(crate) command: String,
    pub(crate) text: String,
}

impl History {
    /// Keeps the last `keep` messages of each channel in `pool`'s database
    /// (table `irc_history`, created if missing).
    pub fn new(pool: ConnectionPool, keep: usize) -> History {
        History {
            store: Store::Sqlite(pool),
            keep: keep.max(1),
        }
    }

    /// Keeps the last `keep` messages of each channel in PostgreSQL
    /// (table `irc_history`, created if missing), shared by every server
    /// given the same database.
    #[cfg(feature = "postgres")]
    pub fn postgres(pool: braid_db::postgres::PgPool, keep: usize) -> History {
        History {
            store: Store::Postgres(pool, Rc::default()),
            keep: keep.max(1),
        }
    }

    /// Records a message and trims the channel to `keep` messages, in one
    /// transaction off the reactor thread.
    pub(crate) fn record(&self, channel: &str, prefix: &str, command: &str, text: &str) {
        let (channel, prefix, command, text) = (
            channel.to_owned(),
            prefix.to_owned(),
            command.to_owned(),
            text.to_owned(),
        );
        let keep = self.keep as i64;
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        // One arm without the postgres feature.
        #[allow(clippy::infallible_destructuring_match)]
        let pool = match &self.store {
            Store::Sqlite(pool) => pool,
            #[cfg(feature = "postgres")]
            Store::Postgres(pool, writer) => {
                writer.push(
                    pool,
                    pool.reactor(),
                    keep,
                    (channel, prefix, command, text, at),
                );
                return;
            }
        };
        let done = pool.run_interaction(move |tx| {
            tx.execute_batch(SCHEMA)?;
            tx.execute(
                "INSERT INTO irc_history (channel, prefix, command, text, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                braid_db::rusqlite::params![channel, prefix, command, text, at],
            )?;
            tx.execute(
                "DELETE FROM irc_history WHERE channel = ?1 AND id <= \
                 (SELECT id FROM irc_history WHERE channel = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                braid_db::rusqlite::params![channel, keep],
            )?;
            Ok(())
        });
        let _logged = done.add_errback(|f| {
            tracing::warn!(failure = %f, "cannot record IRC history");
            Ok(())
        });
    }

    /// The last messages of `channel`, oldest first.
    pub(crate) fn recent(&self, channel: &str) -> Deferred<Vec<Remembered>, Failure> {
        let channel = channel.to_owned();
        let keep = self.keep as i64;
        // One arm without the postgres feature.
        #[allow(clippy::infallible_destructuring_match)]
        let pool = match &self.store {
            Store::Sqlite(pool) => pool,
            #[cfg(feature = "postgres")]
            Store::Postgres(pool, writer) => {
                use braid_db::rusqlite::types::Value;
                let schema_ready = writer.schema_ready.get();
                return pool.run_interaction(move |tx| async move {
                    if !schema_ready {
                        pg_schema(&tx).await?;
                    }
                    let rows = tx
                        .query(
                            "SELECT prefix, command, text FROM \
                             (SELECT id, prefix, command, text FROM irc_history WHERE channel = $1 ORDER BY id DESC LIMIT $2) AS last \
                             ORDER BY id",
                            vec![Value::Text(channel), Value::Integer(keep)],
                        )
                        .await?;
                    let text = |v: &Value| match v {
                        Value::Text(t) => t.clone(),
                        _ => String::new(),
                    };
                    Ok(rows
                        .iter()
                        .map(|r| Remembered { prefix: text(&r[0]), command: text(&r[1]), text: text(&r[2]) })
                        .collect())
                });
            }
        };
        pool.run_interaction(move |tx| {
            tx.execute_batch(SCHEMA)?;
            let mut stmt = tx.prepare(
                "SELECT prefix, command, text FROM \
                 (SELECT id, prefix, command, text FROM irc_history WHERE channel = ?1 ORDER BY id DESC LIMIT ?2) \
                 ORDER BY id",
            )?;
            let rows = stmt.query_map(braid_db::rusqlite::params![channel, keep], |r| {
                Ok(Remembered { prefix: r.get(0)?, command: r.get(1)?, text: r.get(2)? })
            })?;
            Ok(rows.collect::<braid_db::rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// How many messages are kept per channel.
    pub fn keep(&self) -> usize {
        self.keep
    }
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = match &self.store {
            Store::Sqlite(p) => format!("{p:?}"),
            #[cfg(feature = "postgres")]
            Store::Postgres(p, _) => format!("{p:?}"),
        };
        f.debug_struct("History")
            .field("keep", &self.keep)
            .field("store", &store)
            .finish()
    }
}
