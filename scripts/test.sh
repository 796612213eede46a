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

echo "== cargo test (workspace, with PostgreSQL and NATS for the storage and cluster tests) =="
# The crash and cluster tests (crates/testkit/tests/{crash_safety,cluster}.rs)
# run the real binary.
cargo build --locked -p roost-server --bin roost
# The PostgreSQL tests (names containing "postgres") and the cluster test
# use the database of ROOST_TEST_POSTGRES_URL; the cluster test starts its
# own NATS server from ROOST_TEST_NATS_SERVER. With CI=true they fail when
# either is missing.
bash scripts/with-postgres.sh bash scripts/with-nats.sh cargo test --workspace --locked

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
