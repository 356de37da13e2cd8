//! An IRC client protocol: typed events in, methods out.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;

use irc_proto::{Command, Message, Prefix, Response};

use super::names::irc_lower;
use super::MAX_LINE;
use braid::framing::{FramingError, LineContext, LineHandler, LineReceiver};
use braid::CloseReason;
use braid::Protocol;
use braid::{Address, Transport};

/// The longest text put in one PRIVMSG/NOTICE: room for the server's
/// `:nick!user@host PRIVMSG target :` prefix within 512 bytes.
pub const MAX_TEXT: usize = 400;

/// Something that happened on the IRC connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IrcEvent {
    /// Registration succeeded.
    Registered {
        /// Our nick (it may differ from the one asked for, after retries).
        nick: String,
    },
    /// The nick we asked for was taken.
    NickInUse {
        /// The nick refused.
        tried: String,
        /// The nick we try next.
        next: String,
    },
    /// Someone (maybe us) joined a channel.
    Joined {
        /// The channel.
        channel: String,
        /// Who joined.
        nick: String,
    },
    /// Someone (maybe us) left a channel.
    Parted {
        /// The channel.
        channel: String,
        /// Who left.
        nick: String,
        /// Their parting words.
        reason: Option<String>,
    },
    /// Someone (maybe us) was kicked from a channel.
    Kicked {
        /// The channel.
        channel: String,
        /// Who was kicked.
        nick: String,
        /// Who kicked them.
        by: String,
        /// Why.
        reason: Option<String>,
    },
    /// Someone quit.
    Quit {
        /// Who quit.
        nick: String,
        /// Their quit message.
        reason: Option<String>,
        /// The channels we shared with them.
        channels: Vec<String>,
    },
    /// Someone (maybe us) changed nick.
    NickChanged {
        /// The old nick.
        old: String,
        /// The new nick.
        new: String,
    },
    /// A message to a channel or to us.
    Message {
        /// The sender's nick.
        from: String,
        /// The channel, or our nick for a private message.
        target: String,
        /// The text.
        text: String,
    },
    /// A CTCP ACTION (`/me`).
    Action {
        /// The sender's nick.
        from: String,
        /// The channel, or our nick.
        target: String,
        /// What they do.
        text: String,
    },
    /// A notice, from a user or the server.
    Notice {
        /// The sender (a nick or a server name).
        from: String,
        /// The channel, or our nick.
        target: String,
        /// The text.
        text: String,
    },
    /// A channel's topic.
    Topic {
        /// The channel.
        channel: String,
        /// The topic; `None` when there is none.
        topic: Option<String>,
        /// Who set it, when it was just set.
        by: Option<String>,
    },
    /// A channel's full member list (after joining, or a NAMES reply).
    Members {
        /// The channel.
        channel: String,
        /// Every member's nick, sorted.
        members: Vec<String>,
    },
    /// An error reply from the server (numerics 400 to 599, or ERROR).
    ServerError {
        /// The numeric (0 for an ERROR message).
        code: u16,
        /// The server's text.
        message: String,
    },
    /// The connection ended.
    Disconnected {
        /// Why.
        reason: String,
    },
}

/// Who we say we are.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The nick to ask for.
    pub nick: String,
    /// The user name.
    pub user: String,
    /// The real name.
    pub realname: String,
    /// A server password (PASS), if the server wants one.
    pub password: Option<String>,
}

impl ClientConfig {
    /// A config with `nick` as nick, user and real name.
    pub fn new(nick: &str) -> Self {
        ClientConfig {
            nick: nick.into(),
            user: nick.into(),
            realname: nick.into(),
            password: None,
        }
    }
}

#[derive(Default)]
struct ChannelState {
    name: String,
    topic: Option<String>,
    members: BTreeSet<String>,
    pending_names: Vec<String>,
}

type Handler = Box<dyn FnMut(&IrcClient, IrcEvent)>;

struct State {
    config: ClientConfig,
    nick: String,
    registered: bool,
    transport: Option<Transport>,
    channels: BTreeMap<String, ChannelState>,
    handler: Option<Handler>,
    queue: Vec<IrcEvent>,
}

/// An IRC client: a handle the application keeps (a GUI calls `say` from
/// a button handler) and the source of [`IrcEvent`]s for its handler. One
/// connection at a time; reconnecting (with a `ReconnectingClientFactory`
/// around [`factory`](Self::factory)) registers again.
///
/// ```no_run
/// use braid_irc::{ClientConfig, IrcClient, IrcEvent};
///
/// let reactor = braid::Reactor::new()?;
/// let client = IrcClient::new(ClientConfig::new("braidbot"), |client, event| match event {
///     IrcEvent::Registered { .. } => client.join("#braid"),
///     IrcEvent::Message { from, target, text } => println!("{target} <{from}> {text}"),
///     _ => {}
/// });
/// reactor.connect_tcp("127.0.0.1:6667".parse().unwrap(), client.factory(), None);
/// reactor.run()?;
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct IrcClient {
    inner: Rc<RefCell<State>>,
}

impl IrcClient {
    /// A client that reports events to `handler`.
    pub fn new(config: ClientConfig, handler: impl FnMut(&IrcClient, IrcEvent) + 'static) -> Self {
        IrcClient {
            inner: Rc::new(RefCell::new(State {
                nick: config.nick.clone(),
                config,
                registered: false,
                transport: None,
                channels: BTreeMap::new(),
                handler: Some(Box::new(handler)),
                queue: Vec::new(),
            })),
        }
    }

    /// The protocol for one connection of this client.
    pub fn protocol(&self) -> impl Protocol {
        LineReceiver::with_delimiter(
            ClientConn {
                client: self.clone(),
            },
            b"\n",
            MAX_LINE,
        )
    }

    /// A client factory building [`protocol`](Self::protocol)s.
    pub fn factory(&self) -> impl braid::ClientFactory {
        let me = self.clone();
        move |_: &Address| me.protocol()
    }

    /// Our current nick.
    pub fn nick(&self) -> String {
        self.inner.borrow().nick.clone()
    }

    /// Whether registration has completed on the current connection.
    pub fn is_registered(&self) -> bool {
        self.inner.borrow().registered
    }

    /// The channels we are in.
    pub fn channels(&self) -> Vec<String> {
        self.inner
            .borrow()
            .channels
            .values()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The members of `channel`, as we know them.
    pub fn members(&self, channel: &str) -> Vec<String> {
        self.inner
            .borrow()
            .channels
            .get(&irc_lower(channel))
            .map(|c| c.members.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The topic of `channel`, if it has one.
    pub fn topic(&self, channel: &str) -> Option<String> {
        self.inner
            .borrow()
            .channels
            .get(&irc_lower(channel))
            .and_then(|c| c.topic.clone())
    }

    fn send(&self, command: &str, args: &[&str]) {
        let t = self.inner.borrow().transport.clone();
        let Some(t) = t else { return };
        if let Some(l) = super::format_message(None, command, args) {
            t.write(l.as_bytes());
        }
    }

    /// Joins `channel`.
    pub fn join(&self, channel: &str) {
        if super::is_valid_channel(channel) {
            self.send("JOIN", &[channel]);
        }
    }

    /// Leaves `channel`.
    pub fn part(&self, channel: &str, reason: Option<&str>) {
        match reason {
            Some(r) => self.send("PART", &[channel, r]),
            None => self.send("PART", &[channel]),
        }
    }

    /// Says `text` to a channel or nick. Text longer than [`MAX_TEXT`]
    /// bytes, or with line breaks, goes as several messages, split at
    /// whitespace or character boundaries: never sent broken.
    pub fn say(&self, target: &str, text: &str) {
        for piece in split_text(text, MAX_TEXT) {
            self.send("PRIVMSG", &[target, &piece]);
        }
    }

    /// Sends a notice.
    pub fn notice(&self, target: &str, text: &str) {
        for piece in split_text(text, MAX_TEXT) {
            self.send("NOTICE", &[target, &piece]);
        }
    }

    /// A CTCP ACTION (`/me waves`).
    pub fn action(&self, target: &str, text: &str) {
        for piece in split_text(text, MAX_TEXT - 9) {
            self.send("PRIVMSG", &[target, &format!("\x01ACTION {piece}\x01")]);
        }
    }

    /// Asks for a new nick.
    pub fn set_nick(&self, nick: &str) {
        if super::is_valid_nick(nick) {
            self.send("NICK", &[nick]);
        }
    }

    /// Sets `channel`'s topic.
    pub fn set_topic(&self, channel: &str, topic: &str) {
        self.send("TOPIC", &[channel, topic]);
    }

    /// Asks for `channel`'s member list (answered as [`IrcEvent::Members`]).
    pub fn names(&self, channel: &str) {
        self.send("NAMES", &[channel]);
    }

    /// Quits, then closes the connection.
    pub fn quit(&self, reason: &str) {
        self.send("QUIT", &[reason]);
        let t = self.inner.borrow().transport.clone();
        if let Some(t) = t {
            t.lose_connection();
        }
    }

    fn emit(&self, event: IrcEvent) {
        self.inner.borrow_mut().queue.push(event);
    }

    /// Delivers queued events to the handler, with no borrow held (the
    /// handler may call the client). Nested events queue up behind.
    fn deliver(&self) {
        let Some(mut handler) = self.inner.borrow_mut().handler.take() else {
            return;
        };
        loop {
            let batch = std::mem::take(&mut self.inner.borrow_mut().queue);
            if batch.is_empty() {
                break;
            }
            for e in batch {
                handler(self, e);
            }
        }
        self.inner.borrow_mut().handler = Some(handler);
    }

    fn handle(&self, msg: Message) {
        let from = match &msg.prefix {
            Some(Prefix::Nickname(n, _, _)) => n.clone(),
            Some(Prefix::ServerName(s)) => s.clone(),
            None => String::new(),
        };
        let me = self.nick();
        let is_me = |n: &str| irc_lower(n) == irc_lower(&me);
        match msg.command {
            Command::PING(token, _) => self.send("PONG", &[&token]),
            Command::Response(Response::RPL_WELCOME, args) => {
                let nick = args.first().cloned().unwrap_or(me);
                {
                    let mut s = self.inner.borrow_mut();
                    s.nick = nick.clone();
                    s.registered = true;
                }
                self.emit(IrcEvent::Registered { nick });
            }
            Command::Response(Response::ERR_NICKNAMEINUSE, args) if !self.is_registered() => {
                let tried = args.get(1).cloned().unwrap_or(me);
                let next = next_nick(&tried);
                self.inner.borrow_mut().nick = next.clone();
                self.send("NICK", &[&next]);
                self.emit(IrcEvent::NickInUse { tried, next });
            }
            Command::JOIN(chan, _, _) => {
                let key = irc_lower(&chan);
                {
                    let mut s = self.inner.borrow_mut();
                    let c = s.channels.entry(key).or_insert_with(|| ChannelState {
                        name: chan.clone(),
                        ..Default::default()
                    });
                    c.members.insert(from.clone());
                }
                self.emit(IrcEvent::Joined {
                    channel: chan,
                    nick: from,
                });
            }
            Command::PART(chan, reason) => {
                let key = irc_lower(&chan);
                {
                    let mut s = self.inner.borrow_mut();
                    if is_me(&from) {
                        s.channels.remove(&key);
                    } else if let Some(c) = s.channels.get_mut(&key) {
                        c.members.remove(&from);
                    }
                }
                self.emit(IrcEvent::Parted {
                    channel: chan,
                    nick: from,
                    reason,
                });
            }
            Command::KICK(chan, nick, reason) => {
                let key = irc_lower(&chan);
                {
                    let mut s = self.inner.borrow_mut();
                    if is_me(&nick) {
                        s.channels.remove(&key);
                    } else if let Some(c) = s.channels.get_mut(&key) {
                        c.members.remove(&nick);
                    }
                }
                self.emit(IrcEvent::Kicked {
                    channel: chan,
                    nick,
                    by: from,
                    reason,
                });
            }
            Command::QUIT(reason) => {
                let channels: Vec<String> = {
                    let mut s = self.inner.borrow_mut();
                    s.channels
                        .values_mut()
                        .filter_map(|c| c.members.remove(&from).then(|| c.name.clone()))
                        .collect()
                };
                self.emit(IrcEvent::Quit {
                    nick: from,
                    reason,
                    channels,
                });
            }
            Command::NICK(new) => {
                {
                    let mut s = self.inner.borrow_mut();
                    if is_me(&from) {
                        s.nick = new.clone();
                    }
                    for c in s.channels.values_mut() {
                        if c.members.remove(&from) {
                            c.members.insert(new.clone());
                        }
                    }
                }
                self.emit(IrcEvent::NickChanged { old: from, new });
            }
            Command::PRIVMSG(target, text) => {
                match text
                    .strip_prefix("\x01ACTION ")
                    .map(|t| t.trim_end_matches('\x01'))
                {
                    Some(action) => self.emit(IrcEvent::Action {
                        from,
                        target,
                        text: action.to_owned(),
                    }),
                    None => self.emit(IrcEvent::Message { from, target, text }),
                }
            }
            Command::NOTICE(target, text) => self.emit(IrcEvent::Notice { from, target, text }),
            Command::TOPIC(chan, topic) => {
                let topic = topic.filter(|t| !t.is_empty());
                if let Some(c) = self.inner.borrow_mut().channels.get_mut(&irc_lower(&chan)) {
                    c.topic = topic.clone();
                }
                self.emit(IrcEvent::Topic {
                    channel: chan,
                    topic,
                    by: Some(from),
                });
            }
            Command::Response(Response::RPL_TOPIC, args) if args.len() >= 3 => {
                let (chan, topic) = (args[1].clone(), args[2].clone());
                if let Some(c) = self.inner.borrow_mut().channels.get_mut(&irc_lower(&chan)) {
                    c.topic = Some(topic.clone());
                }
                self.emit(IrcEvent::Topic {
                    channel: chan,
                    topic: Some(topic),
                    by: None,
                });
            }
            Command::Response(Response::RPL_NOTOPIC, args) if args.len() >= 2 => {
                self.emit(IrcEvent::Topic {
                    channel: args[1].clone(),
                    topic: None,
                    by: None,
                });
            }
            Command::Response(Response::RPL_NAMREPLY, args) if args.len() >= 4 => {
                let mut s = self.inner.borrow_mut();
                let key = irc_lower(&args[2]);
                let c = s.channels.entry(key).or_insert_with(|| ChannelState {
                    name: args[2].clone(),
                    ..Default::default()
                });
                c.pending_names.extend(
                    args[3]
                        .split_whitespace()
                        .map(|n| n.trim_start_matches(['@', '+', '%', '~', '&']).to_owned()),
                );
            }
            Command::Response(Response::RPL_ENDOFNAMES, args) if args.len() >= 2 => {
                let members = {
                    let mut s = self.inner.borrow_mut();
                    match s.channels.get_mut(&irc_lower(&args[1])) {
                        Some(c) => {
                            c.members = std::mem::take(&mut c.pending_names).into_iter().collect();
                            Some((c.name.clone(), c.members.iter().cloned().collect()))
                        }
                        None => None,
                    }
                };
                if let Some((channel, members)) = members {
                    self.emit(IrcEvent::Members { channel, members });
                }
            }
            Command::Response(resp, args) => {
                let code = resp as u16;
                if (400..600).contains(&code) {
                    let message = args.iter().skip(1).cloned().collect::<Vec<_>>().join(" ");
                    self.emit(IrcEvent::ServerError { code, message });
                }
            }
            Command::ERROR(text) => self.emit(IrcEvent::ServerError {
                code: 0,
                message: text,
            }),
            _ => {}
        }
    }
}

impl fmt::Debug for IrcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.borrow();
        f.debug_struct("IrcClient")
            .field("nick", &s.nick)
            .field("registered", &s.registered)
            .finish()
    }
}

/// The next nick to try after `tried` was taken: append `_`, or replace
/// the end with a digit when that would be too long.
fn next_nick(tried: &str) -> String {
    if tried.len() < 30 {
        format!("{tried}_")
    } else {
        let base: String = tried.chars().take(29).collect();
        let digit = tried
            .chars()
            .last()
            .and_then(|c| c.to_digit(10))
            .map_or(1, |d| (d + 1) % 10);
        format!("{base}{digit}")
    }
}

/// Splits `text` into pieces of at most `max` bytes: at line breaks, then
/// at the last space that fits, else at a character boundary.
pub(crate) fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.split(['\r', '\n']).filter(|l| !l.is_empty()) {
        let mut rest = line;
        while rest.len() > max {
            let mut cut = max;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if let Some(space) = rest[..cut].rfind(' ').filter(|&i| i > 0) {
                cut = space;
            }
            out.push(rest[..cut].to_owned());
            rest = rest[cut..].trim_start_matches(' ');
        }
        if !rest.is_empty() {
            out.push(rest.to_owned());
        }
    }
    out
}

struct ClientConn {
    client: IrcClient,
}

impl LineHandler for ClientConn {
    fn connection_made(&mut self, ctx: &mut LineContext<'_>) {
        let config = {
            let mut s = self.client.inner.borrow_mut();
            s.transport = Some(ctx.transport().clone());
            s.registered = false;
            s.channels.clear();
            s.nick = s.config.nick.clone();
            s.config.clone()
        };
        if let Some(p) = &config.password {
            self.client.send("PASS", &[p]);
        }
        self.client.send("NICK", &[&config.nick]);
        self.client
            .send("USER", &[&config.user, "0", "*", &config.realname]);
    }

    fn line_received(&mut self, _ctx: &mut LineContext<'_>, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            return;
        }
        match text.parse::<Message>() {
            Ok(m) => self.client.handle(m),
            Err(e) => tracing::debug!(error = %e, "unparsable line from the IRC server"),
        }
        self.client.deliver();
    }

    fn line_length_exceeded(&mut self, _ctx: &mut LineContext<'_>, error: FramingError) {
        tracing::warn!(%error, "over-long line from the IRC server dropped");
    }

    fn connection_lost(&mut self, reason: &CloseReason) {
        {
            let mut s = self.client.inner.borrow_mut();
            s.transport = None;
            s.registered = false;
        }
        self.client.emit(IrcEvent::Disconnected {
            reason: reason.to_string(),
        });
        self.client.deliver();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_never_breaks_characters_or_exceeds_the_limit() {
        let text = "héllo wörld ".repeat(100) + "\nsecond line\r\nthird";
        let pieces = split_text(&text, 50);
        assert!(pieces.iter().all(|p| p.len() <= 50 && !p.is_empty()));
        assert!(pieces
            .iter()
            .all(|p| !p.contains('\n') && !p.contains('\r')));
        assert_eq!(
            pieces[pieces.len() - 2..],
            ["second line".to_string(), "third".to_string()]
        );
        let joined: String = pieces[..pieces.len() - 2].join(" ");
        assert_eq!(joined.split_whitespace().count(), 200);
        let one_word = "é".repeat(100);
        assert!(split_text(&one_word, 7)
            .iter()
            .all(|p| p.len() <= 7 && p.chars().all(|c| c == 'é')));
    }

    #[test]
    fn nick_retries() {
        assert_eq!(next_nick("ann"), "ann_");
        let long = "n".repeat(30);
        assert_eq!(next_nick(&long).len(), 30);
        assert_ne!(next_nick(&long), long);
    }
}
