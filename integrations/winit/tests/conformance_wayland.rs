//! The host-loop conformance suite, hosted by winit on Wayland: a real
//! compositor (weston 10 with its headless backend, started here on a
//! private socket in a private runtime directory), a real window, every
//! check as on X11. Needs the `wayland` feature and weston
//! (`scripts/test.sh` installs it).

#[cfg(free_unix)]
mod common;

#[cfg(free_unix)]
mod wayland {
    use super::common;

    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use winit::event_loop::EventLoop;
    use winit::platform::wayland::EventLoopBuilderExtWayland;

    /// weston, killed on drop.
    struct Weston(Child, std::path::PathBuf);

    impl Drop for Weston {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }

    fn start_weston() -> Weston {
        let dir = std::env::temp_dir().join(format!("braid-weston-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let child = Command::new("weston")
            .args([
                "--backend=headless-backend.so",
                "--socket=braid-wayland",
                "--idle-time=0",
                "--no-config",
                "--width=1024",
                "--height=768",
            ])
            .env("XDG_RUNTIME_DIR", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weston (scripts/test.sh installs it)");
        let weston = Weston(child, dir.clone());
        // Its socket appears once it listens.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dir.join("braid-wayland.lock").exists() || !dir.join("braid-wayland").exists() {
            assert!(Instant::now() < deadline, "weston did not start in 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        weston
    }

    pub(crate) fn main() {
        let weston = start_weston();
        std::env::set_var("XDG_RUNTIME_DIR", &weston.1);
        std::env::set_var("WAYLAND_DISPLAY", "braid-wayland");
        // No X11 to fall back to: the loop is Wayland's or nothing.
        std::env::remove_var("DISPLAY");
        let event_loop = EventLoop::with_user_event()
            .with_wayland()
            .build()
            .expect("a Wayland event loop on weston");
        let failed = common::run_suite("winit-wayland", event_loop);
        drop(weston);
        if failed > 0 {
            std::process::exit(1);
        }
    }
}

fn main() {
    // Wayland exists on Linux and the BSDs only.
    #[cfg(free_unix)]
    wayland::main();
}
