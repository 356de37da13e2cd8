//! cred's users in a PostgreSQL table.

use braid::{Deferred, Failure, Reactor};
use rusqlite::types::Value;

use super::PgPool;

/// A cred checker whose users live in PostgreSQL (table `braid_users`:
/// `name text PRIMARY KEY, hash text`, argon2id PHC strings as `braid
/// passwd` writes them): several servers given the same database share
/// one list of users. The hash is checked on the reactor's thread pool
/// (argon2 is slow on purpose); an unknown user costs the same time as a
/// known one.
#[derive(Debug, Clone)]
pub struct PgPasswordChecker {
    pool: PgPool,
    /// The table is known to exist.
    table_ready: std::rc::Rc<std::cell::Cell<bool>>,
}

/// The table [`PgPasswordChecker`] reads and [`PgPasswordChecker::set_password`] writes.
const USERS: &str =
    "CREATE TABLE IF NOT EXISTS braid_users (name text PRIMARY KEY, hash text NOT NULL)";

impl PgPasswordChecker {
    /// Users in `pool`'s database.
    pub fn new(pool: PgPool) -> PgPasswordChecker {
        PgPasswordChecker {
            pool,
            table_ready: std::rc::Rc::default(),
        }
    }

    /// Makes the table if missing, once, under a lock: two logins at once
    /// on a new database would race in `CREATE TABLE`, and the loser would
    /// be refused though its password was right.
    async fn make_table(pool: &PgPool, ready: &std::cell::Cell<bool>) -> Result<(), Failure> {
        if ready.get() {
            return Ok(());
        }
        pool.run_interaction(|tx| async move {
            tx.query("SELECT pg_advisory_xact_lock(7467527204)", vec![])
                .await?;
            tx.execute(USERS, vec![]).await?;
            Ok(())
        })
        .await?;
        ready.set(true);
        Ok(())
    }

    /// Adds `user` or changes their password (hashed on the thread pool).
    pub fn set_password(&self, user: &str, password: &str) -> Deferred<(), Failure> {
        let (pool, user, password) = (self.pool.clone(), user.to_owned(), password.to_owned());
        let ready = self.table_ready.clone();
        let reactor = self.pool.inner.reactor.clone();
        let d = Deferred::new();
        let done = d.resolver();
        drop(reactor.clone().spawn_local(async move {
            let r = async {
                let hash = reactor
                    .defer_to_thread(move || braid_cred::hash_password(&password))
                    .await??;
                Self::make_table(&pool, &ready).await?;
                pool.run_operation(
                    "INSERT INTO braid_users (name, hash) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET hash = EXCLUDED.hash",
                    vec![Value::Text(user), Value::Text(hash)],
                )
                .await?;
                Ok::<(), Failure>(())
            }
            .await;
            done.resolve(r);
        }));
        d
    }
}

impl braid_cred::Checker for PgPasswordChecker {
    fn check(
        &self,
        reactor: &Reactor,
        credentials: &braid_cred::Credentials,
    ) -> Deferred<braid_cred::AvatarId, braid_cred::Unauthorized> {
        let braid_cred::Credentials::UsernamePassword { username, password } = credentials else {
            return Deferred::fail(braid_cred::Unauthorized);
        };
        let (pool, reactor) = (self.pool.clone(), reactor.clone());
        let ready = self.table_ready.clone();
        let (user, password) = (username.clone(), password.clone());
        let d = Deferred::new();
        let done = d.resolver();
        drop(reactor.clone().spawn_local(async move {
            let stored = async {
                Self::make_table(&pool, &ready).await?;
                let rows = pool
                    .run_query(
                        "SELECT hash FROM braid_users WHERE name = $1",
                        vec![Value::Text(user.clone())],
                    )
                    .await?;
                Ok::<_, Failure>(match rows.first().and_then(|r| r.first()) {
                    Some(Value::Text(h)) => Some(h.clone()),
                    _ => None,
                })
            }
            .await;
            let result = match stored {
                Ok(hash) => {
                    let ok = reactor
                        .defer_to_thread(move || {
                            braid_cred::verify_password_hash(hash.as_deref(), &password)
                        })
                        .await
                        .unwrap_or(false);
                    if ok {
                        Ok(user)
                    } else {
                        Err(braid_cred::Unauthorized)
                    }
                }
                Err(f) => {
                    tracing::error!(failure = %f, "cannot read the users table");
                    Err(braid_cred::Unauthorized)
                }
            };
            done.resolve(result);
        }));
        d
    }
}
