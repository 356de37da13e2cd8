//! The server's SMTP session as a pure state machine: bytes and `now` in,
//! reply bytes, events and a deadline out. No sockets, no clock, no
//! reactor: [`serve`](super::serve) drives it over a connection, and tests
//! drive it by hand.
//!
//! ```text
//!   receive(bytes) ─▶ Session ─▶ poll_event() ─▶ Mail / Rcpt / Auth / DataStart
//!   handle_timeout(now)  │                        Data(chunk) / DataEnd / StartTls
//!                        │     ◀── answer(Ok | Err(Reply)) for the ones that ask
//!                        └──▶ take_output() ─▶ the peer
//! ```

use std::time::{Duration, Instant};

use smtp_proto::request::receiver::{BdatReceiver, DataReceiver};
use smtp_proto::{Error as ParseError, Request};

use crate::reply::Reply;

mod auth;
mod data;

/// What to do with a bare CR or LF inside message data (where RFC 5321
/// wants CRLF). Whatever the policy, only `CRLF . CRLF` ends the data, so
/// SMTP smuggling (CVE-2023-51764/51765/51766) cannot end a message early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BareNewlines {
    /// Store them as CRLF (Postfix 3.9's `smtpd_forbid_bare_newline =
    /// normalize`, its default): what is stored, and later relayed, has
    /// only CRLF line ends.
    #[default]
    Normalize,
    /// Refuse the message with `550 5.5.2` once its data ends (Postfix's
    /// `reject`, without the disconnect).
    Reject,
}

/// Limits and policy of a server session. The defaults are Postfix's
/// where Postfix has one.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The name the server greets with and puts in `Received:` headers.
    pub hostname: String,
    /// Largest message accepted, in bytes (announced as `SIZE`, checked
    /// against `MAIL FROM ... SIZE=` and enforced during the data).
    /// Postfix's `message_size_limit`: 10,240,000.
    pub max_message_size: usize,
    /// Recipients per message (Postfix's `smtpd_recipient_limit`: 1000).
    pub max_recipients: usize,
    /// Longest command line, CRLF included (RFC 5321 4.5.3.1.6's text
    /// line: 1000). Longer ones are answered `500 5.5.2`; the session
    /// goes on.
    pub max_line: usize,
    /// Errors before the server hangs up with `421` (Postfix's
    /// `smtpd_hard_error_limit`: 20).
    pub max_errors: u32,
    /// How long to wait for a command or for more data before `421`
    /// (RFC 5321 4.5.3.2.7: at least 5 minutes).
    pub timeout: Duration,
    /// Whether `STARTTLS` is offered (the driver must be able to start
    /// TLS).
    pub starttls: bool,
    /// Whether `AUTH PLAIN LOGIN` is offered.
    pub auth: bool,
    /// Whether AUTH is offered before TLS (default: only after).
    pub auth_without_tls: bool,
    /// Whether `CHUNKING` (`BDAT`) is offered.
    pub chunking: bool,
    /// Bare CR and LF in message data.
    pub bare_newlines: BareNewlines,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            hostname: "localhost".into(),
            max_message_size: 10_240_000,
            max_recipients: 1000,
            max_line: 1000,
            max_errors: 20,
            timeout: Duration::from_secs(300),
            starttls: false,
            auth: false,
            auth_without_tls: false,
            chunking: true,
            bare_newlines: BareNewlines::Normalize,
        }
    }
}

/// What the session knows of its peer, for a [`Delivery`](super::Delivery)
/// to decide with.
#[derive(Clone, Debug, Default)]
pub struct SessionInfo {
    /// The peer's address, as the transport names it.
    pub peer: String,
    /// The name the client gave in `EHLO`/`HELO`.
    pub helo: Option<String>,
    /// Whether it said `EHLO`.
    pub esmtp: bool,
    /// Whether the session runs over TLS.
    pub tls: bool,
    /// Who authenticated, if anyone did.
    pub authenticated: Option<String>,
}

/// A mail transaction's envelope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path (`MAIL FROM`), empty for a bounce.
    pub from: String,
    /// Accepted recipients, in order.
    pub to: Vec<String>,
    /// `BODY=8BITMIME` was given.
    pub eight_bit: bool,
    /// The size the client declared, if it did.
    pub declared_size: Option<usize>,
}

/// What the session needs the application for. Those marked "answer"
/// wait for [`Session::answer`] before the session goes on.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `MAIL FROM`: accept the sender? (answer)
    Mail {
        /// The reverse path (empty for a bounce).
        from: String,
    },
    /// `RCPT TO`: accept this recipient? (answer)
    Rcpt {
        /// The forward path.
        to: String,
    },
    /// `AUTH`: are these a user's credentials? (answer)
    Auth {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// `DATA` or the first `BDAT` with an envelope: begin storing a
    /// message for [`Session::envelope`]. (answer)
    DataStart,
    /// Message bytes, dot-unstuffed and, under
    /// [`BareNewlines::Normalize`], with CRLF line ends. Write them
    /// before polling again (that is the backpressure).
    Data(Vec<u8>),
    /// The data ended: commit the message; the answer is the client's
    /// reply (say `250` only once it is stored). (answer)
    DataEnd,
    /// The message is refused (too big, bare newlines, timeout, the
    /// peer left): throw away what was written.
    DataAborted,
    /// The `220` to `STARTTLS` is in the output: send it, start TLS on
    /// the connection, then call [`Session::tls_started`].
    StartTls,
    /// Send the output and close the connection.
    Close,
}

#[derive(Debug)]
enum Pending {
    Mail(String, Option<usize>, bool),
    Rcpt(String),
    Auth,
    DataStart { bdat: Option<(usize, bool)> },
    DataEnd,
}

enum Taken {
    Line(Vec<u8>),
    Skipped,
    Wait,
}

enum State {
    Command,
    /// An overlong line: skipping to its end.
    Discarding,
    /// `AUTH LOGIN` (`true`: user name known, waiting for the password)
    /// or `AUTH PLAIN` without an initial response.
    AuthLogin(Option<String>),
    AuthPlain,
    Data(Box<DataState>),
    /// A `BDAT` chunk with no message to go to: skipping its bytes.
    BdatSkip(usize, Reply),
    WaitTls,
    Closed,
}

struct DataState {
    rx: Rx,
    /// The last content byte was a CR not yet known to be followed by LF.
    pending_cr: bool,
    scratch: Vec<u8>,
    /// BDAT: a chunk reads straight into the message.
    bdat_last: bool,
}

enum Rx {
    Data(DataReceiver),
    Bdat(BdatReceiver),
}

/// A server-side SMTP session (Twisted's `ESMTP` protocol, without its
/// transport). See the [module](self) for the picture.
pub struct Session {
    config: std::rc::Rc<SessionConfig>,
    info: SessionInfo,
    input: Vec<u8>,
    output: Vec<u8>,
    state: State,
    envelope: Option<Envelope>,
    pending: Option<Pending>,
    /// The application is storing a message (DataStart answered Ok).
    storing: bool,
    /// Bytes of the message so far (after unstuffing and normalising).
    msg_size: usize,
    /// Why the message in progress will be refused at its end.
    refused: Option<Reply>,
    errors: u32,
    deadline: Instant,
    events: std::collections::VecDeque<Event>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.info)
            .field("envelope", &self.envelope)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// Unprocessed input above which [`Session::wants_input`] says stop.
const INPUT_CAP: usize = 64 * 1024;

impl Session {
    /// A new session with `peer`; the greeting is in the output.
    pub fn new(config: std::rc::Rc<SessionConfig>, peer: &str, now: Instant) -> Session {
        let mut s = Session {
            info: SessionInfo {
                peer: peer.to_owned(),
                ..SessionInfo::default()
            },
            input: Vec::new(),
            output: Vec::new(),
            state: State::Command,
            envelope: None,
            pending: None,
            storing: false,
            msg_size: 0,
            refused: None,
            errors: 0,
            deadline: now + config.timeout,
            events: Default::default(),
            config,
        };
        let greet = Reply::plain(220, format!("{} ESMTP braid", s.config.hostname));
        greet.write_to(&mut s.output);
        s
    }

    /// What the session knows of its peer.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The transaction in progress.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// Bytes from the peer. The deadline moves on.
    #[doc(alias = "dataReceived")]
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        match self.state {
            State::Closed => {}
            // Plain text behind STARTTLS before our 220 reached the
            // client: an injection (RFC 3207 section 6). Thrown away.
            State::WaitTls => {
                tracing::debug!(peer = %self.info.peer, n = bytes.len(), "discarding bytes pipelined after STARTTLS");
            }
            _ => {
                self.input.extend_from_slice(bytes);
                self.deadline = now + self.config.timeout;
            }
        }
    }

    /// Whether the driver should read more now (false while an answer is
    /// owed with a lot already waiting, or once closed).
    pub fn wants_input(&self) -> bool {
        !matches!(self.state, State::Closed | State::WaitTls)
            && (self.pending.is_none() || self.input.len() < INPUT_CAP)
    }

    /// Whether the session is over (after [`Event::Close`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Bytes to send to the peer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Whether there is output to send.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due, if it can be
    /// (not while the application owes an answer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.pending.is_some() || matches!(self.state, State::Closed | State::WaitTls) {
            None
        } else {
            Some(self.deadline)
        }
    }

    /// Ends the session with `421` if its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|d| now >= d) {
            tracing::info!(peer = %self.info.peer, "SMTP session timed out");
            self.abort_message();
            self.close_with(Reply::new(
                421,
                [4, 4, 2],
                format!("{} Error: timeout exceeded", self.config.hostname),
            ));
        }
    }

    /// The peer went away: a message being stored is aborted.
    #[doc(alias = "connectionLost")]
    pub fn connection_lost(&mut self) {
        self.abort_message();
        self.state = State::Closed;
    }

    /// TLS is up (after [`Event::StartTls`]): the session starts over, as
    /// RFC 3207 asks (the client must say EHLO again).
    pub fn tls_started(&mut self) {
        if matches!(self.state, State::WaitTls) {
            self.info.tls = true;
            self.info.helo = None;
            self.info.esmtp = false;
            self.info.authenticated = None;
            self.envelope = None;
            self.input.clear();
            self.state = State::Command;
        }
    }

    /// Answers the event that asked ([`Event::Mail`], [`Event::Rcpt`],
    /// [`Event::Auth`], [`Event::DataStart`], [`Event::DataEnd`]): `Ok`
    /// accepts, `Err` sends that reply. For `DataEnd`, `Ok` carries the
    /// queue id to name in the `250`.
    pub fn answer(&mut self, result: Result<String, Reply>) {
        let Some(p) = self.pending.take() else {
            return;
        };
        match (p, result) {
            (Pending::Mail(from, size, eight_bit), Ok(_)) => {
                self.envelope = Some(Envelope {
                    from,
                    to: Vec::new(),
                    eight_bit,
                    declared_size: size,
                });
                self.reply(Reply::ok());
            }
            (Pending::Rcpt(to), Ok(_)) => {
                if let Some(e) = self.envelope.as_mut() {
                    e.to.push(to);
                }
                self.reply(Reply::ok());
            }
            (Pending::Auth, Ok(user)) => {
                tracing::info!(peer = %self.info.peer, user, "SMTP AUTH succeeded");
                self.info.authenticated = Some(user);
                self.reply(Reply::new(235, [2, 7, 0], "Authentication successful"));
            }
            (Pending::DataStart { bdat: None }, Ok(_)) => {
                self.begin_message();
                self.start_data(Rx::Data(Self::primed_receiver()), false);
                self.reply(Reply::plain(354, "End data with <CR><LF>.<CR><LF>"));
            }
            (
                Pending::DataStart {
                    bdat: Some((n, last)),
                },
                Ok(_),
            ) => {
                self.begin_message();
                self.start_data(Rx::Bdat(BdatReceiver::new(n, last)), last);
            }
            (Pending::DataStart { bdat }, Err(r)) => match bdat {
                None => self.error(r),
                Some((n, _)) => {
                    self.envelope = None;
                    self.state = State::BdatSkip(n, r);
                }
            },
            (Pending::DataEnd, Ok(id)) => {
                self.envelope = None;
                self.storing = false;
                let text = if id.is_empty() {
                    "Ok: queued".to_owned()
                } else {
                    format!("Ok: queued as {id}")
                };
                self.reply(Reply::new(250, [2, 0, 0], text));
            }
            (Pending::DataEnd, Err(r)) => {
                self.envelope = None;
                self.storing = false;
                self.reply(r);
            }
            (_, Err(r)) => {
                if matches!(self.state, State::Command) && r.code() == 535 {
                    tracing::info!(peer = %self.info.peer, "SMTP AUTH failed");
                }
                self.error(r);
            }
        }
    }

    /// The next thing the application must do, or `None` when the session
    /// needs more input (or an answer).
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            if self.pending.is_some() {
                return None;
            }
            if !self.step() {
                if self.input.is_empty() && self.input.capacity() > 4096 {
                    // A burst is over: an idle session keeps no big buffer.
                    self.input = Vec::new();
                }
                return self.events.pop_front();
            }
        }
    }

    /// Moves on by one unit of input; false when it cannot.
    fn step(&mut self) -> bool {
        match &mut self.state {
            State::Closed | State::WaitTls => false,
            State::Command => match self.take_line() {
                Taken::Line(line) => {
                    self.command(&line);
                    true
                }
                Taken::Skipped => true,
                Taken::Wait => false,
            },
            State::Discarding => match memchr_lf(&self.input) {
                Some(i) => {
                    self.input.drain(..=i);
                    self.state = State::Command;
                    self.error(Reply::line_too_long());
                    true
                }
                None => {
                    self.input.clear();
                    false
                }
            },
            State::AuthLogin(_) | State::AuthPlain => match self.take_line() {
                Taken::Line(line) => {
                    self.auth_line(&line);
                    true
                }
                Taken::Skipped => true,
                Taken::Wait => false,
            },
            State::BdatSkip(left, _) => {
                let n = (*left).min(self.input.len());
                self.input.drain(..n);
                *left -= n;
                if *left > 0 {
                    return false;
                }
                let State::BdatSkip(_, r) = std::mem::replace(&mut self.state, State::Command)
                else {
                    unreachable!()
                };
                self.error(r);
                true
            }
            State::Data(_) => self.data_step(),
        }
    }

    /// A complete line from the input, or `None` (overlong lines switch
    /// to discarding).
    /// A complete line from the input. An overlong one is answered with
    /// `500` and skipped (to its end, if that has not arrived yet).
    fn take_line(&mut self) -> Taken {
        match memchr_lf(&self.input) {
            Some(i) if i < self.config.max_line => Taken::Line(self.input.drain(..=i).collect()),
            Some(i) => {
                self.input.drain(..=i);
                self.state = State::Command;
                self.error(Reply::line_too_long());
                Taken::Skipped
            }
            None if self.input.len() >= self.config.max_line => {
                self.input.clear();
                self.state = State::Discarding;
                Taken::Skipped
            }
            None => Taken::Wait,
        }
    }

    fn reply(&mut self, r: Reply) {
        r.write_to(&mut self.output);
    }

    /// An error reply, counted: past the limit the session ends.
    fn error(&mut self, r: Reply) {
        self.reply(r);
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.close_with(Reply::new(421, [4, 7, 0], "Error: too many errors"));
        }
    }

    fn close_with(&mut self, r: Reply) {
        self.reply(r);
        self.state = State::Closed;
        self.input.clear();
        self.events.push_back(Event::Close);
    }

    fn abort_message(&mut self) {
        if self.storing {
            self.storing = false;
            self.envelope = None;
            self.events.push_back(Event::DataAborted);
        }
    }

    fn auth_offered(&self) -> bool {
        self.config.auth && (self.info.tls || self.config.auth_without_tls)
    }

    fn command(&mut self, line: &[u8]) {
        let parsed = Request::parse(&mut line.iter()).map(Request::into_owned);
        let req = match parsed {
            Ok(r) => r,
            Err(e) => return self.error(parse_error(e)),
        };
        match req {
            Request::Ehlo { host } => self.hello(host, true),
            Request::Helo { host } => self.hello(host, false),
            Request::Lhlo { .. } => self.error(Reply::unrecognized()),
            Request::Mail { from } => {
                if self.info.helo.is_none() {
                    return self.error(Reply::bad_sequence("send HELO/EHLO first"));
                }
                if self.envelope.is_some() {
                    return self.error(Reply::bad_sequence("nested MAIL command"));
                }
                let size = (from.size > 0).then_some(from.size);
                if size.is_some_and(|s| s > self.config.max_message_size) {
                    return self.error(Reply::too_big());
                }
                let eight_bit = from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0;
                if from.flags & (smtp_proto::MAIL_SMTPUTF8 | smtp_proto::MAIL_BODY_BINARYMIME) != 0
                {
                    return self.error(Reply::new(555, [5, 5, 4], "Unsupported option"));
                }
                self.pending = Some(Pending::Mail(from.address.clone(), size, eight_bit));
                self.events.push_back(Event::Mail { from: from.address });
            }
            Request::Rcpt { to } => {
                let Some(env) = &self.envelope else {
                    return self.error(Reply::bad_sequence("need MAIL command"));
                };
                if env.to.len() >= self.config.max_recipients {
                    return self.reply(Reply::new(452, [4, 5, 3], "Error: too many recipients"));
                }
                if to.address.is_empty() {
                    return self.error(Reply::new(501, [5, 1, 3], "Bad recipient address syntax"));
                }
                self.pending = Some(Pending::Rcpt(to.address.clone()));
                self.events.push_back(Event::Rcpt { to: to.address });
            }
            Request::Data => match &self.envelope {
                None => self.error(Reply::bad_sequence("need MAIL command")),
                Some(e) if e.to.is_empty() => {
                    self.error(Reply::new(554, [5, 5, 1], "Error: no valid recipients"))
                }
                Some(_) if self.storing => self.error(Reply::bad_sequence("DATA after BDAT")),
                Some(_) => {
                    self.pending = Some(Pending::DataStart { bdat: None });
                    self.events.push_back(Event::DataStart);
                }
            },
            Request::Bdat {
                chunk_size,
                is_last,
            } => {
                if !self.config.chunking {
                    return self.error(Reply::unrecognized());
                }
                let refused = match &self.envelope {
                    None => Some(Reply::bad_sequence("need MAIL command")),
                    Some(e) if e.to.is_empty() => {
                        Some(Reply::new(554, [5, 5, 1], "Error: no valid recipients"))
                    }
                    _ => None,
                };
                if let Some(r) = refused {
                    self.state = State::BdatSkip(chunk_size, r);
                } else if self.storing {
                    self.start_data(Rx::Bdat(BdatReceiver::new(chunk_size, is_last)), is_last);
                } else {
                    self.pending = Some(Pending::DataStart {
                        bdat: Some((chunk_size, is_last)),
                    });
                    self.events.push_back(Event::DataStart);
                }
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            Request::StartTls => {
                if !self.config.starttls {
                    return self.error(Reply::not_implemented());
                }
                if self.info.tls {
                    return self.error(Reply::new(554, [5, 5, 1], "Error: TLS already active"));
                }
                if self.envelope.is_some() {
                    return self.error(Reply::bad_sequence("MAIL transaction in progress"));
                }
                if !self.input.is_empty() {
                    tracing::info!(peer = %self.info.peer, n = self.input.len(), "discarding commands pipelined after STARTTLS");
                    self.input.clear();
                }
                self.reply(Reply::new(220, [2, 0, 0], "Ready to start TLS"));
                self.state = State::WaitTls;
                self.events.push_back(Event::StartTls);
            }
            Request::Noop { .. } => self.reply(Reply::ok()),
            Request::Rset => {
                self.envelope = None;
                self.abort_message();
                self.reply(Reply::ok());
            }
            Request::Quit => self.close_with(Reply::new(221, [2, 0, 0], "Bye")),
            Request::Vrfy { .. } | Request::Expn { .. } => {
                self.error(Reply::new(502, [5, 5, 1], "Error: command disabled"))
            }
            Request::Help { .. } => {
                self.reply(Reply::new(214, [2, 0, 0], "See RFC 5321"));
            }
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.error(Reply::not_implemented())
            }
        }
    }

    fn hello(&mut self, host: String, esmtp: bool) {
        if host.is_empty() {
            return self.error(Reply::syntax(if esmtp {
                "EHLO hostname"
            } else {
                "HELO hostname"
            }));
        }
        self.envelope = None;
        self.abort_message();
        self.info.helo = Some(host);
        self.info.esmtp = esmtp;
        if !esmtp {
            return self.reply(Reply::plain(250, self.config.hostname.clone()));
        }
        let mut lines = vec![self.config.hostname.clone(), "PIPELINING".into()];
        lines.push(format!("SIZE {}", self.config.max_message_size));
        if self.config.starttls && !self.info.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() && self.info.authenticated.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.push("ENHANCEDSTATUSCODES".into());
        lines.push("8BITMIME".into());
        if self.config.chunking {
            lines.push("CHUNKING".into());
        }
        self.reply(Reply::plain(250, lines.join("\n")));
    }
}

fn memchr_lf(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn parse_error(e: ParseError) -> Reply {
    match e {
        ParseError::UnknownCommand => Reply::unrecognized(),
        ParseError::InvalidSenderAddress => Reply::new(501, [5, 1, 7], "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, [5, 1, 3], "Bad recipient address syntax")
        }
        ParseError::SyntaxError { syntax } => Reply::syntax(syntax),
        ParseError::InvalidParameter { param } => {
            Reply::new(501, [5, 5, 4], format!("Invalid parameter: {param}"))
        }
        ParseError::UnsupportedParameter { param } => {
            Reply::new(555, [5, 5, 4], format!("Unsupported option: {param}"))
        }
        ParseError::ResponseTooLong => Reply::line_too_long(),
        ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
            Reply::syntax("incomplete command")
        }
    }
}
