#![cfg(unix)]
//! braid's SSH client against braid's SSH server, both on one reactor
//! over loopback: commands with stdout, stderr and exit status, host key
//! checks (known, changed, unknown, accept-new), password and key
//! logins, a terminal, local forwarding.

mod common;

use braid::{Protocol, Transport};
use braid_ssh::{
    ClientKey, ExitReport, HostKeyPolicy, PtyRequest, SessionChannel, SessionRequest, SshClient,
    SshClientConfig, SshError, WindowSize,
};
use common::Fixture;

fn config(f: &Fixture) -> SshClientConfig {
    SshClientConfig::new("alice", f.dir.path("known_hosts"))
        .key(ClientKey::from_openssh_file(f.dir.path("id")).unwrap())
}

fn connect(f: &Fixture, config: SshClientConfig) -> Result<SshClient, SshError> {
    let r = f.reactor.clone();
    let port = f.addr.port();
    f.reactor
        .block_on(async move { SshClient::connect(&r, "127.0.0.1", port, config).await })
        .unwrap()
}

#[test]
fn exec_by_key_collects_stdout_stderr_and_status() {
    let f = Fixture::new("cli-exec");
    let ssh = connect(&f, config(&f)).unwrap();
    let s2 = ssh.clone();
    let out = f
        .reactor
        .block_on(async move { s2.exec("echo out; echo err >&2; exit 5").await })
        .unwrap()
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit, Some(ExitReport::Status(5)));
    // Several commands at once on one connection.
    let (a, b) = (ssh.exec("echo one"), ssh.exec("echo two"));
    let both = f
        .reactor
        .block_on(async move { (a.await, b.await) })
        .unwrap();
    assert_eq!(both.0.unwrap().stdout, b"one\n");
    assert_eq!(both.1.unwrap().stdout, b"two\n");
    let s3 = ssh.clone();
    let killed = f
        .reactor
        .block_on(async move { s3.exec("kill -KILL $$").await })
        .unwrap()
        .unwrap();
    assert!(
        matches!(killed.exit, Some(ExitReport::Signal { ref name, .. }) if name == "KILL"),
        "{killed:?}"
    );
    ssh.disconnect();
}

#[test]
fn password_login() {
    let f = Fixture::new("cli-pw");
    let c = SshClientConfig::new("alice", f.dir.path("known_hosts")).password("wonderland");
    let ssh = connect(&f, c).unwrap();
    let out = f
        .reactor
        .block_on(async move { ssh.exec("echo $USER").await })
        .unwrap()
        .unwrap();
    assert_eq!(out.stdout, b"alice\n");
}

#[test]
fn wrong_credentials_are_auth_failed() {
    let f = Fixture::new("cli-bad");
    let c = SshClientConfig::new("alice", f.dir.path("known_hosts")).password("guess");
    assert_eq!(connect(&f, c).unwrap_err(), SshError::AuthFailed);
}

#[test]
fn host_keys_changed_unknown_and_accept_new() {
    let f = Fixture::new("cli-hostkey");
    let real = std::fs::read_to_string(f.dir.path("known_hosts")).unwrap();
    // Changed: listed with another key.
    let other = braid_ssh::HostKey::generate().unwrap();
    std::fs::write(
        f.dir.path("known_hosts"),
        format!("[127.0.0.1]:{} {}\n", f.addr.port(), other.public_openssh()),
    )
    .unwrap();
    let e = connect(&f, config(&f)).unwrap_err();
    assert!(matches!(e, SshError::HostKeyChanged { .. }), "{e:?}");
    // Unknown: not listed.
    std::fs::write(f.dir.path("known_hosts"), "").unwrap();
    let e = connect(&f, config(&f)).unwrap_err();
    assert!(matches!(e, SshError::HostKeyUnknown { .. }), "{e:?}");
    // accept-new: trusted and remembered, then known.
    let c = config(&f).host_keys(HostKeyPolicy::KnownHosts {
        path: f.dir.path("known_hosts"),
        accept_new: true,
    });
    connect(&f, c).unwrap();
    let remembered = std::fs::read_to_string(f.dir.path("known_hosts")).unwrap();
    assert_eq!(remembered.trim(), real.trim());
    connect(&f, config(&f)).unwrap();
}

#[test]
fn a_shell_on_a_terminal_of_the_size_asked() {
    let f = Fixture::new("cli-pty");
    let ssh = connect(&f, config(&f)).unwrap();
    let request = SessionRequest {
        command: None,
        pty: Some(PtyRequest {
            term: "xterm".into(),
            size: WindowSize {
                cols: 101,
                rows: 33,
                width: 0,
                height: 0,
            },
        }),
        ..SessionRequest::default()
    };
    let (text, exit) = run_session(&f, &ssh, request, |_, t, text| {
        if text.is_empty() {
            t.write(b"stty size; tty; exit 9\n");
        }
    });
    assert!(text.contains("33 101"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(exit, Some(ExitReport::Status(9)));
}

#[test]
fn local_forwarding_through_the_client() {
    let f = Fixture::new("cli-fwd");
    let echo = common::echo_server(&f.reactor);
    let ssh = connect(&f, config(&f)).unwrap();
    let port = ssh
        .forward_local("127.0.0.1:0".parse().unwrap(), "127.0.0.1", echo)
        .unwrap();
    assert!(common::echoes_through(
        &f.reactor,
        port.local_addr(),
        200_000
    ));
}

#[test]
fn the_ssh_example_runs_a_command_and_exits_with_its_status() {
    // target/debug/deps/client-HASH -> target/debug/examples/ssh
    let mut exe = std::env::current_exe().unwrap();
    exe.pop();
    exe.pop();
    let exe = exe.join("examples").join("ssh");
    // `cargo test` of the package builds its examples first.
    assert!(
        exe.exists(),
        "{} not built (cargo build --examples)",
        exe.display()
    );
    let f = Fixture::new("cli-example");
    let mut c = std::process::Command::new(exe);
    c.arg("--user")
        .arg("alice")
        .arg("--key")
        .arg(f.dir.path("id"));
    c.arg("--known-hosts").arg(f.dir.path("known_hosts"));
    c.arg(format!("127.0.0.1:{}", f.addr.port()))
        .args(["echo", "from", "the", "example;", "exit", "7"]);
    let o = f.run(c, b"");
    assert_eq!(o.out(), "from the example\n", "{}", o.err());
    assert_eq!(o.code(), Some(7));
}

/// Runs `request`, calling `script` with the channel, the transport and
/// the output so far (at the start and after each arrival), turning the
/// reactor until the channel ends: (output, exit).
fn run_session(
    f: &Fixture,
    ssh: &SshClient,
    request: SessionRequest,
    script: impl FnMut(&SessionChannel, &Transport, &str) + 'static,
) -> (String, Option<ExitReport>) {
    use std::cell::RefCell;
    use std::rc::Rc;
    struct Scripted<F> {
        out: Rc<RefCell<Vec<u8>>>,
        exit: Rc<RefCell<Option<Option<ExitReport>>>>,
        chan: Option<SessionChannel>,
        script: F,
    }
    impl<F: FnMut(&SessionChannel, &Transport, &str) + 'static> Protocol for Scripted<F> {
        fn connection_made(&mut self, t: &Transport) {
            self.chan = t.layer::<SessionChannel>().map(|c| (*c).clone());
            (self.script)(self.chan.as_ref().unwrap(), t, "");
        }
        fn data_received(&mut self, t: &Transport, d: &[u8]) {
            self.out.borrow_mut().extend_from_slice(d);
            let text = String::from_utf8_lossy(&self.out.borrow()).into_owned();
            (self.script)(self.chan.as_ref().unwrap(), t, &text);
        }
        fn read_eof(&mut self, _: &Transport) {}
        fn connection_lost(&mut self, _: &braid::CloseReason) {
            *self.exit.borrow_mut() = Some(self.chan.as_ref().and_then(|c| c.remote_exit()));
        }
    }
    let out = Rc::new(RefCell::new(Vec::new()));
    let exit = Rc::new(RefCell::new(None));
    let p = Scripted {
        out: out.clone(),
        exit: exit.clone(),
        chan: None,
        script,
    };
    ssh.session(request, p).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while exit.borrow().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the session did not end: {:?}",
            String::from_utf8_lossy(&out.borrow())
        );
        f.reactor
            .iterate(std::time::Duration::from_millis(100))
            .unwrap();
    }
    let text = String::from_utf8_lossy(&out.borrow()).into_owned();
    let e = exit.borrow_mut().take().unwrap();
    (text, e)
}

#[test]
fn env_is_allow_listed() {
    let f = Fixture::new("cli-env");
    let ssh = connect(&f, config(&f)).unwrap();
    let request = SessionRequest {
        command: Some("echo \"$LANG|$LC_TIME|$EVIL\"".into()),
        env: vec![
            ("LANG".into(), "C.UTF-8".into()),
            ("LC_TIME".into(), "C".into()),
            ("EVIL".into(), "x".into()),
        ],
        ..SessionRequest::default()
    };
    let (out, exit) = run_session(&f, &ssh, request, |_, t, text| {
        if text.is_empty() {
            t.lose_write_connection();
        }
    });
    assert_eq!(out, "C.UTF-8|C|\n");
    assert_eq!(exit, Some(ExitReport::Status(0)));
}

#[test]
fn window_change_resizes_the_terminal() {
    let f = Fixture::new("cli-winch");
    let ssh = connect(&f, config(&f)).unwrap();
    let request = SessionRequest {
        pty: Some(PtyRequest {
            term: "xterm".into(),
            size: WindowSize {
                cols: 80,
                rows: 24,
                width: 0,
                height: 0,
            },
        }),
        ..SessionRequest::default()
    };
    let mut resized = false;
    let (out, exit) = run_session(&f, &ssh, request, move |ch, t, text| {
        if text.is_empty() {
            // The marker is built by the shell, so the echo of what was
            // typed does not contain it.
            t.write(b"stty size; echo MA\"\"RK1\n");
        } else if text.contains("MARK1") && !resized {
            resized = true;
            ch.window_change(WindowSize {
                cols: 120,
                rows: 50,
                width: 0,
                height: 0,
            });
            t.write(b"stty size; exit 0\n");
        }
    });
    assert!(out.contains("24 80"), "{out}");
    assert!(out.contains("50 120"), "{out}");
    assert_eq!(exit, Some(ExitReport::Status(0)));
}

#[test]
fn a_signal_reaches_the_command() {
    let f = Fixture::new("cli-signal");
    let ssh = connect(&f, config(&f)).unwrap();
    let request = SessionRequest {
        command: Some("echo ready; exec sleep 30".into()),
        ..SessionRequest::default()
    };
    let mut sent = false;
    let (out, exit) = run_session(&f, &ssh, request, move |ch, _, text| {
        if text.contains("ready") && !sent {
            sent = true;
            ch.signal("TERM");
        }
    });
    assert_eq!(out, "ready\n");
    assert!(
        matches!(exit, Some(ExitReport::Signal { ref name, .. }) if name == "TERM"),
        "{exit:?}"
    );
}
