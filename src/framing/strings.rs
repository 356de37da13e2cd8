//! Message framings: netstrings and length prefixes (Twisted's
//! `NetstringReceiver` and `Int8/16/32StringReceiver`).

use std::fmt;

use super::{FramingError, FramingErrorKind, InBuf};
use crate::error::CloseReason;
use crate::protocol::Protocol;
use crate::transport::Transport;

/// Decodes netstrings (`5:hello,`) of at most `max_length` bytes.
///
/// # Examples
///
/// ```
/// use braid::framing::NetstringDecoder;
///
/// let mut d = NetstringDecoder::new(1000);
/// d.push(b"5:hello,0:,");
/// assert_eq!(d.next_string().unwrap().unwrap(), b"hello");
/// assert_eq!(d.next_string().unwrap().unwrap(), b"");
/// assert!(d.next_string().is_none());
/// ```
#[derive(Debug)]
pub struct NetstringDecoder {
    buf: InBuf,
    max_length: usize,
    failed: Option<FramingError>,
}

impl NetstringDecoder {
    /// A decoder for netstrings of at most `max_length` bytes.
    pub fn new(max_length: usize) -> Self {
        NetstringDecoder {
            buf: InBuf::default(),
            max_length,
            failed: None,
        }
    }

    /// Adds input (ignored once the stream is broken).
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.push(data);
        }
    }

    /// The next complete string; `None` until more input arrives. A
    /// framing error breaks the stream for good: there is no way to find
    /// the next message after a bad length, so the error repeats.
    pub fn next_string(&mut self) -> Option<Result<&[u8], FramingError>> {
        if let Some(e) = &self.failed {
            return Some(Err(e.clone()));
        }
        let max_digits = self.max_length.max(1).ilog10() as usize + 1;
        let bytes = self.buf.bytes();
        let colon = bytes.iter().take(max_digits + 1).position(|&b| b == b':');
        let Some(colon) = colon else {
            if bytes.len() > max_digits || bytes.iter().any(|b| !b.is_ascii_digit()) {
                return Some(Err(self.fail(FramingErrorKind::BadLength, bytes.len())));
            }
            return None;
        };
        let digits = &bytes[..colon];
        if digits.is_empty()
            || !digits.iter().all(u8::is_ascii_digit)
            || (digits.len() > 1 && digits[0] == b'0')
        {
            return Some(Err(self.fail(FramingErrorKind::BadLength, colon)));
        }
        let len: usize = digits.iter().fold(0usize, |n, d| {
            n.saturating_mul(10).saturating_add((d - b'0') as usize)
        });
        if len > self.max_length {
            return Some(Err(self.fail(FramingErrorKind::TooLong, len)));
        }
        let total = colon + 1 + len + 1;
        if bytes.len() < total {
            return None;
        }
        if bytes[total - 1] != b',' {
            return Some(Err(self.fail(FramingErrorKind::MissingComma, len)));
        }
        let start = self.buf.start + colon + 1;
        self.buf.start += total;
        Some(Ok(&self.buf.data[start..start + len]))
    }

    fn fail(&mut self, kind: FramingErrorKind, length: usize) -> FramingError {
        let e = FramingError::new(kind, length, self.max_length);
        self.failed = Some(e.clone());
        self.buf.clear();
        e
    }

    /// Encodes `data` as a netstring.
    pub fn encode(data: &[u8]) -> Vec<u8> {
        let mut out = format!("{}:", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.push(b',');
        out
    }
}

/// The width of a length prefix (big-endian, as Twisted's `!B`, `!H`, `!I`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Prefix {
    /// One byte: messages up to 255 bytes (Twisted's `Int8StringReceiver`).
    U8,
    /// Two bytes: up to 65,535 (`Int16StringReceiver`).
    U16,
    /// Four bytes: up to 4 GiB, capped by the maximum length
    /// (`Int32StringReceiver`).
    U32,
}

impl Prefix {
    /// Bytes of prefix.
    pub fn width(self) -> usize {
        match self {
            Prefix::U8 => 1,
            Prefix::U16 => 2,
            Prefix::U32 => 4,
        }
    }

    /// The longest message the prefix can express.
    pub fn limit(self) -> usize {
        match self {
            Prefix::U8 => u8::MAX as usize,
            Prefix::U16 => u16::MAX as usize,
            Prefix::U32 => u32::MAX as usize,
        }
    }
}

/// Decodes length-prefixed messages of at most `max_length` bytes.
///
/// # Examples
///
/// ```
/// use braid::framing::{Prefix, PrefixedDecoder};
///
/// let mut d = PrefixedDecoder::new(Prefix::U16, 1000);
/// d.push(&[0, 3, b'a', b'b', b'c', 0]);
/// assert_eq!(d.next_string().unwrap().unwrap(), b"abc");
/// assert!(d.next_string().is_none());
/// ```
#[derive(Debug)]
pub struct PrefixedDecoder {
    buf: InBuf,
    prefix: Prefix,
    max_length: usize,
    failed: Option<FramingError>,
}

impl PrefixedDecoder {
    /// A decoder for `prefix`-framed messages of at most `max_length` bytes.
    pub fn new(prefix: Prefix, max_length: usize) -> Self {
        PrefixedDecoder {
            buf: InBuf::default(),
            prefix,
            max_length: max_length.min(prefix.limit()),
            failed: None,
        }
    }

    /// Adds input (ignored once the stream is broken).
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.push(data);
        }
    }

    /// The next complete message; `None` until more input arrives. A
    /// message over the maximum breaks the stream for good.
    pub fn next_string(&mut self) -> Option<Result<&[u8], FramingError>> {
        if let Some(e) = &self.failed {
            return Some(Err(e.clone()));
        }
        let w = self.prefix.width();
        let bytes = self.buf.bytes();
        if bytes.len() < w {
            return None;
        }
        let len = bytes[..w]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | b as usize);
        if len > self.max_length {
            let e = FramingError::new(FramingErrorKind::TooLong, len, self.max_length);
            self.failed = Some(e.clone());
            self.buf.clear();
            return Some(Err(e));
        }
        if bytes.len() < w + len {
            return None;
        }
        let start = self.buf.start + w;
        self.buf.start += w + len;
        Some(Ok(&self.buf.data[start..start + len]))
    }

    /// Encodes `data` with this decoder's prefix.
    ///
    /// # Errors
    ///
    /// [`FramingErrorKind::TooLong`] if `data` is over the maximum length.
    pub fn encode(&self, data: &[u8]) -> Result<Vec<u8>, FramingError> {
        encode_prefixed(self.prefix, self.max_length, data)
    }
}

fn encode_prefixed(prefix: Prefix, max: usize, data: &[u8]) -> Result<Vec<u8>, FramingError> {
    if data.len() > max {
        return Err(FramingError::new(
            FramingErrorKind::TooLong,
            data.len(),
            max,
        ));
    }
    let w = prefix.width();
    let mut out = Vec::with_capacity(w + data.len());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes()[4 - w..]);
    out.extend_from_slice(data);
    Ok(out)
}

#[derive(Clone, Copy, Debug)]
enum Encoding {
    Netstring,
    Prefixed(Prefix),
}

/// What a [`StringHandler`] can do from its callbacks.
pub struct StringContext<'a> {
    transport: &'a Transport,
    encoding: Encoding,
    max_length: usize,
}

impl StringContext<'_> {
    /// The connection's transport.
    pub fn transport(&self) -> &Transport {
        self.transport
    }

    /// Frames and writes one message.
    ///
    /// # Errors
    ///
    /// [`FramingErrorKind::TooLong`] if `data` is over the maximum length;
    /// nothing is written.
    #[doc(alias = "sendString")]
    pub fn send_string(&self, data: &[u8]) -> Result<(), FramingError> {
        if data.len() > self.max_length {
            return Err(FramingError::new(
                FramingErrorKind::TooLong,
                data.len(),
                self.max_length,
            ));
        }
        match self.encoding {
            Encoding::Netstring => {
                let head = format!("{}:", data.len());
                self.transport
                    .write_sequence(&[head.as_bytes(), data, b","]);
            }
            Encoding::Prefixed(p) => {
                let head = (data.len() as u32).to_be_bytes();
                self.transport
                    .write_sequence(&[&head[4 - p.width()..], data]);
            }
        }
        Ok(())
    }
}

impl fmt::Debug for StringContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StringContext")
            .field("encoding", &self.encoding)
            .finish()
    }
}

/// The application side of a [`NetstringReceiver`] or [`PrefixedReceiver`].
pub trait StringHandler: 'static {
    /// The connection is up.
    fn connection_made(&mut self, ctx: &StringContext<'_>) {
        let _ = ctx;
    }
    /// A complete message arrived.
    #[doc(alias = "stringReceived")]
    fn string_received(&mut self, ctx: &StringContext<'_>, data: &[u8]);
    /// The input's framing is broken (bad length, too long, no comma).
    /// Nothing more can be decoded from this connection; the default logs
    /// the error and closes it.
    fn framing_error(&mut self, ctx: &StringContext<'_>, error: FramingError) {
        tracing::warn!(peer = %ctx.transport().peer_addr(), %error, "closing connection");
        ctx.transport().lose_connection();
    }
    /// The connection is gone.
    fn connection_lost(&mut self, reason: &CloseReason) {
        let _ = reason;
    }
}

macro_rules! string_receiver {
    ($(#[$doc:meta])* $name:ident, $decoder:ident, $next:ident) => {
        $(#[$doc])*
        pub struct $name<H> {
            handler: H,
            decoder: $decoder,
            encoding: Encoding,
            max_length: usize,
            broken: bool,
        }

        impl<H> $name<H> {
            /// The handler.
            pub fn handler(&self) -> &H {
                &self.handler
            }

            /// The handler, mutably.
            pub fn handler_mut(&mut self) -> &mut H {
                &mut self.handler
            }
        }

        impl<H: StringHandler> Protocol for $name<H> {
            fn connection_made(&mut self, transport: &Transport) {
                let ctx = StringContext { transport, encoding: self.encoding, max_length: self.max_length };
                self.handler.connection_made(&ctx);
            }

            fn data_received(&mut self, transport: &Transport, data: &[u8]) {
                if self.broken || transport.is_disconnecting() {
                    return;
                }
                self.decoder.push(data);
                let ctx = StringContext { transport, encoding: self.encoding, max_length: self.max_length };
                while !transport.is_disconnecting() {
                    match self.decoder.$next() {
                        None => break,
                        Some(Ok(msg)) => self.handler.string_received(&ctx, msg),
                        Some(Err(e)) => {
                            self.broken = true;
                            self.handler.framing_error(&ctx, e);
                            break;
                        }
                    }
                }
            }

            fn connection_lost(&mut self, reason: &CloseReason) {
                self.handler.connection_lost(reason);
            }
        }

        impl<H> fmt::Debug for $name<H> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("decoder", &self.decoder).finish()
            }
        }
    };
}

string_receiver!(
    /// A protocol that delivers netstrings to a [`StringHandler`]: Twisted's
    /// `NetstringReceiver` (default maximum 99,999 bytes).
    NetstringReceiver, NetstringDecoder, next_string
);

string_receiver!(
    /// A protocol that delivers length-prefixed messages to a
    /// [`StringHandler`]: Twisted's `Int8/16/32StringReceiver`.
    ///
    /// # Examples
    ///
    /// ```
    /// use braid::framing::{Prefix, PrefixedReceiver, StringContext, StringHandler};
    /// use braid::testing::StringTransport;
    /// use braid::Protocol;
    ///
    /// struct Echo;
    /// impl StringHandler for Echo {
    ///     fn string_received(&mut self, ctx: &StringContext<'_>, data: &[u8]) {
    ///         ctx.send_string(data).unwrap();
    ///     }
    /// }
    ///
    /// let t = StringTransport::new();
    /// let mut p = PrefixedReceiver::new(Echo, Prefix::U32, 1 << 20);
    /// p.data_received(&t.transport(), &[0, 0, 0, 2, b'h', b'i']);
    /// assert_eq!(t.take(), [0, 0, 0, 2, b'h', b'i']);
    /// ```
    PrefixedReceiver, PrefixedDecoder, next_string
);

impl<H: StringHandler> NetstringReceiver<H> {
    /// Netstrings of at most 99,999 bytes.
    pub fn new(handler: H) -> Self {
        Self::with_max_length(handler, 99_999)
    }

    /// Netstrings of at most `max_length` bytes.
    pub fn with_max_length(handler: H, max_length: usize) -> Self {
        NetstringReceiver {
            handler,
            decoder: NetstringDecoder::new(max_length),
            encoding: Encoding::Netstring,
            max_length,
            broken: false,
        }
    }
}

impl<H: StringHandler> PrefixedReceiver<H> {
    /// Messages with a `prefix`-wide length, of at most `max_length` bytes
    /// (and at most what the prefix can express).
    pub fn new(handler: H, prefix: Prefix, max_length: usize) -> Self {
        let max_length = max_length.min(prefix.limit());
        PrefixedReceiver {
            handler,
            decoder: PrefixedDecoder::new(prefix, max_length),
            encoding: Encoding::Prefixed(prefix),
            max_length,
            broken: false,
        }
    }
}
