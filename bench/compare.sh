#!/usr/bin/env bash
# Side-by-side benchmark of Roost, Prosody and ejabberd on this machine,
# loopback only: installs the peers from Debian's packages when missing,
# starts each with its own config and data folder (bench/*.in, see
# bench/README.md), provisions the same accounts, runs the same roost-load
# scenarios against all three interleaved, and writes docs/benchmarks.md
# and its plots. Every server started here is stopped by PID at the end,
# also on failure or Ctrl-C.
#
#   bench/compare.sh            # full sizes, sized for about 15 minutes on 2 cores
#   bench/compare.sh --quick    # small sizes, about 2.5 minutes of scenarios
#
# Environment: BENCH_WORK (scratch folder, default a new /tmp/roost-bench.*),
# BENCH_SERVERS (default "roost prosody ejabberd").
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=full
for arg in "$@"; do
    case $arg in
        --quick) MODE=quick ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done
COMMAND="bench/compare.sh $*"
SERVERS=${BENCH_SERVERS:-"roost prosody ejabberd"}

log() { printf '\n== %s\n' "$*" >&2; }

# --- servers we start, stopped by PID whatever happens ------------------
declare -A PID=()       # label -> pid of the server process measured
declare -A WRAPPER=()   # label -> pid of a wrapper we started, if any
stop_servers() {
    local label pid
    for label in "${!PID[@]}"; do
        pid=${PID[$label]}
        kill -TERM "$pid" 2>/dev/null || true
    done
    for label in "${!WRAPPER[@]}"; do
        kill -TERM "${WRAPPER[$label]}" 2>/dev/null || true
    done
    # Bounded wait, then force.
    for _ in $(seq 1 50); do
        local alive=0
        for pid in "${PID[@]}" "${WRAPPER[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.2
    done
    for pid in "${PID[@]}" "${WRAPPER[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    PID=()
    WRAPPER=()
}
trap 'stop_servers' EXIT
trap 'exit 130' INT TERM

# --- sizes ---------------------------------------------------------------
if [ $MODE = quick ]; then
    LOGIN_N=1000; LOGIN_C=50
    IDLE_N=1000
    CHAT_PAIRS=10; CHAT_RATES="200 800"; CHAT_T=3
    MUC_ROOMS=4; MUC_USERS=10; MUC_KS="1 3"; MUC_SENDERS=4; MUC_RATES="20 80"; MUC_T=3
    JOIN_SAMPLES=10; JOIN_BG=5; DRAIN=3
else
    LOGIN_N=3000; LOGIN_C=50
    IDLE_N=10000
    CHAT_PAIRS=50; CHAT_RATES="1000 4000 8000"; CHAT_T=10
    MUC_ROOMS=10; MUC_USERS=20; MUC_KS="1 3"; MUC_SENDERS=10; MUC_RATES="50 200 400"; MUC_T=10
    JOIN_SAMPLES=50; JOIN_BG=20; DRAIN=5
fi
ACCOUNTS=$IDLE_N
for n in $((CHAT_PAIRS * 2)) $((MUC_ROOMS * MUC_USERS)) $((1 + JOIN_BG + JOIN_SAMPLES)); do
    [ "$n" -gt "$ACCOUNTS" ] && ACCOUNTS=$n
done

# --- peers from Debian's packages ---------------------------------------
need=()
for pkg in prosody ejabberd; do
    case " $SERVERS " in *" $pkg "*) ;; *) continue ;; esac
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
        need+=("$pkg")
    fi
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]} from Debian's packages"
    apt-cache policy "${need[@]}" | grep -E '^[a-z]|Candidate' >&2 || true
    # Keep the packages' own services from starting on the default ports.
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
version_of() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not installed"; }

# --- build ---------------------------------------------------------------
log "building roost and roost-load (release)"
(cd "$ROOT" && cargo build --release -p roost-server --bin roost -p roost-load --bin roost-load >&2)
ROOST_BIN=$ROOT/target/release/roost
LOAD_BIN=$ROOT/target/release/roost-load

# --- scratch folder, certificate -----------------------------------------
WORK=${BENCH_WORK:-$(mktemp -d /tmp/roost-bench.XXXXXX)}
mkdir -p "$WORK"/{tls,roost,prosody/data,ejabberd/spool,ejabberd/logs}
chmod 755 "$WORK"
log "scratch folder $WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,DNS:conference.localhost" \
    -keyout "$WORK/tls/localhost.key" -out "$WORK/tls/localhost.crt" 2>/dev/null
cat "$WORK/tls/localhost.crt" "$WORK/tls/localhost.key" > "$WORK/tls/localhost.pem"
chmod 644 "$WORK"/tls/*   # a throwaway key for loopback benchmarks
fill() { sed "s|@WORK@|$WORK|g" "$1" > "$2"; }
fill "$ROOT/bench/roost.toml.in" "$WORK/roost/roost.toml"
fill "$ROOT/bench/prosody.cfg.lua.in" "$WORK/prosody/prosody.cfg.lua"
fill "$ROOT/bench/ejabberd.yml.in" "$WORK/ejabberd/ejabberd.yml"
fill "$ROOT/bench/ejabberdctl.cfg.in" "$WORK/ejabberd/ejabberdctl.cfg"
cp /etc/ejabberd/inetrc "$WORK/ejabberd/inetrc" 2>/dev/null || : > "$WORK/ejabberd/inetrc"
chown -R prosody:prosody "$WORK/prosody" 2>/dev/null || true
chown -R ejabberd:ejabberd "$WORK/ejabberd" 2>/dev/null || true

# One descriptor per connection, on both sides.
ulimit -n "$(ulimit -Hn)"
log "open files limit: $(ulimit -n)"

declare -A PORT=([roost]=15222 [prosody]=25222 [ejabberd]=35222)
EJ=(ejabberdctl --config-dir "$WORK/ejabberd" --config "$WORK/ejabberd/ejabberd.yml"
    --ctl-config "$WORK/ejabberd/ejabberdctl.cfg" --logs "$WORK/ejabberd/logs"
    --spool "$WORK/ejabberd/spool")
as_ejabberd() { setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME="$WORK/ejabberd" "$@"; }
as_prosody() { setpriv --reuid=prosody --regid=prosody --init-groups "$@"; }

wait_port() { # label port: bounded wait for the port to accept
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        kill -0 "${WRAPPER[$1]:-${PID[$1]}}" 2>/dev/null || { echo "$1 exited" >&2; return 1; }
        sleep 0.2
    done
    echo "$1 did not open port $2" >&2
    return 1
}

start_roost() {
    "$ROOST_BIN" serve --config "$WORK/roost/roost.toml" > "$WORK/roost/roost.log" 2>&1 &
    PID[roost]=$!
    wait_port roost 15222
    "$ROOST_BIN" user add bench-admin@localhost --password bench-admin \
        --config "$WORK/roost/roost.toml" >&2
}

start_prosody() {
    as_prosody prosody --config "$WORK/prosody/prosody.cfg.lua" -F \
        > "$WORK/prosody/stdout.log" 2>&1 &
    WRAPPER[prosody]=$!   # the subshell running the function; prosody writes its pid
    wait_port prosody 25222
    for _ in $(seq 1 100); do
        [ -s "$WORK/prosody/prosody.pid" ] && break
        sleep 0.1
    done
    PID[prosody]=$(cat "$WORK/prosody/prosody.pid")
    as_prosody prosodyctl --config "$WORK/prosody/prosody.cfg.lua" \
        register bench-admin localhost bench-admin >&2
}

start_ejabberd() {
    (cd "$WORK/ejabberd" && as_ejabberd "${EJ[@]}" foreground > "$WORK/ejabberd/stdout.log" 2>&1) &
    WRAPPER[ejabberd]=$!
    wait_port ejabberd 35222
    for _ in $(seq 1 100); do
        [ -s "$WORK/ejabberd/ejabberd.pid" ] && break
        sleep 0.1
    done
    PID[ejabberd]=$(cat "$WORK/ejabberd/ejabberd.pid")
    (cd "$WORK/ejabberd" && as_ejabberd "${EJ[@]}" register bench-admin localhost bench-admin >&2)
}

RESULTS=$WORK/results.jsonl
HUMAN=$WORK/summary.txt
: > "$RESULTS"
: > "$HUMAN"

for s in $SERVERS; do
    # A server left over from an earlier run would answer in place of ours.
    if (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$s]}") 2>/dev/null; then
        echo "port ${PORT[$s]} for $s is already in use; stop what listens there first" >&2
        exit 1
    fi
    log "starting $s"
    "start_$s"
    echo "$s pid ${PID[$s]}" >&2
done

# CPU ticks (utime + stime) of every server we started, summed.
servers_ticks() {
    local pid total=0 t
    for pid in "${PID[@]}"; do
        t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

# Wait (at most 20 s) until no server has used more than one tick of CPU
# in half a second: work one server left behind (a database flush, a
# garbage collection, an Erlang scheduler spinning down) must not run on
# the cores while the next server is measured.
quiesce() {
    local before after
    for _ in $(seq 1 40); do
        before=$(servers_ticks)
        sleep 0.5
        after=$(servers_ticks)
        [ $((after - before)) -le 1 ] && return 0
    done
    echo "servers still busy after 20 s; measuring anyway" >&2
}

# run SCENARIO ARGS...: the same scenario against every server, in turn.
run() {
    local s extra
    for s in $SERVERS; do
        quiesce
        extra=()
        [ "$s" = roost ] && extra=(--metrics 127.0.0.1:15280)
        log "$s: $*"
        if ! "$LOAD_BIN" --server "127.0.0.1:${PORT[$s]}" --label "$s" \
                --server-pid "${PID[$s]}" "${extra[@]}" "$@" >> "$RESULTS" 2>> "$HUMAN.tmp"; then
            printf '{"scenario":"%s","label":"%s","error":"failed, see summary.txt"}\n' "$1" "$s" >> "$RESULTS"
        fi
        cat "$HUMAN.tmp" >&2
        cat "$HUMAN.tmp" >> "$HUMAN"
        : > "$HUMAN.tmp"
        sleep 0.5
    done
}

for s in $SERVERS; do
    log "$s: registering $ACCOUNTS accounts (XEP-0077)"
    "$LOAD_BIN" --server "127.0.0.1:${PORT[$s]}" --label "$s" register -n "$ACCOUNTS" >> "$WORK/register.jsonl"
done

T0=$(date +%s)
run login -n "$LOGIN_N" -c "$LOGIN_C"
run idle -n "$IDLE_N" -c 100 --hold 2
for rate in $CHAT_RATES; do
    run chat --pairs "$CHAT_PAIRS" --rate "$rate" --duration "$CHAT_T" --drain "$DRAIN"
done
for k in $MUC_KS; do
    for rate in $MUC_RATES; do
        run muc --rooms "$MUC_ROOMS" --users "$MUC_USERS" --sessions "$k" \
            --senders "$MUC_SENDERS" --rate "$rate" --duration "$MUC_T" --drain "$DRAIN" \
            --room-prefix "k${k}r${rate}-"
    done
done
run join --samples "$JOIN_SAMPLES" --background "$JOIN_BG"
T1=$(date +%s)

# Memory of each server at the end, then stop them.
for s in $SERVERS; do
    echo "$s final VmRSS: $(grep VmRSS "/proc/${PID[$s]}/status" 2>/dev/null | awk '{print $2, $3}')" >> "$HUMAN"
done
stop_servers

cat > "$WORK/meta.env" <<EOF
command=$COMMAND
mode=$MODE
date=$(date -u +%Y-%m-%dT%H:%MZ)
scenario_seconds=$((T1 - T0))
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
cores=$(nproc)
memory=$(free -g | awk '/Mem:/ {print $2 " GiB"}')
kernel=$(uname -r)
os=$(. /etc/os-release && echo "$PRETTY_NAME")
rustc=$(rustc --version)
roost=$(cd "$ROOT" && cargo pkgid -p roost-server | sed 's/.*[#@]//') (working tree)
prosody=$(version_of prosody) (Debian package; Lua $(dpkg-query -W -f='${Version}' lua5.4 2>/dev/null || echo ?))
ejabberd=$(version_of ejabberd) (Debian package; Erlang/OTP $(dpkg-query -W -f='${Version}' erlang-base 2>/dev/null || echo ?))
nofile=$(ulimit -n)
EOF

log "writing the report"
mkdir -p "$ROOT/docs/benchmarks"
cp "$RESULTS" "$ROOT/docs/benchmarks/results.jsonl"
cp "$HUMAN" "$ROOT/docs/benchmarks/summary.txt"
cp "$WORK/meta.env" "$ROOT/docs/benchmarks/meta.env"
python3 "$ROOT/bench/report.py" --results "$ROOT/docs/benchmarks/results.jsonl" \
    --meta "$ROOT/docs/benchmarks/meta.env" --out "$ROOT/docs/benchmarks.md" \
    --svg-dir "$ROOT/docs/benchmarks"
log "done in $((T1 - T0)) s of scenarios: docs/benchmarks.md (scratch: $WORK)"
