//! The ssh_window example in a real GTK4 window under X (Xvfb in CI): a
//! braid SSH server and client in GTK's own loop; the command's output
//! and exit status show in the window's text view.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_window_shows_a_commands_output_over_ssh() {
    let mut exe = std::env::current_exe().unwrap();
    exe.pop();
    exe.pop();
    let exe = exe.join("examples").join("ssh_window");
    let mut child = Command::new(&exe)
        .arg("--auto-run")
        .env("USER", "me")
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
    assert!(
        lines[0].starts_with("embedded SSH server on 127.0.0.1:"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "hello from ssh"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "Linux"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "to stderr"), "{lines:?}");
    assert_eq!(lines.last().unwrap(), "exit: Some(Status(0))", "{lines:?}");
}
