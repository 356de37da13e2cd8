//! One reactor run in turns under two hosts inside one process: what lets
//! `host-latency --paired` compare a host with standalone 20 ms apart
//! instead of seconds apart, so that the machine's drift (another tenant
//! on the core's sibling thread makes everything 30% slower for a while)
//! lands on both sides of a ratio.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use braid::{Budget, Reactor};

/// How the current turn ends: set by the host running it, called by the
/// workload when the turn's work is done.
pub type EndTurn = Rc<RefCell<Option<Box<dyn Fn()>>>>;

/// A host that can be entered and left again without stopping the
/// reactor: standalone, glib (optionally with a GTK4 window open), calloop.
pub struct Turns {
    host: String,
    calloop: Option<RefCell<calloop::EventLoop<'static, ()>>>,
    _window: Option<gtk4::Window>,
    #[cfg(feature = "qt")]
    _qt: Option<braid_qt::testing::Application>,
}

impl Turns {
    /// Prepares `host` ("standalone", "poll", "glib", "glib+gtk",
    /// "calloop", "qt", "qt-unix"). `None` if the host cannot
    /// take turns (winit, whose loop is left only when the reactor stops)
    /// or cannot start here.
    pub fn new(host: &str) -> Option<Turns> {
        let mut t = Turns {
            host: host.to_string(),
            calloop: None,
            _window: None,
            #[cfg(feature = "qt")]
            _qt: None,
        };
        match host {
            "standalone" | "poll" | "glib" => {}
            "glib+gtk" => t._window = Some(crate::open_gtk_window()?),
            "calloop" => t.calloop = Some(RefCell::new(calloop::EventLoop::try_new().ok()?)),
            #[cfg(feature = "qt")]
            "qt" | "qt-unix" => t._qt = Some(crate::qt_application(host == "qt-unix")),
            _ => return None,
        }
        Some(t)
    }

    /// Runs the reactor under this host until `end` is called.
    pub fn run(&self, reactor: &Reactor, end: &EndTurn) {
        match self.host.as_str() {
            "standalone" => standalone(reactor, end),
            "poll" => poll(reactor, end),
            "glib" | "glib+gtk" => {
                let ctx = glib::MainContext::default();
                let ml = glib::MainLoop::new(Some(&ctx), false);
                let _attached = braid_glib::attach(reactor, &ctx).unwrap();
                let m = ml.clone();
                *end.borrow_mut() = Some(Box::new(move || m.quit()));
                ml.run();
            }
            "calloop" => {
                let mut el = self.calloop.as_ref().unwrap().borrow_mut();
                let src = braid_calloop::ReactorSource::new(reactor).unwrap();
                let token = el.handle().insert_source(src, |_, _, _| {}).unwrap();
                let signal = el.get_signal();
                *end.borrow_mut() = Some(Box::new(move || signal.stop()));
                el.run(None, &mut (), |_| {}).unwrap();
                el.handle().remove(token);
            }
            #[cfg(feature = "qt")]
            "qt" | "qt-unix" => {
                let attached = braid_qt::attach(reactor).unwrap();
                *end.borrow_mut() = Some(Box::new(braid_qt::quit_application));
                attached.exec();
            }
            other => panic!("{other} cannot take turns"),
        }
        end.borrow_mut().take();
    }
}

/// Attaches a host that does nothing on stop and arms `end` to raise the
/// returned flag: what both self-driven loops below need.
fn alone(reactor: &Reactor, end: &EndTurn) -> (braid::HostGuard, Rc<Cell<bool>>) {
    struct Alone;
    impl braid::HostLoop for Alone {
        fn reactor_stopped(&self) {}
    }
    let guard = reactor.attach_host(Rc::new(Alone)).unwrap();
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    *end.borrow_mut() = Some(Box::new(move || d.set(true)));
    (guard, done)
}

/// `Reactor::run`'s loop, left when `end` is called.
fn standalone(reactor: &Reactor, end: &EndTurn) {
    let (_guard, done) = alone(reactor, end);
    while !done.get() {
        reactor.wait_and_dispatch(None, Budget::default()).unwrap();
    }
}

/// The hand-written `poll(2)` host of [`crate::run_under`]'s "poll", left
/// when `end` is called.
fn poll(reactor: &Reactor, end: &EndTurn) {
    let (_guard, done) = alone(reactor, end);
    while !done.get() {
        crate::poll_once(reactor);
    }
}
