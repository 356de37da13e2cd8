//! The host-loop conformance suite, hosted by a glib main loop: each run
//! gets a fresh `MainContext` made thread-default, a `MainLoop` that quits
//! when the reactor stops, and host timers that are glib timeout sources.

use std::cell::RefCell;
use std::time::Duration;

use braid::testing::conformance::{self, Harness, HostTick};
use braid::Reactor;
use glib::thread_guard::ThreadGuard;
use glib::{ControlFlow, MainContext, Priority};

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

#[derive(Default)]
struct Glib {
    intervals: RefCell<Vec<(Duration, HostTick)>>,
    tasks: RefCell<Vec<Task>>,
}

impl Harness for Glib {
    fn run(&self, reactor: &Reactor) {
        let context = MainContext::new();
        let intervals: Vec<_> = self.intervals.borrow_mut().drain(..).collect();
        context
            .with_thread_default(|| {
                let main_loop = glib::MainLoop::new(Some(&context), false);
                let attached =
                    braid_glib::attach(reactor, &context).expect("attach to a fresh context");
                attached.quit_on_stop(&main_loop);
                for (every, f) in intervals {
                    // Not timeout_add_local: g_timeout_add always uses the
                    // global default context, not this one.
                    let f = ThreadGuard::new(RefCell::new(f));
                    let tick = glib::timeout_source_new(
                        every,
                        Some("test tick"),
                        Priority::DEFAULT,
                        move || {
                            if (f.get_ref().borrow_mut())() {
                                ControlFlow::Continue
                            } else {
                                ControlFlow::Break
                            }
                        },
                    );
                    tick.attach(Some(&context));
                }
                // Tasks on glib's own executor, as a GTK app's
                // `glib::spawn_future_local` would put them.
                let pending = std::rc::Rc::new(std::cell::Cell::new(0usize));
                for t in self.tasks.borrow_mut().drain(..) {
                    pending.set(pending.get() + 1);
                    let p = pending.clone();
                    context.spawn_local(async move {
                        t.await;
                        p.set(p.get() - 1);
                    });
                }
                main_loop.run();
                // The application's loop goes on after the reactor stops:
                // let the tasks finish what they await.
                for _ in 0..1000 {
                    if pending.get() == 0 || !context.iteration(false) {
                        break;
                    }
                }
            })
            .expect("make the context thread-default");
    }

    fn host_interval(&self, every: Duration, f: HostTick) {
        self.intervals.borrow_mut().push((every, f));
    }

    fn name(&self) -> String {
        "glib".into()
    }

    fn host_spawn(&self, task: Task) -> bool {
        self.tasks.borrow_mut().push(task);
        true
    }
}

braid::conformance_tests!(Glib::default());

// The batteries' checks, beside the core's.
#[test]
fn conformance_tls_echo_start_tls_and_refusal() {
    braid_tls::testing::tls_echo_start_tls_and_refusal(&Glib::default());
}

#[test]
fn conformance_http_site_and_agent() {
    braid_web::testing::http_site_and_agent(&Glib::default());
}

#[test]
fn conformance_gui_stays_responsive_under_a_flood() {
    conformance::gui_stays_responsive_under_a_flood(&Glib::default());
}

#[test]
fn conformance_idle_costs_no_wakeups() {
    conformance::idle_costs_no_wakeups(&Glib::default(), Duration::from_secs(1));
}

#[test]
fn attaching_twice_or_from_a_foreign_owner_is_refused() {
    let reactor = Reactor::new().unwrap();
    let context = MainContext::new();
    let first = braid_glib::attach(&reactor, &context).unwrap();
    let err = braid_glib::attach(&reactor, &context).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    drop(first);
    // Owned by another thread: refused.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let ctx = context.clone();
    let owner = std::thread::spawn(move || {
        let _guard = ctx.acquire().unwrap();
        tx.send(()).unwrap();
        done_rx.recv().unwrap();
    });
    rx.recv().unwrap();
    let err = braid_glib::attach(&reactor, &context).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    done_tx.send(()).unwrap();
    owner.join().unwrap();
    assert!(braid_glib::attach(&reactor, &context).is_ok());
}
