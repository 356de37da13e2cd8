//! TLS's check of the host-loop conformance suite, under the standalone
//! loop (each host crate runs it under its own loop).

use braid::testing::StandaloneHarness;

#[test]
fn conformance_tls_echo_start_tls_and_refusal() {
    braid_tls::testing::tls_echo_start_tls_and_refusal(&StandaloneHarness::default());
}
