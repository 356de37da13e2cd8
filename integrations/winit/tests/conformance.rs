//! The host-loop conformance suite, hosted by winit on X11 (Xvfb in CI).
//!
//! winit allows one `EventLoop` per process, on the main thread, so this
//! test has its own `main` (harness = false) and runs every check in turn
//! against one loop, with a real window open. Host timers are the
//! application's own `ControlFlow::WaitUntil` deadlines.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
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

fn main() {
    if std::env::var_os("DISPLAY").is_none() {
        eprintln!("no DISPLAY: run the suite through ./scripts/test.sh, which starts Xvfb");
        std::process::exit(1);
    }
    // Force X11: winit's Wayland backend starts a thread in its pump.
    std::env::remove_var("WAYLAND_DISPLAY");
    let harness = Winit {
        event_loop: RefCell::new(
            EventLoop::with_user_event()
                .build()
                .expect("an X11 event loop"),
        ),
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
                conformance::idle_costs_no_wakeups(h, Duration::from_secs(1));
            }),
        ),
    ]);
    let proxy_check: Check = Box::new(user_events_from_a_proxy_wake_the_loop);
    checks.push(("user_events_from_a_proxy_wake_the_loop", proxy_check));
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in &checks {
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| check(&harness))) {
            Ok(()) => {
                passed += 1;
                println!("test winit::{name} ... ok ({:?})", started.elapsed());
            }
            Err(_) => {
                failed += 1;
                println!("test winit::{name} ... FAILED");
            }
        }
    }
    println!("winit conformance: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
