//! The SOCKS server handshake as a pure state machine: SOCKS4, SOCKS4a
//! and SOCKS5 (RFC 1928) with username/password (RFC 1929). Bytes in,
//! reply bytes and decisions out; no sockets.
//!
//! ```text
//!   feed(bytes) ─▶ step() ─▶ Reply(bytes)            send, then step again
//!                        ├─▶ Auth { user, password }  check, then auth_done(ok)
//!                        ├─▶ Connect { target }       connect, then connect_reply(..)
//!                        ├─▶ Refuse(bytes)            send, then close
//!                        └─▶ NeedMore
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Most bytes a handshake may hold before it is refused (a SOCKS5 request
/// with a 255-byte name is 262; SOCKS4 user ids and names are capped at
/// 255 each).
pub const MAX_HANDSHAKE: usize = 1024;

/// Where the client wants to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An address.
    Addr(SocketAddr),
    /// A name to resolve (SOCKS4a, SOCKS5 type 3), and a port.
    Name(String, u16),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Name(n, p) => write!(f, "{n}:{p}"),
        }
    }
}

/// Why a connection attempt failed, in SOCKS5's words (SOCKS4 has one
/// code for all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// `01`: general failure.
    General,
    /// `02`: not allowed by the rules.
    NotAllowed,
    /// `03`: network unreachable.
    NetworkUnreachable,
    /// `04`: host unreachable (also: the name did not resolve).
    HostUnreachable,
    /// `05`: connection refused.
    Refused,
    /// `06`: TTL expired (the attempt timed out).
    TimedOut,
    /// `07`: command not supported.
    CommandNotSupported,
    /// `08`: address type not supported.
    AddressNotSupported,
}

impl Failure {
    fn code(self) -> u8 {
        match self {
            Failure::General => 1,
            Failure::NotAllowed => 2,
            Failure::NetworkUnreachable => 3,
            Failure::HostUnreachable => 4,
            Failure::Refused => 5,
            Failure::TimedOut => 6,
            Failure::CommandNotSupported => 7,
            Failure::AddressNotSupported => 8,
        }
    }

    /// The SOCKS code for a connection error.
    pub fn from_io(e: &std::io::Error) -> Failure {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => Failure::Refused,
            K::TimedOut => Failure::TimedOut,
            K::NetworkUnreachable => Failure::NetworkUnreachable,
            K::HostUnreachable | K::NotFound | K::AddrNotAvailable => Failure::HostUnreachable,
            _ if e.raw_os_error() == Some(101) => Failure::NetworkUnreachable,
            _ if e.raw_os_error() == Some(113) => Failure::HostUnreachable,
            _ => Failure::HostUnreachable,
        }
    }
}

/// What the server must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Wait for more bytes.
    NeedMore,
    /// Send these bytes, then call `step` again.
    Reply(Vec<u8>),
    /// Check these credentials (RFC 1929), then call
    /// [`Handshake::auth_done`].
    Auth {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// Connect to `target`, then send [`Handshake::connect_reply`].
    Connect {
        /// Where to.
        target: Target,
        /// The SOCKS4 user id (empty for SOCKS5).
        user_id: String,
    },
    /// Send these bytes (a refusal), then close.
    Refuse(Vec<u8>, &'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    V5Auth,
    V5AuthWait,
    V5Request,
    Connecting(u8),
    Done,
}

/// One SOCKS server handshake. See the [module](self) for the picture.
#[derive(Debug)]
pub struct Handshake {
    buf: Vec<u8>,
    state: State,
    require_auth: bool,
}

impl Handshake {
    /// A handshake that demands RFC 1929 authentication (and so refuses
    /// SOCKS4, which carries no password) when `require_auth`.
    pub fn new(require_auth: bool) -> Handshake {
        Handshake {
            buf: Vec::new(),
            state: State::Start,
            require_auth,
        }
    }

    /// Bytes from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes that came after the request (data the client sent before
    /// the reply): the connection's first bytes.
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// The next thing to do.
    pub fn step(&mut self) -> Step {
        let step = self.parse();
        if step == Step::NeedMore
            && self.buf.len() > MAX_HANDSHAKE
            && !matches!(
                self.state,
                State::Done | State::Connecting(_) | State::V5AuthWait
            )
        {
            self.state = State::Done;
            return Step::Refuse(Vec::new(), "handshake too long");
        }
        step
    }

    fn parse(&mut self) -> Step {
        match self.state {
            State::Start => match self.buf.first() {
                None => Step::NeedMore,
                Some(4) => self.v4(),
                Some(5) => self.v5_greeting(),
                Some(_) => {
                    self.state = State::Done;
                    Step::Refuse(Vec::new(), "not SOCKS")
                }
            },
            State::V5Auth => self.v5_auth(),
            State::V5Request => self.v5_request(),
            State::V5AuthWait | State::Connecting(_) | State::Done => Step::NeedMore,
        }
    }

    fn v4(&mut self) -> Step {
        let b = &self.buf;
        if b.len() < 9 {
            return Step::NeedMore;
        }
        let Some(end) = b[8..].iter().position(|&c| c == 0).map(|i| 8 + i) else {
            return if b.len() > 8 + 255 {
                self.refuse4("user id too long")
            } else {
                Step::NeedMore
            };
        };
        if end - 8 > 255 {
            return self.refuse4("user id too long");
        }
        let (cmd, port) = (b[1], u16::from_be_bytes([b[2], b[3]]));
        let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
        let user_id = String::from_utf8_lossy(&b[8..end]).into_owned();
        let mut used = end + 1;
        let target = if ip.octets()[..3] == [0, 0, 0] && ip.octets()[3] != 0 {
            // SOCKS4a: a name follows.
            let Some(nend) = self.buf[used..]
                .iter()
                .position(|&c| c == 0)
                .map(|i| used + i)
            else {
                return if self.buf.len() > used + 255 {
                    self.refuse4("name too long")
                } else {
                    Step::NeedMore
                };
            };
            if nend - used > 255 {
                return self.refuse4("name too long");
            }
            let name = String::from_utf8_lossy(&self.buf[used..nend]).into_owned();
            used = nend + 1;
            if name.is_empty() {
                return self.refuse4("empty name");
            }
            Target::Name(name, port)
        } else {
            Target::Addr(SocketAddr::new(IpAddr::V4(ip), port))
        };
        self.buf.drain(..used);
        if self.require_auth {
            return self.refuse4("SOCKS4 carries no password");
        }
        if cmd != 1 {
            return self.refuse4("only CONNECT");
        }
        self.state = State::Connecting(4);
        Step::Connect { target, user_id }
    }

    fn refuse4(&mut self, why: &'static str) -> Step {
        self.state = State::Done;
        Step::Refuse(vec![0, 0x5b, 0, 0, 0, 0, 0, 0], why)
    }

    fn v5_greeting(&mut self) -> Step {
        let b = &self.buf;
        if b.len() < 2 {
            return Step::NeedMore;
        }
        let n = b[1] as usize;
        if b.len() < 2 + n {
            return Step::NeedMore;
        }
        let methods: Vec<u8> = b[2..2 + n].to_vec();
        self.buf.drain(..2 + n);
        let want = if self.require_auth { 2 } else { 0 };
        if methods.contains(&want) {
            self.state = if self.require_auth {
                State::V5Auth
            } else {
                State::V5Request
            };
            Step::Reply(vec![5, want])
        } else {
            self.state = State::Done;
            Step::Refuse(vec![5, 0xff], "no acceptable authentication method")
        }
    }

    fn v5_auth(&mut self) -> Step {
        let b = &self.buf;
        if b.len() < 2 {
            return Step::NeedMore;
        }
        if b[0] != 1 {
            self.state = State::Done;
            return Step::Refuse(vec![1, 1], "bad authentication version");
        }
        let ulen = b[1] as usize;
        if b.len() < 2 + ulen + 1 {
            return Step::NeedMore;
        }
        let plen = b[2 + ulen] as usize;
        if b.len() < 3 + ulen + plen {
            return Step::NeedMore;
        }
        let user = String::from_utf8_lossy(&b[2..2 + ulen]).into_owned();
        let password = String::from_utf8_lossy(&b[3 + ulen..3 + ulen + plen]).into_owned();
        self.buf.drain(..3 + ulen + plen);
        self.state = State::V5AuthWait;
        Step::Auth { user, password }
    }

    /// The credentials were checked: the reply to send (then `step`
    /// again on success; close on failure, RFC 1929).
    pub fn auth_done(&mut self, ok: bool) -> Step {
        if ok {
            self.state = State::V5Request;
            Step::Reply(vec![1, 0])
        } else {
            self.state = State::Done;
            Step::Refuse(vec![1, 1], "authentication failed")
        }
    }

    fn v5_request(&mut self) -> Step {
        let b = &self.buf;
        if b.len() < 4 {
            return Step::NeedMore;
        }
        if b[0] != 5 {
            self.state = State::Done;
            return Step::Refuse(reply5(Failure::General), "bad request version");
        }
        let (cmd, atyp) = (b[1], b[3]);
        let (addr_len, start) = match atyp {
            1 => (4, 4),
            4 => (16, 4),
            3 if b.len() < 5 => return Step::NeedMore,
            3 => (b[4] as usize, 5),
            _ => {
                self.state = State::Done;
                return Step::Refuse(reply5(Failure::AddressNotSupported), "address type");
            }
        };
        let total = start + addr_len + 2;
        if b.len() < total {
            return Step::NeedMore;
        }
        let a = &b[start..start + addr_len];
        let port = u16::from_be_bytes([b[start + addr_len], b[start + addr_len + 1]]);
        let target = match atyp {
            1 => Target::Addr(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
                port,
            )),
            4 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(a);
                Target::Addr(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
            }
            _ => Target::Name(String::from_utf8_lossy(a).into_owned(), port),
        };
        self.buf.drain(..total);
        if cmd != 1 {
            // BIND and UDP ASSOCIATE are not offered.
            self.state = State::Done;
            return Step::Refuse(reply5(Failure::CommandNotSupported), "only CONNECT");
        }
        if matches!(&target, Target::Name(n, _) if n.is_empty()) {
            self.state = State::Done;
            return Step::Refuse(reply5(Failure::HostUnreachable), "empty name");
        }
        self.state = State::Connecting(5);
        Step::Connect {
            target,
            user_id: String::new(),
        }
    }

    /// The reply to a [`Step::Connect`]: success with the outbound
    /// connection's local address, or why it failed (then close).
    pub fn connect_reply(&mut self, result: Result<SocketAddr, Failure>) -> Vec<u8> {
        let version = match self.state {
            State::Connecting(v) => v,
            _ => 5,
        };
        self.state = State::Done;
        match (version, result) {
            (4, Ok(bound)) => {
                let mut r = vec![0, 0x5a];
                r.extend_from_slice(&bound.port().to_be_bytes());
                match bound.ip() {
                    IpAddr::V4(ip) => r.extend_from_slice(&ip.octets()),
                    IpAddr::V6(_) => r.extend_from_slice(&[0, 0, 0, 0]),
                }
                r
            }
            (4, Err(_)) => vec![0, 0x5b, 0, 0, 0, 0, 0, 0],
            (_, Ok(bound)) => reply5_ok(bound),
            (_, Err(f)) => reply5(f),
        }
    }
}

/// SOCKS5's address type and address (RFC 1928 section 5).
pub(crate) fn push_addr(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            out.push(1);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
    }
}

fn reply5_ok(bound: SocketAddr) -> Vec<u8> {
    let mut r = vec![5, 0, 0];
    push_addr(&mut r, bound.ip());
    r.extend_from_slice(&bound.port().to_be_bytes());
    r
}

fn reply5(f: Failure) -> Vec<u8> {
    vec![5, f.code(), 0, 1, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` whole and byte by byte, answering auth with `ok`;
    /// both runs must give the same steps.
    fn run(input: &[u8], auth: bool, ok: bool) -> Vec<Step> {
        let mut outs = Vec::new();
        for bytewise in [false, true] {
            let mut h = Handshake::new(auth);
            let mut steps = Vec::new();
            let chunks: Vec<&[u8]> = if bytewise {
                input.chunks(1).collect()
            } else {
                vec![input]
            };
            for c in chunks {
                h.feed(c);
                loop {
                    let s = h.step();
                    match &s {
                        Step::NeedMore => break,
                        Step::Auth { .. } => {
                            steps.push(s.clone());
                            let r = h.auth_done(ok);
                            steps.push(r.clone());
                            if matches!(r, Step::Refuse(..)) {
                                break;
                            }
                        }
                        Step::Connect { .. } | Step::Refuse(..) => {
                            steps.push(s);
                            break;
                        }
                        Step::Reply(_) => steps.push(s),
                    }
                }
            }
            outs.push(steps);
        }
        assert_eq!(outs[0], outs[1], "whole and byte by byte differ");
        outs.pop().unwrap()
    }

    #[test]
    fn socks4_and_4a() {
        let s = run(b"\x04\x01\x00\x50\x7f\x00\x00\x01bob\x00", false, true);
        assert_eq!(
            s,
            [Step::Connect {
                target: Target::Addr("127.0.0.1:80".parse().unwrap()),
                user_id: "bob".into()
            }]
        );
        let s = run(
            b"\x04\x01\x01\xbb\x00\x00\x00\x07\x00example.org\x00",
            false,
            true,
        );
        assert_eq!(
            s,
            [Step::Connect {
                target: Target::Name("example.org".into(), 443),
                user_id: String::new()
            }]
        );
        // BIND refused; SOCKS4 refused outright when passwords are required.
        assert!(
            matches!(&run(b"\x04\x02\x00\x50\x7f\x00\x00\x01\x00", false, true)[0], Step::Refuse(r, _) if r[1] == 0x5b)
        );
        assert!(
            matches!(&run(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00", true, true)[0], Step::Refuse(r, _) if r[1] == 0x5b)
        );
        let mut h = Handshake::new(false);
        h.feed(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00");
        assert!(matches!(h.step(), Step::Connect { .. }));
        assert_eq!(
            h.connect_reply(Ok("10.0.0.2:4000".parse().unwrap())),
            [0, 0x5a, 0x0f, 0xa0, 10, 0, 0, 2]
        );
    }

    #[test]
    fn socks5_names_addresses_auth_and_refusals() {
        let s = run(
            b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.org\x00\x50",
            false,
            true,
        );
        assert_eq!(s[0], Step::Reply(vec![5, 0]));
        assert_eq!(
            s[1],
            Step::Connect {
                target: Target::Name("example.org".into(), 80),
                user_id: String::new()
            }
        );
        let s = run(b"\x05\x01\x00\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1f\x90", false, true);
        assert_eq!(
            s[1],
            Step::Connect {
                target: Target::Addr("[::1]:8080".parse().unwrap()),
                user_id: String::new()
            }
        );
        // Username/password.
        let s = run(
            b"\x05\x02\x00\x02\x01\x05alice\x06secret\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x16",
            true,
            true,
        );
        assert_eq!(s[0], Step::Reply(vec![5, 2]));
        assert_eq!(
            s[1],
            Step::Auth {
                user: "alice".into(),
                password: "secret".into()
            }
        );
        assert_eq!(s[2], Step::Reply(vec![1, 0]));
        assert!(matches!(s[3], Step::Connect { .. }));
        let s = run(b"\x05\x01\x02\x01\x05alice\x05wrong", true, false);
        assert!(matches!(&s[2], Step::Refuse(r, _) if r == &[1, 1]));
        // No acceptable method; BIND; UDP; a bad address type.
        assert!(
            matches!(&run(b"\x05\x01\x00", true, true)[0], Step::Refuse(r, _) if r == &[5, 0xff])
        );
        assert!(
            matches!(&run(b"\x05\x01\x00\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x16", false, true)[1], Step::Refuse(r, _) if r[1] == 7)
        );
        assert!(
            matches!(&run(b"\x05\x01\x00\x05\x03\x00\x01\x7f\x00\x00\x01\x00\x16", false, true)[1], Step::Refuse(r, _) if r[1] == 7)
        );
        assert!(
            matches!(&run(b"\x05\x01\x00\x05\x01\x00\x09", false, true)[1], Step::Refuse(r, _) if r[1] == 8)
        );
        // Not SOCKS, and a handshake that never ends.
        assert!(matches!(
            &run(b"GET / HTTP/1.1\r\n", false, true)[0],
            Step::Refuse(..)
        ));
        let mut long = b"\x04\x01\x00\x50\x7f\x00\x00\x01".to_vec();
        long.extend(std::iter::repeat_n(b'a', 2000));
        assert!(matches!(&run(&long, false, true)[0], Step::Refuse(..)));
    }

    #[test]
    fn replies_carry_the_bound_address_and_the_failure() {
        let mut h = Handshake::new(false);
        h.feed(b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x16extra");
        assert_eq!(h.step(), Step::Reply(vec![5, 0]));
        assert!(matches!(h.step(), Step::Connect { .. }));
        assert_eq!(h.take_rest(), b"extra");
        assert_eq!(
            h.connect_reply(Ok("127.0.0.1:40000".parse().unwrap())),
            [5, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0x40]
        );
        let mut h = Handshake::new(false);
        h.feed(b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x16");
        h.step();
        h.step();
        assert_eq!(h.connect_reply(Err(Failure::Refused))[1], 5);
    }
}
