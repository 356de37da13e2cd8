//! Channels and messages: JOIN (with history replayed), PART, PRIVMSG and
//! NOTICE, TOPIC, NAMES, WHO, LIST.

use std::rc::Rc;

use crate::names::{irc_lower, is_valid_channel};

use super::*;

impl Conn {
    pub(super) fn join(&self, chan: &str) {
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
                .or_insert_with(|| Channel::new(chan))
                .members
                .insert(id);
        }
        let name = self.server.state.borrow().channels[&key].name.clone();
        if let Some(l) = line(&self.srv().prefix_of(id), "JOIN", &[&name]) {
            self.srv().to_channel(&key, &l, None);
        }
        if let Some(link) = &self.server.link {
            link.joined(&self.srv().nick_of(id), &name);
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
    pub(super) fn replay(&self, key: &str, name: &str) {
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

    pub(super) fn part(&self, key: &str, why: &str) {
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
        if let Some(link) = &self.server.link {
            link.parted(&self.srv().nick_of(id), &name, why);
        }
        let mut s = self.server.state.borrow_mut();
        s.clients[id].channels.remove(key);
        let empty = s.channels.get_mut(key).map(|c| {
            c.members.remove(&id);
            c.is_empty()
        });
        if empty == Some(true) {
            s.channels.remove(key);
        }
    }

    /// Leaves every channel, telling the peers with a QUIT (once, however
    /// many ways the client goes).
    pub(super) fn part_all(&self, quit_message: &str) {
        self.leave_all(quit_message, true);
    }

    /// [`part_all`](Self::part_all); the other servers are told too if
    /// `tell_link`.
    pub(super) fn leave_all(&self, quit_message: &str, tell_link: bool) {
        let id = self.id;
        {
            let mut s = self.server.state.borrow_mut();
            let Some(c) = s.clients.get_mut(id).filter(|c| c.uid == self.uid) else {
                return;
            };
            if !c.registered || std::mem::replace(&mut c.quit, true) {
                return;
            }
        }
        if let Some(l) = line(&self.srv().prefix_of(id), "QUIT", &[quit_message]) {
            self.srv().to_peers(id, &l, false);
        }
        let mut s = self.server.state.borrow_mut();
        let chans: Vec<String> = std::mem::take(&mut s.clients[id].channels)
            .into_iter()
            .collect();
        if let (Some(link), true) = (&self.server.link, tell_link) {
            let names: Vec<String> = chans
                .iter()
                .filter_map(|k| Some(s.channels.get(k)?.name.clone()))
                .collect();
            let nick = s.clients[id].nick.clone().unwrap_or_default();
            link.quit(&nick, quit_message, &names);
        }
        for key in chans {
            let empty = s.channels.get_mut(&key).map(|c| {
                c.members.remove(&id);
                c.is_empty()
            });
            if empty == Some(true) {
                s.channels.remove(&key);
            }
        }
    }

    pub(super) fn message(&self, cmd: &str, targets: &str, text: &str, errors: bool) {
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
                        if let Some(link) = &self.server.link {
                            link.said(&self.srv().nick_of(id), cmd, target, text);
                        }
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
                let (to, remote) = {
                    let s = self.server.state.borrow();
                    (s.nicks.get(&key).copied(), s.remote.contains_key(&key))
                };
                match (to, &self.server.link) {
                    (Some(to), _) => self.srv().send(to, &l),
                    (None, Some(link)) if remote => {
                        link.said(&self.srv().nick_of(id), cmd, target, text)
                    }
                    (None, _) if errors => {
                        self.srv()
                            .reply(id, "401", &[target, "No such nick/channel"])
                    }
                    (None, _) => {}
                }
            }
        }
    }

    pub(super) fn topic(&self, chan: &str, topic: Option<String>) {
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
                if let Some(link) = &self.server.link {
                    link.topic(&self.srv().nick_of(id), &name, &t);
                }
            }
        }
    }

    pub(super) fn names(&self, chan: &str) {
        let id = self.id;
        let key = irc_lower(chan);
        let (name, nicks) = {
            let s = self.server.state.borrow();
            match s.channels.get(&key) {
                Some(c) => (c.name.clone(), s.member_nicks(c)),
                None => (chan.to_owned(), Vec::new()),
            }
        };
        // Several 353 lines if the list is long, each well under 512 bytes.
        for chunk in nicks.chunks(20) {
            self.srv().reply(id, "353", &["=", &name, &chunk.join(" ")]);
        }
        self.srv().reply(id, "366", &[&name, "End of /NAMES list"]);
    }

    pub(super) fn who(&self, mask: &str) {
        let id = self.id;
        let key = irc_lower(mask);
        let name = self.server.config.name.clone();
        // Nick, user, host, server (a remote user's node).
        let rows: Vec<(String, String, String, String)> = {
            let s = self.server.state.borrow();
            let (members, remote): (Vec<usize>, Vec<String>) = match s.channels.get(&key) {
                Some(c) => (
                    c.members.iter().copied().collect(),
                    c.remote.iter().cloned().collect(),
                ),
                None => (
                    s.nicks.get(&key).copied().into_iter().collect(),
                    s.remote
                        .get(&key)
                        .map(|_| key.clone())
                        .into_iter()
                        .collect(),
                ),
            };
            let local = members.into_iter().filter_map(|m| {
                let c = s.clients.get(m)?;
                Some((
                    c.nick.clone()?,
                    c.user.clone().unwrap_or_default(),
                    c.host.clone(),
                    name.clone(),
                ))
            });
            let remote = remote.into_iter().filter_map(|k| {
                let r = s.remote.get(&k)?;
                Some((
                    r.nick.clone(),
                    r.user.clone(),
                    r.host.clone(),
                    r.node.clone(),
                ))
            });
            local.chain(remote).collect()
        };
        for (nick, user, host, server) in rows {
            self.srv().reply(
                id,
                "352",
                &[
                    mask,
                    &user,
                    &host,
                    &server,
                    &nick,
                    "H",
                    &format!("0 {nick}"),
                ],
            );
        }
        self.srv().reply(id, "315", &[mask, "End of /WHO list"]);
    }

    pub(super) fn list(&self) {
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
                    c.members.len() + c.remote.len(),
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
