//! braid against its peers, side by side in one run: starts each echo
//! server in a process of its own (pinned to one core), drives it with
//! `loadgen` (pinned to another), interleaves the kinds round after round,
//! and writes a markdown table of medians, spreads and ratios, plus an SVG
//! chart of the ratios to the limit loop.
//!
//! ```text
//! ./scripts/bench.sh            the full run: writes BENCHMARKS.md and BENCHMARKS.svg
//! ./scripts/bench.sh --quick    a few seconds, to target/bench/ (CI runs this; it asserts nothing about speed)
//! ```
//!
//! Options: `--rounds N`, `--secs S` (per echo run), `--bulk-mib M`,
//! `--idle-conns N`, `--idle-secs S`, `--kinds a,b,c`, `--out FILE.md`,
//! `--python PATH` (a Python with Twisted; otherwise Twisted is left out).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use braid_bench::arg;

const ECHO: [(&str, usize); 3] = [("echo-1", 1), ("echo-100", 100), ("echo-1000", 1000)];

struct Opts {
    quick: bool,
    rounds: usize,
    secs: f64,
    warmup: f64,
    bulk_bytes: u64,
    idle_conns: usize,
    idle_secs: f64,
    kinds: Vec<String>,
    out: PathBuf,
    python: Option<String>,
    server_cpu: usize,
    client_cpu: usize,
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(kind: &str, o: &Opts) -> Option<Server> {
        let mut cmd = if kind == "twisted" {
            let py = o.python.as_ref()?;
            let mut c = Command::new(py);
            c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("py/twisted_echo.py"));
            c
        } else {
            braid_bench::server_command("bench-server", kind)
        };
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = braid_bench::pinned(cmd, o.server_cpu).spawn().ok()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .ok()?;
        let port = line.trim().strip_prefix("listening ")?.parse().ok()?;
        Some(Server { child, port })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds used so far (all threads).
    fn cpu(&self) -> f64 {
        braid_bench::cpu_seconds(self.pid())
    }

    fn rss_kib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Context switches, voluntary and not, summed over the threads.
    fn switches(&self) -> f64 {
        let mut n = 0.0;
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) {
            for t in tasks.flatten() {
                let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
                for l in s.lines() {
                    if let Some(v) = l
                        .strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                    {
                        n += v.trim().parse::<f64>().unwrap_or(0.0);
                    }
                }
            }
        }
        n
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs loadgen to completion and parses its `result k=v ...` line.
fn loadgen(args: &[String], o: &Opts) -> Option<BTreeMap<String, f64>> {
    let mut cmd = Command::new(braid_bench::sibling("loadgen"));
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let out = braid_bench::pinned(cmd, o.client_cpu).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("result "))?;
    Some(
        line.split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect(),
    )
}

/// Every measurement: (workload, metric, kind) -> one value per round.
#[derive(Default)]
struct Results(BTreeMap<(String, String, String), Vec<f64>>);

impl Results {
    fn add(&mut self, workload: &str, metric: &str, kind: &str, v: f64) {
        self.0
            .entry((workload.into(), metric.into(), kind.into()))
            .or_default()
            .push(v);
    }
    /// A run's throughput, both sides' CPU (fractions of a core), and the
    /// server's CPU per unit of throughput.
    fn add_run(&mut self, workload: &str, kind: &str, rate: f64, server_cpu: f64, client_cpu: f64) {
        self.add(workload, "rate", kind, rate);
        self.add(workload, "server_cpu", kind, server_cpu * 100.0);
        self.add(workload, "client_cpu", kind, client_cpu * 100.0);
        if rate > 0.0 {
            self.add(workload, "cost", kind, server_cpu * 1e6 / rate);
        }
    }
    fn median(&self, workload: &str, metric: &str, kind: &str) -> Option<f64> {
        let mut v = self
            .0
            .get(&(workload.into(), metric.into(), kind.into()))?
            .clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = v.len();
        Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        })
    }
    /// (max - min) / median, in percent.
    fn spread(&self, workload: &str, metric: &str, kind: &str) -> Option<f64> {
        let v = self.0.get(&(workload.into(), metric.into(), kind.into()))?;
        let m = self.median(workload, metric, kind)?;
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        (m != 0.0).then(|| (hi - lo) / m * 100.0)
    }
}

/// Starts `kind`'s server, runs loadgen `mode` against it with `extra`
/// arguments, and returns loadgen's figures with the server's CPU use (a
/// fraction of one core) over the run.
fn measure(
    kind: &str,
    mode: &str,
    extra: &[String],
    o: &Opts,
) -> Option<(BTreeMap<String, f64>, f64)> {
    let server = Server::start(kind, o)?;
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    let mut args = vec![
        mode.to_owned(),
        "--addr".into(),
        format!("127.0.0.1:{}", server.port),
    ];
    args.extend_from_slice(extra);
    let r = loadgen(&args, o);
    let server_cpu = (server.cpu() - cpu0) / t0.elapsed().as_secs_f64();
    if r.is_none() {
        eprintln!("  {mode} {kind}: loadgen failed");
    }
    Some((r?, server_cpu))
}

fn run_echo(o: &Opts, res: &mut Results, kinds: &[String]) {
    for (name, conns) in ECHO {
        for kind in kinds {
            let extra = [
                "--conns".into(),
                conns.to_string(),
                "--secs".into(),
                o.secs.to_string(),
                "--warmup".into(),
                o.warmup.to_string(),
            ];
            let Some((r, server_cpu)) = measure(kind, "echo", &extra, o) else {
                continue;
            };
            let rate = r["msgs_per_s"];
            eprintln!(
                "  {name:<10} {kind:<14} {rate:>10.0} msg/s  p50 {:>5} us  p99 {:>6} us  server cpu {:>3.0}%  client cpu {:>3.0}%",
                r["p50_us"],
                r["p99_us"],
                server_cpu * 100.0,
                r["cpu"] * 100.0
            );
            res.add(name, "p50", kind, r["p50_us"]);
            res.add(name, "p99", kind, r["p99_us"]);
            res.add_run(name, kind, rate, server_cpu, r["cpu"]);
        }
    }
}

fn run_bulk(o: &Opts, res: &mut Results, kinds: &[String]) {
    for kind in kinds {
        let extra = ["--bytes".into(), o.bulk_bytes.to_string()];
        let Some((r, server_cpu)) = measure(kind, "bulk", &extra, o) else {
            continue;
        };
        let rate = r["mb_per_s"];
        eprintln!(
            "  bulk       {kind:<14} {rate:>8.0} MB/s  server cpu {:>3.0}%  client cpu {:>3.0}%",
            server_cpu * 100.0,
            r["cpu"] * 100.0
        );
        res.add_run("bulk", kind, rate, server_cpu, r["cpu"]);
    }
    // The same stream through TLS, for the servers that have a TLS kind.
    for kind in kinds.iter().filter(|k| TLS_KINDS.contains(&k.as_str())) {
        let extra = ["--bytes".into(), o.bulk_bytes.to_string(), "--tls".into()];
        let Some((r, server_cpu)) = measure(&format!("{kind}-tls"), "bulk", &extra, o) else {
            continue;
        };
        let rate = r["mb_per_s"];
        eprintln!(
            "  bulk-tls   {kind:<14} {rate:>8.0} MB/s  server cpu {:>3.0}%  client cpu {:>3.0}%",
            server_cpu * 100.0,
            r["cpu"] * 100.0
        );
        res.add_run("bulk-tls", kind, rate, server_cpu, r["cpu"]);
    }
}

/// Servers with a `-tls` kind in bench-server.
const TLS_KINDS: [&str; 2] = ["braid", "tokio"];

struct Holder {
    child: Child,
    _stdin: ChildStdin,
}

fn run_idle(o: &Opts, res: &mut Results, kinds: &[String]) {
    for kind in kinds {
        let Some(server) = Server::start(kind, o) else {
            continue;
        };
        std::thread::sleep(Duration::from_millis(300));
        let base = server.rss_kib();
        let mut cmd = Command::new(braid_bench::sibling("loadgen"));
        cmd.args([
            "idle",
            "--addr",
            &format!("127.0.0.1:{}", server.port),
            "--conns",
            &o.idle_conns.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        let Ok(mut child) = braid_bench::pinned(cmd, o.client_cpu).spawn() else {
            continue;
        };
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let holder = Holder {
            child,
            _stdin: stdin,
        };
        let Some(n) = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|n| n.parse::<f64>().ok())
        else {
            eprintln!("  idle {kind}: the connections did not open");
            continue;
        };
        // Let the server settle (accepts done, buffers trimmed).
        std::thread::sleep(Duration::from_millis(500));
        let per_conn = (server.rss_kib() - base) * 1024.0 / n;
        let s0 = server.switches();
        std::thread::sleep(Duration::from_secs_f64(o.idle_secs));
        let switches = server.switches() - s0;
        eprintln!(
            "  idle       {kind:<14} {per_conn:>6.0} B/connection  {switches:>4.0} context switches in {:.0} s with {n} connections",
            o.idle_secs
        );
        res.add("idle", "bytes_per_conn", kind, per_conn);
        res.add("idle", "switches", kind, switches);
        let Holder { mut child, _stdin } = holder;
        drop(_stdin);
        let _ = child.wait();
    }
}

fn cell(res: &Results, w: &str, m: &str, k: &str, digits: usize) -> String {
    match (res.median(w, m, k), res.spread(w, m, k)) {
        (Some(v), Some(s)) if res.0[&(w.into(), m.into(), k.into())].len() > 1 => {
            format!("{v:.digits$} ±{s:.0}%")
        }
        (Some(v), _) => format!("{v:.digits$}"),
        _ => "n/a".into(),
    }
}

fn ratio(res: &Results, w: &str, m: &str, a: &str, b: &str) -> Option<f64> {
    Some(res.median(w, m, a)? / res.median(w, m, b)?)
}

/// The ratio of two (workload, kind) throughput medians.
fn ratio2(res: &Results, a: (&str, &str), b: (&str, &str)) -> Option<f64> {
    Some(res.median(a.0, "rate", a.1)? / res.median(b.0, "rate", b.1)?)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|s| s.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, Linux {}, {rustc}; run {date}",
        kernel.trim()
    )
}

fn report(o: &Opts, res: &Results, kinds: &[String]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# braid benchmarks\n");
    let _ = writeln!(
        md,
        "Machine: {}. Each server is a process pinned to core {}; the load generator (`loadgen`, single-threaded on `polling`) is pinned to core {}. {} round(s), the kinds interleaved in a different order each round; cells are medians over rounds with the spread (max - min) / median. Echo: {}-byte messages, one outstanding per connection, {} s measured after {} s of warm-up. Bulk: {} MiB streamed through one connection and echoed back. Idle: {} connections held open; resident memory above the server's own baseline, and its context switches over {} s. Reproduce: `./scripts/bench.sh` (`--quick` for a smoke run).\n",
        machine(),
        o.server_cpu,
        o.client_cpu,
        o.rounds,
        64,
        o.secs,
        o.warmup,
        o.bulk_bytes >> 20,
        o.idle_conns,
        o.idle_secs
    );
    let header = |md: &mut String, first: &str| {
        let _ = write!(md, "| {first} |");
        for k in kinds {
            let _ = write!(md, " {k} |");
        }
        let _ = write!(md, "\n|---|");
        for _ in kinds {
            let _ = write!(md, "---:|");
        }
        md.push('\n');
    };
    let _ = writeln!(md, "## Throughput (higher is better)\n");
    header(&mut md, "workload");
    for (w, unit) in [
        ("echo-1", "msg/s"),
        ("echo-100", "msg/s"),
        ("echo-1000", "msg/s"),
        ("bulk", "MB/s"),
    ] {
        let _ = write!(md, "| {w} ({unit}) |");
        for k in kinds {
            let _ = write!(md, " {} |", cell(res, w, "rate", k, 0));
        }
        md.push('\n');
    }
    for base in ["limit", "tokio"] {
        let _ = writeln!(md, "\n## Ratio to {base} (throughput)\n");
        header(&mut md, "workload");
        for w in ["echo-1", "echo-100", "echo-1000", "bulk"] {
            let _ = write!(md, "| {w} |");
            for k in kinds {
                let r = ratio(res, w, "rate", k, base).map_or("n/a".into(), |r| format!("{r:.2}x"));
                let _ = write!(md, " {r} |");
            }
            md.push('\n');
        }
    }
    let _ = writeln!(md, "\n## Latency (microseconds, p50 / p99)\n");
    header(&mut md, "workload");
    for (w, _) in ECHO {
        let _ = write!(md, "| {w} |");
        for k in kinds {
            let v = match (res.median(w, "p50", k), res.median(w, "p99", k)) {
                (Some(a), Some(b)) => format!("{a:.0} / {b:.0}"),
                _ => "n/a".into(),
            };
            let _ = write!(md, " {v} |");
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\n## CPU use during the run (server / load generator, % of one core)\n"
    );
    header(&mut md, "workload");
    for w in ["echo-1", "echo-100", "echo-1000", "bulk"] {
        let _ = write!(md, "| {w} |");
        for k in kinds {
            let v = match (
                res.median(w, "server_cpu", k),
                res.median(w, "client_cpu", k),
            ) {
                (Some(a), Some(b)) => format!("{a:.0} / {b:.0}"),
                _ => "n/a".into(),
            };
            let _ = write!(md, " {v} |");
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\n## Server CPU per unit of work (lower is better)\n\nOn two cores the load generator costs about what the server costs per message, so when both run near 100% the throughput ratios above are compressed towards 1. The server's CPU time per message (per MB for bulk) does not depend on how fast the client is: it is the fairer comparison of the servers' own cost.\n"
    );
    header(&mut md, "workload");
    for (w, unit) in [
        ("echo-1", "us/msg"),
        ("echo-100", "us/msg"),
        ("echo-1000", "us/msg"),
        ("bulk", "us/MB"),
    ] {
        let _ = write!(md, "| {w} ({unit}) |");
        for k in kinds {
            let _ = write!(md, " {} |", cell(res, w, "cost", k, 2));
        }
        md.push('\n');
    }
    let _ = writeln!(md, "\nThe same as efficiency relative to the limit loop (limit's cost / this cost; higher is better):\n");
    header(&mut md, "workload");
    for w in ["echo-1", "echo-100", "echo-1000", "bulk"] {
        let _ = write!(md, "| {w} |");
        for k in kinds {
            let r = ratio(res, w, "cost", "limit", k).map_or("n/a".into(), |r| format!("{r:.2}x"));
            let _ = write!(md, " {r} |");
        }
        md.push('\n');
    }
    let _ = writeln!(md, "\n## Idle\n");
    header(&mut md, "measure");
    let _ = write!(md, "| bytes per idle connection |");
    for k in kinds {
        let _ = write!(md, " {} |", cell(res, "idle", "bytes_per_conn", k, 0));
    }
    let _ = write!(md, "\n| context switches in {} s |", o.idle_secs);
    for k in kinds {
        let _ = write!(md, " {} |", cell(res, "idle", "switches", k, 0));
    }
    md.push('\n');

    let tls_kinds: Vec<&str> = TLS_KINDS
        .into_iter()
        .filter(|k| kinds.iter().any(|x| x == k))
        .collect();
    if !tls_kinds.is_empty() {
        let _ = writeln!(
            md,
            "\n## TLS bulk\n\nThe bulk stream through TLS 1.3 (rustls with ring on both sides; braid's TLS layer, and tokio-rustls under tokio), next to the same stream over plain TCP. The load generator does its own TLS, so it costs about as much as the server.\n\n| | TCP MB/s | TLS MB/s | TLS / TCP | server us per MB (TLS) |\n|---|---|---|---|---|"
        );
        for k in &tls_kinds {
            let r = ratio2(res, ("bulk-tls", k), ("bulk", k));
            let _ = writeln!(
                md,
                "| {k} | {} | {} | {} | {} |",
                cell(res, "bulk", "rate", k, 0),
                cell(res, "bulk-tls", "rate", k, 0),
                r.map_or("n/a".into(), |r| format!("{r:.2}")),
                cell(res, "bulk-tls", "cost", k, 0),
            );
        }
        if let Some(r) = ratio(res, "bulk-tls", "rate", "braid", "tokio") {
            let _ = writeln!(md, "\nbraid / tokio through TLS: {r:.2}");
        }
    }

    let _ = writeln!(md, "\n## Targets\n");
    let target = |md: &mut String, what: String, got: Option<f64>, want: f64, higher: bool| {
        let verdict = match got {
            Some(g) if (higher && g >= want) || (!higher && g <= want) => "met",
            Some(_) => "**missed**",
            None => "not measured",
        };
        let g = got.map_or("n/a".into(), |g| format!("{g:.2}"));
        let _ = writeln!(
            md,
            "- {what}: {g} (want {} {want}): {verdict}",
            if higher { ">=" } else { "<=" }
        );
    };
    for w in ["echo-100", "echo-1000"] {
        target(
            &mut md,
            format!("{w}: braid / tokio"),
            ratio(res, w, "rate", "braid", "tokio"),
            1.0,
            true,
        );
        target(
            &mut md,
            format!("{w}: braid / limit"),
            ratio(res, w, "rate", "braid", "limit"),
            0.95,
            true,
        );
        target(
            &mut md,
            format!("{w}: braid-glib / braid"),
            ratio(res, w, "rate", "braid-glib", "braid"),
            0.95,
            true,
        );
    }
    target(
        &mut md,
        "bulk: braid / limit".into(),
        ratio(res, "bulk", "rate", "braid", "limit"),
        0.95,
        true,
    );
    target(
        &mut md,
        "idle: braid bytes per connection".into(),
        res.median("idle", "bytes_per_conn", "braid"),
        1024.0,
        false,
    );
    target(
        &mut md,
        format!("idle: braid context switches in {} s", o.idle_secs),
        res.median("idle", "switches", "braid"),
        0.0,
        false,
    );
    if o.quick {
        let _ = writeln!(
            md,
            "\n(Quick mode: too short to mean anything; it proves the harness runs.)"
        );
    }
    md
}

/// A grouped bar chart of throughput ratios to the limit loop.
fn svg(res: &Results, kinds: &[String]) -> String {
    let workloads = ["echo-1", "echo-100", "echo-1000", "bulk"];
    let colours = [
        "#1565c0", "#42a5f5", "#90caf9", "#2e7d32", "#ef6c00", "#616161", "#8e24aa",
    ];
    let (w, h, left, top, bottom) = (820.0, 360.0, 50.0, 30.0, 60.0);
    let plot_h = h - top - bottom;
    let max = kinds
        .iter()
        .flat_map(|k| {
            workloads
                .iter()
                .filter_map(move |wl| ratio(res, wl, "rate", k, "limit"))
        })
        .fold(1.2f64, f64::max)
        .ceil();
    let y = |v: f64| top + plot_h * (1.0 - v / max);
    let group = (w - left - 20.0) / workloads.len() as f64;
    let bar = (group - 20.0) / kinds.len() as f64;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="18" font-size="14">Throughput relative to the limit loop (1.0 = hand-written loop on polling)</text>
"##
    );
    let mut tick = 0.0;
    while tick <= max + 1e-9 {
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy}" y2="{yy}" stroke="{}" stroke-dasharray="{}"/><text x="{}" y="{}" text-anchor="end">{tick:.1}</text>"##,
            w - 20.0,
            if (tick - 1.0).abs() < 1e-9 {
                "#000"
            } else {
                "#ddd"
            },
            if (tick - 1.0).abs() < 1e-9 {
                "4 3"
            } else {
                "none"
            },
            left - 6.0,
            y(tick) + 4.0,
            yy = y(tick)
        );
        tick += 0.5;
    }
    for (gi, wl) in workloads.iter().enumerate() {
        let gx = left + 10.0 + gi as f64 * group;
        for (ki, k) in kinds.iter().enumerate() {
            if let Some(r) = ratio(res, wl, "rate", k, "limit") {
                let x = gx + ki as f64 * bar;
                let _ = writeln!(
                    s,
                    r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{k} {wl}: {r:.2}x</title></rect>"##,
                    y(r),
                    bar - 2.0,
                    y(0.0) - y(r),
                    colours[ki % colours.len()]
                );
            }
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{wl}</text>"##,
            gx + group / 2.0 - 10.0,
            h - bottom + 18.0
        );
    }
    for (ki, k) in kinds.iter().enumerate() {
        let x = left + ki as f64 * 105.0;
        let _ = writeln!(
            s,
            r##"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{k}</text>"##,
            h - 22.0,
            colours[ki % colours.len()],
            x + 16.0,
            h - 12.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let default_kinds = "braid,braid-glib,braid-calloop,tokio,smol,limit,twisted";
    let python: Option<String> = arg(&args, "--python", String::new())
        .parse::<String>()
        .ok()
        .filter(|p| !p.is_empty());
    let mut kinds: Vec<String> = arg(&args, "--kinds", default_kinds.to_string())
        .split(',')
        .map(str::to_owned)
        .collect();
    if python.is_none() {
        kinds.retain(|k| k != "twisted");
    }
    let kinds = braid_bench::with_baseline(kinds);
    let o = Opts {
        quick,
        rounds: arg(&args, "--rounds", if quick { 1 } else { 3 }),
        secs: arg(&args, "--secs", if quick { 0.3 } else { 3.0 }),
        warmup: if quick { 0.1 } else { 0.5 },
        bulk_bytes: arg(&args, "--bulk-mib", if quick { 16u64 } else { 1024 }) << 20,
        idle_conns: arg(&args, "--idle-conns", if quick { 200 } else { 10_000 }),
        idle_secs: arg(&args, "--idle-secs", if quick { 1.0 } else { 10.0 }),
        kinds: kinds.clone(),
        out: PathBuf::from(arg(
            &args,
            "--out",
            if quick {
                "target/bench/quick.md".to_string()
            } else {
                "BENCHMARKS.md".to_string()
            },
        )),
        python,
        server_cpu: if cpus > 1 { 1 } else { 0 },
        client_cpu: 0,
    };
    let limit = braid_bench::raise_fd_limit();
    if (limit as usize) < o.idle_conns + 500 {
        eprintln!(
            "warning: the fd limit ({limit}) is below {} connections",
            o.idle_conns
        );
    }
    eprintln!("kinds: {}", o.kinds.join(", "));
    let mut res = Results::default();
    for round in 0..o.rounds {
        // Interleave: each round starts with a different kind.
        let mut order = o.kinds.clone();
        let n = order.len().max(1);
        order.rotate_left(round % n);
        eprintln!("round {} of {} ({})", round + 1, o.rounds, order.join(", "));
        run_echo(&o, &mut res, &order);
        run_bulk(&o, &mut res, &order);
        run_idle(&o, &mut res, &order);
    }
    let md = report(&o, &res, &o.kinds);
    let svg_path = o.out.with_extension("svg");
    let chart_name = svg_path.file_name().unwrap().to_string_lossy().into_owned();
    let md = format!("{md}\n![Throughput relative to the limit loop]({chart_name})\n");
    if let Some(dir) = o.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&o.out, &md).unwrap();
    std::fs::write(&svg_path, svg(&res, &o.kinds)).unwrap();
    let _ = std::io::stdout().write_all(md.as_bytes());
    eprintln!("wrote {} and {}", o.out.display(), svg_path.display());
}
