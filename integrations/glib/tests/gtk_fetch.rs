//! The GUI-shaped example in a real GTK4 window (under Xvfb in CI): a click
//! fetches from a slow local server while a second button's counter keeps
//! advancing (the window never blocks on the network), an entry feeds an
//! aio line client, and closing the window stops the reactor and the app.

use std::process::Command;

#[test]
fn the_window_stays_responsive_during_a_slow_fetch() {
    let display = std::env::var("DISPLAY").unwrap_or_default();
    assert!(
        !display.is_empty(),
        "no DISPLAY: run the suite through ./scripts/test.sh, which starts Xvfb"
    );
    let mut exe = std::env::current_exe().unwrap();
    exe.pop();
    exe.pop();
    exe.push("examples/gtk_fetch");
    let out = Command::new(&exe)
        .arg("--self-test")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run the gtk_fetch example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("fetched: hello from a slow server"),
        "{stdout}"
    );
    let during: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("counter advanced "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter line: {stdout}"));
    // 1.5 s of fetching, a click every 100 ms: the window kept working.
    assert!(
        during >= 5,
        "the counter advanced only {during} times: {stdout}"
    );
    assert!(
        stdout.contains("line client got: HELLO FROM THE ENTRY"),
        "{stdout}"
    );
}
