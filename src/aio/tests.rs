//! Tests of the module beside this file.
use super::*;
use crate::testing::{connected_pair, MemoryReactor};

struct Quiet;
impl Protocol for Quiet {
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

fn drain(stream: &Stream) -> usize {
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut n = 0;
    while let Poll::Ready(Ok(k)) = stream.poll_read_with(&mut cx, 1000, |_, _| {}) {
        if k == 0 {
            break;
        }
        n += k;
    }
    n
}

/// Writes down what happens to it.
struct Log(Rc<RefCell<Vec<String>>>);
impl Protocol for Log {
    fn connection_made(&mut self, _: &Transport) {
        self.0.borrow_mut().push("made".into());
    }
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.0.borrow_mut().push(format!("data {}", data.len()));
    }
    fn read_eof(&mut self, _: &Transport) {
        self.0.borrow_mut().push("eof".into());
    }
    fn connection_lost(&mut self, reason: &CloseReason) {
        self.0
            .borrow_mut()
            .push(format!("lost clean={}", reason.is_clean()));
    }
}

fn stream_pair(mr: &MemoryReactor) -> (crate::testing::Pair, Stream) {
    let got: Rc<RefCell<Option<Stream>>> = Rc::default();
    let g = got.clone();
    let pair = connected_pair(
        mr.reactor(),
        StreamProtocol::new(move |s| *g.borrow_mut() = Some(s)),
        Quiet,
    );
    pair.pump();
    let stream = got.borrow_mut().take().expect("the stream");
    (pair, stream)
}

#[test]
fn a_handed_off_connection_keeps_every_byte_and_its_end() {
    let mr = MemoryReactor::new();
    // Unread bytes past the inbox's high mark: reading was paused, and
    // resumes once the protocol has the connection.
    let (pair, stream) = stream_pair(&mr);
    pair.client().write(&vec![7u8; INBOX_HIGH + 10]);
    pair.pump();
    assert!(stream.state.borrow().reading_paused);
    let log = Rc::new(RefCell::new(Vec::new()));
    let lost = Rc::new(Cell::new(false));
    let l = lost.clone();
    stream.on_lost(move || l.set(true));
    let transport = stream.writer();
    stream.into_protocol(Log(log.clone()));
    assert_eq!(log.borrow()[0], "made");
    assert!(
        !transport.is_closed(),
        "giving the stream up does not close"
    );
    pair.client().write(b"more");
    pair.client().lose_write_connection();
    for _ in 0..4 {
        pair.pump();
    }
    let total: usize = log
        .borrow()
        .iter()
        .filter_map(|e| e.strip_prefix("data ")?.parse::<usize>().ok())
        .sum();
    assert_eq!(total, INBOX_HIGH + 10 + 4, "every byte, in one stream");
    assert_eq!(log.borrow().last().unwrap(), "eof");
    transport.lose_connection();
    pair.pump();
    assert_eq!(log.borrow().last().unwrap(), "lost clean=true");
    assert!(lost.get(), "the stream's loss hook still runs");

    // The end already came: the protocol hears it at once.
    let (pair, stream) = stream_pair(&mr);
    pair.client().write(b"bye");
    pair.client().lose_connection();
    pair.pump();
    pair.pump();
    let log = Rc::new(RefCell::new(Vec::new()));
    stream.into_protocol(Log(log.clone()));
    assert_eq!(*log.borrow(), ["made", "data 3", "eof"]);

    // So does a loss.
    let (pair, stream) = stream_pair(&mr);
    stream.writer().abort_connection();
    pair.pump();
    let log = Rc::new(RefCell::new(Vec::new()));
    stream.into_protocol(Log(log.clone()));
    assert_eq!(*log.borrow(), ["made", "lost clean=false"]);
}

#[test]
fn an_idle_stream_keeps_no_big_buffer_and_shrink_frees_a_small_one() {
    let mr = MemoryReactor::new();
    let (pair, stream) = stream_pair(&mr);
    let capacity = || stream.state.borrow().inbox.capacity();
    // A burst bigger than what an emptied inbox keeps: freed once read.
    pair.client().write(&[1u8; 3 * INBOX_KEEP]);
    pair.pump();
    assert!(capacity() >= 3 * INBOX_KEEP);
    assert_eq!(drain(&stream), 3 * INBOX_KEEP);
    assert_eq!(capacity(), 0);
    // A small read keeps its buffer for the next, until shrink.
    pair.client().write(b"hello");
    pair.pump();
    assert_eq!(drain(&stream), 5);
    assert!(capacity() > 0);
    stream.shrink();
    assert_eq!(capacity(), 0);
    // Bytes still unread are never dropped by shrink.
    pair.client().write(b"kept");
    pair.pump();
    stream.shrink();
    assert_eq!(drain(&stream), 4);
}
