//! Perspective Broker against real Twisted (26.10 from PyPI, in the venv
//! `scripts/test.sh` makes): Twisted's client calls braid's `pb_server`
//! example, and braid's `pb_client` example calls a Twisted server, each
//! exercising echo of every basic type, keyword arguments, an error, a
//! callback object, good and bad logins, and anonymous login.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn python() -> PathBuf {
    let p = std::env::var_os("BRAID_TWISTED_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pytwisted/bin/python")
        });
    let ok = Command::new(&p)
        .args(["-c", "import twisted.spread.pb"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "these tests need Python with Twisted: run scripts/test.sh (it makes target/pytwisted), or set BRAID_TWISTED_PYTHON"
    );
    p
}

/// An example binary built by `cargo test` next to this test.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: `cargo test --all-features` builds it (or cargo build --features pb --examples)",
        p.display()
    );
    p
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}

/// A server process, killed and reaped when dropped (also when a test
/// fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a server process and reads its "listening PORT" line.
fn start(mut cmd: Command) -> (Server, u16) {
    let mut child = Server(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the server did not start");
        let line = lines.next().expect("server output").unwrap();
        if let Some(p) = line.strip_prefix("listening ") {
            let port = p.trim().parse().unwrap();
            // Keep draining its output so that it never blocks.
            std::thread::spawn(move || {
                for l in lines.map_while(Result::ok) {
                    println!("server: {l}");
                }
            });
            return (child, port);
        }
    }
}

fn run_client(mut cmd: Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn twisted_client_calls_the_braid_example_server() {
    let py = python();
    let mut server = Command::new(example("pb_server"));
    server.args(["--port", "0", "--user", "alice:secret"]);
    let (child, port) = start(server);
    let mut client = Command::new(py);
    client
        .arg(script("pb_client.py"))
        .arg(port.to_string())
        .args(["alice", "secret"]);
    let (ok, text) = run_client(client);
    drop(child);
    println!("{text}");
    assert!(ok, "the Twisted client's checks failed:\n{text}");
    for check in [
        "ok echo 2**70",
        "ok echo shared reference",
        "ok echo vocabulary word",
        "ok add(2, b=3)",
        "ok fail raises ValueError",
        "ok subscribe: the server called notify",
        "ok login",
        "ok bad login refused",
        "ok anonymous login",
    ] {
        assert!(text.contains(check), "missing {check:?}:\n{text}");
    }
}

#[test]
fn braid_client_example_calls_a_twisted_server() {
    let py = python();
    let mut server = Command::new(py);
    server.arg(script("pb_server.py")).args(["alice", "secret"]);
    let (child, port) = start(server);
    let mut client = Command::new(example("pb_client"));
    client.args(["--port", &port.to_string(), "--user", "alice:secret"]);
    let (ok, text) = run_client(client);
    drop(child);
    println!("{text}");
    assert!(ok, "the braid client's checks failed:\n{text}");
    for check in [
        "ok echo shared",
        "ok add with a keyword",
        "ok fail raises ValueError",
        "ok subscribe calls back",
        "ok login",
        "ok bad login refused",
        "ok anonymous login",
        "21 of 21 checks passed",
    ] {
        assert!(text.contains(check), "missing {check:?}:\n{text}");
    }
}

/// The braid example server's root behaves as the same object written in
/// Python (`pb_server.py`), side by side: `add` is Python's `+` on every
/// kind of value PB carries (integers of any size, bools, floats, str,
/// bytes, lists, tuples), with Python's own TypeError where `+` refuses,
/// and `subscribe` answers alike.
#[test]
fn the_braid_example_adds_as_python_does() {
    let py = python();
    let mut braid = Command::new(example("pb_server"));
    braid.args(["--port", "0", "--user", "alice:secret"]);
    let (braid_child, braid_port) = start(braid);
    let mut twisted = Command::new(&py);
    twisted
        .arg(script("pb_server.py"))
        .args(["alice", "secret"]);
    let (twisted_child, twisted_port) = start(twisted);
    let mut client = Command::new(py);
    client
        .arg(script("pb_add_compare.py"))
        .args([braid_port.to_string(), twisted_port.to_string()]);
    let (ok, text) = run_client(client);
    drop((braid_child, twisted_child));
    println!("{text}");
    assert!(ok, "braid and Python answered differently:\n{text}");
    assert!(text.contains("35 cases, 0 different"), "{text}");
}
