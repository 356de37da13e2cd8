//! A transport of one's own, written as a battery would write one (an SSH
//! channel, a tunnelled stream), through braid's public API only: a
//! "duct", two ends joined in memory with a window of bytes in flight, the
//! sender paused (producer/consumer backpressure) while the window is full.
//! braid's own protocols run on it unchanged: a `LineReceiver`, an `aio`
//! stream, and a pump that a test drives as it drives `connected_pair`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use braid::aio::{Stream, StreamProtocol};
use braid::framing::{LineContext, LineHandler, LineReceiver};
use braid::{
    catch_panic, Address, AlreadyRegistered, CloseKind, CloseReason, Producer, Protocol, Reactor,
    Transport, TransportImpl,
};
use futures_util::{AsyncReadExt, AsyncWriteExt};

/// One end of a duct.
struct End {
    me: Weak<End>,
    name: &'static str,
    reactor: Reactor,
    peer: RefCell<Weak<End>>,
    protocol: RefCell<Option<Box<dyn Protocol>>>,
    /// Written, not yet delivered to the peer.
    outbox: RefCell<VecDeque<u8>>,
    /// The peer's protocol paused reading.
    reading_paused: Cell<bool>,
    closing: Cell<bool>,
    write_shut: Cell<bool>,
    eof_delivered: Cell<bool>,
    closed: Cell<bool>,
    producer: RefCell<Option<(Rc<dyn Producer>, bool)>>,
    producer_paused: Cell<bool>,
    /// Most bytes in flight before the writer's producer is paused.
    window: usize,
}

impl End {
    fn transport(&self) -> Transport {
        Transport::new(self.me.upgrade().expect("a live end"))
    }

    /// Calls the protocol with panic isolation, as braid's own connections
    /// do: a panic ends this duct only.
    fn call(&self, f: impl FnOnce(&mut dyn Protocol, &Transport)) {
        let t = self.transport();
        let Ok(mut slot) = self.protocol.try_borrow_mut() else {
            return;
        };
        let Some(p) = slot.as_mut() else { return };
        let ok = catch_panic("duct protocol", || f(&mut **p, &t));
        drop(slot);
        if ok.is_none() {
            self.abort_connection();
        }
    }

    /// Tells the producer what the window asks for.
    fn sync_producer(&self) {
        let queued = self.outbox.borrow().len();
        let Some((p, streaming)) = self.producer.borrow().clone() else {
            return;
        };
        if streaming && queued >= self.window && !self.producer_paused.replace(true) {
            p.pause_producing();
        } else if queued < self.window / 2 && self.producer_paused.replace(false) {
            p.resume_producing();
        }
    }

    fn lose(&self, reason: CloseKind) {
        if self.closed.replace(true) {
            return;
        }
        self.outbox.borrow_mut().clear();
        if let Some((p, _)) = self.producer.borrow_mut().take() {
            p.stop_producing();
        }
        // connection_lost exactly once, from the reactor, never from
        // inside the protocol's own call into the transport.
        let me = self.me.upgrade().expect("a live end");
        self.reactor.call_soon(move || {
            let p = me.protocol.borrow_mut().take();
            if let Some(mut p) = p {
                let _ = catch_panic("duct connection_lost", || {
                    p.connection_lost(&CloseReason::new(reason))
                });
            }
        });
        if let Some(peer) = self.peer.borrow().upgrade() {
            peer.lose(reason);
        }
    }
}

impl TransportImpl for End {
    fn write(&self, data: &[u8]) {
        if self.closed.get() || self.closing.get() || self.write_shut.get() {
            return;
        }
        self.outbox.borrow_mut().extend(data);
        self.sync_producer();
    }
    fn lose_connection(&self) {
        self.closing.set(true);
        if self.outbox.borrow().is_empty() {
            self.lose(CloseKind::Done);
        }
    }
    fn abort_connection(&self) {
        self.lose(CloseKind::Aborted);
    }
    fn lose_write_connection(&self) {
        self.write_shut.set(true);
    }
    fn peer_addr(&self) -> Address {
        let peer = self.peer.borrow().upgrade().map_or("gone", |p| p.name);
        Address::Memory(peer.into())
    }
    fn local_addr(&self) -> Address {
        Address::Memory(self.name.into())
    }
    fn pause_reading(&self) {
        self.reading_paused.set(true);
    }
    fn resume_reading(&self) {
        self.reading_paused.set(false);
    }
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), AlreadyRegistered> {
        if self.producer.borrow().is_some() || self.closed.get() {
            return Err(AlreadyRegistered::new(producer));
        }
        *self.producer.borrow_mut() = Some((producer, streaming));
        self.sync_producer();
        Ok(())
    }
    fn unregister_producer(&self) {
        self.producer.borrow_mut().take();
    }
    fn set_write_watermarks(&self, _low: usize, _high: usize) {}
    fn write_buffer_len(&self) -> usize {
        self.outbox.borrow().len()
    }
    fn is_closed(&self) -> bool {
        self.closed.get()
    }
    fn is_disconnecting(&self) -> bool {
        self.closing.get() || self.closed.get()
    }
    fn reactor(&self) -> Option<Reactor> {
        Some(self.reactor.clone())
    }
}

/// Two joined ends and the pump that moves bytes between them.
struct Duct {
    a: Rc<End>,
    b: Rc<End>,
    /// Bytes moved per step (1: byte by byte).
    chunk: usize,
}

impl Duct {
    fn new(reactor: &Reactor, a: impl Protocol, b: impl Protocol, chunk: usize) -> Duct {
        let end = |name, p: Box<dyn Protocol>| {
            Rc::new_cyclic(|me| End {
                me: me.clone(),
                name,
                reactor: reactor.clone(),
                peer: RefCell::default(),
                protocol: RefCell::new(Some(p)),
                outbox: RefCell::default(),
                reading_paused: Cell::new(false),
                closing: Cell::new(false),
                write_shut: Cell::new(false),
                eof_delivered: Cell::new(false),
                closed: Cell::new(false),
                producer: RefCell::default(),
                producer_paused: Cell::new(false),
                window: 64,
            })
        };
        let a = end("a", Box::new(a));
        let b = end("b", Box::new(b));
        *a.peer.borrow_mut() = Rc::downgrade(&b);
        *b.peer.borrow_mut() = Rc::downgrade(&a);
        a.call(|p, t| p.connection_made(t));
        b.call(|p, t| p.connection_made(t));
        Duct { a, b, chunk }
    }

    /// Moves one chunk from `from` to `to`; whether anything moved.
    fn step(from: &End, to: &End, chunk: usize) -> bool {
        if to.reading_paused.get() || from.closed.get() {
            return false;
        }
        let piece: Vec<u8> = {
            let mut o = from.outbox.borrow_mut();
            let n = chunk.min(o.len());
            o.drain(..n).collect()
        };
        if piece.is_empty() {
            if from.write_shut.get() && !to.eof_delivered.replace(true) {
                to.call(|p, t| p.read_eof(t));
                return true;
            }
            if from.closing.get() {
                from.lose(CloseKind::Done);
                return true;
            }
            return false;
        }
        to.call(|p, t| p.data_received(t, &piece));
        from.sync_producer();
        true
    }

    /// Moves bytes and runs the reactor's queued calls and tasks until
    /// nothing moves.
    fn pump(&self) {
        for _ in 0..1_000_000 {
            let moved =
                Self::step(&self.a, &self.b, self.chunk) | Self::step(&self.b, &self.a, self.chunk);
            let ran = self.a.reactor.run_due().calls;
            if !moved && ran == 0 {
                return;
            }
        }
        panic!("the duct did not settle");
    }
}

struct Upper;
impl LineHandler for Upper {
    fn line_received(&mut self, ctx: &mut LineContext<'_>, line: &[u8]) {
        ctx.send_line(&line.to_ascii_uppercase());
    }
}

#[derive(Default)]
struct Lines(Rc<RefCell<Vec<String>>>);
impl LineHandler for Lines {
    fn connection_made(&mut self, ctx: &mut LineContext<'_>) {
        ctx.send_line(b"hello");
        ctx.send_line(b"over a duct");
    }
    fn line_received(&mut self, _: &mut LineContext<'_>, line: &[u8]) {
        self.0
            .borrow_mut()
            .push(String::from_utf8_lossy(line).into_owned());
    }
}

#[test]
fn a_line_receiver_runs_on_a_custom_transport_whole_and_byte_by_byte() {
    for chunk in [1, 3, 1 << 20] {
        let reactor = Reactor::new().unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let duct = Duct::new(
            &reactor,
            LineReceiver::new(Upper),
            LineReceiver::new(Lines(got.clone())),
            chunk,
        );
        duct.pump();
        assert_eq!(*got.borrow(), ["HELLO", "OVER A DUCT"], "chunk {chunk}");
        assert_eq!(duct.b.transport().peer_addr(), Address::Memory("a".into()));
    }
}

#[test]
fn an_aio_stream_runs_on_a_custom_transport_with_backpressure() {
    let reactor = Reactor::new().unwrap();
    let streams: Rc<RefCell<Vec<Stream>>> = Rc::default();
    let (sa, sb) = (streams.clone(), streams.clone());
    let duct = Duct::new(
        &reactor,
        StreamProtocol::new(move |s| sa.borrow_mut().push(s)),
        StreamProtocol::new(move |s| sb.borrow_mut().push(s)),
        61,
    );
    let mut reader = streams.borrow_mut().pop().unwrap();
    let mut writer = streams.borrow_mut().pop().unwrap();
    const TOTAL: usize = 100_000;
    let most_queued = Rc::new(Cell::new(0));
    let mq = most_queued.clone();
    let write = reactor.spawn_local(async move {
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(1000) {
            writer.write_all(piece).await.unwrap();
            mq.set(mq.get().max(writer.transport().write_buffer_len()));
        }
        writer.close().await.unwrap();
    });
    let read = reactor.spawn_local(async move {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).await.unwrap();
        all
    });
    duct.pump();
    assert!(write.is_finished(), "the writer finished");
    let all = reactor.block_on(read).unwrap().unwrap();
    assert_eq!(all.len(), TOTAL);
    assert!(all.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    // The writer waited on the window: never more than one piece beyond it.
    assert!(most_queued.get() <= 64 + 1000, "{}", most_queued.get());
}

#[test]
fn a_panic_on_a_custom_transport_ends_that_connection_once() {
    struct Boom(Rc<Cell<u32>>);
    impl Protocol for Boom {
        fn data_received(&mut self, _: &Transport, _: &[u8]) {
            panic!("deliberate");
        }
        fn connection_lost(&mut self, _: &CloseReason) {
            self.0.set(self.0.get() + 1);
        }
    }
    struct Talk(Rc<Cell<u32>>);
    impl Protocol for Talk {
        fn connection_made(&mut self, t: &Transport) {
            t.write(b"x");
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
        fn connection_lost(&mut self, _: &CloseReason) {
            self.0.set(self.0.get() + 1);
        }
    }
    braid::testing::quiet_deliberate_panics();
    let reactor = Reactor::new().unwrap();
    let lost = Rc::new(Cell::new(0));
    let duct = Duct::new(&reactor, Boom(lost.clone()), Talk(lost.clone()), 1);
    duct.pump();
    assert_eq!(lost.get(), 2, "each side lost its connection exactly once");
    assert!(duct.a.transport().is_closed() && duct.b.transport().is_closed());
}
