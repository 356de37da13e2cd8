//! The canvas wire format, version 1.
//!
//! Every message is one frame of braid's length-prefixed framing
//! ([`braid::framing::PrefixedReceiver`] with a 32-bit big-endian length,
//! at most [`MAX_FRAME`] bytes). A frame's first byte is its type; the
//! fields follow, integers big-endian, strings as a one-byte length and
//! UTF-8, point lists as a two-byte count and `(x: u16, y: u16)` pairs.
//!
//! ```text
//! client -> server                      server -> client
//! 0x01 Hello  "BCNV" version:u16 name   0x81 Welcome version:u16 id:u32 colour:u32 w:u16 h:u16
//! 0x02 Cursor x:u16 y:u16               0x82 Joined  id:u32 colour:u32 name
//! 0x03 Stroke width:u8 points           0x83 Left    id:u32
//! 0x04 Ping   token:u64                 0x84 Cursor  id:u32 x:u16 y:u16
//!                                       0x85 Stroke  id:u32 colour:u32 width:u8 points
//!                                       0x86 Pong    token:u64
//!                                       0x87 Ready   (the picture so far has been sent)
//!                                       0x88 Error   code:u16 text
//! ```
//!
//! The client speaks first (`Hello`); the server answers `Welcome`, then
//! the picture so far (`Stroke`s), the users present (`Joined`), and
//! `Ready`. A peer that sends a version it does not speak gets `Error`
//! with code [`ERR_VERSION`] and is disconnected. Coordinates are canvas
//! pixels, `0..CANVAS_W` by `0..CANVAS_H`.

use std::fmt;

/// The protocol version this code speaks.
pub const VERSION: u16 = 1;
/// The first bytes of `Hello`: not a canvas client otherwise.
pub const MAGIC: &[u8; 4] = b"BCNV";
/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 16 * 1024;
/// The most points in one stroke message.
pub const MAX_POINTS: usize = 2048;
/// The longest name, in bytes.
pub const MAX_NAME: usize = 32;
/// The canvas width, in canvas pixels.
pub const CANVAS_W: u16 = 800;
/// The canvas height.
pub const CANVAS_H: u16 = 520;

/// Error code: the versions do not match.
pub const ERR_VERSION: u16 = 1;
/// Error code: a message could not be decoded.
pub const ERR_MALFORMED: u16 = 2;
/// Error code: too many messages; some were dropped.
pub const ERR_RATE: u16 = 3;
/// Error code: the first message was not `Hello`.
pub const ERR_HELLO: u16 = 4;

/// A point on the canvas.
pub type Point = (u16, u16);

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    /// The first message: who we are and what we speak.
    Hello {
        /// The protocol version.
        version: u16,
        /// The user's name.
        name: String,
    },
    /// The pointer moved.
    Cursor {
        /// Where.
        x: u16,
        /// Where.
        y: u16,
    },
    /// A piece of a stroke: a polyline.
    Stroke {
        /// Pen width in pixels (1 to 32).
        width: u8,
        /// The points.
        points: Vec<Point>,
    },
    /// Asks for a `Pong` with the same token (round-trip time).
    Ping {
        /// Echoed back.
        token: u64,
    },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// The answer to `Hello`.
    Welcome {
        /// The server's version.
        version: u16,
        /// The client's id.
        id: u32,
        /// The client's colour (0xRRGGBB).
        colour: u32,
        /// Canvas width.
        width: u16,
        /// Canvas height.
        height: u16,
    },
    /// A user is present (sent for each user on joining, and for each
    /// newcomer later).
    Joined {
        /// Their id.
        id: u32,
        /// Their colour.
        colour: u32,
        /// Their name.
        name: String,
    },
    /// A user left.
    Left {
        /// Their id.
        id: u32,
    },
    /// A user's pointer moved.
    Cursor {
        /// Whose.
        id: u32,
        /// Where.
        x: u16,
        /// Where.
        y: u16,
    },
    /// A piece of a stroke.
    Stroke {
        /// Who drew it.
        id: u32,
        /// Its colour.
        colour: u32,
        /// Pen width.
        width: u8,
        /// The points.
        points: Vec<Point>,
    },
    /// The answer to `Ping`.
    Pong {
        /// The ping's token.
        token: u64,
    },
    /// The picture so far has been sent.
    Ready,
    /// Something went wrong.
    Error {
        /// One of the `ERR_` codes.
        code: u16,
        /// For people.
        text: String,
    },
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame ended inside a field.
    Truncated,
    /// Bytes were left after the message.
    Trailing(usize),
    /// A type byte this version does not know.
    UnknownType(u8),
    /// `Hello` without the magic bytes.
    BadMagic,
    /// A string that is not UTF-8 or is too long.
    BadString,
    /// More than [`MAX_POINTS`] points, or none.
    BadPoints(usize),
    /// A point outside the canvas or a pen width out of range.
    OutOfRange,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "the message ends inside a field"),
            DecodeError::Trailing(n) => write!(f, "{n} bytes after the message"),
            DecodeError::UnknownType(t) => write!(f, "unknown message type 0x{t:02x}"),
            DecodeError::BadMagic => write!(f, "not a canvas client (no BCNV)"),
            DecodeError::BadString => write!(f, "a string that is not UTF-8 or is too long"),
            DecodeError::BadPoints(n) => write!(f, "{n} points (1 to {MAX_POINTS} allowed)"),
            DecodeError::OutOfRange => write!(f, "a point or width out of range"),
        }
    }
}

impl std::error::Error for DecodeError {}

struct Writer(Vec<u8>);

impl Writer {
    fn new(tag: u8) -> Writer {
        Writer(vec![tag])
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn str(mut self, s: &str) -> Self {
        let s = truncate(s, MAX_NAME);
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn points(mut self, p: &[Point]) -> Self {
        let p = &p[..p.len().min(MAX_POINTS)];
        self = self.u16(p.len() as u16);
        for &(x, y) in p {
            self = self.u16(x).u16(y);
        }
        self
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.u8()? as usize;
        if n > MAX_NAME {
            return Err(DecodeError::BadString);
        }
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::BadString)
    }
    fn points(&mut self) -> Result<Vec<Point>, DecodeError> {
        let n = self.u16()? as usize;
        if n == 0 || n > MAX_POINTS {
            return Err(DecodeError::BadPoints(n));
        }
        if self.0.len() < n * 4 {
            return Err(DecodeError::Truncated);
        }
        (0..n)
            .map(|_| {
                let (x, y) = (self.u16()?, self.u16()?);
                in_canvas(x, y)?;
                Ok((x, y))
            })
            .collect()
    }
    fn end<T>(self, v: T) -> Result<T, DecodeError> {
        match self.0.len() {
            0 => Ok(v),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

fn in_canvas(x: u16, y: u16) -> Result<(), DecodeError> {
    if x < CANVAS_W && y < CANVAS_H {
        Ok(())
    } else {
        Err(DecodeError::OutOfRange)
    }
}

fn width_ok(w: u8) -> Result<u8, DecodeError> {
    if (1..=32).contains(&w) {
        Ok(w)
    } else {
        Err(DecodeError::OutOfRange)
    }
}

impl ClientMsg {
    /// The frame's payload (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ClientMsg::Hello { version, name } => {
                let mut w = Writer::new(0x01);
                w.0.extend_from_slice(MAGIC);
                w.u16(*version).str(name).0
            }
            ClientMsg::Cursor { x, y } => Writer::new(0x02).u16(*x).u16(*y).0,
            ClientMsg::Stroke { width, points } => Writer::new(0x03).u8(*width).points(points).0,
            ClientMsg::Ping { token } => Writer::new(0x04).u64(*token).0,
        }
    }

    /// Decodes one frame's payload.
    pub fn decode(frame: &[u8]) -> Result<ClientMsg, DecodeError> {
        let mut r = Reader(frame);
        match r.u8()? {
            0x01 => {
                if r.take(4)? != MAGIC {
                    return Err(DecodeError::BadMagic);
                }
                let version = r.u16()?;
                let name = r.str()?;
                r.end(ClientMsg::Hello { version, name })
            }
            0x02 => {
                let (x, y) = (r.u16()?, r.u16()?);
                in_canvas(x, y)?;
                r.end(ClientMsg::Cursor { x, y })
            }
            0x03 => {
                let width = width_ok(r.u8()?)?;
                let points = r.points()?;
                r.end(ClientMsg::Stroke { width, points })
            }
            0x04 => {
                let token = r.u64()?;
                r.end(ClientMsg::Ping { token })
            }
            t => Err(DecodeError::UnknownType(t)),
        }
    }
}

impl ServerMsg {
    /// The frame's payload (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ServerMsg::Welcome {
                version,
                id,
                colour,
                width,
                height,
            } => {
                Writer::new(0x81)
                    .u16(*version)
                    .u32(*id)
                    .u32(*colour)
                    .u16(*width)
                    .u16(*height)
                    .0
            }
            ServerMsg::Joined { id, colour, name } => {
                Writer::new(0x82).u32(*id).u32(*colour).str(name).0
            }
            ServerMsg::Left { id } => Writer::new(0x83).u32(*id).0,
            ServerMsg::Cursor { id, x, y } => Writer::new(0x84).u32(*id).u16(*x).u16(*y).0,
            ServerMsg::Stroke {
                id,
                colour,
                width,
                points,
            } => {
                Writer::new(0x85)
                    .u32(*id)
                    .u32(*colour)
                    .u8(*width)
                    .points(points)
                    .0
            }
            ServerMsg::Pong { token } => Writer::new(0x86).u64(*token).0,
            ServerMsg::Ready => Writer::new(0x87).0,
            ServerMsg::Error { code, text } => {
                let mut w = Writer::new(0x88).u16(*code);
                // Error texts may be longer than names: u8 length, 255 max.
                let t = truncate(text, 255);
                w.0.push(t.len() as u8);
                w.0.extend_from_slice(t.as_bytes());
                w.0
            }
        }
    }

    /// Decodes one frame's payload.
    pub fn decode(frame: &[u8]) -> Result<ServerMsg, DecodeError> {
        let mut r = Reader(frame);
        match r.u8()? {
            0x81 => {
                let m = ServerMsg::Welcome {
                    version: r.u16()?,
                    id: r.u32()?,
                    colour: r.u32()?,
                    width: r.u16()?,
                    height: r.u16()?,
                };
                r.end(m)
            }
            0x82 => {
                let (id, colour) = (r.u32()?, r.u32()?);
                let name = r.str()?;
                r.end(ServerMsg::Joined { id, colour, name })
            }
            0x83 => {
                let id = r.u32()?;
                r.end(ServerMsg::Left { id })
            }
            0x84 => {
                let (id, x, y) = (r.u32()?, r.u16()?, r.u16()?);
                in_canvas(x, y)?;
                r.end(ServerMsg::Cursor { id, x, y })
            }
            0x85 => {
                let (id, colour) = (r.u32()?, r.u32()?);
                let width = width_ok(r.u8()?)?;
                let points = r.points()?;
                r.end(ServerMsg::Stroke {
                    id,
                    colour,
                    width,
                    points,
                })
            }
            0x86 => {
                let token = r.u64()?;
                r.end(ServerMsg::Pong { token })
            }
            0x87 => r.end(ServerMsg::Ready),
            0x88 => {
                let code = r.u16()?;
                let n = r.u8()? as usize;
                let text =
                    String::from_utf8(r.take(n)?.to_vec()).map_err(|_| DecodeError::BadString)?;
                r.end(ServerMsg::Error { code, text })
            }
            t => Err(DecodeError::UnknownType(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_msgs() -> Vec<ClientMsg> {
        vec![
            ClientMsg::Hello {
                version: VERSION,
                name: "ann".into(),
            },
            ClientMsg::Cursor {
                x: 0,
                y: CANVAS_H - 1,
            },
            ClientMsg::Stroke {
                width: 3,
                points: vec![(1, 2), (CANVAS_W - 1, 4)],
            },
            ClientMsg::Ping { token: u64::MAX },
        ]
    }

    fn server_msgs() -> Vec<ServerMsg> {
        vec![
            ServerMsg::Welcome {
                version: VERSION,
                id: 7,
                colour: 0x00ff_8800,
                width: CANVAS_W,
                height: CANVAS_H,
            },
            ServerMsg::Joined {
                id: 1,
                colour: 0x12_3456,
                name: "bé".into(),
            },
            ServerMsg::Left { id: 1 },
            ServerMsg::Cursor {
                id: 2,
                x: 10,
                y: 20,
            },
            ServerMsg::Stroke {
                id: 2,
                colour: 1,
                width: 32,
                points: vec![(5, 5)],
            },
            ServerMsg::Pong { token: 42 },
            ServerMsg::Ready,
            ServerMsg::Error {
                code: ERR_RATE,
                text: "slow down".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in client_msgs() {
            assert_eq!(ClientMsg::decode(&m.encode()), Ok(m.clone()));
        }
        for m in server_msgs() {
            assert_eq!(ServerMsg::decode(&m.encode()), Ok(m.clone()));
        }
    }

    #[test]
    fn every_truncation_and_extension_is_an_error_not_a_panic() {
        for m in client_msgs() {
            let f = m.encode();
            for cut in 0..f.len() {
                assert!(ClientMsg::decode(&f[..cut]).is_err(), "{m:?} cut at {cut}");
            }
            let mut long = f.clone();
            long.push(0);
            assert_eq!(ClientMsg::decode(&long), Err(DecodeError::Trailing(1)));
        }
        for m in server_msgs() {
            let f = m.encode();
            for cut in 0..f.len() {
                assert!(ServerMsg::decode(&f[..cut]).is_err(), "{m:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn bad_values_are_refused_with_their_reason() {
        assert_eq!(
            ClientMsg::decode(&[0x7f]),
            Err(DecodeError::UnknownType(0x7f))
        );
        assert_eq!(
            ClientMsg::decode(b"\x01XXXX\x00\x01\x00"),
            Err(DecodeError::BadMagic)
        );
        let off = ClientMsg::Cursor { x: CANVAS_W, y: 0 }.encode();
        assert_eq!(ClientMsg::decode(&off), Err(DecodeError::OutOfRange));
        let zero_width = [0x03, 0, 0, 1, 0, 1, 0, 1];
        assert_eq!(ClientMsg::decode(&zero_width), Err(DecodeError::OutOfRange));
        let no_points = [0x03, 1, 0, 0];
        assert_eq!(
            ClientMsg::decode(&no_points),
            Err(DecodeError::BadPoints(0))
        );
        let mut bad_utf8 = vec![0x01];
        bad_utf8.extend_from_slice(MAGIC);
        bad_utf8.extend_from_slice(&[0, 1, 2, 0xff, 0xfe]);
        assert_eq!(ClientMsg::decode(&bad_utf8), Err(DecodeError::BadString));
        // A claimed point count larger than the frame: no allocation of it.
        let lying = [0x03, 1, 0x07, 0xff];
        assert_eq!(ClientMsg::decode(&lying), Err(DecodeError::Truncated));
    }

    #[test]
    fn the_largest_stroke_fits_in_a_frame() {
        let m = ServerMsg::Stroke {
            id: u32::MAX,
            colour: 0,
            width: 1,
            points: vec![(1, 1); MAX_POINTS],
        };
        assert!(m.encode().len() <= MAX_FRAME);
        let long = "é".repeat(40);
        let hello = ClientMsg::Hello {
            version: 1,
            name: long,
        };
        match ClientMsg::decode(&hello.encode()).unwrap() {
            ClientMsg::Hello { name, .. } => {
                assert!(name.len() <= MAX_NAME && name.chars().all(|c| c == 'é'))
            }
            other => panic!("{other:?}"),
        }
    }
}
