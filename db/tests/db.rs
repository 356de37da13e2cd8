//! The SQLite connection pool, on a real database file.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use braid::{Failure, FailureKind, Reactor};
use braid_db::ConnectionPool;
use rusqlite::types::Value;

/// A fresh database file path under the target directory, removed on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        let mut p = std::env::current_exe().unwrap();
        p.pop();
        p.push(format!("braid-test-{name}-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TempDb(p)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.0.display()));
        }
    }
}

fn int(n: i64) -> Value {
    Value::Integer(n)
}

#[test]
fn interactions_commit_and_roll_back_on_a_real_file() {
    let db = TempDb::new("interactions");
    let reactor = Reactor::new().unwrap();
    let pool = ConnectionPool::sqlite(&reactor, &db.0, 2);
    let me = std::thread::current().id();
    let r = reactor.clone();
    let p = pool.clone();
    let out = reactor
        .block_on(async move {
            p.run_operation(
                "CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER NOT NULL)",
                vec![],
            )
            .await?;
            p.run_interaction(|tx| {
                tx.execute("INSERT INTO accounts VALUES ('ann', 100), ('bob', 50)", [])?;
                Ok(())
            })
            .await?;
            // A transfer that fails midway: the error rolls everything back.
            let failed = p
                .run_interaction(|tx| {
                    tx.execute(
                        "UPDATE accounts SET balance = balance - 70 WHERE name = 'ann'",
                        [],
                    )?;
                    let bob: i64 =
                        tx.query_row("SELECT balance FROM accounts WHERE name = 'bob'", [], |r| {
                            r.get(0)
                        })?;
                    if bob < 1000 {
                        return Err(Failure::msg("bob may not receive it"));
                    }
                    Ok(())
                })
                .await;
            assert_eq!(failed.unwrap_err().to_string(), "bob may not receive it");
            // A panic rolls back too and fails with Panicked.
            braid::testing::quiet_deliberate_panics();
            let panicked = p
                .run_interaction(|tx| -> Result<(), Failure> {
                    tx.execute("DELETE FROM accounts", [])?;
                    panic!("deliberate panic inside a transaction");
                })
                .await;
            assert_eq!(panicked.unwrap_err().kind(), FailureKind::Panicked);
            // A successful transfer commits.
            p.run_interaction(|tx| {
                tx.execute(
                    "UPDATE accounts SET balance = balance - 30 WHERE name = 'ann'",
                    [],
                )?;
                tx.execute(
                    "UPDATE accounts SET balance = balance + 30 WHERE name = 'bob'",
                    [],
                )?;
                Ok(())
            })
            .await?;
            assert_eq!(
                std::thread::current().id(),
                me,
                "results come back on the reactor thread"
            );
            let rows = p
                .run_query("SELECT name, balance FROM accounts ORDER BY name", vec![])
                .await?;
            r.stop();
            Ok::<_, Failure>(rows)
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        out,
        vec![
            vec![Value::Text("ann".into()), int(70)],
            vec![Value::Text("bob".into()), int(80)]
        ]
    );
    // The data is on disk: a plain connection sees it.
    let c = rusqlite::Connection::open(&db.0).unwrap();
    let total: i64 = c
        .query_row("SELECT SUM(balance) FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, 150);
}

#[test]
fn a_bad_query_is_a_clear_error_and_parameters_bind() {
    let reactor = Reactor::new().unwrap();
    let pool = ConnectionPool::sqlite_memory(&reactor);
    let p = pool.clone();
    let (bad, rows) = reactor
        .block_on(async move {
            let bad = p.run_query("SELEC nonsense", vec![]).await.unwrap_err();
            p.run_operation("CREATE TABLE t (a INTEGER, b TEXT, c BLOB, d REAL)", vec![])
                .await
                .unwrap();
            let n = p
                .run_operation(
                    "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
                    vec![
                        int(7),
                        Value::Text("x'; DROP TABLE t; --".into()),
                        Value::Blob(vec![0, 255]),
                        Value::Real(1.5),
                    ],
                )
                .await
                .unwrap();
            assert_eq!(n, 1);
            (
                bad,
                p.run_query("SELECT * FROM t WHERE a = ?1", vec![int(7)])
                    .await
                    .unwrap(),
            )
        })
        .unwrap();
    assert!(bad.downcast_ref::<rusqlite::Error>().is_some(), "{bad:?}");
    assert!(bad.to_string().contains("syntax error"), "{bad}");
    assert_eq!(
        rows,
        vec![vec![
            int(7),
            Value::Text("x'; DROP TABLE t; --".into()),
            Value::Blob(vec![0, 255]),
            Value::Real(1.5)
        ]]
    );
}

#[test]
fn queued_queries_fail_at_shutdown_and_none_is_lost() {
    let db = TempDb::new("shutdown");
    let reactor = Reactor::new().unwrap();
    let pool = ConnectionPool::sqlite(&reactor, &db.0, 1);
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    // A slow first query (a recursive CTE counting to a few million) keeps
    // the single connection busy while the rest queue behind it.
    for i in 0..20 {
        let o = outcomes.clone();
        let sql = if i == 0 {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT COUNT(*) FROM c"
        } else {
            "SELECT 1"
        };
        let _t = pool.run_query(sql, vec![]).add_both(move |r| {
            o.borrow_mut().push(r.map(|_| ()).map_err(|f| f.kind()));
            Ok::<(), Failure>(())
        });
    }
    let r = reactor.clone();
    reactor.call_soon(move || r.stop());
    reactor.run().unwrap();
    let outcomes = outcomes.borrow();
    assert_eq!(outcomes.len(), 20, "every query was answered");
    let shut = outcomes
        .iter()
        .filter(|o| **o == Err(FailureKind::Shutdown))
        .count();
    let ran = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(shut + ran, 20);
    assert!(shut >= 1, "queued work failed with Shutdown: {outcomes:?}");
    // After shutdown, queries fail at once.
    let late = pool.run_query("SELECT 1", vec![]);
    assert_eq!(
        late.result().unwrap().unwrap_err().kind(),
        FailureKind::Shutdown
    );
}
