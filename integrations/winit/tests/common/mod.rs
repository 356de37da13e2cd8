//! The host-loop conformance suite hosted by winit, shared by the X11 and
//! the Wayland test binaries.
//!
//! winit allows one `EventLoop` per process, on the main thread, so each
//! binary has its own `main` (harness = false) and runs every check in
//! turn against one loop, with a real window open. Host timers are the
//! application's own `ControlFlow::WaitUntil` deadlines.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use braid::testing::conformance::{self, Harness, HostTick};
use braid::Reactor;
use winit::application::ApplicationHandler;
use winit::event::{StartCause, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
use winit::window::{Window, WindowId};

struct Tick {
    every: Duration,
    next: Instant,
    f: HostTick,
}

/// A winit application whose only business is host timers, plus a window.
#[derive(Default)]
struct TestApp {
    ticks: Vec<Tick>,
    window: Option<Window>,
    /// Called with each user event sent through an `EventLoopProxy`.
    on_user_event: Option<Box<dyn FnMut(u32)>>,
}

impl ApplicationHandler<u32> for TestApp {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_none() {
            let attrs = Window::default_attributes().with_title("braid-winit conformance");
            self.window = Some(event_loop.create_window(attrs).expect("a window"));
        }
    }

    fn new_events(&mut self, _: &ActiveEventLoop, _cause: StartCause) {
        let now = Instant::now();
        self.ticks.retain_mut(|t| {
            if now < t.next {
                return true;
            }
            t.next = now + t.every;
            (t.f)()
        });
    }

    fn window_event(&mut self, _: &ActiveEventLoop, _: WindowId, _: WindowEvent) {}

    fn user_event(&mut self, _: &ActiveEventLoop, n: u32) {
        if let Some(f) = &mut self.on_user_event {
            f(n);
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        match self.ticks.iter().map(|t| t.next).min() {
            Some(t) => event_loop.set_control_flow(ControlFlow::WaitUntil(t)),
            None => event_loop.set_control_flow(ControlFlow::Wait),
        }
    }
}

struct Winit {
    event_loop: RefCell<EventLoop<u32>>,
    app: RefCell<TestApp>,
}

impl Harness for Winit {
    fn run(&self, reactor: &Reactor) {
        let end = braid_winit::run_app(
            &mut self.event_loop.borrow_mut(),
            reactor,
            &mut *self.app.borrow_mut(),
        )
        .expect("run the winit loop");
        assert_eq!(end, braid_winit::Exit::ReactorStopped);
        self.app.borrow_mut().ticks.clear();
    }

    fn host_interval(&self, every: Duration, f: HostTick) {
        self.app.borrow_mut().ticks.push(Tick {
            every,
            next: Instant::now() + every,
            f,
        });
    }

    fn name(&self) -> String {
        "winit".into()
    }
}

/// Events sent through an `EventLoopProxy` from other threads wake the
/// loop (through winit's fd) while the reactor idles, and reach the app in
/// order; the app then stops the reactor.
fn user_events_from_a_proxy_wake_the_loop(h: &Winit) {
    let reactor = Reactor::new().unwrap();
    let seen = std::rc::Rc::new(RefCell::new(Vec::new()));
    let (s, r) = (seen.clone(), reactor.clone());
    h.app.borrow_mut().on_user_event = Some(Box::new(move |n| {
        s.borrow_mut().push(n);
        if n == 99 {
            r.stop();
        }
    }));
    let proxy = h.event_loop.borrow().create_proxy();
    let sender = std::thread::spawn(move || {
        for n in 0..100u32 {
            proxy.send_event(n).expect("the loop is alive");
        }
    });
    let r = reactor.clone();
    let watchdog = reactor.call_later(Duration::from_secs(30), move || r.stop());
    h.run(&reactor);
    watchdog.cancel();
    sender.join().unwrap();
    h.app.borrow_mut().on_user_event = None;
    assert_eq!(*seen.borrow(), (0..100).collect::<Vec<u32>>());
}

/// Each thread of the process: id, name, voluntary context switches.
fn thread_switches() -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let tid = e.file_name().to_string_lossy().into_owned();
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        out.push((tid, name.trim().to_owned(), v));
    }
    out
}

/// Runs every check against `event_loop` (a real window open in it);
/// `backend` names it in the output. Returns how many checks failed.
pub fn run_suite(backend: &str, event_loop: EventLoop<u32>) -> usize {
    let harness = Winit {
        event_loop: RefCell::new(event_loop),
        app: RefCell::default(),
    };
    type Check = Box<dyn Fn(&Winit)>;
    // The core's checks, then the batteries', then winit's own.
    let mut checks: Vec<(&str, Check)> = conformance::checks()
        .into_iter()
        .map(|(n, f)| (n, Box::new(move |h: &Winit| f(h)) as Check))
        .collect();
    checks.extend::<Vec<(&str, Check)>>(vec![
        (
            "tls_echo_start_tls_and_refusal",
            Box::new(|h| braid_tls::testing::tls_echo_start_tls_and_refusal(h)),
        ),
        (
            "http_site_and_agent",
            Box::new(|h| braid_web::testing::http_site_and_agent(h)),
        ),
        (
            "gui_stays_responsive_under_a_flood",
            Box::new(|h| {
                conformance::gui_stays_responsive_under_a_flood(h);
            }),
        ),
        (
            "idle_costs_no_wakeups",
            Box::new(|h| {
                let before = thread_switches();
                conformance::idle_costs_no_wakeups(h, Duration::from_secs(1));
                let after = thread_switches();
                // Every thread of the process but the loop's own (counted
                // by the check): what each did over the check.
                let me = std::fs::read_link("/proc/thread-self")
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
                for (tid, name, v) in &after {
                    if Some(tid) == me.as_ref() {
                        continue;
                    }
                    let was = before.iter().find(|b| &b.0 == tid).map_or(0, |b| b.2);
                    println!("    winit: thread {name:?}: {} voluntary context switches over the idle check", v - was);
                }
                println!("    winit: {} threads in the process", after.len());
            }),
        ),
    ]);
    let proxy_check: Check = Box::new(user_events_from_a_proxy_wake_the_loop);
    checks.push(("user_events_from_a_proxy_wake_the_loop", proxy_check));
    if cfg!(windows) {
        // Counted from Linux's /proc. Under Wine winit's own loop never
        // sleeps (its MsgWaitForMultipleObjectsEx keeps seeing input:
        // 6,579 pumps of "up to 100 ms" in 2 s, with braid nowhere), so
        // there is nothing to learn about braid's host from it there.
        println!("    winit: idle_costs_no_wakeups skipped on Windows (no /proc; under Wine winit itself never sleeps)");
        checks.retain(|(name, _)| *name != "idle_costs_no_wakeups");
    }
    conformance::run_checks(backend, &harness, &checks)
}
