//! The host-loop conformance suite, hosted by winit on X11 (Xvfb in CI),
//! or on Windows (run under Wine, whose X11 driver shows the window on
//! the same Xvfb). The checks are in `common`; the Wayland binary runs
//! them on weston.

mod common;

use winit::event_loop::EventLoop;

fn main() {
    if std::env::var_os("DISPLAY").is_none() {
        eprintln!("no DISPLAY: run the suite through ./scripts/test.sh, which starts Xvfb");
        std::process::exit(1);
    }
    // Force X11 here; conformance_wayland runs the same checks on Wayland.
    std::env::remove_var("WAYLAND_DISPLAY");
    let event_loop = EventLoop::with_user_event().build().expect("an event loop");
    let backend = if cfg!(windows) {
        "winit-windows"
    } else {
        "winit-x11"
    };
    if common::run_suite(backend, event_loop) > 0 {
        std::process::exit(1);
    }
}
