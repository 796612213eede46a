#!/usr/bin/env bash
# Cluster benchmark on this machine, loopback only: the same roost-load
# scenarios against one Roost node and against a cluster of three nodes
# (one NATS server, one PostgreSQL), both on PostgreSQL so that only the
# bus differs. Reports server CPU (all nodes together, and NATS's) per
# scenario and the latency percentiles of roost-load.
#
#   bench/cluster.sh            # about 5 minutes of scenarios
#   bench/cluster.sh --soak M   # only the three nodes, `roost-load soak` for M
#                               # minutes, with every node's RSS each minute
#
# Starts PostgreSQL (scripts/with-postgres.sh, durable settings) and finds
# nats-server (scripts/with-nats.sh); every process started here is
# stopped by PID at the end. Results: $BENCH_WORK (default a new
# /tmp/roost-cluster-bench.*), summary.txt and results.jsonl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SOAK_MIN=""
if [ "${1:-}" = "--soak" ]; then
    SOAK_MIN=${2:?minutes}
fi
if [ -z "${ROOST_TEST_POSTGRES_URL:-}" ]; then
    exec bash "$ROOT/scripts/with-postgres.sh" --durable bash "$ROOT/scripts/with-nats.sh" bash "$0" "$@"
fi
WORK=${BENCH_WORK:-$(mktemp -d /tmp/roost-cluster-bench.XXXXXX)}
mkdir -p "$WORK"
ROOST=${ROOST_BIN:-$ROOT/target/release/roost}
LOAD=${ROOST_LOAD:-$ROOT/target/release/roost-load}
if [ ! -x "$ROOST" ] || [ ! -x "$LOAD" ]; then
    (cd "$ROOT" && cargo build --release -p roost-server --bin roost -p roost-load --bin roost-load >&2)
fi
RESULTS=$WORK/results.jsonl
HUMAN=$WORK/summary.txt
: > "$RESULTS"
: > "$HUMAN"

PIDS=()
stop_all() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.2
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    PIDS=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ticks() { # utime+stime of the given pids, in clock ticks
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo $t
}
rss_kib() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $t; }
HZ=$(getconf CLK_TCK)

schema() { # a fresh schema; the URL for it
    local name=$1
    psql "$ROOST_TEST_POSTGRES_URL" -qAt -c "DROP SCHEMA IF EXISTS $name CASCADE; CREATE SCHEMA $name" >/dev/null
    echo "${ROOST_TEST_POSTGRES_URL}?options=-c%20search_path%3D$name"
}

nats_port=$(free_port)
"$ROOST_TEST_NATS_SERVER" -a 127.0.0.1 -p "$nats_port" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
PIDS+=("$NATS_PID")
sleep 0.5

start_node() { # name url cluster(0/1) -> sets NODE_PID NODE_PORT
    local name=$1 url=$2 clustered=$3
    NODE_PORT=$(free_port)
    local https_port
    https_port=$(free_port)
    local cfg=$WORK/$name.toml
    cat > "$cfg" <<TOML
domain = "localhost"
data_dir = "$WORK/$name-data"
log = "warn"

[listen]
c2s = "127.0.0.1:$NODE_PORT"
c2s_tls = ""
http = "127.0.0.1:$(free_port)"
https = "127.0.0.1:$https_port"
proxy65 = ""

[registration]
loopback = true

[upload]
url = "https://127.0.0.1:$https_port"

[proxy65]
enabled = false

[limits]
stanzas_per_second = 0
bytes_per_second = 0

[storage]
backend = "postgres"
url = "$url"
pool_size = 8
TOML
    if [ "$clustered" = 1 ]; then
        printf '\n[cluster]\nenabled = true\nnode = "%s"\nnats = "nats://127.0.0.1:%s"\n' "$name" "$nats_port" >> "$cfg"
    fi
    "$ROOST" serve --config "$cfg" 2>"$WORK/$name.log" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    for _ in $(seq 1 100); do
        (echo > "/dev/tcp/127.0.0.1/$NODE_PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "node $name did not start" >&2
    cat "$WORK/$name.log" >&2
    exit 1
}

measure() { # label servers(comma) pids... -- roost-load args...
    local label=$1 servers=$2; shift 2
    local pids=()
    while [ "$1" != "--" ]; do pids+=("$1"); shift; done
    shift
    local t0 n0 t1 n1 w0 w1
    t0=$(ticks "${pids[@]}"); n0=$(ticks "$NATS_PID"); w0=$(date +%s.%N)
    "$LOAD" --server "$servers" --label "$label" "$@" >> "$RESULTS" 2>> "$HUMAN"
    t1=$(ticks "${pids[@]}"); n1=$(ticks "$NATS_PID"); w1=$(date +%s.%N)
    awk -v l="$label" -v s="$1" -v r=$((t1 - t0)) -v n=$((n1 - n0)) -v hz="$HZ" \
        -v w0="$w0" -v w1="$w1" -v rss="$(rss_kib "${pids[@]}")" \
        'BEGIN { printf "%s %s: roost CPU %.2f s, nats CPU %.2f s, wall %.1f s, RSS %d KiB\n", l, s, r / hz, n / hz, w1 - w0, rss }' |
        tee -a "$HUMAN" >&2
}

scenarios() { # label servers pids...
    local label=$1 servers=$2; shift 2
    "$LOAD" --server "$servers" --label "$label" register -n 400 >> "$WORK/register.jsonl" 2>/dev/null
    measure "$label" "$servers" "$@" -- chat --pairs 50 --rate 1000 --duration 20 --drain 3
    measure "$label" "$servers" "$@" -- chat --pairs 50 --rate 4000 --duration 20 --drain 3
    measure "$label" "$servers" "$@" -- muc --rooms 5 --users 20 --sessions 2 --senders 5 --rate 50 --duration 20 --drain 3
    measure "$label" "$servers" "$@" -- muc --rooms 5 --users 20 --sessions 2 --senders 5 --rate 200 --duration 20 --drain 3
    measure "$label" "$servers" "$@" -- login -n 400 -c 20
}

if [ -n "$SOAK_MIN" ]; then
    url=$(schema roost_soak_cluster)
    addrs=()
    pids=()
    for n in n1 n2 n3; do
        start_node "$n" "$url" 1
        addrs+=("127.0.0.1:$NODE_PORT")
        pids+=("$NODE_PID")
    done
    sleep 2
    # Every node's RSS (KiB) and the NATS server's, once a minute.
    (
        echo "minute n1 n2 n3 nats" > "$WORK/rss.txt"
        for m in $(seq 0 "$SOAK_MIN"); do
            line="$m"
            for p in "${pids[@]}" "$NATS_PID"; do
                line="$line $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)"
            done
            echo "$line" >> "$WORK/rss.txt"
            sleep 60
        done
    ) &
    SAMPLER=$!
    t0=$(ticks "${pids[@]}"); n0=$(ticks "$NATS_PID")
    # CLUSTER_SOAK_ENTRY=1: every client connects to n1 only (the other
    # nodes still own two thirds of the accounts and rooms).
    entry=$(IFS=,; echo "${addrs[*]}")
    [ "${CLUSTER_SOAK_ENTRY:-}" = 1 ] && entry=${addrs[0]}
    "$LOAD" --server "$entry" --label cluster --register \
        soak --duration $((SOAK_MIN * 60)) --interval 60 > "$WORK/soak.json" 2> "$WORK/soak.txt" || echo "roost-load failed" >&2
    t1=$(ticks "${pids[@]}"); n1=$(ticks "$NATS_PID")
    kill "$SAMPLER" 2>/dev/null || true
    "$ROOST" cluster status --config "$WORK/n1.toml" | tee -a "$WORK/soak.txt" >&2
    awk -v r=$((t1 - t0)) -v n=$((n1 - n0)) -v hz="$HZ" -v s=$((SOAK_MIN * 60)) \
        'BEGIN { printf "CPU: roost %.1f s (%.0f %% of a core), nats %.1f s\n", r / hz, 100 * r / hz / s, n / hz }' |
        tee -a "$WORK/soak.txt" >&2
    cat "$WORK/rss.txt" >&2
    grep -h -c ERROR "$WORK"/n?.log | paste -sd' ' | sed 's/^/ERROR lines per node: /' >&2
    echo "results: $WORK" >&2
    exit 0
fi

# One node.
url=$(schema roost_bench_single)
start_node single "$url" 0
single=$NODE_PID
scenarios "1 node" "127.0.0.1:$NODE_PORT" "$single"
stop_all
PIDS=()
"$ROOST_TEST_NATS_SERVER" -a 127.0.0.1 -p "$nats_port" >>"$WORK/nats.log" 2>&1 &
NATS_PID=$!
PIDS+=("$NATS_PID")
sleep 0.5

# Three nodes.
url=$(schema roost_bench_cluster)
addrs=()
pids=()
for n in n1 n2 n3; do
    start_node "$n" "$url" 1
    addrs+=("127.0.0.1:$NODE_PORT")
    pids+=("$NODE_PID")
done
sleep 2
scenarios "3 nodes" "$(IFS=,; echo "${addrs[*]}")" "${pids[@]}"
"$ROOST" cluster status --config "$WORK/n1.toml" | tee -a "$HUMAN" >&2
echo "results: $WORK" >&2
