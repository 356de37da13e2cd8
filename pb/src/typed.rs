//! Typed Rust values to and from [`Value`] with serde, for arguments and
//! results.
//!
//! | Rust | Value (Python) |
//! |---|---|
//! | `bool`, integers, floats | `Bool`, `Int` (`BigInt` past `i64`), `Float` |
//! | `char`, `&str`, `String` | `Str` |
//! | bytes (`serde_bytes`, `Vec<u8>` via `serialize_bytes`) | `Bytes` |
//! | `Option`: `None` / `Some(x)` | `None` / `x` |
//! | sequences / tuples | `List` / `Tuple` |
//! | maps, structs | `Dict` (struct fields as `str` keys) |
//! | unit enum variants | `Str` of the variant name |
//! | other enum variants | `Dict` of one entry: name to content |
//!
//! Decoding is lenient where Python is: `bytes` holding UTF-8 decode as a
//! string, any sequence (list, tuple, set) as a Rust sequence.
//!
//! ```
//! use braid_pb::{from_value, to_value, Value};
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Point { x: i32, y: i32 }
//! let v = to_value(&Point { x: 1, y: 2 }).unwrap();
//! assert_eq!(v, Value::Dict(vec![(Value::str("x"), 1.into()), (Value::str("y"), 2.into())]));
//! assert_eq!(from_value::<Point>(v).unwrap(), Point { x: 1, y: 2 });
//! ```

use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

use super::banana::BigInt;
use super::{PbError, Value};

/// Converts a Rust value to a [`Value`].
pub fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, PbError> {
    v.serialize(Ser)
        .map_err(|e| PbError::new("builtins.TypeError", e.0))
}

/// Converts a [`Value`] to a Rust value (a `TypeError` if it does not fit).
pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, PbError> {
    T::deserialize(De(v)).map_err(|e| PbError::new("builtins.TypeError", e.0))
}

/// A conversion failure (reported as a `TypeError` [`PbError`]).
#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

struct Ser;

/// Collects the items of a sequence, tuple or map.
struct Collect {
    items: Vec<Value>,
    pairs: Vec<(Value, Value)>,
    key: Option<Value>,
    kind: Kind,
    variant: Option<&'static str>,
}

#[derive(Clone, Copy)]
enum Kind {
    List,
    Tuple,
    Dict,
}

impl Collect {
    fn new(kind: Kind, variant: Option<&'static str>) -> Collect {
        Collect {
            items: Vec::new(),
            pairs: Vec::new(),
            key: None,
            kind,
            variant,
        }
    }

    fn finish(self) -> Result<Value, Error> {
        let v = match self.kind {
            Kind::List => Value::List(self.items),
            Kind::Tuple => Value::Tuple(self.items),
            Kind::Dict => Value::Dict(self.pairs),
        };
        Ok(match self.variant {
            Some(name) => Value::Dict(vec![(Value::str(name), v)]),
            None => v,
        })
    }
}

impl ser::Serializer for Ser {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = Collect;
    type SerializeTuple = Collect;
    type SerializeTupleStruct = Collect;
    type SerializeTupleVariant = Collect;
    type SerializeMap = Collect;
    type SerializeStruct = Collect;
    type SerializeStructVariant = Collect;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        Ok(Value::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, Error> {
        Ok(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::BigInt(BigInt::from_i128(v)),
        })
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        self.serialize_i128(v.into())
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        Ok(Value::str(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        Ok(Value::bytes(v))
    }
    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::None)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, Error> {
        Ok(Value::None)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Value, Error> {
        Ok(Value::str(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Value, Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Value, Error> {
        Ok(Value::Dict(vec![(Value::str(variant), v.serialize(Ser)?)]))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Collect, Error> {
        Ok(Collect::new(Kind::List, None))
    }
    fn serialize_tuple(self, _: usize) -> Result<Collect, Error> {
        Ok(Collect::new(Kind::Tuple, None))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Collect, Error> {
        Ok(Collect::new(Kind::Tuple, None))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Collect, Error> {
        Ok(Collect::new(Kind::Tuple, Some(variant)))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Collect, Error> {
        Ok(Collect::new(Kind::Dict, None))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Collect, Error> {
        Ok(Collect::new(Kind::Dict, None))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Collect, Error> {
        Ok(Collect::new(Kind::Dict, Some(variant)))
    }
}

impl ser::SerializeSeq for Collect {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.items.push(v.serialize(Ser)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

impl ser::SerializeTuple for Collect {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Collect {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Collect {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

impl ser::SerializeMap for Collect {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
        self.key = Some(k.serialize(Ser)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let k = self
            .key
            .take()
            .ok_or_else(|| Error("a map value without a key".into()))?;
        self.pairs.push((k, v.serialize(Ser)?));
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for Collect {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.pairs.push((Value::str(name), v.serialize(Ser)?));
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Collect {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(self, name, v)
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

struct De(Value);

fn unexpected(v: &Value, want: &str) -> Error {
    Error(format!("expected {want}, got {}", v.kind()))
}

impl De {
    /// Looks through a shared-reference wrapper.
    fn plain(self) -> Result<Value, Error> {
        match self.0 {
            Value::Shared(_, inner) => De(*inner).plain(),
            Value::SharedRef(id) => Err(Error(format!(
                "a shared reference ({id}) cannot become a plain Rust value"
            ))),
            v => Ok(v),
        }
    }
}

struct Seq(std::vec::IntoIter<Value>);

impl<'de> de::SeqAccess<'de> for Seq {
    type Error = Error;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|v| seed.deserialize(De(v))).transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map {
    pairs: std::vec::IntoIter<(Value, Value)>,
    value: Option<Value>,
}

impl<'de> de::MapAccess<'de> for Map {
    type Error = Error;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.pairs.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(De(k)).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let v = self
            .value
            .take()
            .ok_or_else(|| Error("a value without a key".into()))?;
        seed.deserialize(De(v))
    }
}

struct Enum {
    variant: String,
    content: Option<Value>,
}

impl<'de> de::EnumAccess<'de> for Enum {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<V: de::DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let v = seed.deserialize(self.variant.clone().into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Enum {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        match self.content {
            None | Some(Value::None) => Ok(()),
            Some(v) => Err(unexpected(&v, "a unit variant")),
        }
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(De(self.content.unwrap_or(Value::None)))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(De(self.content.unwrap_or(Value::None)), visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(De(self.content.unwrap_or(Value::None)), visitor)
    }
}

impl<'de> de::Deserializer<'de> for De {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.plain()? {
            Value::None => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::BigInt(b) => match b.to_i128() {
                Some(i) if u64::try_from(i).is_ok() => visitor.visit_u64(i as u64),
                Some(i) if i >= 0 => visitor.visit_u128(i as u128),
                Some(i) => visitor.visit_i128(i),
                None => Err(Error("an integer beyond 128 bits".into())),
            },
            Value::Float(f) => visitor.visit_f64(f),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => match String::from_utf8(b) {
                Ok(s) => visitor.visit_string(s),
                Err(e) => visitor.visit_byte_buf(e.into_bytes()),
            },
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => {
                visitor.visit_seq(Seq(v.into_iter()))
            }
            Value::Dict(pairs) => visitor.visit_map(Map {
                pairs: pairs.into_iter(),
                value: None,
            }),
            Value::DateTime(s) | Value::Date(s) | Value::Time(s) | Value::TimeDelta(s) => {
                visitor.visit_string(s)
            }
            other => Err(unexpected(&other, "plain data")),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.plain()? {
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::Str(s) => visitor.visit_byte_buf(s.into_bytes()),
            other => De(other).deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.plain()? {
            Value::None => visitor.visit_none(),
            v => visitor.visit_some(De(v)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.plain()? {
            Value::Str(variant) => visitor.visit_enum(Enum {
                variant,
                content: None,
            }),
            Value::Dict(mut pairs) if pairs.len() == 1 => {
                let (k, v) = pairs.pop().expect("one");
                let variant = match k {
                    Value::Str(s) => s,
                    other => return Err(unexpected(&other, "a variant name")),
                };
                visitor.visit_enum(Enum {
                    variant,
                    content: Some(v),
                })
            }
            other => Err(unexpected(&other, "an enum")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: u32, h: u32 },
        Pair(i8, i8),
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Everything {
        flag: bool,
        small: i8,
        big: u64,
        huge: i128,
        ratio: f32,
        name: String,
        letter: char,
        maybe: Option<u16>,
        nothing: Option<u16>,
        list: Vec<i32>,
        pair: (String, bool),
        map: BTreeMap<String, i64>,
        shapes: Vec<Shape>,
        unit: (),
    }

    #[test]
    fn everything_round_trips_through_value_and_jelly() {
        let e = Everything {
            flag: true,
            small: -3,
            big: u64::MAX,
            huge: -(1 << 100),
            ratio: 0.5,
            name: "braid".into(),
            letter: 'é',
            maybe: Some(7),
            nothing: None,
            list: vec![1, -2, 3],
            pair: ("x".into(), false),
            map: [("a".to_string(), 1)].into_iter().collect(),
            shapes: vec![
                Shape::Dot,
                Shape::Circle(1.5),
                Shape::Rect { w: 2, h: 3 },
                Shape::Pair(-1, 1),
            ],
            unit: (),
        };
        let v = to_value(&e).unwrap();
        // Through the wire form as well.
        let item = super::super::jelly::encode_value(&v).unwrap();
        let back = super::super::jelly::decode_value(item).unwrap();
        assert_eq!(back, v);
        assert_eq!(from_value::<Everything>(back).unwrap(), e);
    }

    #[test]
    fn python_shapes_decode_and_mismatches_are_type_errors() {
        // Python bytes holding text decode as a String; a tuple as a Vec.
        assert_eq!(
            from_value::<String>(Value::bytes("alice")).unwrap(),
            "alice"
        );
        assert_eq!(
            from_value::<Vec<i64>>(Value::Tuple(vec![1.into(), 2.into()])).unwrap(),
            [1, 2]
        );
        let e = from_value::<i64>(Value::str("seven")).unwrap_err();
        assert_eq!(e.type_name, "builtins.TypeError");
        assert!(from_value::<u8>(Value::Int(300)).is_err());
        let shared = Value::Shared(1, Box::new(Value::List(vec![1.into()])));
        assert_eq!(from_value::<Vec<i32>>(shared).unwrap(), [1]);
        assert!(from_value::<Vec<i32>>(Value::SharedRef(1)).is_err());
    }
}
