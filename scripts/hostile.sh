#!/usr/bin/env bash
# Hostile-input catalogue: malformed and abusive inputs on every surface
# (c2s, direct TLS, WebSocket, BOSH, HTTP upload, s2s) against `roost serve`,
# each with its expected answer, while a well-behaved client keeps chatting.
# See tests/hostile/README.md.
#
#   scripts/hostile.sh [pytest args...]
#
# ROOST_BIN   server binary (default: target/debug/roost, relative to the repo)
# PYTHON      interpreter used to create the virtualenv (default: python3)
#
# Uses the interop tests' virtualenv (.venv in the repository root, made
# and kept up to date from tests/interop/requirements.txt exactly as
# scripts/interop.sh does) and runs pytest on tests/hostile. Exits with
# pytest's status.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

export ROOST_BIN="${ROOST_BIN:-target/debug/roost}"
case "$ROOST_BIN" in
  /*) ;;
  *) ROOST_BIN="$repo/$ROOST_BIN" ;;
esac
if [ ! -x "$ROOST_BIN" ]; then
  echo "hostile: server binary not found or not executable: $ROOST_BIN" >&2
  echo "hostile: build it first (cargo build) or set ROOST_BIN" >&2
  exit 2
fi

venv="$repo/.venv"
req="$repo/tests/interop/requirements.txt"
if [ ! -x "$venv/bin/python" ]; then
  echo "hostile: creating virtualenv $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
# The same stamp as scripts/interop.sh: reinstall only when the pins changed.
stamp="$venv/.interop-requirements"
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  echo "hostile: installing $(grep -cv '^\s*\(#\|$\)' "$req") pinned packages"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
  cp "$req" "$stamp"
fi

echo "hostile: server $ROOST_BIN ($("$ROOST_BIN" --version 2>/dev/null || echo 'version unknown'))"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the work tree
exec "$venv/bin/python" -m pytest "$repo/tests/hostile" "$@"
