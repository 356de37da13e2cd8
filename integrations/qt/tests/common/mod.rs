//! The host-loop conformance suite run by Qt's loop, shared by the two
//! test binaries (Qt's glib dispatcher and its own UNIX dispatcher).
//!
//! Qt wants one application per process, on the main thread, so each
//! binary has its own `main` (`harness = false`) and runs every check in
//! turn against one `QApplication`: on X11 when a display is there (Xvfb
//! in CI), else on Qt's `offscreen` platform.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use braid::testing::conformance::{self, Harness, Watchdog};
use braid::{Address, Protocol, Reactor, Transport};
use braid_qt::testing::{close_modal_dialog, exec_modal_dialog, Application, QtHarness};

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, d: &[u8]) {
        t.write(d);
    }
}

/// A protocol callback opens a modal dialog (`QDialog::exec`, a nested
/// loop). While it is open, a hundred round trips on another connection
/// complete and a reactor timer fires; then 300 ms with the network idle
/// and the dialog still open cost almost no CPU (the nested loop sleeps,
/// it does not spin); then the dialog closes and the callback returns.
fn a_modal_dialog_keeps_the_network_running(h: &QtHarness) {
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    let trips = Rc::new(Cell::new(0u32));
    let idle_cpu = Rc::new(Cell::new(None::<Duration>));
    let returned = Rc::new(Cell::new(false));

    struct Opener {
        reactor: Reactor,
        returned: Rc<Cell<bool>>,
    }
    impl Protocol for Opener {
        fn data_received(&mut self, _: &Transport, _: &[u8]) {
            exec_modal_dialog("braid-qt: a modal dialog opened from data_received");
            self.returned.set(true);
            self.reactor.stop();
        }
    }
    let (r, ret) = (reactor.clone(), returned.clone());
    let opener = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| Opener {
            reactor: r.clone(),
            returned: ret.clone(),
        })
        .unwrap();
    let echo = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Echo)
        .unwrap();

    struct Poke;
    impl Protocol for Poke {
        fn connection_made(&mut self, t: &Transport) {
            t.write(b"open");
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    }
    reactor.connect_tcp(opener.local_addr(), |_: &Address| Poke, None);

    // Round trips that can only happen inside the dialog's loop: they start
    // 50 ms after the poke, when the dialog is open.
    struct Trips {
        n: Rc<Cell<u32>>,
        reactor: Reactor,
        idle_cpu: Rc<Cell<Option<Duration>>>,
    }
    impl Protocol for Trips {
        fn connection_made(&mut self, t: &Transport) {
            t.write(b"ping");
        }
        fn data_received(&mut self, t: &Transport, d: &[u8]) {
            assert_eq!(d, b"ping");
            self.n.set(self.n.get() + 1);
            if self.n.get() < 100 {
                t.write(b"ping");
                return;
            }
            t.lose_connection();
            // Idle for 300 ms with the dialog open; a timer ends it.
            let start = thread_cpu();
            let c = self.idle_cpu.clone();
            self.reactor
                .call_later(Duration::from_millis(300), move || {
                    c.set(Some(thread_cpu() - start));
                    assert!(close_modal_dialog(), "the dialog is open");
                });
        }
    }
    let (n, r, c) = (trips.clone(), reactor.clone(), idle_cpu.clone());
    let echo_addr = echo.local_addr();
    reactor.call_later(Duration::from_millis(50), move || {
        let (n, r2, c) = (n.clone(), r.clone(), c.clone());
        r.connect_tcp(
            echo_addr,
            move |_: &Address| Trips {
                n: n.clone(),
                reactor: r2.clone(),
                idle_cpu: c.clone(),
            },
            None,
        );
    });
    h.run(&reactor);
    dog.check("a modal dialog keeps the network running");
    assert_eq!(trips.get(), 100, "round trips while the dialog was open");
    assert!(
        returned.get(),
        "the dialog closed and the callback returned"
    );
    let cpu = idle_cpu.get().expect("the idle stretch was measured");
    println!(
        "    qt: 100 round trips inside a modal dialog; 300 ms idle in it cost {cpu:?} of CPU"
    );
    assert!(
        cpu < Duration::from_millis(150),
        "the nested loop spins: {cpu:?} of CPU in 300 ms idle"
    );
}

/// No event loop on the thread: refused with `NotFound`; a second host:
/// `AlreadyExists`; after the first is dropped, attaching works again.
fn attaching_is_refused_where_it_cannot_work(_: &QtHarness) {
    let refused = std::thread::spawn(|| {
        let reactor = Reactor::new().unwrap();
        braid_qt::attach(&reactor).map(drop).unwrap_err().kind()
    })
    .join()
    .unwrap();
    assert_eq!(refused, std::io::ErrorKind::NotFound);
    let reactor = Reactor::new().unwrap();
    let first = braid_qt::attach(&reactor).unwrap();
    let err = braid_qt::attach(&reactor).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    drop(first);
    let again = braid_qt::attach(&reactor).expect("attach after detaching");
    drop(again);
}

/// A stop asked before `exec()` starts still ends it (the quit is queued).
fn a_stop_before_exec_still_quits(h: &QtHarness) {
    let reactor = Reactor::new().unwrap();
    let dog = Watchdog::arm(&reactor);
    reactor.call_soon({
        let r = reactor.clone();
        move || r.stop()
    });
    h.run(&reactor);
    dog.check("a stop before exec");
}

type Check = Box<dyn Fn(&QtHarness)>;

/// Runs the whole suite; `expect_glib` says which of Qt's dispatchers the
/// binary asked for (checked, so the two binaries really differ).
pub fn main_with(expect_glib: bool) {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("QT_QPA_PLATFORM").is_none() {
        println!("no DISPLAY: running Qt on its offscreen platform");
        std::env::set_var("QT_QPA_PLATFORM", "offscreen");
    }
    std::env::remove_var("WAYLAND_DISPLAY");
    if expect_glib {
        std::env::remove_var("QT_NO_GLIB");
    } else {
        std::env::set_var("QT_NO_GLIB", "1");
    }
    let app = Application::new();
    let dispatcher = app.dispatcher_name();
    let platform = app.platform_name();
    println!("Qt platform {platform}, dispatcher {dispatcher}");
    assert_eq!(
        dispatcher.contains("Glib"),
        expect_glib,
        "Qt's event dispatcher is {dispatcher}"
    );
    let name = if expect_glib { "qt-glib" } else { "qt-unix" };
    let harness = QtHarness::default();
    let mut checks: Vec<(&str, Check)> = conformance::checks()
        .into_iter()
        .map(|(n, f)| (n, Box::new(move |h: &QtHarness| f(h)) as Check))
        .collect();
    checks.push((
        "tls_echo_start_tls_and_refusal",
        Box::new(|h| braid_tls::testing::tls_echo_start_tls_and_refusal(h)),
    ));
    checks.push((
        "http_site_and_agent",
        Box::new(|h| braid_web::testing::http_site_and_agent(h)),
    ));
    checks.push((
        "gui_stays_responsive_under_a_flood",
        Box::new(|h| {
            conformance::gui_stays_responsive_under_a_flood(h);
        }),
    ));
    checks.push((
        "idle_costs_no_wakeups",
        Box::new(|h| {
            conformance::idle_costs_no_wakeups(h, Duration::from_secs(1));
        }),
    ));
    checks.push((
        "a_modal_dialog_keeps_the_network_running",
        Box::new(a_modal_dialog_keeps_the_network_running),
    ));
    checks.push((
        "attaching_is_refused_where_it_cannot_work",
        Box::new(attaching_is_refused_where_it_cannot_work),
    ));
    checks.push((
        "a_stop_before_exec_still_quits",
        Box::new(a_stop_before_exec_still_quits),
    ));
    let failed = conformance::run_checks(name, &harness, &checks);
    drop(app);
    if failed > 0 {
        std::process::exit(1);
    }
}
