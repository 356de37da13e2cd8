//! The answers to sunset's server events: host keys, logins (held for
//! the portal), sessions and their requests, forwarding.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use braid::{Protocol, Transport};
use sunset::{ChanFail, Runner, ServEvent};

use super::conn::{Action, ConnInner, TcpEnd};
use crate::chanio::Slot;
use crate::channel::{ChanInner, ChannelHost, PtyRequest, WindowSize};
use crate::forward::{ChannelToTcp, ForwardHost, ForwardedPort};
use crate::session::{session_channel, Avatar};

impl<A: Avatar> ConnInner<A> {
    /// Answers one event of the runner's.
    pub(super) fn event(
        &self,
        ev: ServEvent<'_, '_>,
        actions: &mut Vec<Action>,
    ) -> Result<(), &'static str> {
        let cfg = &self.shared.config;
        let r = match ev {
            ServEvent::Hostkeys(h) => {
                let keys: Vec<_> = self.shared.host_keys.iter().map(|k| k.sign_key()).collect();
                h.hostkeys(&keys)
            }
            ServEvent::FirstAuth(mut a) => {
                if let Ok(u) = a.username() {
                    *self.username.borrow_mut() = u.to_owned();
                }
                let _ = a.set_auth_methods(cfg.password_auth, cfg.pubkey_auth);
                a.reject()
            }
            ServEvent::PasswordAuth(a) => {
                if !self.count_try() {
                    return Err("too many authentication failures");
                }
                let user = a.username().unwrap_or_default().to_owned();
                let pass = a.password().unwrap_or_default().to_owned();
                a.defer();
                actions.push(Action::CheckPassword(user, pass));
                Ok(())
            }
            ServEvent::PubkeyAuth(a) => {
                if a.is_signed() && !self.count_try() {
                    return Err("too many authentication failures");
                }
                let user = a.username().unwrap_or_default().to_owned();
                let blob = a
                    .pubkey()
                    .ok()
                    .and_then(|k| ssh_key::PublicKey::try_from(&k).ok())
                    .and_then(|k| k.to_bytes().ok());
                match blob {
                    Some(blob) => {
                        a.defer();
                        actions.push(Action::CheckKey { user, blob });
                        Ok(())
                    }
                    None => a.reject(),
                }
            }
            ServEvent::Authenticated => {
                actions.push(Action::Authenticated);
                Ok(())
            }
            ServEvent::OpenSession(o) => {
                let full = self.slots.borrow().len() >= cfg.max_channels;
                if full || self.login.borrow().is_none() {
                    o.reject(ChanFail::SSH_OPEN_RESOURCE_SHORTAGE)
                } else {
                    match o.accept() {
                        Ok(handle) => {
                            let num = handle.num().0;
                            let host: Weak<dyn ChannelHost> = self.me.clone();
                            let chan = ChanInner::new(host, num, &self.username.borrow());
                            self.slots.borrow_mut().insert(
                                num,
                                Slot {
                                    chan,
                                    handle: Some(handle),
                                    eof_sent: false,
                                    close_sent: false,
                                },
                            );
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
            }
            ServEvent::SessionPty(p) => {
                let chan = self.chan(p.channel().0);
                let allowed = self
                    .login
                    .borrow()
                    .as_ref()
                    .is_some_and(|l| l.avatar.pty_allowed());
                match (chan, p.pty()) {
                    (Some(chan), Ok(pty)) if allowed && !chan.started.get() => {
                        *chan.pty.borrow_mut() = Some(PtyRequest {
                            term: pty.term.as_str().to_owned(),
                            size: WindowSize {
                                cols: pty.cols,
                                rows: pty.rows,
                                width: pty.width,
                                height: pty.height,
                            },
                        });
                        p.succeed()
                    }
                    _ => p.fail(),
                }
            }
            ServEvent::SessionEnv(e) => {
                let chan = self.chan(e.channel().0);
                let (name, value) = (e.name().unwrap_or(""), e.value().unwrap_or(""));
                let allowed = self
                    .login
                    .borrow()
                    .as_ref()
                    .is_some_and(|l| l.avatar.env_allowed(name));
                match chan {
                    Some(chan) if allowed && chan.env.borrow().len() < 64 => {
                        chan.env
                            .borrow_mut()
                            .push((name.to_owned(), value.to_owned()));
                        e.succeed()
                    }
                    _ => e.fail(),
                }
            }
            ServEvent::SessionExec(e) => {
                let num = e.channel().0;
                let command = e.command().unwrap_or("").to_owned();
                match self.session(num, |a, ch| a.exec(ch, &command)) {
                    Some((chan, p)) => {
                        actions.push(Action::Start(chan, p));
                        e.succeed()
                    }
                    None => e.fail(),
                }
            }
            ServEvent::SessionSubsystem(e) => {
                let num = e.channel().0;
                let name = e.command().unwrap_or("").to_owned();
                match self.session(num, |a, ch| a.subsystem(ch, &name)) {
                    Some((chan, p)) => {
                        actions.push(Action::Start(chan, p));
                        e.succeed()
                    }
                    None => e.fail(),
                }
            }
            ServEvent::SessionShell(s) => {
                let num = s.channel().0;
                match self.session(num, |a, ch| a.shell(ch)) {
                    Some((chan, p)) => {
                        actions.push(Action::Start(chan, p));
                        s.succeed()
                    }
                    None => s.fail(),
                }
            }
            ServEvent::SessionWinChange(w) => {
                if let (Some(chan), Ok(size)) = (self.chan(w.channel().0), w.size()) {
                    let size = WindowSize {
                        cols: size.cols,
                        rows: size.rows,
                        width: size.width,
                        height: size.height,
                    };
                    actions.push(Action::WindowChange(chan, size));
                }
                Ok(())
            }
            ServEvent::SessionSignal(s) => {
                if let (Some(chan), Ok(name)) = (self.chan(s.channel().0), s.signal()) {
                    actions.push(Action::Signal(chan, name.to_owned()));
                }
                Ok(())
            }
            ServEvent::OpenDirectTcpip(o) => {
                let (host, port) = o
                    .destination()
                    .map(|(h, p)| (h.to_owned(), p))
                    .unwrap_or_default();
                let allowed = u16::try_from(port).is_ok_and(|p| {
                    self.login
                        .borrow()
                        .as_ref()
                        .is_some_and(|l| l.avatar.allow_direct_tcpip(&host, p))
                });
                if self.slots.borrow().len() >= cfg.max_channels {
                    o.reject(ChanFail::SSH_OPEN_RESOURCE_SHORTAGE)
                } else if !allowed {
                    o.reject(ChanFail::SSH_OPEN_ADMINISTRATIVELY_PROHIBITED)
                } else {
                    // Answered once the connection is made (or fails).
                    let h = o.defer();
                    let num = h.num().0;
                    let weak: Weak<dyn ChannelHost> = self.me.clone();
                    let chan = ChanInner::new(weak, num, &self.username.borrow());
                    self.slots.borrow_mut().insert(num, Slot::new(chan, h));
                    actions.push(Action::ConnectDirect(num, host, port as u16));
                    Ok(())
                }
            }
            ServEvent::GlobalRequest(g) => self.global_request(g),
            ServEvent::Defunct => {
                actions.push(Action::Close("the client disconnected"));
                Ok(())
            }
            ServEvent::PollAgain => Ok(()),
        };
        r.map_err(|e| {
            tracing::debug!(error = %e, "answering an SSH event failed");
            "protocol error"
        })
    }

    /// Counts a login attempt; false once over the limit.
    fn count_try(&self) -> bool {
        let n = self.auth_tries.get() + 1;
        self.auth_tries.set(n);
        n <= self.shared.config.max_auth_tries
    }

    pub(super) fn chan(&self, num: u32) -> Option<Rc<ChanInner>> {
        self.slots.borrow().get(&num).map(|s| s.chan.clone())
    }

    /// Asks the avatar for a session's protocol (once per channel).
    fn session(
        &self,
        num: u32,
        ask: impl FnOnce(&A, &crate::SessionChannel) -> Option<Box<dyn Protocol>>,
    ) -> Option<(Rc<ChanInner>, Box<dyn Protocol>)> {
        let chan = self.chan(num)?;
        if chan.started.get() {
            return None;
        }
        let login = self.login.borrow();
        let avatar = &login.as_ref()?.avatar;
        let p = ask(avatar, &session_channel(&chan))?;
        chan.started.set(true);
        Some((chan, p))
    }
}

impl<A: Avatar> ForwardHost for ConnInner<A> {
    fn direct_result(&self, num: u32, tcp: Option<TcpEnd>) {
        self.pending_opens.borrow_mut().push((num, tcp));
        self.kick();
    }

    fn forwarded_connection(
        &self,
        listen: (String, u32),
        tcp: Transport,
        side: Rc<RefCell<Option<Transport>>>,
    ) {
        self.pending_forwarded
            .borrow_mut()
            .push((listen, (tcp, side)));
        self.kick();
    }
}

impl<A: Avatar> ConnInner<A> {
    /// Answers `direct-tcpip` opens whose connection is settled; opens
    /// channels for connections on forwarded ports.
    pub(super) fn forwarding(
        &self,
        runner: &mut Runner<'static, sunset::Server>,
        actions: &mut Vec<Action>,
    ) {
        let opens = std::mem::take(&mut *self.pending_opens.borrow_mut());
        for (num, tcp) in opens {
            let (chan, handle) = {
                let mut slots = self.slots.borrow_mut();
                match slots.get_mut(&num) {
                    Some(s) => (s.chan.clone(), s.handle.take()),
                    None => {
                        if let Some((t, _)) = tcp {
                            t.lose_connection();
                        }
                        continue;
                    }
                }
            };
            let Some(h) = handle else { continue };
            let opened = match &tcp {
                Some(_) => runner.resume_deferred_open(h, None),
                None => runner.resume_deferred_open(h, Some(ChanFail::SSH_OPEN_CONNECT_FAILED)),
            };
            match (opened, tcp) {
                (Ok(Some(h)), Some((tcp, side))) => {
                    if let Some(s) = self.slots.borrow_mut().get_mut(&num) {
                        s.handle = Some(h);
                    }
                    actions.push(Action::Start(
                        chan,
                        Box::new(ChannelToTcp {
                            tcp,
                            tcp_side: side,
                        }),
                    ));
                }
                (_, tcp) => {
                    if let Some((t, _)) = tcp {
                        t.lose_connection();
                    }
                    self.slots.borrow_mut().remove(&num);
                    actions.push(Action::Lost(chan));
                }
            }
        }
        let arrived = std::mem::take(&mut *self.pending_forwarded.borrow_mut());
        for ((address, port), (tcp, side)) in arrived {
            if self.slots.borrow().len() >= self.shared.config.max_channels {
                tcp.lose_connection();
                continue;
            }
            let (ip, peer_port) = crate::forward::originator(&tcp);
            match runner.open_forwarded_tcpip(&address, port, &ip, peer_port) {
                Ok(h) => {
                    let num = h.num().0;
                    let host: Weak<dyn ChannelHost> = self.me.clone();
                    let chan = ChanInner::new(host, num, &self.username.borrow());
                    self.slots
                        .borrow_mut()
                        .insert(num, Slot::new(chan.clone(), h));
                    actions.push(Action::Start(
                        chan,
                        Box::new(ChannelToTcp {
                            tcp,
                            tcp_side: side,
                        }),
                    ));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "opening a forwarded-tcpip channel failed");
                    tcp.lose_connection();
                }
            }
        }
    }

    /// `tcpip-forward` and `cancel-tcpip-forward`.
    pub(super) fn global_request(
        &self,
        g: sunset::event::ServGlobalRequest<'_, '_>,
    ) -> sunset::Result<()> {
        let (Ok(cancel), Ok((address, port))) = (g.is_cancel(), g.address()) else {
            return g.fail();
        };
        let address = address.to_owned();
        if cancel {
            let mut forwards = self.forwards.borrow_mut();
            let Some(i) = forwards
                .iter()
                .position(|((a, p), _)| *a == address && *p == port)
            else {
                drop(forwards);
                return g.fail();
            };
            let (_, lp) = forwards.remove(i);
            lp.stop_listening();
            drop(forwards);
            return g.succeed(None);
        }
        let allowed = u16::try_from(port).is_ok_and(|p| {
            self.login
                .borrow()
                .as_ref()
                .is_some_and(|l| l.avatar.allow_remote_forward(&address, p))
        }) && self.forwards.borrow().len() < MAX_FORWARDS;
        if !allowed {
            return g.fail();
        }
        let bound = Rc::new(Cell::new(port));
        let host: Weak<dyn ForwardHost> = self.me.clone();
        let factory = ForwardedPort {
            host,
            address: address.clone(),
            port: bound.clone(),
        };
        // Loopback only, as OpenSSH's GatewayPorts no.
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        match self.shared.reactor.listen_tcp(addr, factory) {
            Ok(lp) => {
                let actual = u32::from(lp.local_addr().port());
                bound.set(actual);
                tracing::info!(user = %self.username.borrow(), port = actual, "remote forwarding");
                self.forwards.borrow_mut().push(((address, actual), lp));
                g.succeed((port == 0).then_some(actual))
            }
            Err(e) => {
                tracing::info!(error = %e, port, "tcpip-forward refused: cannot listen");
                g.fail()
            }
        }
    }
}

/// Ports one connection may have forwarded at once.
const MAX_FORWARDS: usize = 16;
