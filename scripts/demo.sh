#!/usr/bin/env bash
# The chat demo: braid's GTK4 chat client (demo-gtk). With no address it
# serves a chat from its own window (braid's IRC server in the same
# reactor, on GTK's main thread) and joins it; with HOST[:PORT] it offers
# to join someone else's. Without a display it runs the terminal client.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    say "no display (DISPLAY/WAYLAND_DISPLAY unset): running the terminal chat client instead (cargo run --release --example chat_client $*)"
    exec cargo run --quiet --release --example chat_client -- "$@"
fi
say "building and starting the GTK chat demo (cargo run -p demo-gtk -- $*); the first build takes a few minutes"
exec cargo run --quiet -p demo-gtk -- "$@"
