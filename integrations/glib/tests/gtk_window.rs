//! The GTK example in a real GTK4 window (under Xvfb in CI): lines that
//! arrive over TCP reach the window's label, the network running in GTK's
//! own loop on its main thread.

use std::process::Command;

#[test]
fn gtk_window_shows_lines_received_over_tcp() {
    let display = std::env::var("DISPLAY").unwrap_or_default();
    assert!(
        !display.is_empty(),
        "no DISPLAY: run the suite through ./scripts/test.sh, which starts Xvfb"
    );
    let mut exe = std::env::current_exe().unwrap();
    exe.pop();
    exe.pop();
    exe.push("examples/gtk_lines");
    let out = Command::new(&exe)
        .args(["--quit-after", "5"])
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run the gtk_lines example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        (1..=5)
            .map(|i| format!("line {i} from the braid server"))
            .collect::<Vec<_>>(),
        "every line reached the label, in order, then the reactor's stop quit the app"
    );
}
