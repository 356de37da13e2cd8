#![cfg(unix)]
//! `braid ssh`: a host key made on first start, logins by password from a
//! `braid passwd` file and by the keys of --authorized-keys for those
//! users only, commands as the server's user; OpenSSH's `ssh` is the
//! client.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::braid;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ssh(dir: &Path, port: &str, user: &str, password: bool, command: &str) -> Output {
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-p", port])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .arg("-i")
        .arg(dir.join("id"))
        .env_remove("SSH_AUTH_SOCK");
    if password {
        c.args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .env("SSH_ASKPASS", dir.join("askpass"))
        .env("SSH_ASKPASS_REQUIRE", "force");
    } else {
        c.args(["-o", "BatchMode=yes"]);
    }
    c.arg(format!("{user}@127.0.0.1")).arg(command);
    c.output().unwrap()
}

#[test]
fn braid_ssh_serves_password_and_key_logins_for_its_users() {
    let dir = std::env::temp_dir().join(format!("braid-cli-ssh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = Dir(dir);
    let d = &dir.0;
    braid_cred::set_password(d.join("users"), "alice", "wonderland").unwrap();
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(d.join("id"))
        .status()
        .unwrap()
        .success());
    std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
    std::fs::write(d.join("askpass"), "#!/bin/sh\necho wonderland\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("askpass"), std::fs::Permissions::from_mode(0o700)).unwrap();

    let hk = d.join("host_key").display().to_string();
    let users = d.join("users").display().to_string();
    let ak = d.join("authorized_keys").display().to_string();
    let (_server, first) = braid(&[
        "ssh",
        "--port",
        "0",
        "--host-key",
        &hk,
        "--users",
        &users,
        "--authorized-keys",
        &ak,
    ]);
    let port = first.rsplit(':').next().unwrap().to_owned();
    assert!(
        first.starts_with("braid ssh: listening on 127.0.0.1:"),
        "{first}"
    );
    // The host key was made on first start, with its .pub.
    let public = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{port} {public}"),
    )
    .unwrap();

    let o = ssh(d, &port, "alice", true, "echo $USER; exit 4");
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "alice\n");

    let o = ssh(d, &port, "alice", false, "pwd");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    // Another name, the same key: not a user of --users.
    let o = ssh(d, &port, "bob", false, "true");
    assert_eq!(o.status.code(), Some(255), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{o:?}"
    );
}

#[test]
fn braid_ssh_refuses_to_start_with_no_way_in() {
    let out = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["ssh", "--port", "0", "--host-key", "/nonexistent/k"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nobody could log in"),
        "{out:?}"
    );
}
