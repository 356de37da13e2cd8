//! Context switches of the whole process while a hosted reactor sits idle
//! with open connections and a far-away timer: the figure should be zero
//! (no timer ticks, no polling).
//!
//! ```text
//! cargo run --release -p braid-bench --bin idle-wakeups [-- --seconds 5 --connections 200]
//! ```
//!
//! Each host runs in its own child process. The count covers every thread
//! of the process (GTK's and winit's own included), from the moment all
//! connections are up until the idle window ends; the one wakeup that ends
//! the window (a thread stopping the reactor) is counted too.

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use braid::{Address, Protocol, Reactor, Transport};

struct Quiet(Rc<Cell<u32>>);
impl Protocol for Quiet {
    fn connection_made(&mut self, _: &Transport) {
        self.0.set(self.0.get() + 1);
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

/// Voluntary and involuntary context switches summed over all threads.
fn process_switches() -> (u64, u64) {
    let mut total = (0, 0);
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                total.0 += v.trim().parse::<u64>().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("nonvoluntary_ctxt_switches:") {
                total.1 += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

fn child(host: &str, seconds: u64, connections: u32) -> Option<(u64, u64, usize)> {
    let reactor = Reactor::new().unwrap();
    let up = Rc::new(Cell::new(0));
    let u = up.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            Quiet(u.clone())
        })
        .unwrap();
    for _ in 0..connections {
        let u = up.clone();
        reactor.connect_tcp(port.local_addr(), move |_: &Address| Quiet(u.clone()), None);
    }
    reactor.call_later(Duration::from_secs(3600), || {});
    let start = Rc::new(Cell::new((0, 0)));
    let end = Rc::new(Cell::new((0, 0)));
    let threads = Rc::new(Cell::new(0));
    fn wait_up(r: Reactor, up: Rc<Cell<u32>>, n: u32, start: Rc<Cell<(u64, u64)>>, secs: u64) {
        if up.get() < n {
            let r2 = r.clone();
            r.call_later(Duration::from_millis(10), move || {
                wait_up(r2, up, n, start, secs)
            });
            return;
        }
        // Let the GUI settle (first frames, window mapping) before counting.
        let r2 = r.clone();
        r.call_later(Duration::from_millis(500), move || {
            start.set(process_switches());
            let h = r2.handle();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(secs));
                h.stop();
            });
        });
    }
    let (r, u, s) = (reactor.clone(), up.clone(), start.clone());
    reactor.call_soon(move || wait_up(r, u, connections * 2, s, seconds));
    let (e, t) = (end.clone(), threads.clone());
    reactor.add_shutdown_trigger(braid::ShutdownPhase::Before, move || {
        // The helper thread that stopped us has exited or is exiting; count
        // the switches first, then the threads that remain.
        e.set(process_switches());
        t.set(
            std::fs::read_dir("/proc/self/task")
                .map(|d| d.count())
                .unwrap_or(0),
        );
    });
    braid_bench::run_under(host, &reactor)?;
    let (s, e) = (start.get(), end.get());
    Some((e.0 - s.0, e.1 - s.1, threads.get()))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = braid_bench::arg(&args, "--seconds", 5);
    let connections: u32 = braid_bench::arg(&args, "--connections", 200);
    if let Some(i) = args.iter().position(|a| a == "--child") {
        match child(&args[i + 1], seconds, connections) {
            Some((v, n, t)) => println!("{v} {n} {t}"),
            None => std::process::exit(3),
        }
        return;
    }
    let me = std::env::current_exe().unwrap();
    println!("Context switches over {seconds} s idle, {connections} open connections (both ends in-process), all threads counted");
    println!();
    println!("| host | voluntary | involuntary | threads in process |");
    println!("|---|---|---|---|");
    for host in braid_bench::HOSTS {
        if !braid_bench::available(host) {
            println!("| {host} | skipped: no display or compositor | | |");
            continue;
        }
        let out = Command::new(&me)
            .args([
                "--child",
                host,
                "--seconds",
                &seconds.to_string(),
                "--connections",
                &connections.to_string(),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = text.split_whitespace().collect();
        match f.as_slice() {
            [v, n, t] => println!("| {host} | {v} | {n} | {t} |"),
            _ => println!(
                "| {host} | failed: {} | | |",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        }
    }
}
