//! One server connection: bytes from the transport into sunset's
//! `Runner`, its events answered, channel data moved between the runner
//! and the channels' protocols, its output written back.
//!
//! Everything that calls user code (a channel's protocol, a checker's
//! answer) runs with the runner not borrowed: a step collects
//! [`Action`]s under the borrow and runs them after it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use braid::{
    Address, CloseKind, CloseReason, DelayedCall, ListeningPort, Protocol, Reactor, Transport,
};
use braid_cred::{Credentials, LoggedIn};
use sunset::{Event, Runner};

use super::Shared;
use crate::chanio::{self, Slot};
use crate::channel::{ChanInner, ChannelHost, WindowSize};
use crate::forward::{DirectConnect, ForwardHost};
use crate::session::Avatar;

/// Events handled per step before output is flushed.
const STEP_EVENTS: usize = 64;
/// The TCP write buffer above which channels stop sending.
const TCP_HIGH: usize = 1024 * 1024;
/// How long a `direct-tcpip` connection may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

type Server = sunset::Server;

/// What to do once the runner is no longer borrowed.
pub(super) enum Action {
    CheckPassword(String, String),
    CheckKey { user: String, blob: Vec<u8> },
    Authenticated,
    Start(Rc<ChanInner>, Box<dyn Protocol>),
    WindowChange(Rc<ChanInner>, WindowSize),
    Signal(Rc<ChanInner>, String),
    Lost(Rc<ChanInner>),
    Close(&'static str),
    ConnectDirect(u32, String, u16),
}

pub(crate) struct ConnInner<A: Avatar> {
    pub(super) me: Weak<ConnInner<A>>,
    pub(super) shared: Rc<Shared<A>>,
    pub(super) transport: RefCell<Option<Transport>>,
    pub(super) runner: RefCell<Runner<'static, Server>>,
    /// Read from the client, not yet taken by the runner.
    pub(super) pending_in: RefCell<Vec<u8>>,
    pub(super) reading_paused: Cell<bool>,
    /// The TCP transport's write buffer is over its high watermark.
    pub(super) tcp_paused: Cell<bool>,
    pub(super) slots: RefCell<BTreeMap<u32, Slot>>,
    pub(super) username: RefCell<String>,
    pub(super) auth_tries: Cell<u32>,
    pub(super) login: RefCell<Option<LoggedIn<A>>>,
    pub(super) grace: RefCell<Option<DelayedCall>>,
    pub(super) scheduled: Cell<bool>,
    pub(super) pumping: Cell<bool>,
    pub(super) again: Cell<bool>,
    pub(super) closed: Cell<bool>,
    /// The transport is closing (after a fatal error, a disconnect).
    pub(super) closing: Cell<bool>,
    /// `direct-tcpip` connections made (or failed), to answer.
    pub(super) pending_opens: RefCell<Vec<(u32, Option<TcpEnd>)>>,
    /// Connections on forwarded ports, to open channels for.
    pub(super) pending_forwarded: RefCell<Vec<((String, u32), TcpEnd)>>,
    /// Ports listening for `tcpip-forward`: (address asked, port bound).
    pub(super) forwards: RefCell<Vec<((String, u32), ListeningPort)>>,
    /// Bytes both ways since the last key exchange asked for.
    pub(super) traffic: Cell<u64>,
    pub(super) rekey_timer: RefCell<Option<DelayedCall>>,
}

/// A TCP connection and the cell its protocol reads its channel from.
pub(super) type TcpEnd = (Transport, Rc<RefCell<Option<Transport>>>);

/// The protocol on the client's transport.
pub(crate) struct ServerConnection<A: Avatar> {
    inner: Rc<ConnInner<A>>,
}

impl<A: Avatar> ServerConnection<A> {
    pub(crate) fn new(shared: Rc<Shared<A>>) -> Self {
        let inner = Rc::new_cyclic(|me| ConnInner {
            me: me.clone(),
            shared,
            transport: RefCell::new(None),
            runner: RefCell::new(Runner::new_server_owned()),
            pending_in: RefCell::default(),
            reading_paused: Cell::new(false),
            tcp_paused: Cell::new(false),
            slots: RefCell::default(),
            username: RefCell::default(),
            auth_tries: Cell::new(0),
            login: RefCell::new(None),
            grace: RefCell::new(None),
            scheduled: Cell::new(false),
            pumping: Cell::new(false),
            again: Cell::new(false),
            closed: Cell::new(false),
            closing: Cell::new(false),
            pending_opens: RefCell::default(),
            pending_forwarded: RefCell::default(),
            forwards: RefCell::default(),
            traffic: Cell::new(0),
            rekey_timer: RefCell::new(None),
        });
        ServerConnection { inner }
    }
}

impl<A: Avatar> Protocol for ServerConnection<A> {
    fn connection_made(&mut self, t: &Transport) {
        let c = &self.inner;
        *c.transport.borrow_mut() = Some(t.clone());
        t.set_write_watermarks(TCP_HIGH / 4, TCP_HIGH);
        let _ = t.register_producer(Rc::new(chanio::TcpBackpressure(c.me.clone())), true);
        let me = c.me.clone();
        let grace = c
            .shared
            .reactor
            .call_later(c.shared.config.login_grace, move || {
                if let Some(c) = me.upgrade() {
                    if c.login.borrow().is_none() {
                        tracing::info!(peer = %c.peer(), "login grace time over: disconnecting");
                        c.close("login grace time over");
                    }
                }
            });
        *c.grace.borrow_mut() = Some(grace);
        c.schedule_rekey();
        c.pump();
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let c = &self.inner;
        c.traffic.set(c.traffic.get() + data.len() as u64);
        let len = {
            let mut p = c.pending_in.borrow_mut();
            p.extend_from_slice(data);
            p.len()
        };
        if len > c.shared.config.max_pending_input && !c.reading_paused.replace(true) {
            t.pause_reading();
        }
        c.pump();
    }

    fn read_eof(&mut self, _: &Transport) {
        self.inner.runner.borrow_mut().close_input();
        self.inner.pump();
    }

    fn connection_lost(&mut self, reason: &CloseReason) {
        let c = &self.inner;
        c.closed.set(true);
        if let Some(g) = c.grace.borrow_mut().take() {
            g.cancel();
        }
        if let Some(r) = c.rekey_timer.borrow_mut().take() {
            r.cancel();
        }
        let kind = reason.kind();
        for (_, port) in c.forwards.borrow_mut().drain(..) {
            port.stop_listening();
        }
        let slots = std::mem::take(&mut *c.slots.borrow_mut());
        for (_, slot) in slots {
            slot.chan.lost(kind);
        }
        let login = c.login.borrow_mut().take();
        if let Some(logout) = login.and_then(|l| l.logout) {
            logout();
        }
        c.transport.borrow_mut().take();
    }
}

impl<A: Avatar> chanio::Backpressured for ConnInner<A> {
    fn set_tcp_paused(&self, paused: bool) {
        self.tcp_paused.set(paused);
    }
    fn kick(&self) {
        ChannelHost::kick(self);
    }
}

impl<A: Avatar> ChannelHost for ConnInner<A> {
    fn kick(&self) {
        if self.closed.get() {
            return;
        }
        if self.pumping.get() {
            self.again.set(true);
            return;
        }
        if self.scheduled.replace(true) {
            return;
        }
        let me = self.me.clone();
        self.shared.reactor.call_soon(move || {
            if let Some(c) = me.upgrade() {
                c.scheduled.set(false);
                c.pump();
            }
        });
    }
    fn reactor(&self) -> Option<Reactor> {
        Some(self.shared.reactor.clone())
    }
    fn peer_addr(&self) -> Address {
        chanio::address(&self.transport, false)
    }
    fn local_addr(&self) -> Address {
        chanio::address(&self.transport, true)
    }
}

impl<A: Avatar> ConnInner<A> {
    /// The peer as cred's throttle counts it: the address without port.
    fn peer(&self) -> String {
        match self.peer_addr() {
            Address::Tcp(a) => a.ip().to_string(),
            other => other.to_string(),
        }
    }

    fn close(&self, why: &'static str) {
        if self.closing.replace(true) {
            return;
        }
        tracing::debug!(peer = %self.peer(), why, "closing the SSH connection");
        self.flush_output();
        if let Some(t) = self.transport.borrow().clone() {
            t.lose_connection();
        }
    }

    /// A key exchange every `rekey_after`.
    fn schedule_rekey(&self) {
        let Some(every) = self.shared.config.rekey_after else {
            return;
        };
        let me = self.me.clone();
        let timer = self.shared.reactor.call_later(every, move || {
            if let Some(c) = me.upgrade() {
                c.rekey("time");
                c.schedule_rekey();
            }
        });
        *self.rekey_timer.borrow_mut() = Some(timer);
    }

    fn rekey(&self, why: &'static str) {
        tracing::debug!(peer = %self.peer(), why, "asking for a key exchange");
        self.traffic.set(0);
        if let Ok(mut r) = self.runner.try_borrow_mut() {
            r.request_rekey();
        }
        self.kick();
    }

    /// Runs the connection until nothing more can happen now.
    fn pump(&self) {
        // After a fatal error the runner is not fed again: sunset's
        // state is undefined past an error.
        if self.closed.get() || self.closing.get() {
            return;
        }
        if self.pumping.replace(true) {
            self.again.set(true);
            return;
        }
        loop {
            self.again.set(false);
            let (actions, fatal) = self.step();
            let busy = !actions.is_empty();
            for a in actions {
                self.run(a);
            }
            let (delivered, more) = chanio::deliver(&self.slots, &self.runner);
            if more {
                self.again.set(true);
            }
            self.flush_output();
            if let Some(why) = fatal {
                self.close(why);
                break;
            }
            // Input the runner could not take before (a packet held, a key
            // exchange's output waiting) may go in now.
            let input_waits = !self.pending_in.borrow().is_empty()
                && self.runner.try_borrow().is_ok_and(|r| r.is_input_ready());
            if !(busy || delivered || input_waits || self.again.get())
                || self.closed.get()
                || self.closing.get()
            {
                break;
            }
        }
        self.pumping.set(false);
        self.sync_reading();
        if self.traffic.get() > self.shared.config.rekey_after_bytes {
            self.rekey("bytes");
        }
    }

    fn sync_reading(&self) {
        if self.reading_paused.get()
            && self.pending_in.borrow().len() < self.shared.config.max_pending_input / 4
        {
            self.reading_paused.set(false);
            if let Some(t) = self.transport.borrow().as_ref() {
                t.resume_reading();
            }
        }
    }

    /// Feeds input, answers events, moves channel data; under the
    /// runner's borrow, calling no user code.
    fn step(&self) -> (Vec<Action>, Option<&'static str>) {
        let mut actions = Vec::new();
        let mut runner = self.runner.borrow_mut();
        self.forwarding(&mut runner, &mut actions);
        for _ in 0..STEP_EVENTS {
            if runner.is_auth_deferred() {
                break;
            }
            let fed = match chanio::feed(&mut runner, &self.pending_in) {
                Ok(n) => n,
                Err(e) => {
                    tracing::info!(peer = %self.peer(), error = %e, "bad SSH input");
                    return (actions, Some("bad input"));
                }
            };
            let idle = match runner.progress() {
                Err(e) => {
                    tracing::info!(peer = %self.peer(), error = %e, "SSH connection failed");
                    return (actions, Some("protocol error"));
                }
                Ok(Event::Serv(ev)) => match self.event(ev, &mut actions) {
                    Ok(()) => false,
                    Err(why) => return (actions, Some(why)),
                },
                Ok(Event::Progressed) => false,
                Ok(Event::None | Event::Cli(_)) => true,
            };
            chanio::read_channels(&self.slots, &mut runner);
            if idle && fed == 0 {
                break;
            }
        }
        let t = self.transport.borrow().clone();
        for chan in chanio::write_channels(
            &self.slots,
            &mut runner,
            self.tcp_paused.get(),
            t.as_ref(),
            &self.traffic,
        ) {
            actions.push(Action::Lost(chan));
        }
        drop(runner);
        self.flush_output();
        (actions, None)
    }

    /// Runs one action, the runner not borrowed.
    fn run(&self, a: Action) {
        match a {
            Action::CheckPassword(user, pass) => {
                let creds = Credentials::password(&user, &pass);
                self.check(creds);
            }
            Action::CheckKey { user, blob } => {
                let creds = Credentials::PublicKey {
                    username: user,
                    blob,
                };
                self.check(creds);
            }
            Action::Authenticated => {
                if let Some(g) = self.grace.borrow_mut().take() {
                    g.cancel();
                }
            }
            Action::Start(chan, p) => chan.start(p),
            Action::WindowChange(chan, size) => chan.window_changed(size),
            Action::Signal(chan, name) => chan.signalled(&name),
            Action::Lost(chan) => chan.lost(CloseKind::Done),
            Action::Close(why) => self.close(why),
            Action::ConnectDirect(num, host, port) => {
                let host_weak: Weak<dyn ForwardHost> = self.me.clone();
                let factory = DirectConnect {
                    host: host_weak,
                    num,
                    side: Rc::default(),
                };
                self.shared
                    .reactor
                    .connect_tcp_host(&host, port, factory, Some(CONNECT_TIMEOUT));
            }
        }
    }

    /// Asks the portal; answers the held authentication event.
    fn check(&self, creds: Credentials) {
        let me = self.me.clone();
        let is_key = matches!(creds, Credentials::PublicKey { .. });
        let user = creds.username().unwrap_or_default().to_owned();
        let login = self.shared.portal.login(creds, (), &self.peer());
        login.add_both(move |r| {
            let Some(c) = me.upgrade() else {
                return Ok(());
            };
            let allow = r.is_ok();
            if let Ok(l) = r {
                if c.login.borrow().is_none() {
                    *c.login.borrow_mut() = Some(l);
                }
            }
            if allow || !is_key {
                tracing::info!(peer = %c.peer(), user, method = if is_key { "publickey" } else { "password" }, allow, "SSH login");
            }
            let r = c.runner.borrow_mut().resume_deferred_auth(allow);
            if let Err(e) = r {
                tracing::debug!(error = %e, "resuming authentication failed");
            }
            c.kick();
            Ok::<(), braid_cred::Unauthorized>(())
        });
    }

    /// Writes the runner's output to the transport.
    fn flush_output(&self) {
        if let Ok(mut runner) = self.runner.try_borrow_mut() {
            chanio::drain_output(&mut runner, self.transport.borrow().as_ref(), &self.traffic);
        }
    }
}
