#![cfg(unix)]
//! paramiko (PyPI, in target/pyssh; scripts/test.sh installs it and sets
//! BRAID_PARAMIKO_PYTHON) against braid's SSH server: another client that
//! no one here wrote, with its own key exchange and cipher choices
//! (aes256-ctr with hmac-sha2-256: paramiko has no chacha20-poly1305).

mod common;

use common::Fixture;

#[test]
fn paramiko_logs_in_runs_commands_and_uses_sftp() {
    let python = std::env::var("BRAID_PARAMIKO_PYTHON").unwrap_or_else(|_| {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyssh/bin/python");
        assert!(
            std::path::Path::new(p).exists(),
            "paramiko is needed: scripts/test.sh installs it into target/pyssh"
        );
        p.to_owned()
    });
    let f = Fixture::new("paramiko");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/paramiko_client.py");
    let mut c = std::process::Command::new(python);
    c.arg(script)
        .arg(f.addr.port().to_string())
        .arg(f.dir.path("known_hosts"))
        .arg(f.dir.path("id"));
    let o = f.run(c, b"");
    assert_eq!(o.code(), Some(0), "{}", o.err());
    let lines: Vec<&str> = o
        .stdout
        .split(|b| *b == b'\n')
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    assert_eq!(lines[0], "password hi err 4", "{}", o.err());
    assert_eq!(lines[1], "stdin True 0");
    assert_eq!(lines[2], "sftp True 1048576 ['p.bin']");
    assert_eq!(lines[3], "wrong refused");
}
