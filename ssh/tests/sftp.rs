#![cfg(unix)]
//! OpenSSH's `sftp` and `scp` (SFTP mode, the default since 9.0)
//! against braid's SFTP subsystem over a root directory.

mod common;

use common::Fixture;

fn random_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn sftp_put_get_list_rename_remove() {
    let f = Fixture::new("sftp");
    let data = random_bytes(3 << 20);
    std::fs::write(f.dir.path("local.bin"), &data).unwrap();
    let batch = format!(
        "put {local} up.bin\nmkdir sub\nrename up.bin sub/moved.bin\nls -l sub\nget sub/moved.bin {back}\nchmod 600 sub/moved.bin\n",
        local = f.dir.path("local.bin").display(),
        back = f.dir.path("back.bin").display(),
    );
    std::fs::write(f.dir.path("batch"), batch).unwrap();
    let b = f.dir.path("batch").display().to_string();
    let o = f.run(f.copy_tool("sftp", &["-b", &b, "alice@127.0.0.1"]), b"");
    assert_eq!(o.code(), Some(0), "{o:?}");
    assert!(o.out().contains("moved.bin"), "{}", o.out());
    assert_eq!(
        std::fs::read(f.dir.path("root/sub/moved.bin")).unwrap(),
        data
    );
    assert_eq!(std::fs::read(f.dir.path("back.bin")).unwrap(), data);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f.dir.path("root/sub/moved.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Removing, in a second session.
    std::fs::write(f.dir.path("batch"), "rm sub/moved.bin\nrmdir sub\n").unwrap();
    let o = f.run(f.copy_tool("sftp", &["-b", &b, "alice@127.0.0.1"]), b"");
    assert_eq!(o.code(), Some(0), "{o:?}");
    assert!(!f.dir.path("root/sub").exists());
}

#[test]
fn scp_both_ways() {
    let f = Fixture::new("scp");
    let data = random_bytes(1 << 20);
    std::fs::write(f.dir.path("local.bin"), &data).unwrap();
    let local = f.dir.path("local.bin").display().to_string();
    let o = f.run(
        f.copy_tool("scp", &[&local, "alice@127.0.0.1:/copy.bin"]),
        b"",
    );
    assert_eq!(o.code(), Some(0), "{o:?}");
    assert_eq!(std::fs::read(f.dir.path("root/copy.bin")).unwrap(), data);
    let back = f.dir.path("back.bin").display().to_string();
    let o = f.run(
        f.copy_tool("scp", &["alice@127.0.0.1:/copy.bin", &back]),
        b"",
    );
    assert_eq!(o.code(), Some(0), "{o:?}");
    assert_eq!(std::fs::read(f.dir.path("back.bin")).unwrap(), data);
}

#[test]
fn nothing_outside_the_root_is_reachable() {
    let f = Fixture::new("sftp-jail");
    std::os::unix::fs::symlink("/etc", f.dir.path("root/etc-link")).unwrap();
    let back = f.dir.path("stolen").display().to_string();
    for path in ["../../../../etc/passwd", "/etc-link/passwd"] {
        let o = f.run(
            f.copy_tool("scp", &[&format!("alice@127.0.0.1:{path}"), &back]),
            b"",
        );
        assert_ne!(o.code(), Some(0), "{path}: {o:?}");
        assert!(!f.dir.path("stolen").exists(), "{path} escaped the root");
    }
}
