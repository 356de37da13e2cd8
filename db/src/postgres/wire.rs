//! The wire: one connection's login and statements over an aio stream,
//! on postgres-protocol's codec.

use std::future::{poll_fn, Future};
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use braid::aio::Stream;
use braid::Reactor;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use futures_util::AsyncWriteExt;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::{backend, frontend};
use postgres_protocol::IsNull;
use rusqlite::types::Value;

use super::{Notification, PgConfig, PgError, PgErrorKind};

pub(super) fn field_text(f: &backend::ErrorField<'_>) -> String {
    String::from_utf8_lossy(f.value_bytes()).into_owned()
}

/// One connection: the protocol over an aio stream.
pub(super) struct Conn {
    stream: Stream,
    buf: BytesMut,
    max_message: usize,
    pub(super) notify: Option<Rc<dyn Fn(Notification)>>,
}

/// What a statement gave: its rows and the count its tag says.
pub(super) struct Outcome {
    pub(super) rows: Vec<Vec<Value>>,
    pub(super) affected: u64,
}

/// How a pool reaches its server: TCP by default, or a stream of the
/// caller's (a Unix socket, a TLS stream, a test's in-memory pair).
pub type Connect =
    Rc<dyn Fn(&Reactor, &PgConfig) -> std::pin::Pin<Box<dyn Future<Output = io::Result<Stream>>>>>;

pub(super) fn tcp_connect() -> Connect {
    Rc::new(|reactor: &Reactor, cfg: &PgConfig| {
        let (r, host, port, t) = (
            reactor.clone(),
            cfg.host.clone(),
            cfg.port,
            cfg.connect_timeout,
        );
        Box::pin(async move { Stream::connect_host_timeout(&r, &host, port, Some(t)).await })
    })
}

impl Conn {
    pub(super) async fn connect(
        reactor: &Reactor,
        cfg: &PgConfig,
        connect: &Connect,
    ) -> Result<Conn, PgError> {
        let login = async {
            let stream = connect(reactor, cfg)
                .await
                .map_err(|e| PgError::io(PgErrorKind::Connect, &e))?;
            let _ = stream.transport().set_nodelay(true);
            let mut conn = Conn {
                stream,
                buf: BytesMut::new(),
                max_message: cfg.max_message,
                notify: None,
            };
            conn.login(cfg).await?;
            Ok(conn)
        };
        reactor
            .timeout(cfg.connect_timeout, login)
            .await
            .unwrap_or_else(|_| Err(PgError::new(PgErrorKind::Connect, "timed out connecting")))
    }

    async fn login(&mut self, cfg: &PgConfig) -> Result<(), PgError> {
        let mut out = BytesMut::new();
        frontend::startup_message(
            [
                ("user", cfg.user.as_str()),
                ("database", cfg.database.as_str()),
                ("application_name", "braid"),
                ("client_encoding", "UTF8"),
            ],
            &mut out,
        )
        .map_err(|e| PgError::io(PgErrorKind::Config, &e))?;
        self.send(&out).await?;
        let password = || {
            cfg.password.as_deref().ok_or_else(|| {
                PgError::new(
                    PgErrorKind::Auth,
                    "the server asks for a password and none was given",
                )
            })
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let mut out = BytesMut::new();
            match self.read().await? {
                backend::Message::AuthenticationOk => {}
                backend::Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?.as_bytes(), &mut out)
                        .map_err(|e| PgError::io(PgErrorKind::Protocol, &e))?;
                }
                backend::Message::AuthenticationMd5Password(b) => {
                    let hash = md5_hash(cfg.user.as_bytes(), password()?.as_bytes(), b.salt());
                    frontend::password_message(hash.as_bytes(), &mut out)
                        .map_err(|e| PgError::io(PgErrorKind::Protocol, &e))?;
                }
                backend::Message::AuthenticationSasl(b) => {
                    let mut mechanisms = b.mechanisms();
                    let mut scram_ok = false;
                    while let Ok(Some(m)) = mechanisms.next() {
                        scram_ok |= m == sasl::SCRAM_SHA_256;
                    }
                    if !scram_ok {
                        return Err(PgError::new(
                            PgErrorKind::Auth,
                            "the server offers no SASL mechanism braid speaks",
                        ));
                    }
                    let s = sasl::ScramSha256::new(
                        password()?.as_bytes(),
                        sasl::ChannelBinding::unsupported(),
                    );
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut out)
                        .map_err(|e| PgError::io(PgErrorKind::Protocol, &e))?;
                    scram = Some(s);
                }
                backend::Message::AuthenticationSaslContinue(b) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| PgError::new(PgErrorKind::Protocol, "SASL out of order"))?;
                    s.update(b.data())
                        .map_err(|e| PgError::io(PgErrorKind::Auth, &e))?;
                    frontend::sasl_response(s.message(), &mut out)
                        .map_err(|e| PgError::io(PgErrorKind::Protocol, &e))?;
                }
                backend::Message::AuthenticationSaslFinal(b) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| PgError::new(PgErrorKind::Protocol, "SASL out of order"))?;
                    // The server proves it knows the password too.
                    s.finish(b.data())
                        .map_err(|e| PgError::io(PgErrorKind::Auth, &e))?;
                }
                backend::Message::BackendKeyData(_) => {}
                backend::Message::ReadyForQuery(_) => return Ok(()),
                backend::Message::ErrorResponse(b) => {
                    let mut e = PgError::from_fields(&b);
                    if e.kind == PgErrorKind::Server {
                        e.kind = PgErrorKind::Connect;
                    }
                    return Err(e);
                }
                _ => return Err(PgError::new(
                    PgErrorKind::Auth,
                    "the server asks for a login method braid does not speak (GSS, SSPI, Kerberos)",
                )),
            }
            if !out.is_empty() {
                self.send(&out).await?;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), PgError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| PgError::io(PgErrorKind::ConnectionLost, &e))
    }

    /// The next message, notices logged and notifications handed on.
    pub(super) async fn read(&mut self) -> Result<backend::Message, PgError> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if len > self.max_message {
                    return Err(PgError::new(
                        PgErrorKind::Protocol,
                        format!(
                            "a {len}-byte message is over the {}-byte cap",
                            self.max_message
                        ),
                    ));
                }
            }
            match backend::Message::parse(&mut self.buf)
                .map_err(|e| PgError::io(PgErrorKind::Protocol, &e))?
            {
                Some(backend::Message::NoticeResponse(b)) => {
                    let mut fields = b.fields();
                    while let Ok(Some(f)) = fields.next() {
                        if f.type_() == b'M' {
                            tracing::info!(notice = %field_text(&f), "PostgreSQL notice");
                        }
                    }
                }
                Some(backend::Message::NotificationResponse(b)) => {
                    let n = Notification {
                        channel: b.channel().unwrap_or_default().to_owned(),
                        payload: b.message().unwrap_or_default().to_owned(),
                        process_id: b.process_id(),
                    };
                    if let Some(f) = &self.notify {
                        f(n);
                    }
                }
                Some(backend::Message::ParameterStatus(_)) => {}
                Some(m) => return Ok(m),
                None => {
                    let buf = &mut self.buf;
                    let n = poll_fn(|cx| {
                        self.stream.poll_read_with(cx, 64 * 1024, |a, b| {
                            buf.extend_from_slice(a);
                            buf.extend_from_slice(b);
                        })
                    })
                    .await
                    .map_err(|e| PgError::io(PgErrorKind::ConnectionLost, &e))?;
                    if n == 0 {
                        return Err(PgError::new(
                            PgErrorKind::ConnectionLost,
                            "the server closed the connection",
                        ));
                    }
                }
            }
        }
    }

    /// Whether an idle connection is still good: nothing arrived while it
    /// waited (a server going down says so, then closes).
    pub(super) fn still_good(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let buf = &mut self.buf;
        match self.stream.poll_read_with(&mut cx, 64 * 1024, |a, b| {
            buf.extend_from_slice(a);
            buf.extend_from_slice(b);
        }) {
            Poll::Pending => self.buf.is_empty() && !self.stream.transport().is_closed(),
            Poll::Ready(_) => false,
        }
    }

    /// A statement with parameters: Parse, Bind, Describe, Execute, Sync.
    pub(super) async fn execute(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Outcome, PgError> {
        let mut out = BytesMut::new();
        let proto = |e: io::Error| PgError::io(PgErrorKind::Protocol, &e);
        frontend::parse("", sql, std::iter::empty(), &mut out).map_err(proto)?;
        frontend::bind(
            "",
            "",
            std::iter::once(0i16), // every parameter in text form
            params,
            |v, buf| {
                match v {
                    Value::Null => return Ok(IsNull::Yes),
                    Value::Integer(i) => buf.extend_from_slice(i.to_string().as_bytes()),
                    Value::Real(f) => buf.extend_from_slice(f.to_string().as_bytes()),
                    Value::Text(t) => buf.extend_from_slice(t.as_bytes()),
                    Value::Blob(b) => {
                        buf.extend_from_slice(b"\\x");
                        for byte in b {
                            buf.extend_from_slice(format!("{byte:02x}").as_bytes());
                        }
                    }
                }
                Ok(IsNull::No)
            },
            std::iter::once(0i16), // every column in text form
            &mut out,
        )
        .map_err(|e| match e {
            frontend::BindError::Conversion(e) => PgError::new(PgErrorKind::Config, e.to_string()),
            frontend::BindError::Serialization(e) => proto(e),
        })?;
        frontend::describe(b'P', "", &mut out).map_err(proto)?;
        frontend::execute("", 0, &mut out).map_err(proto)?;
        frontend::sync(&mut out);
        self.send(&out).await?;
        let mut types: Vec<u32> = Vec::new();
        let mut outcome = Outcome {
            rows: Vec::new(),
            affected: 0,
        };
        let mut failed: Option<PgError> = None;
        loop {
            match self.read().await? {
                backend::Message::ParseComplete
                | backend::Message::BindComplete
                | backend::Message::NoData
                | backend::Message::EmptyQueryResponse
                | backend::Message::PortalSuspended => {}
                backend::Message::RowDescription(b) => {
                    let mut fields = b.fields();
                    while let Ok(Some(f)) = fields.next() {
                        types.push(f.type_oid());
                    }
                }
                backend::Message::DataRow(b) => {
                    let buf = b.buffer();
                    let mut ranges = b.ranges();
                    let mut row = Vec::with_capacity(types.len());
                    let mut i = 0;
                    while let Ok(Some(r)) = ranges.next() {
                        row.push(column(
                            types.get(i).copied().unwrap_or(25),
                            r.map(|r| &buf[r]),
                        ));
                        i += 1;
                    }
                    outcome.rows.push(row);
                }
                backend::Message::CommandComplete(b) => {
                    let tag = b.tag().unwrap_or_default();
                    outcome.affected = tag
                        .rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                }
                backend::Message::ErrorResponse(b) => failed = Some(PgError::from_fields(&b)),
                backend::Message::ReadyForQuery(_) => {
                    return match failed {
                        Some(e) => Err(e),
                        None => Ok(outcome),
                    }
                }
                _ => return Err(PgError::new(PgErrorKind::Protocol, "an unexpected message")),
            }
        }
    }
}

/// A column in text form as a [`Value`], by its type's OID.
pub(super) fn column(oid: u32, text: Option<&[u8]>) -> Value {
    let Some(t) = text else { return Value::Null };
    let s = String::from_utf8_lossy(t);
    match oid {
        // bool
        16 => Value::Integer(i64::from(s == "t")),
        // int8, int2, int4, oid
        20 | 21 | 23 | 26 => s
            .parse()
            .map(Value::Integer)
            .unwrap_or(Value::Text(s.into_owned())),
        // float4, float8
        700 | 701 => s
            .parse()
            .map(Value::Real)
            .unwrap_or(Value::Text(s.into_owned())),
        // bytea: \x and hex
        17 => match s.strip_prefix("\\x") {
            Some(hex) => Value::Blob(
                (0..hex.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                    .collect(),
            ),
            None => Value::Blob(t.to_vec()),
        },
        _ => Value::Text(s.into_owned()),
    }
}
