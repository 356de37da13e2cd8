//! HTTP's check of the host-loop conformance suite, under the standalone
//! loop (each host crate runs it under its own loop).

use braid::testing::StandaloneHarness;

#[test]
fn conformance_http_site_and_agent() {
    braid_web::testing::http_site_and_agent(&StandaloneHarness::default());
}
