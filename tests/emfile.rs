#![cfg(unix)]
//! The accept loop under fd exhaustion. Its own test binary: it lowers this
//! process's RLIMIT_NOFILE, which must not disturb other tests.

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use braid::testing::run_until;
use braid::{Address, Protocol, Reactor, Transport};

struct Hello;

impl Protocol for Hello {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"hi");
        t.lose_connection();
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

#[test]
fn accept_survives_emfile_without_spinning_and_recovers() {
    let reactor = Reactor::new().unwrap();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Hello)
        .unwrap();
    let addr = port.local_addr();

    // Open the clients' fds first, then lower the limit to exactly what is
    // in use, leaving nothing for accept().
    let clients: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) };
    // The limit caps fd numbers and the kernel hands out the lowest free
    // one, so the limit must be that lowest free number (dup finds it).
    let lowest_free = unsafe { libc::dup(clients[0].as_raw_fd()) };
    assert!(lowest_free > 0);
    unsafe { libc::close(lowest_free) };
    let low = libc::rlimit {
        rlim_cur: lowest_free as libc::rlim_t,
        rlim_max: old.rlim_max,
    };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);

    // Every waiting client is accepted with the spare fd and closed: each
    // sees EOF without "hi", and the listener stops being readable, so the
    // reactor goes idle instead of spinning.
    for _ in 0..20 {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    let mut refused = 0;
    for mut c in clients {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        if c.read_to_end(&mut buf).is_ok() && buf.is_empty() {
            refused += 1;
        }
    }
    assert_eq!(refused, 5, "each waiting peer was told at once");
    let d = reactor.iterate(Duration::from_millis(50)).unwrap();
    assert_eq!(
        d.io_events, 0,
        "the listener is not readable any more: no spin"
    );

    // Restore the limit: service resumes.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
    let h = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).unwrap();
        buf
    });
    run_until(&reactor, Duration::from_secs(20), || h.is_finished()).unwrap();
    assert_eq!(h.join().unwrap(), b"hi");
}
