//! Several IRC servers as one network through PostgreSQL: tables for who
//! is where, `LISTEN`/`NOTIFY` for what happens.
//!
//! ```text
//!  server A (node a.1f3c)                 PostgreSQL                     server B
//!  Link calls ─▶ queue ─▶ one transaction ─▶ braid_irc_nodes  (node, pid, seen)
//!               (in order,  per batch       braid_irc_nicks  (nick ▶ node)     ◀─ claims
//!                batched)                   braid_irc_members, braid_irc_topics
//!                           + NOTIFY braid_irc "a.1f3c 17\n:ann PRIVMSG #c :hi\n…" ─▶ LISTEN ─▶ apply
//!  every heartbeat: touch our node; remove nodes whose connection is gone
//!  (or silent past the timeout) ─▶ SQUIT: their users quit everywhere
//! ```
//!
//! Nick ownership is a row per nick, claimed in the transaction that
//! introduces the user, so two servers never give one nick to two
//! users. Everything a server says goes through one connection, one
//! batch at a time, each payload numbered: the others see it in the
//! order it happened, notice a gap (a listener that reconnected) and
//! read the tables again. A server that dies takes its rows with it
//! (`ON DELETE CASCADE` from its node) once another server sweeps it,
//! within a few heartbeats when its connection to PostgreSQL closed.
//!
//! What is not carried: a message said while a server's listener was
//! reconnecting does not reach that server's clients (PostgreSQL keeps
//! no notifications for a listener that is gone); the state is read
//! again when it is back.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::rc::{Rc, Weak};
use std::time::Duration;

use braid::{Deferred, DelayedCall, Failure, Reactor, Resolver};
use braid_db::postgres::{PgConfig, PgError, PgErrorKind, PgListener, PgPool, Transaction};
use braid_db::rusqlite::types::Value;
use irc_proto::{Command, Message};

use super::linked::{Claimed, Link, Remote, Snapshot};
use super::Server;
use crate::names::irc_lower;

/// The `NOTIFY` channel every server of a cluster listens on.
const CHANNEL: &str = "braid_irc";
/// Bytes of lines per notification (PostgreSQL refuses payloads of 8000
/// bytes or more).
const MAX_PAYLOAD: usize = 7000;
/// Changes heard while reading the tables, at most.
const MAX_PENDING: usize = 65_536;

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS braid_irc_nodes (
        node text PRIMARY KEY, pid integer NOT NULL, seen timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS braid_irc_nicks (
        nick_key text PRIMARY KEY,
        node text NOT NULL REFERENCES braid_irc_nodes (node) ON DELETE CASCADE,
        nick text NOT NULL, ident text NOT NULL, host text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS braid_irc_members (
        nick_key text NOT NULL REFERENCES braid_irc_nicks (nick_key) ON DELETE CASCADE,
        channel_key text NOT NULL, channel text NOT NULL,
        PRIMARY KEY (nick_key, channel_key))",
    "CREATE TABLE IF NOT EXISTS braid_irc_topics (channel_key text PRIMARY KEY, topic text NOT NULL)",
];

const CLAIM: &str = "INSERT INTO braid_irc_nicks (nick_key, node, nick, ident, host) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (nick_key) DO UPDATE \
     SET nick = EXCLUDED.nick, ident = EXCLUDED.ident, host = EXCLUDED.host \
     WHERE braid_irc_nicks.node = EXCLUDED.node";
const CLAIM_RENAME: &str = "INSERT INTO braid_irc_nicks (nick_key, node, nick, ident, host) \
     SELECT $1, node, $2, ident, host FROM braid_irc_nicks WHERE nick_key = $3 AND node = $4 \
     ON CONFLICT (nick_key) DO NOTHING";
const RECASE: &str = "UPDATE braid_irc_nicks SET nick = $1 WHERE nick_key = $2 AND node = $3";
const MOVE_MEMBERS: &str = "UPDATE braid_irc_members SET nick_key = $1 WHERE nick_key = $2";
const RELEASE: &str = "DELETE FROM braid_irc_nicks WHERE nick_key = $1 AND node = $2";
const JOIN: &str = "INSERT INTO braid_irc_members (nick_key, channel_key, channel) \
     SELECT $1, $2, $3 WHERE EXISTS \
     (SELECT 1 FROM braid_irc_nicks WHERE nick_key = $1 AND node = $4) \
     ON CONFLICT DO NOTHING";
const PART: &str = "DELETE FROM braid_irc_members WHERE nick_key = $1 AND channel_key = $2";
const FORGET_TOPIC: &str = "DELETE FROM braid_irc_topics WHERE channel_key = $1 AND NOT EXISTS \
     (SELECT 1 FROM braid_irc_members WHERE channel_key = $1)";
const SET_TOPIC: &str = "INSERT INTO braid_irc_topics (channel_key, topic) VALUES ($1, $2) \
     ON CONFLICT (channel_key) DO UPDATE SET topic = EXCLUDED.topic";
const CLEAR_TOPIC: &str = "DELETE FROM braid_irc_topics WHERE channel_key = $1";
/// Our node's row, made or refreshed; `true` if it had to be made.
const TOUCH: &str = "INSERT INTO braid_irc_nodes (node, pid, seen) \
     VALUES ($1, pg_backend_pid(), now()) ON CONFLICT (node) DO UPDATE \
     SET pid = EXCLUDED.pid, seen = EXCLUDED.seen RETURNING (xmax = 0)";
/// Nodes silent past the timeout, or whose connection is gone and that
/// have not been heard from for two heartbeats (a live node refreshes its
/// connection's pid with every batch).
const SWEEP: &str = "DELETE FROM braid_irc_nodes WHERE node <> $1 AND \
     (seen < now() - make_interval(secs => $2) OR (seen < now() - make_interval(secs => $3) \
     AND pid NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL))) RETURNING node";

/// How a [`Cluster`] behaves. `ClusterConfig::default()`, then change
/// what you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// How often a server says it is alive and looks for servers that
    /// are not (2 s).
    pub heartbeat: Duration,
    /// How long a server may be silent before the others remove it and
    /// its users, even if its connection to PostgreSQL looks open (30 s:
    /// a machine that vanished without closing it). A server whose
    /// connection closed (it was killed) goes within two or three
    /// heartbeats.
    pub timeout: Duration,
    /// Bytes of changes waiting for PostgreSQL (while it is down) before
    /// further ones are refused, each refusal logged (4 MiB).
    pub max_queue: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            heartbeat: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            max_queue: 4 << 20,
        }
    }
}

/// One server's place in a cluster of IRC servers sharing channels,
/// users and messages through PostgreSQL (see the module picture in the
/// source, `server/cluster.rs`). Give it to [`ServerConfig::cluster`];
/// one server per `Cluster`.
///
/// ```no_run
/// use braid_irc::{Cluster, IrcServer, ServerConfig};
/// use braid_db::postgres::PgConfig;
///
/// let reactor = braid::Reactor::new()?;
/// let cluster = Cluster::postgres(&reactor, PgConfig::parse("postgres://chat@db.example/chat")?);
/// let mut config = ServerConfig::default();
/// config.cluster = Some(cluster.clone());
/// let server = IrcServer::new(config);
/// // Take clients once the others are known.
/// cluster.when_ready().add_callback(move |()| {
///     let port = server.listen(&reactor, "0.0.0.0:6667".parse().unwrap());
///     println!("{port:?}");
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`ServerConfig::cluster`]: super::ServerConfig::cluster
#[derive(Clone)]
pub struct Cluster {
    inner: Rc<Inner>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &*self.inner.node.borrow())
            .field("ready", &self.inner.ready.get())
            .field("queued", &self.inner.queue.borrow().len())
            .finish()
    }
}

/// Something to do in PostgreSQL, in order.
#[derive(Debug, Clone)]
enum Op {
    /// Claim a nick and introduce its user.
    Claim {
        nick: String,
        user: String,
        host: String,
    },
    /// Claim `new` for `old`'s user and rename it.
    Rename { old: String, new: String },
    /// Statements, then a line for the others.
    Write {
        statements: Vec<(&'static str, Vec<Value>)>,
        line: String,
    },
    /// Read the tables (what the others have).
    Snapshot,
    /// Nothing but the batch's own touch and sweep.
    Touch,
}

/// What an op gave.
enum Outcome {
    Claimed(bool),
    Done,
    Snapshot(Snapshot),
}

struct Queued {
    op: Op,
    done: Option<Claimed>,
    bytes: usize,
}

/// What one batch gave.
struct Batch {
    outcomes: Vec<Outcome>,
    /// Our node row had to be made again (we had been swept).
    made_again: bool,
    swept: Vec<String>,
    next_seq: u64,
}

enum Sync {
    /// Not listening yet.
    Down,
    /// Reading the tables: what is heard meanwhile waits.
    Reading(Vec<(String, Remote)>),
    Live,
}

struct Inner {
    this: Weak<Inner>,
    reactor: Reactor,
    /// One connection: every change in order.
    pool: PgPool,
    config: ClusterConfig,
    node: RefCell<String>,
    server: RefCell<Weak<Server>>,
    queue: RefCell<VecDeque<Queued>>,
    queued_bytes: Cell<usize>,
    running: Cell<bool>,
    schema_ready: Cell<bool>,
    /// Our node row has been made once.
    registered: Cell<bool>,
    seq: Cell<u64>,
    /// The last payload number heard from each node.
    heard: RefCell<HashMap<String, u64>>,
    sync: RefCell<Sync>,
    ready: Cell<bool>,
    waiting: RefCell<Vec<Resolver<(), Failure>>>,
    listener: RefCell<Option<PgListener>>,
    heartbeat: RefCell<Option<DelayedCall>>,
    refused: Cell<u64>,
}

impl Cluster {
    /// A cluster through the PostgreSQL server `config` reaches, with
    /// the default [`ClusterConfig`].
    pub fn postgres(reactor: &Reactor, config: PgConfig) -> Cluster {
        Cluster::with_config(reactor, config, ClusterConfig::default())
    }

    /// A cluster with `settings`.
    pub fn with_config(reactor: &Reactor, config: PgConfig, settings: ClusterConfig) -> Cluster {
        Cluster::with_pool(PgPool::new(reactor, config, 1), settings)
    }

    /// A cluster on `pool` (its connections made as the pool makes them:
    /// a test's in-memory server, say). The pool should be this cluster's
    /// alone, with one connection: changes are sent in order on it.
    pub fn with_pool(pool: PgPool, settings: ClusterConfig) -> Cluster {
        Cluster {
            inner: Rc::new_cyclic(|this| Inner {
                this: this.clone(),
                reactor: pool.reactor().clone(),
                pool,
                config: settings,
                node: RefCell::default(),
                server: RefCell::default(),
                queue: RefCell::default(),
                queued_bytes: Cell::new(0),
                running: Cell::new(false),
                schema_ready: Cell::new(false),
                registered: Cell::new(false),
                seq: Cell::new(0),
                heard: RefCell::default(),
                sync: RefCell::new(Sync::Down),
                ready: Cell::new(false),
                waiting: RefCell::default(),
                listener: RefCell::default(),
                heartbeat: RefCell::default(),
                refused: Cell::new(0),
            }),
        }
    }

    /// Fires once this server is in the cluster and knows the others'
    /// users and channels: when to start taking clients.
    pub fn when_ready(&self) -> Deferred<(), Failure> {
        let d = Deferred::new();
        if self.inner.ready.get() {
            d.resolver().resolve(Ok(()));
        } else {
            self.inner.waiting.borrow_mut().push(d.resolver());
        }
        d
    }

    /// Whether it is in the cluster now (listening, the tables read).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.get() && matches!(*self.inner.sync.borrow(), Sync::Live)
    }

    /// This server's name in the cluster (its server name and a random
    /// suffix, new at each start); empty until a server has it.
    pub fn node(&self) -> String {
        self.inner.node.borrow().clone()
    }

    /// Changes refused because too many were waiting for PostgreSQL.
    pub fn refused(&self) -> u64 {
        self.inner.refused.get()
    }

    /// Joins the cluster for `server` (named `name`): listens, registers
    /// the node, reads the tables, starts the heartbeat.
    pub(super) fn attach(&self, server: Weak<Server>, name: &str) -> Rc<dyn Link> {
        let inner = &self.inner;
        if !inner.node.borrow().is_empty() {
            tracing::error!("a Cluster was given to a second server; it stays the first's");
            return inner.clone() as Rc<dyn Link>;
        }
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        *inner.node.borrow_mut() = format!("{name}.{:06x}", h.finish() & 0xff_ffff);
        *inner.server.borrow_mut() = server;
        let (on_notify, on_state) = (Rc::downgrade(inner), Rc::downgrade(inner));
        let listener = inner.pool.listen_with(
            CHANNEL,
            move |n| {
                if let Some(me) = on_notify.upgrade() {
                    me.heard_payload(&n.payload);
                }
            },
            move |up| match (on_state.upgrade(), up) {
                (Some(me), true) => me.read_tables(),
                (Some(me), false) => *me.sync.borrow_mut() = Sync::Down,
                (None, _) => {}
            },
        );
        *inner.listener.borrow_mut() = Some(listener);
        inner.push(Op::Touch, None);
        inner.arm_heartbeat();
        inner.clone() as Rc<dyn Link>
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(l) = self.listener.get_mut().take() {
            l.stop();
        }
        if let Some(t) = self.heartbeat.get_mut().take() {
            t.cancel();
        }
    }
}

/// One line of a payload, without its CRLF.
fn event(prefix: Option<&str>, command: &str, args: &[&str]) -> String {
    crate::format_message(prefix, command, args)
        .map(|l| l.trim_end().to_owned())
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        _ => String::new(),
    }
}

impl Inner {
    fn me(&self) -> String {
        self.node.borrow().clone()
    }

    fn push(self: &Rc<Self>, op: Op, done: Option<Claimed>) {
        let bytes = match &op {
            Op::Write { line, .. } => line.len() + 64,
            _ => 128,
        };
        let limit = self.queued_bytes.get() + bytes > self.config.max_queue;
        if limit && matches!(op, Op::Write { .. }) {
            self.refused.set(self.refused.get() + 1);
            tracing::warn!(
                queued = self.queued_bytes.get(),
                "IRC cluster: PostgreSQL is behind; a change is not sent to the other servers"
            );
            return;
        }
        self.queued_bytes.set(self.queued_bytes.get() + bytes);
        self.queue
            .borrow_mut()
            .push_back(Queued { op, done, bytes });
        self.kick();
    }

    fn write(self: &Rc<Self>, statements: Vec<(&'static str, Vec<Value>)>, line: String) {
        self.push(Op::Write { statements, line }, None);
    }

    fn arm_heartbeat(self: &Rc<Self>) {
        let me = Rc::downgrade(self);
        let t = self.reactor.call_later(self.config.heartbeat, move || {
            if let Some(me) = me.upgrade() {
                let idle = !me.running.get() && me.queue.borrow().is_empty();
                if idle {
                    me.push(Op::Touch, None);
                }
                me.arm_heartbeat();
            }
        });
        *self.heartbeat.borrow_mut() = Some(t);
    }

    /// Listening (again): read what the others have, holding back what
    /// is heard until it is applied.
    fn read_tables(self: &Rc<Self>) {
        let reading = matches!(*self.sync.borrow(), Sync::Reading(_));
        if !reading {
            *self.sync.borrow_mut() = Sync::Reading(Vec::new());
            self.push(Op::Snapshot, None);
        }
    }

    /// A notification: `node seq`, then a change per line.
    fn heard_payload(self: &Rc<Self>, payload: &str) {
        let mut lines = payload.split('\n');
        let header = lines.next().unwrap_or_default();
        let Some((node, seq)) = header.split_once(' ') else {
            return;
        };
        let Ok(seq) = seq.parse::<u64>() else { return };
        if node == *self.node.borrow() {
            return;
        }
        let gap = {
            let mut heard = self.heard.borrow_mut();
            match heard.get(node) {
                // Sent again after a commit whose answer was lost: had it.
                Some(&last) if seq <= last => return,
                Some(&last) => {
                    heard.insert(node.to_owned(), seq);
                    seq > last + 1
                }
                None => {
                    heard.insert(node.to_owned(), seq);
                    false
                }
            }
        };
        for l in lines {
            if let Some(change) = parse(node, l) {
                self.heard_change(node, change);
            }
        }
        if gap {
            tracing::info!(
                node,
                "IRC cluster: changes were missed; reading the tables again"
            );
            self.read_tables();
        }
    }

    fn heard_change(self: &Rc<Self>, node: &str, change: Remote) {
        if let Remote::Split { node: gone, .. } = &change {
            self.heard.borrow_mut().remove(gone);
        }
        let mut sync = self.sync.borrow_mut();
        match &mut *sync {
            Sync::Reading(pending) if pending.len() < MAX_PENDING => {
                pending.push((node.to_owned(), change));
            }
            Sync::Reading(pending) => {
                // Too much while reading: read again once this read is in.
                pending.clear();
                drop(sync);
                tracing::warn!("IRC cluster: too many changes while reading the tables");
            }
            Sync::Down | Sync::Live => {
                drop(sync);
                if let Some(server) = self.server.borrow().upgrade() {
                    server.apply(change);
                }
            }
        }
    }

    fn kick(self: &Rc<Self>) {
        if self.running.replace(true) {
            return;
        }
        let me = self.clone();
        drop(self.reactor.spawn_local(async move {
            me.work().await;
            me.running.set(false);
        }));
    }

    /// The batch to send next: ops from the front of the queue, their
    /// lines within one or a few payloads.
    fn take_batch(&self) -> Vec<Queued> {
        let mut q = self.queue.borrow_mut();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(next) = q.front() {
            if !batch.is_empty() && (bytes + next.bytes > 4 * MAX_PAYLOAD || batch.len() >= 256) {
                break;
            }
            bytes += next.bytes;
            batch.extend(q.pop_front());
        }
        batch
    }

    async fn work(self: &Rc<Self>) {
        let mut wait = Duration::from_millis(500);
        let mut server_errors = 0;
        loop {
            if !self.schema_ready.get() {
                match self.pool.run_interaction(make_schema).await {
                    Ok(()) => self.schema_ready.set(true),
                    Err(f) => {
                        tracing::warn!(failure = %f, "IRC cluster: cannot make its tables; retrying");
                        self.reactor.sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            }
            let batch = self.take_batch();
            if batch.is_empty() {
                return;
            }
            let ops: Vec<Op> = batch.iter().map(|q| q.op.clone()).collect();
            let (node, seq) = (self.me(), self.seq.get());
            let cfg = self.config.clone();
            let r = self
                .pool
                .run_interaction(move |tx| run_batch(tx, node, seq, ops, cfg))
                .await;
            match r {
                Ok(done) => {
                    wait = Duration::from_millis(500);
                    server_errors = 0;
                    self.seq.set(done.next_seq);
                    self.finished(batch, done);
                }
                Err(f) => {
                    let server_error = f
                        .downcast_ref::<PgError>()
                        .is_some_and(|e| e.kind() == PgErrorKind::Server);
                    server_errors += usize::from(server_error);
                    tracing::warn!(failure = %f, "IRC cluster: a batch failed; sending it again");
                    self.failed(batch, server_errors >= 3);
                    if server_errors >= 3 {
                        server_errors = 0;
                    }
                    self.reactor.sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn finished(self: &Rc<Self>, batch: Vec<Queued>, done: Batch) {
        let server = self.server.borrow().upgrade();
        let made_again = done.made_again && self.registered.replace(true);
        for (q, outcome) in batch.into_iter().zip(done.outcomes) {
            self.queued_bytes
                .set(self.queued_bytes.get().saturating_sub(q.bytes));
            match outcome {
                Outcome::Claimed(ok) => {
                    if let Some(f) = q.done {
                        f(Ok(ok));
                    }
                }
                Outcome::Snapshot(snapshot) => {
                    let pending = match std::mem::replace(&mut *self.sync.borrow_mut(), Sync::Live)
                    {
                        Sync::Reading(p) => p,
                        _ => Vec::new(),
                    };
                    if let Some(server) = &server {
                        let why = format!("{} *.split", server.config.name);
                        server.reconcile(snapshot, &why);
                        for (_, change) in pending {
                            server.apply(change);
                        }
                    }
                    if !self.ready.replace(true) {
                        for r in self.waiting.borrow_mut().drain(..) {
                            r.resolve(Ok(()));
                        }
                    }
                }
                Outcome::Done => {}
            }
        }
        if let Some(server) = &server {
            for node in done.swept {
                tracing::info!(node, "IRC cluster: a server is gone; its users quit");
                self.heard.borrow_mut().remove(&node);
                server.apply(Remote::Split {
                    why: format!("{} {node}", server.config.name),
                    node,
                });
            }
            if made_again {
                tracing::warn!(
                    "IRC cluster: this server had been taken for gone; announcing its users again"
                );
                self.announce_again(server);
            }
        }
    }

    /// We were swept (cut off past the timeout): claim our users' nicks
    /// again (a user whose nick went to someone else meanwhile is
    /// dropped) and rejoin their channels.
    fn announce_again(self: &Rc<Self>, server: &Rc<Server>) {
        for u in server.local_users() {
            let weak = Rc::downgrade(server);
            let nick = u.nick.clone();
            self.push(
                Op::Claim {
                    nick: u.nick.clone(),
                    user: u.user.clone(),
                    host: u.host.clone(),
                },
                Some(Box::new(move |r| {
                    if let (Ok(false), Some(s)) = (r, weak.upgrade()) {
                        s.collide(&nick);
                    }
                })),
            );
            for c in &u.channels {
                self.joined(&u.nick, c);
            }
        }
    }

    /// A batch failed: claims are answered (cut off) and undone in case
    /// they went through; the rest is sent again, unless the server kept
    /// refusing it (then it is dropped, loudly).
    fn failed(self: &Rc<Self>, batch: Vec<Queued>, give_up: bool) {
        let mut again = Vec::new();
        for q in batch {
            self.queued_bytes
                .set(self.queued_bytes.get().saturating_sub(q.bytes));
            match (&q.op, q.done) {
                (Op::Claim { nick, .. }, Some(f)) => {
                    f(Err("the cluster's database is unreachable".into()));
                    self.quit(nick, "Registration failed", &[]);
                }
                (Op::Rename { old, new }, Some(f)) => {
                    f(Err("the cluster's database is unreachable".into()));
                    let undo = Op::Rename {
                        old: new.clone(),
                        new: old.clone(),
                    };
                    again.push(undo);
                }
                (Op::Snapshot, _) => again.push(Op::Snapshot),
                (op, _) if give_up => {
                    tracing::error!(
                        ?op,
                        "IRC cluster: PostgreSQL keeps refusing a change; dropped"
                    );
                }
                (op, _) => again.push(op.clone()),
            }
        }
        let mut q = self.queue.borrow_mut();
        for op in again.into_iter().rev() {
            let bytes = 128;
            self.queued_bytes.set(self.queued_bytes.get() + bytes);
            q.push_front(Queued {
                op,
                done: None,
                bytes,
            });
        }
    }
}

async fn make_schema(tx: Transaction) -> Result<(), Failure> {
    // Two servers starting at once would race in CREATE TABLE.
    tx.query("SELECT pg_advisory_xact_lock(7467527201)", vec![])
        .await?;
    for sql in SCHEMA {
        tx.execute(sql, vec![]).await?;
    }
    Ok(())
}

/// One batch, in one transaction: our node row, each op, the sweep, the
/// notifications (delivered at commit).
async fn run_batch(
    tx: Transaction,
    node: String,
    mut seq: u64,
    ops: Vec<Op>,
    cfg: ClusterConfig,
) -> Result<Batch, Failure> {
    let me = Value::Text(node.clone());
    let t = |s: &str| Value::Text(s.to_owned());
    let rows = tx.query(TOUCH, vec![me.clone()]).await?;
    let made_again = rows.first().and_then(|r| r.first()) == Some(&Value::Integer(1));
    let mut lines: Vec<String> = Vec::new();
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Claim { nick, user, host } => {
                let key = irc_lower(&nick);
                let n = tx
                    .execute(
                        CLAIM,
                        vec![t(&key), me.clone(), t(&nick), t(&user), t(&host)],
                    )
                    .await?;
                if n == 1 {
                    lines.push(event(None, "UID", &[&nick, &user, &host]));
                }
                outcomes.push(Outcome::Claimed(n == 1));
            }
            Op::Rename { old, new } => {
                let (okey, nkey) = (irc_lower(&old), irc_lower(&new));
                let ok = if okey == nkey {
                    tx.execute(RECASE, vec![t(&new), t(&okey), me.clone()])
                        .await?
                        == 1
                } else if tx
                    .execute(CLAIM_RENAME, vec![t(&nkey), t(&new), t(&okey), me.clone()])
                    .await?
                    == 1
                {
                    tx.execute(MOVE_MEMBERS, vec![t(&nkey), t(&okey)]).await?;
                    tx.execute(RELEASE, vec![t(&okey), me.clone()]).await?;
                    true
                } else {
                    false
                };
                if ok {
                    lines.push(event(Some(&old), "NICK", &[&new]));
                }
                outcomes.push(Outcome::Claimed(ok));
            }
            Op::Write { statements, line } => {
                for (sql, params) in statements {
                    tx.execute(sql, params).await?;
                }
                if !line.is_empty() {
                    lines.push(line);
                }
                outcomes.push(Outcome::Done);
            }
            Op::Snapshot => {
                let users = tx
                    .query(
                        "SELECT node, nick, ident, host FROM braid_irc_nicks WHERE node <> $1",
                        vec![me.clone()],
                    )
                    .await?;
                let members = tx
                    .query(
                        "SELECT n.nick, m.channel FROM braid_irc_members m \
                         JOIN braid_irc_nicks n USING (nick_key) WHERE n.node <> $1",
                        vec![me.clone()],
                    )
                    .await?;
                let topics = tx
                    .query("SELECT channel_key, topic FROM braid_irc_topics", vec![])
                    .await?;
                outcomes.push(Outcome::Snapshot(Snapshot {
                    users: users
                        .iter()
                        .map(|r| (text(&r[0]), text(&r[1]), text(&r[2]), text(&r[3])))
                        .collect(),
                    members: members.iter().map(|r| (text(&r[0]), text(&r[1]))).collect(),
                    topics: topics.iter().map(|r| (text(&r[0]), text(&r[1]))).collect(),
                }));
            }
            Op::Touch => outcomes.push(Outcome::Done),
        }
    }
    let swept: Vec<String> = tx
        .query(
            SWEEP,
            vec![
                me.clone(),
                Value::Real(cfg.timeout.as_secs_f64()),
                Value::Real((cfg.heartbeat * 2).as_secs_f64()),
            ],
        )
        .await?
        .iter()
        .map(|r| text(&r[0]))
        .collect();
    for gone in &swept {
        lines.push(event(None, "SQUIT", &[gone, "gone"]));
    }
    // Payloads of whole lines, each numbered (NOTIFY also folds two
    // identical payloads of one transaction into one: never identical).
    let mut payload = String::new();
    let flush = |payload: &mut String, seq: &mut u64| {
        let p = format!("{node} {seq}\n{payload}");
        payload.clear();
        *seq += 1;
        p
    };
    let mut payloads = Vec::new();
    for l in lines {
        if !payload.is_empty() && payload.len() + l.len() + 1 > MAX_PAYLOAD {
            payloads.push(flush(&mut payload, &mut seq));
        }
        if !payload.is_empty() {
            payload.push('\n');
        }
        payload.push_str(&l);
    }
    if !payload.is_empty() {
        payloads.push(flush(&mut payload, &mut seq));
    }
    for p in payloads {
        tx.query("SELECT pg_notify($1, $2)", vec![t(CHANNEL), Value::Text(p)])
            .await?;
    }
    Ok(Batch {
        outcomes,
        made_again,
        swept,
        next_seq: seq,
    })
}

/// A change from a payload line of `node`'s.
fn parse(node: &str, l: &str) -> Option<Remote> {
    let m: Message = match l.parse() {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %e, line = l, "IRC cluster: unreadable change");
            return None;
        }
    };
    let nick = m.source_nickname().map(str::to_owned);
    let change = match (m.command, nick) {
        (Command::Raw(c, args), _) if c == "UID" && args.len() == 3 => {
            let mut a = args.into_iter();
            Remote::User {
                node: node.to_owned(),
                nick: a.next()?,
                user: a.next()?,
                host: a.next()?,
            }
        }
        (Command::SQUIT(gone, why), _) => Remote::Split { node: gone, why },
        (Command::JOIN(channel, _, _), Some(nick)) => Remote::Join { nick, channel },
        (Command::PART(channel, why), Some(nick)) => Remote::Part {
            nick,
            channel,
            why: why.unwrap_or_default(),
        },
        (Command::QUIT(why), Some(nick)) => Remote::Quit {
            nick,
            why: why.unwrap_or_default(),
        },
        (Command::NICK(new), Some(old)) => Remote::Nick { old, new },
        (Command::PRIVMSG(target, text), Some(nick)) => Remote::Say {
            nick,
            command: "PRIVMSG".into(),
            target,
            text,
        },
        (Command::NOTICE(target, text), Some(nick)) => Remote::Say {
            nick,
            command: "NOTICE".into(),
            target,
            text,
        },
        (Command::TOPIC(channel, topic), Some(nick)) => Remote::Topic {
            nick,
            channel,
            topic: topic.unwrap_or_default(),
        },
        _ => return None,
    };
    Some(change)
}

impl Link for Inner {
    fn claim(&self, nick: &str, user: &str, host: &str, done: Claimed) {
        self.rc().push(
            Op::Claim {
                nick: nick.to_owned(),
                user: user.to_owned(),
                host: host.to_owned(),
            },
            Some(done),
        );
    }

    fn rename(&self, old: &str, new: &str, done: Claimed) {
        self.rc().push(
            Op::Rename {
                old: old.to_owned(),
                new: new.to_owned(),
            },
            Some(done),
        );
    }

    fn joined(&self, nick: &str, channel: &str) {
        let (t, me) = (|s: &str| Value::Text(s.to_owned()), self.me());
        self.rc().write(
            vec![(
                JOIN,
                vec![
                    t(&irc_lower(nick)),
                    t(&irc_lower(channel)),
                    t(channel),
                    t(&me),
                ],
            )],
            event(Some(nick), "JOIN", &[channel]),
        );
    }

    fn parted(&self, nick: &str, channel: &str, why: &str) {
        let t = |s: &str| Value::Text(s.to_owned());
        let ckey = irc_lower(channel);
        let args: Vec<&str> = if why.is_empty() {
            vec![channel]
        } else {
            vec![channel, why]
        };
        self.rc().write(
            vec![
                (PART, vec![t(&irc_lower(nick)), t(&ckey)]),
                (FORGET_TOPIC, vec![t(&ckey)]),
            ],
            event(Some(nick), "PART", &args),
        );
    }

    fn quit(&self, nick: &str, why: &str, channels: &[String]) {
        let t = |s: &str| Value::Text(s.to_owned());
        let mut statements = vec![(RELEASE, vec![t(&irc_lower(nick)), t(&self.me())])];
        for c in channels {
            statements.push((FORGET_TOPIC, vec![t(&irc_lower(c))]));
        }
        self.rc()
            .write(statements, event(Some(nick), "QUIT", &[why]));
    }

    fn said(&self, nick: &str, command: &str, target: &str, text: &str) {
        self.rc()
            .write(Vec::new(), event(Some(nick), command, &[target, text]));
    }

    fn topic(&self, nick: &str, channel: &str, topic: &str) {
        let t = |s: &str| Value::Text(s.to_owned());
        let ckey = irc_lower(channel);
        let statement = if topic.is_empty() {
            (CLEAR_TOPIC, vec![t(&ckey)])
        } else {
            (SET_TOPIC, vec![t(&ckey), t(topic)])
        };
        self.rc().write(
            vec![statement],
            event(Some(nick), "TOPIC", &[channel, topic]),
        );
    }
}

impl Inner {
    /// The `Rc` this link lives in (the server holds it as one).
    fn rc(&self) -> Rc<Inner> {
        self.this
            .upgrade()
            .expect("a cluster link is alive while its server calls it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_as_written() {
        let cases = [
            (
                event(None, "UID", &["ann", "a", "10.0.0.1"]),
                Remote::User {
                    node: "n".into(),
                    nick: "ann".into(),
                    user: "a".into(),
                    host: "10.0.0.1".into(),
                },
            ),
            (
                event(Some("ann"), "PRIVMSG", &["#c", "hello there: all"]),
                Remote::Say {
                    nick: "ann".into(),
                    command: "PRIVMSG".into(),
                    target: "#c".into(),
                    text: "hello there: all".into(),
                },
            ),
            (
                event(Some("ann"), "QUIT", &[""]),
                Remote::Quit {
                    nick: "ann".into(),
                    why: String::new(),
                },
            ),
            (
                event(None, "SQUIT", &["a.1f", "gone"]),
                Remote::Split {
                    node: "a.1f".into(),
                    why: "gone".into(),
                },
            ),
            (
                event(Some("ann"), "NICK", &["anna"]),
                Remote::Nick {
                    old: "ann".into(),
                    new: "anna".into(),
                },
            ),
        ];
        for (line, want) in cases {
            assert!(!line.contains('\n'), "{line:?}");
            assert_eq!(parse("n", &line), Some(want), "{line}");
        }
        assert_eq!(parse("n", "not an irc line \u{0}"), None);
        assert_eq!(parse("n", ":ann FROB x"), None);
    }
}
