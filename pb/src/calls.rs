//! What a call carries and who answers it: [`Args`], [`Reply`], the
//! [`Caller`], and our objects ([`Referenceable`], [`LocalObject`]).

use std::fmt;
use std::rc::Rc;

use super::broker::Broker;
use super::jelly::Value;
use super::PbError;
use braid::Deferred;

/// Positional and keyword arguments of a call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args {
    /// Positional arguments.
    pub positional: Vec<Value>,
    /// Keyword arguments, in the order sent.
    pub keywords: Vec<(String, Value)>,
}

impl Args {
    /// Positional arguments only.
    pub fn new(positional: Vec<Value>) -> Args {
        Args {
            positional,
            keywords: Vec::new(),
        }
    }

    /// Adds a keyword argument.
    pub fn kw(mut self, name: &str, v: impl Into<Value>) -> Args {
        self.keywords.push((name.to_owned(), v.into()));
        self
    }

    /// The argument at position `i`, or else the keyword `name`: how
    /// Python binds `def f(a, b)` called as `f(1, b=2)`.
    pub fn get(&self, i: usize, name: &str) -> Option<&Value> {
        self.positional.get(i).or_else(|| {
            self.keywords
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
        })
    }

    /// The positional arguments as a typed tuple or struct (serde), for
    /// example `let (a, b): (i64, String) = args.parse()?`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, PbError> {
        super::from_value(Value::Tuple(self.positional.clone()))
    }

    /// Like [`get`](Self::get), or a `TypeError` naming the argument.
    pub fn require(&self, i: usize, name: &str) -> Result<&Value, PbError> {
        self.get(i, name).ok_or_else(|| {
            PbError::new(
                "builtins.TypeError",
                format!("missing required argument: '{name}'"),
            )
        })
    }
}

/// What a method gives back: a value now, or a Deferred answered later.
pub enum Reply {
    /// Answered at once.
    Now(Result<Value, PbError>),
    /// Answered when the Deferred fires.
    Later(Deferred<Value, PbError>),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Now(r) => f.debug_tuple("Now").field(r).finish(),
            Reply::Later(_) => f.write_str("Later(..)"),
        }
    }
}

impl From<Result<Value, PbError>> for Reply {
    fn from(r: Result<Value, PbError>) -> Reply {
        Reply::Now(r)
    }
}

impl From<Deferred<Value, PbError>> for Reply {
    fn from(d: Deferred<Value, PbError>) -> Reply {
        Reply::Later(d)
    }
}

/// Where a call came from: the broker (to call back, or to see the
/// peer's address and TLS state).
#[derive(Clone)]
pub struct Caller {
    pub(crate) broker: Broker,
}

impl Caller {
    /// The connection the call came on.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("peer", &self.broker.peer())
            .finish()
    }
}

/// An object whose methods a peer may call (Twisted's `Referenceable`,
/// or an avatar's `perspective_` methods). Build one with
/// [`Object::builder`](super::Object::builder), or implement this.
pub trait Referenceable: 'static {
    /// Calls the method `name`. Unknown names should answer
    /// [`PbError::no_such_method`].
    fn call(&self, caller: &Caller, name: &str, args: Args) -> Reply;

    /// No peer holds a reference any more on `broker` (its count reached
    /// zero, or the connection was lost). Avatars log out here.
    fn released(&self, broker: &Broker) {
        let _ = broker;
    }
}

/// One of our objects, as carried in a [`Value`]: sending it gives the
/// peer a remote reference.
#[derive(Clone)]
pub struct LocalObject(pub(crate) Rc<dyn Referenceable>);

impl LocalObject {
    /// Wraps an object.
    pub fn new(obj: impl Referenceable) -> LocalObject {
        LocalObject(Rc::new(obj))
    }

    /// The same object.
    pub fn ptr_eq(&self, other: &LocalObject) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn key(&self) -> *const () {
        Rc::as_ptr(&self.0) as *const ()
    }
}

impl fmt::Debug for LocalObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalObject({:p})", self.key())
    }
}
