#!/usr/bin/env bash
# Runs every test of the project: unit and socket integration tests of the
# Rust workspace, then the hostile-input catalogue (tests/hostile), then the
# third-party client interop tests (slixmpp and
# aioxmpp in a virtualenv, xmpp.js with the pinned npm packages, each
# installed by its script), then the browser test (Converse.js in
# Debian's headless Chromium over WebSocket; installs chromium and the
# pinned npm packages when missing), and federation against Debian's
# Prosody and ejabberd in a network namespace of its own. Exits non-zero
# on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== dependency policy (deny.toml) =="
python3 scripts/deny-check.py

echo "== cargo test (workspace, with a PostgreSQL cluster for the storage tests) =="
# The crash test (crates/testkit/tests/crash_safety.rs) runs the real binary.
cargo build --locked -p roost-server --bin roost
# The PostgreSQL tests (names containing "postgres") use the cluster of
# ROOST_TEST_POSTGRES_URL; with CI=true they fail when it is missing.
bash scripts/with-postgres.sh cargo test --workspace --locked

echo "== interop (slixmpp, aioxmpp) =="
ROOST_BIN="$PWD/target/debug/roost" bash scripts/interop.sh

echo "== hostile inputs (tests/hostile, with a well-behaved client chatting) =="
ROOST_BIN="$PWD/target/debug/roost" bash scripts/hostile.sh -q

echo "== interop (xmpp.js over STARTTLS, direct TLS and WebSocket) =="
ROOST_BIN="$PWD/target/debug/roost" bash scripts/interop-xmppjs.sh

echo "== federation (Prosody and ejabberd in a network namespace) =="
ROOST_BIN="$PWD/target/debug/roost" bash scripts/federation-interop.sh

echo "== browser (Converse.js over WebSocket, headless Chromium) =="
ROOST_BIN="$PWD/target/debug/roost" bash scripts/browser-test.sh
