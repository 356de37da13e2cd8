#!/usr/bin/env bash
# DNS queries per second and server CPU per query: braid dns, dnsmasq and
# Twisted's names (BindAuthority), each answering the same names from
# the same zone, loaded by dnsperf for SECS seconds per round, rounds
# alternating between servers; medians. Server on CPU 1, dnsperf on CPU 0.
#   ./scripts/dns-bench.sh [SECS] [ROUNDS]
# Needs the release braid (cargo build --release --bin braid) and, for
# Twisted, target/bench-venv (scripts/bench.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
secs="${1:-5}"
rounds="${2:-3}"
apt_need dnsperf dnsmasq
[ -x target/release/braid ] || cargo build --quiet --release --bin braid
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
# One record a line, names in full (Twisted's BindAuthority reads no
# more of the master-file syntax than that).
cat >"$dir/example.test.zone" <<'ZONE'
$TTL 300
$ORIGIN example.test.
example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026120101 3600 600 86400 60
example.test. 300 IN NS ns1.example.test.
example.test. 300 IN A 192.0.2.1
ns1.example.test. 300 IN A 192.0.2.53
mail.example.test. 300 IN A 192.0.2.25
www.example.test. 300 IN A 192.0.2.80
api.example.test. 300 IN A 192.0.2.81
ZONE
printf 'example.test A\nmail.example.test A\nwww.example.test A\napi.example.test A\nns1.example.test A\n' >"$dir/queries"
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
declare -A qps cpu
kinds="braid dnsmasq"
[ -x target/bench-venv/bin/python ] && kinds="$kinds twisted"
for round in $(seq 1 "$rounds"); do
    for kind in $kinds; do
        port=$(free_port)
        case "$kind" in
            braid) taskset -c 1 target/release/braid dns --port "$port" --zone "example.test.=$dir/example.test.zone" --log warn >"$dir/out" 2>/dev/null & ;;
            dnsmasq) taskset -c 1 dnsmasq -k --no-resolv --no-hosts --no-poll --port="$port" --listen-address=127.0.0.1 --bind-interfaces \
                --auth-server=ns1.example.test --auth-zone=example.test --host-record=example.test,192.0.2.1 \
                --host-record=mail.example.test,192.0.2.25 --host-record=www.example.test,192.0.2.80 \
                --host-record=api.example.test,192.0.2.81 --host-record=ns1.example.test,192.0.2.53 --auth-soa=2026120101 \
                --pid-file= --user=root --log-facility=/dev/null >"$dir/out" 2>&1 & ;;
            twisted) taskset -c 1 target/bench-venv/bin/python bench/py/twisted_dns.py "$dir/example.test.zone" "$port" >"$dir/out" 2>&1 & ;;
        esac
        pid=$!
        # Wait until it answers.
        for _ in $(seq 1 100); do dig @127.0.0.1 -p "$port" +time=1 +tries=1 +short example.test A 2>/dev/null | grep -q 192.0.2.1 && break; sleep 0.1; done
        c0=$(cpu_ticks "$pid")
        out=$(taskset -c 0 dnsperf -s 127.0.0.1 -p "$port" -d "$dir/queries" -l "$secs" -c 1 -q 64 2>&1)
        c1=$(cpu_ticks "$pid")
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
        q=$(echo "$out" | awk '/Queries per second/ {print $4}')
        completed=$(echo "$out" | awk '/Queries completed/ {print $3}')
        us=$(python3 -c "print(round(($c1-$c0)/$hz*1e6/max(1,$completed),1))")
        say "round $round $kind: $q queries/s, $us us server CPU per query ($completed answered)"
        qps[$kind]="${qps[$kind]:-} $q"
        cpu[$kind]="${cpu[$kind]:-} $us"
    done
done
med() { python3 -c "import sys; v=sorted(float(x) for x in sys.argv[1:]); print(v[len(v)//2])" $1; }
braid_q=$(med "${qps[braid]}")
braid_c=$(med "${cpu[braid]}")
printf '%s rounds of %ss, dnsperf with 64 queries outstanding (5 names in one zone), server on CPU 1, dnsperf on CPU 0; medians.\n\n' "$rounds" "$secs"
printf '| server | queries/s | braid vs it | server CPU per query (us) | vs braid |\n|---|---|---|---|---|\n'
for kind in $kinds; do
    q=$(med "${qps[$kind]}"); c=$(med "${cpu[$kind]}")
    python3 -c "print('| $kind | %.0f | %.2fx | %.1f | %.2fx |' % ($q, $braid_q/$q, $c, $c/$braid_c))"
done
