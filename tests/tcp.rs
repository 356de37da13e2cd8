//! TCP over real loopback sockets.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use braid::testing::run_until;
use braid::{Address, CloseKind, CloseReason, Factory, Producer, Protocol, Reactor, Transport};
use common::{connect_once, localhost, Echo, Recorder, Shared};

const LIMIT: Duration = Duration::from_secs(20);

/// A factory whose every protocol records into a new log, kept in a list.
fn recording_factory(logs: Rc<RefCell<Vec<Shared>>>, half_close: bool) -> impl Factory {
    move |_: &Address| {
        let (mut r, log) = Recorder::new();
        r.half_close = half_close;
        logs.borrow_mut().push(log);
        r
    }
}

#[test]
fn echo_round_trip_with_a_std_client() {
    let reactor = Reactor::new().unwrap();
    let port = reactor.listen_tcp(localhost(), |_: &Address| Echo).unwrap();
    let addr = port.local_addr();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"hello braid").unwrap();
        let mut buf = [0u8; 11];
        s.read_exact(&mut buf).unwrap();
        buf
    });
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    let h = reactor.handle();
    std::thread::spawn(move || {
        let got = client.join().unwrap();
        h.call_from_thread(move || assert_eq!(&got, b"hello braid"))
            .unwrap();
        h.stop();
    });
    reactor.add_shutdown_trigger(braid::ShutdownPhase::After, move || d.set(true));
    reactor.run().unwrap();
    assert!(done.get());
    assert!(!port.is_listening(), "shutdown closed the port");
}

#[test]
fn braid_client_and_server_in_one_reactor() {
    let reactor = Reactor::new().unwrap();
    let port = reactor.listen_tcp(localhost(), |_: &Address| Echo).unwrap();
    let (client, log) = Recorder::new();
    let connector = connect_once(&reactor, port.local_addr(), client);
    run_until(&reactor, LIMIT, || log.borrow().made == 1).unwrap();
    let t = connector.transport().expect("connected");
    assert_eq!(t.peer_addr(), Address::Tcp(port.local_addr()));
    assert!(matches!(t.local_addr(), Address::Tcp(_)));
    // Write from outside any dispatch, as a GUI handler would.
    let payload: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    t.write(&payload);
    run_until(&reactor, LIMIT, || log.borrow().data.len() == payload.len()).unwrap();
    assert!(log.borrow().data == payload);
    connector.disconnect();
    run_until(&reactor, LIMIT, || !log.borrow().lost.is_empty()).unwrap();
    assert_eq!(log.borrow().lost, vec![CloseKind::Done]);
}

// ----- connection_lost exactly once, whatever the order of closes -----

#[derive(Clone, Copy, Debug)]
enum Act {
    ServerLose,
    ServerAbort,
    ServerHalfClose,
    ClientLose,
    ClientAbort,
    ClientHalfClose,
}

/// Runs a braid server and a braid client, applies `acts` in order (all in
/// one dispatch, or with I/O between them), and checks that each side sees
/// exactly one `connection_lost`.
/// A braid server and a braid client connected over loopback, both
/// recording; with `half_close`, neither closes on the other's EOF.
/// Returns (server log, client log).
fn braid_pair(reactor: &Reactor, half_close: bool) -> (Shared, Shared) {
    let server_logs = Rc::new(RefCell::new(Vec::new()));
    let port = reactor
        .listen_tcp(
            localhost(),
            recording_factory(server_logs.clone(), half_close),
        )
        .unwrap();
    let (mut client, clog) = Recorder::new();
    client.half_close = half_close;
    connect_once(reactor, port.local_addr(), client);
    run_until(reactor, LIMIT, || {
        clog.borrow().made == 1 && server_logs.borrow().len() == 1
    })
    .unwrap();
    let slog = server_logs.borrow()[0].clone();
    (slog, clog)
}

fn close_ordering(acts: &[Act], interleave: bool) {
    let reactor = Reactor::new().unwrap();
    let (slog, clog) = braid_pair(&reactor, false);
    let st = slog.borrow().transport.clone().unwrap();
    let ct = clog.borrow().transport.clone().unwrap();
    st.write(b"pending server data");
    ct.write(b"pending client data");
    for act in acts {
        match act {
            Act::ServerLose => st.lose_connection(),
            Act::ServerAbort => st.abort_connection(),
            Act::ServerHalfClose => st.lose_write_connection(),
            Act::ClientLose => ct.lose_connection(),
            Act::ClientAbort => ct.abort_connection(),
            Act::ClientHalfClose => ct.lose_write_connection(),
        }
        if interleave {
            reactor.iterate(Duration::from_millis(50)).unwrap();
        }
    }
    let both_lost = || !slog.borrow().lost.is_empty() && !clog.borrow().lost.is_empty();
    run_until(&reactor, LIMIT, both_lost)
        .unwrap_or_else(|e| panic!("{acts:?} interleave={interleave}: {e}"));
    // Give stray events a chance to deliver a second connection_lost.
    for _ in 0..5 {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    let (s, c) = (slog.borrow(), clog.borrow());
    assert_eq!(
        s.lost.len(),
        1,
        "{acts:?} interleave={interleave}: server {:?}",
        s.lost
    );
    assert_eq!(
        c.lost.len(),
        1,
        "{acts:?} interleave={interleave}: client {:?}",
        c.lost
    );
    assert!(s.eof <= 1 && c.eof <= 1);
    assert_eq!(reactor.iterate(Duration::ZERO).unwrap().calls, 0);
}

#[test]
fn connection_lost_exactly_once_under_every_close_ordering() {
    use Act::*;
    let all = [
        ServerLose,
        ServerAbort,
        ServerHalfClose,
        ClientLose,
        ClientAbort,
        ClientHalfClose,
    ];
    // Every single act, and every ordered pair (including repeats).
    for &a in &all {
        for interleave in [false, true] {
            close_ordering(&[a], interleave);
        }
    }
    for &a in &all {
        for &b in &all {
            for interleave in [false, true] {
                close_ordering(&[a, b], interleave);
            }
        }
    }
}

#[test]
#[cfg_attr(
    windows,
    ignore = "under Wine 8.0 a peer's reset (linger 0) arrives as an orderly close; not run on real Windows"
)]
fn close_reasons_are_classified() {
    // A clean close by the peer is Done; our abort is Aborted; a reset
    // from the peer (SO_LINGER 0) is Reset.
    let reactor = Reactor::new().unwrap();
    let logs = Rc::new(RefCell::new(Vec::new()));
    let port = reactor
        .listen_tcp(localhost(), recording_factory(logs.clone(), false))
        .unwrap();

    let clean = TcpStream::connect(port.local_addr()).unwrap();
    run_until(&reactor, LIMIT, || logs.borrow().len() == 1).unwrap();
    drop(clean);
    run_until(&reactor, LIMIT, || {
        !logs.borrow()[0].borrow().lost.is_empty()
    })
    .unwrap();
    assert_eq!(logs.borrow()[0].borrow().lost, vec![CloseKind::Done]);

    let reset = TcpStream::connect(port.local_addr()).unwrap();
    run_until(&reactor, LIMIT, || logs.borrow().len() == 2).unwrap();
    socket2::SockRef::from(&reset)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(reset);
    run_until(&reactor, LIMIT, || {
        !logs.borrow()[1].borrow().lost.is_empty()
    })
    .unwrap();
    assert_eq!(logs.borrow()[1].borrow().lost, vec![CloseKind::Reset]);

    let _aborted = TcpStream::connect(port.local_addr()).unwrap();
    run_until(&reactor, LIMIT, || logs.borrow().len() == 3).unwrap();
    let log = logs.borrow()[2].clone();
    log.borrow().transport.clone().unwrap().abort_connection();
    run_until(&reactor, LIMIT, || !log.borrow().lost.is_empty()).unwrap();
    assert_eq!(log.borrow().lost, vec![CloseKind::Aborted]);
}

#[test]
fn lose_connection_flushes_first() {
    let reactor = Reactor::new().unwrap();
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let b = big.clone();
    let port = reactor
        .listen_tcp(localhost(), move |_: &Address| {
            struct SendAndClose(Vec<u8>);
            impl Protocol for SendAndClose {
                fn connection_made(&mut self, t: &Transport) {
                    t.write(&self.0);
                    t.lose_connection();
                    t.write(b"ignored after lose_connection");
                }
                fn data_received(&mut self, _: &Transport, _: &[u8]) {}
            }
            SendAndClose(b.clone())
        })
        .unwrap();
    let addr = port.local_addr();
    let reader = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let h = reactor.handle();
    let waiter = std::thread::spawn(move || {
        let got = reader.join().unwrap();
        h.stop();
        got
    });
    reactor.run().unwrap();
    assert!(waiter.join().unwrap() == big);
}

#[test]
fn half_close_lets_the_server_answer_after_eof() {
    // The client sends a request and shuts its write side; the server sees
    // read_eof, answers, then closes.
    struct Upper(Vec<u8>);
    impl Protocol for Upper {
        fn data_received(&mut self, _: &Transport, d: &[u8]) {
            self.0.extend_from_slice(d);
        }
        fn read_eof(&mut self, t: &Transport) {
            t.write(&self.0.to_ascii_uppercase());
            t.lose_connection();
        }
    }
    let reactor = Reactor::new().unwrap();
    let port = reactor
        .listen_tcp(localhost(), |_: &Address| Upper(Vec::new()))
        .unwrap();
    let addr = port.local_addr();
    let h = reactor.handle();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"shout this").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        h.stop();
        got
    });
    reactor.run().unwrap();
    assert_eq!(client.join().unwrap(), b"SHOUT THIS");
}

#[test]
fn braid_half_close_delivers_eof_to_the_peer_protocol() {
    common::init_tracing();
    let reactor = Reactor::new().unwrap();
    let (slog, clog) = braid_pair(&reactor, true);
    let ct = clog.borrow().transport.clone().unwrap();
    ct.write(b"request");
    ct.lose_write_connection();
    run_until(&reactor, LIMIT, || slog.borrow().eof == 1).unwrap();
    assert_eq!(slog.borrow().data, b"request");
    // The server still writes after the client's EOF.
    let st = slog.borrow().transport.clone().unwrap();
    st.write(b"response");
    st.lose_write_connection();
    run_until(&reactor, LIMIT, || {
        !clog.borrow().lost.is_empty() && !slog.borrow().lost.is_empty()
    })
    .unwrap();
    assert_eq!(clog.borrow().data, b"response");
    assert_eq!(clog.borrow().lost, vec![CloseKind::Done]);
    assert_eq!(slog.borrow().lost, vec![CloseKind::Done]);
}

#[test]
fn pause_and_resume_reading() {
    let reactor = Reactor::new().unwrap();
    let (log, mut peer) = accept_one(&reactor);
    let t = log.borrow().transport.clone().unwrap();
    peer.write_all(b"first").unwrap();
    run_until(&reactor, LIMIT, || log.borrow().data == b"first").unwrap();
    t.pause_reading();
    peer.write_all(b"second").unwrap();
    // The bytes are in the kernel; with reading paused, dispatches (even
    // zero-timeout ones) deliver nothing.
    for _ in 0..20 {
        reactor.iterate(Duration::from_millis(2)).unwrap();
    }
    assert_eq!(log.borrow().data, b"first");
    t.resume_reading();
    run_until(&reactor, LIMIT, || log.borrow().data == b"firstsecond").unwrap();
}

// ----- panics -----

#[test]
fn a_panic_in_one_connection_leaves_a_hundred_others_working() {
    common::init_tracing();
    struct Service;
    impl Protocol for Service {
        fn data_received(&mut self, t: &Transport, data: &[u8]) {
            if data.starts_with(b"panic") {
                panic!("deliberate panic: protocol bug");
            }
            t.write(data);
        }
    }
    let reactor = Reactor::new().unwrap();
    let port = reactor
        .listen_tcp(localhost(), |_: &Address| Service)
        .unwrap();

    let (bad, bad_log) = Recorder::new();
    connect_once(&reactor, port.local_addr(), bad);
    let mut good = Vec::new();
    for _ in 0..100 {
        let (r, log) = Recorder::new();
        connect_once(&reactor, port.local_addr(), r);
        good.push(log);
    }
    run_until(&reactor, LIMIT, || {
        bad_log.borrow().made == 1 && good.iter().all(|l| l.borrow().made == 1)
    })
    .unwrap();
    bad_log
        .borrow()
        .transport
        .as_ref()
        .unwrap()
        .write(b"panic now");
    for (i, l) in good.iter().enumerate() {
        l.borrow()
            .transport
            .as_ref()
            .unwrap()
            .write(format!("job {i}").as_bytes());
    }
    run_until(&reactor, LIMIT, || !bad_log.borrow().lost.is_empty()).unwrap();
    for (i, l) in good.iter().enumerate() {
        let want = format!("job {i}");
        run_until(&reactor, LIMIT, || l.borrow().data == want.as_bytes()).unwrap();
    }
    // Only the panicking connection went; the server still accepts.
    assert!(good.iter().all(|l| l.borrow().lost.is_empty()));
    let fresh = TcpStream::connect(port.local_addr());
    assert!(fresh.is_ok());
}

#[test]
fn a_panic_in_connection_made_or_connection_lost_is_contained() {
    common::init_tracing();
    struct Bad(Rc<Cell<u32>>);
    impl Protocol for Bad {
        fn connection_made(&mut self, _: &Transport) {
            panic!("deliberate panic: bad start");
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
        fn connection_lost(&mut self, reason: &CloseReason) {
            assert_eq!(reason.kind(), CloseKind::Panicked);
            self.0.set(self.0.get() + 1);
            panic!("deliberate panic: bad end");
        }
    }
    let reactor = Reactor::new().unwrap();
    let lost = Rc::new(Cell::new(0));
    let l = lost.clone();
    let port = reactor
        .listen_tcp(localhost(), move |_: &Address| Bad(l.clone()))
        .unwrap();
    let mut s = TcpStream::connect(port.local_addr()).unwrap();
    run_until(&reactor, LIMIT, || lost.get() == 1).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        s.read(&mut buf).unwrap(),
        0,
        "the peer saw the connection close"
    );
}

// ----- backpressure -----

/// A stream writer's shared state: written by the application and by the
/// producer the transport drives.
struct Hose {
    t: Transport,
    paused: Cell<bool>,
    written: Cell<usize>,
    peak_buffer: Cell<usize>,
    chunk: usize,
    limit: usize,
}

impl Hose {
    /// Writes chunks until paused or done, as a streaming producer does.
    fn pump(&self) {
        let chunk = vec![7u8; self.chunk];
        while !self.paused.get() && self.written.get() < self.limit {
            self.t.write(&chunk);
            self.written.set(self.written.get() + chunk.len());
            self.peak_buffer
                .set(self.peak_buffer.get().max(self.t.write_buffer_len()));
        }
    }
}

/// A push producer: paused and resumed by the transport's watermarks.
struct Streaming(Rc<Hose>);

impl Producer for Streaming {
    fn pause_producing(&self) {
        self.0.paused.set(true);
    }
    fn resume_producing(&self) {
        self.0.paused.set(false);
        self.0.pump();
    }
    fn stop_producing(&self) {
        self.0.paused.set(true);
    }
}

/// Listens, connects a std client, and returns the accepted connection's
/// log and the client.
fn accept_one(reactor: &Reactor) -> (Shared, TcpStream) {
    let logs = Rc::new(RefCell::new(Vec::new()));
    let port = reactor
        .listen_tcp(localhost(), recording_factory(logs.clone(), false))
        .unwrap();
    let peer = TcpStream::connect(port.local_addr()).unwrap();
    run_until(reactor, LIMIT, || logs.borrow().len() == 1).unwrap();
    port.stop_listening();
    let log = logs.borrow()[0].clone();
    (log, peer)
}

fn accepted_transport(reactor: &Reactor) -> (Transport, TcpStream) {
    let (log, peer) = accept_one(reactor);
    let t = log.borrow().transport.clone().unwrap();
    (t, peer)
}

#[test]
fn a_writer_to_a_peer_that_never_reads_stays_under_a_memory_cap() {
    let reactor = Reactor::new().unwrap();
    let (t, _never_reads) = accepted_transport(&reactor);
    let hose = Rc::new(Hose {
        t: t.clone(),
        paused: Cell::new(false),
        written: Cell::new(0),
        peak_buffer: Cell::new(0),
        chunk: 64 * 1024,
        limit: 1 << 30,
    });
    t.register_producer(Rc::new(Streaming(hose.clone())), true)
        .unwrap();
    // The application starts the stream; the transport pauses it once the
    // kernel's buffers are full and braid's own reaches the high watermark.
    hose.pump();
    for _ in 0..50 {
        reactor.iterate(Duration::from_millis(2)).unwrap();
    }
    assert!(hose.paused.get(), "the producer was paused");
    // braid's buffer never held more than the high watermark (64 KiB) plus
    // the chunk that crossed it; the rest sits in the kernel (a few MiB).
    let cap = 64 * 1024 + hose.chunk;
    assert!(
        hose.peak_buffer.get() <= cap,
        "peak buffer {}",
        hose.peak_buffer.get()
    );
    assert!(t.write_buffer_len() <= cap);
    assert!(
        hose.written.get() < 64 << 20,
        "wrote {} bytes into a peer that never reads",
        hose.written.get()
    );
}

#[test]
fn a_streaming_producer_is_resumed_below_the_low_watermark_and_all_data_arrives() {
    let reactor = Reactor::new().unwrap();
    let (t, peer) = accepted_transport(&reactor);
    let total = 64 << 20;
    let hose = Rc::new(Hose {
        t: t.clone(),
        paused: Cell::new(false),
        written: Cell::new(0),
        peak_buffer: Cell::new(0),
        chunk: 16 * 1024,
        limit: total,
    });
    t.register_producer(Rc::new(Streaming(hose.clone())), true)
        .unwrap();
    hose.pump();
    let reader = std::thread::spawn(move || {
        let mut peer = peer;
        let (mut n, mut sum) = (0usize, 0u64);
        let mut buf = vec![0u8; 1 << 16];
        while n < total {
            let k = peer.read(&mut buf).unwrap();
            assert!(k > 0, "early EOF");
            sum += buf[..k].iter().map(|&b| b as u64).sum::<u64>();
            n += k;
        }
        (n, sum)
    });
    run_until(&reactor, Duration::from_secs(60), || {
        hose.written.get() >= total && t.write_buffer_len() == 0
    })
    .unwrap();
    let (n, sum) = reader.join().unwrap();
    assert_eq!(n, total);
    assert_eq!(sum, 7 * total as u64);
    assert!(hose.peak_buffer.get() <= 64 * 1024 + hose.chunk);
}

#[test]
fn a_pull_producer_writes_each_time_the_buffer_drains() {
    let reactor = Reactor::new().unwrap();
    let (t, peer) = accepted_transport(&reactor);
    let total = 32 << 20;
    struct Pull {
        t: Transport,
        written: Rc<Cell<usize>>,
        total: usize,
    }
    impl Producer for Pull {
        fn pause_producing(&self) {}
        fn resume_producing(&self) {
            if self.written.get() < self.total {
                self.t.write(&[7u8; 256 * 1024]);
                self.written.set(self.written.get() + 256 * 1024);
            } else {
                self.t.unregister_producer();
                self.t.lose_connection();
            }
        }
        fn stop_producing(&self) {}
    }
    let written = Rc::new(Cell::new(0));
    let peak = Rc::new(Cell::new(0));
    t.register_producer(
        Rc::new(Pull {
            t: t.clone(),
            written: written.clone(),
            total,
        }),
        false,
    )
    .unwrap();
    let reader = std::thread::spawn(move || {
        let mut peer = peer;
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got.len()
    });
    run_until(&reactor, Duration::from_secs(60), || {
        peak.set(peak.get().max(t.write_buffer_len()));
        reader.is_finished()
    })
    .unwrap();
    assert_eq!(reader.join().unwrap(), total);
    assert!(
        peak.get() <= 256 * 1024,
        "one piece at a time, peak {}",
        peak.get()
    );
}

// ----- refusing, closing, writing after close -----

#[test]
fn factory_can_refuse_a_connection() {
    let reactor = Reactor::new().unwrap();
    struct Refuse;
    impl Factory for Refuse {
        fn build_protocol(&mut self, _: &Address) -> Option<Box<dyn Protocol>> {
            None
        }
    }
    let port = reactor.listen_tcp(localhost(), Refuse).unwrap();
    let mut s = TcpStream::connect(port.local_addr()).unwrap();
    let h = reactor.handle();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let n = s.read(&mut buf);
        h.stop();
        n.map(|n| n == 0).unwrap_or(true)
    });
    reactor.run().unwrap();
    assert!(reader.join().unwrap(), "refused connection is closed");
}

#[test]
fn shutdown_closes_connections_with_the_shutdown_reason() {
    let reactor = Reactor::new().unwrap();
    let logs = Rc::new(RefCell::new(Vec::new()));
    let port = reactor
        .listen_tcp(localhost(), recording_factory(logs.clone(), false))
        .unwrap();
    let _a = TcpStream::connect(port.local_addr()).unwrap();
    let _b = TcpStream::connect(port.local_addr()).unwrap();
    run_until(&reactor, LIMIT, || logs.borrow().len() == 2).unwrap();
    let r = reactor.clone();
    reactor.call_soon(move || r.stop());
    reactor.run().unwrap();
    for l in logs.borrow().iter() {
        assert_eq!(l.borrow().lost, vec![CloseKind::Shutdown]);
    }
}

#[test]
fn writes_after_close_are_dropped_quietly() {
    let reactor = Reactor::new().unwrap();
    let (log, _peer) = accept_one(&reactor);
    let t = log.borrow().transport.clone().unwrap();
    t.abort_connection();
    t.write(b"into the void");
    t.lose_connection();
    t.abort_connection();
    assert!(t.is_closed());
    assert_eq!(t.write_buffer_len(), 0);
    run_until(&reactor, LIMIT, || !log.borrow().lost.is_empty()).unwrap();
    assert_eq!(log.borrow().lost, vec![CloseKind::Aborted]);
}

#[test]
#[cfg(unix)]
fn writing_to_a_reset_peer_raises_no_sigpipe() {
    // With SIGPIPE at its default action (as a C or GTK host may leave it),
    // a write to a reset peer must return EPIPE instead of killing us.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let reactor = Reactor::new().unwrap();
    let (log, peer) = accept_one(&reactor);
    let t = log.borrow().transport.clone().unwrap();
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    // Keep writing (vectored: many small pieces) until the error surfaces.
    run_until(&reactor, LIMIT, || {
        for _ in 0..100 {
            t.write(&[1u8; 1000]);
        }
        !log.borrow().lost.is_empty()
    })
    .unwrap();
    assert_eq!(log.borrow().lost, vec![CloseKind::Reset]);
}

#[test]
fn nodelay_can_be_changed_and_is_reported_unsupported_elsewhere() {
    let reactor = Reactor::new().unwrap();
    let (t, _peer) = accepted_transport(&reactor);
    t.set_nodelay(false).unwrap();
    t.set_nodelay(true).unwrap();
    // A transport that is not TCP says so.
    let mr = braid::testing::MemoryReactor::new();
    let pair = braid::testing::connected_pair(mr.reactor(), Echo, Echo);
    assert_eq!(
        pair.client().set_nodelay(true).unwrap_err().kind(),
        std::io::ErrorKind::Unsupported
    );
}

// ----- large writes, transports as producers -----

#[test]
fn a_large_write_with_nothing_queued_goes_out_at_once_and_order_holds() {
    let reactor = Reactor::new().unwrap();
    let (t, mut peer) = accepted_transport(&reactor);
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    // Outside a dispatch, nothing queued: sent by the write itself.
    t.write(&big);
    assert_eq!(t.write_buffer_len(), 0, "sent without being buffered");
    // Small, large, small: the large one queues behind the first.
    t.write(b"head");
    t.write(&big);
    t.write(b"tail");
    let want: Vec<u8> = [&big[..], b"head", &big[..], b"tail"].concat();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0; want.len()];
        peer.read_exact(&mut got).unwrap();
        assert!(got == want, "bytes out of order");
    });
    run_until(&reactor, Duration::from_secs(20), || reader.is_finished()).unwrap();
    reader.join().unwrap();
}

/// Echoes, with itself as its producer; keeps its transport for the test.
struct BoundedEcho(Rc<RefCell<Option<Transport>>>);
impl Protocol for BoundedEcho {
    fn connection_made(&mut self, t: &Transport) {
        t.register_producer(Rc::new(t.clone()), true).unwrap();
        *self.0.borrow_mut() = Some(t.clone());
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

#[test]
fn an_echo_registered_as_its_own_producer_stops_reading_from_a_peer_that_does_not_read() {
    let reactor = Reactor::new().unwrap();
    let slot: Rc<RefCell<Option<Transport>>> = Rc::default();
    let s2 = slot.clone();
    let port = reactor
        .listen_tcp(localhost(), move |_: &braid::Address| {
            BoundedEcho(s2.clone())
        })
        .unwrap();
    let addr = port.local_addr();
    // A peer that writes up to 64 MiB and reads nothing (it gives up once
    // a write makes no progress for 2 s).
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let chunk = vec![1u8; 64 * 1024];
        let mut sent = 0usize;
        while sent < 64 << 20 {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        (s, sent)
    });
    run_until(&reactor, Duration::from_secs(30), || writer.is_finished()).unwrap();
    let (_s, sent) = writer.join().unwrap();
    assert!(
        sent < 64 << 20,
        "the server stopped reading, so the peer's writes stalled (sent {sent})"
    );
    // What the server holds stays near its high watermark (64 KiB) plus
    // one read, not everything the peer sent.
    let held = slot.borrow().as_ref().unwrap().write_buffer_len();
    assert!(held <= 256 * 1024, "the server buffered {held} bytes");
    assert!(held > 0, "and it did fill up: the peer reads nothing");
}

#[test]
fn a_paused_port_accepts_nothing_until_resumed() {
    let reactor = Reactor::new().unwrap();
    let logs = Rc::new(RefCell::new(Vec::new()));
    let port = reactor
        .listen_tcp(localhost(), recording_factory(logs.clone(), false))
        .unwrap();
    port.pause_accepting();
    // The kernel completes the handshake (the accept queue holds it)...
    let _early = TcpStream::connect(port.local_addr()).unwrap();
    for _ in 0..20 {
        reactor.iterate(Duration::from_millis(2)).unwrap();
    }
    assert!(logs.borrow().is_empty(), "accepted while paused");
    assert!(port.is_listening());
    // ... and the connection is served once accepting resumes.
    port.resume_accepting();
    run_until(&reactor, LIMIT, || logs.borrow().len() == 1).unwrap();
}
