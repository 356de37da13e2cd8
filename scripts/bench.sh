#!/usr/bin/env bash
# braid against its peers, side by side in one run (issue 9's harness).
#   ./scripts/bench.sh           the full run (about 15 minutes): writes BENCHMARKS.md and BENCHMARKS.svg
#   ./scripts/bench.sh --quick   a smoke run of a few seconds, to target/bench/quick.md (CI runs it)
# Other options go to the harness (bench/src/bin/compare.rs): --rounds N,
# --secs S, --bulk-mib M, --idle-conns N, --idle-secs S, --kinds a,b,c.
# BRAID_BENCH_PROFILE=debug builds without optimisations (CI's smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
profile="${BRAID_BENCH_PROFILE:-release}"
flag="--release"
[ "$profile" = "debug" ] && flag=""
# Python Twisted's epoll reactor as one of the peers, in its own venv.
py=""
if command -v python3 >/dev/null 2>&1; then
    if [ ! -x target/bench-venv/bin/python ] || ! target/bench-venv/bin/python -c "import twisted" 2>/dev/null; then
        say "installing Twisted into target/bench-venv (one of the peers)"
        python3 -m venv target/bench-venv 2>/dev/null || { apt_need python3-venv; python3 -m venv target/bench-venv; }
        target/bench-venv/bin/pip install --quiet "twisted==26.10.0" || say "Twisted did not install: it is left out of the comparison"
    fi
    target/bench-venv/bin/python -c "import twisted" 2>/dev/null && py="$PWD/target/bench-venv/bin/python"
fi
say "building the servers, the load generator and the harness (cargo build $flag -p braid-bench --bins)"
cargo build --quiet $flag -p braid-bench --bins
say "running the comparison ($profile build${py:+, with Twisted}): target/$profile/compare $*"
"target/$profile/compare" ${py:+--python "$py"} "$@"
# HTTP hello world with wrk: braid, hyper on tokio, Twisted Web.
command -v wrk >/dev/null 2>&1 || apt_need wrk
quick=""
for a in "$@"; do [ "$a" = "--quick" ] && quick="--quick"; done
say "running the HTTP comparison with wrk: target/$profile/http-compare $quick"
"target/$profile/http-compare" ${py:+--python "$py"} $quick
# Syscalls per echoed message, by strace (a full run only: it needs the
# release binaries and slows the servers it traces).
if [ -z "$quick" ] && [ "$profile" = release ]; then
    say "syscalls per echoed message on one connection (strace): scripts/syscalls.sh"
    ./scripts/syscalls.sh braid ${BRAID_BENCH_BASELINE:+braid-before} braid-glib braid-calloop tokio smol limit
fi
