#!/usr/bin/env bash
# braid's whole test suite, exactly as CI runs it (.ci/run calls this).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say "formatting: cargo fmt --check"
cargo fmt --all -- --check

say "lints: cargo clippy --workspace --all-targets --all-features -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

say "tests: cargo test --workspace --all-features (unit, integration over loopback, doctests)"
cargo test --workspace --all-features

say "the core alone, without the testing feature: cargo check -p braid --no-default-features"
cargo check -p braid --no-default-features

say "all tests passed"
