//! Compiles the crate's inline C++ (the `cpp!` blocks) against the Qt that
//! `qttypes` found (qmake6 on PATH, or `QMAKE`, or `QT_INCLUDE_PATH` with
//! `QT_LIBRARY_PATH`), with the flags Qt 6 needs.
fn main() {
    let include = std::env::var("DEP_QT_INCLUDE_PATH").expect("qttypes reports Qt's include path");
    let flags = std::env::var("DEP_QT_COMPILE_FLAGS").unwrap_or_default();
    let mut config = cpp_build::Config::new();
    for f in flags.split_terminator(';') {
        config.flag(f);
    }
    config.include(&include).build("src/lib.rs");
}
