#!/usr/bin/env bash
# Runs every test of the project: unit and socket integration tests of the
# Rust workspace, then the third-party client interop tests (slixmpp, in a
# virtualenv this script creates), then the browser test (Converse.js in
# Debian's headless Chromium over WebSocket; installs chromium and the
# pinned npm packages when missing). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (workspace) =="
cargo test --workspace --locked

echo "== interop (slixmpp) =="
cargo build --locked -p roost-server --bin roost
ROOST_BIN="$PWD/target/debug/roost" bash scripts/interop.sh

echo "== browser (Converse.js over WebSocket, headless Chromium) =="
ROOST_BIN="$PWD/target/debug/roost" bash scripts/browser-test.sh
