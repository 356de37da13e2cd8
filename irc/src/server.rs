//! An IRC server: enough of RFC 1459/2812 that ordinary clients work.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use irc_proto::{CapSubCommand, Command, Message};
use slab::Slab;

use super::names::{irc_lower, is_valid_channel, is_valid_nick};
use super::MAX_LINE;
use braid::framing::{FramingError, LineContext, LineHandler, LineReceiver};
use braid::CloseReason;
use braid::Factory;
use braid::ListeningPort;
use braid::{Address, Transport};
use braid::{DelayedCall, Reactor};

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
    /// Lines a client may send in a burst...
    pub flood_burst: u32,
    /// ... and per second after that; beyond, it is disconnected.
    pub flood_per_second: u32,
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
            max_send_queue: 1 << 20,
            password: None,
            history: None,
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
    channels: BTreeSet<String>,
    timer: Option<DelayedCall>,
    awaiting_pong: bool,
    tokens: f64,
    refilled: Instant,
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
    members: BTreeSet<usize>,
}

#[derive(Default)]
struct State {
    clients: Slab<Client>,
    nicks: HashMap<String, usize>,
    channels: BTreeMap<String, Channel>,
    next_uid: u64,
}

struct Server {
    config: ServerConfig,
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
            inner: Rc::new(Server {
                config,
                state: RefCell::default(),
                portal: std::cell::OnceCell::new(),
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

    /// The nicks in `channel`.
    pub fn members(&self, channel: &str) -> Vec<String> {
        let s = self.inner.state.borrow();
        s.channels
            .get(&irc_lower(channel))
            .map(|c| {
                c.members
                    .iter()
                    .filter_map(|id| s.clients.get(*id)?.nick.clone())
                    .collect()
            })
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

    /// Token-bucket flood control; false means: drop this client.
    fn allow_line(&self, now: Instant) -> bool {
        let cfg = &self.server.config;
        let mut s = self.server.state.borrow_mut();
        let Some(c) = s.clients.get_mut(self.id) else {
            return false;
        };
        let elapsed = now.saturating_duration_since(c.refilled).as_secs_f64();
        c.refilled = now;
        c.tokens = (c.tokens + elapsed * cfg.flood_per_second as f64).min(cfg.flood_burst as f64);
        if c.tokens < 1.0 {
            return false;
        }
        c.tokens -= 1.0;
        true
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

    fn nick(&self, t: &Transport, new: &str) {
        let id = self.id;
        if !is_valid_nick(new) {
            self.srv().reply(id, "432", &[new, "Erroneous nickname"]);
            return;
        }
        let key = irc_lower(new);
        let (old, registered) = {
            let s = self.server.state.borrow();
            if let Some(&owner) = s.nicks.get(&key) {
                if owner != id {
                    drop(s);
                    self.srv()
                        .reply(id, "433", &[new, "Nickname is already in use"]);
                    return;
                }
            }
            let c = &s.clients[id];
            (c.nick.clone(), c.registered)
        };
        let prefix = self.srv().prefix_of(id);
        {
            let mut s = self.server.state.borrow_mut();
            if let Some(o) = &old {
                s.nicks.remove(&irc_lower(o));
            }
            s.nicks.insert(key, id);
            s.clients[id].nick = Some(new.to_owned());
        }
        if registered {
            if let Some(l) = line(&prefix, "NICK", &[new]) {
                self.srv().to_peers(id, &l, true);
            }
        } else {
            self.try_register(t);
        }
    }

    fn try_register(&self, t: &Transport) {
        let id = self.id;
        let (nick, ready, password, host) = {
            let s = self.server.state.borrow();
            let c = &s.clients[id];
            (
                c.nick.clone().unwrap_or_default(),
                c.nick.is_some() && c.user.is_some() && !c.checking,
                c.password.clone(),
                c.host.clone(),
            )
        };
        if !ready {
            return;
        }
        let Some(checker) = self.server.config.password.clone() else {
            return self.complete_registration(t);
        };
        let Some(reactor) = t.reactor() else { return };
        self.server.state.borrow_mut().clients[id].checking = true;
        let portal = self
            .server
            .portal
            .get_or_init(|| {
                braid_cred::Portal::new(&reactor, |_: &str, _: ()| ((), None))
                    .checker(SharedChecker(checker))
            })
            .clone();
        let creds = braid_cred::Credentials::password(&nick, password.as_deref().unwrap_or(""));
        let (server, uid, t) = (Rc::downgrade(&self.server), self.uid, t.clone());
        portal.login(creds, (), &host).add_both(move |r| {
            let Some(server) = server.upgrade() else {
                return Ok::<(), braid_cred::Unauthorized>(());
            };
            let still_here = server
                .state
                .borrow_mut()
                .clients
                .get_mut(id)
                .filter(|c| c.uid == uid)
                .map(|c| c.checking = false)
                .is_some();
            if !still_here {
                return Ok(());
            }
            let conn = Conn {
                server,
                id,
                uid,
                host: String::new(),
            };
            match r {
                Ok(_) => conn.complete_registration(&t),
                Err(_) => {
                    conn.srv().reply(id, "464", &["Password incorrect"]);
                    conn.close_with_error(&t, "bad password");
                }
            }
            Ok(())
        });
    }

    fn complete_registration(&self, t: &Transport) {
        let id = self.id;
        self.server.state.borrow_mut().clients[id].registered = true;
        let name = self.server.config.name.clone();
        let prefix = self.srv().prefix_of(id);
        self.srv().reply(
            id,
            "001",
            &[&format!("Welcome to the Internet Relay Network {prefix}")],
        );
        self.srv()
            .reply(id, "002", &[&format!("Your host is {name}, running braid")]);
        self.srv()
            .reply(id, "003", &["This server was started by a braid reactor"]);
        self.srv().reply(id, "004", &[&name, "braid", "i", "n"]);
        self.motd();
        if let Some(r) = t.reactor() {
            self.arm(&r, self.server.config.ping_after);
        }
    }

    fn motd(&self) {
        let id = self.id;
        let name = self.server.config.name.clone();
        self.srv()
            .reply(id, "375", &[&format!("- {name} Message of the day -")]);
        for l in &self.server.config.motd {
            self.srv().reply(id, "372", &[&format!("- {l}")]);
        }
        self.srv().reply(id, "376", &["End of /MOTD command"]);
    }

    fn join(&self, chan: &str) {
        let id = self.id;
        if !is_valid_channel(chan) {
            self.srv().reply(id, "403", &[chan, "No such channel"]);
            return;
        }
        let key = irc_lower(chan);
        {
            let mut s = self.server.state.borrow_mut();
            if s.clients[id].channels.contains(&key) {
                return;
            }
            s.clients[id].channels.insert(key.clone());
            s.channels
                .entry(key.clone())
                .or_insert_with(|| Channel {
                    name: chan.to_owned(),
                    topic: None,
                    members: BTreeSet::new(),
                })
                .members
                .insert(id);
        }
        let name = self.server.state.borrow().channels[&key].name.clone();
        if let Some(l) = line(&self.srv().prefix_of(id), "JOIN", &[&name]) {
            self.srv().to_channel(&key, &l, None);
        }
        let topic = self.server.state.borrow().channels[&key].topic.clone();
        match topic {
            Some(t) => self.srv().reply(id, "332", &[&name, &t]),
            None => self.srv().reply(id, "331", &[&name, "No topic is set"]),
        }
        self.names(&name);
        self.replay(&key, &name);
    }

    /// Sends the channel's remembered messages to the joiner, between two
    /// notices, once the database answers (on the reactor thread).
    fn replay(&self, key: &str, name: &str) {
        let Some(history) = self.server.config.history.clone() else {
            return;
        };
        let (server, id, uid, key, name) = (
            Rc::downgrade(&self.server),
            self.id,
            self.uid,
            key.to_owned(),
            name.to_owned(),
        );
        let _tail = history.recent(&key).add_callback(move |rows| {
            let Some(server) = server.upgrade() else {
                return;
            };
            let still_here = server
                .state
                .borrow()
                .clients
                .get(id)
                .is_some_and(|c| c.uid == uid && c.channels.contains(&key));
            if !still_here || rows.is_empty() {
                return;
            }
            let sname = server.config.name.clone();
            if let Some(l) = line(
                &sname,
                "NOTICE",
                &[&name, &format!("--- last {} messages ---", rows.len())],
            ) {
                server.send(id, &l);
            }
            for r in rows {
                if let Some(l) = line(&r.prefix, &r.command, &[&name, &r.text]) {
                    server.send(id, &l);
                }
            }
            if let Some(l) = line(&sname, "NOTICE", &[&name, "--- end of history ---"]) {
                server.send(id, &l);
            }
        });
    }

    fn part(&self, key: &str, why: &str) {
        let id = self.id;
        let prefix = self.srv().prefix_of(id);
        let name = match self.server.state.borrow().channels.get(key) {
            Some(c) => c.name.clone(),
            None => return,
        };
        let args: Vec<&str> = if why.is_empty() {
            vec![&name]
        } else {
            vec![&name, why]
        };
        if let Some(l) = line(&prefix, "PART", &args) {
            self.srv().to_channel(key, &l, None);
        }
        let mut s = self.server.state.borrow_mut();
        s.clients[id].channels.remove(key);
        let empty = s.channels.get_mut(key).map(|c| {
            c.members.remove(&id);
            c.members.is_empty()
        });
        if empty == Some(true) {
            s.channels.remove(key);
        }
    }

    /// Leaves every channel, telling the peers with a QUIT.
    fn part_all(&self, quit_message: &str) {
        let id = self.id;
        if !self
            .server
            .state
            .borrow()
            .clients
            .get(id)
            .is_some_and(|c| c.registered)
        {
            return;
        }
        if let Some(l) = line(&self.srv().prefix_of(id), "QUIT", &[quit_message]) {
            self.srv().to_peers(id, &l, false);
        }
        let mut s = self.server.state.borrow_mut();
        let chans: Vec<String> = std::mem::take(&mut s.clients[id].channels)
            .into_iter()
            .collect();
        for key in chans {
            let empty = s.channels.get_mut(&key).map(|c| {
                c.members.remove(&id);
                c.members.is_empty()
            });
            if empty == Some(true) {
                s.channels.remove(&key);
            }
        }
    }

    fn message(&self, cmd: &str, targets: &str, text: &str, errors: bool) {
        let id = self.id;
        if text.is_empty() {
            if errors {
                self.srv().reply(id, "412", &["No text to send"]);
            }
            return;
        }
        let prefix = self.srv().prefix_of(id);
        for target in targets.split(',').filter(|t| !t.is_empty()) {
            let key = irc_lower(target);
            let Some(l) = line(&prefix, cmd, &[target, text]) else {
                continue;
            };
            if target.starts_with('#') || target.starts_with('&') {
                let member = self
                    .server
                    .state
                    .borrow()
                    .channels
                    .get(&key)
                    .map(|c| c.members.contains(&id));
                match member {
                    Some(true) => {
                        self.srv().to_channel(&key, &l, Some(id));
                        if let Some(h) = &self.server.config.history {
                            h.record(&key, &prefix, cmd, text);
                        }
                    }
                    Some(false) if errors => {
                        self.srv()
                            .reply(id, "404", &[target, "Cannot send to channel"])
                    }
                    None if errors => self.srv().reply(id, "403", &[target, "No such channel"]),
                    _ => {}
                }
            } else {
                let to = self.server.state.borrow().nicks.get(&key).copied();
                match to {
                    Some(to) => self.srv().send(to, &l),
                    None if errors => {
                        self.srv()
                            .reply(id, "401", &[target, "No such nick/channel"])
                    }
                    None => {}
                }
            }
        }
    }

    fn topic(&self, chan: &str, topic: Option<String>) {
        let id = self.id;
        let key = irc_lower(chan);
        let (exists, member) = match self.server.state.borrow().channels.get(&key) {
            Some(c) => (true, c.members.contains(&id)),
            None => (false, false),
        };
        if !exists {
            self.srv().reply(id, "403", &[chan, "No such channel"]);
            return;
        }
        match topic {
            None => {
                let t = self.server.state.borrow().channels[&key].topic.clone();
                match t {
                    Some(t) => self.srv().reply(id, "332", &[chan, &t]),
                    None => self.srv().reply(id, "331", &[chan, "No topic is set"]),
                }
            }
            Some(_) if !member => {
                self.srv()
                    .reply(id, "442", &[chan, "You're not on that channel"])
            }
            Some(t) => {
                let t: String = t.chars().take(390).collect();
                self.server
                    .state
                    .borrow_mut()
                    .channels
                    .get_mut(&key)
                    .expect("checked")
                    .topic = (!t.is_empty()).then(|| t.clone());
                let name = self.server.state.borrow().channels[&key].name.clone();
                if let Some(l) = line(&self.srv().prefix_of(id), "TOPIC", &[&name, &t]) {
                    self.srv().to_channel(&key, &l, None);
                }
            }
        }
    }

    fn names(&self, chan: &str) {
        let id = self.id;
        let key = irc_lower(chan);
        let (name, nicks) = {
            let s = self.server.state.borrow();
            match s.channels.get(&key) {
                Some(c) => (
                    c.name.clone(),
                    c.members
                        .iter()
                        .filter_map(|m| s.clients.get(*m)?.nick.clone())
                        .collect::<Vec<_>>(),
                ),
                None => (chan.to_owned(), Vec::new()),
            }
        };
        // Several 353 lines if the list is long, each well under 512 bytes.
        for chunk in nicks.chunks(20) {
            self.srv().reply(id, "353", &["=", &name, &chunk.join(" ")]);
        }
        self.srv().reply(id, "366", &[&name, "End of /NAMES list"]);
    }

    fn who(&self, mask: &str) {
        let id = self.id;
        let key = irc_lower(mask);
        let rows: Vec<(String, String, String)> = {
            let s = self.server.state.borrow();
            let members: Vec<usize> = match s.channels.get(&key) {
                Some(c) => c.members.iter().copied().collect(),
                None => s.nicks.get(&key).copied().into_iter().collect(),
            };
            members
                .into_iter()
                .filter_map(|m| {
                    let c = s.clients.get(m)?;
                    Some((
                        c.nick.clone()?,
                        c.user.clone().unwrap_or_default(),
                        c.host.clone(),
                    ))
                })
                .collect()
        };
        let name = self.server.config.name.clone();
        for (nick, user, host) in rows {
            self.srv().reply(
                id,
                "352",
                &[mask, &user, &host, &name, &nick, "H", &format!("0 {nick}")],
            );
        }
        self.srv().reply(id, "315", &[mask, "End of /WHO list"]);
    }

    fn list(&self) {
        let id = self.id;
        let rows: Vec<(String, usize, String)> = self
            .server
            .state
            .borrow()
            .channels
            .values()
            .map(|c| {
                (
                    c.name.clone(),
                    c.members.len(),
                    c.topic.clone().unwrap_or_default(),
                )
            })
            .collect();
        self.srv().reply(id, "321", &["Channel", "Users  Name"]);
        for (name, n, topic) in rows {
            self.srv()
                .reply(id, "322", &[&name, &n.to_string(), &topic]);
        }
        self.srv().reply(id, "323", &["End of /LIST"]);
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
                channels: BTreeSet::new(),
                timer: None,
                awaiting_pong: false,
                tokens: self.server.config.flood_burst as f64,
                refilled: now,
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
        if !self.allow_line(now) {
            self.part_all("Excess Flood");
            self.close_with_error(&t, "excess flood");
            return;
        }
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
            Ok(msg) => self.handle(&t, msg),
            Err(e) => {
                tracing::debug!(error = %e, "unparsable IRC line");
                self.srv().reply(self.id, "421", &["*", "Unknown command"]);
            }
        }
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
            if let Some(t) = c.timer {
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
