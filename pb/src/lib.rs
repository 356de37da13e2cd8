//! # braid-pb
//!
//! ```text
//!   your Object (methods by name) ◀─┐            ┌─▶ RemoteReference.call_remote → Deferred
//!                                   Broker (a Protocol on any transport)
//!   jelly (Values, references, copies) ── banana (tokens, limits) ── bytes
//!   login: braid-cred Portal (MD5 challenge for Twisted peers, or loginPassword over TLS)
//! ```
//!
//! Perspective Broker, wire-compatible with Twisted's (`twisted.spread.pb`):
//! a braid program and a Python Twisted program call each other's objects.
//! The wire format is `../shared/specs/pb-wire.md`; [`banana`] and
//! [`jelly`] are its two layers as sans-IO codecs, the broker is the
//! connection.
//!
//! A server publishes a root [`Object`] whose methods are registered by
//! name; a client gets the peer's root as a [`RemoteReference`] and calls
//! it. Arguments and results are [`Value`]s; objects passed as
//! [`Value::Object`] become remote references on the other side, so a
//! client can hand the server a callback.
//!
//! ```no_run
//! use braid_pb::{Args, Object, PbClientFactory, PbServerFactory, Value};
//! use braid::Reactor;
//!
//! let reactor = Reactor::new()?;
//! let root = Object::builder()
//!     .method("echo", |_, args| Ok(args.require(0, "x")?.clone()))
//!     .method("add", |_, args| {
//!         let a = args.require(0, "a")?.as_int().unwrap_or(0);
//!         let b = args.require(1, "b")?.as_int().unwrap_or(0);
//!         Ok(Value::Int(a + b))
//!     })
//!     .build();
//! let port = reactor.listen_tcp("127.0.0.1:8787".parse().unwrap(), PbServerFactory::new(root))?;
//!
//! let client = PbClientFactory::new();
//! let root = client.root_object();
//! reactor.connect_tcp(port.local_addr(), client, None);
//! root.add_callback(|root| {
//!     root.call_remote("add", Args::new(vec![2.into()]).kw("b", 3))
//!         .add_callback(|sum| println!("2 + 3 = {sum:?}"));
//! });
//! reactor.run()?;
//! # std::io::Result::Ok(())
//! ```
//!
//! Logins ([`login`]) use Twisted's challenge-response over a
//! [`cred::Portal`](braid_cred::Portal): see [`LoginRoot`].

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod banana;
mod broker;
mod calls;
pub mod jelly;
mod login;
mod object;
mod typed;

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::rc::Rc;

pub use broker::{
    Args, Broker, Caller, LocalObject, Referenceable, RemoteReference, Reply, COPYABLE_FAILURE,
    MAX_BROKER_REFS, VERSION,
};
pub use jelly::{JellyError, Value};
pub use login::{login, login_anonymous, login_password, md5_response, LoginRoot, PbPortal};
pub use object::{Object, ObjectBuilder};
pub use typed::{from_value, to_value};

use braid::Address;
use braid::Connector;
use braid::{ClientFactory, Factory, Protocol};
use braid::{CloseReason, ConnectError};
use braid::{Deferred, Resolver};

/// What kind of failure a [`PbError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PbErrorKind {
    /// The peer's method failed (or ours, on the way out).
    Remote,
    /// The connection was lost before an answer.
    ConnectionLost,
    /// A value could not be encoded or decoded.
    Jelly,
}

/// A failed call: the exception's qualified type name, its message, and
/// its class hierarchy, as Twisted's `CopyableFailure` carries them.
#[derive(Clone, Debug, PartialEq)]
pub struct PbError {
    kind: PbErrorKind,
    /// The qualified type name, such as `builtins.ValueError`.
    pub type_name: String,
    /// `str(exception)`.
    pub value: String,
    /// The traceback text (usually "Traceback unavailable").
    pub traceback: String,
    /// The exception's classes, most derived first.
    pub parents: Vec<String>,
}

impl PbError {
    /// An error of Python type `type_name` (qualified, like
    /// `builtins.ValueError`) with message `value`.
    pub fn new(type_name: &str, value: impl Into<String>) -> PbError {
        let mut parents = vec![type_name.to_owned()];
        // What Python needs to see the type (and `except Exception`);
        // finer hierarchies (LookupError, ...) are not guessed.
        parents.push("builtins.Exception".to_owned());
        parents.push("builtins.BaseException".to_owned());
        parents.push("builtins.object".to_owned());
        parents.dedup();
        PbError {
            kind: PbErrorKind::Remote,
            type_name: type_name.to_owned(),
            value: value.into(),
            traceback: "Traceback unavailable\n".to_owned(),
            parents,
        }
    }

    /// `builtins.ValueError(message)`.
    pub fn value_error(message: impl Into<String>) -> PbError {
        PbError::new("builtins.ValueError", message)
    }

    /// What Twisted answers for an unknown method: `NoSuchMethod`, an
    /// `AttributeError`.
    pub fn no_such_method(name: &str) -> PbError {
        let mut e = PbError::new(
            "twisted.spread.flavors.NoSuchMethod",
            format!("No such method: remote_{name}"),
        );
        e.parents = [
            "twisted.spread.flavors.NoSuchMethod",
            "builtins.AttributeError",
            "builtins.Exception",
            "builtins.BaseException",
            "builtins.object",
        ]
        .map(String::from)
        .to_vec();
        e
    }

    /// `pb.Error("Invalid Object ID")`.
    pub fn invalid_object_id() -> PbError {
        PbError::new("twisted.spread.pb.Error", "Invalid Object ID")
    }

    /// A failed login: `twisted.cred.error.UnauthorizedLogin`, no message.
    pub fn unauthorized() -> PbError {
        PbError::new("twisted.cred.error.UnauthorizedLogin", "")
    }

    /// The connection ended before an answer.
    pub fn connection_lost() -> PbError {
        PbError {
            kind: PbErrorKind::ConnectionLost,
            ..PbError::new("twisted.internet.error.ConnectionLost", "connection lost")
        }
    }

    pub(crate) fn jelly(e: JellyError) -> PbError {
        let insecure = e.0.starts_with("InsecureJelly");
        PbError {
            kind: PbErrorKind::Jelly,
            ..PbError::new(
                if insecure {
                    "twisted.spread.jelly.InsecureJelly"
                } else {
                    "builtins.TypeError"
                },
                e.0,
            )
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> PbErrorKind {
        self.kind
    }

    /// Whether the remote exception was (a subclass of) `type_name`.
    pub fn is_a(&self, type_name: &str) -> bool {
        self.type_name == type_name || self.parents.iter().any(|p| p == type_name)
    }

    /// The `CopyableFailure` form Python accepts.
    pub(crate) fn to_failure_value(&self) -> Value {
        let s = Value::str;
        Value::Copy(
            COPYABLE_FAILURE.to_owned(),
            Box::new(Value::Dict(vec![
                (s("type"), Value::bytes(&self.type_name)),
                (s("value"), s(&self.value)),
                (s("traceback"), s(&self.traceback)),
                (
                    s("parents"),
                    Value::List(self.parents.iter().map(|p| s(p)).collect()),
                ),
                (s("frames"), Value::List(vec![])),
                (s("stack"), Value::List(vec![])),
                (s("tb"), Value::None),
                (s("count"), Value::Int(1)),
                (s("captureVars"), Value::Bool(false)),
                (s("unsafeTracebacks"), Value::Bool(false)),
            ])),
        )
    }

    /// Reads a received failure (a `CopyableFailure`, or anything else).
    pub(crate) fn from_failure_value(v: Value) -> PbError {
        let text = |v: &Value| match v {
            Value::Str(s) => s.clone(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        };
        if let Value::Copy(name, state) = &v {
            if name == COPYABLE_FAILURE {
                if let Value::Dict(pairs) = &**state {
                    let get = |k: &str| {
                        pairs
                            .iter()
                            .find(|(key, _)| {
                                key.as_str() == Some(k) || key.as_bytes() == Some(k.as_bytes())
                            })
                            .map(|(_, v)| v)
                    };
                    let type_name = get("type").map(text).unwrap_or_default();
                    let mut e =
                        PbError::new(&type_name, get("value").map(text).unwrap_or_default());
                    if let Some(tb) = get("traceback") {
                        e.traceback = text(tb);
                    }
                    if let Some(parents) = get("parents").and_then(Value::as_seq) {
                        e.parents = parents.iter().map(text).collect();
                    }
                    return e;
                }
            }
        }
        PbError::new("twisted.spread.pb.Error", text(&v))
    }
}

impl fmt::Display for PbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            f.write_str(&self.type_name)
        } else {
            write!(f, "{}: {}", self.type_name, self.value)
        }
    }
}

impl std::error::Error for PbError {}

impl From<braid::Failure> for PbError {
    fn from(f: braid::Failure) -> PbError {
        PbError::new("builtins.RuntimeError", f.to_string())
    }
}

impl From<JellyError> for PbError {
    fn from(e: JellyError) -> PbError {
        PbError::jelly(e)
    }
}

/// The copy types a broker accepts, beyond `CopyableFailure`: a received
/// `[type_name, state]` of any other type is refused (`InsecureJelly`).
#[derive(Clone, Debug, Default)]
pub struct CopyTypes(HashSet<String>);

impl CopyTypes {
    /// Accepts copies of `type_name` (a dotted name, such as Python's
    /// `b"pkg.mod.Class"`).
    pub fn register(mut self, type_name: &str) -> Self {
        self.0.insert(type_name.to_owned());
        self
    }
}

/// Serves a root object over PB (Twisted's `PBServerFactory`): each
/// connection gets a broker publishing `root` as `"root"`.
#[derive(Debug)]
pub struct PbServerFactory {
    root: LocalObject,
    copies: Rc<HashSet<String>>,
}

impl PbServerFactory {
    /// Publishes `root`.
    pub fn new(root: LocalObject) -> Self {
        PbServerFactory {
            root,
            copies: Rc::default(),
        }
    }

    /// Accepts these copy types.
    pub fn copy_types(mut self, types: CopyTypes) -> Self {
        self.copies = Rc::new(types.0);
        self
    }
}

impl Factory for PbServerFactory {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        let broker = Broker::new(true, Some(self.root.clone()), self.copies.clone());
        Some(Box::new(broker.protocol()))
    }
}

/// Connects to a PB server (Twisted's `PBClientFactory`): the root object
/// arrives as a Deferred.
pub struct PbClientFactory {
    waiters: Rc<RefCell<Vec<Resolver<RemoteReference, PbError>>>>,
    copies: Rc<HashSet<String>>,
    root: Option<LocalObject>,
    broker: Rc<RefCell<Option<Broker>>>,
}

impl fmt::Debug for PbClientFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PbClientFactory")
            .field("connected", &self.broker.borrow().is_some())
            .finish()
    }
}

impl Default for PbClientFactory {
    fn default() -> Self {
        PbClientFactory::new()
    }
}

impl PbClientFactory {
    /// A factory for one connection.
    pub fn new() -> Self {
        PbClientFactory {
            waiters: Rc::default(),
            copies: Rc::default(),
            root: None,
            broker: Rc::default(),
        }
    }

    /// Accepts these copy types.
    pub fn copy_types(mut self, types: CopyTypes) -> Self {
        self.copies = Rc::new(types.0);
        self
    }

    /// Publishes a root of our own for the server to call.
    pub fn with_root(mut self, root: LocalObject) -> Self {
        self.root = Some(root);
        self
    }

    /// The server's root object, once connected (Twisted's
    /// `getRootObject`). Fails if the connection fails or drops first.
    #[doc(alias = "getRootObject")]
    pub fn root_object(&self) -> Deferred<RemoteReference, PbError> {
        if let Some(b) = self.broker.borrow().clone() {
            return b.root_object();
        }
        let d = Deferred::new();
        let r = d.resolver();
        self.waiters.borrow_mut().push(r);
        d
    }
}

impl Factory for PbClientFactory {
    fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
        let broker = Broker::new(false, self.root.clone(), self.copies.clone());
        *self.broker.borrow_mut() = Some(broker.clone());
        for w in std::mem::take(&mut *self.waiters.borrow_mut()) {
            broker.root_object().add_both(move |r| {
                w.resolve(r);
                Ok::<(), PbError>(())
            });
        }
        Some(Box::new(broker.protocol()))
    }
}

impl ClientFactory for PbClientFactory {
    fn client_connection_failed(&mut self, _: &Connector, reason: &ConnectError) {
        for w in std::mem::take(&mut *self.waiters.borrow_mut()) {
            w.errback(PbError {
                kind: PbErrorKind::ConnectionLost,
                ..PbError::new("twisted.internet.error.ConnectError", reason.to_string())
            });
        }
    }

    fn client_connection_lost(&mut self, _: &Connector, _: &CloseReason) {
        drop(self.broker.borrow_mut().take());
    }
}
