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

# rust_need: a Rust toolchain (1.80 or newer) with rustfmt and clippy.
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

# The C toolchain some -sys crates need.
apt_need gcc g++ libc6-dev pkg-config
rust_need
