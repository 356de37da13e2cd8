//! An IRC server: enough of RFC 1459/2812 that ordinary clients work.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use irc_proto::{CapSubCommand, Command, Message};
use slab::Slab;

use crate::names::irc_lower;
use crate::MAX_LINE;
use braid::framing::{FramingError, LineContext, LineHandler, LineReceiver};
use braid::CloseReason;
use braid::Factory;
use braid::ListeningPort;
use braid::{Address, Transport};
use braid::{DelayedCall, Reactor};

mod channels;
#[cfg(feature = "postgres")]
mod cluster;
mod linked;
mod registration;

#[cfg(feature = "postgres")]
pub use cluster::{Cluster, ClusterConfig};
use linked::Link;

/// How the server behaves. Start from `ServerConfig::default()` and change
/// what you need.
#[non_exhaustive]
pub struct ServerConfig {
    /// The server's name, the prefix of its own messages.
    pub name: String,
    /// Lines of the message of the day.
    pub motd: Vec<String>,
    /// Silence after which the server sends a PING.
    pub ping_after: Duration,
    /// How long a PING may go unanswered before the client is dropped.
    pub ping_timeout: Duration,
    /// How long a connection may take to register (NICK and USER).
    pub register_timeout: Duration,
    /// Lines a client may have processed in a burst...
    pub flood_burst: u32,
    /// ... and per second after that. Lines beyond the rate are not
    /// refused: they wait and are processed at the rate ("fake lag", as
    /// ngircd and InspIRCd do), so a paste arrives whole and in order.
    pub flood_per_second: u32,
    /// Bytes of received lines waiting to be processed before the client
    /// is dropped with "Excess Flood" (InspIRCd's `recvq`, 8 KiB by
    /// default): what a client that never stops sending costs at most.
    pub max_input_queue: usize,
    /// Bytes queued to a client that does not read before it is dropped,
    /// so a slow or dead client never holds memory or stalls the others.
    pub max_send_queue: usize,
    /// If set, clients must send `PASS`, checked through a cred portal
    /// with the nick as user name: [`SharedPasswordChecker`] for one server
    /// password, [`PasswordFileChecker`] for per-user argon2 passwords.
    /// Repeated failures from one host are throttled, and every failure
    /// is the same "464 Password incorrect".
    ///
    /// [`SharedPasswordChecker`]: braid_cred::SharedPasswordChecker
    /// [`PasswordFileChecker`]: braid_cred::PasswordFileChecker
    pub password: Option<Rc<dyn braid_cred::Checker>>,
    /// If set, the last messages of each channel are kept (in SQLite,
    /// through the database pool) and replayed to whoever joins.
    pub history: Option<super::History>,
    /// If set, this server is one of several sharing channels, users and
    /// messages through PostgreSQL (see [`Cluster`]).
    #[cfg(feature = "postgres")]
    pub cluster: Option<Cluster>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: "braid.irc".into(),
            motd: vec!["Welcome to braid's IRC server.".into()],
            ping_after: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(60),
            register_timeout: Duration::from_secs(60),
            flood_burst: 20,
            flood_per_second: 4,
            max_input_queue: 8 * 1024,
            max_send_queue: 1 << 20,
            password: None,
            history: None,
            #[cfg(feature = "postgres")]
            cluster: None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("name", &self.name)
            .field("ping_after", &self.ping_after)
            .field("flood_burst", &self.flood_burst)
            .field("password", &self.password.is_some())
            .finish_non_exhaustive()
    }
}

struct Client {
    uid: u64,
    t: Transport,
    host: String,
    nick: Option<String>,
    user: Option<String>,
    password: Option<String>,
    /// The password is being checked.
    checking: bool,
    registered: bool,
    /// Has left (QUIT, dropped): its channels were told once.
    quit: bool,
    channels: BTreeSet<String>,
    timer: Option<DelayedCall>,
    awaiting_pong: bool,
    tokens: f64,
    refilled: Instant,
    /// Lines received beyond the flood rate, waiting their turn.
    backlog: VecDeque<Vec<u8>>,
    backlog_bytes: usize,
    /// Processes the backlog when the next line is allowed.
    drain: Option<DelayedCall>,
}

impl Client {
    fn prefix(&self) -> String {
        format!(
            "{}!{}@{}",
            self.nick.as_deref().unwrap_or("*"),
            self.user.as_deref().unwrap_or("*"),
            self.host
        )
    }
}

struct Channel {
    name: String,
    topic: Option<String>,
    /// Local members, by connection.
    members: BTreeSet<usize>,
    /// Members on other servers, by case-folded nick.
    remote: BTreeSet<String>,
}

impl Channel {
    fn new(name: &str) -> Channel {
        Channel {
            name: name.to_owned(),
            topic: None,
            members: BTreeSet::new(),
            remote: BTreeSet::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.remote.is_empty()
    }
}

#[derive(Default)]
struct State {
    clients: Slab<Client>,
    nicks: HashMap<String, usize>,
    channels: BTreeMap<String, Channel>,
    /// Users of other servers (a cluster), by case-folded nick.
    remote: HashMap<String, linked::RemoteUser>,
    next_uid: u64,
}

impl State {
    /// The nicks of `c`'s members, local then remote.
    fn member_nicks(&self, c: &Channel) -> Vec<String> {
        c.members
            .iter()
            .filter_map(|id| self.clients.get(*id)?.nick.clone())
            .chain(
                c.remote
                    .iter()
                    .filter_map(|k| Some(self.remote.get(k)?.nick.clone())),
            )
            .collect()
    }
}

struct Server {
    config: ServerConfig,
    /// The other servers, if this one is linked to any.
    link: Option<Rc<dyn Link>>,
    state: RefCell<State>,
    /// Built on first use from `config.password` (it needs the reactor).
    portal: std::cell::OnceCell<braid_cred::Portal<(), ()>>,
}

/// An IRC server. Clones share one server (its users and channels).
///
/// ```no_run
/// use braid_irc::{IrcServer, ServerConfig};
///
/// let reactor = braid::Reactor::new()?;
/// let server = IrcServer::new(ServerConfig::default());
/// let port = server.listen(&reactor, "127.0.0.1:6667".parse().unwrap())?;
/// println!("IRC on {}", port.local_addr());
/// reactor.run()?;
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct IrcServer {
    inner: Rc<Server>,
}

impl IrcServer {
    /// A server with `config`.
    pub fn new(config: ServerConfig) -> Self {
        IrcServer {
            inner: Rc::new_cyclic(|me| {
                #[cfg(feature = "postgres")]
                let link = config
                    .cluster
                    .as_ref()
                    .map(|c| c.attach(me.clone(), &config.name));
                #[cfg(not(feature = "postgres"))]
                let link = {
                    let _ = me;
                    None
                };
                Server {
                    config,
                    link,
                    state: RefCell::default(),
                    portal: std::cell::OnceCell::new(),
                }
            }),
        }
    }

    /// The factory that serves IRC on a listener.
    pub fn factory(&self) -> impl Factory {
        let server = self.inner.clone();
        move |addr: &Address| {
            let host = match addr {
                Address::Tcp(a) => a.ip().to_string(),
                other => other.to_string(),
            };
            LineReceiver::with_delimiter(
                Conn {
                    server: server.clone(),
                    id: usize::MAX,
                    uid: 0,
                    host,
                },
                b"\n",
                MAX_LINE,
            )
        }
    }

    /// Listens on `addr`.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub fn listen(&self, reactor: &Reactor, addr: SocketAddr) -> io::Result<ListeningPort> {
        reactor.listen_tcp(addr, self.factory())
    }

    /// Registered users now connected.
    pub fn user_count(&self) -> usize {
        self.inner
            .state
            .borrow()
            .clients
            .iter()
            .filter(|(_, c)| c.registered)
            .count()
    }

    /// Channels that exist now, by name.
    pub fn channels(&self) -> Vec<String> {
        self.inner
            .state
            .borrow()
            .channels
            .values()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The nicks in `channel`: this server's users, then other servers'.
    pub fn members(&self, channel: &str) -> Vec<String> {
        let s = self.inner.state.borrow();
        s.channels
            .get(&irc_lower(channel))
            .map(|c| s.member_nicks(c))
            .unwrap_or_default()
    }
}

impl fmt::Debug for IrcServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IrcServer")
            .field("name", &self.inner.config.name)
            .field("users", &self.user_count())
            .finish()
    }
}

/// Formats a message from `prefix`.
fn line(prefix: &str, command: &str, args: &[&str]) -> Option<String> {
    super::format_message(Some(prefix), command, args)
}

impl Server {
    fn send(&self, id: usize, text: &str) {
        let t = match self.state.borrow().clients.get(id) {
            Some(c) => c.t.clone(),
            None => return,
        };
        t.write(text.as_bytes());
        if t.write_buffer_len() > self.config.max_send_queue {
            tracing::info!(peer = %t.peer_addr(), "send queue exceeded: dropping the client");
            t.abort_connection();
        }
    }

    fn nick_of(&self, id: usize) -> String {
        self.state
            .borrow()
            .clients
            .get(id)
            .and_then(|c| c.nick.clone())
            .unwrap_or_else(|| "*".into())
    }

    /// A numeric reply to `id`.
    fn reply(&self, id: usize, code: &str, args: &[&str]) {
        let nick = self.nick_of(id);
        let mut all = vec![nick.as_str()];
        all.extend_from_slice(args);
        if let Some(l) = line(&self.config.name, code, &all) {
            self.send(id, &l);
        }
    }

    /// Sends `text` to every member of every channel `id` is in (and to
    /// `id` itself if `include_self`), each once.
    fn to_peers(&self, id: usize, text: &str, include_self: bool) {
        let targets: BTreeSet<usize> = {
            let s = self.state.borrow();
            let Some(c) = s.clients.get(id) else { return };
            let mut t: BTreeSet<usize> = c
                .channels
                .iter()
                .filter_map(|ch| s.channels.get(ch))
                .flat_map(|ch| ch.members.iter().copied())
                .collect();
            if include_self {
                t.insert(id);
            } else {
                t.remove(&id);
            }
            t
        };
        for t in targets {
            self.send(t, text);
        }
    }

    fn to_channel(&self, chan: &str, text: &str, except: Option<usize>) {
        let members: Vec<usize> = match self.state.borrow().channels.get(chan) {
            Some(c) => c
                .members
                .iter()
                .copied()
                .filter(|m| Some(*m) != except)
                .collect(),
            None => return,
        };
        for m in members {
            self.send(m, text);
        }
    }

    fn prefix_of(&self, id: usize) -> String {
        self.state
            .borrow()
            .clients
            .get(id)
            .map(Client::prefix)
            .unwrap_or_default()
    }
}

/// A checker shared by reference (the config holds an `Rc`).
struct SharedChecker(Rc<dyn braid_cred::Checker>);

impl braid_cred::Checker for SharedChecker {
    fn check(
        &self,
        reactor: &Reactor,
        credentials: &braid_cred::Credentials,
    ) -> braid::Deferred<braid_cred::AvatarId, braid_cred::Unauthorized> {
        self.0.check(reactor, credentials)
    }
}

/// One client connection, server side.
struct Conn {
    server: Rc<Server>,
    id: usize,
    uid: u64,
    host: String,
}

impl Conn {
    fn srv(&self) -> &Server {
        &self.server
    }

    /// (Re)arms the connection's one timer: registration, idle, or PING.
    fn arm(&self, reactor: &Reactor, after: Duration) {
        let mut s = self.server.state.borrow_mut();
        let Some(c) = s.clients.get_mut(self.id) else {
            return;
        };
        if let Some(t) = &c.timer {
            if t.reset(after) {
                return;
            }
        }
        let (server, id, uid) = (Rc::downgrade(&self.server), self.id, self.uid);
        let r = reactor.clone();
        c.timer = Some(reactor.call_later(after, move || {
            if let Some(server) = server.upgrade() {
                on_timer(&server, &r, id, uid);
            }
        }));
    }

    /// Token-bucket flood control: whether a line may be processed now
    /// (taking its token).
    fn take_token(cfg: &ServerConfig, c: &mut Client, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(c.refilled).as_secs_f64();
        c.refilled = now;
        let rate = cfg.flood_per_second.max(1) as f64;
        c.tokens = (c.tokens + elapsed * rate).min(cfg.flood_burst.max(1) as f64);
        if c.tokens < 1.0 {
            return false;
        }
        c.tokens -= 1.0;
        true
    }

    /// A line arrived: processed now if the rate allows and nothing waits
    /// before it, else queued behind the others ("fake lag"). Returns
    /// whether it was queued (or the client dropped for flooding).
    fn queue_if_flooding(&self, t: &Transport, raw: &[u8], now: Instant) -> bool {
        let cfg = &self.server.config;
        let flooded = {
            let mut s = self.server.state.borrow_mut();
            let Some(c) = s.clients.get_mut(self.id).filter(|c| c.uid == self.uid) else {
                return true;
            };
            if c.backlog.is_empty() && Self::take_token(cfg, c, now) {
                return false;
            }
            c.backlog_bytes += raw.len() + 2;
            c.backlog.push_back(raw.to_vec());
            c.backlog_bytes > cfg.max_input_queue
        };
        if flooded {
            tracing::info!(peer = %t.peer_addr(), "IRC client dropped: input queue over its cap");
            self.part_all("Excess Flood");
            self.close_with_error(t, "Excess Flood");
            return true;
        }
        self.arm_drain();
        true
    }

    /// Arms the backlog's timer for when the next token is due.
    fn arm_drain(&self) {
        let cfg = &self.server.config;
        let mut s = self.server.state.borrow_mut();
        let Some(c) = s.clients.get_mut(self.id).filter(|c| c.uid == self.uid) else {
            return;
        };
        if c.drain.is_some() || c.backlog.is_empty() {
            return;
        }
        let Some(reactor) = c.t.reactor() else {
            return;
        };
        let rate = cfg.flood_per_second.max(1) as f64;
        let wait = Duration::from_secs_f64(((1.0 - c.tokens).max(0.0) / rate).max(0.001));
        let (server, id, uid) = (self.server.clone(), self.id, self.uid);
        c.drain = Some(reactor.call_later(wait, move || {
            Conn::for_client(server, id, uid).drain_backlog();
        }));
    }

    /// Processes the queued lines the rate allows now, then re-arms.
    fn drain_backlog(&self) {
        loop {
            let next = {
                let cfg = &self.server.config;
                let mut s = self.server.state.borrow_mut();
                let Some(c) = s.clients.get_mut(self.id).filter(|c| c.uid == self.uid) else {
                    return;
                };
                c.drain = None;
                if c.backlog.is_empty() {
                    return;
                }
                let now = c.t.reactor().map_or_else(Instant::now, |r| r.now());
                if !Self::take_token(cfg, c, now) {
                    None
                } else {
                    let line = c.backlog.pop_front().unwrap_or_default();
                    c.backlog_bytes -= line.len() + 2;
                    Some((line, c.t.clone(), now))
                }
            };
            match next {
                Some((line, t, now)) => {
                    if t.is_disconnecting() {
                        return;
                    }
                    self.process_line(&t, &line, now);
                }
                None => break,
            }
        }
        self.arm_drain();
    }

    /// A handle for the client `id`, as its timers make one.
    fn for_client(server: Rc<Server>, id: usize, uid: u64) -> Conn {
        Conn {
            server,
            id,
            uid,
            host: String::new(),
        }
    }

    fn close_with_error(&self, t: &Transport, why: &str) {
        if let Some(l) = line(
            &self.server.config.name,
            "ERROR",
            &[&format!("Closing link: {why}")],
        ) {
            t.write(l.as_bytes());
        }
        t.lose_connection();
    }

    fn handle(&self, t: &Transport, msg: Message) {
        let id = self.id;
        let registered = self
            .server
            .state
            .borrow()
            .clients
            .get(id)
            .is_some_and(|c| c.registered);
        match msg.command {
            Command::PASS(p) => {
                if registered {
                    self.srv().reply(id, "462", &["You may not reregister"]);
                } else if let Some(c) = self.server.state.borrow_mut().clients.get_mut(id) {
                    c.password = Some(p);
                }
            }
            Command::NICK(n) => self.nick(t, &n),
            Command::USER(user, _mode, _real) => {
                if registered {
                    self.srv().reply(id, "462", &["You may not reregister"]);
                    return;
                }
                if let Some(c) = self.server.state.borrow_mut().clients.get_mut(id) {
                    c.user = Some(
                        user.chars()
                            .filter(|c| !c.is_whitespace())
                            .take(16)
                            .collect(),
                    );
                }
                self.try_register(t);
            }
            Command::PING(token, _) => {
                let name = self.server.config.name.clone();
                if let Some(l) = line(&name, "PONG", &[&name, &token]) {
                    self.srv().send(id, &l);
                }
            }
            Command::PONG(..) => {}
            Command::CAP(_, CapSubCommand::LS, _, _) => {
                // No capabilities: clients that ask proceed without any.
                if let Some(l) = line(&self.server.config.name, "CAP", &["*", "LS", ""]) {
                    self.srv().send(id, &l);
                }
            }
            Command::CAP(..) => {}
            Command::Raw(name, args)
                if matches!(
                    name.to_ascii_uppercase().as_str(),
                    "NICK" | "USER" | "PASS" | "CAP" | "PING"
                ) =>
            {
                self.raw(&name, &args)
            }
            Command::QUIT(m) => {
                let why = m.unwrap_or_else(|| "Client quit".into());
                self.part_all(&format!("Quit: {why}"));
                self.close_with_error(t, "quit");
            }
            _ if !registered => self.srv().reply(id, "451", &["You have not registered"]),
            Command::JOIN(chans, _, _) => {
                if chans == "0" {
                    let chans: Vec<String> = self.channels_of();
                    for c in chans {
                        self.part(&c, "Left all channels");
                    }
                    return;
                }
                for c in chans.split(',').filter(|c| !c.is_empty()) {
                    self.join(c);
                }
            }
            Command::PART(chans, m) => {
                for c in chans.split(',').filter(|c| !c.is_empty()) {
                    if !self
                        .srv()
                        .state
                        .borrow()
                        .channels
                        .contains_key(&irc_lower(c))
                    {
                        self.srv().reply(id, "403", &[c, "No such channel"]);
                    } else if !self.channels_of().contains(&irc_lower(c)) {
                        self.srv()
                            .reply(id, "442", &[c, "You're not on that channel"]);
                    } else {
                        self.part(&irc_lower(c), m.as_deref().unwrap_or(""));
                    }
                }
            }
            Command::PRIVMSG(target, text) => self.message("PRIVMSG", &target, &text, true),
            Command::NOTICE(target, text) => self.message("NOTICE", &target, &text, false),
            Command::TOPIC(chan, topic) => self.topic(&chan, topic),
            Command::NAMES(chans, _) => match chans {
                Some(cs) => cs.split(',').for_each(|c| self.names(c)),
                None => {
                    for c in self.channels_of() {
                        self.names(&c);
                    }
                }
            },
            Command::WHO(mask, _) => self.who(mask.as_deref().unwrap_or("*")),
            Command::LIST(..) => self.list(),
            Command::MOTD(_) => self.motd(),
            Command::ChannelMODE(chan, _) => {
                if self
                    .srv()
                    .state
                    .borrow()
                    .channels
                    .contains_key(&irc_lower(&chan))
                {
                    self.srv().reply(id, "324", &[&chan, "+n"]);
                } else {
                    self.srv().reply(id, "403", &[&chan, "No such channel"]);
                }
            }
            Command::UserMODE(..) => self.srv().reply(id, "221", &["+"]),
            Command::Raw(name, args) => self.raw(&name, &args),
            other => {
                let name = String::from(&other);
                let name = name.split_whitespace().next().unwrap_or("").to_owned();
                self.srv().reply(id, "421", &[&name, "Unknown command"]);
            }
        }
    }

    /// Commands irc-proto could not type: missing parameters or unknown.
    fn raw(&self, name: &str, args: &[String]) {
        let id = self.id;
        let upper = name.to_ascii_uppercase();
        if upper.is_empty() {
            return;
        }
        match (upper.as_str(), args.len()) {
            ("NICK", 0) => self.srv().reply(id, "431", &["No nickname given"]),
            ("PRIVMSG" | "NOTICE", 0) => {
                self.srv()
                    .reply(id, "411", &[&format!("No recipient given ({upper})")])
            }
            ("PRIVMSG" | "NOTICE", 1) => self.srv().reply(id, "412", &["No text to send"]),
            (
                "USER" | "JOIN" | "PART" | "TOPIC" | "PASS" | "PING" | "KICK" | "INVITE" | "MODE"
                | "OPER" | "WHOIS" | "CAP",
                _,
            ) => self
                .srv()
                .reply(id, "461", &[&upper, "Not enough parameters"]),
            _ => {
                let shown: String = upper.chars().take(32).collect();
                self.srv().reply(id, "421", &[&shown, "Unknown command"]);
            }
        }
    }

    fn channels_of(&self) -> Vec<String> {
        self.server
            .state
            .borrow()
            .clients
            .get(self.id)
            .map(|c| c.channels.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The connection's timer fired: registration timeout, or idle.
fn on_timer(server: &Rc<Server>, reactor: &Reactor, id: usize, uid: u64) {
    let (t, registered, awaiting) = {
        let s = server.state.borrow();
        match s.clients.get(id) {
            Some(c) if c.uid == uid => (c.t.clone(), c.registered, c.awaiting_pong),
            _ => return,
        }
    };
    let conn = Conn {
        server: server.clone(),
        id,
        uid,
        host: String::new(),
    };
    if !registered {
        conn.close_with_error(&t, "registration timeout");
    } else if awaiting {
        conn.part_all("Ping timeout");
        conn.close_with_error(&t, "ping timeout");
    } else {
        let name = server.config.name.clone();
        if let Some(l) = line(&name, "PING", &[&name]) {
            server.send(id, &l);
        }
        if let Some(c) = server.state.borrow_mut().clients.get_mut(id) {
            c.awaiting_pong = true;
        }
        conn.arm(reactor, server.config.ping_timeout);
    }
}

impl LineHandler for Conn {
    fn connection_made(&mut self, ctx: &mut LineContext<'_>) {
        let t = ctx.transport().clone();
        let now = t.reactor().map(|r| r.now()).unwrap_or_else(Instant::now);
        {
            let mut s = self.server.state.borrow_mut();
            self.uid = s.next_uid;
            s.next_uid += 1;
            self.id = s.clients.insert(Client {
                uid: self.uid,
                t: t.clone(),
                host: std::mem::take(&mut self.host),
                nick: None,
                user: None,
                password: None,
                checking: false,
                registered: false,
                quit: false,
                channels: BTreeSet::new(),
                timer: None,
                awaiting_pong: false,
                tokens: self.server.config.flood_burst as f64,
                refilled: now,
                backlog: VecDeque::new(),
                backlog_bytes: 0,
                drain: None,
            });
        }
        if let Some(r) = t.reactor() {
            self.arm(&r, self.server.config.register_timeout);
        }
    }

    fn line_received(&mut self, ctx: &mut LineContext<'_>, raw: &[u8]) {
        let t = ctx.transport().clone();
        let reactor = t.reactor();
        let now = reactor
            .as_ref()
            .map(|r| r.now())
            .unwrap_or_else(Instant::now);
        if self.queue_if_flooding(&t, raw, now) {
            return;
        }
        self.process_line(&t, raw, now);
    }

    fn line_length_exceeded(&mut self, _ctx: &mut LineContext<'_>, _error: FramingError) {
        // The rest of the line is dropped by the decoder; the client stays.
        self.srv()
            .reply(self.id, "417", &["Input line was too long"]);
    }

    fn connection_lost(&mut self, _reason: &CloseReason) {
        self.part_all("Connection closed");
        let mut s = self.server.state.borrow_mut();
        if s.clients.get(self.id).is_some_and(|c| c.uid == self.uid) {
            let c = s.clients.remove(self.id);
            for t in [c.timer, c.drain].into_iter().flatten() {
                t.cancel();
            }
            if let Some(n) = c.nick {
                if s.nicks.get(&irc_lower(&n)) == Some(&self.id) {
                    s.nicks.remove(&irc_lower(&n));
                }
            }
        }
    }
}

impl Conn {
    /// Handles one line from the client.
    fn process_line(&self, t: &Transport, raw: &[u8], _now: Instant) {
        let reactor = t.reactor();
        let registered = {
            let mut s = self.server.state.borrow_mut();
            let Some(c) = s.clients.get_mut(self.id) else {
                return;
            };
            c.awaiting_pong = false;
            c.registered
        };
        if let (Some(r), true) = (&reactor, registered) {
            self.arm(r, self.server.config.ping_after);
        }
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            return;
        }
        match text.parse::<Message>() {
            Ok(msg) => self.handle(t, msg),
            Err(e) => {
                tracing::debug!(error = %e, "unparsable IRC line");
                self.srv().reply(self.id, "421", &["*", "Unknown command"]);
            }
        }
    }
}
