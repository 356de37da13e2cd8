//! Helpers shared by the CLI's tests.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;

/// Reads lines until one contains `needle`; returns all read. Panics if the
/// connection closes first.
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
