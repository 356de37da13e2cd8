//! The conformance suite under Qt's own UNIX event dispatcher
//! (`QT_NO_GLIB=1`: Qt's `poll(2)` loop, as on a Qt built without glib).
mod common;

fn main() {
    common::main_with(false);
}
