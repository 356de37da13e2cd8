//! Round-trip latency of a 64-byte echo under each host loop, as ratios to
//! the standalone loop, measured side by side in one run.
//!
//! ```text
//! cargo run --release -p braid-bench --bin host-latency [-- --rounds 5 --trips 20000]
//! ```
//!
//! Client and server share one reactor (as in the prototype that measured the host contract), so a
//! round trip is: client write -> dispatch -> server echo -> dispatch ->
//! client read, through the host's wakeups. Each host runs in its own child
//! process (winit allows one event loop per process); hosts are interleaved
//! over several rounds and each figure is the median of the rounds' medians,
//! with the spread (min..max of the round medians).
//!
//! Hosts: standalone `Reactor::run`, glib `MainLoop`, glib with a GTK4
//! window open, calloop, and winit (X11) with a window. The GUI hosts need
//! a display; without one they are skipped and said to be.

use std::cell::{Cell, RefCell};
use std::process::Command;
use std::rc::Rc;
use std::time::Instant;

use braid::{Address, Protocol, Reactor, Transport};

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
    if let Some(i) = args.iter().position(|a| a == "--child") {
        match child(&args[i + 1], trips) {
            Some(ns) => println!("{ns}"),
            None => std::process::exit(3),
        }
        return;
    }
    let rounds: u32 = braid_bench::arg(&args, "--rounds", 5);
    let display = std::env::var_os("DISPLAY").is_some();
    let hosts: Vec<&str> = HOSTS
        .iter()
        .copied()
        .filter(|h| display || !braid_bench::needs_display(h))
        .collect();
    if !display {
        eprintln!("no DISPLAY: skipping glib+gtk and winit");
    }
    let me = std::env::current_exe().unwrap();
    let medians: Vec<RefCell<Vec<u32>>> = hosts.iter().map(|_| RefCell::default()).collect();
    let started = Cell::new(Instant::now());
    for round in 0..rounds {
        for (i, host) in hosts.iter().enumerate() {
            let out = Command::new(&me)
                .args(["--child", host, "--trips", &trips.to_string()])
                .output()
                .unwrap();
            let ns: u32 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|_| {
                    panic!("{host} failed: {}", String::from_utf8_lossy(&out.stderr))
                });
            medians[i].borrow_mut().push(ns);
        }
        eprintln!(
            "round {}/{rounds} done ({:?})",
            round + 1,
            started.get().elapsed()
        );
    }
    let summary: Vec<(u32, u32, u32)> = medians
        .iter()
        .map(|m| {
            let mut v = m.borrow().clone();
            v.sort_unstable();
            (v[v.len() / 2], v[0], v[v.len() - 1])
        })
        .collect();
    let base = summary[0].0 as f64;
    println!("64-byte echo round trip, client and server in one reactor; {rounds} rounds x {trips} trips, median of round medians");
    println!();
    println!("| host | median RTT | spread (round medians) | ratio to standalone |");
    println!("|---|---|---|---|");
    for (host, (med, lo, hi)) in hosts.iter().zip(&summary) {
        println!(
            "| {host} | {:.1} us | {:.1}..{:.1} us | {:.2}x |",
            *med as f64 / 1000.0,
            *lo as f64 / 1000.0,
            *hi as f64 / 1000.0,
            *med as f64 / base
        );
    }
}
