#!/usr/bin/env bash
# The chat demo. With no address it serves a chat and joins it in one
# process (one reactor, no extra network thread); with HOST:PORT it joins
# someone else's. Type lines to chat; /nick NAME, /who, /quit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
say "building and starting the chat demo (cargo run --release --example chat_client $*)"
exec cargo run --quiet --release --example chat_client -- "$@"
