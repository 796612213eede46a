#!/usr/bin/env bash
# Soak test: Roost under a steady mixed load for MINUTES (default 30), on
# loopback, with its own configuration and data folder. `roost-load soak`
# keeps chatting pairs, rooms with fan-out, short logins and logouts,
# archive queries (XEP-0313), uploads (XEP-0363 over HTTPS) and phones
# that drop their connection and resume (XEP-0198) going, checks every
# operation, and prints a line per interval (server RSS, descriptors, CPU,
# latency percentiles, errors). At the end this script prints a verdict
# and exits non-zero if anything failed, the server's RSS grew beyond the
# working set after the warm-up, or descriptors were left behind. Not run
# by CI (see docs/soak.md).
#
#   scripts/soak.sh          # 30 minutes
#   scripts/soak.sh 60       # an hour
#
# Environment:
#   ROOST_BIN, ROOST_LOAD  binaries to use (default: build both, release)
#   SOAK_WORK              scratch folder (default: a new temporary folder)
#   SOAK_PORT              client port; HTTP and HTTPS use the next two
#                          (default 17222)
#   SOAK_INTERVAL          seconds between report lines (default 60)
#   SOAK_WARMUP            seconds of warm-up (default a tenth of the run)
#   SOAK_ARGS              more `roost-load soak` options (rates, sizes)
#   SOAK_RSS_PCT, SOAK_RSS_MIB  allowed RSS growth after the warm-up
#                          (default 10 % of the warm-up figure + 16 MiB)
#   SOAK_FD_SLACK          descriptors the idle server may hold beyond its
#                          count before the run (default 2)
#   SOAK_OUT               folder to copy soak.json, soak.log, roost.log to
#   SOAK_KEEP_DATA=1       keep the server's data folder (the archive grows
#                          by about 4 GiB an hour at the default rates)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=${1:-30}
case $MINUTES in
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    ''|*[!0-9]*) echo "usage: scripts/soak.sh [MINUTES]" >&2; exit 2 ;;
esac
SECONDS_RUN=$((MINUTES * 60))
INTERVAL=${SOAK_INTERVAL:-60}
PORT=${SOAK_PORT:-17222}
HTTP_PORT=$((PORT + 1))
HTTPS_PORT=$((PORT + 2))
RSS_PCT=${SOAK_RSS_PCT:-10}
RSS_MIB=${SOAK_RSS_MIB:-16}
FD_SLACK=${SOAK_FD_SLACK:-2}

log() { printf '== %s\n' "$*" >&2; }

# --- binaries --------------------------------------------------------------
need=()
[ -n "${ROOST_BIN:-}" ] || need+=(-p roost-server --bin roost)
[ -n "${ROOST_LOAD:-}" ] || need+=(-p roost-load --bin roost-load)
if [ ${#need[@]} -gt 0 ]; then
    log "building ${need[*]} (release)"
    (cd "$ROOT" && cargo build --release "${need[@]}" >&2)
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROOST_BIN=${ROOST_BIN:-$TARGET/release/roost}
ROOST_LOAD=${ROOST_LOAD:-$TARGET/release/roost-load}
for b in "$ROOST_BIN" "$ROOST_LOAD"; do
    [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
done

# --- the server, ours alone ------------------------------------------------
WORK=${SOAK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/roost-soak.XXXXXX")}
mkdir -p "$WORK/data"
free_kib=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
if [ -n "$free_kib" ] && [ "$free_kib" -lt $((MINUTES * 100 * 1024)) ]; then
    echo "warning: $((free_kib / 1024)) MiB free in $WORK; the run may need about $((MINUTES * 80)) MiB" >&2
fi
for p in "$PORT" "$HTTP_PORT" "$HTTPS_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "port $p is in use; set SOAK_PORT to another one" >&2
        exit 2
    fi
done
cat > "$WORK/roost.toml" <<EOF
# Written by scripts/soak.sh for one run.
domain = "localhost"
data_dir = "$WORK/data"
log = "warn"

[listen]
c2s = "127.0.0.1:$PORT"
c2s_tls = ""
http = "127.0.0.1:$HTTP_PORT"
https = "127.0.0.1:$HTTPS_PORT"
s2s = ""
proxy65 = ""

[registration]
loopback = true

[upload]
url = "https://127.0.0.1:$HTTPS_PORT"

[proxy65]
enabled = false
EOF

SERVER_PID=
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the server did not stop within 30 s of SIGTERM; killing it" >&2
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null && SERVER_RC=0 || SERVER_RC=$?
    SERVER_PID=
}
SERVER_RC=
trap 'stop_server' EXIT
trap 'exit 130' INT TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "scratch folder $WORK"
"$ROOST_BIN" serve --config "$WORK/roost.toml" > "$WORK/roost.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/roost.log" >&2; echo "the server exited" >&2; exit 1; }
    sleep 0.2
done
log "server pid $SERVER_PID on 127.0.0.1:$PORT (HTTP $HTTP_PORT, HTTPS $HTTPS_PORT)"

# --- the run -------------------------------------------------------------------
warmup=()
[ -n "${SOAK_WARMUP:-}" ] && warmup=(--warmup "$SOAK_WARMUP")
# shellcheck disable=SC2206  # SOAK_ARGS is a list of options on purpose
extra=(${SOAK_ARGS:-})
log "roost-load soak for $MINUTES min (accounts created with XEP-0077 first)"
set +e
"$ROOST_LOAD" --server "127.0.0.1:$PORT" --server-pid "$SERVER_PID" \
    --metrics "127.0.0.1:$HTTP_PORT" --label roost --register \
    soak --duration "$SECONDS_RUN" --interval "$INTERVAL" "${warmup[@]}" "${extra[@]}" \
    2>&1 > "$WORK/soak.json" | tee "$WORK/soak.log" >&2
LOAD_RC=${PIPESTATUS[0]}
set -e
t_stop=$(date +%s.%N)
stop_server
t_stopped=$(date +%s.%N)

# --- verdict ---------------------------------------------------------------------
JSON=$WORK/soak.json
get() { { grep -o "\"$1\":[-0-9.e]*" "$JSON" 2>/dev/null || true; } | head -1 | cut -d: -f2; }
errors=$(get errors_total); errors=${errors:-?}
rss_warm=$(get rss_warm_kib); rss_end=$(get rss_end_kib); rss_max=$(get rss_max_kib)
rss_warm_peak=$(get rss_warm_peak_kib); rss_end_peak=$(get rss_end_peak_kib)
slope=$(get rss_slope_mib_per_h); warm_from=$(get warm_window_from_s)
warm_to=$(get warm_window_to_s); end_from=$(get end_window_from_s)
fds_warm=$(get fds_warm); fds_end=$(get fds_end); fds_max=$(get fds_max)
fds_idle0=$(get fds_idle_start); fds_idle1=$(get fds_idle_end)
rss_idle0=$(get rss_idle_start_kib); rss_idle1=$(get rss_idle_end_kib)
rss_idle2=$(get rss_idle_later_kib); idle_wait=$(get idle_wait_s)
fds_idle2=$(get fds_idle_later); fds_idle1=${fds_idle2:-$fds_idle1}
cpu=$(get server_cpu_pct)
# The log may be coloured: levels are matched without the escape codes.
plain_log() { sed 's/\x1b\[[0-9;]*m//g' "$WORK/roost.log"; }
log_errors=$(plain_log | grep -c ' ERROR ' || true)
log_warns=$(plain_log | grep -c ' WARN ' || true)
mib() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f", k / 1024 }'; }

fail=()
[ "$LOAD_RC" = 0 ] || fail+=("roost-load exited with $LOAD_RC")
[ "$errors" = 0 ] || fail+=("$errors errors")
[ "${log_errors:-0}" = 0 ] || fail+=("$log_errors ERROR lines in the server log")
[ "${SERVER_RC:-0}" = 0 ] || fail+=("the server exited with $SERVER_RC after SIGTERM")
if [ -n "$rss_warm" ] && [ -n "$rss_end" ]; then
    allowed=$(awk -v w="$rss_warm" -v p="$RSS_PCT" -v m="$RSS_MIB" 'BEGIN { printf "%d", w * p / 100 + m * 1024 }')
    growth=$(awk -v a="$rss_warm" -v b="$rss_end" 'BEGIN { printf "%d", b - a }')
    [ "$growth" -le "$allowed" ] ||
        fail+=("RSS grew $(mib "$growth") MiB after the warm-up (allowed $(mib "$allowed") MiB)")
else
    growth=?; allowed=?
    fail+=("no RSS figures")
fi
if [ -n "$fds_idle0" ] && [ -n "$fds_idle1" ]; then
    [ $((fds_idle1 - fds_idle0)) -le "$FD_SLACK" ] ||
        fail+=("$((fds_idle1 - fds_idle0)) descriptors left open after every client left")
else
    fail+=("no descriptor figures")
fi

cat >&2 <<EOF

== soak verdict ($MINUTES min, $WORK)
server RSS     after warm-up (${warm_from%.*}-${warm_to%.*} s) median $(mib "$rss_warm") MiB, peak $(mib "$rss_warm_peak") MiB
               at the end (${end_from%.*}-$SECONDS_RUN s) median $(mib "$rss_end") MiB, peak $(mib "$rss_end_peak") MiB
               growth $(mib "$growth") MiB (allowed $(mib "$allowed")), trend ${slope:-?} MiB/h, max $(mib "$rss_max") MiB
               idle before $(mib "$rss_idle0") MiB, idle after $(mib "$rss_idle1") MiB ($(mib "$rss_idle2") MiB $((3 + ${idle_wait:-0})) s later)
descriptors    warm-up $fds_warm, end $fds_end, max $fds_max; idle before $fds_idle0, idle after $fds_idle1
server CPU     ${cpu:-?} % of one core on average
errors         $errors (roost-load), server log: ${log_errors:-0} ERROR, ${log_warns:-0} WARN lines
data folder    $(du -sm "$WORK/data" | cut -f1) MiB (database and WAL $(du -cm "$WORK"/data/roost.sqlite* | tail -1 | cut -f1) MiB, uploads $(du -sm "$WORK/data/uploads" 2>/dev/null | cut -f1) MiB)
shutdown       $(awk -v a="$t_stop" -v b="$t_stopped" 'BEGIN { printf "%.1f", b - a }') s after SIGTERM, exit status ${SERVER_RC:-?}
EOF
if [ -n "${SOAK_OUT:-}" ]; then
    mkdir -p "$SOAK_OUT"
    cp "$WORK/soak.json" "$WORK/soak.log" "$WORK/roost.log" "$SOAK_OUT/"
fi
[ -n "${SOAK_KEEP_DATA:-}" ] || rm -rf "$WORK/data"
if [ ${#fail[@]} -gt 0 ]; then
    printf 'FAIL: %s\n' "${fail[@]}" >&2
    exit 1
fi
echo "PASS" >&2
