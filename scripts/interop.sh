#!/usr/bin/env bash
# Interop tests: real XMPP client libraries (slixmpp, aioxmpp) against
# `roost serve`. The xmpp.js tests run with scripts/interop-xmppjs.sh.
#
#   scripts/interop.sh [pytest args...]
#
# ROOST_BIN   server binary (default: target/debug/roost, relative to the repo)
# PYTHON      interpreter used to create the virtualenv (default: python3)
#
# Creates .venv in the repository root when missing, installs the pinned
# packages of tests/interop/requirements.txt into it, and runs pytest on
# tests/interop. Exits with pytest's status.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

export ROOST_BIN="${ROOST_BIN:-target/debug/roost}"
case "$ROOST_BIN" in
  /*) ;;
  *) ROOST_BIN="$repo/$ROOST_BIN" ;;
esac
if [ ! -x "$ROOST_BIN" ]; then
  echo "interop: server binary not found or not executable: $ROOST_BIN" >&2
  echo "interop: build it first (cargo build) or set ROOST_BIN" >&2
  exit 2
fi

venv="$repo/.venv"
req="$repo/tests/interop/requirements.txt"
if [ ! -x "$venv/bin/python" ]; then
  echo "interop: creating virtualenv $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
# Reinstall only when the pins changed since the last install.
stamp="$venv/.interop-requirements"
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  echo "interop: installing $(grep -cv '^\s*\(#\|$\)' "$req") pinned packages"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
  cp "$req" "$stamp"
fi

echo "interop: server $ROOST_BIN ($("$ROOST_BIN" --version 2>/dev/null || echo 'version unknown'))"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the work tree
exec "$venv/bin/python" -m pytest "$repo/tests/interop" "$@"
