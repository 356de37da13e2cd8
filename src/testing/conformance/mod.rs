//! One conformance suite for every host loop (Twisted's `ReactorBuilder`).
//!
//! A host adapter implements [`Harness`] (how to run a reactor under that
//! loop until it stops, and how to set a timer of the loop's own) and gets
//! every check with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! braid::conformance_tests!(my_adapter::TestHarness::new());
//! ```
//!
//! Each check builds its own reactor, drives it only through the harness,
//! and fails with a message instead of hanging (a watchdog stops the
//! reactor after [`LIMIT`]).

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::{Address, CloseKind, CloseReason, Protocol, Reactor, Transport};

mod responsiveness;
pub use responsiveness::{
    gui_stays_responsive_under_a_flood, idle_costs_no_wakeups, thread_context_switches,
    Responsiveness,
};

/// How long any one check may run before its watchdog stops it.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A callback run by a host's own timer; returns whether to go on.
pub type HostTick = Box<dyn FnMut() -> bool>;

/// A host loop as the suite sees it.
pub trait Harness {
    /// Runs `reactor` under this host loop until the reactor stops. The
    /// reactor is attached for the duration and detached on return.
    fn run(&self, reactor: &Reactor);

    /// Runs `f` every `every` from the host loop's own timer (a glib
    /// timeout, a calloop timer, a winit `WaitUntil`), outside any reactor
    /// dispatch, until it returns false. Used to check that timers set
    /// from GUI callbacks fire on time and that the GUI stays responsive
    /// while the network floods. Must be called before [`run`](Self::run).
    fn host_interval(&self, every: Duration, f: HostTick);

    /// The host's name, for messages.
    fn name(&self) -> String;

    /// Runs `task` on the host loop's own executor (glib's
    /// `MainContext::spawn_local`, calloop's executor), not the reactor's,
    /// from the next [`run`](Self::run) on; the host keeps polling it
    /// after the reactor stops, as an application's loop goes on, until it
    /// completes or the host gives up. Returns false (dropping the task)
    /// for hosts that have no executor of their own: the default.
    fn host_spawn(&self, task: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) -> bool {
        drop(task);
        false
    }
}

/// A watchdog: stops the reactor if the check has not finished in time.
/// Batteries' checks (TLS, HTTP) use it too.
#[derive(Debug)]
pub struct Watchdog(crate::DelayedCall, Rc<Cell<bool>>);

impl Watchdog {
    /// Arms a watchdog of [`LIMIT`] on `reactor`.
    pub fn arm(reactor: &Reactor) -> Watchdog {
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let r = reactor.clone();
        let call = reactor.call_later(LIMIT, move || {
            f.set(true);
            r.stop();
        });
        Watchdog(call, fired)
    }

    /// Disarms it.
    ///
    /// # Panics
    ///
    /// If it fired: the check named `what` did not finish in time.
    pub fn check(&self, what: &str) {
        assert!(!self.1.get(), "{what}: did not finish within {LIMIT:?}");
        self.0.cancel();
    }
}

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        t.write(d);
    }
}

/// A client that sends `rounds` messages one after another and checks
/// each echo; stops the reactor when done.
struct RoundTrips {
    left: u32,
    pending: Vec<u8>,
    got: Vec<u8>,
    done: Rc<Cell<u32>>,
    of: u32,
}

impl RoundTrips {
    fn send(&mut self, t: &Transport) {
        self.pending = format!("message {} of a round trip\n", self.left).into_bytes();
        self.got.clear();
        t.write(&self.pending);
    }
}

impl Protocol for RoundTrips {
    fn connection_made(&mut self, t: &Transport) {
        self.send(t);
    }
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        self.got.extend_from_slice(d);
        if self.got.len() < self.pending.len() {
            return;
        }
        assert_eq!(self.got, self.pending, "echo mismatch");
        self.left -= 1;
        if self.left == 0 {
            self.done.set(self.done.get() + 1);
            if self.done.get() == self.of {
                if let Some(r) = t.reactor() {
                    r.stop();
                }
            }
            t.lose_connection();
        } else {
            self.send(t);
        }
    }
}

/// TCP echo: 10 clients in the same reactor do 100 round trips each.
pub fn echo_round_trips(h: &dyn Harness) {
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Echo)
        .unwrap();
    let done = Rc::new(Cell::new(0));
    for _ in 0..10 {
        let d = done.clone();
        let mut p = Some(RoundTrips {
            left: 100,
            pending: vec![],
            got: vec![],
            done: d,
            of: 10,
        });
        reactor.connect_tcp(
            port.local_addr(),
            move |_: &Address| p.take().unwrap(),
            None,
        );
    }
    h.run(&reactor);
    dog.check(&format!("{}: echo", h.name()));
    assert_eq!(done.get(), 10);
}

/// 1,000 timers, a third cancelled and a third reset (some from inside
/// other timers' callbacks): the rest fire once each, in deadline order.
pub fn thousand_timers_with_cancel_and_reset(h: &dyn Harness) {
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let fired = Rc::new(RefCell::new(Vec::new()));
    let mut calls = Vec::new();
    for i in 0..1000u32 {
        let f = fired.clone();
        let ms = 5 + (i % 50) as u64;
        calls.push(Rc::new(
            reactor.call_later(Duration::from_millis(ms), move || f.borrow_mut().push(i)),
        ));
    }
    let deadlines: Vec<Instant> = calls.iter().map(|c| c.deadline().unwrap()).collect();
    // Cancel every third now; reset every third+1 to 60 ms from inside a
    // timer that fires first.
    for c in calls.iter().step_by(3) {
        assert!(c.cancel());
    }
    let to_reset: Vec<_> = calls.iter().skip(1).step_by(3).cloned().collect();
    reactor.call_later(Duration::from_millis(1), move || {
        for c in &to_reset {
            assert!(c.reset(Duration::from_millis(60)));
        }
    });
    let r = reactor.clone();
    let f = fired.clone();
    reactor.call_later(Duration::from_millis(100), move || {
        assert_eq!(f.borrow().len(), 1000 - 334, "fired by 100 ms");
        r.stop();
    });
    h.run(&reactor);
    dog.check(&format!("{}: timers", h.name()));
    let fired = fired.borrow();
    assert_eq!(fired.len(), 666);
    assert!(fired.iter().all(|i| i % 3 != 0), "a cancelled timer fired");
    let reset: Vec<u32> = fired.iter().copied().filter(|i| i % 3 == 1).collect();
    assert_eq!(
        reset,
        (0..1000).filter(|i| i % 3 == 1).collect::<Vec<_>>(),
        "reset timers fire last, in order"
    );
    let firsts = &fired[..fired.len() - reset.len()];
    assert!(firsts.iter().all(|i| i % 3 == 2));
    let order: Vec<_> = firsts.iter().map(|&i| (deadlines[i as usize], i)).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "deadline order");
}

/// 4 threads race 10,000 `call_from_thread` calls each: all delivered,
/// in order per thread, on the reactor's thread.
pub fn call_from_thread_races(h: &dyn Harness) {
    thread_local! {
        static SEEN: RefCell<Vec<Vec<u32>>> = RefCell::new(vec![Vec::new(); 4]);
    }
    SEEN.with(|s| s.borrow_mut().iter_mut().for_each(Vec::clear));
    const N: u32 = 10_000;
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let done_threads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for t in 0..4usize {
        let handle = reactor.handle();
        let done = done_threads.clone();
        std::thread::spawn(move || {
            for i in 0..N {
                handle
                    .call_from_thread(move || SEEN.with(|s| s.borrow_mut()[t].push(i)))
                    .unwrap();
            }
            if done.fetch_add(1, std::sync::atomic::Ordering::AcqRel) == 3 {
                // The last thread to finish queues the stop behind its calls.
                let h2 = handle.clone();
                handle.call_from_thread(move || h2.stop()).unwrap();
            }
        });
    }
    h.run(&reactor);
    dog.check(&format!("{}: call_from_thread", h.name()));
    SEEN.with(|s| {
        for (t, v) in s.borrow().iter().enumerate() {
            assert_eq!(v.len(), N as usize, "thread {t}: calls lost");
            assert!(
                v.windows(2).all(|w| w[0] + 1 == w[1]),
                "thread {t}: out of order"
            );
        }
    });
}

/// `stop` from a callback ends the host's run, after the shutdown
/// triggers; a listener is closed by it.
pub fn stop_ends_the_run(h: &dyn Harness) {
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Echo)
        .unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    reactor.add_shutdown_trigger(crate::ShutdownPhase::Before, move || {
        l.borrow_mut().push("before")
    });
    let l = log.clone();
    reactor.add_shutdown_trigger(crate::ShutdownPhase::After, move || {
        l.borrow_mut().push("after")
    });
    let r = reactor.clone();
    reactor.call_soon(move || r.stop());
    h.run(&reactor);
    dog.check(&format!("{}: stop", h.name()));
    assert_eq!(*log.borrow(), vec!["before", "after"]);
    assert!(reactor.is_stopped());
    assert!(!port.is_listening());
}

/// What a protocol wrote just before calling `stop` reaches the peer: a
/// "goodbye" line and 1 MB behind it (more than a socket takes at once),
/// then a clean end of stream, and the run ends.
pub fn stop_flushes_what_was_written(h: &dyn Harness) {
    const BULK: usize = 1 << 20;
    struct Bye(Reactor);
    impl Protocol for Bye {
        fn data_received(&mut self, t: &Transport, data: &[u8]) {
            if data.ends_with(b"quit\n") {
                t.write(b"goodbye\n");
                t.write(&vec![b'x'; BULK]);
                self.0.stop();
            }
        }
    }
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let r = reactor.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            Bye(r.clone())
        })
        .unwrap();
    let addr = port.local_addr();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(b"quit\n").unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).map(|_| all)
    });
    h.run(&reactor);
    dog.check(&format!("{}: stop flushes", h.name()));
    let all = client.join().unwrap().expect("a clean end of stream");
    assert!(
        all.starts_with(b"goodbye\n"),
        "{}: the line came first",
        h.name()
    );
    assert_eq!(
        all.len(),
        8 + BULK,
        "{}: every byte written before stop",
        h.name()
    );
    assert!(reactor.is_stopped());
}

/// Every pairing of close actions (lose, abort, half-close, lose then
/// abort, nothing) on the two sides of a connection ends with exactly one
/// `connection_lost` per side.
pub fn connection_lost_exactly_once(h: &dyn Harness) {
    struct Side {
        lost: Rc<RefCell<Vec<CloseKind>>>,
        act: u8,
        total: Rc<Cell<u32>>,
    }
    impl Protocol for Side {
        fn connection_made(&mut self, t: &Transport) {
            t.write(b"some data first");
            match self.act {
                0 => t.lose_connection(),
                1 => t.abort_connection(),
                2 => t.lose_write_connection(),
                3 => {
                    t.lose_connection();
                    t.abort_connection();
                }
                _ => {} // nothing: the peer's close reaches us as EOF
            }
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
        fn connection_lost(&mut self, reason: &CloseReason) {
            self.lost.borrow_mut().push(reason.kind());
            self.total.set(self.total.get() + 1);
        }
    }
    const ACTS: [u8; 5] = [0, 1, 2, 3, 4];
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let total = Rc::new(Cell::new(0));
    // Every pair but (nothing, nothing), which never closes by itself.
    let expect = ((ACTS.len() * ACTS.len() - 1) * 2) as u32;
    let mut logs = Vec::new();
    for s_act in ACTS {
        for c_act in ACTS {
            if s_act == 4 && c_act == 4 {
                continue;
            }
            let slog = Rc::new(RefCell::new(Vec::new()));
            let clog = Rc::new(RefCell::new(Vec::new()));
            let mut server = Some(Side {
                lost: slog.clone(),
                act: s_act,
                total: total.clone(),
            });
            let port = reactor
                .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
                    server.take().unwrap()
                })
                .unwrap();
            let mut client = Some(Side {
                lost: clog.clone(),
                act: c_act,
                total: total.clone(),
            });
            reactor.connect_tcp(
                port.local_addr(),
                move |_: &Address| client.take().unwrap(),
                None,
            );
            logs.push((s_act, c_act, slog, clog));
        }
    }
    // Once all have reported, wait a little for any stray second report.
    fn settle(r: Reactor, total: Rc<Cell<u32>>, expect: u32) {
        let r2 = r.clone();
        if total.get() >= expect {
            r.call_later(Duration::from_millis(50), move || r2.stop());
        } else {
            r.call_later(Duration::from_millis(5), move || settle(r2, total, expect));
        }
    }
    let (r, t) = (reactor.clone(), total.clone());
    reactor.call_soon(move || settle(r, t, expect));
    h.run(&reactor);
    dog.check(&format!("{}: connection_lost", h.name()));
    for (s, c, slog, clog) in &logs {
        assert_eq!(
            slog.borrow().len(),
            1,
            "server act {s} / client act {c}: {:?}",
            slog.borrow()
        );
        assert_eq!(
            clog.borrow().len(),
            1,
            "server act {s} / client act {c}: {:?}",
            clog.borrow()
        );
    }
    assert_eq!(total.get(), expect);
}

/// A panic in one connection's callback closes that connection only; the
/// others and the reactor carry on.
pub fn panic_in_a_callback_is_isolated(h: &dyn Harness) {
    struct Touchy;
    impl Protocol for Touchy {
        fn data_received(&mut self, t: &Transport, d: &[u8]) {
            if d.starts_with(b"panic") {
                panic!("deliberate panic in data_received");
            }
            t.write(d);
        }
    }
    super::quiet_deliberate_panics();
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Touchy)
        .unwrap();
    let addr = port.local_addr();
    reactor.call_soon(|| panic!("deliberate panic in a queued call"));
    let handle = reactor.handle();
    // Real clients on a thread: one triggers the panic, ten echo.
    std::thread::spawn(move || {
        let mut bad = TcpStream::connect(addr).unwrap();
        bad.write_all(b"panic").unwrap();
        let mut buf = [0u8; 16];
        let closed = matches!(bad.read(&mut buf), Ok(0) | Err(_));
        let mut ok = 0;
        for i in 0..10 {
            let mut c = TcpStream::connect(addr).unwrap();
            let msg = format!("hello {i}");
            c.write_all(msg.as_bytes()).unwrap();
            let mut got = vec![0u8; msg.len()];
            c.read_exact(&mut got).unwrap();
            ok += (got == msg.as_bytes()) as u32;
        }
        let h2 = handle.clone();
        handle
            .call_from_thread(move || {
                assert!(closed, "the panicking connection was closed");
                assert_eq!(ok, 10, "the other connections were served");
                h2.stop();
            })
            .unwrap();
    });
    h.run(&reactor);
    dog.check(&format!("{}: panic isolation", h.name()));
    assert!(reactor.is_stopped());
}

/// A reactor timer set from the host's own callback, outside any reactor
/// dispatch (a GTK button handler), fires on time: no earlier than asked,
/// and well before a generous bound.
pub fn timer_from_a_host_callback_fires_on_time(h: &dyn Harness) {
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let lateness = Rc::new(Cell::new(None));
    let r = reactor.clone();
    let l = lateness.clone();
    h.host_interval(
        Duration::from_millis(20),
        Box::new(move || {
            let asked = Instant::now();
            let r2 = r.clone();
            let l2 = l.clone();
            r.call_later(Duration::from_millis(50), move || {
                l2.set(Some(asked.elapsed()));
                r2.stop();
            });
            false // once
        }),
    );
    h.run(&reactor);
    dog.check(&format!("{}: timer from host callback", h.name()));
    let at = lateness.get().expect("the timer fired");
    assert!(at >= Duration::from_millis(50), "fired early: {at:?}");
    assert!(at < Duration::from_millis(1000), "fired late: {at:?}");
}

/// 1,000 `defer_to_thread` jobs (every tenth panics) and a worker's
/// `blocking_call_from_thread`: every result arrives once, on the reactor
/// thread, woken through the host.
pub fn thread_pool_results_arrive(h: &dyn Harness) {
    super::quiet_deliberate_panics();
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let me = std::thread::current().id();
    let seen = Rc::new(RefCell::new(vec![0u8; 1000]));
    let done = Rc::new(Cell::new(0));
    for i in 0..1000usize {
        let (s, d, r) = (seen.clone(), done.clone(), reactor.clone());
        let _tail = reactor
            .defer_to_thread(move || {
                if i % 10 == 0 {
                    panic!("deliberate panic in job {i}");
                }
                i
            })
            .add_both(move |res| {
                assert_eq!(std::thread::current().id(), me);
                assert_eq!(res.is_err(), i % 10 == 0);
                s.borrow_mut()[i] += 1;
                d.set(d.get() + 1);
                if d.get() == 1000 {
                    let handle = r.handle();
                    // A worker asks the reactor for a value, then stops it.
                    let _t = r
                        .defer_to_thread(move || {
                            handle.blocking_call_from_thread(|r| r.now()).is_ok()
                        })
                        .add_callback(move |ok| {
                            assert!(ok);
                            r.stop();
                        });
                }
                Ok::<(), crate::Failure>(())
            });
    }
    h.run(&reactor);
    dog.check(&format!("{}: thread pool", h.name()));
    assert!(
        seen.borrow().iter().all(|&n| n == 1),
        "each result exactly once"
    );
}

/// braid's futures awaited on the host's own executor, where it has one:
/// an async TCP echo, a sleep, a thread-pool result; then the task stops
/// the reactor while it awaits a Deferred that only a timer would have
/// fired, and gets a clear error ([`FailureKind::Abandoned`]) rather than
/// hanging. Hosts without an executor pass at once.
///
/// [`FailureKind::Abandoned`]: crate::FailureKind::Abandoned
pub fn braid_futures_run_on_the_hosts_executor(h: &dyn Harness) {
    use futures_io::{AsyncRead, AsyncWrite};
    use std::pin::Pin;

    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let listener = crate::aio::TcpListener::bind(&reactor, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr();
    // The echo runs on the reactor's own executor, the client on the host's.
    reactor.spawn_local(async move {
        let mut s = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        let mut at = 0;
        while at < 4 {
            at += std::future::poll_fn(|cx| Pin::new(&mut s).poll_read(cx, &mut buf[at..]))
                .await
                .unwrap();
        }
        s.writer().write(&buf);
    });
    let r = reactor.clone();
    let outcome: Rc<RefCell<Vec<String>>> = Rc::default();
    let o = outcome.clone();
    let task = async move {
        let mut c = crate::aio::Stream::connect(&r, addr).await.unwrap();
        std::future::poll_fn(|cx| Pin::new(&mut c).poll_write(cx, b"ping"))
            .await
            .unwrap();
        let mut buf = [0u8; 4];
        let mut at = 0;
        while at < 4 {
            at += std::future::poll_fn(|cx| Pin::new(&mut c).poll_read(cx, &mut buf[at..]))
                .await
                .unwrap();
        }
        o.borrow_mut()
            .push(String::from_utf8_lossy(&buf).into_owned());
        r.sleep(Duration::from_millis(5)).await;
        let v = r.defer_to_thread(|| 6 * 7).await.unwrap();
        o.borrow_mut().push(v.to_string());
        let never = r.defer_later(Duration::from_secs(3600), || ());
        r.stop();
        let e = never.await.unwrap_err();
        o.borrow_mut().push(format!("{:?}", e.kind()));
    };
    if !h.host_spawn(Box::pin(task)) {
        return;
    }
    h.run(&reactor);
    dog.check(&format!(
        "{}: braid futures on the host's executor",
        h.name()
    ));
    assert_eq!(
        *outcome.borrow(),
        ["ping", "42", "Abandoned"],
        "{}: the host's task ran to its end",
        h.name()
    );
}

/// Async code on the reactor: tasks, `sleep`, a `Deferred` awaited, and an
/// async TCP echo (client and server tasks in the same reactor).
pub fn async_tasks_and_streams_run(h: &dyn Harness) {
    use futures_io::{AsyncRead, AsyncWrite};
    use std::pin::Pin;

    async fn read_exact(s: &mut crate::aio::TcpStream, buf: &mut [u8]) {
        let mut at = 0;
        while at < buf.len() {
            let n = std::future::poll_fn(|cx| Pin::new(&mut *s).poll_read(cx, &mut buf[at..]))
                .await
                .unwrap();
            assert!(n > 0, "early EOF");
            at += n;
        }
    }
    async fn write_all(s: &mut crate::aio::TcpStream, buf: &[u8]) {
        let mut at = 0;
        while at < buf.len() {
            at += std::future::poll_fn(|cx| Pin::new(&mut *s).poll_write(cx, &buf[at..]))
                .await
                .unwrap();
        }
    }

    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let listener = crate::aio::TcpListener::bind(&reactor, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr();
    let server = reactor.spawn_local(async move {
        let mut s = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 100_000];
        read_exact(&mut s, &mut buf).await;
        write_all(&mut s, &buf).await;
        buf.len()
    });
    let r = reactor.clone();
    let out = Rc::new(Cell::new(false));
    let o = out.clone();
    reactor.spawn_local(async move {
        let started = Instant::now();
        r.sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() >= Duration::from_millis(20));
        let d: crate::Deferred<u32> = crate::Deferred::new();
        let resolver = d.resolver();
        r.call_later(Duration::from_millis(5), move || resolver.callback(7));
        assert_eq!(d.await.unwrap(), 7);
        let mut c = crate::aio::Stream::connect_timeout(&r, addr, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        write_all(&mut c, &data).await;
        let mut back = vec![0u8; data.len()];
        read_exact(&mut c, &mut back).await;
        assert!(back == data);
        assert_eq!(server.await.unwrap(), 100_000);
        o.set(true);
        r.stop();
    });
    h.run(&reactor);
    dog.check(&format!("{}: async", h.name()));
    assert!(out.get(), "the async client finished");
}

/// A child process's output streamed through the host: three lines from
/// `/bin/sh`, its exit code, and the end of its pipes, with the exit seen
/// through the reactor (a pidfd), not a thread. (Unix only: braid's
/// processes are.)
#[cfg(unix)]
pub fn child_process_output_arrives(h: &dyn Harness) {
    use crate::process::{Process, ProcessProtocol};
    use std::process::{Command, ExitStatus};

    struct Lines {
        out: Rc<RefCell<Vec<u8>>>,
        status: Rc<Cell<Option<i32>>>,
        reactor: Reactor,
    }
    impl ProcessProtocol for Lines {
        fn out_received(&mut self, _: &Process, data: &[u8]) {
            self.out.borrow_mut().extend_from_slice(data);
        }
        fn process_ended(&mut self, _: &Process, status: ExitStatus) {
            self.status.set(Some(status.code().unwrap_or(-1)));
            self.reactor.stop();
        }
    }
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let out = Rc::new(RefCell::new(Vec::new()));
    let status = Rc::new(Cell::new(None));
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "for i in one two three; do echo $i; sleep 0.01; done; exit 4",
    ]);
    reactor
        .spawn_process(
            &mut cmd,
            Lines {
                out: out.clone(),
                status: status.clone(),
                reactor: reactor.clone(),
            },
        )
        .unwrap();
    h.run(&reactor);
    dog.check(&format!("{}: child process", h.name()));
    assert_eq!(&*out.borrow(), b"one\ntwo\nthree\n", "{}", h.name());
    assert_eq!(status.get(), Some(4), "{}", h.name());
}

/// Generates one `#[test]` per conformance check for a harness
/// expression (evaluated afresh in each test).
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        #[test]
        fn conformance_echo_round_trips() {
            $crate::testing::conformance::echo_round_trips(&$harness);
        }
        #[test]
        fn conformance_thousand_timers_with_cancel_and_reset() {
            $crate::testing::conformance::thousand_timers_with_cancel_and_reset(&$harness);
        }
        #[test]
        fn conformance_call_from_thread_races() {
            $crate::testing::conformance::call_from_thread_races(&$harness);
        }
        #[test]
        fn conformance_stop_ends_the_run() {
            $crate::testing::conformance::stop_ends_the_run(&$harness);
        }
        #[test]
        fn conformance_braid_futures_run_on_the_hosts_executor() {
            $crate::testing::conformance::braid_futures_run_on_the_hosts_executor(&$harness);
        }
        #[test]
        fn conformance_stop_flushes_what_was_written() {
            $crate::testing::conformance::stop_flushes_what_was_written(&$harness);
        }
        #[test]
        fn conformance_connection_lost_exactly_once() {
            $crate::testing::conformance::connection_lost_exactly_once(&$harness);
        }
        #[test]
        fn conformance_panic_in_a_callback_is_isolated() {
            $crate::testing::conformance::panic_in_a_callback_is_isolated(&$harness);
        }
        #[test]
        fn conformance_timer_from_a_host_callback_fires_on_time() {
            $crate::testing::conformance::timer_from_a_host_callback_fires_on_time(&$harness);
        }
        #[test]
        fn conformance_thread_pool_results_arrive() {
            $crate::testing::conformance::thread_pool_results_arrive(&$harness);
        }
        #[test]
        fn conformance_async_tasks_and_streams_run() {
            $crate::testing::conformance::async_tasks_and_streams_run(&$harness);
        }
        #[test]
        #[cfg(unix)]
        fn conformance_child_process_output_arrives() {
            $crate::testing::conformance::child_process_output_arrives(&$harness);
        }
    };
}

/// A check of the suite, by name.
pub type Check = (&'static str, fn(&dyn Harness));

/// Every check [`conformance_tests!`](crate::conformance_tests) runs, by
/// name, for hosts whose loop must live on the main thread, one per
/// process (winit, Qt, Cocoa): their test binary has its own `main`
/// (`harness = false`) and runs these in turn against one loop.
pub fn checks() -> Vec<Check> {
    vec![
        ("echo_round_trips", echo_round_trips),
        (
            "thousand_timers_with_cancel_and_reset",
            thousand_timers_with_cancel_and_reset,
        ),
        ("call_from_thread_races", call_from_thread_races),
        ("stop_ends_the_run", stop_ends_the_run),
        (
            "braid_futures_run_on_the_hosts_executor",
            braid_futures_run_on_the_hosts_executor,
        ),
        (
            "stop_flushes_what_was_written",
            stop_flushes_what_was_written,
        ),
        ("connection_lost_exactly_once", connection_lost_exactly_once),
        (
            "panic_in_a_callback_is_isolated",
            panic_in_a_callback_is_isolated,
        ),
        (
            "timer_from_a_host_callback_fires_on_time",
            timer_from_a_host_callback_fires_on_time,
        ),
        ("thread_pool_results_arrive", thread_pool_results_arrive),
        ("async_tasks_and_streams_run", async_tasks_and_streams_run),
        #[cfg(unix)]
        ("child_process_output_arrives", child_process_output_arrives),
    ]
}

/// A check of a host's own, by name, for [`run_checks`].
pub type NamedCheck<'a, H> = (&'a str, Box<dyn Fn(&H) + 'a>);

/// Runs `checks` against `harness` in turn, as a `harness = false` test
/// binary's `main` does: prints `test NAME::CHECK ... ok` or `FAILED` for
/// each (a failing check's panic is caught, so the rest still run), then
/// `NAME conformance: P passed, F failed` (scripts/test.sh adds these to
/// its totals). Command-line arguments that do not start with `-` filter
/// the checks by substring, as libtest's do. Returns how many failed.
pub fn run_checks<H>(name: &str, harness: &H, checks: &[NamedCheck<'_, H>]) -> usize {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (check, f) in checks {
        if !filter.is_empty() && !filter.iter().any(|x| check.contains(x.as_str())) {
            continue;
        }
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| f(harness))) {
            Ok(()) => {
                passed += 1;
                println!("test {name}::{check} ... ok ({:?})", started.elapsed());
            }
            Err(_) => {
                failed += 1;
                println!("test {name}::{check} ... FAILED");
            }
        }
    }
    println!("{name} conformance: {passed} passed, {failed} failed");
    failed
}

/// Every check, in sequence, for hosts that allow one loop per process
/// (winit): returns the responsiveness and idle figures.
pub fn run_all(h: &dyn Harness, idle_window: Duration) -> (Responsiveness, u64) {
    for (_, check) in checks() {
        check(h);
    }
    let r = gui_stays_responsive_under_a_flood(h);
    let idle = idle_costs_no_wakeups(h, idle_window);
    (r, idle)
}
