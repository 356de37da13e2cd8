//! The chat log: every line of every channel and private conversation,
//! kept in a local SQLite file through braid's database pool. Writes and
//! reads run on the pool's worker (started on first use, so an app that
//! never chats starts no thread); results come back on the GUI thread.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use braid::{Deferred, Failure, Reactor};
use braid_db::ConnectionPool;

use crate::model::{Line, LineKind};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY,
    network TEXT NOT NULL,
    buffer TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    nick TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lines_by_buffer ON lines (network, buffer, id);";

/// Where the log lives when no `--history FILE` is given:
/// `$XDG_DATA_HOME/braid/demo-gtk.sqlite3`, else
/// `~/.local/share/braid/demo-gtk.sqlite3`.
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("braid").join("demo-gtk.sqlite3")
}

/// The chat log of one SQLite file.
pub struct ChatLog {
    reactor: Reactor,
    path: PathBuf,
    pool: RefCell<Option<ConnectionPool>>,
}

impl ChatLog {
    /// A log in `path` (created with its folder on first use).
    pub fn new(reactor: &Reactor, path: impl AsRef<Path>) -> ChatLog {
        ChatLog {
            reactor: reactor.clone(),
            path: path.as_ref().to_path_buf(),
            pool: RefCell::new(None),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the pool's worker has been started yet.
    pub fn is_started(&self) -> bool {
        self.pool.borrow().is_some()
    }

    fn pool(&self) -> ConnectionPool {
        self.pool
            .borrow_mut()
            .get_or_insert_with(|| {
                let path = self.path.clone();
                // One connection: writes and reads stay in the order they
                // were asked for.
                ConnectionPool::with_opener(&self.reactor, 1, move || {
                    if let Some(dir) = path.parent() {
                        let _ = std::fs::create_dir_all(dir);
                    }
                    let c = rusqlite::Connection::open(&path)?;
                    c.busy_timeout(std::time::Duration::from_secs(5))?;
                    c.execute_batch(SCHEMA)?;
                    Ok(c)
                })
            })
            .clone()
    }

    /// Records a line of `buffer` on `network`. Failures are logged, not
    /// shown: losing a history line must not disturb the chat.
    pub fn record(&self, network: &str, buffer: &str, line: &Line) {
        let (network, buffer, line) = (network.to_owned(), key(buffer), line.clone());
        let done = self.pool().run_interaction(move |tx| {
            tx.execute(
                "INSERT INTO lines (network, buffer, at_ms, kind, nick, text) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    network,
                    buffer,
                    line.at_ms,
                    line.kind.as_str(),
                    line.nick,
                    line.text
                ],
            )?;
            Ok(())
        });
        let _logged = done.add_errback(|f| {
            tracing::warn!(failure = %f, "cannot record a chat line");
            Ok(())
        });
    }

    /// The last `limit` lines of `buffer`, oldest first: those recorded
    /// before this call, since the log's one connection takes writes and
    /// reads in the order they are asked for (so a line that arrives while
    /// the history loads is not shown twice).
    pub fn recent(
        &self,
        network: &str,
        buffer: &str,
        limit: usize,
    ) -> Deferred<Vec<Line>, Failure> {
        let (network, buffer) = (network.to_owned(), key(buffer));
        self.pool().run_interaction(move |tx| {
            let mut stmt = tx.prepare(
                "SELECT at_ms, kind, nick, text FROM \
                 (SELECT id, at_ms, kind, nick, text FROM lines \
                  WHERE network = ?1 AND buffer = ?2 ORDER BY id DESC LIMIT ?3) \
                 ORDER BY id",
            )?;
            let rows = stmt.query_map(rusqlite::params![network, buffer, limit as i64], |r| {
                Ok(Line {
                    at_ms: r.get(0)?,
                    kind: LineKind::parse(&r.get::<_, String>(1)?),
                    nick: r.get(2)?,
                    text: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

/// Buffers are stored under their IRC-lowercased name.
fn key(buffer: &str) -> String {
    braid_irc::irc_lower(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid::testing::run_until;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    #[test]
    fn lines_come_back_in_order_per_buffer_and_survive_a_new_pool() {
        let dir = std::env::temp_dir().join(format!("braid-chatlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested").join("log.sqlite3");
        let reactor = Reactor::new().unwrap();
        let log = ChatLog::new(&reactor, &path);
        assert!(!log.is_started(), "no worker before the first query");
        for i in 0..30 {
            let mut l = Line::now(LineKind::Message, "bob", &format!("line {i}"));
            l.at_ms = 1_000 + i;
            log.record("net", "#Braid", &l);
        }
        let mut other = Line::now(LineKind::Action, "eve", "elsewhere");
        other.at_ms = 1_000;
        log.record("net", "#other", &other);
        log.record("othernet", "#braid", &other);
        assert!(log.is_started());

        let got: Rc<RefCell<Option<Vec<Line>>>> = Rc::default();
        let g = got.clone();
        let _shown = log
            .recent("net", "#BRAID", 10)
            .add_callback(move |lines| *g.borrow_mut() = Some(lines));
        run_until(&reactor, Duration::from_secs(10), || got.borrow().is_some()).unwrap();
        let texts: Vec<String> = got
            .borrow()
            .as_ref()
            .unwrap()
            .iter()
            .map(|l| l.text.clone())
            .collect();
        let want: Vec<String> = (20..30).map(|i| format!("line {i}")).collect();
        assert_eq!(texts, want, "the last 10, oldest first");
        reactor.stop();
        reactor.run().unwrap();

        // A new process (new reactor and pool) reads the same file.
        let reactor = Reactor::new().unwrap();
        let log = ChatLog::new(&reactor, &path);
        let got: Rc<RefCell<Option<Vec<Line>>>> = Rc::default();
        let g = got.clone();
        let _shown = log
            .recent("net", "#other", 10)
            .add_callback(move |lines| *g.borrow_mut() = Some(lines));
        run_until(&reactor, Duration::from_secs(10), || got.borrow().is_some()).unwrap();
        assert_eq!(got.borrow().as_ref().unwrap(), &vec![other]);
        reactor.stop();
        reactor.run().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
