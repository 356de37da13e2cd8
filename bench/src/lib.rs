//! What braid's benchmark binaries share: running a reactor under each host
//! loop, each in a process of its own.

use braid::Reactor;

pub mod segments;

/// The hosts a benchmark can run under; the GUI ones need a display.
/// `poll` is a hand-written `poll(2)` loop on the reactor's fd: the least
/// any host that nests the reactor's fd can cost (one more syscall per
/// wakeup), beside which glib's and calloop's own work shows.
/// `qt` is a `QApplication` (Qt 6, its glib dispatcher) on the display's
/// platform, or Qt's `offscreen` one without a display, `qt-unix` the same
/// with Qt's own UNIX dispatcher (`QT_NO_GLIB=1`); `winit+wayland`
/// is winit on the Wayland compositor `WAYLAND_DISPLAY` names (weston).
pub const HOSTS: [&str; 9] = [
    "standalone",
    "poll",
    "glib",
    "glib+gtk",
    "calloop",
    "winit",
    "winit+wayland",
    "qt",
    "qt-unix",
];

/// Whether `host` needs a display.
pub fn needs_display(host: &str) -> bool {
    matches!(host, "glib+gtk" | "winit")
}

/// Whether `host` can run here: an X display for the X11 GUI hosts, a
/// Wayland compositor for `winit+wayland`, this crate's `qt` feature for
/// the Qt hosts.
pub fn available(host: &str) -> bool {
    match host {
        "qt" | "qt-unix" => cfg!(feature = "qt"),
        "winit+wayland" => std::env::var_os("WAYLAND_DISPLAY").is_some(),
        h if needs_display(h) => std::env::var_os("DISPLAY").is_some(),
        _ => true,
    }
}

/// Runs `reactor` under `host` until it stops. `None` if the host cannot
/// start here (no display for GTK or winit).
///
/// # Panics
///
/// On an unknown host name, or if attaching fails.
pub fn run_under(host: &str, reactor: &Reactor) -> Option<()> {
    match host {
        "standalone" => reactor.run().unwrap(),
        "poll" => run_poll(reactor),
        "glib" => run_glib(reactor),
        "glib+gtk" => {
            let _window = open_gtk_window()?;
            run_glib(reactor);
        }
        "calloop" => {
            let mut el: calloop::EventLoop<()> = calloop::EventLoop::try_new().unwrap();
            let src = braid_calloop::ReactorSource::new(reactor)
                .unwrap()
                .stop_loop_on_stop(el.get_signal());
            el.handle().insert_source(src, |_, _, _| {}).unwrap();
            el.run(None, &mut (), |_| {}).unwrap();
        }
        "winit" => {
            std::env::remove_var("WAYLAND_DISPLAY");
            let mut el = winit::event_loop::EventLoop::new().ok()?;
            braid_winit::run_app(&mut el, reactor, &mut WinitApp(None)).unwrap();
        }
        "winit+wayland" => {
            use winit::platform::wayland::EventLoopBuilderExtWayland;
            std::env::remove_var("DISPLAY");
            let mut el = winit::event_loop::EventLoop::builder()
                .with_wayland()
                .build()
                .ok()?;
            braid_winit::run_app(&mut el, reactor, &mut WinitApp(None)).unwrap();
        }
        #[cfg(feature = "qt")]
        "qt" | "qt-unix" => {
            let _app = qt_application(host == "qt-unix");
            let attached = braid_qt::attach(reactor).unwrap();
            attached.quit_on_stop();
            attached.exec();
        }
        #[cfg(not(feature = "qt"))]
        "qt" | "qt-unix" => return None,
        other => panic!("unknown host {other}"),
    }
    Some(())
}

/// A winit application with one window open, nothing else.
struct WinitApp(Option<winit::window::Window>);

impl winit::application::ApplicationHandler for WinitApp {
    fn resumed(&mut self, el: &winit::event_loop::ActiveEventLoop) {
        if self.0.is_none() {
            self.0 = el
                .create_window(winit::window::Window::default_attributes())
                .ok();
        }
    }
    fn window_event(
        &mut self,
        _: &winit::event_loop::ActiveEventLoop,
        _: winit::window::WindowId,
        _: winit::event::WindowEvent,
    ) {
    }
}

/// The smallest foreign loop: `poll(2)` on the reactor's fd, then a
/// dispatch (as `examples/poll_host.rs`).
fn run_poll(reactor: &Reactor) {
    struct Stopped(std::cell::Cell<bool>);
    impl braid::HostLoop for Stopped {
        fn reactor_stopped(&self) {
            self.0.set(true);
        }
    }
    let host = std::rc::Rc::new(Stopped(std::cell::Cell::new(false)));
    let _guard = reactor.attach_host(host.clone()).unwrap();
    while !host.0.get() {
        poll_once(reactor);
    }
}

/// Blocks in `poll(2)` on the reactor's fd, then dispatches.
fn poll_once(reactor: &Reactor) {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: reactor.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the call.
    if unsafe { libc::poll(&mut fd, 1, -1) } > 0 {
        reactor.dispatch(braid::Budget::default());
    }
}

/// Initialises GTK and presents a small window, as a GTK app has open.
fn open_gtk_window() -> Option<gtk4::Window> {
    gtk4::init().ok()?;
    use gtk4::prelude::*;
    let window = gtk4::Window::builder()
        .title("braid benchmark")
        .default_width(200)
        .build();
    window.set_child(Some(&gtk4::Label::new(Some("measuring"))));
    window.present();
    Some(window)
}

#[cfg(feature = "qt")]
/// The process's Qt application: on X11 with a display, else offscreen;
/// with Qt's own UNIX event dispatcher if `unix`, else its glib one.
pub fn qt_application(unix: bool) -> braid_qt::testing::Application {
    if unix {
        std::env::set_var("QT_NO_GLIB", "1");
    } else {
        std::env::remove_var("QT_NO_GLIB");
    }
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("QT_QPA_PLATFORM").is_none() {
        std::env::set_var("QT_QPA_PLATFORM", "offscreen");
    }
    std::env::remove_var("WAYLAND_DISPLAY");
    braid_qt::testing::Application::new()
}

fn run_glib(reactor: &Reactor) {
    let ctx = glib::MainContext::default();
    let ml = glib::MainLoop::new(Some(&ctx), false);
    let attached = braid_glib::attach(reactor, &ctx).unwrap();
    attached.quit_on_stop(&ml);
    ml.run();
}

/// The value after `name` on the command line, or `default`.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

/// Raises the soft limit on open files to the hard limit (for 10,000
/// connections); returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// A binary built next to the running one (the servers and the load
/// generator the harnesses start).
///
/// # Panics
///
/// If it is not there: build the benchmark binaries first.
pub fn sibling(name: &str) -> std::path::PathBuf {
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    p.push(name);
    assert!(
        p.exists(),
        "{} is missing: build the benchmark binaries first (cargo build --release -p braid-bench --bins), or use ./scripts/bench.sh",
        p.display()
    );
    p
}

/// The directory of a baseline build's benchmark binaries (an earlier
/// commit built elsewhere), from `BRAID_BENCH_BASELINE`: with it, the
/// harnesses also run that build's braid as the kind `braid-before`, in
/// the same run, so a change is measured against what came before it.
pub fn baseline_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("BRAID_BENCH_BASELINE")
        .map(std::path::PathBuf::from)
        .filter(|d| !d.as_os_str().is_empty())
}

/// The server command for `kind` from binary `bin`: the baseline build's
/// for `*-before` kinds, this build's otherwise.
pub fn server_command(bin: &str, kind: &str) -> std::process::Command {
    let (path, kind) = match (kind.strip_suffix("-before"), baseline_dir()) {
        (Some(k), Some(dir)) => (dir.join(bin), k),
        _ => (sibling(bin), kind),
    };
    let mut c = std::process::Command::new(path);
    c.args(["--kind", kind]);
    c
}

/// `kinds` with `braid-before` after `braid` when a baseline is set.
pub fn with_baseline(mut kinds: Vec<String>) -> Vec<String> {
    if baseline_dir().is_some() && !kinds.iter().any(|k| k == "braid-before") {
        let at = kinds.iter().position(|k| k == "braid").map_or(0, |i| i + 1);
        kinds.insert(at, "braid-before".into());
    }
    kinds
}

/// `cmd`, to run pinned to one CPU.
pub fn pinned(mut cmd: std::process::Command, cpu: usize) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: sched_setaffinity on the child itself, between fork and exec;
    // it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            Ok(())
        });
    }
    cmd
}

/// CPU seconds a process has used so far (all threads, user and system).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}
