//! Jelly: Python values as banana lists (spec section 2), and [`Value`],
//! braid's dynamic form of them.

use std::fmt;

use super::banana::{BigInt, Item};
use super::broker::{LocalObject, RemoteReference};

/// A value PB carries: Python's basic types, shared references, and
/// PB's objects.
///
/// Shared and circular structure is kept as it came, not resolved into
/// a graph: the first occurrence of a shared container is
/// [`Value::Shared`] and later ones are [`Value::SharedRef`] with the same
/// id (ids are renumbered when sent), so echoing a value back gives the
/// peer the same sharing, and a circular list cannot leak memory here.
#[derive(Clone, Debug)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in `i64`.
    Int(i64),
    /// A larger `int`.
    BigInt(BigInt),
    /// A `float`.
    Float(f64),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `str`.
    Str(String),
    /// `list`.
    List(Vec<Value>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `dict`, as key-value pairs in order.
    Dict(Vec<(Value, Value)>),
    /// `set`.
    Set(Vec<Value>),
    /// `frozenset`.
    FrozenSet(Vec<Value>),
    /// `datetime.datetime`, as "Y M D h m s us".
    DateTime(String),
    /// `datetime.date`, as "Y M D".
    Date(String),
    /// `datetime.time`, as "h m s us".
    Time(String),
    /// `datetime.timedelta`, as "days secs us".
    TimeDelta(String),
    /// `decimal.Decimal`: signed digits and exponent.
    Decimal(Box<Value>, i64),
    /// Something the sender could not serialise, with its reason.
    Unpersistable(String),
    /// The first occurrence of a shared container, with its id.
    Shared(u32, Box<Value>),
    /// A later occurrence of the shared container with this id.
    SharedRef(u32),
    /// One of our objects: sent, the peer gets a remote reference to it.
    Object(LocalObject),
    /// An object of the peer's: a proxy whose methods can be called.
    Remote(RemoteReference),
    /// A copied object of a registered type: its type name and state.
    Copy(String, Box<Value>),
}

impl Value {
    /// A `str`.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// `bytes`.
    pub fn bytes(b: impl AsRef<[u8]>) -> Value {
        Value::Bytes(b.as_ref().to_vec())
    }

    /// The integer, if this is one that fits in `i64`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is `bytes`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The remote reference, if this is one.
    pub fn as_remote(&self) -> Option<&RemoteReference> {
        match self {
            Value::Remote(r) => Some(r),
            _ => None,
        }
    }

    /// The items of a list, tuple, set or frozenset.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => Some(v),
            Value::Shared(_, inner) => inner.as_seq(),
            _ => None,
        }
    }

    /// A short name of the variant, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::DateTime(_) => "datetime",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::TimeDelta(_) => "timedelta",
            Value::Decimal(..) => "Decimal",
            Value::Unpersistable(_) => "unpersistable",
            Value::Shared(..) | Value::SharedRef(_) => "shared",
            Value::Object(_) => "object",
            Value::Remote(_) => "remote reference",
            Value::Copy(..) => "copy",
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (None, None) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (BigInt(a), BigInt(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits() || a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Str(a), Str(b)) => a == b,
            (List(a), List(b))
            | (Tuple(a), Tuple(b))
            | (Set(a), Set(b))
            | (FrozenSet(a), FrozenSet(b)) => a == b,
            (Dict(a), Dict(b)) => a == b,
            (DateTime(a), DateTime(b))
            | (Date(a), Date(b))
            | (Time(a), Time(b))
            | (TimeDelta(a), TimeDelta(b))
            | (Unpersistable(a), Unpersistable(b)) => a == b,
            (Decimal(a, x), Decimal(b, y)) => a == b && x == y,
            (Shared(i, a), Shared(j, b)) => i == j && a == b,
            (SharedRef(i), SharedRef(j)) => i == j,
            (Object(a), Object(b)) => a.ptr_eq(b),
            (Remote(a), Remote(b)) => a.same_object(b),
            (Copy(t, a), Copy(u, b)) => t == u && a == b,
            _ => false,
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::Int(v as i64) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::None, Into::into)
    }
}

/// Why a jelly item was refused (Twisted's `InsecureJelly` and friends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JellyError(pub String);

impl fmt::Display for JellyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JellyError {}

fn insecure(what: impl fmt::Display) -> JellyError {
    JellyError(format!("InsecureJelly: {what}"))
}

/// What unjelly asks of the broker: PB's objects and registered copies.
pub(crate) trait Resolve {
    fn remote(&mut self, luid: i64) -> Result<Value, JellyError>;
    fn local(&mut self, luid: i64) -> Result<Value, JellyError>;
    fn copy(&mut self, type_name: &str, state: Value) -> Result<Value, JellyError>;
}

/// What jelly asks of the broker: luids for our objects and theirs.
pub(crate) trait Register {
    /// `["remote", luid]` for one of ours (registers or counts it).
    fn local_object(&mut self, obj: &LocalObject) -> Result<Item, JellyError>;
    /// `["local", luid]` for one of theirs sent back, if it is theirs.
    fn remote_reference(&mut self, r: &RemoteReference) -> Item;
}

fn tagged(tag: &str, mut rest: Vec<Item>) -> Item {
    rest.insert(0, Item::bytes(tag));
    Item::List(rest)
}

fn unicode(s: &str) -> Item {
    tagged("unicode", vec![Item::bytes(s)])
}

/// Encodes a value (one jelly call: shared ids are renumbered from 1).
pub(crate) fn jelly(v: &Value, reg: &mut dyn Register) -> Result<Item, JellyError> {
    let mut ids = Vec::new();
    jelly_in(v, reg, &mut ids)
}

fn seq(
    tag: &str,
    items: &[Value],
    reg: &mut dyn Register,
    ids: &mut Vec<(u32, u32)>,
) -> Result<Item, JellyError> {
    let mut out = Vec::with_capacity(items.len() + 1);
    out.push(Item::bytes(tag));
    for i in items {
        out.push(jelly_in(i, reg, ids)?);
    }
    Ok(Item::List(out))
}

fn jelly_in(
    v: &Value,
    reg: &mut dyn Register,
    ids: &mut Vec<(u32, u32)>,
) -> Result<Item, JellyError> {
    Ok(match v {
        Value::None => tagged("None", vec![]),
        Value::Bool(b) => tagged(
            "boolean",
            vec![Item::bytes(if *b { "true" } else { "false" })],
        ),
        Value::Int(i) => Item::Int(*i),
        Value::BigInt(b) => Item::Big(b.clone()),
        Value::Float(f) => Item::Float(*f),
        Value::Bytes(b) => Item::Bytes(b.clone()),
        Value::Str(s) => unicode(s),
        Value::List(v) => seq("list", v, reg, ids)?,
        Value::Tuple(v) => seq("tuple", v, reg, ids)?,
        Value::Set(v) => seq("set", v, reg, ids)?,
        Value::FrozenSet(v) => seq("frozenset", v, reg, ids)?,
        Value::Dict(pairs) => {
            let mut out = Vec::with_capacity(pairs.len() + 1);
            out.push(Item::bytes("dictionary"));
            for (k, v) in pairs {
                out.push(Item::List(vec![
                    jelly_in(k, reg, ids)?,
                    jelly_in(v, reg, ids)?,
                ]));
            }
            Item::List(out)
        }
        Value::DateTime(s) => tagged("datetime", vec![Item::bytes(s)]),
        Value::Date(s) => tagged("date", vec![Item::bytes(s)]),
        Value::Time(s) => tagged("time", vec![Item::bytes(s)]),
        Value::TimeDelta(s) => tagged("timedelta", vec![Item::bytes(s)]),
        Value::Decimal(digits, exp) => tagged(
            "decimal",
            vec![jelly_in(digits, reg, ids)?, Item::Int(*exp)],
        ),
        Value::Unpersistable(s) => tagged("unpersistable", vec![unicode(s)]),
        Value::Shared(old, inner) => {
            let new = ids.len() as u32 + 1;
            ids.push((*old, new));
            tagged(
                "reference",
                vec![Item::Int(new as i64), jelly_in(inner, reg, ids)?],
            )
        }
        Value::SharedRef(old) => {
            let Some(&(_, new)) = ids.iter().rev().find(|(o, _)| o == old) else {
                return Err(JellyError(format!(
                    "a shared reference ({old}) outside the value that defines it"
                )));
            };
            tagged("dereference", vec![Item::Int(new as i64)])
        }
        Value::Object(o) => reg.local_object(o)?,
        Value::Remote(r) => reg.remote_reference(r),
        Value::Copy(name, state) => Item::List(vec![Item::bytes(name), jelly_in(state, reg, ids)?]),
    })
}

fn text(item: &Item, what: &str) -> Result<String, JellyError> {
    match item {
        Item::Bytes(b) => {
            String::from_utf8(b.clone()).map_err(|_| JellyError(format!("{what}: not UTF-8")))
        }
        _ => Err(JellyError(format!("{what}: not a string"))),
    }
}

fn int_of(item: &Item, what: &str) -> Result<i64, JellyError> {
    match item {
        Item::Int(i) => Ok(*i),
        _ => Err(JellyError(format!("{what}: not an integer"))),
    }
}

/// Decodes a value with PB's `globalSecurity`: basic types, PB's
/// objects, and copies of registered types only.
pub(crate) fn unjelly(item: Item, res: &mut dyn Resolve) -> Result<Value, JellyError> {
    let mut open = Vec::new();
    unjelly_in(item, res, &mut open)
}

fn unjelly_in(item: Item, res: &mut dyn Resolve, open: &mut Vec<u32>) -> Result<Value, JellyError> {
    let mut items = match item {
        Item::Int(i) => return Ok(Value::Int(i)),
        Item::Big(b) => return Ok(Value::BigInt(b)),
        Item::Float(f) => return Ok(Value::Float(f)),
        Item::Bytes(b) => return Ok(Value::Bytes(b)),
        Item::List(items) => items,
    };
    if items.is_empty() {
        return Err(insecure("an empty list has no type tag"));
    }
    let tag = match items.remove(0) {
        Item::Bytes(t) => String::from_utf8(t).map_err(|_| insecure("a tag that is not UTF-8"))?,
        _ => return Err(insecure("a list whose first item is not a tag")),
    };
    let n = items.len();
    let want = |k: usize| -> Result<(), JellyError> {
        if n == k {
            Ok(())
        } else {
            Err(JellyError(format!("{tag}: {n} items, expected {k}")))
        }
    };
    let all = |items: Vec<Item>, res: &mut dyn Resolve, open: &mut Vec<u32>| {
        items
            .into_iter()
            .map(|i| unjelly_in(i, res, open))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match tag.as_str() {
        "None" => {
            want(0)?;
            Value::None
        }
        "boolean" => {
            want(1)?;
            match items[0].as_bytes() {
                Some(b"true") => Value::Bool(true),
                Some(b"false") => Value::Bool(false),
                _ => return Err(JellyError("boolean: neither true nor false".into())),
            }
        }
        "unicode" => {
            want(1)?;
            Value::Str(text(&items[0], "unicode")?)
        }
        "list" => Value::List(all(items, res, open)?),
        "tuple" => Value::Tuple(all(items, res, open)?),
        "set" => Value::Set(all(items, res, open)?),
        "frozenset" => Value::FrozenSet(all(items, res, open)?),
        "dictionary" => {
            let mut pairs = Vec::with_capacity(n);
            for pair in items {
                let Item::List(kv) = pair else {
                    return Err(JellyError("dictionary: an entry that is not a pair".into()));
                };
                let [k, v]: [Item; 2] = kv
                    .try_into()
                    .map_err(|_| JellyError("dictionary: an entry that is not a pair".into()))?;
                pairs.push((unjelly_in(k, res, open)?, unjelly_in(v, res, open)?));
            }
            Value::Dict(pairs)
        }
        "datetime" | "date" | "time" | "timedelta" => {
            want(1)?;
            let s = text(&items[0], &tag)?;
            match tag.as_str() {
                "datetime" => Value::DateTime(s),
                "date" => Value::Date(s),
                "time" => Value::Time(s),
                _ => Value::TimeDelta(s),
            }
        }
        "decimal" => {
            want(2)?;
            let exp = int_of(&items[1], "decimal exponent")?;
            let digits = unjelly_in(items.swap_remove(0), res, open)?;
            Value::Decimal(Box::new(digits), exp)
        }
        "unpersistable" => {
            want(1)?;
            let reason = match unjelly_in(items.remove(0), res, open)? {
                Value::Str(s) => s,
                Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                other => other.kind().to_owned(),
            };
            Value::Unpersistable(reason)
        }
        "persistent" => Value::Unpersistable("persistent reference".into()),
        "reference" => {
            want(2)?;
            let id = int_of(&items[0], "reference id")?;
            let id =
                u32::try_from(id).map_err(|_| JellyError("reference id out of range".into()))?;
            open.push(id);
            let inner = unjelly_in(items.remove(1), res, open);
            open.pop();
            Value::Shared(id, Box::new(inner?))
        }
        "dereference" => {
            want(1)?;
            let id = int_of(&items[0], "dereference id")?;
            let id =
                u32::try_from(id).map_err(|_| JellyError("dereference id out of range".into()))?;
            Value::SharedRef(id)
        }
        "remote" => {
            want(1)?;
            res.remote(int_of(&items[0], "remote luid")?)?
        }
        "local" => {
            want(1)?;
            res.local(int_of(&items[0], "local luid")?)?
        }
        "cached" | "lcache" => return Err(insecure(format!("{tag}: Cacheable is not supported"))),
        t if t.contains('.') => {
            want(1)?;
            let state = unjelly_in(items.remove(0), res, open)?;
            res.copy(t, state)?
        }
        other => return Err(insecure(format!("type {other:?} is not allowed"))),
    })
}

/// Plain data: no PB objects, no copies.
struct Plain;

impl Resolve for Plain {
    fn remote(&mut self, _: i64) -> Result<Value, JellyError> {
        Err(insecure("a remote reference outside a connection"))
    }
    fn local(&mut self, _: i64) -> Result<Value, JellyError> {
        Err(insecure("a local reference outside a connection"))
    }
    fn copy(&mut self, t: &str, _: Value) -> Result<Value, JellyError> {
        Err(insecure(format!("copy type {t:?} outside a connection")))
    }
}

impl Register for Plain {
    fn local_object(&mut self, _: &LocalObject) -> Result<Item, JellyError> {
        Err(JellyError("an object outside a connection".into()))
    }
    fn remote_reference(&mut self, _: &RemoteReference) -> Item {
        tagged(
            "unpersistable",
            vec![unicode("a reference outside a connection")],
        )
    }
}

/// Encodes plain data (no objects) as jelly, outside any connection.
pub fn encode_value(v: &Value) -> Result<Item, JellyError> {
    jelly(v, &mut Plain)
}

/// Decodes plain data (no objects, no copies) from jelly, with PB's
/// security rules, outside any connection.
pub fn decode_value(item: Item) -> Result<Value, JellyError> {
    unjelly(item, &mut Plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::banana::to_bytes;

    struct NoObjects;
    impl Resolve for NoObjects {
        fn remote(&mut self, _: i64) -> Result<Value, JellyError> {
            Err(insecure("remote"))
        }
        fn local(&mut self, _: i64) -> Result<Value, JellyError> {
            Err(insecure("local"))
        }
        fn copy(&mut self, t: &str, state: Value) -> Result<Value, JellyError> {
            if t == "test.Point" {
                Ok(Value::Copy(t.into(), Box::new(state)))
            } else {
                Err(insecure(format!("unregistered copy type {t}")))
            }
        }
    }
    impl Register for NoObjects {
        fn local_object(&mut self, _: &LocalObject) -> Result<Item, JellyError> {
            Err(insecure("object"))
        }
        fn remote_reference(&mut self, _: &RemoteReference) -> Item {
            tagged("None", vec![])
        }
    }

    fn round_trip(v: &Value) -> Value {
        let item = jelly(v, &mut NoObjects).unwrap();
        unjelly(item, &mut NoObjects).unwrap()
    }

    #[test]
    fn every_basic_type_round_trips() {
        let values = vec![
            Value::None,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(-7),
            Value::BigInt(BigInt::from_i128(1 << 100)),
            Value::Float(3.25),
            Value::bytes(b"raw \x00 bytes"),
            Value::str("héllo"),
            Value::List(vec![1.into(), "two".into()]),
            Value::Tuple(vec![]),
            Value::Dict(vec![(Value::str("k"), Value::Int(1))]),
            Value::Set(vec![Value::Int(7)]),
            Value::FrozenSet(vec![Value::Int(8)]),
            Value::DateTime("2026 11 26 5 20 57 0".into()),
            Value::Date("2026 11 26".into()),
            Value::Time("5 20 57 0".into()),
            Value::TimeDelta("1 2 3".into()),
            Value::Decimal(Box::new(Value::Int(-12345)), -2),
            Value::Unpersistable("instance of class X deemed insecure".into()),
            Value::Copy("test.Point".into(), Box::new(Value::Dict(vec![]))),
        ];
        for v in values {
            assert_eq!(round_trip(&v), v, "{}", v.kind());
        }
    }

    #[test]
    fn the_spec_forms() {
        let b = |v: &Value| to_bytes(&jelly(v, &mut NoObjects).unwrap(), true);
        assert_eq!(
            b(&Value::Bool(true)),
            [
                &[0x02, 0x80, 0x07, 0x82][..],
                b"boolean",
                &[0x04, 0x82],
                b"true"
            ]
            .concat()
        );
        assert_eq!(
            b(&Value::Set(vec![Value::Int(7)])),
            [&[0x02, 0x80, 0x03, 0x82][..], b"set", &[0x07, 0x81]].concat()
        );
        // [x, x] with x = [1], and a self-containing list.
        let shared = Value::List(vec![
            Value::Shared(1, Box::new(Value::List(vec![Value::Int(1)]))),
            Value::SharedRef(1),
        ]);
        let item = jelly(&shared, &mut NoObjects).unwrap();
        assert_eq!(
            item,
            Item::List(vec![
                Item::bytes("list"),
                Item::List(vec![
                    Item::bytes("reference"),
                    Item::Int(1),
                    Item::List(vec![Item::bytes("list"), Item::Int(1)])
                ]),
                Item::List(vec![Item::bytes("dereference"), Item::Int(1)]),
            ])
        );
        assert_eq!(round_trip(&shared), shared);
        let cycle = Value::Shared(
            1,
            Box::new(Value::List(vec![Value::Int(1), Value::SharedRef(1)])),
        );
        assert_eq!(round_trip(&cycle), cycle);
        // Ids are renumbered per call.
        let renumbered = Value::Shared(9, Box::new(Value::List(vec![Value::SharedRef(9)])));
        assert_eq!(
            round_trip(&renumbered),
            Value::Shared(1, Box::new(Value::List(vec![Value::SharedRef(1)])))
        );
    }

    #[test]
    fn insecure_tags_are_refused() {
        for tag in [
            "class",
            "module",
            "function",
            "instance",
            "method",
            "os.system",
            "cached",
        ] {
            let item = Item::List(vec![Item::bytes(tag), Item::bytes("x")]);
            let e = unjelly(item, &mut NoObjects).unwrap_err();
            assert!(
                e.0.contains("InsecureJelly") || e.0.contains("items"),
                "{tag}: {e}"
            );
        }
        assert!(unjelly(Item::List(vec![]), &mut NoObjects).is_err());
        let bad_bool = Item::List(vec![Item::bytes("boolean"), Item::bytes("maybe")]);
        assert!(unjelly(bad_bool, &mut NoObjects).is_err());
    }
}
