//! The conformance suite under Qt with its default event dispatcher on
//! Linux (glib's main loop, `QEventDispatcherGlib`).
mod common;

fn main() {
    common::main_with(true);
}
