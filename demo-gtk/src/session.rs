//! One chat session: an [`IrcClient`] on a reconnecting connection, the
//! user's input turned into IRC commands, and IRC events turned into what
//! the [`View`] shows. No GTK in here: the window is a `View`, and so is
//! the tests' recorder.

use braid_tls::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};
use std::time::Duration;

use braid::{
    Address, ClientFactory, CloseReason, ConnectError, ConnectErrorKind, Connector, Factory,
    Protocol, Reactor, ReconnectingClientFactory,
};
use braid_irc::{irc_lower, ClientConfig, IrcClient, IrcEvent};

use crate::command::{parse_input, Input, HELP};
use crate::history::ChatLog;
use crate::model::{BufferKind, Line, LineKind, Status, View, SERVER_BUFFER};

/// How many remembered lines a buffer shows when it opens.
pub const HISTORY_LINES: usize = 200;

/// Where to connect and as whom.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The nick to ask for.
    pub nick: String,
    /// The channel to join once registered.
    pub channel: String,
    /// A server password, if the server wants one.
    pub password: Option<String>,
    /// The name history is kept under (`host:port`, or `embedded`).
    pub network: String,
    /// The first reconnection delay (it grows by e, jittered, up to
    /// `max_delay`).
    pub initial_delay: Duration,
    /// The longest reconnection delay.
    pub max_delay: Duration,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// Speak TLS (IRC over TLS, usually port 6697), checking the server's
    /// certificate against `host`.
    pub tls: Option<braid_tls::ClientConfig>,
}

impl SessionConfig {
    /// A config for `host:port` with the usual delays.
    pub fn new(host: &str, port: u16, nick: &str, channel: &str) -> SessionConfig {
        SessionConfig {
            host: host.to_owned(),
            port,
            nick: nick.to_owned(),
            channel: channel.to_owned(),
            password: None,
            network: format!("{host}:{port}"),
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

struct Inner {
    reactor: Reactor,
    config: SessionConfig,
    view: Rc<dyn View>,
    log: Option<Rc<ChatLog>>,
    client: RefCell<Option<IrcClient>>,
    stop_trying: RefCell<Option<Box<dyn Fn()>>>,
    connector: RefCell<Option<Connector>>,
    /// Channels to be in (rejoined after a reconnection), lowercased key.
    wanted: RefCell<BTreeMap<String, String>>,
    /// Buffers whose history has been asked for in this session.
    history_loaded: RefCell<BTreeSet<String>>,
    status: RefCell<Status>,
    active: Cell<bool>,
}

/// A chat session; clones share it.
#[derive(Clone)]
pub struct Session {
    inner: Rc<Inner>,
}

/// Reports connection attempts to the session, around the reconnecting
/// factory that does the retrying.
struct StatusFactory<F> {
    inner: ReconnectingClientFactory<F>,
    session: Weak<Inner>,
}

impl<F: ClientFactory> Factory for StatusFactory<F> {
    fn build_protocol(&mut self, addr: &Address) -> Option<Box<dyn Protocol>> {
        self.inner.build_protocol(addr)
    }
}

impl<F: ClientFactory> StatusFactory<F> {
    fn session(&self) -> Option<Session> {
        self.session.upgrade().map(|inner| Session { inner })
    }

    fn ended(&self, reason: String) {
        let Some(s) = self.session() else { return };
        if !s.inner.active.get() {
            return;
        }
        if self.inner.is_retry_pending() {
            s.set_status(Status::Reconnecting {
                reason,
                delay: self.inner.current_delay(),
                retries: self.inner.retries().saturating_sub(1),
            });
        } else {
            s.inner.active.set(false);
            s.set_status(Status::Failed { reason });
        }
    }
}

impl<F: ClientFactory> ClientFactory for StatusFactory<F> {
    fn started_connecting(&mut self, connector: &Connector) {
        self.inner.started_connecting(connector);
        if let Some(s) = self.session() {
            if s.inner.active.get() {
                let c = &s.inner.config;
                let tls = if c.tls.is_some() { " (TLS)" } else { "" };
                let to = format!("{}:{}{tls}", c.host, c.port);
                s.set_status(Status::Connecting { to });
            }
        }
    }

    fn client_connection_failed(&mut self, connector: &Connector, reason: &ConnectError) {
        if reason.kind() == ConnectErrorKind::Unresolved {
            // A name that does not resolve will not start resolving by
            // itself: say so instead of retrying for ever.
            self.inner.stop_trying();
        }
        self.inner.client_connection_failed(connector, reason);
        self.ended(reason.to_string());
    }

    fn client_connection_lost(&mut self, connector: &Connector, reason: &CloseReason) {
        use braid_tls::TlsErrorKind as K;
        let refused = reason.tls_error().map(|e| e.kind());
        if matches!(
            refused,
            Some(K::NameMismatch | K::Expired | K::UnknownIssuer | K::BadCertificate | K::Config)
        ) {
            // A certificate the client refuses will not change by itself:
            // say so instead of retrying for ever.
            self.inner.stop_trying();
        }
        self.inner.client_connection_lost(connector, reason);
        self.ended(format!("connection lost: {reason}"));
    }
}

impl Session {
    /// A session that will show itself in `view` and keep its lines in
    /// `log`. Call [`connect`](Self::connect) to start.
    pub fn new(
        reactor: &Reactor,
        config: SessionConfig,
        view: Rc<dyn View>,
        log: Option<Rc<ChatLog>>,
    ) -> Session {
        let mut wanted = BTreeMap::new();
        if braid_irc::is_valid_channel(&config.channel) {
            wanted.insert(irc_lower(&config.channel), config.channel.clone());
        }
        Session {
            inner: Rc::new(Inner {
                reactor: reactor.clone(),
                config,
                view,
                log,
                client: RefCell::new(None),
                stop_trying: RefCell::new(None),
                connector: RefCell::new(None),
                wanted: RefCell::new(wanted),
                history_loaded: RefCell::new(BTreeSet::new()),
                status: RefCell::new(Status::Idle),
                active: Cell::new(false),
            }),
        }
    }

    /// The config it was made with.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.inner.status.borrow().clone()
    }

    /// The IRC client (after [`connect`](Self::connect)).
    pub fn client(&self) -> Option<IrcClient> {
        self.inner.client.borrow().clone()
    }

    fn set_status(&self, status: Status) {
        if *self.inner.status.borrow() == status {
            return;
        }
        tracing::info!(%status, "status");
        *self.inner.status.borrow_mut() = status.clone();
        self.inner.view.set_status(&status);
        // The server tab keeps the story of the connection.
        if self.inner.view.has_buffer(SERVER_BUFFER) {
            match &status {
                Status::Connecting { to } => {
                    self.info(SERVER_BUFFER, &format!("connecting to {to}"))
                }
                Status::Reconnecting { reason, delay, .. } => self.error(
                    SERVER_BUFFER,
                    &format!("{reason}; trying again in {:.1} s", delay.as_secs_f64()),
                ),
                Status::Failed { reason } => {
                    self.error(SERVER_BUFFER, &format!("{reason}; not trying again"))
                }
                Status::Disconnected { reason } => {
                    self.info(SERVER_BUFFER, &format!("disconnected ({reason})"))
                }
                Status::Idle | Status::Connected { .. } => {}
            }
        }
    }

    /// Starts connecting (and reconnecting, with backoff, until
    /// [`disconnect`](Self::disconnect)).
    pub fn connect(&self) {
        if self.inner.active.get() {
            return;
        }
        self.inner.active.set(true);
        let c = &self.inner.config;
        let mut cc = ClientConfig::new(&c.nick);
        cc.password = c.password.clone();
        let weak = Rc::downgrade(&self.inner);
        let client = IrcClient::new(cc, move |client, event| {
            if let Some(inner) = weak.upgrade() {
                Session { inner }.on_event(client, event);
            }
        });
        let retrying = ReconnectingClientFactory::new(client.factory())
            .initial_delay(c.initial_delay)
            .max_delay(c.max_delay);
        let control = retrying.clone();
        *self.inner.stop_trying.borrow_mut() = Some(Box::new(move || control.stop_trying()));
        *self.inner.client.borrow_mut() = Some(client);
        self.inner
            .view
            .open_buffer(SERVER_BUFFER, BufferKind::Server, false);
        let factory = StatusFactory {
            inner: retrying,
            session: Rc::downgrade(&self.inner),
        };
        let timeout = Some(c.connect_timeout);
        let reactor = &self.inner.reactor;
        let connector = match (c.host.parse::<IpAddr>(), &c.tls) {
            (Ok(ip), None) => reactor.connect_tcp(SocketAddr::new(ip, c.port), factory, timeout),
            (Err(_), None) => reactor.connect_tcp_host(&c.host, c.port, factory, timeout),
            (Ok(ip), Some(tls)) => {
                reactor.connect_tls(SocketAddr::new(ip, c.port), &c.host, factory, tls, timeout)
            }
            (Err(_), Some(tls)) => reactor.connect_tls_host(&c.host, c.port, factory, tls, timeout),
        };
        *self.inner.connector.borrow_mut() = Some(connector);
    }

    /// Stops for good: quits IRC if connected (with `reason`), cancels a
    /// pending reconnection.
    pub fn disconnect(&self, reason: &str) {
        if !self.inner.active.replace(false) {
            return;
        }
        if let Some(stop) = self.inner.stop_trying.borrow_mut().take() {
            stop();
        }
        let client = self.client();
        match client {
            Some(c) if c.is_registered() => c.quit(reason),
            _ => {
                if let Some(conn) = self.inner.connector.borrow().clone() {
                    conn.disconnect();
                }
            }
        }
        self.set_status(Status::Disconnected {
            reason: reason.to_owned(),
        });
    }

    fn show(&self, buffer: &str, line: Line) {
        let view = &self.inner.view;
        if buffer != SERVER_BUFFER && !view.has_buffer(buffer) {
            self.open_query(buffer, false);
        }
        view.append(buffer, &line);
        if matches!(
            line.kind,
            LineKind::Message | LineKind::Action | LineKind::Notice
        ) && buffer != SERVER_BUFFER
        {
            if let Some(log) = &self.inner.log {
                log.record(&self.inner.config.network, buffer, &line);
            }
        }
    }

    fn info(&self, buffer: &str, text: &str) {
        self.inner
            .view
            .append(buffer, &Line::now(LineKind::Info, "", text));
    }

    fn error(&self, buffer: &str, text: &str) {
        self.inner
            .view
            .append(buffer, &Line::now(LineKind::Error, "", text));
    }

    fn open_query(&self, nick: &str, focus: bool) {
        self.inner.view.open_buffer(nick, BufferKind::Query, focus);
        self.load_history(nick);
    }

    /// Shows the remembered lines of `buffer`, once per session.
    fn load_history(&self, buffer: &str) {
        let Some(log) = self.inner.log.clone() else {
            return;
        };
        if !self
            .inner
            .history_loaded
            .borrow_mut()
            .insert(irc_lower(buffer))
        {
            return;
        }
        let view = self.inner.view.clone();
        let name = buffer.to_owned();
        let d = log.recent(&self.inner.config.network, buffer, HISTORY_LINES);
        let _shown = d.add_callbacks(
            move |lines| {
                if !lines.is_empty() && view.has_buffer(&name) {
                    view.show_history(&name, &lines);
                }
                Ok::<(), braid::Failure>(())
            },
            |failure| {
                tracing::warn!(%failure, "cannot read the chat history");
                Ok(())
            },
        );
    }

    fn refresh_members(&self, client: &IrcClient, channel: &str) {
        self.inner
            .view
            .set_members(channel, &client.members(channel));
    }

    fn on_event(&self, client: &IrcClient, event: IrcEvent) {
        let me = client.nick();
        let is_me = |n: &str| irc_lower(n) == irc_lower(&me);
        match event {
            IrcEvent::Registered { nick } => {
                let to = format!("{}:{}", self.inner.config.host, self.inner.config.port);
                self.set_status(Status::Connected {
                    to,
                    nick: nick.clone(),
                });
                self.inner.view.set_nick(&nick);
                self.info(SERVER_BUFFER, &format!("registered as {nick}"));
                let channels: Vec<String> = self.inner.wanted.borrow().values().cloned().collect();
                for ch in channels {
                    client.join(&ch);
                }
            }
            IrcEvent::NickInUse { tried, next } => {
                self.info(
                    SERVER_BUFFER,
                    &format!("the nick {tried} is taken; trying {next}"),
                );
            }
            IrcEvent::Joined { channel, nick } => {
                if is_me(&nick) {
                    self.inner
                        .wanted
                        .borrow_mut()
                        .insert(irc_lower(&channel), channel.clone());
                    let first = !self.inner.view.has_buffer(&channel);
                    self.inner
                        .view
                        .open_buffer(&channel, BufferKind::Channel, first);
                    self.load_history(&channel);
                    self.info(&channel, &format!("you joined {channel}"));
                } else {
                    self.info(&channel, &format!("{nick} joined"));
                }
                self.refresh_members(client, &channel);
            }
            IrcEvent::Parted {
                channel,
                nick,
                reason,
            } => {
                if is_me(&nick) {
                    self.inner.wanted.borrow_mut().remove(&irc_lower(&channel));
                    self.inner.view.close_buffer(&channel);
                } else {
                    let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                    self.info(&channel, &format!("{nick} left{why}"));
                    self.refresh_members(client, &channel);
                }
            }
            IrcEvent::Kicked {
                channel,
                nick,
                by,
                reason,
            } => {
                let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                if is_me(&nick) {
                    self.inner.wanted.borrow_mut().remove(&irc_lower(&channel));
                    self.error(&channel, &format!("{by} kicked you out{why}"));
                    self.inner.view.set_members(&channel, &[]);
                } else {
                    self.info(&channel, &format!("{by} kicked {nick}{why}"));
                    self.refresh_members(client, &channel);
                }
            }
            IrcEvent::Quit {
                nick,
                reason,
                channels,
            } => {
                let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                for ch in channels {
                    self.info(&ch, &format!("{nick} quit{why}"));
                    self.refresh_members(client, &ch);
                }
                if self.inner.view.has_buffer(&nick) {
                    self.info(&nick, &format!("{nick} quit{why}"));
                }
            }
            IrcEvent::NickChanged { old, new } => {
                if is_me(&new) {
                    self.inner.view.set_nick(&new);
                    let to = format!("{}:{}", self.inner.config.host, self.inner.config.port);
                    self.set_status(Status::Connected {
                        to,
                        nick: new.clone(),
                    });
                    self.info(SERVER_BUFFER, &format!("you are now {new}"));
                }
                for ch in client.channels() {
                    if client
                        .members(&ch)
                        .iter()
                        .any(|m| irc_lower(m) == irc_lower(&new))
                    {
                        self.info(&ch, &format!("{old} is now {new}"));
                        self.refresh_members(client, &ch);
                    }
                }
            }
            IrcEvent::Message { from, target, text } => {
                let buffer = if is_me(&target) { from.clone() } else { target };
                self.show(&buffer, Line::now(LineKind::Message, &from, &text));
            }
            IrcEvent::Action { from, target, text } => {
                let buffer = if is_me(&target) { from.clone() } else { target };
                self.show(&buffer, Line::now(LineKind::Action, &from, &text));
            }
            IrcEvent::Notice { from, target, text } => {
                // Server notices (and notices before registration, to "*"
                // or "AUTH") go to the server buffer.
                let buffer = if braid_irc::is_valid_channel(&target) {
                    target
                } else if !client.is_registered()
                    || from.contains('.')
                    || !self.inner.view.has_buffer(&from)
                {
                    SERVER_BUFFER.to_owned()
                } else {
                    from.clone()
                };
                self.show(&buffer, Line::now(LineKind::Notice, &from, &text));
            }
            IrcEvent::Topic { channel, topic, by } => {
                self.inner.view.set_topic(&channel, topic.as_deref());
                if let Some(by) = by {
                    let t = topic.unwrap_or_default();
                    self.info(&channel, &format!("{by} set the topic: {t}"));
                }
            }
            IrcEvent::Members { channel, members } => {
                self.inner.view.set_members(&channel, &members);
            }
            IrcEvent::ServerError { code, message } => {
                let text = if code == 0 {
                    format!("server error: {message}")
                } else {
                    format!("{message} ({code})")
                };
                self.error(SERVER_BUFFER, &text);
            }
            IrcEvent::Disconnected { reason } => {
                let text = format!("disconnected: {reason}");
                self.info(SERVER_BUFFER, &text);
                let channels: Vec<String> = self.inner.wanted.borrow().values().cloned().collect();
                for ch in channels {
                    if self.inner.view.has_buffer(&ch) {
                        self.info(&ch, &text);
                        self.inner.view.set_members(&ch, &[]);
                    }
                }
            }
            other => tracing::debug!(event = ?other, "IRC event not shown"),
        }
    }

    /// Handles a line typed into `buffer`.
    pub fn input(&self, buffer: &str, line: &str) {
        let in_channel = braid_irc::is_valid_channel(buffer);
        // What works without a connection.
        let input = match parse_input(line) {
            Input::Empty => return,
            Input::Help => return self.help(buffer),
            Input::Bad(msg) => return self.error(buffer, &msg),
            Input::Query(nick) => return self.open_query(&nick, true),
            Input::Close if !in_channel => {
                if buffer == SERVER_BUFFER {
                    self.error(buffer, "the server tab stays; /quit disconnects");
                } else {
                    self.inner.view.close_buffer(buffer);
                }
                return;
            }
            Input::Quit(reason) => {
                return self.disconnect(reason.as_deref().unwrap_or("leaving"));
            }
            other => other,
        };
        let client = match self.client() {
            Some(c) if c.is_registered() => c,
            _ => return self.error(buffer, &format!("not connected ({})", self.status())),
        };
        let me = client.nick();
        match input {
            Input::Say(text) | Input::Me(text) if buffer == SERVER_BUFFER => {
                let _ = text;
                self.error(
                    buffer,
                    "this tab is the server's: /join #channel or /msg nick text",
                );
            }
            Input::Say(text) => {
                client.say(buffer, &text);
                self.show(buffer, Line::now(LineKind::Message, &me, &text));
            }
            Input::Me(text) => {
                client.action(buffer, &text);
                self.show(buffer, Line::now(LineKind::Action, &me, &text));
            }
            Input::Join(channel) => {
                if self.inner.view.has_buffer(&channel) {
                    self.inner
                        .view
                        .open_buffer(&channel, BufferKind::Channel, true);
                }
                client.join(&channel);
            }
            Input::Part { channel, reason } => {
                match channel.or_else(|| in_channel.then(|| buffer.to_owned())) {
                    Some(ch) => client.part(&ch, reason.as_deref()),
                    None => self.error(buffer, "/part needs a channel here"),
                }
            }
            Input::Close => client.part(buffer, None),
            Input::Nick(nick) => client.set_nick(&nick),
            Input::Msg { target, text } => {
                if !braid_irc::is_valid_channel(&target) {
                    self.open_query(&target, true);
                }
                client.say(&target, &text);
                self.show(&target, Line::now(LineKind::Message, &me, &text));
            }
            Input::Topic(topic) if in_channel => client.set_topic(buffer, &topic),
            Input::Names if in_channel => client.names(buffer),
            Input::Topic(_) | Input::Names => self.error(buffer, "that works in a channel tab"),
            Input::Empty | Input::Help | Input::Bad(_) | Input::Query(_) | Input::Quit(_) => {}
        }
    }

    fn help(&self, buffer: &str) {
        for h in HELP {
            self.info(buffer, h);
        }
    }
}
