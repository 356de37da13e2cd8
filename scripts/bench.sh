#!/usr/bin/env bash
# braid against its peers, side by side in one run (issue 9's harness).
#   ./scripts/bench.sh           the full run (about 25 minutes): writes BENCHMARKS.md and BENCHMARKS.svg
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
# Qt 6 for the qt hosts of host-latency and idle-wakeups (feature qt).
apt_need qt6-base-dev qt6-qpa-plugins
say "building the servers, the load generator and the harness (cargo build $flag -p braid-bench --features qt --bins)"
cargo build --quiet $flag -p braid-bench --features qt --bins
say "running the comparison ($profile build${py:+, with Twisted}): target/$profile/compare $*"
"target/$profile/compare" ${py:+--python "$py"} "$@"
# HTTP hello world with wrk: braid, hyper on tokio, Twisted Web.
command -v wrk >/dev/null 2>&1 || apt_need wrk
quick=""
for a in "$@"; do [ "$a" = "--quick" ] && quick="--quick"; done
say "running the HTTP comparison with wrk: target/$profile/http-compare $quick"
"target/$profile/http-compare" ${py:+--python "$py"} $quick
# SMTP into a Maildir: braid-mail, Twisted's ESMTP and aiosmtpd (a venv).
if [ ! -x target/pymail/bin/python ] || ! target/pymail/bin/python -c "import aiosmtpd" 2>/dev/null; then
    say "installing aiosmtpd 1.4.6 into target/pymail (one of the SMTP peers)"
    python3 -m venv target/pymail 2>/dev/null || { apt_need python3-venv; python3 -m venv target/pymail; }
    target/pymail/bin/pip install --quiet "aiosmtpd==1.4.6" || say "aiosmtpd did not install: it is left out of the comparison"
fi
smtp_peers="${py:+--python $py} --aiosmtpd $PWD/target/pymail/bin/python"
mkdir -p target/bench
say "running the SMTP comparison: target/$profile/smtp-compare $quick (Maildirs on disk)"
"target/$profile/smtp-compare" $smtp_peers $quick --out target/bench/smtp-disk.md
if [ -d /dev/shm ]; then
    say "... and with the Maildirs on tmpfs (/dev/shm), where the disk costs almost nothing"
    "target/$profile/smtp-compare" $smtp_peers $quick --dir /dev/shm --out target/bench/smtp-tmpfs.md
fi
# The per-message measures and the cost of hosting (a full run only: they
# need the release binaries; strace and callgrind slow what they watch).
# Their tables go to the end of BENCHMARKS.md, beside the HTTP tables, so
# that it holds the whole run.
if [ -z "$quick" ] && [ "$profile" = release ]; then
    extra=$(mktemp)
    {
        printf '\n## HTTP (target/release/http-compare; also BENCHMARKS-HTTP.md)\n\n'
        sed -n '/^## /,$p' BENCHMARKS-HTTP.md | sed 's/^## /### /'
        printf '\n## SMTP into a Maildir (target/release/smtp-compare)\n\n### Maildirs on this machine'"'"'s disk (ext4 on a virtual disk)\n\n'
        cat target/bench/smtp-disk.md
        if [ -f target/bench/smtp-tmpfs.md ]; then
            printf '\n### Maildirs on tmpfs (/dev/shm): the servers'"'"' own cost\n\n'
            cat target/bench/smtp-tmpfs.md
        fi
    } >>"$extra"
    say "DNS queries per second: braid dns, dnsmasq, Twisted's names (scripts/dns-bench.sh)"
    {
        printf '\n## DNS queries (scripts/dns-bench.sh, dnsperf)\n\n'
        ./scripts/dns-bench.sh 5 3 | sed -n '/rounds of/,$p'
    } | tee -a "$extra"
    say "SOCKS5 bulk through braid's SOCKS server and Dante (target/release/socks-compare)"
    {
        printf '\n## SOCKS5 bulk (target/release/socks-compare)\n\n'
        apt_need dante-server
        "target/$profile/socks-compare" --rounds 5 --mb 1024 2>/dev/null
    } | tee -a "$extra"
    say "syscalls per echoed message on one connection (strace): scripts/syscalls.sh"
    {
        printf '\n## Syscalls per echoed message, one connection (scripts/syscalls.sh, strace)\n\n'
        ./scripts/syscalls.sh braid ${BRAID_BENCH_BASELINE:+braid-before} braid-glib braid-calloop tokio smol limit
    } | tee -a "$extra"
    say "user-space instructions per echoed message on one connection (callgrind): scripts/instructions.sh"
    {
        printf '\n## Server instructions per echoed message, one connection (scripts/instructions.sh, callgrind)\n\n'
        printf 'User space only, counted by callgrind (the same for the same binary and input, however busy the machine): the CPU-per-message figure this two-core shared machine cannot give by wall clock. Kernel work is the syscalls above.\n\n'
        ./scripts/instructions.sh braid ${BRAID_BENCH_BASELINE:+braid-before} tokio smol limit
        printf '\nPer HTTP request (`scripts/instructions.sh --http`, the hello world under wrk with 10 connections):\n\n'
        ./scripts/instructions.sh --http braid ${BRAID_BENCH_BASELINE:+braid-before} hyper-tokio
    } | tee -a "$extra"
    apt_need xvfb x11-utils
    start_xvfb
    say "round trips under each host loop: target/release/host-latency"
    {
        printf '\n## The cost of hosting (target/release/host-latency)\n\n'
        target/release/host-latency --rounds 5
        printf '\nCounted, not timed (`scripts/host-cost.sh`: strace and callgrind, N and 2N round trips, the difference over N):\n\n'
        ./scripts/host-cost.sh
    } | tee -a "$extra"
    cat "$extra" >>BENCHMARKS.md
    rm -f "$extra"
    say "appended the HTTP, syscall, instruction and host tables to BENCHMARKS.md"
fi
