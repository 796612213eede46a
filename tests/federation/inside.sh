#!/usr/bin/env bash
# The part of scripts/federation-interop.sh that runs inside the network
# and mount namespace: loopback, DNS, certificates, the three servers,
# the tests; every process started here is stopped by PID at the end.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$repo/tests/federation"
work="$(mktemp -d -t roost-federation.XXXXXX)"
chmod 755 "$work"
declare -a PIDS=()

log() { echo "federation: $*"; }

cleanup() {
    status=$?
    # A Prosody restarted by a test has a PID of its own.
    [ -s "$work/prosody/pid" ] && PIDS+=("$(cat "$work/prosody/pid")")
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        for f in roost/roost.log prosody/prosody.log ejabberd/logs/ejabberd.log dnsmasq.log; do
            [ -f "$work/$f" ] || continue
            echo "===== $f (last 80 lines) ====="
            tail -n 80 "$work/$f"
        done
    fi
    if [ -n "${FEDERATION_KEEP:-}" ]; then
        echo "federation: kept $work"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT

ip link set lo up

# --- DNS: dnsmasq on 127.0.0.53, and a resolv.conf that points at it ---------
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --listen-address=127.0.0.53 --bind-interfaces --port=53 \
    --user=root --group=root --pid-file="$work/dnsmasq.pid" \
    --log-queries --log-facility="$work/dnsmasq.log" \
    --local=/test/ \
    --address=/roost.test/127.0.0.2 \
    --address=/prosody.test/127.0.0.3 \
    --address=/ejabberd.test/127.0.0.4 \
    --srv-host=_xmpp-server._tcp.prosody.test,prosody.test,5269,0,5 \
    --srv-host=_xmpp-server._tcp.ejabberd.test,ejabberd.test,5269,0,5 \
    --srv-host=_xmpp-server._tcp.roost.test,roost.test,5269,0,5 &
PIDS+=($!)
echo "nameserver 127.0.0.53" > "$work/resolv.conf"
mount --bind "$work/resolv.conf" /etc/resolv.conf
printf '127.0.0.1 localhost\n::1 localhost\n' > "$work/hosts"
mount --bind "$work/hosts" /etc/hosts

# --- certificates: one CA, one certificate per domain and its MUC service --
mkdir -p "$work/tls"
(
    cd "$work/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout ca.key -out ca.pem -days 2 -subj "/CN=Roost federation test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    for d in roost.test prosody.test ejabberd.test; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$d.key" -out "$d.csr" -subj "/CN=$d" 2>/dev/null
        printf 'subjectAltName=DNS:%s,DNS:conference.%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n' "$d" "$d" > "$d.ext"
        openssl x509 -req -in "$d.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 2 -out "$d.crt" -extfile "$d.ext" 2>/dev/null
        cat "$d.crt" "$d.key" > "$d.pem"
    done
    # A certificate for roost.test that no peer trusts (round 3).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout roost-untrusted.key -out roost-untrusted.crt -days 2 -subj "/CN=roost.test" \
        -addext "subjectAltName=DNS:roost.test,DNS:conference.roost.test" \
        -addext "extendedKeyUsage=serverAuth,clientAuth" 2>/dev/null
)
chmod 755 "$work/tls"
chmod 644 "$work/tls"/*

fill() { sed "s|@WORK@|$work|g" "$1" > "$2"; }

wait_port() { # label ip port pid
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/$2/$3") 2>/dev/null; then return 0; fi
        kill -0 "$4" 2>/dev/null || { log "$1 exited during start-up"; return 1; }
        sleep 0.2
    done
    log "$1 did not open $2:$3"
    return 1
}

# --- Roost ------------------------------------------------------------------
mkdir -p "$work/roost"
fill "$here/roost.toml.in" "$work/roost/roost.toml"
# The same without the test CA: no peer certificate verifies, so every
# server stream in both directions falls back to Server Dialback.
grep -v '^ca_file' "$work/roost/roost.toml" > "$work/roost/roost-dialback.toml"
# And with a certificate the peers do not trust: they cannot take SASL
# EXTERNAL from Roost, so Roost's own streams use dialback.
sed "s|tls/roost.test.crt|tls/roost-untrusted.crt|; s|tls/roost.test.key|tls/roost-untrusted.key|" \
    "$work/roost/roost.toml" > "$work/roost/roost-untrusted.toml"
ROOST_PID=
start_roost() { # config
    "$ROOST_BIN" serve --config "$1" >> "$work/roost/roost.log" 2>&1 &
    ROOST_PID=$!
    PIDS+=("$ROOST_PID")
    wait_port roost 127.0.0.2 5222 "$ROOST_PID"
}
stop_roost() {
    kill "$ROOST_PID"
    for _ in $(seq 1 100); do
        kill -0 "$ROOST_PID" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$ROOST_PID" 2>/dev/null || true
}
start_roost "$work/roost/roost.toml"
for u in alice bob; do
    "$ROOST_BIN" user add "$u@roost.test" --password "pw-$u" --config "$work/roost/roost.toml" >/dev/null
done

# --- Prosody ------------------------------------------------------------------
mkdir -p "$work/prosody/data"
fill "$here/prosody.cfg.lua.in" "$work/prosody/prosody.cfg.lua"
chown -R prosody:prosody "$work/prosody"
start_prosody() {
    setpriv --reuid=prosody --regid=prosody --init-groups \
        prosody --config "$work/prosody/prosody.cfg.lua" -F >> "$work/prosody/stdout.log" 2>&1 < /dev/null &
    echo $! > "$work/prosody/pid"
    wait_port prosody 127.0.0.3 5222 "$(cat "$work/prosody/pid")"
}
start_prosody
PIDS+=("$(cat "$work/prosody/pid")")
setpriv --reuid=prosody --regid=prosody --init-groups \
    prosodyctl --config "$work/prosody/prosody.cfg.lua" register paula prosody.test pw-paula >/dev/null

# --- ejabberd (epmd started by us, so that we can stop it) -------------------
mkdir -p "$work/ejabberd/spool" "$work/ejabberd/logs"
fill "$here/ejabberd.yml.in" "$work/ejabberd/ejabberd.yml"
fill "$here/ejabberdctl.cfg.in" "$work/ejabberd/ejabberdctl.cfg"
cp /etc/ejabberd/inetrc "$work/ejabberd/inetrc" 2>/dev/null || : > "$work/ejabberd/inetrc"
chown -R ejabberd:ejabberd "$work/ejabberd"
as_ejabberd() { setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME="$work/ejabberd" "$@"; }
as_ejabberd epmd -address 127.0.0.1 > "$work/ejabberd/epmd.log" 2>&1 &
PIDS+=($!)
EJ=(ejabberdctl --config-dir "$work/ejabberd" --config "$work/ejabberd/ejabberd.yml"
    --ctl-config "$work/ejabberd/ejabberdctl.cfg" --logs "$work/ejabberd/logs"
    --spool "$work/ejabberd/spool")
(cd "$work/ejabberd" && exec setpriv --reuid=ejabberd --regid=ejabberd --init-groups \
    env HOME="$work/ejabberd" "${EJ[@]}" foreground > "$work/ejabberd/stdout.log" 2>&1) &
PIDS+=($!)
wait_port ejabberd 127.0.0.4 5222 "${PIDS[-1]}"
for _ in $(seq 1 100); do
    [ -s "$work/ejabberd/ejabberd.pid" ] && break
    sleep 0.1
done
ejabberd_pid="$(cat "$work/ejabberd/ejabberd.pid" 2>/dev/null || true)"
[ -n "$ejabberd_pid" ] && PIDS+=("$ejabberd_pid")
(cd "$work/ejabberd" && as_ejabberd "${EJ[@]}" register eve ejabberd.test pw-eve >/dev/null)

log "servers up: roost.test 127.0.0.2, prosody.test 127.0.0.3, ejabberd.test 127.0.0.4"

# Tests restart a peer with `$FEDERATION_RESTART prosody|ejabberd`: a
# script of its own, with this run's paths written in.
cat > "$work/restart-peer" <<EOF
#!/usr/bin/env bash
set -euo pipefail
up() { # ip pid: wait until the c2s port answers again
    for _ in \$(seq 1 300); do
        (exec 3<>"/dev/tcp/\$1/5222") 2>/dev/null && return 0
        kill -0 "\$2" 2>/dev/null || { echo "the server exited" >&2; return 1; }
        sleep 0.2
    done
    return 1
}
case "\$1" in
    prosody)
        pid="\$(cat "$work/prosody/pid")"
        kill "\$pid"
        for _ in \$(seq 1 100); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.1; done
        setpriv --reuid=prosody --regid=prosody --init-groups \\
            prosody --config "$work/prosody/prosody.cfg.lua" -F >> "$work/prosody/stdout.log" 2>&1 < /dev/null &
        echo \$! > "$work/prosody/pid"
        up 127.0.0.3 \$!
        ;;
    ejabberd)
        # The Erlang node restarts the application in place (same PID).
        cd "$work/ejabberd"
        setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME="$work/ejabberd" \\
            ${EJ[*]} restart > /dev/null
        for _ in \$(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.4/5222) 2>/dev/null || break; sleep 0.1; done
        up 127.0.0.4 "$ejabberd_pid"
        ;;
    *) echo "unknown peer \$1" >&2; exit 2 ;;
esac
EOF
chmod 755 "$work/restart-peer"
export FEDERATION_RESTART="$work/restart-peer"
export PYTHONDONTWRITEBYTECODE=1
# How each server stream was authenticated, as Roost logged it.
streams_seen() {
    sed -n 's/\x1b\[[0-9;]*m//g; s/.*\(server stream authenticated ([a-z]*)\).*local=\([^ ]*\) remote=\([^ ]*\).*/  out \2 -> \3: \1/p; s/.*\(server authenticated ([a-z]*)\).*domain=\([^ ]*\).*/  in  from \2: \1/p' \
        "$1" | sort | uniq -c || true
}
# Which domain pairs used one connection both ways (XEP-0288).
bidi_seen() {
    sed -n 's/\x1b\[[0-9;]*m//g; s/.*bidirectional stream: the peer sends over it too.*local=\([^ ]*\) remote=\([^ ]*\).*/  bidi out \1 -> \2: the peer answers over our stream/p; s/.*bidirectional stream: stanzas to the peer use it too.*local=\([^ ]*\) remote=\([^ ]*\).*/  bidi in  \2 -> \1: we answer over its stream/p' \
        "$1" | sort | uniq -c || true
}
status=0
log "round 1: peers proven by certificates"
FEDERATION_AUTH=certificate "$repo/.venv/bin/python" -m pytest -p no:cacheprovider "$here" "$@" || status=$?
log "server streams seen by Roost:"
streams_seen "$work/roost/roost.log"
bidi_seen "$work/roost/roost.log"
# Prosody 0.12 speaks XEP-0288 and ejabberd 23.01 does not: a connection
# either side opened carries the other's answers with Prosody only
# (checked when the whole suite ran).
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
    bidi="$(bidi_seen "$work/roost/roost.log")"
    for want in "bidi out roost.test -> prosody.test" "bidi in  prosody.test -> "; do
        if ! grep -qF "$want" <<< "$bidi"; then
            log "round 1: expected '$want' (bidirectional streams with Prosody)"
            status=1
        fi
    done
    if grep -q "ejabberd.test" <<< "$bidi"; then
        log "round 1: a bidirectional stream with ejabberd, which does not offer them"
        status=1
    fi
    # Roost's MUC service answered ejabberd's user over the stream
    # roost.test already had (XEP-0220 §2.4), not a connection of its own.
    plain_log="$(sed 's/\x1b\[[0-9;]*m//g' "$work/roost/roost.log")"
    if ! grep -q "server stream multiplexed.*local=conference.roost.test remote=ejabberd.test" <<< "$plain_log"; then
        log "round 1: expected conference.roost.test to join roost.test's stream to ejabberd.test"
        status=1
    fi
fi
round() { # number config description expected-direction
    log "round $1: Roost restarted: $3"
    stop_roost
    mv "$work/roost/roost.log" "$work/roost/roost-round$(( $1 - 1 )).log"
    start_roost "$2"
    FEDERATION_AUTH="$4" "$repo/.venv/bin/python" -m pytest -p no:cacheprovider "$here" "${PYTEST_ARGS[@]}" || status=$?
    log "server streams seen by Roost:"
    streams_seen "$work/roost/roost.log"
    bidi_seen "$work/roost/roost.log"
    # The round's point: streams in that direction were proven by dialback.
    if [ "$status" -eq 0 ]; then
        local dir="$4"
        if ! streams_seen "$work/roost/roost.log" | grep -q "$dir .*(dialback)" \
            || streams_seen "$work/roost/roost.log" | grep -q "$dir .*(certificate)"; then
            log "round $1: expected only dialback on '$dir' streams"
            status=1
        fi
    fi
}
PYTEST_ARGS=("$@")
if [ "$status" -eq 0 ]; then
    round 2 "$work/roost/roost-dialback.toml" "without the test CA (peers prove themselves by dialback)" "in "
fi
if [ "$status" -eq 0 ]; then
    round 3 "$work/roost/roost-untrusted.toml" "with a certificate peers do not trust (Roost proves itself by dialback)" "out"
fi
exit "$status"
