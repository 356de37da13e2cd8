//! The Qt example in a real Qt Quick window (X11 under Xvfb in CI): a line
//! from its server reaches the window, keystrokes typed into the window
//! (real X events, from xdotool) go out as a line and the answer comes
//! back to the window; the reactor's stop then quits the application.

use braid::testing::window::ExampleWindow;

#[test]
fn qt_window_shows_received_lines_and_sends_what_is_typed() {
    let app = ExampleWindow::start(
        "qt_lines",
        &["--quit-after", "3"],
        &[("QT_QPA_PLATFORM", "xcb")],
    );
    assert_eq!(
        app.next_line("the greeting"),
        "shown: hello from the braid server: type a line and press Enter"
    );
    for typed in ["hi there", "bye"] {
        app.type_line("braid: lines over TCP, on Qt", typed);
        assert_eq!(app.next_line("the sent line"), format!("sent: {typed}"));
        assert_eq!(app.next_line("the answer"), format!("shown: echo: {typed}"));
    }
    // The third line shown stopped the reactor, which quit the application.
    app.wait_success();
}
