//! Framing: turning a byte stream into messages. Twisted's
//! `protocols.basic`.
//!
//! Each framing is a sans-IO decoder (bytes in, messages out, nothing
//! else) plus a [`Protocol`](crate::Protocol) adapter that feeds it and
//! calls your handler. Every decoder has a hard cap on what it buffers and
//! reports a [`FramingError`] on bad input instead of growing or guessing.
//!
//! | framing | adapter | handler |
//! |---|---|---|
//! | lines (`\r\n` or any delimiter), with raw mode | [`LineReceiver`] | [`LineHandler`] |
//! | netstrings (`5:hello,`) | [`NetstringReceiver`] | [`StringHandler`] |
//! | 8/16/32-bit big-endian length prefixes | [`PrefixedReceiver`] | [`StringHandler`] |

mod line;
mod strings;

use std::error::Error;
use std::fmt;

pub use line::{LineContext, LineDecoder, LineHandler, LineReceiver};
pub use strings::{
    NetstringDecoder, NetstringReceiver, Prefix, PrefixedDecoder, PrefixedReceiver, StringContext,
    StringHandler,
};

/// What was wrong with the framing of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FramingErrorKind {
    /// A line grew past the maximum length without a delimiter.
    LineTooLong,
    /// A message's declared length is over the maximum.
    TooLong,
    /// A netstring length that is not a decimal number, or has leading zeros.
    BadLength,
    /// A netstring that does not end with `,`.
    MissingComma,
}

/// Bad framing in the input, or a message too long to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramingError {
    kind: FramingErrorKind,
    length: usize,
    max: usize,
}

impl FramingError {
    pub(crate) fn new(kind: FramingErrorKind, length: usize, max: usize) -> Self {
        FramingError { kind, length, max }
    }

    /// What was wrong.
    pub fn kind(&self) -> FramingErrorKind {
        self.kind
    }

    /// The offending length (what was buffered or declared), if known.
    pub fn length(&self) -> usize {
        self.length
    }

    /// The maximum that applied.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FramingErrorKind::LineTooLong => {
                write!(
                    f,
                    "line longer than {} bytes ({} buffered)",
                    self.max, self.length
                )
            }
            FramingErrorKind::TooLong => write!(
                f,
                "message of {} bytes exceeds the maximum of {}",
                self.length, self.max
            ),
            FramingErrorKind::BadLength => f.write_str("malformed netstring length"),
            FramingErrorKind::MissingComma => f.write_str("netstring not terminated by ','"),
        }
    }
}

impl Error for FramingError {}

/// A growable input buffer with a consumed prefix, compacted lazily so that
/// decoding many small messages does not shift bytes for each one.
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    data: Vec<u8>,
    start: usize,
}

impl InBuf {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.data.len() {
            self.data.drain(..self.start);
            self.start = 0;
        }
        self.data.extend_from_slice(bytes);
    }
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data[self.start..]
    }
    pub(crate) fn len(&self) -> usize {
        self.data.len() - self.start
    }
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.data.len() {
            self.clear();
        }
    }
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let rest = self.bytes().to_vec();
        self.clear();
        rest
    }
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.start = 0;
        if self.data.capacity() > 64 * 1024 {
            self.data = Vec::new(); // give back a burst's memory
        }
    }
}
