//! Placeholder for braid's winit demo; see the project's issues.

fn main() {
    eprintln!(
        "demo-winit is not built yet; run `cargo run --example chat_server` for the chat example"
    );
    std::process::exit(2);
}
