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
use braid_db::postgres::{PgConfig, PgError, PgErrorKind, PgListener, PgPool};
use braid_db::rusqlite::types::Value;

use super::linked::{Claimed, Link, Remote, Snapshot};
use super::Server;
use crate::names::irc_lower;

mod batch;
mod wire;

use batch::{make_schema, run_batch, CLEAR_TOPIC, FORGET_TOPIC, JOIN, PART, RELEASE, SET_TOPIC};
use wire::{event, parse};

/// The `NOTIFY` channel every server of a cluster listens on.
const CHANNEL: &str = "braid_irc";
/// Bytes of lines per notification (PostgreSQL refuses payloads of 8000
/// bytes or more).
const MAX_PAYLOAD: usize = 7000;
/// Changes heard while reading the tables, at most.
const MAX_PENDING: usize = 65_536;

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
/// source, `server/cluster/mod.rs`). Give it to [`ServerConfig::cluster`];
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
    /// Read the tables again once the read under way is in.
    read_again: Cell<bool>,
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
            inner: Rc::new(Inner {
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
                read_again: Cell::new(false),
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
            return Rc::new(self.clone());
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
        Rc::new(self.clone())
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
                // Numbers only grow: an old one is a repeat.
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
                // Too much while reading: read again once this read is in
                // (the state comes right; what was said meanwhile is lost).
                pending.clear();
                drop(sync);
                self.read_again.set(true);
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
                    // The batch may have committed (its COMMIT's answer
                    // lost): send again under numbers past any it could
                    // have used, so that the others neither take the new
                    // payloads for repeats nor miss what is added to them
                    // (they see a gap and read the tables again).
                    self.seq.set(seq + (1 << 20));
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
                    if self.read_again.replace(false) {
                        self.read_tables();
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
                Cluster {
                    inner: self.clone(),
                }
                .joined(&u.nick, c);
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
                    Cluster {
                        inner: self.clone(),
                    }
                    .quit(nick, "Registration failed", &[]);
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

impl Link for Cluster {
    fn claim(&self, nick: &str, user: &str, host: &str, done: Claimed) {
        self.inner.push(
            Op::Claim {
                nick: nick.to_owned(),
                user: user.to_owned(),
                host: host.to_owned(),
            },
            Some(done),
        );
    }

    fn rename(&self, old: &str, new: &str, done: Claimed) {
        self.inner.push(
            Op::Rename {
                old: old.to_owned(),
                new: new.to_owned(),
            },
            Some(done),
        );
    }

    fn joined(&self, nick: &str, channel: &str) {
        let (t, me) = (|s: &str| Value::Text(s.to_owned()), self.inner.me());
        self.inner.write(
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
        self.inner.write(
            vec![
                (PART, vec![t(&irc_lower(nick)), t(&ckey)]),
                (FORGET_TOPIC, vec![t(&ckey)]),
            ],
            event(Some(nick), "PART", &args),
        );
    }

    fn quit(&self, nick: &str, why: &str, channels: &[String]) {
        let t = |s: &str| Value::Text(s.to_owned());
        let mut statements = vec![(RELEASE, vec![t(&irc_lower(nick)), t(&self.inner.me())])];
        for c in channels {
            statements.push((FORGET_TOPIC, vec![t(&irc_lower(c))]));
        }
        self.inner
            .write(statements, event(Some(nick), "QUIT", &[why]));
    }

    fn said(&self, nick: &str, command: &str, target: &str, text: &str) {
        self.inner
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
        self.inner.write(
            vec![statement],
            event(Some(nick), "TOPIC", &[channel, topic]),
        );
    }
}
