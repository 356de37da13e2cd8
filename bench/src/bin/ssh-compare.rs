//! braid's SSH server against OpenSSH's `sshd`, side by side in one run,
//! rounds interleaved: OpenSSH's `ssh` client uploads N MB into
//! `cat > /dev/null` and downloads N MB from `head -c N /dev/zero` on
//! each server. Reports MB/s and the server's CPU seconds per GB (the
//! server process and everything it reaped: sshd's per-connection
//! children, the `cat`/`head` each side runs), and braid/sshd ratios.
//!
//! ```text
//! ssh-compare [--rounds 3] [--mb 200]
//! ssh-compare serve DIR      (braid's server, started by the above)
//! ```
//!
//! Both servers negotiate what OpenSSH's client prefers among what they
//! offer: curve25519 and chacha20-poly1305 for both.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use braid::Reactor;
use braid_bench::arg;
use braid_cred::Portal;
use braid_ssh::{AuthorizedKeysChecker, HostKey, ProcessAvatar, SshServer};

fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// CPU seconds of `pid` and of the children it reaped.
fn tree_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12) + ticks(13) + ticks(14)) / hz
}

fn serve(dir: &Path) {
    let reactor = Reactor::new().expect("reactor");
    let key = HostKey::load_or_generate(dir.join("braid_host_key")).expect("host key");
    let portal = Portal::new(&reactor, |_: &str, _: ()| (ProcessAvatar::new(), None)).checker(
        AuthorizedKeysChecker::file(dir.join("authorized_keys"), vec![user()]),
    );
    let server = SshServer::new(&reactor, vec![key], portal);
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), server)
        .expect("listen");
    println!("listening {}", port.local_addr().port());
    reactor.run().expect("run");
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen")
        .success();
    assert!(ok);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    name: &'static str,
    port: u16,
    child: std::process::Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_braid(dir: &Path) -> Server {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("serve")
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("braid server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(' ').next().unwrap().parse().unwrap();
    Server {
        name: "braid",
        port,
        child,
    }
}

fn start_sshd(dir: &Path) -> Server {
    keygen(&dir.join("sshd_host_key"));
    let port = free_port();
    let _ = std::fs::create_dir_all("/run/sshd");
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
         StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nLogLevel ERROR\n",
        dir.join("sshd_host_key").display(),
        dir.join("sshd.pid").display(),
        dir.join("authorized_keys").display(),
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd (openssh-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        name: "sshd",
        port,
        child,
    }
}

fn ssh(dir: &Path, port: u16, command: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
        .arg(dir.join("id"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("{}@127.0.0.1", user()))
        .arg(command)
        .env_remove("SSH_AUTH_SOCK");
    c
}

/// One transfer: (seconds, server CPU seconds).
fn transfer(dir: &Path, s: &Server, upload: Option<&Path>, bytes: usize) -> (f64, f64) {
    let pid = s.child.id();
    let cpu0 = tree_cpu(pid);
    let t0 = Instant::now();
    let ok = if let Some(file) = upload {
        ssh(dir, s.port, "cat > /dev/null")
            .stdin(std::fs::File::open(file).unwrap())
            .status()
            .unwrap()
            .success()
    } else {
        let out = ssh(dir, s.port, &format!("head -c {bytes} /dev/zero"))
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        out.status.success() && out.stdout.len() == bytes
    };
    let secs = t0.elapsed().as_secs_f64();
    assert!(ok, "{} transfer failed", s.name);
    // sshd counts its connection's child once it has reaped it.
    std::thread::sleep(Duration::from_millis(300));
    (secs, tree_cpu(pid) - cpu0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        serve(Path::new(&args[2]));
        return;
    }
    let rounds: usize = arg(&args, "--rounds", 3);
    let mb: usize = arg(&args, "--mb", 200);
    let bytes = mb << 20;
    let dir = std::env::temp_dir().join(format!("braid-ssh-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    keygen(&dir.join("id"));
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
    // Incompressible input for the uploads.
    let input: PathBuf = dir.join("input.bin");
    {
        let mut f = std::fs::File::create(&input).unwrap();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..mb {
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            f.write_all(&chunk).unwrap();
        }
    }
    let servers = [start_braid(&dir), start_sshd(&dir)];
    let mut known = String::new();
    for (s, key) in [
        (&servers[0], "braid_host_key.pub"),
        (&servers[1], "sshd_host_key.pub"),
    ] {
        let public = std::fs::read_to_string(dir.join(key)).unwrap();
        known.push_str(&format!("[127.0.0.1]:{} {}", s.port, public));
    }
    std::fs::write(dir.join("known_hosts"), known).unwrap();

    // [server][up, down] -> (seconds, cpu)
    let mut total = [[(0.0, 0.0); 2]; 2];
    for round in 0..rounds {
        for (i, s) in servers.iter().enumerate() {
            let up = transfer(&dir, s, Some(&input), bytes);
            let down = transfer(&dir, s, None, bytes);
            println!(
                "round {round} {:>5}: up {:.0} MB/s, {:.2} CPU s/GB; down {:.0} MB/s, {:.2} CPU s/GB",
                s.name,
                mb as f64 / up.0,
                up.1 / (mb as f64 / 1024.0),
                mb as f64 / down.0,
                down.1 / (mb as f64 / 1024.0),
            );
            for (k, v) in [up, down].into_iter().enumerate() {
                total[i][k].0 += v.0;
                total[i][k].1 += v.1;
            }
        }
    }
    let gb = (mb * rounds) as f64 / 1024.0;
    println!("\n| server | up MB/s | down MB/s | up CPU s/GB | down CPU s/GB |");
    println!("|---|---|---|---|---|");
    for (i, s) in servers.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} |",
            s.name,
            (mb * rounds) as f64 / total[i][0].0,
            (mb * rounds) as f64 / total[i][1].0,
            total[i][0].1 / gb,
            total[i][1].1 / gb,
        );
    }
    println!(
        "\nbraid/sshd: up rate {:.2}x, down rate {:.2}x; CPU per GB up {:.2}x, down {:.2}x",
        total[1][0].0 / total[0][0].0,
        total[1][1].0 / total[0][1].0,
        total[0][0].1 / total[1][0].1,
        total[0][1].1 / total[1][1].1,
    );
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}
