//! Driving a GUI example in a real window from a test: start the example
//! binary, read what it prints as its state changes, type into its window
//! with real X key events (xdotool, under Xvfb in CI).
//!
//! ```no_run
//! use braid::testing::window::ExampleWindow;
//!
//! let app = ExampleWindow::start("qt_lines", &["--quit-after", "2"], &[]);
//! assert_eq!(app.next_line("the greeting"), "shown: hello");
//! app.type_line("my window's title", "hi");
//! assert_eq!(app.next_line("the answer"), "shown: echo: hi");
//! app.wait_success();
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long [`ExampleWindow::next_line`] waits for a line.
pub const LINE_LIMIT: Duration = Duration::from_secs(30);

/// An example program running in a window, its stdout read line by line.
#[derive(Debug)]
pub struct ExampleWindow {
    child: Child,
    lines: mpsc::Receiver<String>,
    window: std::cell::RefCell<Option<String>>,
}

impl ExampleWindow {
    /// Starts the example `name` of the crate under test (built next to the
    /// test binary, in `target/<profile>/examples/`) with `args` and extra
    /// environment `env`, on X11: `WAYLAND_DISPLAY` is removed.
    ///
    /// # Panics
    ///
    /// Without a `DISPLAY`, or if the example cannot start.
    pub fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> ExampleWindow {
        let display = std::env::var("DISPLAY").unwrap_or_default();
        assert!(
            !display.is_empty(),
            "no DISPLAY: run the suite through ./scripts/test.sh, which starts Xvfb"
        );
        let mut exe = std::env::current_exe().expect("the test binary's path");
        exe.pop();
        exe.pop();
        exe.push("examples");
        exe.push(name);
        let mut cmd = Command::new(&exe);
        cmd.args(args)
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("run the example {}: {e}", exe.display()));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("a piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ExampleWindow {
            child,
            lines,
            window: std::cell::RefCell::new(None),
        }
    }

    /// The next line the example prints.
    ///
    /// # Panics
    ///
    /// If none comes within [`LINE_LIMIT`]; `what` says what was awaited.
    pub fn next_line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(LINE_LIMIT)
            .unwrap_or_else(|_| panic!("the example did not print {what:?} within {LINE_LIMIT:?}"))
    }

    /// Focuses the window whose title contains `title` (found once, then
    /// remembered) and types `text` then Return into it, as real key
    /// presses through the X server (xdotool's XTEST).
    ///
    /// # Panics
    ///
    /// If xdotool is missing or fails.
    pub fn type_line(&self, title: &str, text: &str) {
        let mut window = self.window.borrow_mut();
        if window.is_none() {
            let found = xdotool(&["search", "--sync", "--name", title]);
            let id = found.lines().next().expect("the window's id").to_owned();
            xdotool(&["windowfocus", "--sync", &id]);
            *window = Some(id);
        }
        xdotool(&["type", "--delay", "10", text]);
        xdotool(&["key", "Return"]);
    }

    /// Waits for the example to end and checks that it ended cleanly.
    ///
    /// # Panics
    ///
    /// If it exits with a failure.
    pub fn wait_success(mut self) {
        let status = self.child.wait().expect("the example ends");
        assert!(status.success(), "the example ended with {status:?}");
    }
}

impl Drop for ExampleWindow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs xdotool with `args`; returns what it printed.
///
/// # Panics
///
/// If xdotool is missing or fails.
pub fn xdotool(args: &[&str]) -> String {
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
