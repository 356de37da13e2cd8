#![cfg(unix)]
//! `braid passwd FILE USER`: the password from stdin, an argon2 line in
//! the file, and a cred checker that accepts it.

use std::cell::RefCell;
use std::io::Write;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use braid::Reactor;
use braid_cred::{Credentials, PasswordFileChecker, Portal};

fn passwd(file: &std::path::Path, user: &str, password: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["passwd"])
        .arg(file)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

fn accepted(file: &std::path::Path, user: &str, password: &str) -> bool {
    let reactor = Reactor::new().unwrap();
    let portal = Portal::new(&reactor, |id: &str, _: ()| (id.to_owned(), None))
        .checker(PasswordFileChecker::new(file));
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    portal
        .login(Credentials::password(user, password), (), "test")
        .add_both(move |r| {
            *o.borrow_mut() = Some(r.is_ok());
            Ok::<(), braid_cred::Unauthorized>(())
        });
    let end = Instant::now() + Duration::from_secs(30);
    while out.borrow().is_none() && Instant::now() < end {
        reactor.iterate(Duration::from_millis(50)).unwrap();
    }
    let r = out.borrow().expect("the check finished");
    r
}

#[test]
fn passwd_adds_and_changes_users() {
    let dir = std::env::temp_dir().join(format!("braid-passwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users");
    let out = passwd(&file, "alice", "correct horse");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice set in"));
    assert!(passwd(&file, "bob", "battery staple").status.success());
    assert!(accepted(&file, "alice", "correct horse"));
    assert!(!accepted(&file, "alice", "battery staple"));
    // Changing a password replaces the line.
    assert!(passwd(&file, "alice", "new one").status.success());
    assert!(accepted(&file, "alice", "new one"));
    assert!(!accepted(&file, "alice", "correct horse"));
    assert!(accepted(&file, "bob", "battery staple"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("alice:$argon2id$"))
            .count(),
        1
    );
    // Bad input is refused with a message.
    let bad = passwd(&file, "a:b", "x");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("user name"));
    let empty = passwd(&file, "carol", "");
    assert!(!empty.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
