#!/usr/bin/env bash
# Runs a command with ROOST_TEST_NATS_SERVER naming a nats-server binary,
# for the cluster tests, which start their own NATS server on a loopback
# port with their own settings and stop it themselves.
#
#   scripts/with-nats.sh CMD [ARGS...]
#
# Finds nats-server in PATH or /usr/sbin; when it is missing, installs
# Debian's `nats-server` package if it runs as root with apt-get, and
# fails otherwise. The package's own service is not started here (and is
# not used: the tests never rely on a server they did not start).
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

find_nats() {
  if command -v nats-server >/dev/null 2>&1; then
    command -v nats-server
    return 0
  fi
  if [ -x /usr/sbin/nats-server ]; then
    echo /usr/sbin/nats-server
    return 0
  fi
  return 1
}

if ! bin="$(find_nats)"; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "with-nats: nats-server not found and cannot be installed here" >&2
    echo "with-nats: (needs root and apt-get); install Debian's 'nats-server' package" >&2
    exit 2
  fi
  echo "with-nats: installing Debian's nats-server"
  export DEBIAN_FRONTEND=noninteractive
  # No service start from the package scripts (a container has no init).
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.roost
  chmod +x /usr/sbin/policy-rc.d.roost
  [ -e /usr/sbin/policy-rc.d ] || cp /usr/sbin/policy-rc.d.roost /usr/sbin/policy-rc.d
  timeout 600 apt-get update -qq
  timeout 900 apt-get install -y -qq nats-server >/dev/null
  if cmp -s /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.roost; then
    rm -f /usr/sbin/policy-rc.d
  fi
  rm -f /usr/sbin/policy-rc.d.roost
  if ! bin="$(find_nats)"; then
    echo "with-nats: nats-server installed but still not found" >&2
    exit 2
  fi
fi

export ROOST_TEST_NATS_SERVER="$bin"
echo "with-nats: $("$bin" --version 2>/dev/null || echo nats-server) at $bin"
exec "$@"
