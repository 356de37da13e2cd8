//! Framing receivers: identical messages whether input arrives whole, a
//! byte at a time, or split at every possible point; errors on bad input.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use braid::framing::{
    FramingError, FramingErrorKind, LineContext, LineHandler, LineReceiver, NetstringDecoder,
    NetstringReceiver, Prefix, PrefixedDecoder, PrefixedReceiver, StringContext, StringHandler,
};
use braid::testing::{feed_in_chunks, StringTransport};
use braid::{Protocol, Transport};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Line(Vec<u8>),
    Raw(Vec<u8>),
    TooLong,
    Str(Vec<u8>),
    Err(FramingErrorKind),
}

type Events = Rc<RefCell<Vec<Ev>>>;

/// Records lines; a line `RAW n` switches to raw mode for the next n bytes,
/// then back to lines; a line `QUIT` closes.
struct Lines {
    ev: Events,
    raw_left: usize,
}

impl LineHandler for Lines {
    fn line_received(&mut self, ctx: &mut LineContext<'_>, line: &[u8]) {
        self.ev.borrow_mut().push(Ev::Line(line.to_vec()));
        if let Some(n) = line.strip_prefix(b"RAW ") {
            self.raw_left = std::str::from_utf8(n).unwrap().parse().unwrap();
            ctx.set_raw_mode();
        }
        if line == b"QUIT" {
            ctx.transport().lose_connection();
        }
    }
    fn raw_data_received(&mut self, ctx: &mut LineContext<'_>, data: &[u8]) {
        let take = data.len().min(self.raw_left);
        self.raw_left -= take;
        let mut ev = self.ev.borrow_mut();
        // Merge consecutive raw pieces: chunking must not be visible.
        match ev.last_mut() {
            Some(Ev::Raw(v)) => v.extend_from_slice(&data[..take]),
            _ => ev.push(Ev::Raw(data[..take].to_vec())),
        }
        if self.raw_left == 0 {
            ctx.set_line_mode(&data[take..]);
        }
    }
    fn line_length_exceeded(&mut self, _ctx: &mut LineContext<'_>, e: FramingError) {
        assert_eq!(e.kind(), FramingErrorKind::LineTooLong);
        self.ev.borrow_mut().push(Ev::TooLong);
    }
}

struct Strings(Events);

impl StringHandler for Strings {
    fn string_received(&mut self, _ctx: &StringContext<'_>, data: &[u8]) {
        self.0.borrow_mut().push(Ev::Str(data.to_vec()));
    }
    fn framing_error(&mut self, ctx: &StringContext<'_>, e: FramingError) {
        self.0.borrow_mut().push(Ev::Err(e.kind()));
        ctx.transport().lose_connection();
    }
}

/// Feeds `input` to a fresh protocol in the pieces that `splits` cuts
/// (sorted cut positions) and returns what it reported and wrote.
fn run<P: Protocol>(
    make: &dyn Fn(Events) -> P,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<Ev>, Vec<u8>) {
    let ev = Events::default();
    let mut p = make(ev.clone());
    let st = StringTransport::new();
    let t: Transport = st.transport();
    p.connection_made(&t);
    let mut at = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        p.data_received(&t, &input[at..c]);
        at = c;
    }
    let out = ev.borrow().clone();
    (out, st.value())
}

/// Whole, one byte at a time, every single split point, every pair of
/// split points (for short inputs), and fixed chunk sizes: all the same.
fn assert_split_invariant<P: Protocol>(make: &dyn Fn(Events) -> P, input: &[u8], expect: &[Ev]) {
    let (whole, written) = run(make, input, &[]);
    assert_eq!(whole, expect, "whole input");
    let bytewise: Vec<usize> = (1..input.len()).collect();
    assert_eq!(
        run(make, input, &bytewise),
        (whole.clone(), written.clone()),
        "one byte at a time"
    );
    for i in 0..=input.len() {
        assert_eq!(run(make, input, &[i]).0, whole, "split at {i}");
    }
    if input.len() <= 120 {
        for i in 0..=input.len() {
            for j in i..=input.len() {
                assert_eq!(run(make, input, &[i, j]).0, whole, "split at {i} and {j}");
            }
        }
    }
    for chunk in [2, 3, 7, 64] {
        let ev = Events::default();
        let mut p = make(ev.clone());
        let st = StringTransport::new();
        feed_in_chunks(&mut p, &st.transport(), input, chunk);
        assert_eq!(*ev.borrow(), whole, "chunks of {chunk}");
    }
}

fn line(s: &str) -> Ev {
    Ev::Line(s.as_bytes().to_vec())
}

#[test]
fn line_receiver_is_split_invariant_with_raw_mode_and_long_lines() {
    let make = |ev: Events| LineReceiver::with_delimiter(Lines { ev, raw_left: 0 }, b"\r\n", 20);
    let long = "x".repeat(45);
    let input = format!("hello\r\n\r\nRAW 9\r\n\r\nraw\r\n\r\nafter raw\r\n{long}\r\nnext\r\nexactly twenty chars\r\ntwenty-one chars here\r\ntail");
    let expect = vec![
        line("hello"),
        line(""),
        line("RAW 9"),
        Ev::Raw(b"\r\nraw\r\n\r\n".to_vec()),
        line("after raw"),
        Ev::TooLong,
        line("next"),
        line("exactly twenty chars"),
        Ev::TooLong,
    ];
    assert_split_invariant(&make, input.as_bytes(), &expect);
}

#[test]
fn line_receiver_with_a_single_byte_delimiter() {
    let make = |ev: Events| LineReceiver::with_delimiter(Lines { ev, raw_left: 0 }, b"\n", 100);
    assert_split_invariant(
        &make,
        b"a\nbb\n\nccc\r\n",
        &[line("a"), line("bb"), line(""), line("ccc\r")],
    );
}

#[test]
fn line_receiver_stops_after_lose_connection() {
    let make = |ev: Events| LineReceiver::new(Lines { ev, raw_left: 0 });
    assert_split_invariant(
        &make,
        b"one\r\nQUIT\r\nnever\r\n",
        &[line("one"), line("QUIT")],
    );
}

#[test]
fn line_receiver_default_closes_on_an_overlong_line_and_bounds_memory() {
    struct Quiet;
    impl LineHandler for Quiet {
        fn line_received(&mut self, _: &mut LineContext<'_>, _: &[u8]) {
            panic!("no line expected");
        }
    }
    let st = StringTransport::new();
    let mut p = LineReceiver::with_delimiter(Quiet, b"\r\n", 1024);
    // 100 KB with no delimiter, in 1 KB pieces.
    for _ in 0..100 {
        p.data_received(&st.transport(), &[b'a'; 1000]);
    }
    assert!(st.is_disconnecting());
    assert!(format!("{p:?}").contains("buffered: 1"), "{p:?}");
}

#[test]
fn send_line_appends_the_delimiter() {
    struct Greet;
    impl LineHandler for Greet {
        fn connection_made(&mut self, ctx: &mut LineContext<'_>) {
            ctx.send_line(b"220 hello");
        }
        fn line_received(&mut self, ctx: &mut LineContext<'_>, line: &[u8]) {
            ctx.send_line(line);
        }
    }
    let st = StringTransport::new();
    let mut p = LineReceiver::new(Greet);
    p.connection_made(&st.transport());
    p.data_received(&st.transport(), b"x\r\n");
    assert_eq!(st.value(), b"220 hello\r\nx\r\n");
}

#[test]
fn netstring_receiver_is_split_invariant() {
    let make = |ev: Events| NetstringReceiver::with_max_length(Strings(ev), 100);
    let mut input = Vec::new();
    for s in [
        &b"hello"[..],
        b"",
        b"with : and , inside",
        &[0u8, 255, 10, 13],
    ] {
        input.extend(NetstringDecoder::encode(s));
    }
    let expect = vec![
        Ev::Str(b"hello".to_vec()),
        Ev::Str(vec![]),
        Ev::Str(b"with : and , inside".to_vec()),
        Ev::Str(vec![0, 255, 10, 13]),
    ];
    assert_split_invariant(&make, &input, &expect);
}

#[test]
fn netstring_errors() {
    let make = |ev: Events| NetstringReceiver::with_max_length(Strings(ev), 100);
    let ok = Ev::Str(b"ok".to_vec());
    for (input, kind) in [
        (&b"2:ok,x:"[..], FramingErrorKind::BadLength),
        (b"2:ok,01:a,", FramingErrorKind::BadLength),
        (b"2:ok,:a,", FramingErrorKind::BadLength),
        (b"2:ok,101:", FramingErrorKind::TooLong),
        (b"2:ok,99999999999999999999:", FramingErrorKind::BadLength),
        (b"2:ok,3:abcd", FramingErrorKind::MissingComma),
        (b"2:ok,-1:", FramingErrorKind::BadLength),
    ] {
        assert_split_invariant(&make, input, &[ok.clone(), Ev::Err(kind)]);
    }
}

#[test]
fn prefixed_receivers_are_split_invariant_for_every_width() {
    for (prefix, max) in [(Prefix::U8, 255), (Prefix::U16, 300), (Prefix::U32, 300)] {
        let make = move |ev: Events| PrefixedReceiver::new(Strings(ev), prefix, max);
        let enc = PrefixedDecoder::new(prefix, max);
        let msgs: Vec<Vec<u8>> = vec![b"a".to_vec(), vec![], vec![0xAB; 200], b"last".to_vec()];
        let mut input = Vec::new();
        for m in &msgs {
            input.extend(enc.encode(m).unwrap());
        }
        let expect: Vec<Ev> = msgs.into_iter().map(Ev::Str).collect();
        assert_split_invariant(&make, &input, &expect);
    }
}

#[test]
fn prefixed_rejects_oversized_messages_both_ways() {
    let make = |ev: Events| PrefixedReceiver::new(Strings(ev), Prefix::U32, 1000);
    let mut input = PrefixedDecoder::new(Prefix::U32, 1000)
        .encode(b"fine")
        .unwrap();
    input.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
    assert_split_invariant(
        &make,
        &input,
        &[
            Ev::Str(b"fine".to_vec()),
            Ev::Err(FramingErrorKind::TooLong),
        ],
    );

    let err = PrefixedDecoder::new(Prefix::U8, 10_000)
        .encode(&[0; 256])
        .unwrap_err();
    assert_eq!(err.kind(), FramingErrorKind::TooLong);
    assert_eq!(err.max(), 255, "an 8-bit prefix caps the maximum");

    // send_string refuses rather than writing a broken frame.
    struct Sender(Option<Result<(), FramingError>>);
    impl StringHandler for Sender {
        fn connection_made(&mut self, ctx: &StringContext<'_>) {
            self.0 = Some(ctx.send_string(&[0; 300]));
        }
        fn string_received(&mut self, _: &StringContext<'_>, _: &[u8]) {}
    }
    let st = StringTransport::new();
    let mut p = PrefixedReceiver::new(Sender(None), Prefix::U16, 100);
    p.connection_made(&st.transport());
    assert!(p.handler().0.as_ref().unwrap().is_err());
    assert!(st.value().is_empty());
}

#[test]
fn string_receivers_echo_through_send_string() {
    struct Echo;
    impl StringHandler for Echo {
        fn string_received(&mut self, ctx: &StringContext<'_>, data: &[u8]) {
            ctx.send_string(data).unwrap();
        }
    }
    let st = StringTransport::new();
    let mut p = NetstringReceiver::new(Echo);
    p.data_received(&st.transport(), b"3:abc,0:,");
    assert_eq!(st.take(), b"3:abc,0:,");
    let mut p = PrefixedReceiver::new(Echo, Prefix::U16, 100);
    p.data_received(&st.transport(), &[0, 2, b'h', b'i']);
    assert_eq!(st.take(), [0, 2, b'h', b'i']);
}
