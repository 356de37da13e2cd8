//! The relay queue: mail for other domains goes to a spool directory
//! first, then to its next hop, retried with backoff on 4xx and bounced
//! to its sender on 5xx or once it has waited too long (what Postfix's
//! `qmgr` and `smtp` do). The next hop is a smarthost, or (the `mx`
//! feature) each recipient domain's MX hosts, tried by preference, the
//! domain's own address when it has no MX (RFC 5321 5.1), a null MX
//! (RFC 7505) bounced at once.
//!
//! ```text
//!   enqueue ─▶ spool/msg/<id> (fsynced) ─▶ spool/env/<id> (fsynced: committed)
//!   runner  ─▶ recipients by next hop ─▶ client::send to each host in turn
//!                ├ 250 for all       ─▶ both files removed
//!                ├ 4xx, no answer    ─▶ env rewritten: attempts+1, next = now + backoff
//!                └ 5xx, or too old   ─▶ a bounce to the sender, files removed
//! ```
//!
//! With the `postgres` feature the queue can be a table instead
//! ([`QueueConfig::in_postgres`]), shared by every worker and machine given
//! the same database: each runner claims due messages for the time of an
//! attempt (`FOR UPDATE SKIP LOCKED`, a lease that runs out if the
//! runner dies), and an enqueue anywhere wakes the idle runners
//! (`NOTIFY`). See the `postgres` module.
//!
//! The spool survives restarts: [`Queue::open`] reads what is there and
//! retries it. A crash between the smarthost's `250` and the rewrite of
//! the envelope sends that message again: the window SMTP itself leaves.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use braid::Reactor;

use crate::client::{self, ClientConfig};
use crate::reply::Reply;

#[cfg(feature = "postgres")]
mod postgres;

/// How the queue delivers and retries.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// The spool directory (made if missing).
    pub spool: PathBuf,
    /// Where messages go.
    pub next_hop: NextHop,
    /// How to talk to it (STARTTLS, AUTH).
    pub client: ClientConfig,
    /// The first retry's delay; it doubles up to `max_backoff` (Postfix:
    /// 300 s and 4000 s).
    pub min_backoff: Duration,
    /// The longest delay between tries.
    pub max_backoff: Duration,
    /// How long a message may wait before it is bounced (Postfix's
    /// `maximal_queue_lifetime`: 5 days).
    pub lifetime: Duration,
    /// Deliveries at once.
    pub concurrency: usize,
    /// The name bounces come from (`MAILER-DAEMON@hostname`).
    pub hostname: String,
    /// If set, the queue is a table in this PostgreSQL (`spool` is not
    /// used): see [`in_postgres`](Self::in_postgres).
    #[cfg(feature = "postgres")]
    pub database: Option<braid_db::postgres::PgConfig>,
    /// In PostgreSQL: how long a runner's claim on a message holds
    /// unless renewed (it is, while the attempt runs): how long a runner
    /// that died keeps its messages from the others (60 s).
    #[cfg(feature = "postgres")]
    pub lease: Duration,
}

/// Where queued mail goes next.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum NextHop {
    /// Every message to one host (Postfix's `relayhost`).
    Smarthost {
        /// The host (a name or an address).
        host: String,
        /// Its port.
        port: u16,
    },
    /// Each recipient domain's mail exchangers, looked up with
    /// `resolver`, at `port` (25 on the Internet). Install the same
    /// resolver on the reactor (`install_name_resolver`) to have the MX
    /// hosts' addresses looked up by it too.
    #[cfg(feature = "mx")]
    Mx {
        /// The DNS resolver.
        resolver: braid_names::client::Resolver,
        /// The SMTP port of every MX host.
        port: u16,
    },
}

/// Recipients that go to the same hosts, and those hosts (or why there
/// are none: transient or not, and the words).
type Route = (Vec<String>, Result<Vec<String>, (bool, String)>);

impl QueueConfig {
    /// A queue in `spool` relaying through `host:port`, with Postfix's
    /// timings.
    pub fn new(spool: impl AsRef<Path>, host: &str, port: u16) -> QueueConfig {
        QueueConfig::with_next_hop(
            spool,
            NextHop::Smarthost {
                host: host.to_owned(),
                port,
            },
        )
    }

    /// A queue in `spool` delivering to each domain's MX hosts on `port`.
    #[cfg(feature = "mx")]
    pub fn mx(
        spool: impl AsRef<Path>,
        resolver: braid_names::client::Resolver,
        port: u16,
    ) -> QueueConfig {
        QueueConfig::with_next_hop(spool, NextHop::Mx { resolver, port })
    }

    /// A queue in `spool` sending to `next_hop`, with Postfix's timings.
    pub fn with_next_hop(spool: impl AsRef<Path>, next_hop: NextHop) -> QueueConfig {
        QueueConfig {
            spool: spool.as_ref().to_owned(),
            next_hop,
            client: ClientConfig::default(),
            min_backoff: Duration::from_secs(300),
            max_backoff: Duration::from_secs(4000),
            lifetime: Duration::from_secs(5 * 24 * 3600),
            concurrency: 10,
            hostname: "localhost".into(),
            #[cfg(feature = "postgres")]
            database: None,
            #[cfg(feature = "postgres")]
            lease: Duration::from_secs(60),
        }
    }

    /// A queue in PostgreSQL (table `braid_mail_queue`, made if missing)
    /// sending to `next_hop`, with Postfix's timings: one queue for every
    /// process and worker given the same database, each message attempted
    /// by one of them at a time.
    #[cfg(feature = "postgres")]
    pub fn in_postgres(database: braid_db::postgres::PgConfig, next_hop: NextHop) -> QueueConfig {
        QueueConfig {
            database: Some(database),
            ..QueueConfig::with_next_hop(PathBuf::new(), next_hop)
        }
    }
}

/// The hosts mail for `domain` goes to, by MX preference (RFC 5321 5.1):
/// the MX hosts, else the domain itself when it has no MX; an address
/// literal (`[192.0.2.1]`) as it is. A null MX (RFC 7505) or a domain that
/// does not exist fails for good; a DNS failure is transient.
#[cfg(feature = "mx")]
async fn mx_hosts(
    resolver: &braid_names::client::Resolver,
    domain: &str,
) -> Result<Vec<String>, (bool, String)> {
    use braid_names::client::ResolveErrorKind;
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return Ok(vec![ip.to_owned()]);
    }
    match resolver.lookup_mail_exchange(domain).await {
        Ok(mx) if mx.iter().any(|(_, name)| name.is_root()) => Err((
            false,
            format!("556 5.1.10 {domain} does not accept mail (null MX, RFC 7505)"),
        )),
        Ok(mx) => Ok(mx
            .into_iter()
            .map(|(_, name)| name.to_ascii().trim_end_matches('.').to_owned())
            .collect()),
        Err(e) if e.kind() == ResolveErrorKind::NoData => Ok(vec![domain.to_owned()]),
        Err(e) if e.kind() == ResolveErrorKind::NxDomain => {
            Err((false, format!("550 5.4.4 {domain}: no such domain ({e})")))
        }
        Err(e) => Err((true, e.to_string())),
    }
}

/// The delay before try `attempts + 1`: `min` doubled per failed try, at
/// most `max`.
pub fn backoff(min: Duration, max: Duration, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    min.saturating_mul(factor).min(max).max(min.min(max))
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    from: String,
    to: Vec<String>,
    attempts: u32,
    /// Unix seconds.
    first: u64,
    next: u64,
}

impl Entry {
    fn encode(&self) -> String {
        let mut s = format!(
            "braid-queue 1\nfrom {}\nfirst {}\nattempts {}\nnext {}\n",
            self.from, self.first, self.attempts, self.next
        );
        for t in &self.to {
            s.push_str(&format!("to {t}\n"));
        }
        s
    }

    fn decode(text: &str) -> Option<Entry> {
        let mut lines = text.lines();
        if lines.next()? != "braid-queue 1" {
            return None;
        }
        let mut e = Entry {
            from: String::new(),
            to: Vec::new(),
            attempts: 0,
            first: 0,
            next: 0,
        };
        for l in lines {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            match k {
                "from" => e.from = v.to_owned(),
                "to" => e.to.push(v.to_owned()),
                "first" => e.first = v.parse().ok()?,
                "next" => e.next = v.parse().ok()?,
                "attempts" => e.attempts = v.parse().ok()?,
                _ => return None,
            }
        }
        (!e.to.is_empty()).then_some(e)
    }
}

/// Where bounces for a sender go: given the sender and the bounce.
pub type BounceSink = Rc<dyn Fn(String, Vec<u8>)>;

/// The relay queue. Clone freely; see the [module](self) for the picture.
#[derive(Clone)]
pub struct Queue {
    inner: Rc<Inner>,
}

struct Inner {
    reactor: Reactor,
    config: QueueConfig,
    entries: RefCell<HashMap<String, Entry>>,
    in_flight: RefCell<std::collections::HashSet<String>>,
    wake: RefCell<(bool, Option<Waker>)>,
    counter: Cell<u64>,
    bounce: RefCell<Option<BounceSink>>,
    delivered: Cell<u64>,
    /// The queue in PostgreSQL, if it is there.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pg: PgSlot,
}

#[cfg(feature = "postgres")]
type PgSlot = Option<postgres::PgStore>;
#[cfg(not(feature = "postgres"))]
type PgSlot = Option<std::convert::Infallible>;

impl Inner {
    fn new(
        reactor: &Reactor,
        config: QueueConfig,
        entries: HashMap<String, Entry>,
        pg: PgSlot,
    ) -> Inner {
        Inner {
            reactor: reactor.clone(),
            config,
            entries: RefCell::new(entries),
            in_flight: RefCell::default(),
            wake: RefCell::new((false, None)),
            counter: Cell::new(0),
            bounce: RefCell::new(None),
            delivered: Cell::new(0),
            pg,
        }
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("spool", &self.inner.config.spool)
            .field("queued", &self.len())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` through a temporary file, fsynced.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".tmp-{name}"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

impl Queue {
    /// Opens (or makes) the spool and reads what it holds; nothing is
    /// sent until [`start`](Self::start). Reads the directory on the
    /// calling thread: call it at start-up.
    ///
    /// # Errors
    ///
    /// The spool cannot be made or read.
    pub fn open(reactor: &Reactor, config: QueueConfig) -> io::Result<Queue> {
        #[cfg(feature = "postgres")]
        if let Some(db) = config.database.clone() {
            let lease = config.lease;
            return Ok(Queue {
                inner: Rc::new_cyclic(|me: &std::rc::Weak<Inner>| {
                    let me = me.clone();
                    let wake = move || {
                        if let Some(inner) = me.upgrade() {
                            Queue { inner }.wake();
                        }
                    };
                    Inner::new(
                        reactor,
                        config,
                        HashMap::new(),
                        Some(postgres::PgStore::new(reactor, db, lease, wake)),
                    )
                }),
            });
        }
        let msg = config.spool.join("msg");
        let env = config.spool.join("env");
        fs::create_dir_all(&msg)?;
        fs::create_dir_all(&env)?;
        let mut entries = HashMap::new();
        for e in fs::read_dir(&env)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                let _ = fs::remove_file(e.path());
                continue;
            }
            match fs::read_to_string(e.path())
                .ok()
                .and_then(|t| Entry::decode(&t))
            {
                Some(entry) if msg.join(&name).exists() => {
                    entries.insert(name, entry);
                }
                _ => tracing::warn!(
                    id = name,
                    "queue: unreadable or orphaned envelope left alone"
                ),
            }
        }
        if !entries.is_empty() {
            tracing::info!(n = entries.len(), "queue: messages waiting in the spool");
        }
        Ok(Queue {
            inner: Rc::new(Inner::new(reactor, config, entries, None)),
        })
    }

    /// Messages waiting (or being sent). For a queue in PostgreSQL: in
    /// the whole queue, as of the runner's last look (every few seconds
    /// while it runs), or those this process knows of before it started.
    pub fn len(&self) -> usize {
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.inner.pg {
            return pg.waiting().max(self.inner.entries.borrow().len());
        }
        self.inner.entries.borrow().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages handed to the smarthost so far (by this process).
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.get()
    }

    /// Where bounces go (without one, they are logged and dropped).
    pub fn on_bounce(&self, sink: BounceSink) {
        *self.inner.bounce.borrow_mut() = Some(sink);
    }

    /// Starts the runner: a task on the reactor that sends what is due.
    pub fn start(&self) {
        let q = self.clone();
        drop(self.inner.reactor.spawn_local(async move { q.run().await }));
    }

    /// Puts a message in the spool (durably) for `to`; the `Ok` comes once
    /// it is on disk, with its queue id.
    ///
    /// # Errors
    ///
    /// Writing the spool failed: tell the client to try later.
    pub async fn enqueue(
        &self,
        from: &str,
        to: Vec<String>,
        data: Vec<u8>,
    ) -> Result<String, Reply> {
        let n = self.inner.counter.get();
        self.inner.counter.set(n + 1);
        let now = unix_now();
        let id = format!("{now:x}.{:x}.{n:x}", std::process::id());
        let entry = Entry {
            from: from.to_owned(),
            to,
            attempts: 0,
            first: now,
            next: now,
        };
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.inner.pg {
            // Several processes (machines) write here: ids must not meet.
            let id = format!("{id}.{}", pg.node());
            return match pg.put(&id, &entry, data).await {
                Ok(()) => {
                    tracing::info!(id, from, "queued for relay (PostgreSQL)");
                    self.wake();
                    Ok(id)
                }
                Err(f) => {
                    tracing::error!(failure = %f, "queue: cannot write to PostgreSQL");
                    Err(Reply::new(451, [4, 3, 0], "Error: queue file write error"))
                }
            };
        }
        let spool = self.inner.config.spool.clone();
        let (text, name) = (entry.encode(), id.clone());
        let written = self
            .inner
            .reactor
            .defer_to_thread(move || -> io::Result<()> {
                write_atomic(&spool.join("msg"), &name, &data)?;
                write_atomic(&spool.join("env"), &name, text.as_bytes())
            })
            .await;
        match written {
            Ok(Ok(())) => {
                tracing::info!(id, from, "queued for relay");
                self.inner.entries.borrow_mut().insert(id.clone(), entry);
                self.wake();
                Ok(id)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "queue: cannot write the spool");
                Err(Reply::new(451, [4, 3, 0], "Error: queue file write error"))
            }
            Err(_) => Err(Reply::new(451, [4, 3, 0], "Error: queue file write error")),
        }
    }

    fn wake(&self) {
        let mut w = self.inner.wake.borrow_mut();
        w.0 = true;
        if let Some(w) = w.1.take() {
            w.wake();
        }
    }

    async fn woken(&self) {
        std::future::poll_fn(|cx| {
            let mut w = self.inner.wake.borrow_mut();
            if std::mem::take(&mut w.0) {
                Poll::Ready(())
            } else {
                w.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    async fn run(&self) {
        #[cfg(feature = "postgres")]
        if self.inner.pg.is_some() {
            return self.run_shared().await;
        }
        loop {
            let now = unix_now();
            let due: Vec<String> = {
                let entries = self.inner.entries.borrow();
                let flying = self.inner.in_flight.borrow();
                let room = self.inner.config.concurrency.saturating_sub(flying.len());
                let mut due: Vec<(&String, &Entry)> = entries
                    .iter()
                    .filter(|(id, e)| e.next <= now && !flying.contains(*id))
                    .collect();
                due.sort_by_key(|(_, e)| e.next);
                due.into_iter()
                    .take(room)
                    .map(|(id, _)| id.clone())
                    .collect()
            };
            for id in due {
                self.inner.in_flight.borrow_mut().insert(id.clone());
                let q = self.clone();
                drop(self.inner.reactor.spawn_local(async move {
                    q.attempt(&id).await;
                    q.inner.in_flight.borrow_mut().remove(&id);
                    q.wake();
                }));
            }
            let next = {
                let entries = self.inner.entries.borrow();
                let flying = self.inner.in_flight.borrow();
                entries
                    .iter()
                    .filter(|(id, _)| !flying.contains(*id))
                    .map(|(_, e)| e.next)
                    .min()
            };
            match next {
                Some(t) => {
                    let wait = Duration::from_secs(t.saturating_sub(unix_now()).max(1));
                    let _ = self.inner.reactor.timeout(wait, self.woken()).await;
                }
                None => self.woken().await,
            }
        }
    }

    async fn attempt(&self, id: &str) {
        let Some(entry) = self.inner.entries.borrow().get(id).cloned() else {
            return;
        };
        let cfg = &self.inner.config;
        let data = match self.read_message(id).await {
            Some(d) => d,
            None => {
                tracing::error!(id, "queue: cannot read the message; left in the spool");
                let to = entry.to.clone();
                return self.reschedule(id, entry, to).await;
            }
        };
        let mut retry = Vec::new();
        let mut failed: Vec<(String, String)> = Vec::new();
        for (rcpts, hosts) in self.routes(&entry.to).await {
            match hosts {
                Ok(hosts) => {
                    let (r, f) = self.deliver(id, &hosts, &entry.from, &rcpts, &data).await;
                    retry.extend(r);
                    failed.extend(f);
                }
                Err((true, why)) => {
                    tracing::info!(id, why, "next hop unknown for now: deferred");
                    retry.extend(rcpts);
                }
                Err((false, why)) => failed.extend(rcpts.into_iter().map(|r| (r, why.clone()))),
            }
        }
        let age = unix_now().saturating_sub(entry.first);
        if !retry.is_empty() && age >= cfg.lifetime.as_secs() {
            failed.extend(
                retry
                    .drain(..)
                    .map(|t| (t, "delivery time expired (still deferred)".to_owned())),
            );
        }
        if !failed.is_empty() {
            self.bounce(&entry.from, &failed, &data);
        }
        if retry.is_empty() {
            self.remove(id).await;
        } else {
            self.reschedule(id, entry, retry).await;
        }
    }

    /// The message `id`'s bytes, from the spool or the database.
    async fn read_message(&self, id: &str) -> Option<Vec<u8>> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.inner.pg {
            return pg
                .message(id)
                .await
                .map_err(
                    |f| tracing::error!(id, failure = %f, "queue: cannot read from PostgreSQL"),
                )
                .ok();
        }
        let path = self.inner.config.spool.join("msg").join(id);
        match self
            .inner
            .reactor
            .defer_to_thread(move || fs::read(path))
            .await
        {
            Ok(Ok(d)) => Some(d),
            _ => None,
        }
    }

    /// The recipients grouped by the hosts they go to.
    async fn routes(&self, to: &[String]) -> Vec<Route> {
        match &self.inner.config.next_hop {
            NextHop::Smarthost { host, .. } => vec![(to.to_vec(), Ok(vec![host.clone()]))],
            #[cfg(feature = "mx")]
            NextHop::Mx { resolver, .. } => {
                let mut by_domain: Vec<(String, Vec<String>)> = Vec::new();
                for rcpt in to {
                    let domain = rcpt
                        .rsplit_once('@')
                        .map_or("", |(_, d)| d)
                        .to_ascii_lowercase();
                    match by_domain.iter_mut().find(|(d, _)| *d == domain) {
                        Some((_, v)) => v.push(rcpt.clone()),
                        None => by_domain.push((domain, vec![rcpt.clone()])),
                    }
                }
                let mut out = Vec::new();
                for (domain, rcpts) in by_domain {
                    out.push((rcpts, mx_hosts(resolver, &domain).await));
                }
                out
            }
        }
    }

    /// Sends to `rcpts` through the first of `hosts` that answers: the
    /// next host is tried when one cannot be reached or answers 4xx
    /// (Postfix's `smtp`), not when it refuses for good. The recipients
    /// to try again later, and those refused with why.
    async fn deliver(
        &self,
        id: &str,
        hosts: &[String],
        from: &str,
        rcpts: &[String],
        data: &[u8],
    ) -> (Vec<String>, Vec<(String, String)>) {
        let cfg = &self.inner.config;
        let port = match &cfg.next_hop {
            NextHop::Smarthost { port, .. } => *port,
            #[cfg(feature = "mx")]
            NextHop::Mx { port, .. } => *port,
        };
        let (mut retry, mut failed) = (Vec::new(), Vec::new());
        for (i, host) in hosts.iter().enumerate() {
            let last = i + 1 == hosts.len();
            let result = client::send(
                &self.inner.reactor,
                host,
                port,
                &cfg.client,
                from,
                rcpts,
                data,
            )
            .await;
            match result {
                Ok(sent) => {
                    tracing::info!(id, relay = %host, reply = %sent.reply, "relayed");
                    self.inner.delivered.set(self.inner.delivered.get() + 1);
                    for (who, r) in sent.refused {
                        if r.is_transient() {
                            retry.push(who);
                        } else {
                            failed.push((who, r.to_string()));
                        }
                    }
                }
                Err(e) if e.kind() == client::SendErrorKind::NoRecipients => {
                    for (who, r) in e.refused_recipients() {
                        if r.is_transient() {
                            retry.push(who.clone());
                        } else {
                            failed.push((who.clone(), r.to_string()));
                        }
                    }
                }
                Err(e) if e.is_transient() && !last => {
                    tracing::info!(id, relay = %host, error = %e, "trying the next host");
                    continue;
                }
                Err(e) if e.is_transient() => {
                    tracing::info!(id, relay = %host, error = %e, "relay deferred");
                    retry = rcpts.to_vec();
                }
                Err(e) => {
                    tracing::info!(id, relay = %host, error = %e, "relay refused");
                    failed = rcpts.iter().map(|t| (t.clone(), e.to_string())).collect();
                }
            }
            break;
        }
        (retry, failed)
    }

    async fn reschedule(&self, id: &str, mut entry: Entry, to: Vec<String>) {
        let cfg = &self.inner.config;
        entry.attempts += 1;
        entry.to = to;
        let wait = backoff(cfg.min_backoff, cfg.max_backoff, entry.attempts).as_secs();
        entry.next = unix_now() + wait;
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.inner.pg {
            if let Err(f) = pg.reschedule(id, &entry, wait).await {
                // The lease runs out and the message is tried again.
                tracing::error!(id, failure = %f, "queue: cannot reschedule in PostgreSQL");
            }
            self.inner.entries.borrow_mut().remove(id);
            return;
        }
        let (dir, name, text) = (cfg.spool.join("env"), id.to_owned(), entry.encode());
        let r = self
            .inner
            .reactor
            .defer_to_thread(move || write_atomic(&dir, &name, text.as_bytes()))
            .await;
        if !matches!(r, Ok(Ok(()))) {
            tracing::error!(id, "queue: cannot rewrite the envelope");
        }
        self.inner.entries.borrow_mut().insert(id.to_owned(), entry);
    }

    async fn remove(&self, id: &str) {
        self.inner.entries.borrow_mut().remove(id);
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.inner.pg {
            if let Err(f) = pg.remove(id).await {
                tracing::error!(id, failure = %f, "queue: cannot remove from PostgreSQL (it may be sent again)");
            }
            return;
        }
        let spool = self.inner.config.spool.clone();
        let name = id.to_owned();
        let _ = self
            .inner
            .reactor
            .defer_to_thread(move || {
                // The envelope first: without it the message is not queued.
                let _ = fs::remove_file(spool.join("env").join(&name));
                let _ = sync_dir(&spool.join("env"));
                let _ = fs::remove_file(spool.join("msg").join(&name));
            })
            .await;
    }

    fn bounce(&self, sender: &str, failed: &[(String, String)], original: &[u8]) {
        if sender.is_empty() {
            tracing::warn!(
                ?failed,
                "a bounce could not be delivered: dropped (no bounce of a bounce)"
            );
            return;
        }
        let text = bounce_message(&self.inner.config.hostname, sender, failed, original);
        match self.inner.bounce.borrow().clone() {
            Some(sink) => sink(sender.to_owned(), text),
            None => tracing::warn!(sender, "no bounce sink: bounce dropped"),
        }
    }
}

/// A bounce (RFC 3464-like, in plain text) for `failed` recipients, with
/// the original message's headers.
pub fn bounce_message(
    host: &str,
    sender: &str,
    failed: &[(String, String)],
    original: &[u8],
) -> Vec<u8> {
    let mut body = format!(
        "This is the mail system at host {host}.\n\n\
         I'm sorry to have to inform you that your message could not\n\
         be delivered to one or more recipients.\n\n"
    );
    for (who, why) in failed {
        body.push_str(&format!("<{who}>: {why}\n"));
    }
    let end = original
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(original.len().min(16 * 1024));
    body.push_str("\n--- The headers of your message ---\n\n");
    body.push_str(&String::from_utf8_lossy(&original[..end]));
    let from = format!("MAILER-DAEMON@{host}");
    mail_builder::MessageBuilder::new()
        .from(("Mail Delivery System", from.as_str()))
        .to(sender)
        .subject("Undelivered Mail Returned to Sender")
        .text_body(body)
        .write_to_vec()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let (min, max) = (Duration::from_secs(300), Duration::from_secs(4000));
        let got: Vec<u64> = (1..7).map(|a| backoff(min, max, a).as_secs()).collect();
        assert_eq!(got, [300, 600, 1200, 2400, 4000, 4000]);
        assert_eq!(backoff(min, max, 1000).as_secs(), 4000);
    }

    #[test]
    fn envelopes_round_trip_and_junk_is_refused() {
        let e = Entry {
            from: String::new(),
            to: vec!["a@b".into(), "c@d".into()],
            attempts: 3,
            first: 10,
            next: 20,
        };
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode("braid-queue 1\nfrom x\n"), None);
        assert_eq!(Entry::decode("garbage"), None);
        assert_eq!(Entry::decode("braid-queue 1\nto a\nnext soon\n"), None);
    }

    #[test]
    fn a_bounce_names_the_failures_and_quotes_the_headers() {
        let b = bounce_message(
            "mx.example",
            "alice@example.org",
            &[("bob@far.example".into(), "550 5.1.1 no such user".into())],
            b"Subject: hi\r\n\r\nsecret body\r\n",
        );
        let b = String::from_utf8(b).unwrap();
        assert!(
            b.contains("To: <alice@example.org>") || b.contains("To: alice@example.org"),
            "{b}"
        );
        assert!(
            b.contains("<bob@far.example>: 550 5.1.1 no such user"),
            "{b}"
        );
        assert!(
            b.contains("Subject: hi") && !b.contains("secret body"),
            "{b}"
        );
    }
}
