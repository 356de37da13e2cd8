//! Channel history for the IRC server, kept in SQLite through braid's
//! database pool: the last messages of each channel are replayed to whoever
//! joins. Queries run on the pool's threads; replies come back on the
//! reactor thread.

use std::fmt;
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
    pool: ConnectionPool,
    keep: usize,
}

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
            pool,
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
        let done = self.pool.run_interaction(move |tx| {
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
        self.pool.run_interaction(move |tx| {
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
        f.debug_struct("History")
            .field("keep", &self.keep)
            .field("pool", &self.pool)
            .finish()
    }
}
