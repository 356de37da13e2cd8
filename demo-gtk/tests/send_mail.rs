//! The send_mail example in a real GTK4 window under X (Xvfb in CI): it
//! runs a braid-mail server and client in GTK's own loop, presses Send,
//! and the message lands in the Maildir while the window keeps ticking.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_window_sends_a_message_into_the_maildir() {
    // target/debug/deps/send_mail-HASH -> target/debug/examples/send_mail
    let mut exe = std::env::current_exe().unwrap();
    exe.pop();
    exe.pop();
    let exe = exe.join("examples").join("send_mail");
    let mut child = Command::new(&exe)
        .arg("--auto-send")
        .env_remove("WAYLAND_DISPLAY")
        .env("GSK_RENDERER", "cairo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{lines:?}");
    let dir = lines[0]
        .rsplit("delivering into ")
        .next()
        .expect("the Maildir path")
        .to_owned();
    assert!(
        lines.iter().any(|l| l.starts_with("sent: 250 2.0.0")),
        "{lines:?}"
    );
    let new: Vec<_> = std::fs::read_dir(std::path::Path::new(&dir).join("new"))
        .unwrap()
        .collect();
    assert_eq!(new.len(), 1);
    let text = std::fs::read_to_string(new[0].as_ref().unwrap().path()).unwrap();
    assert!(text.contains("Subject: Hello from a GTK window"), "{text}");
    assert!(
        text.contains("Sent by braid-mail, on GTK's own thread."),
        "{text}"
    );
    // The heartbeat's longest pause is printed, not asserted (shared CI
    // machines are noisy); keep it in the log.
    eprintln!("{}", lines.last().unwrap());
    let _ = std::fs::remove_dir_all(std::path::Path::new(&dir).parent().unwrap());
}
