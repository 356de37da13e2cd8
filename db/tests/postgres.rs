//! The PostgreSQL pool against a real PostgreSQL (Debian's, which
//! `./scripts/test.sh` installs), started here once on a loopback port
//! with SCRAM-SHA-256 logins: queries with parameters of every kind,
//! typed errors, transactions, a cap on connections, LISTEN/NOTIFY, and
//! the server restarted under the pool.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::testing::run_until;
use braid::{Deferred, Failure, Reactor};
use braid_db::postgres::{PgConfig, PgError, PgErrorKind, PgPool};
use rusqlite::types::Value;

/// A private PostgreSQL: its data directory and its process.
struct Server {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The postgres user's uid and gid, from /etc/passwd.
fn postgres_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("a postgres user (Debian's postgresql package makes it)");
    let f: Vec<&str> = line.split(':').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// `program`, as the postgres user when we are root (PostgreSQL refuses
/// to run as root): the process itself, no `su` in between, so that a
/// signal reaches it.
fn as_owner(program: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(program);
    if is_root() {
        let (uid, gid) = postgres_ids();
        c.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    c
}

impl Server {
    fn start_new() -> Server {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL (Debian's postgresql; ./scripts/test.sh installs it)")
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = std::env::temp_dir().join(format!("braid-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        std::fs::write(dir.join("pw"), "braid-secret\n").unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let out = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                "braid",
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", dir.join("pw").display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Server {
            dir,
            bin,
            port,
            child: None,
        };
        s.run();
        s
    }

    fn run(&mut self) {
        let child = as_owner(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .arg("-k")
            .arg(self.dir.join("sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        // A real process on real time: wait until it takes connections.
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < end, "postgres did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A fast shutdown (SIGINT: sessions are told and closed).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    fn config(&self, password: &str) -> PgConfig {
        PgConfig::parse(&format!(
            "postgres://braid:{password}@127.0.0.1:{}/postgres",
            self.port
        ))
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait<T: 'static>(reactor: &Reactor, d: Deferred<T, Failure>) -> Result<T, Failure> {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    d.add_both(move |r| {
        *o.borrow_mut() = Some(r);
        Ok::<(), Failure>(())
    });
    run_until(reactor, Duration::from_secs(30), || out.borrow().is_some()).unwrap();
    let r = out.borrow_mut().take().unwrap();
    r
}

fn pg_error(f: &Failure) -> &PgError {
    f.downcast_ref::<PgError>()
        .unwrap_or_else(|| panic!("not a PgError: {f}"))
}

/// One server for every check, in order (tests of one binary run at once;
/// this keeps a single PostgreSQL).
#[test]
fn the_pool_against_a_real_postgresql() {
    let mut server = Server::start_new();
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
    let listener = pool.listen("chat room", move |n| {
        h.borrow_mut().push((n.channel, n.payload))
    });
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
    listener.stop();

    // A wrong password: refused, typed.
    let bad = PgPool::new(&reactor, server.config("wrong"), 1);
    let e = wait(&reactor, bad.run_query("SELECT 1", vec![])).unwrap_err();
    assert_eq!(
        (pg_error(&e).kind(), pg_error(&e).code()),
        (PgErrorKind::Auth, Some("28P01")),
        "{e}"
    );
}
