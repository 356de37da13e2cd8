//! HTTP hello-world with `wrk`: braid's Site (standalone and under glib),
//! hyper 1.x on tokio's current-thread runtime, and Twisted Web, side by
//! side in one run, rounds alternating between servers; medians and ratios
//! to hyper-on-tokio.
//!
//! ```text
//! http-compare [--quick] [--rounds N] [--secs S] [--conns C] [--idle-conns N]
//!              [--kinds braid,braid-glib,hyper-tokio,twisted] [--python PY] [--out FILE]
//! ```
//!
//! Then idle memory: each server holds `--idle-conns` connections that
//! are open and silent, then the same connections kept alive after one
//! request each, then none; the report gives VmRSS per connection in both
//! states and what stays resident after they all close, over the baseline
//! of the started server.
//!
//! Servers run pinned to CPU 1 and wrk (one thread) to CPU 0 on a machine
//! with two or more CPUs, so the load generator does not take the server's
//! CPU. Server CPU time per request is read from /proc.

use std::fmt::Write as _;
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

    fn rss_kib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// One server's idle-memory figures.
struct Idle {
    /// Bytes of VmRSS per connection, open and silent.
    silent: f64,
    /// Bytes per connection, kept alive after one request each.
    kept: f64,
    /// MiB resident over the baseline once they have all closed.
    after_close_mib: f64,
    baseline_mib: f64,
}

fn read_line_from(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    let _ = r.read_line(&mut line);
    line.trim().to_string()
}

/// Lets the server settle (accepts done, buffers trimmed, a Python
/// collection run): RSS is read after this.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(3000));
}

fn run_idle(server: &Server, conns: usize, cpu: usize) -> Option<Idle> {
    // One request first, so what the first request sets up once (caches,
    // the date header, hyper's and Python's lazy state) is in the baseline.
    let loadgen = |conns: usize| {
        let mut cmd = Command::new(braid_bench::sibling("loadgen"));
        cmd.args([
            "http-idle",
            "--addr",
            &format!("127.0.0.1:{}", server.port),
            "--conns",
            &conns.to_string(),
        ]);
        pinned(cmd, cpu)
    };
    let _ = loadgen(1)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    settle();
    let base = server.rss_kib();
    let mut child = loadgen(conns)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let mut out = BufReader::new(child.stdout.take()?);
    let n: f64 = read_line_from(&mut out)
        .strip_prefix("ready ")?
        .parse()
        .ok()?;
    settle();
    let silent = (server.rss_kib() - base) * 1024.0 / n;
    let _ = writeln!(stdin, "request");
    let answered: f64 = read_line_from(&mut out)
        .strip_prefix("answered ")?
        .parse()
        .ok()?;
    if answered < n {
        eprintln!("http-compare: only {answered} of {n} idle connections were answered");
    }
    settle();
    let kept = (server.rss_kib() - base) * 1024.0 / n;
    drop(stdin);
    let _ = read_line_from(&mut out);
    let _ = child.wait();
    settle();
    let after = server.rss_kib();
    Some(Idle {
        silent,
        kept,
        after_close_mib: (after - base) / 1024.0,
        baseline_mib: base / 1024.0,
    })
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
    let idle_conns: usize = arg(&args, "--idle-conns", if quick { 200 } else { 10_000 });
    let limit = braid_bench::raise_fd_limit();
    if (limit as usize) < idle_conns + 500 {
        eprintln!("warning: the fd limit ({limit}) is below {idle_conns} connections");
    }
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
    // Idle memory, one server at a time, rounds interleaved.
    let idle_rounds = rounds.min(3);
    let mut idle: Vec<(String, Vec<Idle>)> =
        kinds.iter().map(|k| (k.clone(), Vec::new())).collect();
    for round in 0..idle_rounds {
        for (kind, list) in idle.iter_mut() {
            let Some(server) = Server::start(kind, python.as_deref(), server_cpu) else {
                continue;
            };
            let Some(i) = run_idle(&server, idle_conns, client_cpu) else {
                eprintln!("http-compare: the idle run against {kind} failed");
                continue;
            };
            eprintln!(
                "idle {}/{idle_rounds} {kind:12} {:>6.0} B/conn silent  {:>6.0} B/conn kept alive  {:>6.1} MiB kept after close (baseline {:.1} MiB)",
                round + 1,
                i.silent,
                i.kept,
                i.after_close_mib,
                i.baseline_mib
            );
            list.push(i);
        }
    }
    let _ = write!(
        md,
        "\n## HTTP idle connections ({idle_conns}, {idle_rounds} rounds; medians)\n\n\
         Server VmRSS growth per connection with the connections open and silent (no request yet), then with each kept alive after one request, and what stays resident over the started server's baseline once they have all closed.\n\n\
         | server | bytes per silent connection | bytes per kept-alive connection | resident after all close | baseline |\n|---|---:|---:|---:|---:|\n"
    );
    for (kind, list) in &idle {
        if list.is_empty() {
            continue;
        }
        let m = |f: fn(&Idle) -> f64| {
            let mut v: Vec<f64> = list.iter().map(f).collect();
            median(&mut v)
        };
        let _ = writeln!(
            md,
            "| {kind} | {:.0} | {:.0} | +{:.1} MiB | {:.1} MiB |",
            m(|i| i.silent),
            m(|i| i.kept),
            m(|i| i.after_close_mib),
            m(|i| i.baseline_mib)
        );
    }
    println!("{md}");
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut f = std::fs::File::create(&out).expect("write the report");
    let _ = writeln!(f, "# braid's HTTP benchmark\n\nMade by `scripts/bench.sh` (`target/release/http-compare`).\n\n{md}");
    eprintln!("http-compare: wrote {}", out.display());
}
