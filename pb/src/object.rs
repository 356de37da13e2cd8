//! Objects whose remote methods are registered by name.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use super::broker::{Args, Broker, Caller, LocalObject, Referenceable, Reply};
use super::{PbError, Value};
use braid::Deferred;

type Method = Rc<dyn Fn(&Caller, Args) -> Reply>;
type ReleaseHook = Box<dyn Fn(&Broker)>;

/// An object made of named methods (what Twisted finds by the
/// `remote_`/`perspective_` prefix, registered here explicitly).
///
/// ```
/// use braid_pb::{Object, PbError, Value};
/// let counter = std::cell::Cell::new(0);
/// let obj = Object::builder()
///     .method("echo", |_, args| Ok(args.require(0, "x")?.clone()))
///     .method("fail", |_, _| Err(PbError::value_error("intentional failure")))
///     .method("count", move |_, _| {
///         counter.set(counter.get() + 1);
///         Ok(Value::Int(counter.get()))
///     })
///     .build();
/// # let _ = obj;
/// ```
pub struct Object {
    methods: HashMap<String, Method>,
    on_release: Option<ReleaseHook>,
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.methods.keys().collect();
        names.sort();
        f.debug_struct("Object").field("methods", &names).finish()
    }
}

impl Object {
    /// Starts an object.
    pub fn builder() -> ObjectBuilder {
        ObjectBuilder(Object {
            methods: HashMap::new(),
            on_release: None,
        })
    }
}

impl Referenceable for Object {
    fn call(&self, caller: &Caller, name: &str, args: Args) -> Reply {
        match self.methods.get(name) {
            Some(m) => m(caller, args),
            None => Reply::Now(Err(PbError::no_such_method(name))),
        }
    }

    fn released(&self, broker: &Broker) {
        if let Some(f) = &self.on_release {
            f(broker);
        }
    }
}

/// Builds an [`Object`].
pub struct ObjectBuilder(Object);

impl fmt::Debug for ObjectBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ObjectBuilder {
    /// A method that answers at once.
    pub fn method(
        mut self,
        name: &str,
        f: impl Fn(&Caller, Args) -> Result<Value, PbError> + 'static,
    ) -> Self {
        self.0
            .methods
            .insert(name.to_owned(), Rc::new(move |c, a| Reply::Now(f(c, a))));
        self
    }

    /// A method with typed arguments and result (serde): the positional
    /// arguments become `A` (a tuple or struct), the result is converted
    /// back; a mismatch is a `TypeError` to the caller.
    pub fn typed_method<A, R>(
        mut self,
        name: &str,
        f: impl Fn(&Caller, A) -> Result<R, PbError> + 'static,
    ) -> Self
    where
        A: serde::de::DeserializeOwned,
        R: serde::Serialize,
    {
        self.0.methods.insert(
            name.to_owned(),
            Rc::new(move |c, a: Args| {
                Reply::Now(
                    a.parse::<A>()
                        .and_then(|a| f(c, a))
                        .and_then(|r| super::to_value(&r)),
                )
            }),
        );
        self
    }

    /// A method that answers later, through a Deferred.
    pub fn deferred_method(
        mut self,
        name: &str,
        f: impl Fn(&Caller, Args) -> Deferred<Value, PbError> + 'static,
    ) -> Self {
        self.0
            .methods
            .insert(name.to_owned(), Rc::new(move |c, a| Reply::Later(f(c, a))));
        self
    }

    /// A method returning either (for wrappers).
    pub fn reply_method(
        mut self,
        name: &str,
        f: impl Fn(&Caller, Args) -> Reply + 'static,
    ) -> Self {
        self.0.methods.insert(name.to_owned(), Rc::new(f));
        self
    }

    /// Runs `f` when a connection's last reference to the object goes
    /// (or the connection is lost).
    pub fn on_release(mut self, f: impl Fn(&Broker) + 'static) -> Self {
        self.0.on_release = Some(Box::new(f));
        self
    }

    /// The object, ready to publish or send.
    pub fn build(self) -> LocalObject {
        LocalObject::new(self.0)
    }
}
