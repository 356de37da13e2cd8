//! Line framing: Twisted's `LineReceiver` and `LineOnlyReceiver`.

use std::fmt;

use memchr::memmem::Finder;

use super::{FramingError, FramingErrorKind, InBuf};
use crate::error::CloseReason;
use crate::protocol::Protocol;
use crate::transport::Transport;

/// Splits bytes into lines at a delimiter, keeping at most `max_length`
/// bytes of an unfinished line.
///
/// # Examples
///
/// ```
/// use braid::framing::LineDecoder;
///
/// let mut d = LineDecoder::new(b"\r\n", 512);
/// d.push(b"HELLO\r\nWOR");
/// assert_eq!(d.next_line().unwrap().unwrap(), b"HELLO");
/// assert!(d.next_line().is_none());
/// d.push(b"LD\r\n");
/// assert_eq!(d.next_line().unwrap().unwrap(), b"WORLD");
/// ```
pub struct LineDecoder {
    buf: InBuf,
    delimiter: Vec<u8>,
    finder: Finder<'static>,
    max_length: usize,
    /// Bytes of `buf` already searched without finding a delimiter.
    scanned: usize,
    /// Dropping the rest of an over-long line, up to its delimiter.
    discarding: bool,
}

impl LineDecoder {
    /// A decoder for `delimiter`-terminated lines of at most `max_length`
    /// bytes (delimiter excluded).
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    pub fn new(delimiter: &[u8], max_length: usize) -> Self {
        assert!(!delimiter.is_empty(), "a line delimiter cannot be empty");
        LineDecoder {
            buf: InBuf::default(),
            delimiter: delimiter.to_vec(),
            finder: Finder::new(delimiter).into_owned(),
            max_length,
            scanned: 0,
            discarding: false,
        }
    }

    /// The delimiter.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// The longest line accepted.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Adds input.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.push(data);
    }

    /// The next complete line, without its delimiter; `None` until more
    /// input arrives. After an error the offending bytes are dropped and
    /// decoding goes on with what follows.
    pub fn next_line(&mut self) -> Option<Result<&[u8], FramingError>> {
        while self.discarding {
            let bytes = self.buf.bytes();
            let from = self.scanned.saturating_sub(self.delimiter.len() - 1);
            match self.finder.find(&bytes[from..]) {
                Some(i) => {
                    self.buf.consume(from + i + self.delimiter.len());
                    self.scanned = 0;
                    self.discarding = false;
                }
                None => {
                    // Keep only what could start a delimiter.
                    let keep = (self.delimiter.len() - 1).min(bytes.len());
                    let drop_n = bytes.len() - keep;
                    self.buf.consume(drop_n);
                    self.scanned = self.buf.len();
                    return None;
                }
            }
        }
        let bytes = self.buf.bytes();
        let from = self.scanned.saturating_sub(self.delimiter.len() - 1);
        match self.finder.find(&bytes[from..]) {
            Some(i) => {
                let end = from + i;
                self.scanned = 0;
                let consumed = end + self.delimiter.len();
                if end > self.max_length {
                    self.buf.consume(consumed);
                    return Some(Err(FramingError::new(
                        FramingErrorKind::LineTooLong,
                        end,
                        self.max_length,
                    )));
                }
                // Consume after borrowing: the bytes stay in place until
                // the next push.
                let start = self.buf.start;
                self.buf.start += consumed;
                let line = &self.buf.data[start..start + end];
                Some(Ok(line))
            }
            None => {
                let len = bytes.len();
                if len > self.max_length + self.delimiter.len() - 1 {
                    // Drop what we have and the rest of this line.
                    let keep = self.delimiter.len() - 1;
                    self.buf.consume(len - keep);
                    self.scanned = self.buf.len();
                    self.discarding = true;
                    return Some(Err(FramingError::new(
                        FramingErrorKind::LineTooLong,
                        len,
                        self.max_length,
                    )));
                }
                self.scanned = len;
                None
            }
        }
    }

    /// Takes everything buffered (switching to raw mode).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.discarding = false;
        self.buf.take_all()
    }

    /// Bytes buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

impl fmt::Debug for LineDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineDecoder")
            .field("delimiter", &self.delimiter)
            .field("max_length", &self.max_length)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

/// What a [`LineHandler`] can do from its callbacks: write lines and switch
/// between line and raw mode.
pub struct LineContext<'a> {
    transport: &'a Transport,
    delimiter: &'a [u8],
    raw: &'a mut bool,
    replay: &'a mut Vec<u8>,
}

impl LineContext<'_> {
    /// The connection's transport.
    pub fn transport(&self) -> &Transport {
        self.transport
    }

    /// Writes `line` followed by the delimiter.
    #[doc(alias = "sendLine")]
    pub fn send_line(&self, line: &[u8]) {
        self.transport.write_sequence(&[line, self.delimiter]);
    }

    /// From now on, deliver bytes as they come to
    /// [`LineHandler::raw_data_received`]; whatever follows the current
    /// line goes there too.
    #[doc(alias = "setRawMode")]
    pub fn set_raw_mode(&mut self) {
        *self.raw = true;
    }

    /// Back to lines; `extra` is decoded before any later input (Twisted's
    /// `setLineMode(extra)`).
    #[doc(alias = "setLineMode")]
    pub fn set_line_mode(&mut self, extra: &[u8]) {
        *self.raw = false;
        self.replay.extend_from_slice(extra);
    }
}

impl fmt::Debug for LineContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineContext")
            .field("raw", &*self.raw)
            .finish()
    }
}

/// The application side of a [`LineReceiver`].
pub trait LineHandler: 'static {
    /// The connection is up.
    fn connection_made(&mut self, ctx: &mut LineContext<'_>) {
        let _ = ctx;
    }
    /// A complete line arrived (without its delimiter).
    #[doc(alias = "lineReceived")]
    fn line_received(&mut self, ctx: &mut LineContext<'_>, line: &[u8]);
    /// Bytes arrived in raw mode.
    #[doc(alias = "rawDataReceived")]
    fn raw_data_received(&mut self, ctx: &mut LineContext<'_>, data: &[u8]) {
        let _ = (ctx, data);
    }
    /// A line exceeded the maximum length. The default logs it and closes
    /// the connection; an override may go on (the long line is dropped).
    #[doc(alias = "lineLengthExceeded")]
    fn line_length_exceeded(&mut self, ctx: &mut LineContext<'_>, error: FramingError) {
        tracing::warn!(peer = %ctx.transport().peer_addr(), %error, "closing connection");
        ctx.transport().lose_connection();
    }
    /// The connection is gone.
    fn connection_lost(&mut self, reason: &CloseReason) {
        let _ = reason;
    }
}

/// A protocol that delivers lines to a [`LineHandler`]: Twisted's
/// `LineReceiver`. Default delimiter `\r\n`, maximum length 16,384 bytes.
///
/// # Examples
///
/// ```
/// use braid::framing::{LineContext, LineHandler, LineReceiver};
/// use braid::testing::StringTransport;
/// use braid::Protocol;
///
/// struct Shout;
/// impl LineHandler for Shout {
///     fn line_received(&mut self, ctx: &mut LineContext<'_>, line: &[u8]) {
///         ctx.send_line(&line.to_ascii_uppercase());
///     }
/// }
///
/// let t = StringTransport::new();
/// let mut p = LineReceiver::new(Shout);
/// p.connection_made(&t.transport());
/// p.data_received(&t.transport(), b"hi\r\nthere\r\n");
/// assert_eq!(t.take(), b"HI\r\nTHERE\r\n");
/// ```
pub struct LineReceiver<H> {
    handler: H,
    decoder: LineDecoder,
    raw: bool,
}

impl<H: LineHandler> LineReceiver<H> {
    /// `\r\n`-delimited lines of at most 16,384 bytes.
    pub fn new(handler: H) -> Self {
        Self::with_delimiter(handler, b"\r\n", 16_384)
    }

    /// Any delimiter and maximum line length.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    pub fn with_delimiter(handler: H, delimiter: &[u8], max_length: usize) -> Self {
        LineReceiver {
            handler,
            decoder: LineDecoder::new(delimiter, max_length),
            raw: false,
        }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    fn feed(&mut self, transport: &Transport, data: &[u8]) {
        if transport.is_disconnecting() {
            // Twisted delivers nothing after loseConnection; buffering it
            // would let a peer grow our memory past the line cap.
            return;
        }
        let delimiter = self.decoder.delimiter.clone();
        let mut replay = Vec::new();
        if self.raw {
            let mut ctx = LineContext {
                transport,
                delimiter: &delimiter,
                raw: &mut self.raw,
                replay: &mut replay,
            };
            self.handler.raw_data_received(&mut ctx, data);
        } else {
            self.decoder.push(data);
        }
        loop {
            if !replay.is_empty() && !self.raw {
                self.decoder.push(&std::mem::take(&mut replay));
            }
            if self.raw {
                let rest = self.decoder.take_buffered();
                if rest.is_empty() {
                    return;
                }
                let mut ctx = LineContext {
                    transport,
                    delimiter: &delimiter,
                    raw: &mut self.raw,
                    replay: &mut replay,
                };
                self.handler.raw_data_received(&mut ctx, &rest);
                continue;
            }
            if transport.is_disconnecting() {
                return; // Twisted stops delivering lines after loseConnection
            }
            let mut ctx = LineContext {
                transport,
                delimiter: &delimiter,
                raw: &mut self.raw,
                replay: &mut replay,
            };
            match self.decoder.next_line() {
                None => return,
                Some(Ok(line)) => self.handler.line_received(&mut ctx, line),
                Some(Err(e)) => self.handler.line_length_exceeded(&mut ctx, e),
            }
        }
    }
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, transport: &Transport) {
        let delimiter = self.decoder.delimiter.clone();
        let mut replay = Vec::new();
        let mut ctx = LineContext {
            transport,
            delimiter: &delimiter,
            raw: &mut self.raw,
            replay: &mut replay,
        };
        self.handler.connection_made(&mut ctx);
        if !replay.is_empty() {
            self.feed(transport, &[]);
            self.decoder.push(&replay);
            self.feed(transport, &[]);
        }
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.feed(transport, data);
    }

    fn connection_lost(&mut self, reason: &CloseReason) {
        self.handler.connection_lost(reason);
    }
}

impl<H> fmt::Debug for LineReceiver<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineReceiver")
            .field("decoder", &self.decoder)
            .field("raw", &self.raw)
            .finish()
    }
}
