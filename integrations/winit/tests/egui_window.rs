//! The egui example (eframe on braid-winit) in a real window (X11 under
//! Xvfb in CI, drawn with OpenGL through Mesa): a line
//! from its server reaches the window, keystrokes typed into the window
//! (real X events, from xdotool) go out as a line and the answer comes
//! back to the window; the reactor's stop then quits the application.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn xdotool(args: &[&str]) -> String {
    let out = Command::new("xdotool")
        .args(args)
        .output()
        .expect("xdotool (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "xdotool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn egui_window_shows_received_lines_and_sends_what_is_typed() {
    let display = std::env::var("DISPLAY").unwrap_or_default();
    assert!(
        !display.is_empty(),
        "no DISPLAY: run the suite through ./scripts/test.sh, which starts Xvfb"
    );
    let mut exe = std::env::current_exe().unwrap();
    exe.pop();
    exe.pop();
    exe.push("examples/egui_lines");
    let mut child = Command::new(&exe)
        .args(["--quit-after", "3"])
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the egui_lines example");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the app did not print {what:?} in 30 s"))
    };
    assert_eq!(
        next("the greeting"),
        "shown: hello from the braid server: type a line and press Enter"
    );
    let window = xdotool(&[
        "search",
        "--sync",
        "--name",
        "braid: lines over TCP, on winit",
    ]);
    let window = window.lines().next().expect("the window's id").to_owned();
    xdotool(&["windowfocus", "--sync", &window]);
    for (typed, echoed) in [
        ("hi there", "shown: echo: hi there"),
        ("bye", "shown: echo: bye"),
    ] {
        xdotool(&["type", "--delay", "10", typed]);
        xdotool(&["key", "Return"]);
        assert_eq!(next("the sent line"), format!("sent: {typed}"));
        assert_eq!(next("the answer"), echoed);
    }
    let status = child.wait().expect("the app ends");
    assert!(
        status.success(),
        "the reactor's stop quit the app cleanly: {status:?}"
    );
}
