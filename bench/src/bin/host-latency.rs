//! Round-trip latency of a 64-byte echo under each host loop, as ratios to
//! the standalone loop, measured side by side in one run.
//!
//! ```text
//! cargo run --release -p braid-bench --bin host-latency [-- --rounds 7 --trips 20000 --cpu N]
//! ```
//!
//! Client and server share one reactor (as in the prototype that measured the host contract), so a
//! round trip is: client write -> dispatch -> server echo -> dispatch ->
//! client read, through the host's wakeups. Each host runs in its own child
//! process (winit allows one event loop per process); hosts are interleaved
//! over several rounds (standalone first and last in each, the others in a
//! rotating order, all pinned to one core), and each host's ratio is the
//! median over rounds of its round median against that round's standalone.
//!
//! Hosts: standalone `Reactor::run`, a hand-written `poll(2)` loop on the
//! reactor's fd (the floor for any host that nests that fd), glib `MainLoop`, glib with a GTK4
//! window open, calloop, winit (X11, and Wayland when `WAYLAND_DISPLAY`
//! names a compositor) with a window, and Qt (a `QApplication`). The GUI
//! hosts need a display; without one they are skipped and said to be.

use std::cell::{Cell, RefCell};
use std::process::Command;
use std::rc::Rc;
use std::time::Instant;

use braid::{Address, Protocol, Reactor, Transport};

use braid_bench::segments::{EndTurn, Turns};
use braid_bench::HOSTS;

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        t.write(d);
    }
}

/// Sends 64 bytes, waits for them to come back, records the time, repeats.
struct Pinger {
    warmup: u32,
    left: u32,
    sent: Instant,
    got: usize,
    samples: Rc<RefCell<Vec<u32>>>,
}

impl Protocol for Pinger {
    fn connection_made(&mut self, t: &Transport) {
        self.sent = Instant::now();
        t.write(&[7u8; 64]);
    }
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        self.got += d.len();
        if self.got < 64 {
            return;
        }
        self.got -= 64;
        let rtt = self.sent.elapsed();
        if self.warmup > 0 {
            self.warmup -= 1;
        } else {
            self.samples.borrow_mut().push(rtt.as_nanos() as u32);
            self.left -= 1;
        }
        if self.left == 0 {
            if let Some(r) = t.reactor() {
                r.stop();
            }
            return;
        }
        self.sent = Instant::now();
        t.write(&[7u8; 64]);
    }
}

/// Sets up the echo pair on `reactor`; returns where the samples go.
fn setup(reactor: &Reactor, trips: u32) -> Rc<RefCell<Vec<u32>>> {
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Echo)
        .unwrap();
    let samples = Rc::new(RefCell::new(Vec::with_capacity(trips as usize)));
    let s = samples.clone();
    let mut p = Some(Pinger {
        warmup: 1000,
        left: trips,
        sent: Instant::now(),
        got: 0,
        samples: s,
    });
    reactor.connect_tcp(
        port.local_addr(),
        move |_: &Address| p.take().unwrap(),
        None,
    );
    samples
}

/// The turns' shared state: the workload of `--paired`.
struct Turn {
    left: Cell<u32>,
    sent: Cell<Instant>,
    got: Cell<usize>,
    samples: RefCell<Vec<u32>>,
    parked: RefCell<Option<Transport>>,
    end: EndTurn,
}

impl Turn {
    fn end_turn(&self, t: &Transport) {
        *self.parked.borrow_mut() = Some(t.clone());
        if let Some(end) = self.end.borrow().as_ref() {
            end();
        }
    }
}

/// [`Pinger`] in turns: `left` round trips, then the turn ends and the
/// connection waits, parked, for the next.
struct TurnPinger(Rc<Turn>);

impl Protocol for TurnPinger {
    fn connection_made(&mut self, t: &Transport) {
        self.0.end_turn(t);
    }
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        let turn = &self.0;
        turn.got.set(turn.got.get() + d.len());
        if turn.got.get() < 64 {
            return;
        }
        turn.got.set(turn.got.get() - 64);
        let rtt = turn.sent.get().elapsed();
        turn.samples.borrow_mut().push(rtt.as_nanos() as u32);
        turn.left.set(turn.left.get() - 1);
        if turn.left.get() == 0 {
            turn.end_turn(t);
            return;
        }
        turn.sent.set(Instant::now());
        t.write(&[7u8; 64]);
    }
}

/// One process, one connection, `host` and standalone taking turns of
/// `trips` round trips: prints the median over turns of each host turn's
/// median against the mean of the standalone turns either side of it,
/// then the two hosts' medians in ns.
fn paired(host: &str, turns: u32, trips: u32) -> Option<(f64, u32, u32)> {
    let alone = Turns::new("standalone")?;
    let other = Turns::new(host)?;
    let reactor = Reactor::new().unwrap();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Echo)
        .unwrap();
    let turn = Rc::new(Turn {
        left: Cell::new(0),
        sent: Cell::new(Instant::now()),
        got: Cell::new(0),
        samples: RefCell::default(),
        parked: RefCell::default(),
        end: EndTurn::default(),
    });
    let mut p = Some(TurnPinger(turn.clone()));
    reactor.connect_tcp(
        port.local_addr(),
        move |_: &Address| p.take().unwrap(),
        None,
    );
    alone.run(&reactor, &turn.end); // until connected
    let run = |t: &Turns| -> u32 {
        turn.left.set(trips);
        turn.samples.borrow_mut().clear();
        let tr = turn.parked.borrow_mut().take().unwrap();
        turn.sent.set(Instant::now());
        tr.write(&[7u8; 64]);
        t.run(&reactor, &turn.end);
        let mut v = std::mem::take(&mut *turn.samples.borrow_mut());
        v.sort_unstable();
        v[v.len() / 2]
    };
    run(&alone); // warm-up
    run(&other);
    let mut a = vec![run(&alone)];
    let mut b = Vec::new();
    for _ in 0..turns {
        b.push(run(&other));
        a.push(run(&alone));
    }
    let mut ratios: Vec<f64> = (0..b.len())
        .map(|i| b[i] as f64 / ((a[i] as f64 + a[i + 1] as f64) / 2.0))
        .collect();
    ratios.sort_by(f64::total_cmp);
    a.sort_unstable();
    b.sort_unstable();
    Some((ratios[ratios.len() / 2], b[b.len() / 2], a[a.len() / 2]))
}

fn child(host: &str, trips: u32) -> Option<u32> {
    let reactor = Reactor::new().unwrap();
    let samples = setup(&reactor, trips);
    braid_bench::run_under(host, &reactor)?;
    let mut v = samples.borrow().clone();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let trips: u32 = braid_bench::arg(&args, "--trips", 20_000);
    if let Some(i) = args.iter().position(|a| a == "--paired") {
        let turns: u32 = braid_bench::arg(&args, "--turns", 25);
        match paired(&args[i + 1], turns, trips) {
            Some((ratio, host_ns, alone_ns)) => println!("{ratio} {host_ns} {alone_ns}"),
            None => std::process::exit(3),
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        match child(&args[i + 1], trips) {
            Some(ns) => println!("{ns}"),
            None => std::process::exit(3),
        }
        return;
    }
    let rounds: u32 = braid_bench::arg(&args, "--rounds", 5);
    let turn_trips: u32 = braid_bench::arg(&args, "--turn-trips", 1000);
    let turns: u32 = braid_bench::arg(&args, "--turns", 25);
    // Every child pinned to the same core (the last), one at a time.
    let cpu: usize = braid_bench::arg(&args, "--cpu", num_cpus().saturating_sub(1));
    let display = std::env::var_os("DISPLAY").is_some();
    let hosts: Vec<&str> = HOSTS
        .iter()
        .copied()
        .filter(|h| *h != "standalone" && braid_bench::available(h))
        .collect();
    if !display {
        eprintln!("no DISPLAY: skipping glib+gtk and winit");
    }
    let me = std::env::current_exe().unwrap();
    let run = |args: &[&str]| -> String {
        let mut cmd = Command::new(&me);
        cmd.args(args);
        let out = braid_bench::pinned(cmd, cpu).output().unwrap();
        if !out.status.success() {
            panic!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Per host: (ratio, host ns, standalone ns) of each round.
    let results: Vec<RefCell<Vec<(f64, u32, u32)>>> =
        hosts.iter().map(|_| RefCell::default()).collect();
    let started = Instant::now();
    for round in 0..rounds {
        for (i, host) in hosts.iter().enumerate() {
            let r = if host.starts_with("winit") {
                // winit's loop is left only when the reactor stops: a
                // process per run, standalone either side.
                let t = trips.to_string();
                let ns = |h: &str| -> u32 { run(&["--child", h, "--trips", &t]).parse().unwrap() };
                let a = ns("standalone");
                let w = ns(host);
                let b = ns("standalone");
                let base = (a + b) / 2;
                (w as f64 / base as f64, w, base)
            } else {
                let out = run(&[
                    "--paired",
                    host,
                    "--trips",
                    &turn_trips.to_string(),
                    "--turns",
                    &turns.to_string(),
                ]);
                let v: Vec<&str> = out.split_whitespace().collect();
                (
                    v[0].parse().unwrap(),
                    v[1].parse().unwrap(),
                    v[2].parse().unwrap(),
                )
            };
            results[i].borrow_mut().push(r);
        }
        eprintln!(
            "round {}/{rounds} done ({:?})",
            round + 1,
            started.elapsed()
        );
    }
    println!("64-byte echo round trip, client and server in one reactor, each child pinned to core {cpu}; {rounds} rounds. glib, GTK, calloop and poll: in one process, the host and standalone take turns of {turn_trips} round trips ({turns} host turns, each against the mean of the standalone turns either side), so the machine's drift lands on both sides; winit (whose loop ends only with the reactor): a process of {trips} trips between two standalone processes. Ratio: the median over rounds.");
    println!();
    println!("| host | median RTT | standalone beside it | ratio to standalone | ratio range over rounds |");
    println!("|---|---|---|---|---|");
    for (i, host) in hosts.iter().enumerate() {
        let v = results[i].borrow();
        let (r, rlo, rhi) = median_range_f(&v.iter().map(|x| x.0).collect::<Vec<_>>());
        let (h, ..) = median_range(&v.iter().map(|x| x.1).collect::<Vec<_>>());
        let (a, ..) = median_range(&v.iter().map(|x| x.2).collect::<Vec<_>>());
        println!(
            "| {host} | {:.1} us | {:.1} us | {r:.2}x | {rlo:.2}..{rhi:.2} |",
            h as f64 / 1000.0,
            a as f64 / 1000.0
        );
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn median_range(v: &[u32]) -> (u32, u32, u32) {
    let mut v = v.to_vec();
    v.sort_unstable();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn median_range_f(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}
