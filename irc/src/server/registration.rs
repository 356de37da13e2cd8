//! Registration: NICK, USER, PASS through the portal, CAP, the welcome
//! burst and the MOTD.

use std::rc::Rc;

use crate::names::{irc_lower, is_valid_nick};
use braid::Transport;

use super::*;

impl Conn {
    pub(super) fn nick(&self, t: &Transport, new: &str) {
        let id = self.id;
        if !is_valid_nick(new) {
            self.srv().reply(id, "432", &[new, "Erroneous nickname"]);
            return;
        }
        let key = irc_lower(new);
        let (old, registered) = {
            let s = self.server.state.borrow();
            let taken = match s.nicks.get(&key) {
                Some(&owner) => owner != id,
                None => s.remote.contains_key(&key),
            };
            if taken {
                drop(s);
                self.srv()
                    .reply(id, "433", &[new, "Nickname is already in use"]);
                return;
            }
            let c = &s.clients[id];
            (c.nick.clone(), c.registered)
        };
        if let (true, Some(link), Some(old)) = (registered, &self.server.link, &old) {
            if irc_lower(old) != key {
                // The other servers decide: renamed once the claim is ours.
                let conn = Conn::for_client(self.server.clone(), id, self.uid);
                let (t, new) = (t.clone(), new.to_owned());
                let claimed = new.clone();
                link.rename(
                    old,
                    &claimed,
                    Box::new(move |r| conn.claimed_rename(&t, &new, r)),
                );
                return;
            }
        }
        self.rename(t, new);
    }

    /// The answer to a rename's claim.
    fn claimed_rename(&self, t: &Transport, new: &str, r: Result<bool, String>) {
        let here = self
            .server
            .state
            .borrow()
            .clients
            .get(self.id)
            .is_some_and(|c| c.uid == self.uid && !c.quit);
        if !here {
            return;
        }
        match r {
            Ok(true)
                if !self
                    .server
                    .state
                    .borrow()
                    .nicks
                    .contains_key(&irc_lower(new)) =>
            {
                self.rename(t, new)
            }
            Ok(_) => self
                .srv()
                .reply(self.id, "433", &[new, "Nickname is already in use"]),
            Err(e) => self.srv().reply(
                self.id,
                "437",
                &[new, &format!("Nick is temporarily unavailable ({e})")],
            ),
        }
    }

    /// Takes `new` as the client's nick (checked free), telling its
    /// channels if registered.
    fn rename(&self, t: &Transport, new: &str) {
        let id = self.id;
        let key = irc_lower(new);
        let (old, registered) = {
            let s = self.server.state.borrow();
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

    pub(super) fn try_register(&self, t: &Transport) {
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
            return self.claim_and_register(t);
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
                Ok(_) => conn.claim_and_register(&t),
                Err(_) => {
                    conn.srv().reply(id, "464", &["Password incorrect"]);
                    conn.close_with_error(&t, "bad password");
                }
            }
            Ok(())
        });
    }

    /// Registers the client, once the other servers (if any) agree that
    /// its nick is free.
    fn claim_and_register(&self, t: &Transport) {
        let Some(link) = self.server.link.clone() else {
            return self.complete_registration(t);
        };
        let id = self.id;
        let (nick, user, host) = {
            let mut s = self.server.state.borrow_mut();
            let c = &mut s.clients[id];
            c.checking = true;
            (
                c.nick.clone().unwrap_or_default(),
                c.user.clone().unwrap_or_default(),
                c.host.clone(),
            )
        };
        let (server, uid, t) = (Rc::downgrade(&self.server), self.uid, t.clone());
        let asked = nick.clone();
        link.claim(
            &nick,
            &user,
            &host,
            Box::new(move |r| {
                let Some(server) = server.upgrade() else {
                    return;
                };
                let conn = Conn::for_client(server.clone(), id, uid);
                let now = {
                    let mut s = server.state.borrow_mut();
                    match s.clients.get_mut(id).filter(|c| c.uid == uid) {
                        Some(c) => {
                            c.checking = false;
                            Some(c.nick.clone())
                        }
                        None => None,
                    }
                };
                let gone = now.is_none() || t.is_disconnecting();
                match r {
                    Ok(true) if gone => {
                        // Claimed for a client that left meanwhile: let it go.
                        if let Some(link) = &server.link {
                            link.quit(&asked, "Connection closed", &[]);
                        }
                    }
                    Ok(true) if now == Some(Some(asked.clone())) => conn.complete_registration(&t),
                    // The client changed its nick while it was being claimed.
                    Ok(true) => {
                        if let Some(link) = &server.link {
                            link.quit(&asked, "Nick changed", &[]);
                        }
                        conn.try_register(&t);
                    }
                    _ if gone => {}
                    Ok(false) | Err(_) => {
                        let code = if r.is_ok() { "433" } else { "437" };
                        let text = match &r {
                            Ok(_) => "Nickname is already in use".to_owned(),
                            Err(e) => format!("Nick is temporarily unavailable ({e})"),
                        };
                        server.reply(id, code, &[&asked, &text]);
                        // Unregistered without a nick: the client sends another.
                        let mut s = server.state.borrow_mut();
                        if s.nicks.get(&irc_lower(&asked)) == Some(&id) {
                            s.nicks.remove(&irc_lower(&asked));
                        }
                        if let Some(c) = s.clients.get_mut(id) {
                            c.nick = None;
                        }
                    }
                }
            }),
        );
    }

    pub(super) fn complete_registration(&self, t: &Transport) {
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

    pub(super) fn motd(&self) {
        let id = self.id;
        let name = self.server.config.name.clone();
        self.srv()
            .reply(id, "375", &[&format!("- {name} Message of the day -")]);
        for l in &self.server.config.motd {
            self.srv().reply(id, "372", &[&format!("- {l}")]);
        }
        self.srv().reply(id, "376", &["End of /MOTD command"]);
    }
}
