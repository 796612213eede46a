#!/usr/bin/env bash
# Runs a command beside a throw-away PostgreSQL cluster: initdb in a
# temporary directory, the server listening on 127.0.0.1 on a free port
# (and on a unix socket inside that directory only), a database `roost`
# owned by the role `roost`, and ROOST_TEST_POSTGRES_URL exported for the
# command. The cluster is stopped (pg_ctl on its own data directory) and
# the directory removed when the command ends, whatever its outcome; the
# script exits with the command's status.
#
#   scripts/with-postgres.sh [--durable] CMD [ARGS...]
#
#   --durable   keep PostgreSQL's durable defaults (fsync on); without it
#               the cluster runs with fsync, synchronous_commit and
#               full_page_writes off, which only tests can afford.
#
# Finds initdb/pg_ctl in PATH or in Debian's /usr/lib/postgresql/<ver>/bin
# (the newest). When they are missing it installs Debian's `postgresql`
# package if it runs as root with apt-get, and fails otherwise. PostgreSQL
# refuses to run as root, so as root the cluster runs as `nobody`.
set -euo pipefail

durable=0
if [ "${1:-}" = "--durable" ]; then
  durable=1
  shift
fi
if [ "$#" -eq 0 ]; then
  echo "usage: $0 [--durable] CMD [ARGS...]" >&2
  exit 2
fi

find_bindir() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    # Debian's wrappers or symlinks lead to the version's own bin dir.
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
    echo "$d"
    return 0
  fi
  return 1
}

if ! bindir="$(find_bindir)"; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "with-postgres: initdb/pg_ctl not found and cannot be installed here" >&2
    echo "with-postgres: (needs root and apt-get); install Debian's 'postgresql' package" >&2
    exit 2
  fi
  echo "with-postgres: installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq
  timeout 900 apt-get install -y -qq postgresql >/dev/null
  if ! bindir="$(find_bindir)"; then
    echo "with-postgres: postgresql installed but initdb/pg_ctl still not found" >&2
    exit 2
  fi
fi

# Commands that touch the cluster run as its owner.
as_owner=()
owner="$(id -un)"
if [ "$(id -u)" -eq 0 ]; then
  owner=nobody
  as_owner=(runuser -u nobody --)
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/roost-pg.XXXXXX")"
chmod 0700 "$dir"
mkdir "$dir/sock"
if [ "$owner" = nobody ]; then
  chown -R nobody "$dir"
fi
data="$dir/data"
started=0

cleanup() {
  local status=$?
  if [ "$started" -eq 1 ]; then
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 ||
      echo "with-postgres: pg_ctl stop failed; see $dir/log" >&2
  fi
  rm -rf "$dir"
  exit "$status"
}
trap cleanup EXIT
# The command runs in the background so that a signal reaches these traps
# at once (bash runs traps only between commands); it is passed on.
child=""
stop_child() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
}
trap 'stop_child; exit 130' INT
trap 'stop_child; exit 143' TERM

# A free loopback port: bind port 0 and give it back (a race with another
# program taking it in between is unlikely, and start would then fail).
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

"${as_owner[@]}" "$bindir/initdb" -D "$data" -A trust -U roost -E UTF8 --locale=C \
  --no-sync >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  exit 1
}

opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir/sock"
if [ "$durable" -eq 0 ]; then
  opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi
if ! "${as_owner[@]}" "$bindir/pg_ctl" -D "$data" -l "$dir/log" -o "$opts" -w -t 60 start >/dev/null; then
  cat "$dir/log" >&2 || true
  exit 1
fi
started=1

"${as_owner[@]}" "$bindir/psql" -h 127.0.0.1 -p "$port" -U roost -d postgres -qAt \
  -c "CREATE DATABASE roost OWNER roost" >/dev/null

export ROOST_TEST_POSTGRES_URL="postgres://roost@127.0.0.1:$port/roost"
echo "with-postgres: PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
set +e
"$@" &
child=$!
wait "$child"
status=$?
child=""
set -e
exit "$status"
