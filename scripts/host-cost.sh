#!/usr/bin/env bash
# What each host loop adds to a round trip, counted rather than timed (the
# companion of target/release/host-latency, whose wall clock swings by
# 0.2x on this shared two-core machine): syscalls per round trip (strace)
# and user-space instructions per round trip (callgrind), for the same
# 64-byte echo, client and server in one reactor, under each host. Each
# child runs twice (N and 2N trips); the difference over N cancels start-up.
#   ./scripts/host-cost.sh [HOST...]   default: every host of braid_bench::HOSTS
# The GUI hosts need $DISPLAY (scripts/bench.sh starts Xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
apt_need strace
apt_need valgrind
bin=target/release/host-latency
apt_need qt6-base-dev qt6-qpa-plugins
[ -x "$bin" ] || cargo build --quiet --release -p braid-bench --features qt --bin host-latency
hosts=("$@")
[ ${#hosts[@]} -eq 0 ] && hosts=(standalone poll glib glib+gtk calloop winit qt qt-unix)
n=${BRAID_HOST_COST_TRIPS:-20000}
syscalls() { # HOST TRIPS -> total syscalls
    local out
    out=$(mktemp)
    strace -f -c -o "$out" "$bin" --child "$1" --trips "$2" >/dev/null 2>&1
    awk '$NF == "total" { print $(NF-2) }' "$out"
    rm -f "$out"
}
top() { # HOST -> the most frequent syscalls of a run
    local out
    out=$(mktemp)
    strace -f -c -o "$out" "$bin" --child "$1" --trips "$n" >/dev/null 2>&1
    awk 'NR > 2 && $NF != "total" && $1 !~ /^-/ { print $NF "=" $4 }' "$out" | head -n 4 | tr '\n' ' '
    rm -f "$out"
}
instructions() { # HOST TRIPS -> total user-space instructions
    local out
    out=$(mktemp -d)
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$bin" --child "$1" --trips "$2" >/dev/null 2>"$out/log"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/log" | awk '{ s += $1 } END { print s }'
    rm -rf "$out"
}
printf '| host | syscalls per round trip | user-space instructions per round trip | the most frequent syscalls (%d trips) |\n|---|---:|---:|---|\n' "$n"
for h in "${hosts[@]}"; do
    if [ -z "${DISPLAY:-}" ] && { [ "$h" = glib+gtk ] || [ "$h" = winit ]; }; then
        printf '| %s | (no display) | | |\n' "$h"
        continue
    fi
    # A first run fills what GTK caches on disk (fonts, shaders): its
    # start-up then costs the same in both counted runs.
    "$bin" --child "$h" --trips 100 >/dev/null 2>&1 || true
    s1=$(syscalls "$h" "$n"); s2=$(syscalls "$h" $((2 * n)))
    i1=$(instructions "$h" "$n"); i2=$(instructions "$h" $((2 * n)))
    printf '| %s | %s | %s | %s |\n' "$h" \
        "$(awk -v a="$s1" -v b="$s2" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }')" \
        "$(awk -v a="$i1" -v b="$i2" -v n="$n" 'BEGIN { printf "%d", (b - a) / n }')" \
        "$(top "$h")"
done
