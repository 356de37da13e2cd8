#!/usr/bin/env bash
# User-space instructions per echoed message on one connection, for each
# server kind, by callgrind (issue 19's CPU measure, which wall-clock CPU
# time on a shared two-core machine cannot give: callgrind counts
# instructions, the same for the same binary and input whatever else the
# machine does). Each server runs twice under callgrind while loadgen
# drives one connection of 64-byte round trips, for 2 s and then 5 s; the
# difference of the two totals over the difference of the message counts
# cancels start-up and shutdown. Kernel time is not counted (syscalls per
# message are scripts/syscalls.sh's).
#   ./scripts/instructions.sh [KIND...]   default: braid tokio smol limit
#   ./scripts/instructions.sh --http [KIND...]   per HTTP request instead
#       (http-server under callgrind, wrk with 10 connections; default:
#       braid hyper-tokio)
# A KIND ending in -before runs $BRAID_BENCH_BASELINE's server.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
apt_need valgrind
bin=target/release
[ -x "$bin/bench-server" ] || cargo build --quiet --release -p braid-bench --bins
http=""
if [ "${1:-}" = "--http" ]; then
    http=1
    shift
    command -v wrk >/dev/null 2>&1 || apt_need wrk
fi
kinds=("$@")
if [ ${#kinds[@]} -eq 0 ]; then
    if [ -n "$http" ]; then kinds=(braid hyper-tokio); else kinds=(braid tokio smol limit); fi
fi
unit=message
[ -n "$http" ] && unit=request
# One run: prints "INSTRUCTIONS MESSAGES".
run() {
    local server=$1 kind=$2 secs=$3 out line port res rate
    out=$(mktemp -d)
    coproc SRV { exec valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$server" --kind "$kind" 2>/dev/null; }
    read -r line <&"${SRV[0]}"
    port=${line#listening }
    if [ -n "$http" ]; then
        count=$(wrk -t1 -c10 -d"${secs}s" "http://127.0.0.1:$port/" | awk '/requests in/ { print $1 }')
    else
        res=$("$bin/loadgen" echo --addr "127.0.0.1:$port" --conns 1 --secs "$secs" --warmup 0)
        rate=$(sed -n 's/.*msgs_per_s=\([0-9.]*\).*/\1/p' <<<"$res")
        count=$(awk -v r="$rate" -v s="$secs" 'BEGIN { printf "%d", r * s }')
    fi
    kill -TERM "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true
    awk -v c="$count" '/^summary:/ { t += $2 } END { printf "%d %d\n", t, c }' "$out"/cg.*
    rm -rf "$out"
}
peer=tokio
[ -n "$http" ] && peer=hyper-tokio
printf '| server | instructions per %s | vs %s |\n|---|---:|---:|\n' "$unit" "$peer"
declare -A per
name=bench-server
[ -n "$http" ] && name=http-server
for kind in "${kinds[@]}"; do
    server="$bin/$name"; k="$kind"
    if [ "${kind%-before}" != "$kind" ] && [ -n "${BRAID_BENCH_BASELINE:-}" ]; then
        server="$BRAID_BENCH_BASELINE/$name"; k="${kind%-before}"
    fi
    read -r i1 m1 < <(run "$server" "$k" 2)
    read -r i2 m2 < <(run "$server" "$k" 5)
    per[$kind]=$(awk -v a="$i1" -v b="$i2" -v x="$m1" -v y="$m2" 'BEGIN { if (y > x) printf "%.0f", (b - a) / (y - x); else print "n/a" }')
done
for kind in "${kinds[@]}"; do
    ratio=$(awk -v p="${per[$kind]}" -v t="${per[$peer]:-}" 'BEGIN { if (t > 0 && p > 0) printf "%.2fx", p / t; else print "-" }')
    printf '| %s | %s | %s |\n' "$kind" "${per[$kind]}" "$ratio"
done
