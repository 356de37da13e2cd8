//! SMTP into a Maildir: braid-mail, Twisted's ESMTP and aiosmtpd, side by
//! side in one run (rounds alternate between servers), with fsync and
//! without it (to show what the disk costs apart from the server).
//! Messages per second and server CPU per message; medians and ratios to
//! braid.
//!
//! ```text
//! smtp-compare [--quick] [--rounds N] [--clients C] [--messages M] [--size BYTES]
//!              [--python PY (Twisted)] [--aiosmtpd PY] [--dir DIR (where the Maildirs go)] [--out FILE]
//! ```
//!
//! Each client is a thread with one connection that sends its messages one
//! after another (MAIL, RCPT, DATA, the body, ".": no pipelining, which
//! Twisted's server does not offer), each to one of 100 mailboxes. The
//! server runs pinned to CPU 1, the clients to CPU 0; its CPU time comes
//! from /proc. Every message is checked to be in the Maildir once.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use braid_bench::{arg, pinned};

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(kind: &str, py: &Python, dir: &Path, fsync: bool) -> Option<Server> {
    let mut cmd = match kind {
        "braid" => Command::new(braid_bench::sibling("mail-server")),
        "twisted" => {
            let mut c = Command::new(py.twisted.as_ref()?);
            c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("py/twisted_smtp.py"));
            c
        }
        "aiosmtpd" => {
            let mut c = Command::new(py.aiosmtpd.as_ref()?);
            c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("py/aiosmtpd_smtp.py"));
            c
        }
        _ => return None,
    };
    cmd.arg("--maildir").arg(dir);
    if !fsync {
        cmd.arg("--no-fsync");
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = pinned(cmd, 1).spawn().ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    let port = line.trim().strip_prefix("listening ")?.parse().ok()?;
    Some(Server { child, port })
}

struct Python {
    twisted: Option<String>,
    aiosmtpd: Option<String>,
}

/// Reads one reply; its code.
fn reply(r: &mut BufReader<TcpStream>) -> u16 {
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            return 0;
        }
        if l.as_bytes().get(3) != Some(&b'-') {
            return l.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        }
    }
}

fn client(port: u16, id: usize, messages: usize, size: usize) -> usize {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(reply(&mut r), 220);
    w.write_all(b"EHLO loadgen\r\n").unwrap();
    assert_eq!(reply(&mut r), 250);
    let line: Vec<u8> =
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789\r\n".to_vec();
    let mut ok = 0;
    for m in 0..messages {
        let user = (id * 7 + m) % 100;
        let head = format!(
            "MAIL FROM:<load{id}@example.net>\r\nRCPT TO:<bench{user}@localhost>\r\nDATA\r\n"
        );
        // Sent one command at a time (no pipelining).
        let mut parts = head.split_inclusive("\r\n");
        for (p, want) in parts.by_ref().zip([250, 250, 354]) {
            w.write_all(p.as_bytes()).unwrap();
            assert_eq!(reply(&mut r), want, "{p}");
        }
        let mut body = format!("Subject: bench\r\nX-Id: c{id}-m{m}\r\n\r\n").into_bytes();
        while body.len() < size {
            body.extend_from_slice(&line);
        }
        body.extend_from_slice(b".\r\n");
        w.write_all(&body).unwrap();
        match reply(&mut r) {
            250 => ok += 1,
            code => eprintln!("smtp-compare: message c{id}-m{m} refused with {code}"),
        }
    }
    w.write_all(b"QUIT\r\n").unwrap();
    let _ = reply(&mut r);
    ok
}

fn stored(dir: &Path) -> usize {
    (0..100)
        .map(|u| {
            std::fs::read_dir(dir.join(format!("bench{u}")).join("new"))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .sum()
}

/// (kind, fsync), messages per second and server CPU us per message, per
/// round.
type Tally<'a> = ((&'a str, bool), Vec<f64>, Vec<f64>);

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = arg(&args, "--rounds", if quick { 1 } else { 3 });
    let clients: usize = arg(&args, "--clients", if quick { 2 } else { 8 });
    let messages: usize = arg(&args, "--messages", if quick { 20 } else { 250 });
    let size: usize = arg(&args, "--size", 2048);
    let out: String = arg(&args, "--out", String::new());
    let py = Python {
        twisted: Some(arg(&args, "--python", String::new())).filter(|p| !p.is_empty()),
        aiosmtpd: Some(arg(&args, "--aiosmtpd", String::new())).filter(|p| !p.is_empty()),
    };
    let kinds = ["braid", "twisted", "aiosmtpd"];
    let base: String = arg(&args, "--dir", std::env::temp_dir().display().to_string());
    let scratch = Path::new(&base).join(format!("braid-smtp-compare-{}", std::process::id()));
    // (kind, fsync) -> per-round msgs/s and CPU us per message.
    let mut results: Vec<Tally> = Vec::new();
    for fsync in [true, false] {
        for kind in kinds {
            results.push(((kind, fsync), Vec::new(), Vec::new()));
        }
    }
    let total = clients * messages;
    for round in 0..rounds {
        for fsync in [true, false] {
            for kind in kinds {
                let dir: PathBuf = scratch.join(format!("{kind}-{fsync}-{round}"));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                let Some(server) = start(kind, &py, &dir, fsync) else {
                    eprintln!("smtp-compare: {kind} is not available, left out");
                    continue;
                };
                let cpu0 = braid_bench::cpu_seconds(server.child.id());
                let t0 = Instant::now();
                let port = server.port;
                let handles: Vec<_> = (0..clients)
                    .map(|c| std::thread::spawn(move || client(port, c, messages, size)))
                    .collect();
                let ok: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
                let secs = t0.elapsed().as_secs_f64();
                let cpu = braid_bench::cpu_seconds(server.child.id()) - cpu0;
                drop(server);
                let n = stored(&dir);
                assert_eq!(ok, total, "{kind}: {ok} of {total} accepted");
                assert_eq!(n, total, "{kind}: {n} of {total} in the Maildir");
                let rate = total as f64 / secs;
                let us = cpu * 1e6 / total as f64;
                eprintln!("round {round} {kind:8} fsync={fsync:5}: {rate:8.0} msgs/s, {us:7.1} us server CPU per message");
                let e = results.iter_mut().find(|r| r.0 == (kind, fsync)).unwrap();
                e.1.push(rate);
                e.2.push(us);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mut md = String::new();
    md.push_str(&format!(
        "{clients} clients at once, {messages} messages each of {size} bytes, one connection per client, one command at a time; medians of {rounds} rounds; server on CPU 1, clients on CPU 0.\n\n"
    ));
    md.push_str("| server | fsync | messages/s | vs braid | server CPU per message (us) | vs braid |\n|---|---|---|---|---|---|\n");
    for fsync in [true, false] {
        let base = results
            .iter_mut()
            .find(|r| r.0 == ("braid", fsync))
            .map(|r| (median(&mut r.1), median(&mut r.2)));
        for r in results
            .iter_mut()
            .filter(|r| r.0 .1 == fsync && !r.1.is_empty())
        {
            let (rate, us) = (median(&mut r.1), median(&mut r.2));
            let (rr, ur) = base.map_or((f64::NAN, f64::NAN), |(br, bu)| (rate / br, us / bu));
            md.push_str(&format!(
                "| {} | {} | {rate:.0} | {rr:.2}x | {us:.0} | {ur:.2}x |\n",
                r.0 .0,
                if fsync { "yes" } else { "no" }
            ));
        }
    }
    println!("{md}");
    if !out.is_empty() {
        std::fs::write(&out, md).unwrap();
    }
}
