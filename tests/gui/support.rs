//! Helpers shared by the demos' end-to-end tests (demo-gtk and demo-winit
//! include this file with `#[path]`): where the build's `target/` is, and
//! running the X tools (xdotool, ImageMagick) that `./scripts/test.sh`
//! installs.

use std::path::PathBuf;
use std::process::Command;

/// The `target/` folder of this build (`target/debug/deps/e2e-HASH` ->
/// `target`), where screenshots and logs go.
pub fn target_dir() -> PathBuf {
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    p.pop();
    p.pop();
    p
}

/// Runs `name args...`, fails the test with its stderr unless it
/// succeeds, and returns its trimmed stdout.
pub fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} is missing ({e}): ./scripts/test.sh installs it"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
