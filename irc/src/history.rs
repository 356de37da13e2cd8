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

/// Records one at a time, in the order they were said: the pool's
/// connections would otherwise commit them in any order (seen: a later
/// message stored before an earlier one, and the trim keeping the wrong
/// ones).
#[cfg(feature = "postgres")]
#[derive(Default)]
struct PgWriter {
    queue: std::cell::RefCell<std::collections::VecDeque<Record>>,
    running: std::cell::Cell<bool>,
    /// The table is known to exist (made once per writer, not per record).
    schema_ready: std::cell::Cell<bool>,
}

#[cfg(feature = "postgres")]
impl PgWriter {
    fn push(
        self: &Rc<Self>,
        pool: &braid_db::postgres::PgPool,
        reactor: &braid::Reactor,
        keep: i64,
        r: Record,
    ) {
        self.queue.borrow_mut().push_back(r);
        if self.running.replace(true) {
            return;
        }
        let (me, pool) = (self.clone(), pool.clone());
        drop(reactor.spawn_local(async move {
            loop {
                let next = me.queue.borrow_mut().pop_front();
                let Some((channel, prefix, command, text, at)) = next else {
                    break;
                };
                let schema = me.schema_ready.get();
                let done = pool
                    .run_interaction(move |tx| async move {
                        use braid_db::rusqlite::types::Value;
                        if !schema {
                            // Two servers starting at once would race in CREATE TABLE.
                            tx.query("SELECT pg_advisory_xact_lock(7467527202)", vec![]).await?;
                            tx.execute(PG_SCHEMA, vec![]).await?;
                            tx.execute(PG_INDEX, vec![]).await?;
                        }
                        tx.execute(
                            "INSERT INTO irc_history (channel, prefix, command, text, at) VALUES ($1, $2, $3, $4, $5)",
                            vec![Value::Text(channel.clone()), Value::Text(prefix), Value::Text(command), Value::Text(text), Value::Integer(at)],
                        )
                        .await?;
                        tx.execute(
                            "DELETE FROM irc_history WHERE channel = $1 AND id <= \
                             (SELECT id FROM irc_history WHERE channel = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
                            vec![Value::Text(channel), Value::Integer(keep)],
                        )
                        .await?;
                        Ok(())
                    })
                    .await;
                match done {
                    Ok(()) => me.schema_ready.set(true),
                    Err(f) => tracing::warn!(failure = %f, "cannot record IRC history"),
                }
            }
            me.running.set(false);
        }));
    }
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
            Store::Postgres(pool, _) => {
                use braid_db::rusqlite::types::Value;
                return pool.run_interaction(move |tx| async move {
                    tx.execute(PG_SCHEMA, vec![]).await?;
                    tx.execute(PG_INDEX, vec![]).await?;
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
