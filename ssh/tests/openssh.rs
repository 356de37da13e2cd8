#![cfg(unix)]
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

/// A braid protocol of the application's own, on the channel as on any
/// transport: a line framing receiver that answers each line.
mod own_protocol {
    use braid::framing::{LineContext, LineHandler, LineReceiver};
    use braid::{Protocol, Transport};
    use braid_ssh::{Avatar, ExitReport, SessionChannel};

    pub struct Shouter;

    struct Lines(usize);
    impl LineHandler for Lines {
        fn line_received(&mut self, cx: &mut LineContext<'_>, line: &[u8]) {
            self.0 += 1;
            cx.send_line(&line.to_ascii_uppercase());
        }
    }

    struct Session(LineReceiver<Lines>);
    impl Protocol for Session {
        fn connection_made(&mut self, t: &Transport) {
            self.0.connection_made(t);
        }
        fn data_received(&mut self, t: &Transport, data: &[u8]) {
            self.0.data_received(t, data);
        }
        fn read_eof(&mut self, t: &Transport) {
            // The client's stdin ended: exit with the number of lines.
            let n = self.0.handler().0 as u32;
            if let Some(ch) = t.layer::<SessionChannel>() {
                ch.set_exit(ExitReport::Status(n));
            }
            t.lose_connection();
        }
    }

    impl Avatar for Shouter {
        fn exec(&self, _: &SessionChannel, command: &str) -> Option<Box<dyn Protocol>> {
            (command == "shout")
                .then(|| Box::new(Session(LineReceiver::new(Lines(0)))) as Box<dyn Protocol>)
        }
        fn shell(&self, _: &SessionChannel) -> Option<Box<dyn Protocol>> {
            None
        }
    }
}

#[test]
fn any_braid_protocol_runs_on_a_channel() {
    use braid_cred::Portal;
    use braid_ssh::{AuthorizedKeysChecker, HostKey, SshServer};
    let f = Fixture::new("own");
    // A second server on the same reactor whose avatar is the app's own.
    let portal = Portal::new(&f.reactor, |_: &str, _: ()| (own_protocol::Shouter, None)).checker(
        AuthorizedKeysChecker::file(f.dir.path("authorized_keys"), vec!["alice".into()]),
    );
    let key = HostKey::load_or_generate(f.dir.path("host_key")).unwrap();
    let port = f
        .reactor
        .listen_tcp(
            "127.0.0.1:0".parse().unwrap(),
            SshServer::new(&f.reactor, vec![key], portal),
        )
        .unwrap();
    let p = port.local_addr().port().to_string();
    let known = format!(
        "[127.0.0.1]:{p} {}\n",
        HostKey::load_or_generate(f.dir.path("host_key"))
            .unwrap()
            .public_openssh()
    );
    std::fs::write(f.dir.path("known_hosts"), known).unwrap();
    let mut c = std::process::Command::new("ssh");
    c.arg("-F").arg("/dev/null");
    f.common(&mut c);
    c.args(["-p", &p, "-o", "BatchMode=yes", "alice@127.0.0.1", "shout"]);
    let o = f.run(c, b"one\r\ntwo\r\nthree\r\n");
    assert_eq!(o.out(), "ONE\r\nTWO\r\nTHREE\r\n");
    assert_eq!(o.code(), Some(3), "{o:?}");
    // Anything else is refused: ssh reports the failed exec.
    let mut c = std::process::Command::new("ssh");
    c.arg("-F").arg("/dev/null");
    f.common(&mut c);
    c.args(["-p", &p, "-o", "BatchMode=yes", "alice@127.0.0.1", "ls"]);
    let f2 = f.run(c, b"");
    assert_eq!(f2.code(), Some(255), "{f2:?}");
}

#[test]
fn keys_are_exchanged_again_after_the_byte_limits_both_sides() {
    let f = Fixture::new("rekey");
    let mut config = braid_ssh::SshServerConfig::default();
    config.rekey_after_bytes = 2 << 20;
    let port = f.server_with(config).to_string();
    let data = vec![0x5a; 12 << 20];
    // The client rekeys every MiB of its own (RekeyLimit), the server
    // every 2 MiB of traffic: the transfer survives both.
    let mut c = std::process::Command::new("ssh");
    c.arg("-F").arg("/dev/null");
    f.common(&mut c);
    c.args([
        "-p",
        &port,
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=DEBUG1",
        "-o",
        "RekeyLimit=1M",
    ]);
    c.args(["alice@127.0.0.1", "wc -c"]);
    let o = f.run(c, &data);
    assert_eq!(o.code(), Some(0), "{}", o.err());
    assert_eq!(o.out().trim(), (12 << 20).to_string());
    let kexinits = o.err().matches("SSH2_MSG_KEXINIT received").count();
    assert!(kexinits >= 6, "{kexinits} key exchanges");
    // The server's own: with the client's limit off.
    let mut c = std::process::Command::new("ssh");
    c.arg("-F").arg("/dev/null");
    f.common(&mut c);
    c.args(["-p", &port, "-o", "BatchMode=yes", "-o", "LogLevel=DEBUG1"]);
    c.args(["alice@127.0.0.1", "wc -c"]);
    let o = f.run(c, &data);
    assert_eq!(o.code(), Some(0), "{}", o.err());
    assert_eq!(o.out().trim(), (12 << 20).to_string());
    let kexinits = o.err().matches("SSH2_MSG_KEXINIT received").count();
    assert!(
        kexinits >= 4,
        "the server asked for {} key exchanges",
        kexinits - 1
    );
}
