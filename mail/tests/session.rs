//! The server session with no reactor and no sockets: bytes in, replies
//! and events out, fed whole and one byte at a time.

use std::rc::Rc;
use std::time::{Duration, Instant};

use braid_mail::server::{BareNewlines, Event, Session, SessionConfig};
use braid_mail::Reply;

/// A fake application: accepts senders, recipients at example.org,
/// alice:secret; stores messages.
#[derive(Default)]
struct App {
    stored: Vec<Vec<u8>>,
    current: Option<Vec<u8>>,
    events: Vec<String>,
    starttls: usize,
    closed: bool,
}

impl App {
    fn run(&mut self, s: &mut Session) {
        while let Some(ev) = s.poll_event() {
            self.events.push(match &ev {
                Event::Data(_) => "Data".into(),
                e => format!("{e:?}"),
            });
            match ev {
                Event::Mail { .. } => s.answer(Ok(String::new())),
                Event::Rcpt { to } => s.answer(if to.ends_with("@example.org") {
                    Ok(String::new())
                } else {
                    Err(Reply::new(554, [5, 7, 1], "Relay access denied"))
                }),
                Event::Auth { username, password } => s.answer(
                    if (username.as_str(), password.as_str()) == ("alice", "secret") {
                        Ok(username)
                    } else {
                        Err(Reply::new(535, [5, 7, 8], "Error: authentication failed"))
                    },
                ),
                Event::DataStart => {
                    self.current = Some(Vec::new());
                    s.answer(Ok(String::new()))
                }
                Event::Data(d) => self.current.as_mut().unwrap().extend_from_slice(&d),
                Event::DataEnd => {
                    self.stored.push(self.current.take().unwrap());
                    s.answer(Ok(format!("Q{}", self.stored.len())))
                }
                Event::DataAborted => self.current = None,
                Event::StartTls => {
                    self.starttls += 1;
                    s.tls_started();
                }
                Event::Close => self.closed = true,
                _ => {}
            }
        }
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        hostname: "mx.example.org".into(),
        max_message_size: 1000,
        max_recipients: 3,
        starttls: true,
        auth: true,
        ..SessionConfig::default()
    }
}

/// Runs `input` through a session, whole and byte by byte; both ways must
/// agree. Returns the reply codes (one per reply) and the app.
fn talk_with(cfg: SessionConfig, input: &[u8]) -> (Vec<String>, App) {
    let cfg = Rc::new(cfg);
    let now = Instant::now();
    let mut results = Vec::new();
    for bytewise in [false, true] {
        let mut s = Session::new(cfg.clone(), "192.0.2.1:4000", now);
        let mut app = App::default();
        let mut out = Vec::new();
        if bytewise {
            for b in input {
                s.receive(std::slice::from_ref(b), now);
                app.run(&mut s);
                out.extend(s.take_output());
            }
        } else {
            s.receive(input, now);
            app.run(&mut s);
            out.extend(s.take_output());
        }
        results.push((replies(&out), app));
    }
    let (b, a) = (results.pop().unwrap(), results.pop().unwrap());
    assert_eq!(
        a.0, b.0,
        "replies differ between whole and byte-by-byte input"
    );
    assert_eq!(a.1.stored, b.1.stored, "stored messages differ");
    a
}

fn talk(input: &[u8]) -> (Vec<String>, App) {
    talk_with(config(), input)
}

/// Final lines of each reply: "250 2.0.0 Ok".
fn replies(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .split("\r\n")
        .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
        .map(str::to_owned)
        .collect()
}

fn codes(r: &[String]) -> Vec<&str> {
    r.iter().map(|l| &l[..3]).collect()
}

#[test]
fn a_pipelined_transaction_is_stored_unstuffed() {
    let (r, app) = talk(
        b"EHLO client.example\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\nRCPT TO:<x@example.org>\r\n\
          RCPT TO:<y@example.org>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nline \xc3\xa9\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(
        codes(&r),
        ["220", "250", "250", "250", "250", "354", "250", "221"]
    );
    assert!(r[6].contains("queued as Q1"), "{r:?}");
    assert_eq!(
        app.stored,
        [b"Subject: hi\r\n\r\n.dot\r\nline \xc3\xa9\r\n".to_vec()]
    );
    assert!(app.closed);
}

#[test]
fn ehlo_announces_what_is_offered() {
    let cfg = Rc::new(config());
    let mut s = Session::new(cfg, "p", Instant::now());
    s.receive(b"EHLO c\r\n", Instant::now());
    App::default().run(&mut s);
    let out = String::from_utf8(s.take_output()).unwrap();
    for ext in [
        "PIPELINING",
        "SIZE 1000",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "CHUNKING",
    ] {
        assert!(
            out.contains(&format!("250-{ext}\r\n")) || out.contains(&format!("250 {ext}\r\n")),
            "{ext} in {out}"
        );
    }
    // AUTH only after TLS by default.
    assert!(!out.contains("AUTH"), "{out}");
}

#[test]
fn an_empty_message_and_a_leading_dot() {
    let (r, app) = talk(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n..a\r\n.\r\n");
    assert_eq!(
        codes(&r),
        ["220", "250", "250", "250", "354", "250", "250", "250", "354", "250"]
    );
    assert_eq!(app.stored, [b"".to_vec(), b".a\r\n".to_vec()]);
}

#[test]
fn smuggling_variants_do_not_end_the_message() {
    // Each is an attempt to end the data early and smuggle a second
    // message: only CRLF . CRLF ends it, so the "smuggled" commands stay
    // inside the first message's text.
    for end in [
        &b"\n.\n"[..],
        b"\n.\r\n",
        b"\r.\r\n",
        b"\r\n.\n",
        b"\r\n.\r",
        b"\r\n\x00.\r\n",
    ] {
        let mut input =
            b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\nhello".to_vec();
        input.extend_from_slice(end);
        input.extend_from_slice(
            b"MAIL FROM:<evil@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n",
        );
        let (r, app) = talk(&input);
        assert_eq!(app.stored.len(), 1, "{end:?}: {r:?}");
        let text = String::from_utf8_lossy(&app.stored[0]).into_owned();
        assert!(text.contains("MAIL FROM:<evil@b>"), "{end:?}: {text:?}");
        // Normalised: no bare CR or LF is stored.
        let bytes = app.stored[0].as_slice();
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(
                    bytes.get(i.wrapping_sub(1)),
                    Some(&b'\r'),
                    "{end:?}: bare LF in {text:?}"
                );
            }
            if b == b'\r' {
                assert_eq!(
                    bytes.get(i + 1),
                    Some(&b'\n'),
                    "{end:?}: bare CR in {text:?}"
                );
            }
        }
        assert_eq!(codes(&r).last(), Some(&"221"));
    }
}

#[test]
fn bare_newlines_can_be_refused_and_the_session_goes_on() {
    let cfg = SessionConfig {
        bare_newlines: BareNewlines::Reject,
        ..config()
    };
    let (r, app) = talk_with(
        cfg,
        b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\nbad\nline\r\n.\r\n\
          MAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\ngood\r\n.\r\n",
    );
    assert_eq!(
        codes(&r),
        ["220", "250", "250", "250", "354", "550", "250", "250", "354", "250"]
    );
    assert_eq!(app.stored, [b"good\r\n".to_vec()]);
}

#[test]
fn oversize_mid_data_is_refused_with_552_and_the_session_kept() {
    let mut input = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n".to_vec();
    for _ in 0..30 {
        input.extend_from_slice(&[b'x'; 48]);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b".\r\nNOOP\r\n");
    let (r, app) = talk(&input);
    assert_eq!(codes(&r), ["220", "250", "250", "250", "354", "552", "250"]);
    assert!(app.stored.is_empty());
    assert!(app.events.iter().any(|e| e == "DataAborted"));
    // Declared too big: refused at MAIL.
    let (r, _) = talk(b"EHLO c\r\nMAIL FROM:<a@b> SIZE=5000\r\n");
    assert_eq!(codes(&r), ["220", "250", "552"]);
}

#[test]
fn overlong_lines_get_500_and_the_session_goes_on() {
    let mut input = b"EHLO c\r\nNOOP ".to_vec();
    input.extend(std::iter::repeat_n(b'a', 5000));
    input.extend_from_slice(b"\r\nNOOP\r\n");
    let (r, _) = talk(&input);
    assert_eq!(codes(&r), ["220", "250", "500", "250"]);
    // Exactly at the limit (1000 with CRLF) is fine.
    let mut input = b"NOOP ".to_vec();
    input.extend(std::iter::repeat_n(b'a', 1000 - 7));
    input.extend_from_slice(b"\r\n");
    let (r, _) = talk(&input);
    assert_eq!(codes(&r), ["220", "250"]);
}

#[test]
fn commands_pipelined_after_starttls_are_discarded() {
    // (Not byte by byte: bytes that arrive after TLS has started go
    // through TLS, not to the session.)
    let cfg = Rc::new(config());
    let now = Instant::now();
    let mut s = Session::new(cfg, "p", now);
    let mut app = App::default();
    s.receive(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@b>\r\n", now);
    assert_eq!(s.poll_event(), Some(Event::StartTls));
    // More plain text before TLS is up: thrown away too.
    s.receive(b"RCPT TO:<x@example.org>\r\n", now);
    assert!(!s.wants_input());
    s.tls_started();
    app.run(&mut s);
    assert_eq!(codes(&replies(&s.take_output())), ["220", "250", "220"]);
    assert!(app.events.is_empty(), "{:?}", app.events);
    // After TLS the session starts over: EHLO again, now with AUTH.
    s.receive(b"MAIL FROM:<a@b>\r\nEHLO c\r\n", now);
    app.run(&mut s);
    let out = String::from_utf8(s.take_output()).unwrap();
    assert!(out.starts_with("503 5.5.1"), "{out}");
    assert!(
        out.contains("AUTH PLAIN LOGIN") && !out.contains("STARTTLS"),
        "{out}"
    );
    assert!(s.info().tls);
}

#[test]
fn auth_plain_and_login() {
    let cfg = SessionConfig {
        auth_without_tls: true,
        ..config()
    };
    // PLAIN with an initial response, then a second AUTH is refused.
    let (r, _) = talk_with(
        cfg.clone(),
        b"EHLO c\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    );
    assert_eq!(codes(&r), ["220", "250", "235", "503"]);
    // LOGIN in two steps; a wrong password.
    let (r, _) = talk_with(
        cfg.clone(),
        b"EHLO c\r\nAUTH LOGIN\r\nYWxpY2U=\r\nd3Jvbmc=\r\nAUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n",
    );
    assert_eq!(codes(&r), ["220", "250", "334", "334", "535", "334", "235"]);
    // Cancelled, and garbage.
    let (r, _) = talk_with(
        cfg,
        b"EHLO c\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN !!!\r\nAUTH CRAM-MD5\r\n",
    );
    assert_eq!(codes(&r), ["220", "250", "334", "501", "501", "504"]);
    // Before TLS, without auth_without_tls: 538.
    let (r, _) = talk(b"EHLO c\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert_eq!(codes(&r), ["220", "250", "538"]);
}

#[test]
fn bad_sequences_unknown_commands_and_limits() {
    let (r, _) = talk(
        b"MAIL FROM:<a@b>\r\nHELO c\r\nRCPT TO:<x@example.org>\r\nDATA\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\n\
          DATA\r\nRCPT TO:<q@elsewhere>\r\nDATA\r\nFROB\r\nVRFY x\r\n",
    );
    assert_eq!(
        codes(&r),
        ["220", "503", "250", "503", "503", "250", "503", "554", "554", "554", "500", "502"]
    );
    let (r, _) = talk(
        b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nRCPT TO:<d@example.org>\r\n",
    );
    assert_eq!(codes(&r), ["220", "250", "250", "250", "250", "250", "452"]);
    // Too many errors: 421 and the end.
    let (r, app) = talk(&b"FROB\r\n".repeat(25));
    assert_eq!(r.len(), 1 + 20 + 1, "{r:?}");
    assert!(r.last().unwrap().starts_with("421"));
    assert!(app.closed);
}

#[test]
fn bdat_chunks() {
    let (r, app) = talk(
        b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nBDAT 5\r\nhel\r\nBDAT 7 LAST\r\nlo\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(codes(&r), ["220", "250", "250", "250", "250", "250", "221"]);
    assert_eq!(app.stored, [b"hel\r\nlo\r\n.\r\n".to_vec()]);
    // BDAT with no transaction skips its bytes.
    let (r, app) = talk(b"EHLO c\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(codes(&r), ["220", "250", "503", "250"]);
    assert!(app.stored.is_empty());
}

#[test]
fn the_session_times_out_on_its_deadline() {
    let cfg = Rc::new(config());
    let t0 = Instant::now();
    let mut s = Session::new(cfg, "p", t0);
    let mut app = App::default();
    s.receive(
        b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\npart",
        t0,
    );
    app.run(&mut s);
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Duration::from_secs(300));
    s.handle_timeout(deadline - Duration::from_secs(1));
    assert!(!s.is_closed());
    s.handle_timeout(deadline);
    app.run(&mut s);
    assert!(s.is_closed());
    assert!(app.events.iter().any(|e| e == "DataAborted"));
    let out = String::from_utf8(s.take_output()).unwrap();
    assert!(
        out.ends_with("421 4.4.2 mx.example.org Error: timeout exceeded\r\n"),
        "{out}"
    );
}

#[test]
fn random_input_never_panics_and_buffers_stay_capped() {
    // A quick in-test fuzz (the fuzz target in fuzz/ goes further).
    let cfg = Rc::new(SessionConfig {
        auth_without_tls: true,
        ..config()
    });
    let words: [&[u8]; 14] = [
        b"EHLO x\r\n",
        b"MAIL FROM:<a@b>\r\n",
        b"RCPT TO:<x@example.org>\r\n",
        b"DATA\r\n",
        b"BDAT 3\r\n",
        b".\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b"AUTH LOGIN\r\n",
        b"STARTTLS\r\n",
        b"RSET\r\n",
        b"..",
        b"BDAT 2 LAST\r\n",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        let now = Instant::now();
        let mut s = Session::new(cfg.clone(), "p", now);
        let mut app = App::default();
        for _ in 0..60 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let w = words[(seed % words.len() as u64) as usize];
            if seed % 5 == 0 {
                s.receive(&seed.to_le_bytes(), now);
            } else {
                s.receive(w, now);
            }
            app.run(&mut s);
            assert!(s.take_output().len() < 64 * 1024);
        }
    }
}
