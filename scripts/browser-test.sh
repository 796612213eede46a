#!/usr/bin/env bash
# End-to-end web client test: Converse.js in headless Chromium, driven by
# Playwright, against `roost serve` over XMPP over WebSocket (RFC 7395)
# (browser.test.mjs) and over BOSH, XEP-0206 (bosh.test.mjs).
#
#   scripts/browser-test.sh [node --test args...]
#
# ROOST_BIN   server binary (default: target/debug/roost, relative to the repo)
# CHROMIUM    browser binary (default: /usr/bin/chromium, Debian's package)
#
# Installs Debian's chromium when /usr/bin/chromium is missing (needs root
# and apt-get), installs the pinned npm packages of tests/browser/ (exact
# versions, package-lock.json) when they changed, and runs the test with
# node's test runner. Screenshots of the final pages go to test-artifacts/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

export ROOST_BIN="${ROOST_BIN:-target/debug/roost}"
case "$ROOST_BIN" in
  /*) ;;
  *) ROOST_BIN="$repo/$ROOST_BIN" ;;
esac
if [ ! -x "$ROOST_BIN" ]; then
  echo "browser-test: server binary not found or not executable: $ROOST_BIN" >&2
  echo "browser-test: build it first (cargo build -p roost-server) or set ROOST_BIN" >&2
  exit 2
fi

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  if [ "$CHROMIUM" != /usr/bin/chromium ]; then
    echo "browser-test: CHROMIUM=$CHROMIUM is not an executable" >&2
    exit 2
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "browser-test: /usr/bin/chromium is missing and cannot be installed here" >&2
    echo "browser-test: (needs root and apt-get); install Debian's 'chromium' package" >&2
    exit 2
  fi
  echo "browser-test: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq
  timeout 900 apt-get install -y -qq chromium >/dev/null
fi

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "browser-test: $tool is required (Node.js 20 or later)" >&2
    exit 2
  fi
done

dir="$repo/tests/browser"
# Reinstall only when the lock file changed since the last install.
stamp="$dir/node_modules/.browser-test-lock"
if ! cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null; then
  echo "browser-test: installing npm packages (npm ci)"
  (cd "$dir" && timeout 600 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  cp "$dir/package-lock.json" "$stamp"
fi

mkdir -p "$repo/test-artifacts"
echo "browser-test: server $ROOST_BIN ($("$ROOST_BIN" --version 2>/dev/null || echo 'version unknown'))"
echo "browser-test: browser $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
cd "$dir"
# The whole run is bounded; every step inside has its own timeout too.
exec timeout 400 node --test --test-concurrency=1 --test-timeout=240000 "$@" browser.test.mjs bosh.test.mjs
