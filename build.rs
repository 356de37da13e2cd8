//! One name for the kqueue platforms, so `src/sys` does not repeat the
//! list: `cfg(kqueue)` on macOS, iOS and the BSDs.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kqueue)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        os.as_str(),
        "macos" | "ios" | "freebsd" | "dragonfly" | "netbsd" | "openbsd"
    ) {
        println!("cargo::rustc-cfg=kqueue");
    }
}
