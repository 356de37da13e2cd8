//! OpenSSH's `ssh` (Debian's openssh-client) against braid's SSH server
//! over loopback: logins by key and by password, commands with their
//! exit codes and stderr apart, stdin to the command, a wrong host key
//! refused by the client.

mod common;

use common::Fixture;

#[test]
fn exec_by_key_reports_output_stderr_and_exit_code() {
    let f = Fixture::new("exec");
    let o = f.run(
        f.ssh(&[
            "-o",
            "BatchMode=yes",
            "alice@127.0.0.1",
            "echo out; echo err >&2; exit 7",
        ]),
        b"",
    );
    assert_eq!(o.code(), Some(7), "{o:?}");
    assert_eq!(o.out(), "out\n");
    assert_eq!(o.err(), "err\n");
}

#[test]
fn password_login_through_the_portal() {
    let f = Fixture::new("password");
    let o = f.run(
        f.ssh_password(&["alice@127.0.0.1", "echo hello $USER"]),
        b"",
    );
    assert_eq!(o.code(), Some(0), "{o:?}");
    assert_eq!(o.out(), "hello alice\n");
}

#[test]
fn a_wrong_password_and_an_unknown_key_are_refused() {
    let f = Fixture::new("refused");
    std::fs::write(f.dir.path("askpass"), "#!/bin/sh\necho guess\n").unwrap();
    let o = f.run(f.ssh_password(&["alice@127.0.0.1", "true"]), b"");
    assert_eq!(o.code(), Some(255), "{o:?}");
    assert!(o.err().contains("Permission denied"), "{}", o.err());
    // A key that is not in authorized_keys.
    let f = Fixture::new("refused-key");
    std::fs::write(f.dir.path("authorized_keys"), "").unwrap();
    let o = f.run(
        f.ssh(&["-o", "BatchMode=yes", "alice@127.0.0.1", "true"]),
        b"",
    );
    assert_eq!(o.code(), Some(255), "{o:?}");
    assert!(
        o.err().contains("Permission denied (password,publickey)"),
        "{}",
        o.err()
    );
    // The right key for another user.
    let f = Fixture::new("refused-user");
    let o = f.run(
        f.ssh(&["-o", "BatchMode=yes", "mallory@127.0.0.1", "true"]),
        b"",
    );
    assert_eq!(o.code(), Some(255), "{o:?}");
}

#[test]
fn a_changed_host_key_is_refused_by_the_client() {
    let f = Fixture::new("hostkey");
    let other = braid_ssh::HostKey::generate().unwrap();
    std::fs::write(
        f.dir.path("known_hosts"),
        format!("[127.0.0.1]:{} {}\n", f.addr.port(), other.public_openssh()),
    )
    .unwrap();
    let o = f.run(
        f.ssh(&["-o", "BatchMode=yes", "alice@127.0.0.1", "true"]),
        b"",
    );
    assert_eq!(o.code(), Some(255), "{o:?}");
    assert!(
        o.err().contains("HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        o.err()
    );
}

#[test]
fn twenty_megabytes_through_a_command_and_back() {
    let f = Fixture::new("bulk");
    // 20 MB of varied bytes: stdin to the command, its output back.
    let mut data = Vec::with_capacity(20 << 20);
    let mut x: u32 = 1;
    while data.len() < 20 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    let o = f.run(
        f.ssh(&[
            "-o",
            "BatchMode=yes",
            "alice@127.0.0.1",
            "sha256sum; cat /dev/zero | head -c 20000000 | sha256sum",
        ]),
        &data,
    );
    assert_eq!(o.code(), Some(0), "{o:?}");
    let sha256 = |input: &[u8]| {
        let mut c = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(input).unwrap();
        String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(o.out(), sha256(&data) + &sha256(&vec![0; 20_000_000]));
}

#[test]
fn output_of_twenty_megabytes_arrives_whole() {
    let f = Fixture::new("download");
    let o = f.run(
        f.ssh(&[
            "-o",
            "BatchMode=yes",
            "alice@127.0.0.1",
            "head -c 20971520 /dev/zero | tr '\\0' x",
        ]),
        b"",
    );
    assert_eq!(o.code(), Some(0), "{:?}", o.err());
    assert_eq!(o.stdout.len(), 20 << 20);
    assert!(o.stdout.iter().all(|b| *b == b'x'));
}

#[test]
fn a_command_killed_by_a_signal_reports_it() {
    let f = Fixture::new("signal");
    let o = f.run(
        f.ssh(&["-o", "BatchMode=yes", "alice@127.0.0.1", "kill -TERM $$"]),
        b"",
    );
    // OpenSSH's client exits 255 when the remote command died of a signal.
    assert_eq!(o.code(), Some(255), "{o:?}");
}

#[test]
fn a_shell_on_a_real_terminal() {
    let f = Fixture::new("pty");
    // -tt: a terminal even though our stdin is a pipe. The shell's tty
    // reports a terminal and the size asked for; `exit 3` ends it.
    let o = f.run(
        f.ssh(&["-tt", "-o", "BatchMode=yes", "alice@127.0.0.1"]),
        b"stty size; tty; echo TERM=$TERM; exit 3\n",
    );
    assert_eq!(o.code(), Some(3), "{o:?}");
    let out = o.out();
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("TERM="), "{out}");
}
