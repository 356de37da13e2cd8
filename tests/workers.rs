//! A reactor per core: workers sharing a port (SO_REUSEPORT, or one
//! socket), stopped together; a failing setup; a worker that ends ends
//! the rest.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use braid::workers::{self, SharedPort, Workers};
use braid::{Address, Protocol, Transport};

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// Starts `n` workers on `port`, each counting the connections it got.
fn echo_workers(n: usize, port: SharedPort) -> (Workers, Arc<Vec<AtomicUsize>>) {
    let counts: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let c = counts.clone();
    let workers = Workers::start(n, move |reactor, i| {
        let c = c.clone();
        port.listen(reactor, move |_: &Address| {
            c[i].fetch_add(1, Ordering::Relaxed);
            Echo
        })?;
        Ok(())
    })
    .unwrap();
    (workers, counts)
}

fn ping(addr: std::net::SocketAddr, i: usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let msg = format!("ping {i}");
    s.write_all(msg.as_bytes()).unwrap();
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(buf, msg.as_bytes());
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Windows has no load-balancing SO_REUSEPORT (reuse_port says Unsupported)"
)]
fn reuse_port_spreads_connections_over_every_worker() {
    let port = SharedPort::reuse_port("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = port.local_addr().unwrap();
    assert_ne!(addr.port(), 0, "port 0 is one port for all");
    let (workers, counts) = echo_workers(4, port);
    assert_eq!(workers.len(), 4);
    for i in 0..200 {
        ping(addr, i);
    }
    workers.stop();
    workers.join().unwrap();
    let got: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(got.iter().sum::<usize>(), 200);
    // The kernel hashes each connection's ports: over 200 every worker
    // gets some (the odds of one getting none are below 1e-12).
    assert!(got.iter().all(|&n| n > 0), "{got:?}");
}

#[test]
fn one_shared_socket_serves_from_every_worker() {
    let port = SharedPort::single_at("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = port.local_addr().unwrap();
    let (workers, counts) = echo_workers(3, port);
    for i in 0..60 {
        ping(addr, i);
    }
    workers.stop();
    workers.join().unwrap();
    let total: usize = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    assert_eq!(total, 60);
}

#[test]
fn a_failing_setup_stops_the_others() {
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let err = Workers::start(4, move |_, i| {
        s.fetch_add(1, Ordering::SeqCst);
        if i == 2 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "port taken",
            ));
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(
        started.load(Ordering::SeqCst),
        4,
        "every setup ran; all joined"
    );
}

#[test]
fn a_worker_that_ends_ends_the_run() {
    // Worker 1 stops itself at once: run() stops the others and returns.
    workers::run(3, |reactor, i| {
        if i == 1 {
            let r = reactor.clone();
            reactor.call_soon(move || r.stop());
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn adopting_wants_a_listening_tcp_socket() {
    let reactor = braid::Reactor::new().unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let port = reactor
        .adopt_stream_port(l.into(), |_: &Address| Echo)
        .unwrap();
    assert_eq!(port.local_addr(), addr);
    let connected = TcpStream::connect(addr).unwrap();
    let err = reactor
        .adopt_stream_port(connected.into(), |_: &Address| Echo)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
