//! How four workers share long-lived connections when one of them is
//! busy: SO_REUSEPORT (the kernel hashes each connection to a socket)
//! against one shared socket (whichever worker is waiting accepts), side
//! by side in one run. Worker 0 spends 90% of its time in callbacks (a
//! timer that spins); the others are idle. Prints each worker's share of
//! the connections.
//!
//! ```text
//! worker-balance [--connections N] [--rounds R]
//! ```

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::workers::{SharedPort, Workers};
use braid::{Address, Protocol, Transport};
use braid_bench::arg;

struct Hold;
impl Protocol for Hold {
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

fn run(port: SharedPort, connections: usize) -> Vec<usize> {
    let addr = port.local_addr().unwrap();
    let counts: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let c = counts.clone();
    let workers = Workers::start(4, move |reactor, i| {
        let c = c.clone();
        port.listen(reactor, move |_: &Address| {
            c[i].fetch_add(1, Ordering::Relaxed);
            Hold
        })?;
        if i == 0 {
            // Busy: 0.9 ms of every 1 ms inside a callback.
            let r = reactor.clone();
            let lc = braid::LoopingCall::new(&r, |_missed| {
                let until = Instant::now() + Duration::from_micros(900);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            });
            drop(lc.start(Duration::from_millis(1), true));
            // The looping call lives as long as the reactor.
            std::mem::forget(lc);
        }
        Ok(())
    })
    .unwrap();
    let mut held = Vec::new();
    for _ in 0..connections {
        held.push(TcpStream::connect(addr).unwrap());
        std::thread::sleep(Duration::from_micros(200));
    }
    let end = Instant::now() + Duration::from_secs(30);
    while counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum::<usize>()
        < connections
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    workers.stop();
    workers.join().unwrap();
    drop(held);
    counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let connections: usize = arg(&args, "--connections", 400);
    let rounds: usize = arg(&args, "--rounds", 3);
    println!("{connections} long-lived connections to 4 workers, worker 0 busy 90% of the time; {rounds} rounds\n");
    println!("| sharing | round | worker 0 (busy) | 1 | 2 | 3 | busy worker's share |");
    println!("|---|---|---|---|---|---|---|");
    for round in 1..=rounds {
        for (name, port) in [
            (
                "SO_REUSEPORT",
                SharedPort::reuse_port("127.0.0.1:0".parse().unwrap()).unwrap(),
            ),
            (
                "one shared socket",
                SharedPort::single_at("127.0.0.1:0".parse().unwrap()).unwrap(),
            ),
        ] {
            let got = run(port, connections);
            let total: usize = got.iter().sum::<usize>().max(1);
            println!(
                "| {name} | {round} | {} | {} | {} | {} | {:.0}% |",
                got[0],
                got[1],
                got[2],
                got[3],
                100.0 * got[0] as f64 / total as f64
            );
        }
    }
}
