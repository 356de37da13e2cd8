//! The winit example as a process, in a real X11 window (Xvfb in CI).

use std::process::Command;

#[test]
fn the_window_changes_colour_on_each_message() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "no DISPLAY: run the suite through ./scripts/test.sh, which starts Xvfb"
    );
    let mut exe = std::env::current_exe().unwrap();
    exe.pop();
    exe.pop();
    exe.push("examples/winit_colors");
    let out = Command::new(&exe)
        .args(["--quit-after", "4"])
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run the winit_colors example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["orange", "green", "blue", "purple"]
    );
    assert!(stderr.contains("ReactorStopped"), "{stderr}");
}
