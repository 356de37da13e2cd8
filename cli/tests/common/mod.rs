//! Helpers shared by the CLI's tests.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;

/// Reads lines until one contains `needle`; returns all read. Panics if the
/// connection closes first.
#[allow(dead_code)] // each test binary compiles this file; not all use it
pub fn read_until(r: &mut BufReader<TcpStream>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let mut l = String::new();
        assert!(
            r.read_line(&mut l).unwrap() > 0,
            "closed before {needle:?}: {seen:?}"
        );
        let done = l.contains(needle);
        seen.push(l.trim_end().to_owned());
        if done {
            return seen;
        }
    }
}

/// A child process, killed (and reaped) when dropped.
#[allow(dead_code)] // each test binary compiles this file; not all use it
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `braid ARGS` (stderr discarded) and returns it with the first
/// line it printed (where it listens), trimmed.
#[allow(dead_code)]
pub fn braid(args: &[&str]) -> (Running, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_braid"));
    cmd.args(args);
    start(&mut cmd)
}

/// Starts `cmd` (a `braid` command made by the test: as another user,
/// say) with stdout read and stderr discarded; returns it with the first
/// line it printed, trimmed.
#[allow(dead_code)]
pub fn start(cmd: &mut std::process::Command) -> (Running, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    (Running(child), first.trim().to_owned())
}
