//! Resident memory per idle connection: opens N loopback connections (both
//! ends in this process, so 2N braid connections) and reports the growth of
//! VmRSS per braid connection. Issue 9's target: at most 1 KiB.
//!
//! ```text
//! cargo run --release -p braid-bench --bin idle-memory [-- --connections 10000]
//! ```

use std::cell::Cell;
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
