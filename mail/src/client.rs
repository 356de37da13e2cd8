//! The SMTP client (Twisted's `ESMTPSender` and `sendmail`): hands one
//! message to a server.
//!
//! ```text
//!   send() ─▶ connect ─▶ 220 ─▶ EHLO (HELO if refused) ─▶ STARTTLS? ─▶ EHLO ─▶ AUTH?
//!        ─▶ MAIL, RCPT.., DATA (one write when PIPELINING) ─▶ body, dot-stuffed,
//!           streamed with backpressure ─▶ "." ─▶ 250 ─▶ QUIT ─▶ Sent
//! ```
//!
//! Every wait for a reply has the timeout of RFC 5321 4.5.3.2 (five
//! minutes by default; ten for the reply to the final dot). Replies are
//! capped (lines and total size), so a hostile server cannot make the
//! client buffer without end.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine as _;
use braid::aio::Stream;
use braid::{Deferred, Reactor};
use braid_tls::{TlsStart, TlsTransportExt};
use futures_io::AsyncRead;
use smtp_proto::EhloResponse;

use crate::reply::Reply;

/// Whether to speak TLS (STARTTLS) with the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsPolicy {
    /// Use STARTTLS when the server offers it, plain text otherwise.
    #[default]
    Opportunistic,
    /// Fail (with [`SendErrorKind::TlsRequired`]) unless the server
    /// offers STARTTLS and the handshake succeeds; nothing of the
    /// message is sent in plain text (unlike twisted#10334).
    Required,
    /// Never start TLS.
    Never,
}

/// How to talk to the server.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The name to say in EHLO.
    pub helo: String,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// Certificates to trust for STARTTLS (the platform's by default).
    pub tls_config: braid_tls::ClientConfig,
    /// User name and password for AUTH (PLAIN, else LOGIN).
    pub credentials: Option<(String, String)>,
    /// Whether the password may be sent without TLS.
    pub auth_without_tls: bool,
    /// Longest wait for a reply (the reply to the final dot gets twice
    /// this).
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            helo: "localhost".into(),
            tls: TlsPolicy::Opportunistic,
            tls_config: braid_tls::ClientConfig::new(),
            credentials: None,
            auth_without_tls: false,
            timeout: Duration::from_secs(300),
        }
    }
}

/// What the server did with a message it accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Recipients the server accepted.
    pub accepted: Vec<String>,
    /// Recipients it refused, with its reply to each.
    pub refused: Vec<(String, Reply)>,
    /// Its reply to the end of the data (`250 ... queued as ...`).
    pub reply: Reply,
    /// Whether the session ran over TLS.
    pub tls: bool,
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// Connecting, reading or writing failed.
    Io,
    /// The server did not answer in time.
    Timeout,
    /// The server said something that is not SMTP (or too much of it).
    Protocol,
    /// The server refused (see [`SendError::reply`]).
    Refused,
    /// Every recipient was refused.
    NoRecipients,
    /// TLS was required and the server offers none.
    TlsRequired,
    /// The TLS handshake failed.
    Tls,
    /// Authentication failed or is not possible.
    Auth,
}

/// Why a message was not sent.
#[derive(Clone, Debug)]
pub struct SendError {
    kind: SendErrorKind,
    reply: Option<Reply>,
    detail: String,
    refused: Vec<(String, Reply)>,
}

impl SendError {
    fn new(kind: SendErrorKind, detail: impl Into<String>) -> SendError {
        SendError {
            kind,
            reply: None,
            detail: detail.into(),
            refused: Vec::new(),
        }
    }

    fn refused(stage: &str, reply: Reply) -> SendError {
        SendError {
            kind: SendErrorKind::Refused,
            detail: format!("{stage} refused"),
            reply: Some(reply),
            refused: Vec::new(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> SendErrorKind {
        self.kind
    }

    /// The server's reply, when it refused.
    pub fn reply(&self) -> Option<&Reply> {
        self.reply.as_ref()
    }

    /// Recipients refused one by one (with [`SendErrorKind::NoRecipients`]).
    pub fn refused_recipients(&self) -> &[(String, Reply)] {
        &self.refused
    }

    /// Whether trying again later may work: a 4xx reply, a timeout or a
    /// network failure (a queue retries these and bounces the rest).
    pub fn is_transient(&self) -> bool {
        match self.kind {
            SendErrorKind::Io | SendErrorKind::Timeout => true,
            SendErrorKind::NoRecipients => self.refused.iter().all(|(_, r)| r.is_transient()),
            _ => self.reply.as_ref().is_some_and(Reply::is_transient),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)?;
        if let Some(r) = &self.reply {
            write!(f, ": {r}")?;
        }
        for (who, r) in &self.refused {
            write!(f, "; <{who}>: {r}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SendError {}

impl From<braid::Failure> for SendError {
    fn from(f: braid::Failure) -> Self {
        SendError::new(SendErrorKind::Io, f.to_string())
    }
}

impl From<io::Error> for SendError {
    fn from(e: io::Error) -> Self {
        SendError::new(SendErrorKind::Io, e.to_string())
    }
}

/// Connects to `host:port` and sends `message` (the whole RFC 5322 text,
/// read as it goes) from `from` to `to`.
///
/// ```no_run
/// use braid_mail::client::{send, ClientConfig};
///
/// let reactor = braid::Reactor::new()?;
/// let r = reactor.clone();
/// // In a GUI: spawn it and update the window when it is done.
/// let task = reactor.spawn_local(async move {
///     let message = &b"Subject: hello\r\n\r\nfrom braid\r\n"[..];
///     let to = ["bob@example.org".to_owned()];
///     send(&r, "mail.example.org", 25, &ClientConfig::default(), "alice@example.org", &to, message).await
/// });
/// # let _ = task;
/// # std::io::Result::Ok(())
/// ```
///
/// # Errors
///
/// A [`SendError`]: see its [kind](SendError::kind) and
/// [`is_transient`](SendError::is_transient).
#[doc(alias = "sendmail")]
pub async fn send(
    reactor: &Reactor,
    host: &str,
    port: u16,
    config: &ClientConfig,
    from: &str,
    to: &[String],
    message: impl AsyncRead + Unpin,
) -> Result<Sent, SendError> {
    let stream = match reactor
        .timeout(config.timeout, Stream::connect_host(reactor, host, port))
        .await
    {
        Ok(s) => s?,
        Err(_) => return Err(SendError::new(SendErrorKind::Timeout, "connect timed out")),
    };
    send_over(reactor, stream, host, config, from, to, message).await
}

/// [`send`] as a [`Deferred`] (Twisted's `sendmail`), for callback code.
pub fn send_deferred(
    reactor: &Reactor,
    host: &str,
    port: u16,
    config: &ClientConfig,
    from: &str,
    to: &[String],
    message: Vec<u8>,
) -> Deferred<Sent, SendError> {
    let (r, host, config, from, to) = (
        reactor.clone(),
        host.to_owned(),
        config.clone(),
        from.to_owned(),
        to.to_vec(),
    );
    let d = Deferred::new();
    let resolver = d.resolver();
    drop(reactor.spawn_local(async move {
        resolver.resolve(send(&r, &host, port, &config, &from, &to, &message[..]).await);
    }));
    d
}

/// Sends over a connection already made (any transport: a Unix socket, a
/// tunnel, the in-memory pair of tests). `server_name` is what the TLS
/// certificate must name.
///
/// # Errors
///
/// As [`send`].
pub async fn send_over(
    reactor: &Reactor,
    stream: Stream,
    server_name: &str,
    config: &ClientConfig,
    from: &str,
    to: &[String],
    message: impl AsyncRead + Unpin,
) -> Result<Sent, SendError> {
    let mut c = Conn {
        reactor: reactor.clone(),
        stream,
        buf: Vec::new(),
        timeout: config.timeout,
    };
    let r = c.transaction(server_name, config, from, to, message).await;
    if r.is_err() {
        // Best effort: a polite end (the error is what matters).
        let _ = c.write(b"QUIT\r\n").await;
    }
    c.stream.transport().lose_connection();
    r
}

/// Longest reply accepted (lines times their length, generously).
const MAX_REPLY: usize = 64 * 1024;

struct Conn {
    reactor: Reactor,
    stream: Stream,
    /// Received, not yet parsed.
    buf: Vec<u8>,
    timeout: Duration,
}

impl Conn {
    async fn transaction(
        &mut self,
        server_name: &str,
        config: &ClientConfig,
        from: &str,
        to: &[String],
        message: impl AsyncRead + Unpin,
    ) -> Result<Sent, SendError> {
        if to.is_empty() {
            return Err(SendError::new(SendErrorKind::NoRecipients, "no recipients"));
        }
        for a in std::iter::once(from).chain(to.iter().map(String::as_str)) {
            if a.bytes()
                .any(|b| b.is_ascii_control() || b == b'<' || b == b'>')
            {
                return Err(SendError::new(
                    SendErrorKind::Protocol,
                    format!("invalid address {a:?}"),
                ));
            }
        }
        let greeting = self.reply().await?.0;
        if greeting.code() != 220 {
            return Err(SendError::refused("the connection", greeting));
        }
        let mut ehlo = self.hello(&config.helo).await?;
        let mut tls = false;
        let offers_tls = ehlo
            .as_ref()
            .is_some_and(|e| e.has_capability(smtp_proto::EXT_START_TLS));
        match (config.tls, offers_tls) {
            (TlsPolicy::Never, _) | (TlsPolicy::Opportunistic, false) => {}
            (TlsPolicy::Required, false) => {
                return Err(SendError::new(
                    SendErrorKind::TlsRequired,
                    "TLS is required and the server does not offer STARTTLS",
                ))
            }
            (_, true) => {
                self.write(b"STARTTLS\r\n").await?;
                let r = self.reply().await?.0;
                if r.code() != 220 {
                    if config.tls == TlsPolicy::Required {
                        return Err(SendError::refused("STARTTLS", r));
                    }
                } else {
                    // Anything after the 220 came before TLS: an injection.
                    self.buf.clear();
                    crate::server::discard_buffered(&self.stream);
                    TlsStart::client(&config.tls_config, server_name)
                        .and_then(|s| self.stream.transport().start_tls(s))
                        .map_err(|e| SendError::new(SendErrorKind::Tls, e.to_string()))?;
                    self.stream
                        .handshake()
                        .await
                        .map_err(|e| SendError::new(SendErrorKind::Tls, e.to_string()))?;
                    tls = true;
                    ehlo = self.hello(&config.helo).await?;
                }
            }
        }
        if let Some((user, password)) = &config.credentials {
            if !tls && !config.auth_without_tls {
                return Err(SendError::new(
                    SendErrorKind::Auth,
                    "refusing to send a password without TLS",
                ));
            }
            let mechs = ehlo.as_ref().map(|e| e.auth()).unwrap_or(0);
            self.auth(mechs, user, password).await?;
        }
        let pipelining = ehlo
            .as_ref()
            .is_some_and(|e| e.has_capability(smtp_proto::EXT_PIPELINING));
        let eight_bit = ehlo
            .as_ref()
            .is_some_and(|e| e.has_capability(smtp_proto::EXT_8BIT_MIME));
        let body = if eight_bit { " BODY=8BITMIME" } else { "" };
        let mail = format!("MAIL FROM:<{from}>{body}\r\n");
        let rcpts: Vec<String> = to.iter().map(|t| format!("RCPT TO:<{t}>\r\n")).collect();
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        let data_reply;
        if pipelining {
            let mut all = mail.into_bytes();
            for r in &rcpts {
                all.extend_from_slice(r.as_bytes());
            }
            all.extend_from_slice(b"DATA\r\n");
            self.write(&all).await?;
            let m = self.reply().await?.0;
            for t in to {
                let r = self.reply().await?.0;
                if r.is_positive() {
                    accepted.push(t.clone());
                } else {
                    refused.push((t.clone(), r));
                }
            }
            data_reply = self.reply().await?.0;
            if !m.is_positive() {
                return Err(SendError::refused("MAIL FROM", m));
            }
        } else {
            self.write(mail.as_bytes()).await?;
            let m = self.reply().await?.0;
            if !m.is_positive() {
                return Err(SendError::refused("MAIL FROM", m));
            }
            for (t, line) in to.iter().zip(&rcpts) {
                self.write(line.as_bytes()).await?;
                let r = self.reply().await?.0;
                if r.is_positive() {
                    accepted.push(t.clone());
                } else {
                    refused.push((t.clone(), r));
                }
            }
            if accepted.is_empty() {
                data_reply = Reply::plain(554, "");
            } else {
                self.write(b"DATA\r\n").await?;
                data_reply = self.reply().await?.0;
            }
        }
        if accepted.is_empty() {
            if data_reply.code() == 354 {
                // A server that said 354 anyway gets an empty message's
                // end, which it must refuse for want of recipients.
                self.write(b".\r\n").await?;
                let _ = self.reply().await;
            }
            let mut e = SendError::new(SendErrorKind::NoRecipients, "every recipient was refused");
            e.refused = refused;
            return Err(e);
        }
        if data_reply.code() != 354 {
            return Err(SendError::refused("DATA", data_reply));
        }
        self.body(message).await?;
        self.timeout *= 2;
        let end = self.reply().await?.0;
        if !end.is_positive() {
            return Err(SendError::refused("the message", end));
        }
        self.write(b"QUIT\r\n").await?;
        // The 221 is a courtesy: the message is already accepted.
        let _ = self.reply().await;
        Ok(Sent {
            accepted,
            refused,
            reply: end,
            tls,
        })
    }

    /// EHLO, or HELO if the server refuses it (then no extensions).
    async fn hello(&mut self, name: &str) -> Result<Option<EhloResponse<String>>, SendError> {
        self.write(format!("EHLO {name}\r\n").as_bytes()).await?;
        let (r, raw) = self.reply().await?;
        if r.code() == 250 {
            return EhloResponse::parse(&mut raw.iter()).map(Some).map_err(|e| {
                SendError::new(SendErrorKind::Protocol, format!("bad EHLO reply: {e}"))
            });
        }
        self.write(format!("HELO {name}\r\n").as_bytes()).await?;
        let r = self.reply().await?.0;
        if r.code() != 250 {
            return Err(SendError::refused("HELO", r));
        }
        Ok(None)
    }

    async fn auth(&mut self, mechs: u64, user: &str, password: &str) -> Result<(), SendError> {
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let r = if mechs & smtp_proto::AUTH_PLAIN != 0 {
            let token = b64(format!("\0{user}\0{password}").as_bytes());
            self.write(format!("AUTH PLAIN {token}\r\n").as_bytes())
                .await?;
            self.reply().await?.0
        } else if mechs & smtp_proto::AUTH_LOGIN != 0 {
            self.write(b"AUTH LOGIN\r\n").await?;
            let mut r = self.reply().await?.0;
            for step in [user, password] {
                if r.code() != 334 {
                    break;
                }
                self.write(format!("{}\r\n", b64(step.as_bytes())).as_bytes())
                    .await?;
                r = self.reply().await?.0;
            }
            r
        } else {
            return Err(SendError::new(
                SendErrorKind::Auth,
                "the server offers neither AUTH PLAIN nor LOGIN",
            ));
        };
        if r.code() == 235 {
            Ok(())
        } else {
            let mut e = SendError::refused("AUTH", r);
            e.kind = SendErrorKind::Auth;
            Err(e)
        }
    }

    /// The message, dot-stuffed with CRLF line ends, then the final dot.
    async fn body(&mut self, mut message: impl AsyncRead + Unpin) -> Result<(), SendError> {
        let mut input = vec![0u8; 32 * 1024];
        let mut out = Vec::with_capacity(40 * 1024);
        let mut stuff = Stuffer::default();
        loop {
            let n = poll_fn(|cx| Pin::new(&mut message).poll_read(cx, &mut input)).await?;
            out.clear();
            if n == 0 {
                stuff.finish(&mut out);
                out.extend_from_slice(b".\r\n");
                return self.write(&out).await;
            }
            stuff.push(&input[..n], &mut out);
            self.write(&out).await?;
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        poll_fn(|cx| self.stream.poll_write_all(cx, &[bytes]))
            .await
            .map(|_| ())
            .map_err(SendError::from)
    }

    /// The next reply, and its raw bytes (for EHLO).
    async fn reply(&mut self) -> Result<(Reply, Vec<u8>), SendError> {
        let reactor = self.reactor.clone();
        match reactor.timeout(self.timeout, self.reply_inner()).await {
            Ok(r) => r,
            Err(_) => Err(SendError::new(
                SendErrorKind::Timeout,
                "the server did not answer in time",
            )),
        }
    }

    async fn reply_inner(&mut self) -> Result<(Reply, Vec<u8>), SendError> {
        loop {
            if let Some(end) = complete_reply(&self.buf)? {
                let raw: Vec<u8> = self.buf.drain(..end).collect();
                return Ok((parse_reply(&raw)?, raw));
            }
            if self.buf.len() > MAX_REPLY {
                return Err(SendError::new(SendErrorKind::Protocol, "reply too long"));
            }
            let buf = &mut self.buf;
            let n = poll_fn(|cx| {
                self.stream.poll_read_with(cx, 16 * 1024, |a, b| {
                    buf.extend_from_slice(a);
                    buf.extend_from_slice(b);
                })
            })
            .await?;
            if n == 0 {
                return Err(SendError::new(
                    SendErrorKind::Io,
                    "the server closed the connection",
                ));
            }
        }
    }
}

/// The length of the first complete reply in `buf` (through the LF of its
/// last line), if it is all there.
fn complete_reply(buf: &[u8]) -> Result<Option<usize>, SendError> {
    let mut start = 0;
    while let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + i];
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(SendError::new(
                SendErrorKind::Protocol,
                format!("not an SMTP reply: {:?}", String::from_utf8_lossy(line)),
            ));
        }
        start += i + 1;
        if line.get(3) != Some(&b'-') {
            return Ok(Some(start));
        }
    }
    Ok(None)
}

/// A complete reply's code, enhanced code and text.
fn parse_reply(raw: &[u8]) -> Result<Reply, SendError> {
    let text = String::from_utf8_lossy(raw);
    let mut code = 0u16;
    let mut enhanced = None;
    let mut lines = Vec::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let line = line.trim_end_matches('\r');
        let c: u16 = line[..3].parse().unwrap_or(0);
        if code != 0 && c != code {
            return Err(SendError::new(
                SendErrorKind::Protocol,
                "reply codes differ between lines",
            ));
        }
        code = c;
        let mut rest = line.get(4..).unwrap_or("");
        if let Some((first, tail)) = rest.split_once(' ').or(Some((rest, ""))) {
            let parts: Vec<&str> = first.split('.').collect();
            if parts.len() == 3 {
                if let (Ok(a), Ok(b), Ok(c)) =
                    (parts[0].parse(), parts[1].parse(), parts[2].parse())
                {
                    enhanced = Some([a, b, c]);
                    rest = tail;
                }
            }
        }
        lines.push(rest.to_owned());
    }
    let text = lines.join("\n");
    Ok(match enhanced {
        Some(e) => Reply::new(code, e, text),
        None => Reply::plain(code, text),
    })
}

/// Dot-stuffing (RFC 5321 4.5.2) with CRLF line ends, across chunks.
#[derive(Debug)]
struct Stuffer {
    line_start: bool,
    cr: bool,
}

impl Default for Stuffer {
    fn default() -> Self {
        Stuffer {
            line_start: true,
            cr: false,
        }
    }
}

impl Stuffer {
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if self.cr && b != b'\n' {
                // A bare CR: end the line properly.
                out.push(b'\n');
                self.line_start = true;
            }
            self.cr = false;
            match b {
                b'\r' => {
                    out.push(b'\r');
                    self.cr = true;
                    continue;
                }
                b'\n' => {
                    if out.last() != Some(&b'\r') {
                        out.push(b'\r');
                    }
                    out.push(b'\n');
                    self.line_start = true;
                    continue;
                }
                b'.' if self.line_start => out.extend_from_slice(b".."),
                _ => out.push(b),
            }
            self.line_start = false;
        }
    }

    /// Ends the last line if it is open.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.cr {
            out.push(b'\n');
        } else if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        self.line_start = true;
        self.cr = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = Stuffer::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn stuffing_across_chunks() {
        assert_eq!(stuffed(&[b".a\r\n.\r\nb"]), b"..a\r\n..\r\nb\r\n");
        assert_eq!(
            stuffed(&[b"x\r", b"\n", b".", b"y\n.\n"]),
            b"x\r\n..y\r\n..\r\n"
        );
        assert_eq!(stuffed(&[b"bare\rcr\r"]), b"bare\r\ncr\r\n");
        assert_eq!(stuffed(&[b""]), b"");
    }

    #[test]
    fn replies_multi_line_and_capped() {
        assert_eq!(complete_reply(b"250-a\r\n250 b\r\n").unwrap(), Some(14));
        assert_eq!(complete_reply(b"250-a\r\n250").unwrap(), None);
        assert!(complete_reply(b"hello\r\n").is_err());
        let r = parse_reply(b"250-2.0.0 one\r\n250 2.0.0 two\r\n").unwrap();
        assert_eq!(
            (r.code(), r.enhanced(), r.text()),
            (250, Some([2, 0, 0]), "one\ntwo")
        );
        let r = parse_reply(b"220 mx ESMTP\r\n").unwrap();
        assert_eq!((r.code(), r.enhanced(), r.text()), (220, None, "mx ESMTP"));
    }
}
