//! HTTP hello-world with `wrk`: braid's Site (standalone and under glib),
//! hyper 1.x on tokio's current-thread runtime, and Twisted Web, side by
//! side in one run, rounds alternating between servers; medians and ratios
//! to hyper-on-tokio.
//!
//! ```text
//! http-compare [--quick] [--rounds N] [--secs S] [--conns C]
//!              [--kinds braid,braid-glib,hyper-tokio,twisted] [--python PY] [--out FILE]
//! ```
//!
//! Servers run pinned to CPU 1 and wrk (one thread) to CPU 0 on a machine
//! with two or more CPUs, so the load generator does not take the server's
//! CPU. Server CPU time per request is read from /proc.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use braid_bench::{arg, pinned};

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(kind: &str, python: Option<&str>, cpu: usize) -> Option<Server> {
        let mut cmd = if kind == "twisted" {
            let mut c = Command::new(python?);
            c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("py/twisted_http.py"));
            c
        } else {
            braid_bench::server_command("http-server", kind)
        };
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = pinned(cmd, cpu).spawn().ok()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take()?)
            .read_line(&mut line)
            .ok()?;
        let port = line.trim().strip_prefix("listening ")?.parse().ok()?;
        Some(Server { child, port })
    }

    fn cpu_secs(&self) -> f64 {
        braid_bench::cpu_seconds(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Sample {
    rps: f64,
    p99_ms: f64,
    cpu_us_per_req: f64,
}

/// "1.23ms" / "456.00us" / "1.2s" in milliseconds.
fn parse_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Some(v) = s.strip_suffix("us") {
        return v.parse::<f64>().ok().map(|v| v / 1000.0);
    }
    if let Some(v) = s.strip_suffix("ms") {
        return v.parse().ok();
    }
    if let Some(v) = s.strip_suffix('s') {
        return v.parse::<f64>().ok().map(|v| v * 1000.0);
    }
    None
}

fn run_wrk(port: u16, secs: f64, conns: usize, cpu: usize) -> Option<(f64, f64, u64)> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        &format!("-c{conns}"),
        &format!("-d{}s", secs.max(1.0) as u64),
        "--latency",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    let out = pinned(cmd, cpu).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(parse_ms)
        .unwrap_or(f64::NAN);
    let total = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let errors = text
        .lines()
        .any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    if errors {
        eprintln!("http-compare: wrk reported errors:\n{text}");
    }
    Some((rps, p99, total))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let python: Option<String> =
        Some(arg(&args, "--python", String::new())).filter(|p| !p.is_empty());
    let mut kinds: Vec<String> = arg(
        &args,
        "--kinds",
        "braid,braid-glib,hyper-tokio,twisted".to_string(),
    )
    .split(',')
    .map(str::to_owned)
    .collect();
    if python.is_none() {
        kinds.retain(|k| k != "twisted");
    }
    let kinds = braid_bench::with_baseline(kinds);
    let rounds: usize = arg(&args, "--rounds", if quick { 1 } else { 5 });
    let secs: f64 = arg(&args, "--secs", if quick { 1.0 } else { 5.0 });
    let conns: usize = arg(&args, "--conns", 50);
    let out = PathBuf::from(arg(
        &args,
        "--out",
        if quick {
            "target/bench/http-quick.md".to_string()
        } else {
            "BENCHMARKS-HTTP.md".to_string()
        },
    ));
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("http-compare: wrk is not installed (apt-get install wrk)");
        std::process::exit(2);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (server_cpu, client_cpu) = if cpus > 1 { (1, 0) } else { (0, 0) };
    let mut samples: Vec<(String, Vec<Sample>)> =
        kinds.iter().map(|k| (k.clone(), Vec::new())).collect();
    for round in 0..rounds {
        for (kind, list) in samples.iter_mut() {
            let Some(server) = Server::start(kind, python.as_deref(), server_cpu) else {
                eprintln!("http-compare: {kind} did not start; left out");
                continue;
            };
            // Warm up (connections, caches, Python's first requests).
            let _ = run_wrk(server.port, 1.0, conns, client_cpu);
            let cpu0 = server.cpu_secs();
            let Some((rps, p99, total)) = run_wrk(server.port, secs, conns, client_cpu) else {
                eprintln!("http-compare: wrk failed against {kind}");
                continue;
            };
            let cpu = server.cpu_secs() - cpu0;
            let s = Sample {
                rps,
                p99_ms: p99,
                cpu_us_per_req: if total > 0 {
                    cpu * 1e6 / total as f64
                } else {
                    f64::NAN
                },
            };
            eprintln!(
                "round {}/{rounds} {kind:12} {:>10.0} req/s  p99 {:>7.2} ms  {:>6.2} us CPU/req",
                round + 1,
                s.rps,
                s.p99_ms,
                s.cpu_us_per_req
            );
            list.push(s);
        }
    }
    let med = |list: &Vec<Sample>, f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = list.iter().map(f).collect();
        median(&mut v)
    };
    let base = samples
        .iter()
        .find(|(k, _)| k == "hyper-tokio")
        .map(|(_, l)| med(l, |s| s.rps));
    let mut md = String::new();
    md.push_str(&format!(
        "## HTTP hello world (wrk, 1 thread, {conns} connections, {secs} s x {rounds} rounds; medians)\n\n"
    ));
    md.push_str("Every server answers `GET /` with `200`, `text/plain` and 14 bytes, keeping connections alive; no access log. Server pinned to CPU 1, wrk to CPU 0.\n\n");
    md.push_str("| server | requests/s | rounds' range | vs hyper-tokio | p99 latency | server CPU per request |\n|---|---:|---:|---:|---:|---:|\n");
    for (kind, list) in &samples {
        if list.is_empty() {
            continue;
        }
        let rps = med(list, |s| s.rps);
        let ratio = base.map_or("-".to_string(), |b| format!("{:.2}x", rps / b));
        let lo = list.iter().map(|s| s.rps).fold(f64::INFINITY, f64::min);
        let hi = list.iter().map(|s| s.rps).fold(0.0, f64::max);
        md.push_str(&format!(
            "| {kind} | {rps:.0} | {lo:.0}-{hi:.0} | {ratio} | {:.2} ms | {:.2} us |\n",
            med(list, |s| s.p99_ms),
            med(list, |s| s.cpu_us_per_req)
        ));
    }
    println!("{md}");
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut f = std::fs::File::create(&out).expect("write the report");
    let _ = writeln!(f, "# braid's HTTP benchmark\n\nMade by `scripts/bench.sh` (`target/release/http-compare`).\n\n{md}");
    eprintln!("http-compare: wrote {}", out.display());
}
