#!/usr/bin/env bash
# Syscalls per echoed message on one connection, for each server kind, by
# strace (issue 19's measure): the server process is traced while loadgen
# runs one connection of 64-byte round trips for a few seconds.
#   ./scripts/syscalls.sh [KIND...]      default: braid braid-glib braid-calloop tokio smol limit
# Needs the release bench binaries (scripts/bench.sh builds them). Prints a
# table; the count includes everything the server did in that window.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
apt_need strace
bin=target/release
[ -x "$bin/bench-server" ] || cargo build --quiet --release -p braid-bench --bins
kinds=("$@")
[ ${#kinds[@]} -eq 0 ] && kinds=(braid braid-glib braid-calloop tokio smol limit)
secs=3
printf '| server | messages | syscalls | per message | the most frequent |\n|---|---:|---:|---:|---|\n'
for kind in "${kinds[@]}"; do
    out=$(mktemp -d)
    server="$bin/bench-server"; k="$kind"
    if [ "${kind%-before}" != "$kind" ] && [ -n "${BRAID_BENCH_BASELINE:-}" ]; then
        server="$BRAID_BENCH_BASELINE/bench-server"; k="${kind%-before}"
    fi
    coproc SRV { exec "$server" --kind "$k"; }
    read -r line <&"${SRV[0]}"
    port=${line#listening }
    strace -f -c -o "$out/trace" -p "$SRV_PID" 2>/dev/null &
    tracer=$!
    sleep 0.5
    res=$("$bin/loadgen" echo --addr "127.0.0.1:$port" --conns 1 --secs "$secs" --warmup 0)
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true
    rate=$(sed -n 's/.*msgs_per_s=\([0-9.]*\).*/\1/p' <<<"$res")
    msgs=$(awk -v r="$rate" -v s="$secs" 'BEGIN { printf "%d", r * s }')
    total=$(awk '$NF == "total" { print $(NF-2) }' "$out/trace")
    # strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall.
    top=$(awk 'NR > 2 && $NF != "total" && $1 !~ /^-/ { print $NF "=" $4 }' "$out/trace" | head -n 6 | tr '\n' ' ')
    per=$(awk -v t="$total" -v m="$msgs" 'BEGIN { if (m > 0) printf "%.2f", t / m; else print "n/a" }')
    printf '| %s | %s | %s | %s | %s |\n' "$kind" "$msgs" "$total" "$per" "$top"
    rm -rf "$out"
done
