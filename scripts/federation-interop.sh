#!/usr/bin/env bash
# Federation with real servers: Roost (roost.test), Prosody 0.12
# (prosody.test) and ejabberd 23.01 (ejabberd.test), each on its own
# loopback address inside a network namespace this script creates
# (unshare --net --mount), with a dnsmasq of its own answering for the
# three domains (A and SRV records) through a private /etc/resolv.conf,
# and certificates from a CA made for the run. The tests
# (tests/federation/, slixmpp) chat across servers and join rooms on
# each server from the others, with account-based joining on Roost's side.
#
#   scripts/federation-interop.sh [pytest args...]
#
# ROOST_BIN   server binary (default: target/debug/roost)
#
# Installs Debian's prosody, ejabberd, dnsmasq-base, openssl and iproute2
# when missing (needs root and apt-get). Where network namespaces cannot be created it says so
# and exits 0 without running the tests (never silently). Every process it
# starts is stopped by PID when it ends.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ "${1:-}" = "--inside" ]; then
    shift
    exec bash "$repo/tests/federation/inside.sh" "$@"
fi

export ROOST_BIN="${ROOST_BIN:-target/debug/roost}"
case "$ROOST_BIN" in
  /*) ;;
  *) ROOST_BIN="$repo/$ROOST_BIN" ;;
esac
if [ ! -x "$ROOST_BIN" ]; then
    echo "federation: server binary not found: $ROOST_BIN (cargo build first)" >&2
    exit 2
fi

if ! unshare --net --mount true 2>/dev/null; then
    echo "federation: SKIPPED: this machine does not let us create network namespaces" >&2
    echo "federation: (unshare --net --mount failed; run as root where namespaces are allowed)" >&2
    exit 0
fi

need=()
command -v prosody >/dev/null 2>&1 || need+=(prosody)
command -v ejabberdctl >/dev/null 2>&1 || need+=(ejabberd)
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "federation: missing ${need[*]} and cannot install them (needs root and apt-get)" >&2
        exit 2
    fi
    echo "federation: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq
    timeout 900 apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The Python side uses the interop virtualenv (slixmpp, pytest).
venv="$repo/.venv"
req="$repo/tests/interop/requirements.txt"
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! cmp -s "$req" "$venv/.interop-requirements" 2>/dev/null; then
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    cp "$req" "$venv/.interop-requirements"
fi

echo "federation: server $ROOST_BIN; Prosody $(dpkg-query -W -f='${Version}' prosody 2>/dev/null), ejabberd $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null)"
exec timeout 900 unshare --net --mount --fork -- bash "$0" --inside "$@"
