//! Banana: Twisted's byte-level s-expressions, as a sans-IO codec
//! (`../shared/specs/pb-wire.md`, section 1).
//!
//! Every item is a prefix of base-128 digits (least significant first,
//! at most 64 of them) and a type byte; FLOAT alone puts its type byte
//! first. The decoder keeps Twisted's limits (a 64-byte prefix, strings
//! and lists of at most 640 KiB items) and adds two Twisted lacks: a
//! nesting depth and a size for one top-level item.

use std::fmt;

/// Type bytes.
const LIST: u8 = 0x80;
const INT: u8 = 0x81;
const STRING: u8 = 0x82;
const NEG: u8 = 0x83;
const FLOAT: u8 = 0x84;
const LONGINT: u8 = 0x85;
const LONGNEG: u8 = 0x86;
const VOCAB: u8 = 0x87;

/// The longest prefix Twisted accepts.
pub const MAX_PREFIX: usize = 64;
/// The longest string and the longest list Twisted accepts.
pub const SIZE_LIMIT: usize = 640 * 1024;
/// Default nesting limit (Twisted has none: a deep list exhausts its
/// stack).
pub const DEFAULT_MAX_DEPTH: usize = 100;
/// Default limit on the bytes of one top-level item.
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The "pb" dialect's vocabulary, id 1 first.
pub const VOCABULARY: [&str; 31] = [
    "None",
    "class",
    "dereference",
    "reference",
    "dictionary",
    "function",
    "instance",
    "list",
    "module",
    "persistent",
    "tuple",
    "unpersistable",
    "copy",
    "cache",
    "cached",
    "remote",
    "local",
    "lcache",
    "version",
    "login",
    "password",
    "challenge",
    "logged_in",
    "not_logged_in",
    "cachemessage",
    "message",
    "answer",
    "error",
    "decref",
    "decache",
    "uncache",
];

fn vocab_id(word: &[u8]) -> Option<usize> {
    VOCABULARY
        .iter()
        .position(|w| w.as_bytes() == word)
        .map(|i| i + 1)
}

/// An integer too large for `i64`: its sign and magnitude as base-128
/// digits, least significant first (as on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BigInt {
    /// Below zero.
    pub negative: bool,
    /// Base-128 digits, least significant first, no trailing zeros.
    pub digits: Vec<u8>,
}

impl BigInt {
    /// The value as an `i128`, if it fits.
    pub fn to_i128(&self) -> Option<i128> {
        let mut v: i128 = 0;
        for &d in self.digits.iter().rev() {
            v = v.checked_mul(128)?.checked_add(d as i128)?;
        }
        Some(if self.negative { -v } else { v })
    }

    /// The value as an `i64`, if it fits.
    pub fn to_i64(&self) -> Option<i64> {
        self.to_i128().and_then(|v| i64::try_from(v).ok())
    }

    /// The nearest `f64` (as Python's `float(n)`, for magnitudes it can
    /// hold; infinite beyond).
    pub fn to_f64(&self) -> f64 {
        let m = self
            .digits
            .iter()
            .rev()
            .fold(0.0f64, |acc, &d| acc * 128.0 + d as f64);
        if self.negative {
            -m
        } else {
            m
        }
    }

    /// The sum, of any size: Python's `int.__add__`.
    ///
    /// ```
    /// use braid_pb::banana::BigInt;
    /// let big = BigInt::from_i128(1 << 100);
    /// let sum = big.add(&BigInt::from_i128(-(1 << 100) + 5));
    /// assert_eq!(sum.to_i128(), Some(5));
    /// ```
    pub fn add(&self, other: &BigInt) -> BigInt {
        use std::cmp::Ordering;
        let (negative, digits) = if self.negative == other.negative {
            (self.negative, add_magnitudes(&self.digits, &other.digits))
        } else {
            match compare_magnitudes(&self.digits, &other.digits) {
                Ordering::Equal => (false, Vec::new()),
                Ordering::Greater => (self.negative, sub_magnitudes(&self.digits, &other.digits)),
                Ordering::Less => (other.negative, sub_magnitudes(&other.digits, &self.digits)),
            }
        };
        let mut b = BigInt { negative, digits };
        while b.digits.last() == Some(&0) {
            b.digits.pop();
        }
        if b.digits.is_empty() {
            b.negative = false;
        }
        b
    }

    /// From an `i128`.
    pub fn from_i128(v: i128) -> BigInt {
        let negative = v < 0;
        let mut m = v.unsigned_abs();
        let mut digits = Vec::new();
        while m > 0 {
            digits.push((m % 128) as u8);
            m /= 128;
        }
        BigInt { negative, digits }
    }
}

fn compare_magnitudes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

fn add_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0u16;
    for i in 0..a.len().max(b.len()) {
        let s = *a.get(i).unwrap_or(&0) as u16 + *b.get(i).unwrap_or(&0) as u16 + carry;
        out.push((s % 128) as u8);
        carry = s / 128;
    }
    if carry > 0 {
        out.push(carry as u8);
    }
    out
}

/// `a - b` for `a >= b`.
fn sub_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i16;
    for (i, &d) in a.iter().enumerate() {
        let mut v = d as i16 - *b.get(i).unwrap_or(&0) as i16 - borrow;
        borrow = 0;
        if v < 0 {
            v += 128;
            borrow = 1;
        }
        out.push(v as u8);
    }
    out
}

/// One banana item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A list of items.
    List(Vec<Item>),
    /// An integer that fits in `i64` (INT, NEG, or a small LONGINT).
    Int(i64),
    /// A larger integer (LONGINT, LONGNEG).
    Big(BigInt),
    /// A byte string (STRING, or VOCAB resolved to its word).
    Bytes(Vec<u8>),
    /// A float.
    Float(f64),
}

impl Item {
    /// A byte string item.
    pub fn bytes(b: impl AsRef<[u8]>) -> Item {
        Item::Bytes(b.as_ref().to_vec())
    }

    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Item::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Why input is not banana (every one closes a Twisted connection).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BananaError {
    /// A prefix longer than 64 bytes.
    PrefixTooLong,
    /// A string or list longer than 640 KiB items.
    TooLong(u64),
    /// Lists nested deeper than the limit.
    TooDeep(usize),
    /// One top-level item larger than the limit.
    MessageTooLarge(usize),
    /// A type byte that is not banana.
    BadType(u8),
    /// A VOCAB id outside the table, or VOCAB in the "none" dialect.
    BadVocab(u64),
    /// A prefix that overflows (more than 448 bits).
    Overflow,
}

impl fmt::Display for BananaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BananaError::PrefixTooLong => write!(f, "banana prefix longer than {MAX_PREFIX} bytes"),
            BananaError::TooLong(n) => {
                write!(f, "banana string or list of {n} items (limit {SIZE_LIMIT})")
            }
            BananaError::TooDeep(d) => write!(f, "banana lists nested deeper than {d}"),
            BananaError::MessageTooLarge(n) => write!(f, "banana message larger than {n} bytes"),
            BananaError::BadType(b) => write!(f, "not a banana type byte: {b:#04x}"),
            BananaError::BadVocab(id) => write!(f, "unknown banana vocabulary id {id}"),
            BananaError::Overflow => f.write_str("banana integer too large"),
        }
    }
}

impl std::error::Error for BananaError {}

/// Decodes a prefix into a u64 (for lengths, ids, and small integers).
fn prefix_u64(p: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for (i, &d) in p.iter().enumerate() {
        if d == 0 {
            continue;
        }
        let shift = 7 * i as u32;
        if shift >= 64 {
            return None;
        }
        let part = (d as u64).checked_shl(shift)?;
        if part >> shift != d as u64 {
            return None;
        }
        v = v.checked_add(part)?;
    }
    Some(v)
}

fn int_item(prefix: &[u8], negative: bool) -> Item {
    let mut digits = prefix.to_vec();
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let big = BigInt { negative, digits };
    match big.to_i128() {
        Some(v) if v >= i64::MIN as i128 && v <= i64::MAX as i128 => Item::Int(v as i64),
        _ => Item::Big(big),
    }
}

/// The sans-IO decoder: feed bytes, take items.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    stack: Vec<(usize, Vec<Item>)>,
    vocab: bool,
    max_depth: usize,
    max_message: usize,
    /// Bytes of the current top-level item consumed so far.
    in_message: usize,
    failed: Option<BananaError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder for the "none" dialect (no VOCAB) with the default limits.
    pub fn new() -> Self {
        Decoder {
            buf: Vec::new(),
            pos: 0,
            stack: Vec::new(),
            vocab: false,
            max_depth: DEFAULT_MAX_DEPTH,
            max_message: DEFAULT_MAX_MESSAGE,
            in_message: 0,
            failed: None,
        }
    }

    /// Accepts VOCAB items (the "pb" dialect) from now on.
    pub fn set_vocab(&mut self, on: bool) {
        self.vocab = on;
    }

    /// Sets the nesting and size limits.
    pub fn set_limits(&mut self, max_depth: usize, max_message: usize) {
        self.max_depth = max_depth;
        self.max_message = max_message;
    }

    /// Adds received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet part of a decoded item.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete top-level item, `Ok(None)` if more bytes are
    /// needed. After an error every call returns it again.
    pub fn next_item(&mut self) -> Result<Option<Item>, BananaError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.step() {
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
            ok => ok,
        }
    }

    fn step(&mut self) -> Result<Option<Item>, BananaError> {
        loop {
            let start = self.pos;
            let rest = &self.buf[start..];
            // The prefix.
            let Some(t) = rest.iter().position(|&b| b >= 0x80) else {
                if rest.len() > MAX_PREFIX {
                    return Err(BananaError::PrefixTooLong);
                }
                return Ok(None);
            };
            if t > MAX_PREFIX {
                return Err(BananaError::PrefixTooLong);
            }
            let prefix = &rest[..t];
            let ty = rest[t];
            let mut used = t + 1;
            let item = match ty {
                LIST => {
                    let n = prefix_u64(prefix).ok_or(BananaError::Overflow)?;
                    if n > SIZE_LIMIT as u64 {
                        return Err(BananaError::TooLong(n));
                    }
                    if self.stack.len() >= self.max_depth {
                        return Err(BananaError::TooDeep(self.max_depth));
                    }
                    self.consume(start, used)?;
                    let n = n as usize;
                    self.stack.push((n, Vec::with_capacity(n.min(64))));
                    if n == 0 {
                        let (_, items) = self.stack.pop().expect("just pushed");
                        Item::List(items)
                    } else {
                        continue;
                    }
                }
                INT => int_item(prefix, false),
                NEG => int_item(prefix, true),
                LONGINT | LONGNEG => int_item(prefix, ty == LONGNEG),
                STRING => {
                    let n = prefix_u64(prefix).ok_or(BananaError::Overflow)?;
                    if n > SIZE_LIMIT as u64 {
                        return Err(BananaError::TooLong(n));
                    }
                    let n = n as usize;
                    if rest.len() < used + n {
                        self.check_size(start, used + n)?;
                        return Ok(None);
                    }
                    let s = rest[used..used + n].to_vec();
                    used += n;
                    Item::Bytes(s)
                }
                FLOAT => {
                    if rest.len() < used + 8 {
                        return Ok(None);
                    }
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&rest[used..used + 8]);
                    used += 8;
                    Item::Float(f64::from_be_bytes(b))
                }
                VOCAB => {
                    let id = prefix_u64(prefix).ok_or(BananaError::Overflow)?;
                    if !self.vocab || id == 0 || id as usize > VOCABULARY.len() {
                        return Err(BananaError::BadVocab(id));
                    }
                    Item::bytes(VOCABULARY[id as usize - 1])
                }
                other => return Err(BananaError::BadType(other)),
            };
            if !matches!(item, Item::List(_)) {
                self.consume(start, used)?;
            }
            // Attach the item to the list being built, closing full lists.
            let mut item = item;
            loop {
                let Some((want, items)) = self.stack.last_mut() else {
                    self.in_message = 0;
                    return Ok(Some(item));
                };
                items.push(item);
                if items.len() < *want {
                    break;
                }
                let (_, done) = self.stack.pop().expect("non-empty");
                item = Item::List(done);
            }
        }
    }

    fn check_size(&self, _start: usize, more: usize) -> Result<(), BananaError> {
        if self.in_message + more > self.max_message {
            return Err(BananaError::MessageTooLarge(self.max_message));
        }
        Ok(())
    }

    fn consume(&mut self, start: usize, used: usize) -> Result<(), BananaError> {
        self.check_size(start, used)?;
        self.in_message += used;
        self.pos = start + used;
        Ok(())
    }
}

fn put_prefix(out: &mut Vec<u8>, mut v: u128) {
    if v == 0 {
        out.push(0);
        return;
    }
    while v > 0 {
        out.push((v % 128) as u8);
        v /= 128;
    }
}

/// Encodes `item` onto `out`; with `vocab`, byte strings that are
/// vocabulary words go out as VOCAB (the "pb" dialect).
pub fn encode(item: &Item, vocab: bool, out: &mut Vec<u8>) {
    match item {
        Item::List(items) => {
            put_prefix(out, items.len() as u128);
            out.push(LIST);
            for i in items {
                encode(i, vocab, out);
            }
        }
        Item::Int(v) => {
            let v = *v as i128;
            let (mag, ty) = if v >= 0 {
                (v as u128, if v < 1 << 31 { INT } else { LONGINT })
            } else {
                (
                    v.unsigned_abs(),
                    if v >= -(1 << 31) { NEG } else { LONGNEG },
                )
            };
            put_prefix(out, mag);
            out.push(ty);
        }
        Item::Big(b) => {
            if b.digits.is_empty() {
                out.push(0);
            } else {
                out.extend_from_slice(&b.digits);
            }
            out.push(if b.negative { LONGNEG } else { LONGINT });
        }
        Item::Bytes(s) => {
            if vocab {
                if let Some(id) = vocab_id(s) {
                    put_prefix(out, id as u128);
                    out.push(VOCAB);
                    return;
                }
            }
            put_prefix(out, s.len() as u128);
            out.push(STRING);
            out.extend_from_slice(s);
        }
        Item::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.to_be_bytes());
        }
    }
}

/// Encodes one item into a new buffer.
pub fn to_bytes(item: &Item, vocab: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode(item, vocab, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8], vocab: bool) -> Result<Vec<Item>, BananaError> {
        let mut d = Decoder::new();
        d.set_vocab(vocab);
        d.feed(bytes);
        let mut out = Vec::new();
        while let Some(i) = d.next_item()? {
            out.push(i);
        }
        Ok(out)
    }

    #[test]
    fn the_spec_examples() {
        assert_eq!(to_bytes(&Item::Int(300), false), [0x2c, 0x02, 0x81]);
        assert_eq!(to_bytes(&Item::Int(-300), false), [0x2c, 0x02, 0x83]);
        assert_eq!(
            to_bytes(&Item::Int(1 << 40), false),
            [0, 0, 0, 0, 0, 0x20, 0x85]
        );
        assert_eq!(
            to_bytes(&Item::Float(1.5), false),
            [0x84, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(to_bytes(&Item::Int(0), false), [0x00, 0x81]);
        let offer = Item::List(vec![Item::bytes("pb"), Item::bytes("none")]);
        assert_eq!(
            to_bytes(&offer, false),
            [0x02, 0x80, 0x02, 0x82, 0x70, 0x62, 0x04, 0x82, 0x6e, 0x6f, 0x6e, 0x65]
        );
        let version = Item::List(vec![Item::bytes("version"), Item::Int(6)]);
        assert_eq!(
            to_bytes(&version, true),
            [0x02, 0x80, 0x13, 0x87, 0x06, 0x81]
        );
        // Vocabulary words inside user data go out as VOCAB too.
        assert_eq!(to_bytes(&Item::bytes("copy"), true), [0x0d, 0x87]);
        assert_eq!(dec(&[0x0d, 0x87], true).unwrap(), [Item::bytes("copy")]);
    }

    #[test]
    fn integer_size_classes_round_trip() {
        let edges = [
            0i64,
            1,
            127,
            128,
            (1 << 31) - 1,
            1 << 31,
            -1,
            -(1 << 31),
            -(1 << 31) - 1,
            i64::MAX,
            i64::MIN,
        ];
        for v in edges {
            let b = to_bytes(&Item::Int(v), false);
            let ty = *b.last().unwrap();
            let want = match v {
                0..=0x7fff_ffff => INT,
                v if v >= 0 => LONGINT,
                v if v >= -(1 << 31) => NEG,
                _ => LONGNEG,
            };
            assert_eq!(ty, want, "{v}");
            assert_eq!(dec(&b, false).unwrap(), [Item::Int(v)], "{v}");
        }
        // Beyond i64: kept exactly.
        let huge = BigInt::from_i128(i128::MAX);
        let b = to_bytes(&Item::Big(huge.clone()), false);
        assert_eq!(dec(&b, false).unwrap(), [Item::Big(huge)]);
        // 2^447 (64 digits) decodes; the empty prefix is 0.
        let mut p = vec![0u8; 63];
        p.push(1);
        p.push(LONGINT);
        assert!(matches!(dec(&p, false).unwrap()[0], Item::Big(_)));
        assert_eq!(dec(&[INT], false).unwrap(), [Item::Int(0)]);
    }

    #[test]
    fn split_input_gives_the_same_items() {
        let msg = Item::List(vec![
            Item::bytes("message"),
            Item::Int(1),
            Item::bytes("root"),
            Item::bytes("echo"),
            Item::Int(1),
            Item::List(vec![
                Item::bytes("tuple"),
                Item::Float(-2.25),
                Item::Int(-5_000_000_000),
            ]),
            Item::List(vec![Item::bytes("dictionary")]),
            Item::List(vec![]),
        ]);
        for vocab in [false, true] {
            let bytes = to_bytes(&msg, vocab);
            let mut d = Decoder::new();
            d.set_vocab(vocab);
            let mut got = Vec::new();
            for b in &bytes {
                d.feed(std::slice::from_ref(b));
                while let Some(i) = d.next_item().unwrap() {
                    got.push(i);
                }
            }
            assert_eq!(got, std::slice::from_ref(&msg));
            assert_eq!(dec(&bytes, vocab).unwrap(), std::slice::from_ref(&msg));
        }
    }

    #[test]
    fn limits_and_bad_input_are_errors() {
        // A 65-byte prefix is an error even before its type byte arrives.
        let mut d = Decoder::new();
        d.feed(&[1u8; 65]);
        assert_eq!(d.next_item(), Err(BananaError::PrefixTooLong));
        // 640 KiB + 1.
        let mut b = Vec::new();
        put_prefix(&mut b, SIZE_LIMIT as u128 + 1);
        b.push(STRING);
        assert_eq!(
            dec(&b, false),
            Err(BananaError::TooLong(SIZE_LIMIT as u64 + 1))
        );
        b.pop();
        b.push(LIST);
        assert_eq!(
            dec(&b, false),
            Err(BananaError::TooLong(SIZE_LIMIT as u64 + 1))
        );
        // Deep nesting.
        let deep: Vec<u8> = std::iter::repeat_n([0x01, LIST], 1000).flatten().collect();
        assert_eq!(
            dec(&deep, false),
            Err(BananaError::TooDeep(DEFAULT_MAX_DEPTH))
        );
        // Unknown type bytes and vocabulary.
        assert_eq!(dec(&[0x88], false), Err(BananaError::BadType(0x88)));
        assert_eq!(dec(&[0x20, VOCAB], true), Err(BananaError::BadVocab(32)));
        assert_eq!(dec(&[0x01, VOCAB], false), Err(BananaError::BadVocab(1)));
        // Too large a message, while it is still arriving.
        let mut d = Decoder::new();
        d.set_limits(10, 1000);
        d.feed(&[0x10, LIST]);
        for _ in 0..16 {
            d.feed(&[0x7f, 0x07, STRING]);
        }
        assert!(matches!(
            d.next_item(),
            Err(BananaError::MessageTooLarge(1000))
        ));
        // After an error the decoder stays failed.
        assert!(d.next_item().is_err());
    }
}
