# Sourced by the other scripts: installs what braid needs on Debian/Ubuntu
# when it is missing, and says so. Safe to run again; installs nothing that
# is already there.

say() { printf '\n==> %s\n' "$*"; }

# apt_need PKG... : installs the Debian packages that are not installed yet.
apt_need() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# rust_need: a Rust toolchain (1.86 or newer) with rustfmt and clippy.
rust_need() {
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
    if ! command -v cargo >/dev/null 2>&1; then
        apt_need curl ca-certificates
        say "installing the Rust toolchain with rustup (https://rustup.rs)"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
        . "$HOME/.cargo/env"
    fi
    if command -v rustup >/dev/null 2>&1; then
        for c in rustfmt clippy; do
            rustup component list --installed 2>/dev/null | grep -q "^$c" || {
                say "adding the $c component"
                rustup component add "$c"
            }
        done
    fi
}

# start_xvfb: a private X server for the GUI tests (GTK, winit), unless a
# display is already there. Forces X11: winit on Wayland starts a helper
# thread inside its pump (docs/architecture.md, fact 5).
start_xvfb() {
    unset WAYLAND_DISPLAY
    if [ -n "${DISPLAY:-}" ] && xdpyinfo >/dev/null 2>&1; then
        say "using the display already there: $DISPLAY"
        return 0
    fi
    local n
    for n in $(seq 90 140); do
        [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] || break
    done
    say "starting Xvfb on :$n for the GUI tests"
    Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
    XVFB_PID=$!
    trap 'kill $XVFB_PID 2>/dev/null || true' EXIT
    export DISPLAY=":$n"
    for _ in $(seq 1 50); do
        xdpyinfo >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "Xvfb did not start" >&2
    return 1
}

# The C toolchain some -sys crates need; GTK4 and GLib headers for the glib
# host and the GTK examples (gtk4 0.11 / glib 0.22 build against
# bookworm's GTK 4.8); the X11 libraries winit loads at run time; a font for
# demo-winit's text (drawn with ab_glyph).
apt_need gcc g++ libc6-dev pkg-config libgtk-4-dev fonts-dejavu-core \
    libx11-6 libx11-xcb1 libxcursor1 libxi6 libxrandr2 libxkbcommon0 libxkbcommon-x11-0
rust_need
