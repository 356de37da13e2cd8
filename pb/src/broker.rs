//! The broker: one PB connection (spec section 3). It negotiates the
//! dialect and version, dispatches `message`s to our objects, matches
//! `answer`s and `error`s to our calls, and keeps both reference tables.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::{Rc, Weak};

use super::banana::{self, Decoder, Item};
use super::jelly::{self, JellyError, Register, Resolve, Value};
use super::PbError;
use braid::CloseReason;
use braid::Protocol;
use braid::{Address, Transport};
use braid::{Deferred, Resolver};

pub use super::calls::{Args, Caller, LocalObject, Referenceable, Reply};

/// PB's protocol version.
pub const VERSION: i64 = 6;
/// Most distinct objects one side may have registered for the other.
pub const MAX_BROKER_REFS: usize = 1024;
/// The copy type of errors.
pub const COPYABLE_FAILURE: &str = "twisted.spread.pb.CopyableFailure";

struct RemoteInner {
    broker: Weak<Inner>,
    /// `None` for the peer's root object.
    luid: Option<i64>,
}

impl Drop for RemoteInner {
    fn drop(&mut self) {
        if let (Some(luid), Some(b)) = (self.luid, self.broker.upgrade()) {
            b.queue_decref(luid);
        }
    }
}

/// A proxy for one of the peer's objects (Twisted's `RemoteReference`).
/// Clones share one reference; when the last is dropped the peer is sent
/// a `decref`.
#[derive(Clone)]
pub struct RemoteReference(Rc<RemoteInner>);

impl RemoteReference {
    /// Calls `name` on the remote object (Twisted's `callRemote`); the
    /// Deferred fires with the answer, or fails with the remote error (or
    /// [`PbError::connection_lost`]). It is also a `Future`.
    #[doc(alias = "callRemote")]
    pub fn call_remote(&self, name: &str, args: Args) -> Deferred<Value, PbError> {
        match self.0.broker.upgrade() {
            Some(b) => b.call(self.0.luid, name, args, true),
            None => Deferred::fail(PbError::connection_lost()),
        }
    }

    /// [`call_remote`](Self::call_remote) with typed arguments and result
    /// (serde): a tuple's items are the positional arguments, any other
    /// value is the one argument.
    pub fn call_typed<A: serde::Serialize, R: serde::de::DeserializeOwned + 'static>(
        &self,
        name: &str,
        args: &A,
    ) -> Deferred<R, PbError> {
        let args = match super::to_value(args) {
            Ok(Value::Tuple(v)) => Args::new(v),
            Ok(Value::None) => Args::default(),
            Ok(one) => Args::new(vec![one]),
            Err(e) => return Deferred::fail(e),
        };
        self.call_remote(name, args)
            .add_callback_result(super::from_value)
    }

    /// Calls `name` without asking for an answer (`pbanswer=0`): the peer
    /// sends none, even on error.
    pub fn call_remote_no_answer(&self, name: &str, args: Args) {
        if let Some(b) = self.0.broker.upgrade() {
            drop(b.call(self.0.luid, name, args, false));
        }
    }

    /// Whether both proxies stand for the same remote object.
    pub fn same_object(&self, other: &RemoteReference) -> bool {
        self.0.broker.ptr_eq(&other.0.broker) && self.0.luid == other.0.luid
    }

    /// Runs `f` when the connection to the object's owner is lost (at once
    /// if it already is): Twisted's `notifyOnDisconnect`.
    #[doc(alias = "notifyOnDisconnect")]
    pub fn notify_on_disconnect(&self, f: impl FnOnce() + 'static) {
        match self.broker() {
            Some(b) => b.notify_on_disconnect(f),
            None => f(),
        }
    }

    /// The broker of the connection, while it is open.
    pub fn broker(&self) -> Option<Broker> {
        self.0.broker.upgrade().map(|inner| Broker { inner })
    }

    /// The peer's id for the object (`None` for its root).
    pub fn luid(&self) -> Option<i64> {
        self.0.luid
    }
}

impl fmt::Debug for RemoteReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.luid {
            Some(l) => write!(f, "RemoteReference({l})"),
            None => f.write_str("RemoteReference(root)"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Server: offered dialects, waiting for the choice. Client: waiting
    /// for the offer.
    Dialect,
    /// Waiting for the peer's version.
    Version,
    Ready,
    Closed,
}

struct Entry {
    object: LocalObject,
    count: u32,
}

struct Inner {
    me: Weak<Inner>,
    server: bool,
    root: Option<LocalObject>,
    copies: Rc<HashSet<String>>,
    transport: RefCell<Option<Transport>>,
    phase: Cell<Phase>,
    decoder: RefCell<Decoder>,
    vocab: Cell<bool>,
    next_request: Cell<i64>,
    pending: RefCell<HashMap<i64, Resolver<Value, PbError>>>,
    locals: RefCell<HashMap<i64, Entry>>,
    by_ptr: RefCell<HashMap<*const (), i64>>,
    next_luid: Cell<i64>,
    violations: Cell<u32>,
    decrefs: RefCell<Vec<i64>>,
    decref_queued: Cell<bool>,
    root_waiters: RefCell<Vec<Resolver<RemoteReference, PbError>>>,
    on_lost: RefCell<Vec<Box<dyn FnOnce()>>>,
}

/// One PB connection's broker: a handle to it (clone freely).
#[derive(Clone)]
pub struct Broker {
    inner: Rc<Inner>,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("server", &self.inner.server)
            .field("phase", &self.inner.phase.get())
            .field("objects", &self.inner.locals.borrow().len())
            .finish()
    }
}

impl Broker {
    pub(crate) fn new(
        server: bool,
        root: Option<LocalObject>,
        copies: Rc<HashSet<String>>,
    ) -> Broker {
        Broker {
            inner: Rc::new_cyclic(|me| Inner {
                me: me.clone(),
                server,
                root,
                copies,
                transport: RefCell::new(None),
                phase: Cell::new(Phase::Dialect),
                decoder: RefCell::new(Decoder::new()),
                vocab: Cell::new(false),
                next_request: Cell::new(1),
                pending: RefCell::new(HashMap::new()),
                locals: RefCell::new(HashMap::new()),
                by_ptr: RefCell::new(HashMap::new()),
                next_luid: Cell::new(1),
                violations: Cell::new(0),
                decrefs: RefCell::new(Vec::new()),
                decref_queued: Cell::new(false),
                root_waiters: RefCell::new(Vec::new()),
                on_lost: RefCell::new(Vec::new()),
            }),
        }
    }

    /// The peer's address, while connected.
    pub fn peer(&self) -> Option<Address> {
        self.inner
            .transport
            .borrow()
            .as_ref()
            .map(Transport::peer_addr)
    }

    /// The transport, while connected.
    pub fn transport(&self) -> Option<Transport> {
        self.inner.transport.borrow().clone()
    }

    /// The peer's root object, once the dialect is agreed (at once if it
    /// is). Fails with [`PbError::connection_lost`] if the connection ends
    /// first.
    #[doc(alias = "getRootObject")]
    pub fn root_object(&self) -> Deferred<RemoteReference, PbError> {
        match self.inner.phase.get() {
            Phase::Version | Phase::Ready => Deferred::succeed(self.inner.root_proxy()),
            Phase::Closed => Deferred::fail(PbError::connection_lost()),
            Phase::Dialect => {
                let d = Deferred::new();
                let r = d.resolver();
                self.inner.root_waiters.borrow_mut().push(r);
                d
            }
        }
    }

    /// Runs `f` when the connection is lost (at once if it already is).
    #[doc(alias = "notifyOnDisconnect")]
    pub fn notify_on_disconnect(&self, f: impl FnOnce() + 'static) {
        if self.inner.phase.get() == Phase::Closed {
            f();
        } else {
            self.inner.on_lost.borrow_mut().push(Box::new(f));
        }
    }

    /// How many of our objects the peer holds references to.
    pub fn registered_objects(&self) -> usize {
        self.inner.locals.borrow().len()
    }

    /// Closes the connection.
    pub fn disconnect(&self) {
        if let Some(t) = self.transport() {
            t.lose_connection();
        }
    }

    /// The protocol to put on a transport.
    pub(crate) fn protocol(&self) -> BrokerProtocol {
        BrokerProtocol(self.clone())
    }
}

impl Inner {
    fn handle(&self) -> Broker {
        Broker {
            inner: self.me.upgrade().expect("a live broker"),
        }
    }

    fn root_proxy(&self) -> RemoteReference {
        RemoteReference(Rc::new(RemoteInner {
            broker: self.me.clone(),
            luid: None,
        }))
    }

    fn send(&self, item: &Item) {
        let t = self.transport.borrow().clone();
        if let Some(t) = t {
            t.write(&banana::to_bytes(item, self.vocab.get()));
        }
    }

    /// A protocol violation: logged, and the connection dropped.
    fn kill(&self, why: &str) {
        tracing::warn!(why, "PB: dropping the connection");
        let t = self.transport.borrow().clone();
        if let Some(t) = t {
            t.lose_connection();
        }
    }

    fn queue_decref(&self, luid: i64) {
        if self.phase.get() == Phase::Closed {
            return;
        }
        self.decrefs.borrow_mut().push(luid);
        if self.decref_queued.replace(true) {
            return;
        }
        let reactor = self
            .transport
            .borrow()
            .as_ref()
            .and_then(Transport::reactor);
        if let Some(r) = reactor {
            let me = self.me.clone();
            r.call_soon(move || {
                if let Some(b) = me.upgrade() {
                    b.flush_decrefs();
                }
            });
        }
    }

    fn flush_decrefs(&self) {
        self.decref_queued.set(false);
        let luids = std::mem::take(&mut *self.decrefs.borrow_mut());
        for luid in luids {
            self.send(&Item::List(vec![Item::bytes("decref"), Item::Int(luid)]));
        }
    }

    fn call(
        &self,
        luid: Option<i64>,
        name: &str,
        args: Args,
        answer: bool,
    ) -> Deferred<Value, PbError> {
        if !matches!(self.phase.get(), Phase::Version | Phase::Ready) {
            return Deferred::fail(PbError::connection_lost());
        }
        let tuple = Value::Tuple(args.positional);
        let dict = Value::Dict(
            args.keywords
                .into_iter()
                .map(|(k, v)| (Value::Str(k), v))
                .collect(),
        );
        let mut reg = Reg(self);
        let (a, k) = match (
            jelly::jelly(&tuple, &mut reg),
            jelly::jelly(&dict, &mut reg),
        ) {
            (Ok(a), Ok(k)) => (a, k),
            (Err(e), _) | (_, Err(e)) => return Deferred::fail(PbError::jelly(e)),
        };
        let id = self.next_request.get();
        self.next_request.set(id + 1);
        let target = match luid {
            None => Item::bytes("root"),
            Some(l) => Item::Int(l),
        };
        self.send(&Item::List(vec![
            Item::bytes("message"),
            Item::Int(id),
            target,
            Item::bytes(name),
            Item::Int(answer as i64),
            a,
            k,
        ]));
        if !answer {
            return Deferred::succeed(Value::None);
        }
        let d = Deferred::new();
        let r = d.resolver();
        self.pending.borrow_mut().insert(id, r);
        d
    }

    fn on_data(&self, data: &[u8]) {
        self.decoder.borrow_mut().feed(data);
        loop {
            if self.phase.get() == Phase::Closed {
                return;
            }
            let next = self.decoder.borrow_mut().next_item();
            match next {
                Ok(Some(item)) => self.on_item(item),
                Ok(None) => return,
                Err(e) => {
                    self.kill(&e.to_string());
                    return;
                }
            }
        }
    }

    fn on_item(&self, item: Item) {
        match self.phase.get() {
            Phase::Dialect if self.server => {
                // The client's choice: a bare string, one of ours.
                match item.as_bytes() {
                    Some(b"pb") => self.vocab.set(true),
                    Some(b"none") => self.vocab.set(false),
                    _ => return self.kill("the client chose no dialect we offered"),
                }
                self.decoder.borrow_mut().set_vocab(self.vocab.get());
                self.phase.set(Phase::Version);
                self.send_version();
                self.wake_root_waiters();
            }
            Phase::Dialect => {
                // The server's offer: take the first dialect we know.
                let Item::List(offers) = item else {
                    return self.kill("the server offered no dialect list");
                };
                let choice = offers.iter().find_map(|o| match o.as_bytes() {
                    Some(b"pb") => Some("pb"),
                    Some(b"none") => Some("none"),
                    _ => None,
                });
                let Some(choice) = choice else {
                    return self.kill("the server offered no dialect we know");
                };
                self.send(&Item::bytes(choice));
                self.vocab.set(choice == "pb");
                self.decoder.borrow_mut().set_vocab(self.vocab.get());
                self.phase.set(Phase::Version);
                self.send_version();
                self.wake_root_waiters();
            }
            Phase::Version => {
                let ok = matches!(&item, Item::List(v) if v.len() == 2
                    && v[0].as_bytes() == Some(b"version") && v[1] == Item::Int(VERSION));
                if !ok {
                    return self.kill("the peer speaks another PB version");
                }
                self.phase.set(Phase::Ready);
            }
            Phase::Ready => self.on_message(item),
            Phase::Closed => {}
        }
    }

    fn send_version(&self) {
        self.send(&Item::List(vec![
            Item::bytes("version"),
            Item::Int(VERSION),
        ]));
    }

    fn wake_root_waiters(&self) {
        let waiters = std::mem::take(&mut *self.root_waiters.borrow_mut());
        for w in waiters {
            w.callback(self.root_proxy());
        }
    }

    fn on_message(&self, item: Item) {
        let Item::List(mut parts) = item else {
            return self.kill("a PB message that is not a list");
        };
        if parts.is_empty() {
            return self.kill("an empty PB message");
        }
        let command = match parts.remove(0) {
            Item::Bytes(c) => c,
            _ => return self.kill("a PB message without a command"),
        };
        match command.as_slice() {
            b"message" => self.on_call(parts),
            b"answer" | b"error" => self.on_answer(command == b"answer", parts),
            b"decref" => match parts.as_slice() {
                [Item::Int(luid)] => self.on_decref(*luid),
                _ => self.kill("a malformed decref"),
            },
            b"version" => {}
            b"didNotUnderstand" => {
                tracing::warn!(?parts, "PB: the peer did not understand a command of ours");
            }
            b"cachemessage" | b"decache" | b"uncache" => {
                self.kill("Cacheable is not supported");
            }
            other => {
                tracing::debug!(command = %String::from_utf8_lossy(other), "PB: unknown command");
                self.send(&Item::List(vec![
                    Item::bytes("didNotUnderstand"),
                    Item::Bytes(other.to_vec()),
                ]));
            }
        }
    }

    fn on_call(&self, parts: Vec<Item>) {
        let Ok([id, target, name, answer, args, kwargs]) = <[Item; 6]>::try_from(parts) else {
            return self.kill("a malformed message");
        };
        let (Item::Int(id), Item::Int(answer)) = (id, answer) else {
            return self.kill("a message with a bad request id");
        };
        let answer = answer != 0;
        let Some(name) = name.as_bytes().and_then(|n| std::str::from_utf8(n).ok()) else {
            return self.reply(
                id,
                answer,
                Err(PbError::new("builtins.TypeError", "bad method name")),
            );
        };
        let name = name.to_owned();
        let object = match &target {
            Item::Bytes(b) if b == b"root" => self.root.clone(),
            Item::Int(luid) => self.locals.borrow().get(luid).map(|e| e.object.clone()),
            _ => None,
        };
        let Some(object) = object else {
            return self.reply(id, answer, Err(PbError::invalid_object_id()));
        };
        let args = match self.call_args(args, kwargs) {
            Ok(a) => a,
            Err(e) => return self.reply(id, answer, Err(e)),
        };
        let caller = Caller {
            broker: self.handle(),
        };
        let reply = braid::catch_panic("PB method", || object.0.call(&caller, &name, args))
            .unwrap_or_else(|| {
                Reply::Now(Err(PbError::new(
                    "builtins.RuntimeError",
                    "the method panicked",
                )))
            });
        match reply {
            Reply::Now(r) => self.reply(id, answer, r),
            Reply::Later(d) => {
                let me = self.me.clone();
                d.add_both(move |r| {
                    if let Some(b) = me.upgrade() {
                        b.reply(id, answer, r);
                    }
                    Ok::<(), PbError>(())
                });
            }
        }
    }

    /// Decodes a message's argument tuple and keyword dict.
    fn call_args(&self, args: Item, kwargs: Item) -> Result<Args, PbError> {
        let type_error = |m: &str| PbError::new("builtins.TypeError", m);
        let positional = match self.unjelly(args)? {
            Value::Tuple(v) | Value::List(v) => v,
            _ => return Err(type_error("arguments are not a tuple")),
        };
        let Value::Dict(pairs) = self.unjelly(kwargs)? else {
            return Err(type_error("keyword arguments are not a dict"));
        };
        let mut keywords = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let k = match k {
                Value::Str(s) => s,
                Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                _ => return Err(type_error("keywords must be strings")),
            };
            keywords.push((k, v));
        }
        Ok(Args {
            positional,
            keywords,
        })
    }

    fn reply(&self, id: i64, answer: bool, result: Result<Value, PbError>) {
        if !answer || self.phase.get() == Phase::Closed {
            return;
        }
        let item = match result {
            Ok(v) => match jelly::jelly(&v, &mut Reg(self)) {
                Ok(item) => Item::List(vec![Item::bytes("answer"), Item::Int(id), item]),
                Err(e) => self.error_item(id, &PbError::jelly(e)),
            },
            Err(e) => self.error_item(id, &e),
        };
        self.send(&item);
    }

    fn error_item(&self, id: i64, e: &PbError) -> Item {
        let failure = jelly::jelly(&e.to_failure_value(), &mut Reg(self))
            .unwrap_or_else(|_| Item::bytes(e.to_string()));
        Item::List(vec![Item::bytes("error"), Item::Int(id), failure])
    }

    fn on_answer(&self, ok: bool, parts: Vec<Item>) {
        let Ok([id, result]) = <[Item; 2]>::try_from(parts) else {
            return self.kill("a malformed answer");
        };
        let Item::Int(id) = id else {
            return self.kill("an answer with a bad request id");
        };
        let Some(resolver) = self.pending.borrow_mut().remove(&id) else {
            return self.kill("an answer to a request we did not make");
        };
        match self.unjelly(result) {
            Ok(v) if ok => resolver.callback(v),
            Ok(v) => resolver.errback(PbError::from_failure_value(v)),
            Err(e) => {
                resolver.errback(PbError::jelly(e));
                self.kill("an answer that does not unjelly");
            }
        }
    }

    fn on_decref(&self, luid: i64) {
        let released = {
            let mut locals = self.locals.borrow_mut();
            let Some(entry) = locals.get_mut(&luid) else {
                drop(locals);
                return self.kill("a decref of an object we never sent");
            };
            entry.count -= 1;
            if entry.count > 0 {
                return;
            }
            let entry = locals.remove(&luid).expect("present");
            self.by_ptr.borrow_mut().remove(&entry.object.key());
            entry.object
        };
        let b = self.handle();
        braid::catch_panic("PB released", || released.0.released(&b));
    }

    fn unjelly(&self, item: Item) -> Result<Value, JellyError> {
        jelly::unjelly(item, &mut Res(self))
    }

    fn connection_lost(&self) {
        self.phase.set(Phase::Closed);
        let pending: Vec<_> = self.pending.borrow_mut().drain().map(|(_, r)| r).collect();
        for r in pending {
            r.errback(PbError::connection_lost());
        }
        let waiters = std::mem::take(&mut *self.root_waiters.borrow_mut());
        for w in waiters {
            w.errback(PbError::connection_lost());
        }
        let locals: Vec<_> = self
            .locals
            .borrow_mut()
            .drain()
            .map(|(_, e)| e.object)
            .collect();
        self.by_ptr.borrow_mut().clear();
        let b = self.handle();
        for o in locals {
            braid::catch_panic("PB released", || o.0.released(&b));
        }
        let hooks = std::mem::take(&mut *self.on_lost.borrow_mut());
        for h in hooks {
            braid::catch_panic("PB disconnect hook", h);
        }
        drop(self.transport.borrow_mut().take());
    }
}

struct Res<'a>(&'a Inner);

impl Resolve for Res<'_> {
    fn remote(&mut self, luid: i64) -> Result<Value, JellyError> {
        Ok(Value::Remote(RemoteReference(Rc::new(RemoteInner {
            broker: self.0.me.clone(),
            luid: Some(luid),
        }))))
    }

    fn local(&mut self, luid: i64) -> Result<Value, JellyError> {
        Ok(self
            .0
            .locals
            .borrow()
            .get(&luid)
            .map_or(Value::None, |e| Value::Object(e.object.clone())))
    }

    fn copy(&mut self, type_name: &str, state: Value) -> Result<Value, JellyError> {
        if type_name == COPYABLE_FAILURE || self.0.copies.contains(type_name) {
            Ok(Value::Copy(type_name.to_owned(), Box::new(state)))
        } else {
            Err(JellyError(format!(
                "InsecureJelly: copy type {type_name:?} is not registered"
            )))
        }
    }
}

struct Reg<'a>(&'a Inner);

impl Register for Reg<'_> {
    fn local_object(&mut self, obj: &LocalObject) -> Result<Item, JellyError> {
        let inner = self.0;
        let known = inner.by_ptr.borrow().get(&obj.key()).copied();
        let luid = match known {
            Some(luid) => {
                if let Some(e) = inner.locals.borrow_mut().get_mut(&luid) {
                    e.count += 1;
                }
                luid
            }
            None => {
                if inner.locals.borrow().len() >= MAX_BROKER_REFS {
                    let v = inner.violations.get() + 1;
                    inner.violations.set(v);
                    if v > 3 {
                        inner.kill("more than 1,024 objects registered, again");
                    }
                    return Err(JellyError(format!(
                        "Maxing out remote references ({MAX_BROKER_REFS})"
                    )));
                }
                let luid = inner.next_luid.get();
                inner.next_luid.set(luid + 1);
                inner.locals.borrow_mut().insert(
                    luid,
                    Entry {
                        object: obj.clone(),
                        count: 1,
                    },
                );
                inner.by_ptr.borrow_mut().insert(obj.key(), luid);
                luid
            }
        };
        Ok(Item::List(vec![Item::bytes("remote"), Item::Int(luid)]))
    }

    fn remote_reference(&mut self, r: &RemoteReference) -> Item {
        match (r.0.broker.ptr_eq(&self.0.me), r.0.luid) {
            (true, Some(luid)) => Item::List(vec![Item::bytes("local"), Item::Int(luid)]),
            _ => Item::List(vec![
                Item::bytes("unpersistable"),
                Item::List(vec![
                    Item::bytes("unicode"),
                    Item::bytes("a reference to another connection's object"),
                ]),
            ]),
        }
    }
}

/// The broker as the connection's protocol.
pub(crate) struct BrokerProtocol(Broker);

impl Protocol for BrokerProtocol {
    fn connection_made(&mut self, t: &Transport) {
        let inner = &self.0.inner;
        *inner.transport.borrow_mut() = Some(t.clone());
        if inner.server {
            // Offer the dialects, uncompressed.
            inner.send(&Item::List(vec![Item::bytes("pb"), Item::bytes("none")]));
        }
    }

    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.0.inner.on_data(data);
    }

    fn connection_lost(&mut self, _: &CloseReason) {
        self.0.inner.connection_lost();
    }
}
