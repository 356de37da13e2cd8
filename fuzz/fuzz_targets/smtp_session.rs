//! The SMTP server session: random bytes and random pipelined command
//! sequences never panic; the replies are the same whole, split in two and
//! byte by byte; output and stored data stay bounded by the limits.
#![no_main]

use std::rc::Rc;
use std::time::Instant;

use braid_mail::server::{Event, Session, SessionConfig};
use braid_mail::Reply;
use libfuzzer_sys::fuzz_target;

/// Commands to splice in, picked by input bytes above 0xf0, so the fuzzer
/// reaches deep states (DATA, BDAT, AUTH) quickly.
const WORDS: [&[u8]; 15] = [
    b"EHLO x\r\n", b"MAIL FROM:<a@b> SIZE=10\r\n", b"RCPT TO:<u@example.org>\r\n", b"DATA\r\n",
    b"BDAT 3\r\n", b"BDAT 2 LAST\r\n", b"\r\n.\r\n", b"AUTH LOGIN\r\n", b"AUTH PLAIN AGEAYg==\r\n",
    b"STARTTLS\r\n", b"RSET\r\n", b"\n.\n", b"\r\n..", b"QUIT\r\n", b"NOOP\r\n",
];

fn expand(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in data {
        if b >= 0xf1 {
            out.extend_from_slice(WORDS[(b - 0xf1) as usize % WORDS.len()]);
        } else {
            out.push(b);
        }
    }
    out
}

fn run(chunks: &[&[u8]]) -> (Vec<u8>, usize) {
    let config = Rc::new(SessionConfig {
        max_message_size: 200,
        starttls: true,
        auth: true,
        auth_without_tls: true,
        max_errors: 1000,
        ..SessionConfig::default()
    });
    let now = Instant::now();
    let mut s = Session::new(config, "fuzz", now);
    let mut out = s.take_output();
    let mut stored = 0;
    let mut current = 0usize;
    for c in chunks {
        s.receive(c, now);
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::Mail { .. } | Event::Rcpt { .. } | Event::DataStart => s.answer(Ok(String::new())),
                Event::Auth { .. } => s.answer(Err(Reply::new(535, [5, 7, 8], "no"))),
                Event::Data(d) => {
                    current += d.len();
                    assert!(current <= 200 + 2, "more data than SIZE allows: {current}");
                }
                Event::DataEnd => {
                    stored += current;
                    current = 0;
                    s.answer(Ok("id".into()))
                }
                Event::DataAborted => current = 0,
                Event::StartTls => s.tls_started(),
                _ => {}
            }
        }
        out.extend(s.take_output());
    }
    (out, stored)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else { return };
    let input = expand(data);
    if input.contains(&b'S') && input.windows(8).any(|w| w.eq_ignore_ascii_case(b"STARTTLS")) {
        // After STARTTLS, what follows depends on when TLS starts, which
        // depends on the split: only the single run is checked.
        let _ = run(&[&input]);
        return;
    }
    let cut = cut as usize % (input.len() + 1);
    let (a, b) = input.split_at(cut);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let whole = run(&[&input]);
    assert_eq!(whole, run(&[a, b]), "split in two");
    assert_eq!(whole, run(&bytes), "byte by byte");
});
