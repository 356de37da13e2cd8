//! Resident memory per idle connection: opens N loopback connections (both
//! ends in this process, so 2N braid connections) and reports the growth of
//! VmRSS per braid connection. Issue 9's target: at most 1 KiB.
//!
//! With `--http`, the listening side is a braid-web `Site` and the other
//! side plain sockets: N connections open and silent, then the same after
//! one request each, with VmRSS, live heap bytes and live allocations per
//! connection (a counting allocator), to find where an idle HTTP
//! connection's memory goes.
//!
//! ```text
//! cargo run --release -p braid-bench --bin idle-memory [-- --connections 10000] [--http]
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

/// The system allocator, counting live bytes and blocks.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// (VmRSS KiB, live heap bytes, live blocks) now.
fn sample() -> (u64, isize, isize) {
    (
        rss_kib(),
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_BLOCKS.load(Ordering::Relaxed),
    )
}

fn per_conn(label: &str, a: (u64, isize, isize), b: (u64, isize, isize), n: u32) {
    let n = f64::from(n);
    println!(
        "{label}: {:.0} bytes of VmRSS, {:.0} bytes of live heap in {:.1} allocations per connection",
        b.0.saturating_sub(a.0) as f64 * 1024.0 / n,
        (b.1 - a.1) as f64 / n,
        (b.2 - a.2) as f64 / n
    );
}

/// A braid-web `Site` holding `n` connections from plain sockets, silent
/// and then kept alive after one request each.
fn http(n: u32) {
    use braid_web::{FnResource, Response, Site, SiteConfig};
    let reactor = Reactor::new().unwrap();
    let site = Site::with_config(
        FnResource::leaf(|_| Response::text("Hello, world!\n")),
        SiteConfig {
            access_log: false,
            ..SiteConfig::default()
        },
    );
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), site.clone())
        .unwrap();
    let addr = port.local_addr();
    let request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
    let exchange = |s: &mut std::net::TcpStream| {
        s.write_all(request).unwrap();
        s.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        braid::testing::run_until(&reactor, Duration::from_secs(10), || {
            if let Ok(k) = s.read(&mut buf) {
                got.extend_from_slice(&buf[..k]);
            }
            got.ends_with(b"Hello, world!\n")
        })
        .unwrap_or_else(|e| panic!("an answer: {e}; got {:?}", String::from_utf8_lossy(&got)));
    };
    // Warm up: the first requests set up what every later one shares.
    let mut warm: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    for s in &mut warm {
        exchange(s);
    }
    drop(warm);
    let settle = || {
        let _ = braid::testing::run_until(&reactor, Duration::from_millis(300), || false);
    };
    settle();
    let base = sample();
    let mut conns = Vec::with_capacity(n as usize);
    while conns.len() < n as usize {
        let batch = (n as usize - conns.len()).min(256);
        for _ in 0..batch {
            conns.push(std::net::TcpStream::connect(addr).unwrap());
        }
        // The accepts happen as the reactor runs.
        settle();
    }
    // Connections idle in hyper let it go after between 0.5 and 1 s, and
    // the memory freed goes back a second later.
    let quiet = || {
        let _ = braid::testing::run_until(&reactor, Duration::from_millis(2500), || false);
    };
    quiet();
    let silent = sample();
    per_conn("silent", base, silent, n);
    for s in &mut conns {
        exchange(s);
    }
    quiet();
    let kept = sample();
    per_conn("kept alive after one request", base, kept, n);
    drop(conns);
    // The reactor releases freed memory a second after a burst of closes.
    quiet();
    let closed = sample();
    println!(
        "after they close: {:+.1} MiB of VmRSS, {:+} bytes of live heap over the baseline",
        closed.0 as f64 / 1024.0 - base.0 as f64 / 1024.0,
        closed.1 - base.1
    );
}

use braid::{Address, Protocol, Reactor, Transport};

struct Quiet(Rc<Cell<u32>>);
impl Protocol for Quiet {
    fn connection_made(&mut self, _: &Transport) {
        self.0.set(self.0.get() + 1);
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let asked: u32 = braid_bench::arg(&args, "--connections", 10_000);
    if args.iter().any(|a| a == "--http") {
        // Both ends in this process: two fds a connection.
        let limit = braid_bench::raise_fd_limit();
        let n = asked.min((limit.saturating_sub(200) / 2) as u32);
        if n < asked {
            println!("the fd limit ({limit}) allows {n} connections, not {asked}");
        }
        http(n);
        return;
    }
    // Two fds per connection pair, plus slack: raise the soft limit to what
    // the hard limit allows, and fit the count to it.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_cur = lim.rlim_max.min(2 * asked as u64 + 1000);
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    let n = asked.min(((lim.rlim_cur.saturating_sub(1000)) / 2) as u32 - 100);
    if n < asked {
        println!(
            "the fd limit ({}) allows {n} pairs, not {asked}",
            lim.rlim_cur
        );
    }

    let reactor = Reactor::new().unwrap();
    let up = Rc::new(Cell::new(0));
    let u = up.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            Quiet(u.clone())
        })
        .unwrap();
    // Warm up: a few connections so one-time allocations (read buffer,
    // events array, timer heap) are in the baseline.
    // In batches: all at once would overflow the listen backlog (1,024).
    let open = |count: u32| {
        let mut left = count;
        while left > 0 {
            let batch = left.min(500);
            left -= batch;
            let target = up.get() + 2 * batch;
            for _ in 0..batch {
                let u = up.clone();
                reactor.connect_tcp(port.local_addr(), move |_: &Address| Quiet(u.clone()), None);
            }
            braid::testing::run_until(&reactor, Duration::from_secs(60), || up.get() >= target)
                .unwrap_or_else(|_| panic!("only {} of {target} connection ends up", up.get()));
        }
    };
    open(100);
    let before = rss_kib();
    open(n);
    let after = rss_kib();
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / (2.0 * n as f64);
    println!(
        "{n} idle connection pairs ({} braid connections): VmRSS {before} KiB -> {after} KiB",
        2 * n
    );
    println!(
        "{per:.0} bytes per braid connection (process memory, kernel socket buffers not included)"
    );
}
