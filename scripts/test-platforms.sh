#!/usr/bin/env bash
# braid on macOS, FreeBSD and Windows, as far as a Linux machine can
# check it (scripts/test.sh runs this; it can also run alone):
#
# 1. Type-checks (and lints) the workspace for macOS (both architectures), FreeBSD and
#    Windows: every crate that can build there (cargo clippy, all targets, warnings as errors).
#    Left out, for want of the target's system libraries: braid-glib,
#    demo-gtk and braid-bench (GTK/glib via pkg-config) and braid-qt (Qt
#    via qmake6) everywhere; and braid-calloop on Windows (calloop is
#    Unix-only). For Apple targets no SDK is here, so the C that build
#    scripts compile (ring's) is replaced by empty objects
#    (scripts/cross/empty-cc): the Rust is checked in full, nothing links.
# 2. Runs the core's tests (reactor, timers, TCP, UDP, Deferreds, threads,
#    hosts), braid-tls's and braid-web's on Windows under Wine: cross-built
#    with mingw-w64, run by Debian's wine (8.0), with a shim DLL for the
#    ProcessPrng that Rust's std imports and Wine 8.0 lacks
#    (scripts/wine/bcryptprimitives.c); then braid-winit's conformance
#    suite in a real window, when there is a display (Wine draws it on X).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
rust_need
apt_need mingw-w64 wine wine64 clang

TARGETS="aarch64-apple-darwin x86_64-apple-darwin x86_64-unknown-freebsd x86_64-pc-windows-gnu"
for t in $TARGETS; do
    rustup target list --installed | grep -qx "$t" || { say "adding the Rust target $t"; rustup target add "$t"; }
done

NOT_HERE=(--exclude braid-glib --exclude demo-gtk --exclude braid-bench --exclude braid-qt)
export CC_aarch64_apple_darwin="$PWD/scripts/cross/empty-cc"
export CC_x86_64_apple_darwin="$PWD/scripts/cross/empty-cc"
# clippy, not just check: the platform code is linted too, warnings are
# errors, as on Linux.
for t in aarch64-apple-darwin x86_64-apple-darwin x86_64-unknown-freebsd; do
    say "type-check for $t: cargo clippy --workspace --all-targets --all-features -D warnings (without the GTK and Qt crates)"
    cargo clippy --quiet --workspace "${NOT_HERE[@]}" --target "$t" --all-targets --all-features -- -D warnings
done
say "type-check for x86_64-pc-windows-gnu: cargo clippy ... -D warnings (without the GTK, Qt and calloop crates)"
cargo clippy --quiet --workspace "${NOT_HERE[@]}" --exclude braid-calloop \
    --target x86_64-pc-windows-gnu --all-targets --all-features -- -D warnings

# Wine: a private prefix under target/, the shim in its system32.
export WINEPREFIX="$PWD/target/wine-prefix"
export WINEDEBUG=-all
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
if [ ! -f "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" ]; then
    say "making a Wine prefix in $WINEPREFIX with the ProcessPrng shim"
    DISPLAY= wineboot --init >/dev/null 2>&1 || true
    x86_64-w64-mingw32-gcc -O2 -shared -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
        scripts/wine/bcryptprimitives.c scripts/wine/bcryptprimitives.def -ladvapi32
fi
say "Windows under Wine: cargo test -p braid -p braid-tls -p braid-web (cross-built with mingw-w64)"
mkdir -p target
DISPLAY= cargo test --no-fail-fast -p braid -p braid-tls -p braid-web --features braid/testing \
    --target x86_64-pc-windows-gnu 2>&1 | tee target/test-windows-output.log
# braid-winit's Windows host (pump, then MsgWaitForMultipleObjectsEx on the
# port) with a real window: Wine's X11 driver shows it on the display
# test.sh started (Xvfb). Without a display this part says it is skipped.
if [ -n "${DISPLAY:-}" ]; then
    say "Windows under Wine: braid-winit's conformance suite in a real window (Wine's X11 driver on $DISPLAY)"
    cargo test -p braid-winit --target x86_64-pc-windows-gnu --test conformance 2>&1 \
        | tee -a target/test-windows-output.log
else
    say "no DISPLAY: braid-winit's Windows conformance suite skipped (scripts/test.sh starts Xvfb)"
fi
awk '/^test result:|^[a-z0-9-]+ conformance: [0-9]+ passed/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1); if ($i ~ /^ignored/) s += $(i-1) } }
     END { printf "braid on Windows (Wine): %d passed, %d failed, %d skipped\n", p, f, s }' target/test-windows-output.log \
    | tee target/test-windows-output.summary
