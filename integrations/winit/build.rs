//! One name for the platforms where winit runs on X11 or Wayland and its
//! event loop has an fd: `cfg(free_unix)` on Linux and the BSDs.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(free_unix)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        os.as_str(),
        "linux" | "freebsd" | "dragonfly" | "netbsd" | "openbsd"
    ) {
        println!("cargo::rustc-cfg=free_unix");
    }
}
