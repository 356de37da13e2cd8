//! The host-loop conformance suite against the standalone loop.

use std::time::Duration;

use braid::testing::{conformance, StandaloneHarness};

braid::conformance_tests!(StandaloneHarness::default());

#[test]
fn conformance_gui_stays_responsive_under_a_flood() {
    conformance::gui_stays_responsive_under_a_flood(&StandaloneHarness::default());
}

#[test]
#[cfg_attr(
    windows,
    ignore = "counts context switches from Linux's /proc: none on Windows, and under Wine they count wineserver round trips, not the program's wakeups"
)]
fn conformance_idle_costs_no_wakeups() {
    conformance::idle_costs_no_wakeups(&StandaloneHarness::default(), Duration::from_secs(1));
}
