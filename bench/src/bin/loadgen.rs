//! The load generator for the `compare` harness, a process of its own on
//! its own core. Single-threaded on `polling`, so it costs about what the
//! leanest server costs per message; `compare` checks it is not the
//! bottleneck by reporting the server's CPU use alongside each result.
//!
//! ```text
//! loadgen echo --addr A --conns N --secs S [--size 64] [--warmup S]
//!     each connection sends SIZE bytes and waits for them back, again and
//!     again; prints: result msgs_per_s=.. p50_us=.. p99_us=.. cpu=..
//! loadgen bulk --addr A --bytes B [--tls]
//!     one connection streams B bytes out while reading the echo back
//!     (through TLS with --tls); prints: result mb_per_s=.. cpu=..
//! loadgen idle --addr A --conns N
//!     opens N connections, prints "ready", holds them until stdin closes
//! loadgen http-idle --addr A --conns N
//!     opens N connections and sends nothing (prints "ready N"); at a line
//!     on stdin, sends one `GET /` on each and reads its whole response
//!     (prints "answered N"), keeping them open; closes them all when
//!     stdin closes, then prints "closed"
//! ```

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Opens `n` connections; after each batch, one round trip on the batch's
/// last connection proves the server accepted the whole batch (its accept
/// queue is first in, first out), so the backlog never overflows.
fn connect_all(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    connect_in_batches(addr, n, |batch| {
        let last = batch.last_mut().unwrap();
        last.write_all(b"!").unwrap();
        let mut b = [0u8; 1];
        last.read_exact(&mut b).unwrap();
    })
}

/// Opens `n` connections, 256 at a time, calling `synced` after each batch
/// with the connections so far: it returns once the server has accepted
/// them all.
fn connect_in_batches(
    addr: SocketAddr,
    n: usize,
    mut synced: impl FnMut(&mut Vec<TcpStream>),
) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let batch = (n - out.len()).min(256);
        for _ in 0..batch {
            let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
            s.set_nodelay(true).unwrap();
            out.push(s);
        }
        synced(&mut out);
    }
    out
}

fn echo(addr: SocketAddr, conns: usize, secs: f64, size: usize, warmup: f64) {
    let streams = connect_all(addr, conns);
    let poller = Poller::new().unwrap();
    for (i, s) in streams.iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        // SAFETY: the streams outlive their registration (deleted below).
        unsafe { poller.add_with_mode(s, Event::readable(i), PollMode::Level) }.unwrap();
    }
    let msg = vec![b'x'; size];
    let mut got = vec![0usize; conns];
    let mut sent_at = vec![Instant::now(); conns];
    let mut buf = vec![0u8; 64 * 1024];
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(warmup);
    let end = measure_from + Duration::from_secs_f64(secs);
    let mut counted = 0u64;
    let mut cpu0 = None;
    for (i, mut s) in streams.iter().enumerate() {
        s.write_all(&msg).unwrap();
        sent_at[i] = Instant::now();
    }
    let mut events = Events::new();
    loop {
        events.clear();
        poller
            .wait(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        let now = Instant::now();
        if now >= end {
            break;
        }
        if cpu0.is_none() && now >= measure_from {
            cpu0 = Some(cpu_seconds());
        }
        for ev in events.iter() {
            let i = ev.key;
            let mut s = &streams[i];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => panic!("the server closed connection {i}"),
                    Ok(n) => got[i] += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            while got[i] >= size {
                got[i] -= size;
                let t = Instant::now();
                if t >= measure_from {
                    lat.push(
                        t.duration_since(sent_at[i])
                            .as_micros()
                            .min(u32::MAX as u128) as u32,
                    );
                    counted += 1;
                }
                s.write_all(&msg).unwrap();
                sent_at[i] = t;
            }
        }
    }
    let cpu = cpu_seconds() - cpu0.unwrap_or(0.0);
    for s in &streams {
        let _ = poller.delete(s);
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "result msgs_per_s={:.0} p50_us={} p99_us={} cpu={:.2}",
        counted as f64 / secs,
        pct(0.50),
        pct(0.99),
        cpu / secs
    );
}

fn bulk(addr: SocketAddr, bytes: u64) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nonblocking(true).unwrap();
    let poller = Poller::new().unwrap();
    // SAFETY: `s` outlives its registration.
    unsafe { poller.add_with_mode(&s, Event::all(0), PollMode::Level) }.unwrap();
    let out = vec![0x5au8; 256 * 1024];
    let mut buf = vec![0u8; 256 * 1024];
    let (mut sent, mut recvd) = (0u64, 0u64);
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut events = Events::new();
    while recvd < bytes {
        events.clear();
        poller
            .wait(&mut events, Some(Duration::from_secs(10)))
            .unwrap();
        if events.is_empty() {
            panic!("no progress for 10 s: sent {sent}, received {recvd}");
        }
        let mut r = &s;
        loop {
            match r.read(&mut buf) {
                Ok(0) => panic!("the server closed the connection after {recvd} bytes"),
                Ok(n) => recvd += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        while sent < bytes {
            let want = (bytes - sent).min(out.len() as u64) as usize;
            match (&s).write(&out[..want]) {
                Ok(n) => sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        if sent >= bytes {
            poller
                .modify_with_mode(&s, Event::readable(0), PollMode::Level)
                .unwrap();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = poller.delete(&s);
    println!(
        "result mb_per_s={:.1} cpu={:.2}",
        bytes as f64 / 1e6 / secs,
        (cpu_seconds() - cpu0) / secs
    );
}

/// `bulk` through TLS: rustls (ring) driven by hand over the same
/// non-blocking socket, trusting braid's test CA.
fn bulk_tls(addr: SocketAddr, bytes: u64) {
    let config = braid_tls::testing::client_config().build().unwrap();
    let mut tls = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_nonblocking(true).unwrap();
    let poller = Poller::new().unwrap();
    // SAFETY: `s` outlives its registration.
    unsafe { poller.add_with_mode(&s, Event::all(0), PollMode::Level) }.unwrap();
    let out = vec![0x5au8; 64 * 1024];
    let mut buf = vec![0u8; 256 * 1024];
    let (mut sent, mut recvd) = (0u64, 0u64);
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut events = Events::new();
    while recvd < bytes {
        events.clear();
        poller
            .wait(&mut events, Some(Duration::from_secs(10)))
            .unwrap();
        if events.is_empty() {
            panic!("no progress for 10 s: sent {sent}, received {recvd}");
        }
        loop {
            match tls.read_tls(&mut &s) {
                Ok(0) => panic!("the server closed the connection after {recvd} bytes"),
                Ok(_) => {
                    tls.process_new_packets().expect("TLS from the server");
                    loop {
                        match tls.reader().read(&mut buf) {
                            Ok(0) => panic!("close_notify after {recvd} bytes"),
                            Ok(n) => recvd += n as u64,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => panic!("TLS read: {e}"),
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        loop {
            // New plain text only once the last records are on the wire.
            if !tls.wants_write() && !tls.is_handshaking() && sent < bytes {
                let want = (bytes - sent).min(out.len() as u64) as usize;
                tls.writer().write_all(&out[..want]).unwrap();
                sent += want as u64;
            }
            if !tls.wants_write() {
                break;
            }
            match tls.write_tls(&mut &s) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        let mode = if tls.wants_write() || (sent < bytes && !tls.is_handshaking()) {
            Event::all(0)
        } else {
            Event::readable(0)
        };
        poller.modify_with_mode(&s, mode, PollMode::Level).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = poller.delete(&s);
    println!(
        "result mb_per_s={:.1} cpu={:.2}",
        bytes as f64 / 1e6 / secs,
        (cpu_seconds() - cpu0) / secs
    );
}

fn idle(addr: SocketAddr, conns: usize) {
    let streams = connect_all(addr, conns);
    println!("ready {}", streams.len());
    let _ = io::stdout().flush();
    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    drop(streams);
}

/// Opens `n` connections that send nothing. After each batch a separate
/// connection makes one request (and closes): the server answers it only
/// after accepting the whole batch, so the backlog never overflows and the
/// idle connections themselves stay silent.
fn connect_silent(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    connect_in_batches(addr, n, |_| {
        let mut probe = TcpStream::connect(addr).unwrap();
        probe
            .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut sink = Vec::new();
        let _ = probe.read_to_end(&mut sink);
    })
}

/// Reads one HTTP/1.1 response (a head and a `Content-Length` body).
fn read_response(s: &mut TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(());
            }
        }
    }
}

fn http_idle(addr: SocketAddr, conns: usize) {
    let mut streams = connect_silent(addr, conns);
    println!("ready {}", streams.len());
    let _ = io::stdout().flush();
    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    let mut answered = 0;
    for chunk in streams.chunks_mut(256) {
        for s in chunk.iter_mut() {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n");
        }
        for s in chunk.iter_mut() {
            if read_response(s).is_ok() {
                answered += 1;
            }
        }
    }
    println!("answered {answered}");
    let _ = io::stdout().flush();
    line.clear();
    let _ = io::stdin().lock().read_line(&mut line);
    drop(streams);
    println!("closed");
    let _ = io::stdout().flush();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = braid_bench::arg(&args, "--addr", "127.0.0.1:7000".parse().unwrap());
    braid_bench::raise_fd_limit();
    match args.get(1).map(String::as_str) {
        Some("echo") => echo(
            addr,
            braid_bench::arg(&args, "--conns", 1),
            braid_bench::arg(&args, "--secs", 3.0),
            braid_bench::arg(&args, "--size", 64),
            braid_bench::arg(&args, "--warmup", 0.5),
        ),
        Some("bulk") if args.iter().any(|a| a == "--tls") => {
            bulk_tls(addr, braid_bench::arg(&args, "--bytes", 1u64 << 30))
        }
        Some("bulk") => bulk(addr, braid_bench::arg(&args, "--bytes", 1u64 << 30)),
        Some("idle") => idle(addr, braid_bench::arg(&args, "--conns", 10_000)),
        Some("http-idle") => http_idle(addr, braid_bench::arg(&args, "--conns", 10_000)),
        _ => {
            eprintln!("usage: loadgen echo|bulk|idle|http-idle --addr A [options]");
            std::process::exit(2);
        }
    }
}
