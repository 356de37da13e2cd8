//! The host-loop conformance suite, hosted by a glib main loop.

use std::time::Duration;

use braid::testing::conformance::{self, Harness, HostTick};
use braid::Reactor;
use braid_glib::harness::GlibHarness;

#[derive(Default)]
struct Glib(GlibHarness);

impl Harness for Glib {
    fn run(&self, reactor: &Reactor) {
        self.0.run_reactor(reactor);
    }
    fn host_interval(&self, every: Duration, f: HostTick) {
        self.0.add_interval(every, f);
    }
    fn name(&self) -> String {
        "glib".into()
    }
}

braid::conformance_tests!(Glib::default());

#[test]
fn conformance_gui_stays_responsive_under_a_flood() {
    conformance::gui_stays_responsive_under_a_flood(&Glib::default());
}

#[test]
fn conformance_idle_costs_no_wakeups() {
    conformance::idle_costs_no_wakeups(&Glib::default(), Duration::from_secs(1));
}
