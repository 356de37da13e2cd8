//! The host-loop conformance suite, hosted by a calloop event loop: the
//! reactor is one source among the loop's, host timers are calloop timers.

use std::cell::RefCell;
use std::time::Duration;

use braid::testing::conformance::{self, Harness, HostTick};
use braid::Reactor;
use braid_calloop::ReactorSource;
use calloop::timer::{TimeoutAction, Timer};
use calloop::EventLoop;

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

#[derive(Default)]
struct Calloop {
    intervals: RefCell<Vec<(Duration, HostTick)>>,
    tasks: RefCell<Vec<Task>>,
}

/// The loop's shared data: counts dispatches, as a real program's state.
#[derive(Default)]
struct Data {
    dispatches: u64,
}

impl Harness for Calloop {
    fn run(&self, reactor: &Reactor) {
        let mut event_loop: EventLoop<Data> = EventLoop::try_new().unwrap();
        let source = ReactorSource::new(reactor)
            .unwrap()
            .stop_loop_on_stop(event_loop.get_signal());
        let token = event_loop
            .handle()
            .insert_source(source, |_d, _, data: &mut Data| data.dispatches += 1)
            .map_err(|e| e.error)
            .unwrap();
        for (every, mut f) in self.intervals.borrow_mut().drain(..) {
            event_loop
                .handle()
                .insert_source(Timer::from_duration(every), move |_, _, _| {
                    if f() {
                        TimeoutAction::ToDuration(every)
                    } else {
                        TimeoutAction::Drop
                    }
                })
                .unwrap();
        }
        // Tasks on calloop's own executor.
        let (executor, scheduler) = calloop::futures::executor::<()>().unwrap();
        let pending = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let p = pending.clone();
        event_loop
            .handle()
            .insert_source(executor, move |(), _, _| p.set(p.get() - 1))
            .unwrap();
        for t in self.tasks.borrow_mut().drain(..) {
            pending.set(pending.get() + 1);
            scheduler.schedule(t).unwrap();
        }
        let mut data = Data::default();
        event_loop.run(None, &mut data, |_| {}).unwrap();
        // The application's loop goes on after the reactor stops.
        for _ in 0..1000 {
            if pending.get() == 0 {
                break;
            }
            event_loop
                .dispatch(Some(Duration::from_millis(1)), &mut data)
                .unwrap();
        }
        event_loop.handle().remove(token);
        assert!(data.dispatches > 0);
    }

    fn host_interval(&self, every: Duration, f: HostTick) {
        self.intervals.borrow_mut().push((every, f));
    }

    fn name(&self) -> String {
        "calloop".into()
    }

    fn host_spawn(&self, task: Task) -> bool {
        self.tasks.borrow_mut().push(task);
        true
    }
}

braid::conformance_tests!(Calloop::default());

// The batteries' checks, beside the core's.
#[test]
fn conformance_tls_echo_start_tls_and_refusal() {
    braid_tls::testing::tls_echo_start_tls_and_refusal(&Calloop::default());
}

#[test]
fn conformance_http_site_and_agent() {
    braid_web::testing::http_site_and_agent(&Calloop::default());
}

#[test]
fn conformance_gui_stays_responsive_under_a_flood() {
    conformance::gui_stays_responsive_under_a_flood(&Calloop::default());
}

#[test]
fn conformance_idle_costs_no_wakeups() {
    conformance::idle_costs_no_wakeups(&Calloop::default(), Duration::from_secs(1));
}

#[test]
fn removing_the_source_detaches_the_reactor() {
    let reactor = Reactor::new().unwrap();
    let event_loop: EventLoop<()> = EventLoop::try_new().unwrap();
    let token = event_loop
        .handle()
        .insert_source(ReactorSource::new(&reactor).unwrap(), |_, _, _| {})
        .unwrap();
    assert!(ReactorSource::new(&reactor).is_err(), "one host at a time");
    event_loop.handle().remove(token);
    assert!(ReactorSource::new(&reactor).is_ok(), "detached on removal");
}
