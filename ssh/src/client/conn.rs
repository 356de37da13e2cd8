//! One client connection: the TCP protocol that drives sunset's client
//! `Runner`, answers its events from the configuration, and moves
//! channel data through [`chanio`](crate::chanio).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use braid::{
    Address, ClientFactory, CloseReason, ConnectError, Connector, Deferred, Factory, ListeningPort,
    Protocol, Reactor, Resolver, Transport,
};
use sunset::{CliEvent, CliSessionExit, Event, Runner};

use super::known_hosts::{self, Verdict};
use super::{ExecOutput, HostKeyPolicy, SessionRequest, SshClient, SshClientConfig, SshError};
use crate::chanio::{self, Slot};
use crate::channel::{ChanInner, ChannelHost, ExitReport};
use crate::forward::{ChannelToTcp, TcpToChannel};
use crate::SessionChannel;

/// Read from the server, not yet taken by the runner, before reading
/// pauses.
const MAX_PENDING: usize = 256 * 1024;
/// The TCP write buffer above which channels stop sending.
const TCP_HIGH: usize = 1024 * 1024;

type Client = sunset::Client;

/// A local forward's connection waiting for its channel: where to, the
/// TCP side, the cell its protocol finds the channel in.
type DirectRequest = (String, u16, Transport, Rc<RefCell<Option<Transport>>>);

/// A channel opened, its protocol waiting for the open to be confirmed.
struct Pending {
    request: Option<SessionRequest>,
    protocol: Box<dyn Protocol>,
}

enum Action {
    Ready,
    Start(Rc<ChanInner>, Box<dyn Protocol>),
    Lost(Rc<ChanInner>),
}

pub(crate) struct ClientInner {
    me: Weak<ClientInner>,
    reactor: Reactor,
    config: SshClientConfig,
    host_name: String,
    transport: RefCell<Option<Transport>>,
    runner: RefCell<Runner<'static, Client>>,
    pending_in: RefCell<Vec<u8>>,
    reading_paused: Cell<bool>,
    tcp_paused: Cell<bool>,
    slots: chanio::Slots,
    pending: RefCell<HashMap<u32, Pending>>,
    /// Connections on local forwards, to open channels for.
    direct: RefCell<Vec<DirectRequest>>,
    keys_tried: Cell<usize>,
    password_tried: Cell<bool>,
    ready: RefCell<Option<Resolver<SshClient, SshError>>>,
    error: RefCell<Option<SshError>>,
    authenticated: Cell<bool>,
    scheduled: Cell<bool>,
    pumping: Cell<bool>,
    again: Cell<bool>,
    closed: Cell<bool>,
    /// Bytes written to the server.
    sent: Cell<u64>,
    /// The connection failed: nothing more is fed to the runner.
    failed: Cell<bool>,
}

pub(super) fn connect(
    reactor: &Reactor,
    host: &str,
    port: u16,
    config: SshClientConfig,
) -> Deferred<SshClient, SshError> {
    let d = Deferred::new();
    let resolver = d.resolver();
    let timeout = config.connect_timeout;
    let inner = Rc::new_cyclic(|me| ClientInner {
        me: me.clone(),
        reactor: reactor.clone(),
        config,
        host_name: known_hosts::host_name(host, port),
        transport: RefCell::new(None),
        runner: RefCell::new(Runner::new_client_owned()),
        pending_in: RefCell::default(),
        reading_paused: Cell::new(false),
        tcp_paused: Cell::new(false),
        slots: RefCell::default(),
        pending: RefCell::default(),
        direct: RefCell::default(),
        keys_tried: Cell::new(0),
        password_tried: Cell::new(false),
        ready: RefCell::new(Some(resolver)),
        error: RefCell::new(None),
        authenticated: Cell::new(false),
        scheduled: Cell::new(false),
        pumping: Cell::new(false),
        again: Cell::new(false),
        closed: Cell::new(false),
        sent: Cell::new(0),
        failed: Cell::new(false),
    });
    reactor.connect_tcp_host(host, port, Dial(Some(inner)), Some(timeout));
    d
}

/// The TCP connector's factory: one connection, to the SSH layer.
struct Dial(Option<Rc<ClientInner>>);

impl Factory for Dial {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        self.0
            .take()
            .map(|inner| Box::new(OnTcp(inner)) as Box<dyn Protocol>)
    }
}

impl ClientFactory for Dial {
    fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
        if let Some(inner) = self.0.take() {
            inner.fail(SshError::Connect(reason.to_string()));
        }
    }
}

struct OnTcp(Rc<ClientInner>);

impl Protocol for OnTcp {
    fn connection_made(&mut self, t: &Transport) {
        *self.0.transport.borrow_mut() = Some(t.clone());
        t.set_write_watermarks(TCP_HIGH / 4, TCP_HIGH);
        let _ = t.register_producer(Rc::new(chanio::TcpBackpressure(self.0.me.clone())), true);
        self.0.pump();
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let len = {
            let mut p = self.0.pending_in.borrow_mut();
            p.extend_from_slice(data);
            p.len()
        };
        if len > MAX_PENDING && !self.0.reading_paused.replace(true) {
            t.pause_reading();
        }
        self.0.pump();
    }
    fn read_eof(&mut self, _: &Transport) {
        self.0.runner.borrow_mut().close_input();
        self.0.pump();
    }
    fn connection_lost(&mut self, _: &CloseReason) {
        let c = &self.0;
        c.closed.set(true);
        let err = c.error.borrow_mut().take().unwrap_or(SshError::Closed);
        c.fail(err);
        let slots = std::mem::take(&mut *c.slots.borrow_mut());
        for (_, slot) in slots {
            slot.chan.lost(braid::CloseKind::Done);
        }
        for (_, p) in c.pending.borrow_mut().drain() {
            drop(p);
        }
        c.transport.borrow_mut().take();
    }
}

impl chanio::Backpressured for ClientInner {
    fn set_tcp_paused(&self, paused: bool) {
        self.tcp_paused.set(paused);
    }
    fn kick(&self) {
        ChannelHost::kick(self);
    }
}

impl ChannelHost for ClientInner {
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
        self.reactor.call_soon(move || {
            if let Some(c) = me.upgrade() {
                c.scheduled.set(false);
                c.pump();
            }
        });
    }
    fn reactor(&self) -> Option<Reactor> {
        Some(self.reactor.clone())
    }
    fn peer_addr(&self) -> Address {
        chanio::address(&self.transport, false)
    }
    fn local_addr(&self) -> Address {
        chanio::address(&self.transport, true)
    }
}

impl ClientInner {
    /// Fails the login (once), closing.
    fn fail(&self, e: SshError) {
        self.failed.set(true);
        if let Some(r) = self.ready.borrow_mut().take() {
            r.errback(e);
        }
        if let Some(t) = self.transport.borrow().clone() {
            t.lose_connection();
        }
    }

    pub(crate) fn disconnect(&self) {
        if let Some(t) = self.transport.borrow().clone() {
            t.lose_connection();
        }
    }

    fn pump(&self) {
        // After a failure the runner is not fed again.
        if self.closed.get() || self.failed.get() {
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
                match a {
                    Action::Ready => {
                        let me = self.me.upgrade().map(|inner| SshClient { inner });
                        if let (Some(r), Some(c)) = (self.ready.borrow_mut().take(), me) {
                            r.callback(c);
                        }
                    }
                    Action::Start(chan, p) => chan.start(p),
                    Action::Lost(chan) => chan.lost(braid::CloseKind::Done),
                }
            }
            let (delivered, more) = chanio::deliver(&self.slots, &self.runner);
            if let Ok(mut r) = self.runner.try_borrow_mut() {
                chanio::drain_output(&mut r, self.transport.borrow().as_ref(), &self.sent);
            }
            if let Some(e) = fatal {
                let e = self.error.borrow_mut().take().unwrap_or(e);
                self.fail(e);
                break;
            }
            // Input the runner could not take before may go in now.
            let input_waits = !self.pending_in.borrow().is_empty()
                && self.runner.try_borrow().is_ok_and(|r| r.is_input_ready());
            if !(busy || delivered || more || input_waits || self.again.get()) || self.closed.get()
            {
                break;
            }
        }
        self.pumping.set(false);
        if self.reading_paused.get() && self.pending_in.borrow().len() < MAX_PENDING / 4 {
            self.reading_paused.set(false);
            if let Some(t) = self.transport.borrow().as_ref() {
                t.resume_reading();
            }
        }
    }

    fn step(&self) -> (Vec<Action>, Option<SshError>) {
        let mut actions = Vec::new();
        let mut runner = self.runner.borrow_mut();
        self.open_direct(&mut runner, &mut actions);
        for _ in 0..64 {
            let fed = match chanio::feed(&mut runner, &self.pending_in) {
                Ok(n) => n,
                Err(e) => return (actions, Some(classify(e))),
            };
            let idle = match runner.progress() {
                Err(e) => return (actions, Some(classify(e))),
                Ok(Event::Cli(ev)) => {
                    if let Err(e) = self.event(ev, &mut actions) {
                        return (actions, Some(e));
                    }
                    false
                }
                Ok(Event::Progressed) => false,
                Ok(Event::None | Event::Serv(_)) => true,
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
            &self.sent,
        ) {
            actions.push(Action::Lost(chan));
        }
        chanio::drain_output(&mut runner, t.as_ref(), &self.sent);
        (actions, None)
    }

    fn event(&self, ev: CliEvent<'_, '_>, actions: &mut Vec<Action>) -> Result<(), SshError> {
        let proto = classify;
        match ev {
            CliEvent::Hostkey(h) => {
                let key = h
                    .hostkey()
                    .ok()
                    .and_then(|k| ssh_key::PublicKey::try_from(&k).ok());
                let Some(key) = key else {
                    let _ = h.reject();
                    return Err(SshError::Protocol("a host key of an unknown kind".into()));
                };
                match self.host_key_ok(&key) {
                    Ok(()) => h.accept().map_err(proto)?,
                    Err(e) => {
                        let _ = h.reject();
                        *self.error.borrow_mut() = Some(e.clone());
                        return Err(e);
                    }
                }
            }
            CliEvent::Banner(b) => {
                if let Ok(text) = b.banner() {
                    tracing::info!(banner = text, "SSH banner");
                }
            }
            CliEvent::Username(u) => u.username(&self.config.username).map_err(proto)?,
            CliEvent::Pubkey(k) => {
                let i = self.keys_tried.get();
                match self.config.keys.get(i) {
                    Some(key) => {
                        self.keys_tried.set(i + 1);
                        k.pubkey(key.0.clone()).map_err(proto)?
                    }
                    None => k.skip().map_err(proto)?,
                }
            }
            CliEvent::Password(p) => match &self.config.password {
                Some(pw) if !self.password_tried.replace(true) => p.password(pw).map_err(proto)?,
                _ => p.skip().map_err(proto)?,
            },
            CliEvent::AgentSign(s) => s.skip().map_err(proto)?,
            CliEvent::Authenticated => {
                self.authenticated.set(true);
                actions.push(Action::Ready);
            }
            CliEvent::SessionOpened(mut opener) => {
                let num = opener.channel().0;
                let pending = self.pending.borrow_mut().remove(&num);
                let chan = self.slots.borrow().get(&num).map(|s| s.chan.clone());
                if let (Some(p), Some(chan)) = (pending, chan) {
                    let request = p.request.unwrap_or_default();
                    if let Some(pty) = &request.pty {
                        let s = pty.size;
                        let pty = sunset::Pty::new(&pty.term, s.cols, s.rows, s.width, s.height)
                            .map_err(proto)?;
                        opener.pty(pty).map_err(proto)?;
                        *chan.pty.borrow_mut() = request.pty.clone();
                    }
                    for (k, v) in &request.env {
                        opener.env(k, v).map_err(proto)?;
                    }
                    match &request.command {
                        Some(c) => opener.exec(c).map_err(proto)?,
                        None => opener.shell().map_err(proto)?,
                    }
                    actions.push(Action::Start(chan, p.protocol));
                }
            }
            CliEvent::SessionExit(num, exit) => {
                let report = match exit {
                    CliSessionExit::Status(s) => ExitReport::Status(s),
                    CliSessionExit::Signal(sig) => ExitReport::Signal {
                        name: sig.signal.to_owned(),
                        core_dumped: sig.core,
                        message: sig.error.to_str().unwrap_or("").to_owned(),
                    },
                };
                if let Some(s) = self.slots.borrow().get(&num.0) {
                    *s.chan.remote_exit.borrow_mut() = Some(report);
                }
            }
            CliEvent::Defunct => return Err(SshError::Closed),
            CliEvent::PollAgain => {}
        }
        Ok(())
    }

    fn host_key_ok(&self, key: &ssh_key::PublicKey) -> Result<(), SshError> {
        let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
        let host = self.host_name.clone();
        match &self.config.host_keys {
            HostKeyPolicy::InsecureAcceptAny => Ok(()),
            HostKeyPolicy::Exactly(line) => {
                let want = ssh_key::PublicKey::from_openssh(line).ok();
                if want.is_some_and(|w| w.key_data() == key.key_data()) {
                    Ok(())
                } else {
                    Err(SshError::HostKeyChanged { host, fingerprint })
                }
            }
            HostKeyPolicy::KnownHosts { path, accept_new } => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                match known_hosts::check(&text, &host, key) {
                    Verdict::Known => Ok(()),
                    Verdict::Changed => Err(SshError::HostKeyChanged { host, fingerprint }),
                    Verdict::Unknown if *accept_new => {
                        if let Err(e) = known_hosts::remember(path, &host, key) {
                            tracing::warn!(error = %e, "cannot add the host to known_hosts");
                        }
                        Ok(())
                    }
                    Verdict::Unknown => Err(SshError::HostKeyUnknown { host, fingerprint }),
                }
            }
        }
    }

    /// Opens a session channel; `protocol` starts once it is confirmed.
    pub(crate) fn open_session(
        &self,
        request: SessionRequest,
        protocol: Box<dyn Protocol>,
    ) -> Result<(), SshError> {
        if self.closed.get() || !self.authenticated.get() {
            return Err(SshError::Closed);
        }
        let h = self
            .runner
            .borrow_mut()
            .open_client_session()
            .map_err(|_| SshError::ChannelRefused)?;
        let num = h.num().0;
        let host: Weak<dyn ChannelHost> = self.me.clone();
        let chan = ChanInner::new(host, num, &self.config.username);
        self.slots.borrow_mut().insert(num, Slot::new(chan, h));
        self.pending.borrow_mut().insert(
            num,
            Pending {
                request: Some(request),
                protocol,
            },
        );
        self.kick();
        Ok(())
    }

    pub(crate) fn forward_local(
        &self,
        listen: SocketAddr,
        host: &str,
        port: u16,
    ) -> io::Result<ListeningPort> {
        let me = self.me.clone();
        let host = host.to_owned();
        self.reactor.listen_tcp(listen, move |_: &Address| {
            let side = Rc::new(RefCell::new(None));
            let (me, host, s2) = (me.clone(), host.clone(), side.clone());
            TcpToChannel {
                channel: side,
                on_connect: Some(Box::new(move |t: &Transport| match me.upgrade() {
                    Some(c) if !c.closed.get() => {
                        c.direct.borrow_mut().push((host, port, t.clone(), s2));
                        c.kick();
                    }
                    _ => t.lose_connection(),
                })),
            }
        })
    }

    /// Opens `direct-tcpip` channels for local forwards' connections.
    fn open_direct(&self, runner: &mut Runner<'static, Client>, actions: &mut Vec<Action>) {
        let arrived = std::mem::take(&mut *self.direct.borrow_mut());
        for (host, port, tcp, side) in arrived {
            let (ip, oport) = crate::forward::originator(&tcp);
            match runner.open_direct_tcpip(&host, u32::from(port), &ip, oport) {
                Ok(h) => {
                    let num = h.num().0;
                    let weak: Weak<dyn ChannelHost> = self.me.clone();
                    let chan = ChanInner::new(weak, num, &self.config.username);
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
                Err(_) => tcp.lose_connection(),
            }
        }
    }
}

/// A sunset error as the client's.
fn classify(e: sunset::Error) -> SshError {
    match e {
        sunset::Error::NoAuthMethods => SshError::AuthFailed,
        e => SshError::Protocol(e.to_string()),
    }
}

/// Collects a command's output for [`SshClient::exec`].
struct Collect {
    out: ExecOutput,
    stderr: Rc<RefCell<Vec<u8>>>,
    channel: Option<SessionChannel>,
    done: Option<Resolver<ExecOutput, SshError>>,
}

impl Protocol for Collect {
    fn connection_made(&mut self, t: &Transport) {
        if let Some(ch) = t.layer::<SessionChannel>() {
            let err = self.stderr.clone();
            ch.on_stderr(move |d| err.borrow_mut().extend_from_slice(d));
            self.channel = Some((*ch).clone());
        }
        // Nothing on stdin.
        t.lose_write_connection();
    }
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.out.stdout.extend_from_slice(data);
    }
    fn read_eof(&mut self, _: &Transport) {
        // The exit status and CLOSE follow.
    }
    fn connection_lost(&mut self, _: &CloseReason) {
        let mut out = std::mem::take(&mut self.out);
        out.stderr = std::mem::take(&mut *self.stderr.borrow_mut());
        out.exit = self.channel.as_ref().and_then(|c| c.remote_exit());
        if let Some(r) = self.done.take() {
            r.callback(out);
        }
    }
}

pub(super) fn exec(client: &SshClient, command: &str) -> Deferred<ExecOutput, SshError> {
    let d = Deferred::new();
    let r = d.resolver();
    let collect = Collect {
        out: ExecOutput::default(),
        stderr: Rc::default(),
        channel: None,
        done: Some(r),
    };
    let request = SessionRequest {
        command: Some(command.to_owned()),
        ..SessionRequest::default()
    };
    if let Err(e) = client.inner.open_session(request, Box::new(collect)) {
        return Deferred::fail(e);
    }
    d
}
