//! The egui example (eframe on braid-winit) in a real window (X11 under
//! Xvfb in CI, drawn with OpenGL through Mesa): a line from its server
//! reaches the window, keystrokes typed into the window (real X events,
//! from xdotool) go out as a line and the answer comes back to the window;
//! the reactor's stop then ends `run_app` and the program.

use braid::testing::window::ExampleWindow;

#[test]
fn egui_window_shows_received_lines_and_sends_what_is_typed() {
    let app = ExampleWindow::start("egui_lines", &["--quit-after", "3"], &[]);
    assert_eq!(
        app.next_line("the greeting"),
        "shown: hello from the braid server: type a line and press Enter"
    );
    for typed in ["hi there", "bye"] {
        app.type_line("braid: lines over TCP, on winit", typed);
        assert_eq!(app.next_line("the sent line"), format!("sent: {typed}"));
        assert_eq!(app.next_line("the answer"), format!("shown: echo: {typed}"));
    }
    app.wait_success();
}
