//! SOCKS5 bulk transfer: braid's SOCKS server against Dante (Debian's
//! `danted`), side by side in one run (rounds alternate between them).
//! MB/s through the proxy each way and the proxy's CPU per GB (every
//! process of it: Dante forks); medians and ratios to Dante.
//!
//! ```text
//! socks-compare [--rounds N] [--mb MB] [--out FILE]
//! ```
//!
//! The proxy runs pinned to CPU 1; the client and the target (a thread
//! that counts what it gets, or sends what is asked) to CPU 0. Every
//! transfer is checked to have arrived whole.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use braid_bench::{arg, pinned};

const CHUNK: usize = 256 * 1024;

struct Proxy {
    child: Child,
    port: u16,
    _dir: Option<std::path::PathBuf>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self._dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(kind: &str) -> Option<Proxy> {
    let port = free_port();
    let (cmd, dir) = match kind {
        "braid" => {
            let mut c = Command::new(braid_bench::sibling("socks-server"));
            c.args(["--port", &port.to_string()]);
            (c, None)
        }
        "dante" => {
            let danted = ["/usr/sbin/danted", "/usr/sbin/sockd"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())?;
            let dir =
                std::env::temp_dir().join(format!("socks-compare-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).ok()?;
            let conf = dir.join("danted.conf");
            std::fs::write(
                &conf,
                format!(
                    "logoutput: {}/danted.log\ninternal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
                     clientmethod: none\nsocksmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n\
                     client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\nsocks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n",
                    dir.display()
                ),
            )
            .ok()?;
            let mut c = Command::new(danted);
            c.args(["-f", conf.to_str()?, "-N", "1"]);
            (c, Some(dir))
        }
        _ => return None,
    };
    let child = pinned(cmd, 1)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let proxy = Proxy {
        child,
        port,
        _dir: dir,
    };
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(proxy);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

/// CPU seconds of `pid` and every process below it.
fn tree_cpu(pid: u32) -> f64 {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if let Some(pp) = ppid {
            parent.insert(p, pp);
        }
    }
    let below = |mut p: u32| {
        for _ in 0..64 {
            if p == pid {
                return true;
            }
            match parent.get(&p) {
                Some(pp) if *pp != 0 => p = *pp,
                _ => return false,
            }
        }
        false
    };
    parent
        .keys()
        .filter(|p| below(**p))
        .map(|p| braid_bench::cpu_seconds(*p))
        .sum()
}

/// The target: for each connection, `U` then bytes to count (the count
/// sent back at EOF), or `D` and eight bytes of length, then that many
/// bytes sent.
fn target() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    addr
}

fn serve(mut s: TcpStream) {
    let mut kind = [0u8; 1];
    if s.read_exact(&mut kind).is_err() {
        return;
    }
    let mut buf = vec![0u8; CHUNK];
    if kind[0] == b'U' {
        let mut n = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        let _ = s.write_all(&n.to_be_bytes());
    } else {
        let mut len = [0u8; 8];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut left = u64::from_be_bytes(len);
        buf.fill(b'd');
        while left > 0 {
            let k = left.min(CHUNK as u64) as usize;
            if s.write_all(&buf[..k]).is_err() {
                return;
            }
            left -= k as u64;
        }
    }
}

/// A SOCKS5 CONNECT (no login) to `to` through the proxy on `port`.
fn tunnel(port: u16, to: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(&[5, 1, 0]).unwrap();
    let mut r = [0u8; 2];
    s.read_exact(&mut r).unwrap();
    assert_eq!(r, [5, 0], "no-auth accepted");
    let SocketAddr::V4(v4) = to else { panic!() };
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&v4.ip().octets());
    req.extend_from_slice(&v4.port().to_be_bytes());
    s.write_all(&req).unwrap();
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).unwrap();
    assert_eq!(rep[1], 0, "CONNECT granted");
    s
}

/// Seconds to move `bytes` up (client to target) or down.
fn transfer(port: u16, to: SocketAddr, bytes: u64, up: bool) -> f64 {
    let mut s = tunnel(port, to);
    let mut buf = vec![b'u'; CHUNK];
    let t0 = Instant::now();
    if up {
        s.write_all(b"U").unwrap();
        let mut left = bytes;
        while left > 0 {
            let k = left.min(CHUNK as u64) as usize;
            s.write_all(&buf[..k]).unwrap();
            left -= k as u64;
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut n = [0u8; 8];
        s.read_exact(&mut n).unwrap();
        assert_eq!(u64::from_be_bytes(n), bytes, "all of it arrived");
    } else {
        s.write_all(b"D").unwrap();
        s.write_all(&bytes.to_be_bytes()).unwrap();
        let mut got = 0u64;
        while got < bytes {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k as u64,
            }
        }
        assert_eq!(got, bytes, "all of it arrived");
    }
    t0.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = arg(&args, "--rounds", 3);
    let mb: u64 = arg(&args, "--mb", 1024);
    let out: String = arg(&args, "--out", String::new());
    // This process (client and target) on CPU 0.
    // SAFETY: sched_setaffinity on this process with a zeroed then set mask.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    let to = target();
    let bytes = mb * 1024 * 1024;
    let kinds = ["braid", "dante"];
    let mut rate: std::collections::HashMap<(&str, bool), Vec<f64>> = Default::default();
    let mut cpu: std::collections::HashMap<(&str, bool), Vec<f64>> = Default::default();
    for round in 1..=rounds {
        for kind in kinds {
            let Some(proxy) = start(kind) else {
                eprintln!("{kind}: not available, skipped");
                continue;
            };
            for up in [true, false] {
                let c0 = tree_cpu(proxy.child.id());
                let secs = transfer(proxy.port, to, bytes, up);
                let c1 = tree_cpu(proxy.child.id());
                let mbs = mb as f64 / secs;
                let per_gb = (c1 - c0) / (mb as f64 / 1024.0);
                eprintln!(
                    "round {round} {kind} {}: {mbs:.0} MB/s, {per_gb:.2} s proxy CPU per GB",
                    if up { "up" } else { "down" }
                );
                rate.entry((kind, up)).or_default().push(mbs);
                cpu.entry((kind, up)).or_default().push(per_gb);
            }
        }
    }
    let mut report = format!(
        "SOCKS5 bulk through the proxy, {mb} MiB a transfer, {rounds} rounds, medians (proxy on CPU 1):\n\n\
         | proxy | up MB/s | down MB/s | up CPU s/GB | down CPU s/GB |\n|---|---|---|---|---|\n"
    );
    let med = |m: &mut std::collections::HashMap<(&str, bool), Vec<f64>>,
               k: &'static str,
               up: bool| { m.get_mut(&(k, up)).map(|v| median(v)) };
    let mut table = Vec::new();
    for kind in kinds {
        let vals = [
            med(&mut rate, kind, true),
            med(&mut rate, kind, false),
            med(&mut cpu, kind, true),
            med(&mut cpu, kind, false),
        ];
        table.push((kind, vals));
        let cell = |v: Option<f64>, d: usize| v.map_or("-".into(), |v| format!("{v:.*}", d));
        report.push_str(&format!(
            "| {kind} | {} | {} | {} | {} |\n",
            cell(vals[0], 0),
            cell(vals[1], 0),
            cell(vals[2], 2),
            cell(vals[3], 2)
        ));
    }
    if let (Some(b), Some(d)) = (
        table[0].1[0].zip(table[0].1[1]),
        table[1].1[0].zip(table[1].1[1]),
    ) {
        report.push_str(&format!(
            "\nbraid / dante throughput: up {:.2}x, down {:.2}x\n",
            b.0 / d.0,
            b.1 / d.1
        ));
    }
    print!("{report}");
    if !out.is_empty() {
        std::fs::write(&out, &report).expect("write --out");
    }
}
