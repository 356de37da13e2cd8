//! Users of other servers: what a server linked to others (through a
//! [`Cluster`](super::Cluster) today, a server-to-server link later) knows
//! of them, and how their changes reach this server's clients.
//!
//! ```text
//!   local client ─▶ Conn ─▶ Link::joined / said / quit ... ─▶ the other servers
//!   the other servers ─▶ Server::apply(Remote) ─▶ remote users, channel members,
//!                                                the lines this server's clients see
//!   (re)connected ─▶ Server::reconcile(Snapshot): QUIT/PART/JOIN for what changed
//! ```
//!
//! A remote user is known by nick (case-folded); channels hold local
//! members by connection and remote ones by nick.

// Only the cluster (feature `postgres`) links servers today.
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{line, Channel, Server};
use crate::names::irc_lower;

/// The answer to a nick claim: `Ok(true)` it is ours, `Ok(false)` another
/// server's user has it, `Err` the link could not ask.
pub(crate) type Claimed = Box<dyn FnOnce(Result<bool, String>)>;

/// Where this server's changes go to the others. Every call is about a
/// local, registered user, and is made in the order things happened.
pub(crate) trait Link {
    /// Claims `nick` for a user registering here, and introduces them.
    fn claim(&self, nick: &str, user: &str, host: &str, done: Claimed);
    /// Claims `new` for the user now called `old`, and renames them.
    fn rename(&self, old: &str, new: &str, done: Claimed);
    /// `nick` joined `channel` (its display name).
    fn joined(&self, nick: &str, channel: &str);
    /// `nick` left `channel`.
    fn parted(&self, nick: &str, channel: &str, why: &str);
    /// `nick` quit (or was dropped); it was in `channels`.
    fn quit(&self, nick: &str, why: &str, channels: &[String]);
    /// `nick` sent a PRIVMSG or NOTICE to `target` (a channel or nick).
    fn said(&self, nick: &str, command: &str, target: &str, text: &str);
    /// `nick` set `channel`'s topic (empty: cleared).
    fn topic(&self, nick: &str, channel: &str, topic: &str);
}

/// A user of another server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteUser {
    pub(crate) node: String,
    pub(crate) nick: String,
    pub(crate) user: String,
    pub(crate) host: String,
    /// Channels (case-folded) the user is in.
    pub(crate) channels: BTreeSet<String>,
}

impl RemoteUser {
    fn prefix(&self) -> String {
        format!("{}!{}@{}", self.nick, self.user, self.host)
    }
}

/// A change on another server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Remote {
    /// A user registered on `node`.
    User {
        node: String,
        nick: String,
        user: String,
        host: String,
    },
    Join {
        nick: String,
        channel: String,
    },
    Part {
        nick: String,
        channel: String,
        why: String,
    },
    Quit {
        nick: String,
        why: String,
    },
    Nick {
        old: String,
        new: String,
    },
    Say {
        nick: String,
        command: String,
        target: String,
        text: String,
    },
    Topic {
        nick: String,
        channel: String,
        topic: String,
    },
    /// `node` is gone: its users quit with `why`.
    Split {
        node: String,
        why: String,
    },
}

/// Everything the other servers have now, read in one go.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    /// Users of other servers: node, nick, user, host.
    pub(crate) users: Vec<(String, String, String, String)>,
    /// Their memberships: nick (any case), channel display name.
    pub(crate) members: Vec<(String, String)>,
    /// Channel topics: channel (any case), topic.
    pub(crate) topics: Vec<(String, String)>,
}

/// A local user, as a link re-announces it.
#[derive(Debug, Clone)]
pub(crate) struct LocalUser {
    pub(crate) nick: String,
    pub(crate) user: String,
    pub(crate) host: String,
    /// Display names of its channels.
    pub(crate) channels: Vec<String>,
}

impl Server {
    /// Applies a change from another server: updates what this server
    /// knows and tells its clients what they would have seen.
    pub(crate) fn apply(&self, change: Remote) {
        match change {
            Remote::User {
                node,
                nick,
                user,
                host,
            } => {
                let key = irc_lower(&nick);
                let mut s = self.state.borrow_mut();
                if s.nicks.contains_key(&key) {
                    // Ours: cannot happen while the claims are honoured.
                    tracing::warn!(nick, node, "a remote user has a local user's nick");
                    return;
                }
                s.remote
                    .entry(key)
                    .and_modify(|r| r.node.clone_from(&node))
                    .or_insert(RemoteUser {
                        node,
                        nick,
                        user,
                        host,
                        channels: BTreeSet::new(),
                    });
            }
            Remote::Join { nick, channel } => {
                let (key, ckey) = (irc_lower(&nick), irc_lower(&channel));
                let (prefix, name) = {
                    let mut s = self.state.borrow_mut();
                    let Some(r) = s.remote.get_mut(&key) else {
                        return;
                    };
                    if !r.channels.insert(ckey.clone()) {
                        return;
                    }
                    let prefix = r.prefix();
                    let c = s.channels.entry(ckey.clone()).or_insert_with(|| Channel {
                        name: channel,
                        topic: None,
                        members: BTreeSet::new(),
                        remote: BTreeSet::new(),
                    });
                    c.remote.insert(key);
                    (prefix, c.name.clone())
                };
                if let Some(l) = line(&prefix, "JOIN", &[&name]) {
                    self.to_channel(&ckey, &l, None);
                }
            }
            Remote::Part { nick, channel, why } => {
                let (key, ckey) = (irc_lower(&nick), irc_lower(&channel));
                let Some(prefix) = self.remote_in(&key, &ckey) else {
                    return;
                };
                let name = self.state.borrow().channels[&ckey].name.clone();
                let args: Vec<&str> = if why.is_empty() {
                    vec![&name]
                } else {
                    vec![&name, &why]
                };
                if let Some(l) = line(&prefix, "PART", &args) {
                    self.to_channel(&ckey, &l, None);
                }
                self.remove_remote_member(&key, &ckey);
            }
            Remote::Quit { nick, why } => self.remote_quit(&irc_lower(&nick), &why),
            Remote::Nick { old, new } => {
                let (okey, nkey) = (irc_lower(&old), irc_lower(&new));
                let (prefix, targets) = {
                    let mut s = self.state.borrow_mut();
                    if s.nicks.contains_key(&nkey) {
                        tracing::warn!(old, new, "a remote user took a local user's nick");
                        return;
                    }
                    let Some(mut r) = s.remote.remove(&okey) else {
                        return;
                    };
                    let prefix = r.prefix();
                    r.nick.clone_from(&new);
                    let mut targets = BTreeSet::new();
                    for ch in &r.channels {
                        if let Some(c) = s.channels.get_mut(ch) {
                            c.remote.remove(&okey);
                            c.remote.insert(nkey.clone());
                            targets.extend(c.members.iter().copied());
                        }
                    }
                    s.remote.insert(nkey, r);
                    (prefix, targets)
                };
                if let Some(l) = line(&prefix, "NICK", &[&new]) {
                    for t in targets {
                        self.send(t, &l);
                    }
                }
            }
            Remote::Say {
                nick,
                command,
                target,
                text,
            } => {
                let key = irc_lower(&nick);
                let Some(prefix) = self.state.borrow().remote.get(&key).map(RemoteUser::prefix)
                else {
                    return;
                };
                let tkey = irc_lower(&target);
                let Some(l) = line(&prefix, &command, &[&target, &text]) else {
                    return;
                };
                if target.starts_with('#') || target.starts_with('&') {
                    self.to_channel(&tkey, &l, None);
                } else {
                    let to = self.state.borrow().nicks.get(&tkey).copied();
                    if let Some(to) = to {
                        self.send(to, &l);
                    }
                }
            }
            Remote::Topic {
                nick,
                channel,
                topic,
            } => {
                let (key, ckey) = (irc_lower(&nick), irc_lower(&channel));
                let Some(prefix) = self.remote_in(&key, &ckey) else {
                    return;
                };
                let name = {
                    let mut s = self.state.borrow_mut();
                    let c = s.channels.get_mut(&ckey).expect("checked by remote_in");
                    c.topic = (!topic.is_empty()).then(|| topic.clone());
                    c.name.clone()
                };
                if let Some(l) = line(&prefix, "TOPIC", &[&name, &topic]) {
                    self.to_channel(&ckey, &l, None);
                }
            }
            Remote::Split { node, why } => {
                let gone: Vec<String> = self
                    .state
                    .borrow()
                    .remote
                    .iter()
                    .filter(|(_, r)| r.node == node)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in gone {
                    self.remote_quit(&key, &why);
                }
            }
        }
    }

    /// The prefix of remote user `key` if it is in channel `ckey`.
    fn remote_in(&self, key: &str, ckey: &str) -> Option<String> {
        let s = self.state.borrow();
        let r = s.remote.get(key)?;
        (r.channels.contains(ckey) && s.channels.contains_key(ckey)).then(|| r.prefix())
    }

    fn remove_remote_member(&self, key: &str, ckey: &str) {
        let mut s = self.state.borrow_mut();
        if let Some(r) = s.remote.get_mut(key) {
            r.channels.remove(ckey);
        }
        let empty = s.channels.get_mut(ckey).map(|c| {
            c.remote.remove(key);
            c.members.is_empty() && c.remote.is_empty()
        });
        if empty == Some(true) {
            s.channels.remove(ckey);
        }
    }

    /// Remote user `key` is gone: its channels' local members see it quit.
    fn remote_quit(&self, key: &str, why: &str) {
        let (prefix, targets) = {
            let mut s = self.state.borrow_mut();
            let Some(r) = s.remote.remove(key) else {
                return;
            };
            let mut targets = BTreeSet::new();
            for ch in &r.channels {
                let empty = s.channels.get_mut(ch).map(|c| {
                    c.remote.remove(key);
                    targets.extend(c.members.iter().copied());
                    c.members.is_empty() && c.remote.is_empty()
                });
                if empty == Some(true) {
                    s.channels.remove(ch);
                }
            }
            (r.prefix(), targets)
        };
        if let Some(l) = line(&prefix, "QUIT", &[why]) {
            for t in targets {
                self.send(t, &l);
            }
        }
    }

    /// Makes what this server knows of the others match `snapshot`
    /// (read after the link came up, or came back): users no longer there
    /// quit, new ones join, memberships that changed part or join, each
    /// seen by the local members as it would have been live.
    pub(crate) fn reconcile(&self, snapshot: Snapshot, split_reason: &str) {
        let wanted: HashMap<String, (String, String, String, String)> = snapshot
            .users
            .into_iter()
            .map(|u| (irc_lower(&u.1), u))
            .collect();
        let mut wanted_in: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (nick, channel) in snapshot.members {
            let key = irc_lower(&nick);
            if wanted.contains_key(&key) {
                wanted_in
                    .entry(key)
                    .or_default()
                    .insert(irc_lower(&channel), channel);
            }
        }
        // Gone, or now someone else (another node) under that nick.
        let stale: Vec<String> = self
            .state
            .borrow()
            .remote
            .iter()
            .filter(|(k, r)| {
                wanted
                    .get(*k)
                    .is_none_or(|w| w.0 != r.node || w.1 != r.nick)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.remote_quit(&key, split_reason);
        }
        for (key, (node, nick, user, host)) in wanted {
            self.apply(Remote::User {
                node,
                nick: nick.clone(),
                user,
                host,
            });
            let now: BTreeSet<String> = self
                .state
                .borrow()
                .remote
                .get(&key)
                .map(|r| r.channels.clone())
                .unwrap_or_default();
            let want = wanted_in.remove(&key).unwrap_or_default();
            for ckey in now.iter().filter(|c| !want.contains_key(*c)) {
                let name = self
                    .state
                    .borrow()
                    .channels
                    .get(ckey)
                    .map(|c| c.name.clone());
                if let Some(channel) = name {
                    self.apply(Remote::Part {
                        nick: nick.clone(),
                        channel,
                        why: String::new(),
                    });
                }
            }
            for (ckey, channel) in want {
                if !now.contains(&ckey) {
                    self.apply(Remote::Join {
                        nick: nick.clone(),
                        channel,
                    });
                }
            }
        }
        // Topics last: their channels exist now.
        let mut s = self.state.borrow_mut();
        for (ckey, topic) in snapshot.topics {
            if let Some(c) = s.channels.get_mut(&irc_lower(&ckey)) {
                c.topic = Some(topic);
            }
        }
    }

    /// The registered local users, for a link that must announce them
    /// again (it lost them).
    pub(crate) fn local_users(&self) -> Vec<LocalUser> {
        let s = self.state.borrow();
        s.clients
            .iter()
            .filter(|(_, c)| c.registered && !c.quit)
            .filter_map(|(_, c)| {
                Some(LocalUser {
                    nick: c.nick.clone()?,
                    user: c.user.clone().unwrap_or_default(),
                    host: c.host.clone(),
                    channels: c
                        .channels
                        .iter()
                        .filter_map(|k| Some(s.channels.get(k)?.name.clone()))
                        .collect(),
                })
            })
            .collect()
    }

    /// Drops the local user `nick`: another server's user holds it now
    /// (the claim was lost while this server was cut off).
    pub(crate) fn collide(self: &std::rc::Rc<Self>, nick: &str) {
        let id = self.state.borrow().nicks.get(&irc_lower(nick)).copied();
        let Some(id) = id else { return };
        let Some((uid, t)) = self
            .state
            .borrow()
            .clients
            .get(id)
            .map(|c| (c.uid, c.t.clone()))
        else {
            return;
        };
        tracing::info!(nick, "nick collision: dropping the local user");
        let conn = super::Conn::for_client(self.clone(), id, uid);
        // Not told to the others: the nick is another server's user now.
        conn.leave_all("Nick collision", false);
        conn.close_with_error(&t, "Nick collision");
    }
}

#[cfg(test)]
mod tests {
    //! Two servers linked in memory (a loopback [`Link`]: a nick table and
    //! a queue of changes delivered when the test says), over in-memory
    //! connections on fake time: what a user of one sees of the other's.

    use std::cell::RefCell;
    use std::collections::{HashMap, VecDeque};
    use std::rc::{Rc, Weak};

    use braid::testing::{connected_pair, MemoryReactor, Pair};
    use braid::{Address, Factory, Protocol, Transport};

    use super::super::{IrcServer, ServerConfig};
    use super::*;

    #[derive(Default)]
    struct Net {
        nicks: HashMap<String, usize>,
        servers: Vec<Weak<Server>>,
        queue: VecDeque<(usize, Remote)>,
    }

    struct Loop {
        net: Rc<RefCell<Net>>,
        me: usize,
    }

    impl Loop {
        fn node(&self) -> String {
            format!("node{}", self.me)
        }

        fn send(&self, change: Remote) {
            self.net.borrow_mut().queue.push_back((self.me, change));
        }
    }

    impl Link for Loop {
        fn claim(&self, nick: &str, user: &str, host: &str, done: Claimed) {
            let ok = *self
                .net
                .borrow_mut()
                .nicks
                .entry(irc_lower(nick))
                .or_insert(self.me)
                == self.me;
            if ok {
                self.send(Remote::User {
                    node: self.node(),
                    nick: nick.into(),
                    user: user.into(),
                    host: host.into(),
                });
            }
            done(Ok(ok));
        }
        fn rename(&self, old: &str, new: &str, done: Claimed) {
            let ok = {
                let mut n = self.net.borrow_mut();
                let free = n.nicks.get(&irc_lower(new)).is_none_or(|o| *o == self.me);
                if free {
                    n.nicks.remove(&irc_lower(old));
                    n.nicks.insert(irc_lower(new), self.me);
                }
                free
            };
            if ok {
                self.send(Remote::Nick {
                    old: old.into(),
                    new: new.into(),
                });
            }
            done(Ok(ok));
        }
        fn joined(&self, nick: &str, channel: &str) {
            self.send(Remote::Join {
                nick: nick.into(),
                channel: channel.into(),
            });
        }
        fn parted(&self, nick: &str, channel: &str, why: &str) {
            self.send(Remote::Part {
                nick: nick.into(),
                channel: channel.into(),
                why: why.into(),
            });
        }
        fn quit(&self, nick: &str, why: &str, _channels: &[String]) {
            self.net.borrow_mut().nicks.remove(&irc_lower(nick));
            self.send(Remote::Quit {
                nick: nick.into(),
                why: why.into(),
            });
        }
        fn said(&self, nick: &str, command: &str, target: &str, text: &str) {
            self.send(Remote::Say {
                nick: nick.into(),
                command: command.into(),
                target: target.into(),
                text: text.into(),
            });
        }
        fn topic(&self, nick: &str, channel: &str, topic: &str) {
            self.send(Remote::Topic {
                nick: nick.into(),
                channel: channel.into(),
                topic: topic.into(),
            });
        }
    }

    impl Net {
        fn server(net: &Rc<RefCell<Net>>, name: &str) -> IrcServer {
            let me = net.borrow().servers.len();
            let config = ServerConfig {
                name: name.into(),
                ..ServerConfig::default()
            };
            let link: Rc<dyn Link> = Rc::new(Loop {
                net: net.clone(),
                me,
            });
            let server = IrcServer {
                inner: Rc::new(Server {
                    config,
                    link: Some(link),
                    state: RefCell::default(),
                    portal: std::cell::OnceCell::new(),
                }),
            };
            net.borrow_mut().servers.push(Rc::downgrade(&server.inner));
            server
        }

        /// Delivers every queued change to the other servers.
        fn deliver(net: &Rc<RefCell<Net>>) {
            loop {
                let next = net.borrow_mut().queue.pop_front();
                let Some((from, change)) = next else { return };
                let targets: Vec<Rc<Server>> = net
                    .borrow()
                    .servers
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != from)
                    .filter_map(|(_, s)| s.upgrade())
                    .collect();
                for s in targets {
                    s.apply(change.clone());
                }
            }
        }
    }

    #[derive(Default)]
    struct Lines(Vec<u8>);
    struct Recorder(Rc<RefCell<Lines>>);
    impl Protocol for Recorder {
        fn data_received(&mut self, _: &Transport, data: &[u8]) {
            self.0.borrow_mut().0.extend_from_slice(data);
        }
    }

    struct Client {
        pair: Pair,
        log: Rc<RefCell<Lines>>,
    }

    impl Client {
        fn new(mr: &MemoryReactor, server: &IrcServer, nick: &str) -> Client {
            let proto = server
                .factory()
                .build_protocol(&Address::Memory("c".into()))
                .unwrap();
            let log = Rc::default();
            let pair = connected_pair(mr.reactor(), proto, Recorder(Rc::clone(&log)));
            let c = Client { pair, log };
            c.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}"));
            c
        }

        fn send(&self, text: &str) {
            self.pair.client().write(format!("{text}\r\n").as_bytes());
            self.pair.pump();
        }

        fn take(&self) -> String {
            self.pair.pump();
            String::from_utf8(std::mem::take(&mut self.log.borrow_mut().0)).unwrap()
        }
    }

    #[test]
    fn two_linked_servers_are_one_network() {
        let mr = MemoryReactor::new();
        let net = Rc::new(RefCell::new(Net::default()));
        let (a, b) = (Net::server(&net, "a.irc"), Net::server(&net, "b.irc"));
        let ann = Client::new(&mr, &a, "ann");
        let ben = Client::new(&mr, &b, "ben");
        Net::deliver(&net);
        assert!(ann.take().contains(" 001 ann "));
        assert!(ben.take().contains(" 001 ben "));

        // One nick in the network: b refuses ann, at registration and on NICK.
        let dup = Client::new(&mr, &b, "ann");
        assert!(dup.take().contains(" 433 * ann "), "refused as in use");
        ben.send("NICK ann");
        assert!(ben.take().contains(" 433 ben ann "));

        ann.send("JOIN #c");
        Net::deliver(&net);
        ben.send("JOIN #c");
        Net::deliver(&net);
        let seen = ann.take();
        assert!(seen.contains(":ben!ben@memory:c JOIN #c"), "{seen}");
        let joined = ben.take();
        assert!(joined.contains(" 353 ben = #c :ben ann"), "{joined}");
        assert_eq!(a.members("#c"), ["ann", "ben"]);

        // Messages to the channel and to a nick on the other server.
        ann.send("PRIVMSG #c :hello over there");
        ann.send("PRIVMSG ben :and just you");
        Net::deliver(&net);
        let got = ben.take();
        assert!(
            got.contains(":ann!ann@memory:c PRIVMSG #c :hello over there"),
            "{got}"
        );
        assert!(
            got.contains(":ann!ann@memory:c PRIVMSG ben :and just you"),
            "{got}"
        );
        assert!(!ann.take().contains("hello over there"), "no echo");

        // WHO names the remote user's node; LIST counts both.
        ann.send("WHO #c");
        ann.send("LIST");
        let who = ann.take();
        assert!(
            who.contains(" 352 ann #c ben memory:c node1 ben H :0 ben"),
            "{who}"
        );
        assert!(who.contains(" 322 ann #c 2"), "{who}");

        // A rename and a topic cross; a part and a quit too.
        ben.send("NICK benny");
        Net::deliver(&net);
        assert!(ann.take().contains(":ben!ben@memory:c NICK benny"));
        ben.send("TOPIC #c :linked");
        Net::deliver(&net);
        assert!(ann.take().contains(":benny!ben@memory:c TOPIC #c linked"));
        ben.send("PART #c :later");
        Net::deliver(&net);
        assert!(ann.take().contains(":benny!ben@memory:c PART #c later"));
        ben.send("JOIN #c");
        ben.send("QUIT :gone now");
        Net::deliver(&net);
        let got = ann.take();
        assert!(
            got.contains(":benny!ben@memory:c QUIT :Quit: gone now"),
            "{got}"
        );
        assert_eq!(a.members("#c"), ["ann"]);
        assert!(
            !net.borrow().nicks.contains_key("benny"),
            "the nick is free again"
        );
    }

    #[test]
    fn reconciling_and_a_split_show_as_joins_parts_and_quits() {
        let mr = MemoryReactor::new();
        let net = Rc::new(RefCell::new(Net::default()));
        let a = Net::server(&net, "a.irc");
        let ann = Client::new(&mr, &a, "ann");
        ann.send("JOIN #c");
        ann.take();
        let user = |nick: &str, node: &str| (node.into(), nick.into(), nick.into(), "h".into());
        // First read: two users of node1 in #c, one of node2 nowhere.
        a.inner.reconcile(
            Snapshot {
                users: vec![user("x", "node1"), user("y", "node1"), user("z", "node2")],
                members: vec![("x".into(), "#c".into()), ("Y".into(), "#C".into())],
                topics: vec![("#c".into(), "from the tables".into())],
            },
            "split",
        );
        let got = ann.take();
        assert!(
            got.contains(":x!x@h JOIN #c") && got.contains(":y!y@h JOIN #c"),
            "{got}"
        );
        assert_eq!(a.members("#c"), ["ann", "x", "y"]);
        ann.send("TOPIC #c");
        assert!(ann.take().contains(" 332 ann #c :from the tables"));
        // Read again: x left #c, y is gone, w is new in #c.
        a.inner.reconcile(
            Snapshot {
                users: vec![user("x", "node1"), user("z", "node2"), user("w", "node2")],
                members: vec![("w".into(), "#c".into())],
                topics: vec![],
            },
            "split",
        );
        let got = ann.take();
        assert!(got.contains(":y!y@h QUIT split"), "{got}");
        assert!(got.contains(":x!x@h PART #c"), "{got}");
        assert!(got.contains(":w!w@h JOIN #c"), "{got}");
        // The same read again changes nothing.
        a.inner.reconcile(
            Snapshot {
                users: vec![user("x", "node1"), user("z", "node2"), user("w", "node2")],
                members: vec![("w".into(), "#c".into())],
                topics: vec![],
            },
            "split",
        );
        assert_eq!(ann.take(), "");
        // node2 goes: its users quit.
        a.inner.apply(Remote::Split {
            node: "node2".into(),
            why: "a.irc node2".into(),
        });
        assert!(ann.take().contains(":w!w@h QUIT :a.irc node2"));
        assert_eq!(a.members("#c"), ["ann"]);
        // A nick taken meanwhile by another server's user: the local one goes.
        a.inner.collide("ann");
        let got = ann.take();
        assert!(got.contains("ERROR :Closing link: Nick collision"), "{got}");
        assert!(
            net.borrow()
                .queue
                .iter()
                .all(|(_, c)| !matches!(c, Remote::Quit { .. })),
            "not told to the others"
        );
    }
}
