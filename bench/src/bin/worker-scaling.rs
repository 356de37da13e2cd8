//! A reactor per core against one reactor: braid's HTTP hello-world
//! server with 1 and with 2 workers (`braid::workers`, the port shared by
//! `SO_REUSEPORT`), side by side in one run, rounds interleaved. Reports
//! requests per second and the server's CPU per request (its process's
//! user + system time over the requests it answered) on keep-alive
//! connections, and how 1,000 short-lived connections (one request each,
//! `Connection: close`) spread over the workers.
//!
//! ```text
//! worker-scaling [--rounds 3] [--secs 3] [--conns 8] [--short 1000]
//! worker-scaling serve --workers N      (the server, started by the above)
//! ```
//!
//! The load generator is this process's threads (blocking clients, one
//! per connection), unpinned: on a machine with two cores it shares them
//! with the server, so the comparison that holds there is CPU per
//! request, not throughput.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::workers::{SharedPort, Workers};
use braid::{Address, Factory};
use braid_bench::{arg, cpu_seconds};
use braid_web::{FnResource, Response, Site, SiteConfig};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
const CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

/// The server: N workers on one reuse-port address; prints `listening
/// PORT`, then at the end of stdin `conns C0 C1 ...` (connections each
/// worker accepted) and exits.
fn serve(workers: usize) {
    braid_bench::raise_fd_limit();
    let port = SharedPort::reuse_port("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = port.local_addr().unwrap();
    let counts: Arc<Vec<AtomicUsize>> =
        Arc::new((0..workers).map(|_| AtomicUsize::new(0)).collect());
    let c = counts.clone();
    let running = Workers::start(workers, move |reactor, i| {
        let config = SiteConfig {
            access_log: false,
            ..SiteConfig::default()
        };
        let site = Site::with_config(
            FnResource::leaf(|_| Response::text("Hello, world!\n")),
            config,
        );
        port.listen(
            reactor,
            Counting {
                inner: site,
                counts: c.clone(),
                worker: i,
            },
        )?;
        Ok(())
    })
    .unwrap();
    println!("listening {}", addr.port());
    let _ = std::io::stdout().flush();
    let mut rest = String::new();
    let _ = std::io::stdin().read_to_string(&mut rest);
    let line: Vec<String> = counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed).to_string())
        .collect();
    println!("conns {}", line.join(" "));
    let _ = std::io::stdout().flush();
    running.stop();
    let _ = running.join();
}

/// A factory that counts the connections its worker accepts.
struct Counting<F> {
    inner: F,
    counts: Arc<Vec<AtomicUsize>>,
    worker: usize,
}

impl<F: Factory> Factory for Counting<F> {
    fn build_protocol(&mut self, addr: &Address) -> Option<Box<dyn braid::Protocol>> {
        self.counts[self.worker].fetch_add(1, Ordering::Relaxed);
        self.inner.build_protocol(addr)
    }
}

/// Reads one response (headers and a Content-Length body) off `r`.
fn read_response(r: &mut BufReader<TcpStream>) -> bool {
    let mut len = 0usize;
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            return false;
        }
        if l == "\r\n" {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).is_ok()
}

struct Round {
    rps: f64,
    cpu_us: f64,
    short_spread: Vec<usize>,
}

fn round(workers: usize, secs: u64, conns: usize, short: usize) -> Round {
    let mut server = Command::new(std::env::current_exe().unwrap())
        .args(["serve", "--workers", &workers.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let port: u16 = first.trim().rsplit(' ').next().unwrap().parse().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let pid = server.id();

    // Short-lived connections first (the spread is counted from these).
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                while next.fetch_add(1, Ordering::Relaxed) < short {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(CLOSE).unwrap();
                    let mut all = Vec::new();
                    let _ = s.read_to_end(&mut all);
                    assert!(all.starts_with(b"HTTP/1.1 200"), "a short request failed");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Keep-alive: `conns` connections, one request at a time each.
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_seconds(pid);
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    w.write_all(REQUEST).unwrap();
                    assert!(read_response(&mut r), "a keep-alive request failed");
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let requests: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;

    drop(server.stdin.take());
    let mut last = String::new();
    out.read_line(&mut last).unwrap();
    let _ = server.wait();
    let counts: Vec<usize> = last
        .split_whitespace()
        .skip(1)
        .map(|c| c.parse().unwrap())
        .collect();
    // Counted: the short connections and the `conns` keep-alive ones.
    Round {
        rps: requests as f64 / elapsed,
        cpu_us: cpu * 1e6 / requests as f64,
        short_spread: counts,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        return serve(arg(&args, "--workers", 1));
    }
    let rounds: usize = arg(&args, "--rounds", 3);
    let secs: u64 = arg(&args, "--secs", 3);
    let conns: usize = arg(&args, "--conns", 8);
    let short: usize = arg(&args, "--short", 1000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "braid HTTP hello-world, 1 worker vs 2 (SO_REUSEPORT), {rounds} rounds interleaved; \
         {conns} keep-alive connections for {secs} s; {short} short-lived connections first; \
         load generator: this process's threads, unpinned, on the same {cores} cores\n"
    );
    println!("| workers | round | requests/s | server CPU per request (us) | connections per worker (short + keep-alive) |");
    println!("|---|---|---|---|---|");
    let mut sums = [(0.0, 0.0); 2];
    let mut worst_spread: f64 = 0.0;
    for r in 1..=rounds {
        for (k, workers) in [1usize, 2].into_iter().enumerate() {
            let got = round(workers, secs, conns, short);
            println!(
                "| {workers} | {r} | {:.0} | {:.1} | {:?} |",
                got.rps, got.cpu_us, got.short_spread
            );
            sums[k].0 += got.rps;
            sums[k].1 += got.cpu_us;
            if workers == 2 {
                let max = *got.short_spread.iter().max().unwrap_or(&0) as f64;
                let min = *got.short_spread.iter().min().unwrap_or(&0) as f64;
                worst_spread = worst_spread.max(max / min.max(1.0));
            }
        }
    }
    let n = rounds as f64;
    println!(
        "\nmean: 1 worker {:.0} req/s, {:.1} us CPU/request; 2 workers {:.0} req/s, {:.1} us CPU/request",
        sums[0].0 / n,
        sums[0].1 / n,
        sums[1].0 / n,
        sums[1].1 / n
    );
    println!(
        "ratio (2 workers / 1): requests/s {:.2}x, CPU per request {:.2}x (target <= 1.10x); \
         busiest/least busy worker over the connections: {:.2}x at worst (target <= 1.50x)",
        sums[1].0 / sums[0].0,
        sums[1].1 / sums[0].1,
        worst_spread
    );
}
