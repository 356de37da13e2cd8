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
