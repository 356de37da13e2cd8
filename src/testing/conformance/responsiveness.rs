//! The checks that measure what a GUI feels: a host timer keeps its beat
//! while a connection floods, and an idle loop does not wake.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::{Address, Protocol, Reactor, Transport};

use super::*;

/// Figures from [`gui_stays_responsive_under_a_flood`].
#[derive(Debug, Clone, Copy)]
pub struct Responsiveness {
    /// Bytes the flood delivered.
    pub bytes: usize,
    /// Host-timer ticks during the flood.
    pub ticks: usize,
    /// Median lateness of a tick.
    pub median_late: Duration,
    /// Worst lateness of a tick.
    pub max_late: Duration,
}

/// While a peer floods a connection as fast as loopback allows for one
/// second, a 16 ms host timer keeps firing with small lateness, and every
/// byte of the flood arrives.
pub fn gui_stays_responsive_under_a_flood(h: &dyn Harness) -> Responsiveness {
    const FLOOD_FOR: Duration = Duration::from_secs(1);
    struct Sink {
        got: Rc<Cell<usize>>,
        eof: Rc<Cell<bool>>,
        sent: Rc<Cell<Option<usize>>>,
    }
    fn check_done(t: &Transport, got: usize, eof: bool, sent: Option<usize>) {
        if eof && sent == Some(got) {
            if let Some(r) = t.reactor() {
                r.stop();
            }
        }
    }
    impl Protocol for Sink {
        fn data_received(&mut self, _: &Transport, d: &[u8]) {
            self.got.set(self.got.get() + d.len());
        }
        fn read_eof(&mut self, t: &Transport) {
            self.eof.set(true);
            check_done(t, self.got.get(), true, self.sent.get());
        }
    }
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let got = Rc::new(Cell::new(0));
    let eof = Rc::new(Cell::new(false));
    let sent = Rc::new(Cell::new(None));
    let transport = Rc::new(RefCell::new(None::<Transport>));
    let (g, e, s, tr) = (got.clone(), eof.clone(), sent.clone(), transport.clone());
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            struct Keep(Sink, Rc<RefCell<Option<Transport>>>);
            impl Protocol for Keep {
                fn connection_made(&mut self, t: &Transport) {
                    *self.1.borrow_mut() = Some(t.clone());
                }
                fn data_received(&mut self, t: &Transport, d: &[u8]) {
                    self.0.data_received(t, d)
                }
                fn read_eof(&mut self, t: &Transport) {
                    self.0.read_eof(t)
                }
            }
            Keep(
                Sink {
                    got: g.clone(),
                    eof: e.clone(),
                    sent: s.clone(),
                },
                tr.clone(),
            )
        })
        .unwrap();
    let addr = port.local_addr();
    let handle = reactor.handle();
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let chunk = vec![0x5au8; 256 * 1024];
        let start = Instant::now();
        let mut total = 0usize;
        while start.elapsed() < FLOOD_FOR {
            if s.write_all(&chunk).is_err() {
                return;
            }
            total += chunk.len();
        }
        let _ = s.shutdown(std::net::Shutdown::Write);
        // Tell the reactor how much was sent (the Send closure carries a
        // number; the check runs on the reactor thread).
        let _ = handle.call_from_thread(move || {
            SENT.with(|c| c.set(Some(total)));
        });
    });
    thread_local! {
        static SENT: Cell<Option<usize>> = const { Cell::new(None) };
    }
    SENT.with(|c| c.set(None));
    let lates = Rc::new(RefCell::new(Vec::new()));
    let l = lates.clone();
    let tick = Duration::from_millis(16);
    let mut due = Instant::now() + tick;
    let (g, e, s, tr) = (got.clone(), eof.clone(), sent.clone(), transport.clone());
    h.host_interval(
        tick,
        Box::new(move || {
            let now = Instant::now();
            l.borrow_mut().push(now.saturating_duration_since(due));
            due = now + tick;
            // The sender's total arrives by call_from_thread; the tick
            // passes it to the sink, which may then be complete.
            if s.get().is_none() {
                s.set(SENT.with(|c| c.get()));
            }
            if let Some(t) = tr.borrow().as_ref() {
                check_done(t, g.get(), e.get(), s.get());
            }
            !(e.get() && s.get() == Some(g.get()))
        }),
    );
    h.run(&reactor);
    dog.check(&format!("{}: responsiveness", h.name()));
    assert_eq!(
        Some(got.get()),
        sent.get(),
        "every byte of the flood arrived"
    );
    let mut lates = lates.borrow().clone();
    assert!(
        lates.len() >= 30,
        "the host timer kept ticking during the flood ({} ticks)",
        lates.len()
    );
    lates.sort();
    let r = Responsiveness {
        bytes: got.get(),
        ticks: lates.len(),
        median_late: lates[lates.len() / 2],
        max_late: lates[lates.len() - 1],
    };
    eprintln!("{}: {r:?}", h.name());
    // Generous bounds (shared, noisy machines): the point is that the
    // GUI timer is not starved by the flood, which would show as seconds.
    assert!(
        r.median_late < Duration::from_millis(16),
        "{}: {r:?}",
        h.name()
    );
    assert!(
        r.max_late < Duration::from_millis(500),
        "{}: {r:?}",
        h.name()
    );
    r
}

/// Context switches of the calling thread so far (voluntary, involuntary).
pub fn thread_context_switches() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    )
}

/// With 50 idle connections open and no timer due, the loop's thread
/// sleeps: over `window` it wakes only for the stop at the end. Returns the
/// voluntary context switches counted over the window.
pub fn idle_costs_no_wakeups(h: &dyn Harness, window: Duration) -> u64 {
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Echo)
        .unwrap();
    let up = Rc::new(Cell::new(0));
    for _ in 0..50 {
        struct Idle(Rc<Cell<u32>>);
        impl Protocol for Idle {
            fn connection_made(&mut self, _: &Transport) {
                self.0.set(self.0.get() + 1);
            }
            fn data_received(&mut self, _: &Transport, _: &[u8]) {}
        }
        let u = up.clone();
        reactor.connect_tcp(port.local_addr(), move |_: &Address| Idle(u.clone()), None);
    }
    // A far-away timer must not cause wakeups either.
    reactor.call_later(Duration::from_secs(3600), || {});
    let start = Rc::new(Cell::new((0, 0)));
    let end = Rc::new(Cell::new((0, 0)));
    let (s, u, r) = (start.clone(), up.clone(), reactor.clone());
    let handle = reactor.handle();
    // Once all are connected, note the counters and let a helper thread
    // stop the reactor after the window.
    fn wait_up(
        r: Reactor,
        u: Rc<Cell<u32>>,
        s: Rc<Cell<(u64, u64)>>,
        handle: crate::ReactorHandle,
        window: Duration,
    ) {
        if u.get() < 50 {
            let r2 = r.clone();
            r.call_later(Duration::from_millis(5), move || {
                wait_up(r2, u, s, handle, window)
            });
            return;
        }
        s.set(thread_context_switches());
        std::thread::spawn(move || {
            std::thread::sleep(window);
            handle.stop();
        });
    }
    reactor.call_soon(move || wait_up(r, u, s, handle, window));
    let e = end.clone();
    reactor.add_shutdown_trigger(crate::ShutdownPhase::Before, move || {
        e.set(thread_context_switches())
    });
    h.run(&reactor);
    dog.check(&format!("{}: idle", h.name()));
    let (v0, n0) = start.get();
    let (v1, n1) = end.get();
    let voluntary = v1 - v0;
    eprintln!("{}: over {window:?} idle with 50 connections: {voluntary} voluntary, {} involuntary context switches", h.name(), n1 - n0);
    // The stop itself wakes the loop once; allow one more for the host.
    assert!(
        voluntary <= 2,
        "{}: {voluntary} wakeups while idle",
        h.name()
    );
    voluntary
}
