#![cfg(unix)]
//! braid's SSH client against OpenSSH's `sshd` (Debian's
//! openssh-server), started by the test on a loopback port with its own
//! configuration and host key: exec with exit codes and stderr, a shell
//! on a terminal, local forwarding, a wrong host key refused.

mod common;

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::process::{Process, ProcessProtocol};
use braid::{Protocol, Reactor, Transport};
use braid_ssh::{ClientKey, ExitReport, HostKey, SshClient, SshClientConfig, SshError};
use common::TempDir;

struct Sshd {
    reactor: Reactor,
    dir: TempDir,
    port: u16,
    process: Process,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.process.kill();
    }
}

struct Log(Rc<RefCell<String>>);
impl ProcessProtocol for Log {
    fn out_received(&mut self, _: &Process, d: &[u8]) {
        self.0.borrow_mut().push_str(&String::from_utf8_lossy(d));
    }
    fn err_received(&mut self, _: &Process, d: &[u8]) {
        self.0.borrow_mut().push_str(&String::from_utf8_lossy(d));
    }
}

fn keygen(path: &std::path::Path) {
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success());
}

fn sshd() -> Sshd {
    let sshd = "/usr/sbin/sshd";
    assert!(
        std::path::Path::new(sshd).exists(),
        "OpenSSH's sshd is needed (apt-get install openssh-server; scripts/test.sh does)"
    );
    let dir = TempDir::new("sshd");
    keygen(&dir.path("host_key"));
    keygen(&dir.path("id"));
    std::fs::copy(dir.path("id.pub"), dir.path("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Privilege separation wants its empty directory when run as root.
    let _ = std::fs::create_dir_all("/run/sshd");
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\nAuthorizedKeysFile {ak}\n\
         StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\nLogLevel INFO\n",
        hk = dir.path("host_key").display(),
        pid = dir.path("sshd.pid").display(),
        ak = dir.path("authorized_keys").display(),
    );
    std::fs::write(dir.path("sshd_config"), config).unwrap();
    let reactor = Reactor::new().unwrap();
    let log = Rc::new(RefCell::new(String::new()));
    let mut c = Command::new(sshd);
    c.args(["-D", "-e", "-f"]).arg(dir.path("sshd_config"));
    let process = reactor.spawn_process(&mut c, Log(log.clone())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.borrow().contains("Server listening") {
        assert!(
            Instant::now() < deadline && process.is_running(),
            "sshd did not start: {}",
            log.borrow()
        );
        reactor.iterate(Duration::from_millis(100)).unwrap();
    }
    let host = std::fs::read_to_string(dir.path("host_key.pub")).unwrap();
    std::fs::write(
        dir.path("known_hosts"),
        format!("[127.0.0.1]:{port} {host}"),
    )
    .unwrap();
    Sshd {
        reactor,
        dir,
        port,
        process,
    }
}

fn user() -> String {
    // sshd logs in the user it runs as (root in CI).
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn connect(s: &Sshd) -> Result<SshClient, SshError> {
    let config = SshClientConfig::new(user(), s.dir.path("known_hosts"))
        .key(ClientKey::from_openssh_file(s.dir.path("id")).unwrap());
    let (r, port) = (s.reactor.clone(), s.port);
    s.reactor
        .block_on(async move { SshClient::connect(&r, "127.0.0.1", port, config).await })
        .unwrap()
}

#[test]
fn exec_against_openssh() {
    let s = sshd();
    let ssh = connect(&s).unwrap();
    let out = s
        .reactor
        .block_on(async move { ssh.exec("echo out; echo err >&2; exit 3").await })
        .unwrap()
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit, Some(ExitReport::Status(3)));
}

#[test]
fn a_wrong_host_key_is_refused() {
    let s = sshd();
    let other = HostKey::generate().unwrap();
    std::fs::write(
        s.dir.path("known_hosts"),
        format!("[127.0.0.1]:{} {}\n", s.port, other.public_openssh()),
    )
    .unwrap();
    let e = connect(&s).unwrap_err();
    assert!(matches!(e, SshError::HostKeyChanged { .. }), "{e:?}");
}

#[test]
fn a_shell_on_a_pty_against_openssh() {
    use braid_ssh::{PtyRequest, SessionChannel, SessionRequest, WindowSize};
    let s = sshd();
    let ssh = connect(&s).unwrap();
    struct Shell(
        Rc<RefCell<Vec<u8>>>,
        Rc<RefCell<Option<Option<ExitReport>>>>,
        Option<SessionChannel>,
    );
    impl Protocol for Shell {
        fn connection_made(&mut self, t: &Transport) {
            self.2 = t.layer::<SessionChannel>().map(|c| (*c).clone());
            t.write(b"stty size; tty; exit 6\n");
        }
        fn data_received(&mut self, _: &Transport, d: &[u8]) {
            self.0.borrow_mut().extend_from_slice(d);
        }
        fn read_eof(&mut self, _: &Transport) {}
        fn connection_lost(&mut self, _: &braid::CloseReason) {
            *self.1.borrow_mut() = Some(self.2.as_ref().and_then(|c| c.remote_exit()));
        }
    }
    let (out, done) = (
        Rc::new(RefCell::new(Vec::new())),
        Rc::new(RefCell::new(None)),
    );
    let request = SessionRequest {
        command: None,
        pty: Some(PtyRequest {
            term: "vt100".into(),
            size: WindowSize {
                cols: 90,
                rows: 20,
                width: 0,
                height: 0,
            },
        }),
        ..SessionRequest::default()
    };
    ssh.session(request, Shell(out.clone(), done.clone(), None))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while done.borrow().is_none() && Instant::now() < deadline {
        s.reactor.iterate(Duration::from_millis(100)).unwrap();
    }
    let text = String::from_utf8_lossy(&out.borrow()).into_owned();
    assert!(text.contains("20 90"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(done.borrow_mut().take(), Some(Some(ExitReport::Status(6))));
}

#[test]
fn local_forwarding_against_openssh() {
    let s = sshd();
    let echo = common::echo_server(&s.reactor);
    let ssh = connect(&s).unwrap();
    let port = ssh
        .forward_local("127.0.0.1:0".parse().unwrap(), "127.0.0.1", echo)
        .unwrap();
    assert!(common::echoes_through(
        &s.reactor,
        port.local_addr(),
        500_000
    ));
}
