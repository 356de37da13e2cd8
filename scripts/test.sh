#!/usr/bin/env bash
# braid's whole test suite, exactly as CI runs it (.ci/run calls this).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
# openssl: s_server and s_client are the TLS interop peers; swaks (with
# Perl's TLS and SASL modules) is an SMTP client for the mail interop tests;
# dante-server is a SOCKS proxy for braid's SOCKS client; dig
# (bind9-dnsutils) asks braid dns; dnsmasq-base (the binary, no system
# service) answers braid's resolver; tinyproxy-bin is the HTTP proxy the
# Agent goes through; postgresql is the server braid-db's PostgreSQL pool
# is tested against (the test starts a private one on a loopback port);
# openssh-client's ssh, scp, sftp log in to braid's SSH server; openssh-server's
# sshd (started by the test on a loopback port) is what braid's client logs in to.
# qt6-base-dev and qt6-declarative-dev (with the QML modules qt_lines
# loads) build and run braid-qt, its conformance suite and its example;
# weston (headless) is the Wayland compositor braid-winit's suite runs on;
# Mesa's EGL/GL (llvmpipe) draws braid-winit's egui example under Xvfb.
apt_need xvfb xauth x11-utils ngircd xdotool imagemagick openssl curl wrk \
    swaks libnet-ssleay-perl libauthen-sasl-perl dante-server bind9-dnsutils dnsmasq-base \
    tinyproxy-bin postgresql openssh-client openssh-server \
    qt6-base-dev qt6-declarative-dev qml6-module-qtquick qml6-module-qtquick-window \
    qml6-module-qtquick-controls qml6-module-qtquick-layouts qml6-module-qtquick-templates \
    qml6-module-qtqml-workerscript qt6-qpa-plugins fonts-dejavu-core weston \
    libegl1 libgl1-mesa-dri libglx-mesa0
# A real IRC client for the interop tests: Python's irc package, in a venv.
if [ ! -x target/pyirc/bin/python ] || ! target/pyirc/bin/python -c "import irc" 2>/dev/null; then
    say "installing Python's irc package into target/pyirc (interop tests)"
    python3 -m venv target/pyirc 2>/dev/null || { apt_need python3-venv; python3 -m venv target/pyirc; }
    target/pyirc/bin/pip install --quiet "irc==20.5.0"
fi
export BRAID_PYTHON="$PWD/target/pyirc/bin/python"
# Real Twisted for the Perspective Broker interop tests, in its own venv.
if [ ! -x target/pytwisted/bin/python ] || ! target/pytwisted/bin/python -c "import twisted.spread.pb" 2>/dev/null; then
    say "installing Twisted 26.10 into target/pytwisted (Perspective Broker interop tests)"
    python3 -m venv target/pytwisted 2>/dev/null || { apt_need python3-venv; python3 -m venv target/pytwisted; }
    target/pytwisted/bin/pip install --quiet "twisted==26.10.0"
fi
export BRAID_TWISTED_PYTHON="$PWD/target/pytwisted/bin/python"
# aiosmtpd, a real SMTP server for braid's mail client to deliver to.
if [ ! -x target/pymail/bin/python ] || ! target/pymail/bin/python -c "import aiosmtpd" 2>/dev/null; then
    say "installing aiosmtpd 1.4.6 into target/pymail (mail interop tests)"
    python3 -m venv target/pymail 2>/dev/null || { apt_need python3-venv; python3 -m venv target/pymail; }
    target/pymail/bin/pip install --quiet "aiosmtpd==1.4.6"
fi
export BRAID_MAIL_PYTHON="$PWD/target/pymail/bin/python"
# paramiko, an SSH client no one here wrote, for braid's SSH server.
if [ ! -x target/pyssh/bin/python ] || ! target/pyssh/bin/python -c "import paramiko" 2>/dev/null; then
    say "installing paramiko 3.5.1 into target/pyssh (SSH interop tests)"
    python3 -m venv target/pyssh 2>/dev/null || { apt_need python3-venv; python3 -m venv target/pyssh; }
    target/pyssh/bin/pip install --quiet "paramiko==3.5.1"
fi
export BRAID_PARAMIKO_PYTHON="$PWD/target/pyssh/bin/python"
# A Unix user for braid web's publisher in the permission-separation test
# (cli/tests/distrib.rs): it serves files the front (run as nobody) cannot
# open. Only root can switch users; as anyone else that test says it skipped.
if [ "$(id -u)" = 0 ] && ! id -u braid-publisher >/dev/null 2>&1; then
    say "creating the system user braid-publisher (distributed web permission test)"
    useradd --system --no-create-home --shell /usr/sbin/nologin braid-publisher
fi
start_xvfb
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say "formatting: cargo fmt --check"
cargo fmt --all -- --check

say "lints: cargo clippy --workspace --all-targets --all-features -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

say "tests: cargo test --workspace --all-features (unit, integration over loopback, doctests)"
mkdir -p target
cargo test --workspace --all-features 2>&1 | tee target/test-output.log

say "docs: every public item documented, no broken links (cargo doc, warnings as errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --all-features \
    -p braid -p braid-tls -p braid-cred -p braid-db -p braid-web -p braid-irc -p braid-pb -p braid-mail -p braid-proxy -p braid-names -p braid-ssh \
    -p braid-glib -p braid-calloop -p braid-winit -p braid-qt -p braid-cocoa

say "the obvious commands work from the root (every crate is a default member): cargo build --bin braid"
cargo build --quiet --bin braid

say "the core alone, without the testing feature: cargo check -p braid --no-default-features"
cargo check -p braid --no-default-features
say "each battery alone, with its default features (no test doubles, no cli)"
for crate in braid-tls braid-cred braid-db braid-web braid-irc braid-pb braid-mail braid-proxy braid-names braid-ssh; do
    cargo check --quiet -p "$crate"
done

say "benchmark harness smoke run (asserts nothing about speed): host-latency --rounds 1 --trips 500 --turns 3"
cargo run --quiet -p braid-bench --features qt --bin host-latency -- --rounds 1 --trips 500 --turn-trips 200 --turns 3
cargo run --quiet -p braid-bench --features qt --bin idle-wakeups -- --seconds 1 --connections 20
cargo run --quiet -p braid-bench --bin idle-memory -- --connections 200
say "the comparison harness, quick mode (asserts nothing about speed): scripts/bench.sh --quick"
BRAID_BENCH_PROFILE=debug bash scripts/bench.sh --quick

say "fuzz targets still build: cargo check --manifest-path fuzz/Cargo.toml (run them with cargo +nightly fuzz run TARGET)"
cargo check --quiet --manifest-path fuzz/Cargo.toml --bins

say "other platforms: macOS, FreeBSD and Windows type-checked, the core, TLS and HTTP tests run on Windows under Wine (scripts/test-platforms.sh)"
bash scripts/test-platforms.sh

say "all checks passed"
# One closing line with the totals over every test binary and doctest run.
# (Test binaries with their own main, like winit's, print "NAME: N passed, M failed".)
awk '/^test result:|^[a-z0-9-]+ conformance: [0-9]+ passed/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1); if ($i ~ /^ignored/) s += $(i-1) } }
     END { printf "braid: %d passed, %d failed, %d skipped\n", p, f, s }' target/test-output.log
tail -n 1 target/test-windows-output.summary
