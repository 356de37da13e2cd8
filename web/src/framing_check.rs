//! The request-framing guard: a second look at every HTTP/1 request's
//! framing, with `httparse` (the parser hyper itself uses), before hyper
//! sees the bytes.
//!
//! hyper is lenient where RFC 9112 allows it (bare LF line ends), merges
//! equal duplicate `Content-Length`s, and lets `Transfer-Encoding` win over
//! `Content-Length`; and it dispatches a request before reading its body,
//! so a bad chunk reaches a resource first. Front ends and back ends that
//! disagree on such framing are how requests get smuggled, so braid
//! refuses all of them: the guard follows each message's framing (head,
//! `Content-Length` body, chunks, trailers) over the bytes received, and
//! at the first violation replaces the offending message with bytes hyper
//! cannot parse, so hyper answers `400` and closes the connection. A
//! violation found in what arrived together with its request's head is
//! caught before hyper sees that head, so no resource runs; one that
//! arrives later cuts the body short (the resource sees a body error).

use bytes::BytesMut;

/// What the guard hands hyper instead of a refused message: an invalid
/// method byte, which hyper answers with `400 Bad Request`.
pub(crate) const POISON: &[u8] = b"\x01 / HTTP/1.1\r\n\r\n";

/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for (the rest of) a request head.
    Head,
    /// This many body bytes to pass.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkLine,
    /// This many chunk bytes to pass.
    ChunkData(u64),
    /// Expecting the CRLF after chunk data; how many of its bytes came.
    ChunkEnd(u8),
    /// Reading trailer lines after the last chunk.
    Trailers,
    /// No more checking: an upgrade or CONNECT, or something hyper refuses
    /// by itself (an oversized head, say).
    Pass,
}

/// Follows request framing over a connection's inbound bytes.
pub(crate) struct FramingCheck {
    state: State,
    /// A head (or chunk line, or trailers) not yet complete.
    held: Vec<u8>,
    max_head: usize,
    max_headers: usize,
    /// Switch to `Pass` once the current message ends.
    pass_after: bool,
    /// Request heads passed so far.
    heads: u64,
}

impl FramingCheck {
    pub(crate) fn new(max_head: usize, max_headers: usize) -> FramingCheck {
        FramingCheck {
            state: State::Head,
            held: Vec::new(),
            max_head,
            max_headers,
            pass_after: false,
            heads: 0,
        }
    }

    /// Between two requests: no message begun, nothing held (so a
    /// connection whose requests are all answered is idle).
    pub(crate) fn between_messages(&self) -> bool {
        self.state == State::Head && self.held.is_empty()
    }

    /// Request heads passed so far.
    pub(crate) fn heads(&self) -> u64 {
        self.heads
    }

    /// Frees the hold buffer while it is empty (an idle connection).
    pub(crate) fn shrink(&mut self) {
        if self.held.is_empty() {
            self.held = Vec::new();
        }
    }

    /// Bytes held back (an incomplete head, chunk line or trailers).
    #[cfg(feature = "testing")]
    pub(crate) fn held_len(&self) -> usize {
        self.held.len()
    }

    /// Checks `input` and appends what may go on to `out`. On a violation,
    /// the message it belongs to is cut from `out` (if it began in this
    /// batch) and the reason returned; the caller then sends [`POISON`].
    pub(crate) fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), &'static str> {
        // Where the current message begins in `out` (0 if it began in an
        // earlier batch, whose bytes hyper has already).
        let mut msg_start = 0;
        let r = self.feed_inner(&mut input, out, &mut msg_start);
        if r.is_err() {
            out.truncate(msg_start);
        }
        r
    }

    fn feed_inner(
        &mut self,
        input: &mut &[u8],
        out: &mut BytesMut,
        msg_start: &mut usize,
    ) -> Result<(), &'static str> {
        while !input.is_empty() {
            match self.state {
                State::Pass => {
                    out.extend_from_slice(input);
                    *input = &[];
                }
                State::Body(n) | State::ChunkData(n) => {
                    let take = (n.min(input.len() as u64)) as usize;
                    out.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    let left = n - take as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => self.message_done(out, msg_start),
                        (State::Body(_), l) => State::Body(l),
                        (_, 0) => State::ChunkEnd(0),
                        (_, l) => State::ChunkData(l),
                    };
                }
                State::ChunkEnd(k) => {
                    if input[0] != b"\r\n"[k as usize] {
                        return Err("chunk data not followed by CRLF");
                    }
                    out.extend_from_slice(&input[..1]);
                    *input = &input[1..];
                    self.state = if k == 1 {
                        State::ChunkLine
                    } else {
                        State::ChunkEnd(1)
                    };
                }
                State::Head => {
                    if self.held.is_empty() {
                        *msg_start = out.len();
                        // Empty lines before a request line are allowed
                        // (RFC 9112 §2.2).
                        if input.starts_with(b"\r\n") {
                            out.extend_from_slice(b"\r\n");
                            *input = &input[2..];
                            continue;
                        }
                        // The usual case: the whole head is here. Check it
                        // in place, without holding a copy.
                        if let Some(len) = blank_line_end(input) {
                            let head = &input[..len];
                            match self.check_head(head)? {
                                Some(next) => {
                                    self.heads += 1;
                                    out.extend_from_slice(head);
                                    *input = &input[len..];
                                    self.state = next;
                                    if self.state == State::Head {
                                        self.state = self.message_done(out, msg_start);
                                    }
                                }
                                None => {
                                    out.extend_from_slice(input);
                                    *input = &[];
                                    self.state = State::Pass;
                                }
                            }
                            continue;
                        }
                    }
                    let Some(()) = self.take_until_blank_line(input) else {
                        if self.held.len() > self.max_head {
                            // hyper answers 431 for this itself.
                            out.extend_from_slice(&self.held);
                            self.held.clear();
                            self.state = State::Pass;
                        }
                        continue;
                    };
                    let head = std::mem::take(&mut self.held);
                    if head == b"\r\n" {
                        out.extend_from_slice(&head);
                        self.held = head;
                        self.held.clear();
                        continue;
                    }
                    match self.check_head(&head)? {
                        Some(next) => {
                            self.heads += 1;
                            out.extend_from_slice(&head);
                            self.state = next;
                            if self.state == State::Head {
                                self.state = self.message_done(out, msg_start);
                            }
                        }
                        None => {
                            // Not parseable: hyper refuses it the same way.
                            out.extend_from_slice(&head);
                            self.state = State::Pass;
                        }
                    }
                    self.held = head;
                    self.held.clear();
                }
                State::ChunkLine => {
                    let Some(i) = memchr::memchr(b'\n', input) else {
                        self.held.extend_from_slice(input);
                        *input = &[];
                        if self.held.len() > MAX_CHUNK_LINE {
                            return Err("chunk-size line too long");
                        }
                        continue;
                    };
                    self.held.extend_from_slice(&input[..=i]);
                    *input = &input[i + 1..];
                    if self.held.len() > MAX_CHUNK_LINE {
                        return Err("chunk-size line too long");
                    }
                    if self.held.len() < 2 || self.held[self.held.len() - 2] != b'\r' {
                        return Err("bare LF in a chunk-size line");
                    }
                    let size = match httparse::parse_chunk_size(&self.held) {
                        Ok(httparse::Status::Complete((_, size))) => size,
                        _ => return Err("bad chunk size"),
                    };
                    out.extend_from_slice(&self.held);
                    self.held.clear();
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::Trailers => {
                    // Trailer lines, then an empty line.
                    let Some(i) = memchr::memchr(b'\n', input) else {
                        self.held.extend_from_slice(input);
                        *input = &[];
                        if self.held.len() > self.max_head {
                            return Err("trailers too large");
                        }
                        continue;
                    };
                    let line_start = self.held.len();
                    self.held.extend_from_slice(&input[..=i]);
                    *input = &input[i + 1..];
                    let line = &self.held[line_start..];
                    let line = if line_start == 0 || self.held[line_start - 1] == b'\n' {
                        line
                    } else {
                        // The line began in an earlier piece.
                        let from = self.held[..line_start]
                            .iter()
                            .rposition(|&b| b == b'\n')
                            .map_or(0, |p| p + 1);
                        &self.held[from..]
                    };
                    if line.len() < 2 || line[line.len() - 2] != b'\r' {
                        return Err("bare LF in the trailers");
                    }
                    if self.held.len() > self.max_head {
                        return Err("trailers too large");
                    }
                    if line == b"\r\n" {
                        out.extend_from_slice(&self.held);
                        self.held.clear();
                        self.state = self.message_done(out, msg_start);
                    }
                }
            }
        }
        Ok(())
    }

    /// The state after a message ends: the next head, or `Pass` after an
    /// upgrade.
    fn message_done(&mut self, out: &BytesMut, msg_start: &mut usize) -> State {
        *msg_start = out.len();
        if self.pass_after {
            State::Pass
        } else {
            State::Head
        }
    }

    /// Moves bytes into `held` up to and including the blank line that
    /// ends a head; `Some` when it is there.
    fn take_until_blank_line(&mut self, input: &mut &[u8]) -> Option<()> {
        loop {
            let Some(i) = memchr::memchr(b'\n', input) else {
                self.held.extend_from_slice(input);
                *input = &[];
                return None;
            };
            self.held.extend_from_slice(&input[..=i]);
            *input = &input[i + 1..];
            if self.held == b"\r\n" {
                // An empty line before the request line, split from it:
                // skipped as the fast path skips it.
                return Some(());
            }
            if self.held.ends_with(b"\n\r\n") || self.held.ends_with(b"\n\n") {
                return Some(());
            }
        }
    }

    /// Checks a complete head: `Ok(Some(state))` for its body's framing,
    /// `Ok(None)` if httparse cannot parse it (hyper will refuse it too),
    /// `Err` for a violation hyper would let through.
    fn check_head(&mut self, head: &[u8]) -> Result<Option<State>, &'static str> {
        if head.len() > self.max_head {
            // hyper refuses it (431) by itself, however it arrived.
            return Ok(None);
        }
        // Every line must end in CRLF.
        for i in memchr::memchr_iter(b'\n', head) {
            if i == 0 || head[i - 1] != b'\r' {
                return Err("bare LF in the head");
            }
        }
        let mut on_stack = [httparse::EMPTY_HEADER; 32];
        let mut on_heap;
        let mut req = httparse::Request::new(&mut on_stack);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Err(httparse::Error::TooManyHeaders) if self.max_headers > 32 => {
                on_heap = vec![httparse::EMPTY_HEADER; self.max_headers.min(1024)];
                req = httparse::Request::new(&mut on_heap);
                match req.parse(head) {
                    Ok(httparse::Status::Complete(_)) => {}
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        }
        let (mut cl, mut te, mut cl_value) = (0, 0, None::<u64>);
        let mut chunked = false;
        let mut upgrade = false;
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("content-length") {
                cl += 1;
                let v =
                    std::str::from_utf8(h.value).map_err(|_| "Content-Length is not a number")?;
                if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
                    return Err("Content-Length is not a number");
                }
                cl_value = Some(v.parse().map_err(|_| "Content-Length too large")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                te += 1;
                if !h.value.eq_ignore_ascii_case(b"chunked") {
                    return Err("Transfer-Encoding other than chunked");
                }
                chunked = true;
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if cl > 1 {
            return Err("more than one Content-Length");
        }
        if te > 1 {
            return Err("more than one Transfer-Encoding");
        }
        if cl > 0 && te > 0 {
            return Err("both Content-Length and Transfer-Encoding");
        }
        if te > 0 && req.version == Some(0) {
            return Err("Transfer-Encoding in HTTP/1.0");
        }
        if upgrade || req.method == Some("CONNECT") {
            // Whatever follows may be another protocol; the server decides.
            self.pass_after = true;
        }
        Ok(Some(if chunked {
            State::ChunkLine
        } else {
            match cl_value {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head,
            }
        }))
    }
}

/// The length of `input` up to and including the first empty line (the
/// end of a head), however its lines end: the slow path's rule too.
fn blank_line_end(input: &[u8]) -> Option<usize> {
    for i in memchr::memchr_iter(b'\n', input) {
        let blank = (i >= 1 && input[i - 1] == b'\n')
            || (i >= 2 && input[i - 1] == b'\r' && input[i - 2] == b'\n');
        if blank {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], piece: usize) -> (Vec<u8>, Option<&'static str>) {
        let mut g = FramingCheck::new(16 * 1024, 100);
        let mut all = Vec::new();
        let chunks: Vec<&[u8]> = if piece == 0 {
            vec![input]
        } else {
            input.chunks(piece).collect()
        };
        for c in chunks {
            let mut out = BytesMut::new();
            let r = g.feed(c, &mut out);
            all.extend_from_slice(&out);
            if let Err(e) = r {
                return (all, Some(e));
            }
        }
        (all, None)
    }

    const GOOD: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\n\n\x00binary\n",
    ];

    #[test]
    fn good_streams_pass_unchanged_whole_and_byte_by_byte() {
        for g in GOOD {
            for piece in [0, 1, 2, 3, 7] {
                let (out, err) = run(g, piece);
                assert_eq!(
                    err,
                    None,
                    "{:?} in pieces of {piece}",
                    String::from_utf8_lossy(g)
                );
                assert_eq!(out, *g, "pieces of {piece}");
            }
        }
    }

    #[test]
    fn violations_are_found_whole_and_byte_by_byte() {
        let bad: &[(&[u8], &str)] = &[
            (b"GET / HTTP/1.1\nHost: a\n\n", "bare LF in the head"),
            (b"GET / HTTP/1.1\r\nHost: a\n\r\n", "bare LF in the head"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "more than one Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "both Content-Length and Transfer-Encoding"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc", "bare LF in a chunk-size line"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX", "chunk data not followed by CRLF"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n", "bare LF in the trailers"),
        ];
        for (input, why) in bad {
            for piece in [0, 1, 2, 5] {
                let (out, err) = run(input, piece);
                assert_eq!(
                    err,
                    Some(*why),
                    "{:?} in pieces of {piece}",
                    String::from_utf8_lossy(input)
                );
                if piece == 0 {
                    // Caught before any of the message went on.
                    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
                }
            }
        }
    }

    #[test]
    fn a_bad_second_request_leaves_the_first_intact() {
        let first: &[u8] = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut input = first.to_vec();
        input.extend_from_slice(b"GET /2 HTTP/1.1\nHost: a\n\n");
        let (out, err) = run(&input, 0);
        assert_eq!(err, Some("bare LF in the head"));
        assert_eq!(out, first);
    }

    /// Inputs the fuzzer found giving different verdicts for different
    /// splits (`fuzz/fuzz_targets/http_guard.rs`), and their kin.
    #[test]
    fn the_verdict_does_not_depend_on_the_split() {
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 300));
        long.extend_from_slice(b"\n\n");
        let mut early = b"GET / HTTP/1.1\r\nA: b\r\n\n".to_vec();
        early.extend(std::iter::repeat_n(b'x', 300));
        early.extend_from_slice(b"\r\n\r\n");
        let inputs: Vec<Vec<u8>> = vec![
            b"\r\n\n".to_vec(),
            b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            long,
            early,
        ];
        for input in &inputs {
            let mut g = FramingCheck::new(256, 100);
            let whole = {
                let mut out = BytesMut::new();
                (g.feed(input, &mut out).err(), out.len() + g.held.len())
            };
            for piece in [1, 2, 3, 7, 255] {
                let mut g = FramingCheck::new(256, 100);
                let mut err = None;
                let mut total = 0;
                for c in input.chunks(piece) {
                    let mut out = BytesMut::new();
                    let r = g.feed(c, &mut out);
                    total += out.len();
                    if let Err(e) = r {
                        err = Some(e);
                        break;
                    }
                }
                if err.is_none() {
                    total += g.held.len();
                }
                assert_eq!(
                    err,
                    whole.0,
                    "{:?} in pieces of {piece}",
                    String::from_utf8_lossy(input)
                );
                if err.is_none() {
                    assert_eq!(total, whole.1);
                }
            }
        }
    }

    #[test]
    fn oversized_heads_are_left_to_hyper() {
        let mut input = b"GET / HTTP/1.1\r\nX: ".to_vec();
        input.extend(std::iter::repeat_n(b'a', 20_000));
        let (out, err) = run(&input, 0);
        assert_eq!(err, None);
        assert_eq!(out, input);
    }
}
