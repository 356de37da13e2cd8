#![cfg(unix)]
//! The PostgreSQL pool against a real PostgreSQL (Debian's, which
//! `./scripts/test.sh` installs), started here once on a loopback port
//! with SCRAM-SHA-256 logins: queries with parameters of every kind,
//! typed errors, transactions, a cap on connections, LISTEN/NOTIFY, and
//! the server restarted under the pool.

#[path = "../../tests/common/postgres_server.rs"]
mod postgres_server;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::run_until;
use braid::{Deferred, Failure, Reactor};
use braid_db::postgres::{PgError, PgErrorKind, PgPool};
use rusqlite::types::Value;

fn wait<T: 'static, E: From<Failure> + std::fmt::Debug + 'static>(
    reactor: &Reactor,
    d: Deferred<T, E>,
) -> Result<T, E> {
    braid::testing::run_until_fired(reactor, Duration::from_secs(30), d).unwrap()
}

fn pg_error(f: &Failure) -> &PgError {
    f.downcast_ref::<PgError>()
        .unwrap_or_else(|| panic!("not a PgError: {f}"))
}

/// One server for every check, in order (tests of one binary run at once;
/// this keeps a single PostgreSQL).
#[test]
fn the_pool_against_a_real_postgresql() {
    let mut server = postgres_server::Server::start_new();
    let reactor = Reactor::new().unwrap();
    let pool = PgPool::new(&reactor, server.config("braid-secret"), 2);

    // Parameters of every kind, apart from the SQL; columns typed back.
    wait(&reactor, pool.run_operation(
        "CREATE TABLE t (id serial PRIMARY KEY, n bigint, x float8, s text UNIQUE, b bytea, f bool)",
        vec![],
    ))
    .unwrap();
    let tricky = "it's; DROP TABLE t; --";
    let changed = wait(&reactor, pool.run_operation(
        "INSERT INTO t (n, x, s, b, f) VALUES ($1, $2, $3, $4, $5), ($6, NULL, $7, NULL, false)",
        vec![
            Value::Integer(-7),
            Value::Real(2.5),
            Value::Text(tricky.into()),
            Value::Blob(vec![0, 1, 254, 255]),
            Value::Integer(1),
            Value::Integer(9_000_000_000),
            Value::Text("second".into()),
        ],
    ))
    .unwrap();
    assert_eq!(changed, 2);
    let rows = wait(
        &reactor,
        pool.run_query("SELECT n, x, s, b, f FROM t ORDER BY id", vec![]),
    )
    .unwrap();
    assert_eq!(
        rows,
        vec![
            vec![
                Value::Integer(-7),
                Value::Real(2.5),
                Value::Text(tricky.into()),
                Value::Blob(vec![0, 1, 254, 255]),
                Value::Integer(1)
            ],
            vec![
                Value::Integer(9_000_000_000),
                Value::Null,
                Value::Text("second".into()),
                Value::Null,
                Value::Integer(0)
            ],
        ]
    );
    let one = wait(
        &reactor,
        pool.run_query(
            "SELECT s FROM t WHERE s = $1",
            vec![Value::Text(tricky.into())],
        ),
    )
    .unwrap();
    assert_eq!(one.len(), 1, "the text was a value, never SQL");

    // Typed errors with the SQLSTATE.
    let e = wait(&reactor, pool.run_query("SELEC 1", vec![])).unwrap_err();
    assert_eq!(
        (pg_error(&e).kind(), pg_error(&e).code()),
        (PgErrorKind::Server, Some("42601"))
    );
    let e = wait(
        &reactor,
        pool.run_operation(
            "INSERT INTO t (s) VALUES ($1)",
            vec![Value::Text("second".into())],
        ),
    )
    .unwrap_err();
    assert_eq!(pg_error(&e).code(), Some("23505"), "unique violation: {e}");
    // The connection is still good after an error.
    assert_eq!(
        wait(&reactor, pool.run_query("SELECT 1", vec![])).unwrap(),
        vec![vec![Value::Integer(1)]]
    );

    // Transactions: Ok commits, Err rolls back.
    wait(
        &reactor,
        pool.run_interaction(|tx| async move {
            tx.execute(
                "INSERT INTO t (s) VALUES ($1)",
                vec![Value::Text("kept".into())],
            )
            .await?;
            Ok(())
        }),
    )
    .unwrap();
    let e = wait(
        &reactor,
        pool.run_interaction(|tx| async move {
            tx.execute(
                "INSERT INTO t (s) VALUES ($1)",
                vec![Value::Text("undone".into())],
            )
            .await?;
            Err::<(), _>(Failure::msg("changed my mind"))
        }),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "changed my mind");
    let names = wait(
        &reactor,
        pool.run_query("SELECT s FROM t WHERE s IN ('kept', 'undone')", vec![]),
    )
    .unwrap();
    assert_eq!(names, vec![vec![Value::Text("kept".into())]]);

    // Ten at once on a pool of two: they queue, two connections serve all.
    let ds: Vec<_> = (0..10)
        .map(|i| {
            pool.run_query(
                "SELECT $1::int + 1, pg_sleep(0.01)",
                vec![Value::Integer(i)],
            )
        })
        .collect();
    for (i, d) in ds.into_iter().enumerate() {
        assert_eq!(
            wait(&reactor, d).unwrap()[0][0],
            Value::Integer(i as i64 + 1)
        );
    }
    assert_eq!(pool.open_connections(), 2);

    // LISTEN/NOTIFY as events, with a payload given as a parameter.
    let heard = Rc::new(RefCell::new(Vec::new()));
    let h = heard.clone();
    let states = Rc::new(RefCell::new(Vec::new()));
    let st = states.clone();
    let listener = pool.listen_with(
        "chat room",
        move |n| h.borrow_mut().push((n.channel, n.payload)),
        move |up| st.borrow_mut().push(up),
    );
    run_until(&reactor, Duration::from_secs(30), || {
        listener.is_listening()
    })
    .unwrap();
    wait(
        &reactor,
        pool.run_query(
            "SELECT pg_notify($1, $2)",
            vec![Value::Text("chat room".into()), Value::Text("hello".into())],
        ),
    )
    .unwrap();
    run_until(&reactor, Duration::from_secs(30), || {
        !heard.borrow().is_empty()
    })
    .unwrap();
    assert_eq!(
        heard.borrow()[0],
        ("chat room".to_owned(), "hello".to_owned())
    );

    // The server restarts: idle connections are replaced, the listener
    // comes back and hears again.
    server.stop();
    run_until(&reactor, Duration::from_secs(30), || {
        !listener.is_listening()
    })
    .unwrap();
    let e = wait(&reactor, pool.run_query("SELECT 1", vec![])).unwrap_err();
    assert_eq!(pg_error(&e).kind(), PgErrorKind::Connect, "down: {e}");
    server.run();
    assert_eq!(
        wait(&reactor, pool.run_query("SELECT 2", vec![])).unwrap(),
        vec![vec![Value::Integer(2)]]
    );
    run_until(&reactor, Duration::from_secs(60), || {
        listener.is_listening()
    })
    .unwrap();
    wait(
        &reactor,
        pool.run_query("SELECT pg_notify('chat room', 'again')", vec![]),
    )
    .unwrap();
    run_until(&reactor, Duration::from_secs(30), || {
        heard.borrow().len() == 2
    })
    .unwrap();
    // Told of each LISTEN and of the loss between them (a mirror reads
    // its table again on `true`).
    assert_eq!(*states.borrow(), [true, false, true]);
    listener.stop();

    // Users in a table: cred's checker over the same database. Several
    // checkers making the table at once (servers starting together) all
    // succeed: it is made under a lock.
    use braid_cred::{Checker, Credentials};
    let makers: Vec<_> = (0..4)
        .map(|i| {
            let own = PgPool::new(&reactor, server.config("braid-secret"), 1);
            braid_db::postgres::PgPasswordChecker::new(own).set_password(&format!("u{i}"), "pw")
        })
        .collect();
    for d in makers {
        wait(&reactor, d).unwrap();
    }
    let users = braid_db::postgres::PgPasswordChecker::new(pool.clone());
    wait(&reactor, users.set_password("alice", "first")).unwrap();
    wait(&reactor, users.set_password("alice", "second")).unwrap();
    let who = wait(
        &reactor,
        users.check(&reactor, &Credentials::password("alice", "second")),
    );
    assert_eq!(who.unwrap(), "alice");
    for (u, p) in [("alice", "first"), ("alice", ""), ("nobody", "second")] {
        assert!(
            wait(
                &reactor,
                users.check(&reactor, &Credentials::password(u, p))
            )
            .is_err(),
            "{u}/{p}"
        );
    }
    let stored = wait(
        &reactor,
        pool.run_query("SELECT hash FROM braid_users", vec![]),
    )
    .unwrap();
    assert!(
        matches!(&stored[0][0], Value::Text(h) if h.starts_with("$argon2id$")),
        "hashed, never clear"
    );

    // A wrong password: refused, typed.
    let bad = PgPool::new(&reactor, server.config("wrong"), 1);
    let e = wait(&reactor, bad.run_query("SELECT 1", vec![])).unwrap_err();
    assert_eq!(
        (pg_error(&e).kind(), pg_error(&e).code()),
        (PgErrorKind::Auth, Some("28P01")),
        "{e}"
    );
}
