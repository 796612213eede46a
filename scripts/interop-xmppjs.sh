#!/usr/bin/env bash
# Interop tests with xmpp.js (@xmpp/client from npm) against `roost serve`:
# logins over STARTTLS, direct TLS and WebSocket, IM, MUC and account
# features. Each test file starts its own server on free loopback ports
# with a temporary config and data folder, and stops it by PID.
#
#   scripts/interop-xmppjs.sh [node --test args...]
#
# ROOST_BIN   server binary (default: target/debug/roost, relative to the repo)
#
# Installs the pinned npm packages of tests/interop/xmppjs/ (exact
# versions, package-lock.json) with `npm ci` when the lock file changed
# since the last install, then runs the tests with node's test runner.
# Exits with its status. XMPPJS_DEBUG=1 prints every element sent and
# received; a failing test's error has them anyway, with the server log.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

export ROOST_BIN="${ROOST_BIN:-target/debug/roost}"
case "$ROOST_BIN" in
  /*) ;;
  *) ROOST_BIN="$repo/$ROOST_BIN" ;;
esac
if [ ! -x "$ROOST_BIN" ]; then
  echo "interop-xmppjs: server binary not found or not executable: $ROOST_BIN" >&2
  echo "interop-xmppjs: build it first (cargo build -p roost-server) or set ROOST_BIN" >&2
  exit 2
fi

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "interop-xmppjs: $tool is required (Node.js 20.10 or later)" >&2
    exit 2
  fi
done
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=10)?0:1)'; then
  echo "interop-xmppjs: Node.js 20.10 or later is required (found $(node --version))" >&2
  exit 2
fi

dir="$repo/tests/interop/xmppjs"
# Reinstall only when the lock file changed since the last install.
stamp="$dir/node_modules/.interop-xmppjs-lock"
if ! cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null; then
  echo "interop-xmppjs: installing npm packages (npm ci)"
  (cd "$dir" && timeout 600 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  cp "$dir/package-lock.json" "$stamp"
fi

echo "interop-xmppjs: server $ROOST_BIN ($("$ROOST_BIN" --version 2>/dev/null || echo 'version unknown'))"
echo "interop-xmppjs: node $(node --version), @xmpp/client $(node -p 'require("./tests/interop/xmppjs/node_modules/@xmpp/client/package.json").version')"
cd "$dir"
# Node 20 has WebSocket (used by @xmpp/websocket) behind a flag. Two test
# files at a time, each with its own server; the whole run is bounded and
# every wait inside has its own bound too.
exec timeout 300 node --experimental-websocket --test --test-concurrency=2 \
  --test-timeout=180000 "$@" login.test.mjs im.test.mjs muc.test.mjs features.test.mjs
