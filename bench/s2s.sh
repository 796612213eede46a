#!/usr/bin/env bash
# Federation throughput and latency between two Roost servers on this
# machine: a.test on 127.0.0.2 and b.test on 127.0.0.3, certificates from
# a CA made for the run (SASL EXTERNAL both ways), static routes. The
# `chat` scenario of roost-load puts one account of every pair on each
# server, so every message crosses a server-to-server stream.
#
#   bench/s2s.sh [roost-load chat args...]    (default: --pairs 50 --rate 2000 --duration 10)
#
# ROOST_BIN, ROOST_LOAD  binaries (default: target/release/roost, roost-load)
# Stops the two servers it started, by PID.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOST_BIN="${ROOST_BIN:-$repo/target/release/roost}"
ROOST_LOAD="${ROOST_LOAD:-$repo/target/release/roost-load}"
for b in "$ROOST_BIN" "$ROOST_LOAD"; do
    [ -x "$b" ] || { echo "s2s: $b not found (cargo build --release -p roost-server -p roost-load)" >&2; exit 2; }
done
work="$(mktemp -d -t roost-s2s.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj "/CN=s2s bench CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" 2>/dev/null
for d in a.test b.test; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d.key" -out "$d.csr" \
        -subj "/CN=$d" 2>/dev/null
    printf 'subjectAltName=DNS:%s,DNS:conference.%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$d" "$d" > "$d.ext"
    openssl x509 -req -in "$d.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -out "$d.crt" -extfile "$d.ext" 2>/dev/null
done

start() { # domain ip peer-domain peer-ip
    mkdir -p "$work/$1"
    cat > "$work/$1/roost.toml" <<TOML
domain = "$1"
data_dir = "$work/$1/data"
log = "warn"
[listen]
c2s = "$2:5222"
c2s_tls = ""
http = ""
https = ""
proxy65 = ""
s2s = "$2:5269"
[tls]
cert = "$work/$1.crt"
key = "$work/$1.key"
[registration]
loopback = true
[limits]
max_connections = 60000
[s2s]
ca_file = "$work/ca.pem"
hosts = { "$3" = "$4:5269", "conference.$3" = "$4:5269" }
TOML
    "$ROOST_BIN" serve --config "$work/$1/roost.toml" > "$work/$1/log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/$2/5222") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "s2s: $1 did not start" >&2
    cat "$work/$1/log" >&2
    exit 1
}
start a.test 127.0.0.2 b.test 127.0.0.3
start b.test 127.0.0.3 a.test 127.0.0.2
args=("$@")
[ "${#args[@]}" -gt 0 ] || args=(--pairs 50 --rate 2000 --duration 10)
"$ROOST_LOAD" --server 127.0.0.2:5222 --domain a.test --label roost-s2s --register \
    --server-pid "${PIDS[0]}" chat --peer-server 127.0.0.3:5222 --peer-domain b.test "${args[@]}"
