//! An SSH server of braid's on a loopback port and OpenSSH's `ssh` run
//! against it, both on one reactor: the client is a braid child process,
//! so nothing blocks and no thread is needed.

#![allow(dead_code)]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::rc::Rc;
use std::time::Duration;

use braid::process::{Process, ProcessProtocol};
use braid::{ListeningPort, Reactor};
use braid_cred::{InMemoryChecker, Portal};
use braid_ssh::{AuthorizedKeysChecker, HostKey, ProcessAvatar, SshServer};

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "braid-ssh-{name}-{}-{}",
            std::process::id(),
            fastrand_u64()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

/// A server for alice (password "wonderland", and the key `dir/id`)
/// with OpenSSH's client set up to trust it.
pub struct Fixture {
    pub reactor: Reactor,
    pub dir: TempDir,
    pub port: ListeningPort,
    pub addr: SocketAddr,
}

impl Fixture {
    pub fn new(name: &str) -> Fixture {
        let dir = TempDir::new(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice@test", "-f"])
            .arg(dir.path("id"))
            .status()
            .expect("ssh-keygen (openssh-client) is installed");
        assert!(status.success());
        std::fs::copy(dir.path("id.pub"), dir.path("authorized_keys")).unwrap();
        let reactor = Reactor::new().unwrap();
        let key = HostKey::load_or_generate(dir.path("host_key")).unwrap();
        let host_public = key.public_openssh();
        std::fs::create_dir_all(dir.path("root")).unwrap();
        let root = dir.path("root");
        let portal = Portal::new(&reactor, move |_u: &str, _: ()| {
            (ProcessAvatar::new().sftp_root(root.clone()), None)
        })
        .checker(InMemoryChecker::new().user("alice", "wonderland"))
        .checker(AuthorizedKeysChecker::file(
            dir.path("authorized_keys"),
            vec!["alice".into()],
        ));
        let server = SshServer::new(&reactor, vec![key], portal);
        let port = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), server)
            .unwrap();
        let addr = port.local_addr();
        std::fs::write(
            dir.path("known_hosts"),
            format!("[127.0.0.1]:{} {host_public}\n", addr.port()),
        )
        .unwrap();
        std::fs::write(dir.path("askpass"), "#!/bin/sh\necho wonderland\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path("askpass"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        Fixture {
            reactor,
            dir,
            port,
            addr,
        }
    }

    /// A second server on this reactor with `config` (same host key,
    /// users and root), trusted too: its port.
    pub fn server_with(&self, config: braid_ssh::SshServerConfig) -> u16 {
        let key = HostKey::load_or_generate(self.dir.path("host_key")).unwrap();
        let public = key.public_openssh();
        let portal = Portal::new(&self.reactor, |_u: &str, _: ()| {
            (ProcessAvatar::new(), None)
        })
        .checker(AuthorizedKeysChecker::file(
            self.dir.path("authorized_keys"),
            vec!["alice".into()],
        ));
        let server = SshServer::with_config(&self.reactor, vec![key], portal, config);
        let port = self
            .reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), server)
            .unwrap();
        let p = port.local_addr().port();
        std::mem::forget(port);
        let mut known = std::fs::read_to_string(self.dir.path("known_hosts")).unwrap();
        known.push_str(&format!("[127.0.0.1]:{p} {public}\n"));
        std::fs::write(self.dir.path("known_hosts"), known).unwrap();
        p
    }

    /// `ssh` with a clean configuration, this server trusted, alice's key.
    pub fn ssh(&self, extra: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-F").arg("/dev/null");
        self.common(&mut c);
        c.args(["-p", &self.addr.port().to_string(), "-o", "LogLevel=ERROR"]);
        c.args(extra);
        c
    }

    pub fn common(&self, c: &mut Command) {
        c.arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.path("known_hosts").display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
            ])
            .args(["-o", "ConnectTimeout=20"])
            .arg("-i")
            .arg(self.dir.path("id"))
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("DISPLAY");
    }

    /// `sftp` or `scp` (`program`) with the same options as [`ssh`](Self::ssh).
    pub fn copy_tool(&self, program: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.arg("-F").arg("/dev/null");
        self.common(&mut c);
        c.args([
            "-P",
            &self.addr.port().to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ]);
        c.args(extra);
        c
    }

    /// `ssh` that logs in with the password only (askpass).
    pub fn ssh_password(&self, extra: &[&str]) -> Command {
        let mut c = self.ssh(&[
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=1",
        ]);
        c.args(extra)
            .env("SSH_ASKPASS", self.dir.path("askpass"))
            .env("SSH_ASKPASS_REQUIRE", "force");
        c
    }

    /// Runs `command` as a braid child with `input` on its stdin, the
    /// reactor running until it ends (60 s at most).
    pub fn run(&self, mut command: Command, input: &[u8]) -> Outcome {
        let out = Rc::new(RefCell::new(Outcome::default()));
        let p = self
            .reactor
            .spawn_process(&mut command, Collect { out: out.clone() })
            .expect("ssh runs");
        feed(&p, input);
        // The reactor turns until the client ends (iterate, not run: a
        // fixture runs several clients one after the other).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while out.borrow().status.is_none() {
            if std::time::Instant::now() > deadline {
                let _ = p.kill();
                panic!("ssh did not finish in 60 s: {:?}", out.borrow());
            }
            self.reactor.iterate(Duration::from_millis(200)).unwrap();
        }
        let mut o = out.borrow().clone();
        o.status.get_or_insert_with(|| panic!("no status"));
        o
    }
}

fn feed(p: &Process, input: &[u8]) {
    if !input.is_empty() {
        p.write(input);
    }
    p.close_stdin();
}

#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Option<ExitStatus>,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

struct Collect {
    out: Rc<RefCell<Outcome>>,
}

impl ProcessProtocol for Collect {
    fn out_received(&mut self, _: &Process, data: &[u8]) {
        self.out.borrow_mut().stdout.extend_from_slice(data);
    }
    fn err_received(&mut self, _: &Process, data: &[u8]) {
        self.out.borrow_mut().stderr.extend_from_slice(data);
    }
    fn process_ended(&mut self, _: &Process, status: ExitStatus) {
        self.out.borrow_mut().status = Some(status);
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Echoes what it receives.
pub struct Echo;

impl braid::Protocol for Echo {
    fn data_received(&mut self, t: &braid::Transport, data: &[u8]) {
        t.write(data);
    }
}

/// An echo server on a loopback port of `reactor`: its port.
pub fn echo_server(reactor: &Reactor) -> u16 {
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &braid::Address| Echo)
        .unwrap();
    let p = port.local_addr().port();
    std::mem::forget(port);
    p
}

/// Through a local forward on `addr`: whether `len` bytes come back
/// whole (async, on `reactor`).
pub fn echoes_through(reactor: &Reactor, addr: SocketAddr, len: usize) -> bool {
    let r = reactor.clone();
    reactor
        .block_on(async move {
            use futures_util::{AsyncReadExt, AsyncWriteExt};
            let mut s = braid::aio::Stream::connect(&r, addr).await.unwrap();
            let msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            s.write_all(&msg).await.unwrap();
            let mut back = vec![0; msg.len()];
            s.read_exact(&mut back).await.unwrap();
            back == msg
        })
        .unwrap()
}
