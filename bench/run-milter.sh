#!/bin/bash
# bench/run-milter.sh - smtp-source -> private Postfix -> smtp-sink with:
#   none      no milter
#   opendkim  OpenDKIM signing RSA-2048 (unix socket)
#   rg-rsa    relayguard-milter, all checks on (account, domains, suppression,
#             a rate limit and a quota), signing RSA-2048 (inet: socket)
#   rg-ed     the same signing Ed25519
#   rg-nosign the same for a From domain without a key: every check, both
#             Redis round trips, no signature (rg-ed minus it: the signing)
#   rg-rsa-unix  rg-rsa on a unix socket
#   rg-ed-unix   rg-ed on a unix socket
#   null-unix    bench/null-milter.c (libmilter doing nothing, negotiating what
#             relayguard-milter negotiates) on a unix socket: libmilter's floor
#   null-proto-unix  bench/null-proto.c, the same on relayguard's own protocol
#             code (milter/proto.c, server.c): relayguard-milter's floor
#   null-proto-inet  the same on an inet: socket
# Prints messages/s, milter CPU seconds per 10,000 messages, RSS, and the
# ratios against OpenDKIM; then checks that one message of every
# relayguard-milter setup that ran verifies (dkimpy and OpenDKIM).
# STORE=unix: the milter reaches Redis over a unix socket (default tcp).
# Run as root on an otherwise idle machine:
#   bench/run-milter.sh [MESSAGES] [SESSIONS]      (default 20000, 20)
# BUILD (default /work/build-bench) is a configured and built tree.
set -u
MSGS=${1:-20000}
SESSIONS=${2:-20}
SIZE=4096
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
top_builddir=${BUILD:-/work/build-bench}
export top_srcdir top_builddir
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
RG_KEEP=${RG_KEEP:-}
TMPDIR=/var/tmp rg_tmpdir
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ -x "$RG_BIN_MILTER" ] || { log "build first: $RG_BIN_MILTER missing"; exit 1; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }   # peak RSS
HZ=$(getconf CLK_TCK)

STORE=${STORE:-tcp}
if [ "$STORE" = unix ]; then
    # rg_start_redis's Redis, with a unix socket beside its port
    rg_require redis-server redis-cli
    REDIS_PORT=$(rg_free_port)
    mkdir -p "$RG_TMP/redis-$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --unixsocket "$RG_TMP/redis.sock" \
        --unixsocketperm 700 --dir "$RG_TMP/redis-$REDIS_PORT" --save '' --appendonly no \
        --daemonize no --logfile "$RG_TMP/redis-$REDIS_PORT/redis.log" &
    REDIS_PID=$!
    rg_on_exit "rg_stop_pid $REDIS_PID"
    rg_wait_port "$REDIS_PORT" 10 || { log "redis-server did not start"; exit 1; }
    REDIS_URL="redis+unix://$RG_TMP/redis.sock?db=0"
else
    rg_start_redis
fi
RG_CONF="$RG_TMP/rg.conf"
# STORE_CONNECTIONS=N: milter.store_connections (also its number of worker
# threads); NULL_WORKERS=N: null-proto's worker threads (default 8)
{ [ -z "${STORE_CONNECTIONS:-}" ] || printf 'milter {\n    store_connections = %s\n}\n' "$STORE_CONNECTIONS"; } |
    RG_MILTER_LOG_LEVEL=warning rg_milter_conf "$RG_CONF"
# signing domain bench.test, one key per algorithm
k="$RG_TMP/keys"
sed -i "s|^dkim {|dkim {\n    key = rsa.bench.test rsa1 $k/rsa.pem\n    key = ed.bench.test ed1 $k/ed.pem|" "$RG_CONF"
cat >"$RG_TMP/accounts.conf" <<'A'
account bench {
    client_networks = 127.0.0.0/8
    domains         = rsa.bench.test, ed.bench.test, nokey.bench.test
    limit           = rate 100000000/1h
    limit           = quota 100000000/1d per=rcpt
    feedback_id     = bench:relayguard
}
A
rg_cli load "$RG_TMP/accounts.conf" >/dev/null
rg_cli suppress add someone-else@example.net --reason manual >/dev/null

# OpenDKIM: its key and config in a private folder (it refuses paths under a
# world-writable folder, so not under /var/tmp; Postfix must reach its socket)
mkdir -p /var/lib/relayguard-bench; chmod 755 /var/lib/relayguard-bench
OD=$(mktemp -d /var/lib/relayguard-bench/opendkim.XXXXXX); chmod 755 "$OD"
[ -n "$RG_KEEP" ] || rg_on_exit "rm -rf '$OD'"
cp "$k/rsa.pem" "$OD/rsa.pem"; chmod 600 "$OD/rsa.pem"     # opendkim runs as root here: root-owned
cat >"$OD/opendkim.conf" <<C
Mode s
Domain rsa.bench.test
Selector rsa1
KeyFile $OD/rsa.pem
Canonicalization relaxed/relaxed
SignatureAlgorithm rsa-sha256
OversignHeaders From
Socket local:$OD/opendkim.sock
UMask 000
Syslog no
InternalHosts 127.0.0.0/8
C

rg_start_sink bench
POLICYD_PORT=0
results=()
signed=()       # "SETUP FILE": one delivered message of each relayguard-milter run

# ONLY="rg-ed rg-rsa": just these runs; PERF=1: perf record the milter (cpu-clock;
# PERF=dwarf: with DWARF call graphs, for the time spent under each callback);
# STRACE=1: count the milter's system calls (strace -c -f; slows it down);
# STRACE=full: every system call with its time and data (strace -f -tt -xx)
ONLY=${ONLY:-}
PERF=${PERF:-0}
STRACE=${STRACE:-0}
run() {  # run NAME MILTER-SPEC PID FROM
    local name=$1 spec=$2 pid=$3 from=$4
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
    local perfpid=
    if [ "$PERF" != 0 ] && [ -n "$pid" ]; then
        local cg=-g
        [ "$PERF" = dwarf ] && cg="--call-graph=dwarf,16384"
        perf record -e cpu-clock $cg -o "$RG_TMP/perf-$name.data" -p "$pid" >/dev/null 2>&1 &
        perfpid=$!
    fi
    local stracepid=
    if [ "$STRACE" != 0 ] && [ -n "$pid" ]; then
        local sopt=(-c)
        [ "$STRACE" = full ] && sopt=(-tt -xx -s 48)
        strace "${sopt[@]}" -f -o "$RG_TMP/strace-$name.txt" -p "$pid" 2>/dev/null &
        stracepid=$!
        sleep 1
    fi
    local extra=("smtpd_recipient_restrictions =" "smtpd_end_of_data_restrictions =")
    [ -n "$spec" ] && extra+=("smtpd_milters = $spec" "milter_default_action = tempfail" "milter_protocol = 6")
    rg_start_postfix "$name" "${extra[@]}" "default_process_limit = 200" >/dev/null
    local before after c0=0 c1=0 t0 t1 n
    touch "$RG_TMP/mark-$name"
    before=$(rg_sink_count)
    [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
    t0=$(date +%s.%N)
    smtp-source -s "$SESSIONS" -m "$MSGS" -l "$SIZE" -f "$from" -t to@example.net \
        "127.0.0.1:$PF_PORT" >"$RG_TMP/source-$name.log" 2>&1
    if grep -q 'fatal' "$RG_TMP/source-$name.log"; then
        log "$name: smtp-source failed: $(head -1 "$RG_TMP/source-$name.log")"
        rg_stop_postfix "$PF_CONF" "$PF_DIR"
        return 1
    fi
    rg_wait_for 180 bash -c "[ \$(find '$SINK_DIR/mail' -type f | wc -l) -ge $((before + MSGS)) ]"
    t1=$(date +%s.%N)
    after=$(rg_sink_count)
    n=$((after - before))
    [ -n "$pid" ] && c1=$(cpu_ticks "$pid")
    local rate cpu rss=-
    rate=$(echo "scale=1; $n / ($t1 - $t0)" | bc)
    cpu=$(echo "scale=2; ($c1 - $c0) / $HZ * 10000 / $n" | bc)
    [ -n "$pid" ] && rss=$(( $(rss_kb "$pid") / 1024 ))
    [ -n "$pid" ] || cpu=-
    log "$name: $n messages, $rate msgs/s, milter CPU $cpu s per 10k, RSS $rss MiB"
    results+=("$name $n $rate $cpu $rss")
    [ "$SESSIONS" = 1 ] && log "$name: $(echo "scale=1; 1000 / $rate" | bc) ms per message, one session"
    if [ -n "$perfpid" ]; then
        kill -INT "$perfpid"; wait "$perfpid" 2>/dev/null
        perf report -i "$RG_TMP/perf-$name.data" --no-children --sort symbol 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -40 >"$RG_TMP/perf-$name.txt"
        log "$name: profile in $RG_TMP/perf-$name.txt"
    fi
    if [ -n "$stracepid" ]; then
        kill -INT "$stracepid"; wait "$stracepid" 2>/dev/null
        log "$name: system calls in $RG_TMP/strace-$name.txt"
    fi
    rg_stop_postfix "$PF_CONF" "$PF_DIR"
    case $name in rg-rsa*|rg-ed*|lat-rg-*)
        signed+=("$name $(find "$SINK_DIR/mail" -type f -newer "$RG_TMP/mark-$name" | head -1)") ;;
    esac
}

run none "" "" a@rsa.bench.test

opendkim -f -x "$OD/opendkim.conf" >"$RG_TMP/opendkim.log" 2>&1 &
ODPID=$!
rg_on_exit "rg_stop_pid $ODPID"
rg_wait_for 10 test -S "$OD/opendkim.sock"
run opendkim "unix:$OD/opendkim.sock" "$ODPID" a@rsa.bench.test
rg_stop_pid "$ODPID"

rg_start_milter "$RG_CONF" inet
run rg-rsa "inet:127.0.0.1:$MILTER_PORT" "$MILTER_PID" a@rsa.bench.test
run rg-ed "inet:127.0.0.1:$MILTER_PORT" "$MILTER_PID" a@ed.bench.test
run rg-nosign "inet:127.0.0.1:$MILTER_PORT" "$MILTER_PID" a@nokey.bench.test
rg_stop_milter
rg_start_milter "$RG_CONF" "unix:$RG_TMP/milter.sock"
chmod 666 "$RG_TMP/milter.sock"
run rg-rsa-unix "unix:$RG_TMP/milter.sock" "$MILTER_PID" a@rsa.bench.test
run rg-ed-unix "unix:$RG_TMP/milter.sock" "$MILTER_PID" a@ed.bench.test
rg_stop_milter

# libmilter's own cost: a filter that does nothing (never installed)
if [ -z "$ONLY" ] || [[ " $ONLY " == *" null-unix "* ]]; then
    NULL_MILTER="$top_builddir/bench/null-milter"     # built with the tree
    if [ -x "$NULL_MILTER" ]; then
        "$NULL_MILTER" "unix:$RG_TMP/null.sock" >"$RG_TMP/null.log" 2>&1 &
        NULLPID=$!
        rg_on_exit "rg_stop_pid $NULLPID"
        rg_wait_for 10 test -S "$RG_TMP/null.sock"
        chmod 666 "$RG_TMP/null.sock"
        run null-unix "unix:$RG_TMP/null.sock" "$NULLPID" a@rsa.bench.test
        rg_stop_pid "$NULLPID"
    else
        log "null-unix: $NULL_MILTER not built"
    fi
fi

# relayguard's own protocol code doing nothing (milter/proto.c, server.c)
if [ -z "$ONLY" ] || [[ " $ONLY " == *" null-proto-"* ]]; then
    NULL_PROTO="$top_builddir/bench/null-proto"
    if [ -x "$NULL_PROTO" ]; then
        "$NULL_PROTO" "unix:$RG_TMP/nullp.sock" "${NULL_WORKERS:-8}" >"$RG_TMP/nullp.log" 2>&1 &
        NULLPID=$!
        rg_on_exit "rg_stop_pid $NULLPID"
        rg_wait_for 10 test -S "$RG_TMP/nullp.sock"
        chmod 666 "$RG_TMP/nullp.sock"
        [ -z "$ONLY" ] || [[ " $ONLY " == *" null-proto-unix "* ]] &&
            run null-proto-unix "unix:$RG_TMP/nullp.sock" "$NULLPID" a@rsa.bench.test
        rg_stop_pid "$NULLPID"
        if [ -z "$ONLY" ] || [[ " $ONLY " == *" null-proto-inet "* ]]; then
            nport=$(rg_free_port)
            "$NULL_PROTO" "inet:$nport@127.0.0.1" "${NULL_WORKERS:-8}" >>"$RG_TMP/nullp.log" 2>&1 &
            NULLPID=$!
            rg_on_exit "rg_stop_pid $NULLPID"
            rg_wait_port "$nport" 10
            run null-proto-inet "inet:127.0.0.1:$nport" "$NULLPID" a@rsa.bench.test
            rg_stop_pid "$NULLPID"
        fi
    else
        log "null-proto-unix: $NULL_PROTO not built"
    fi
fi

# Latency: one session, one message after the other (LATENCY=0 skips it).
# On inet: every delayed-ACK stall shows here in full (see milter/tcp.c).
if [ "${LATENCY:-1}" = 1 ] && [ -z "$ONLY" ]; then
    S0=$SESSIONS M0=$MSGS
    SESSIONS=1 MSGS=${LATENCY_MSGS:-100}
    sed -i "s|^Socket .*|Socket inet:$(rg_free_port)@127.0.0.1|" "$OD/opendkim.conf"
    odport=$(sed -n 's/^Socket inet:\([0-9]*\)@.*/\1/p' "$OD/opendkim.conf")
    opendkim -f -x "$OD/opendkim.conf" >>"$RG_TMP/opendkim.log" 2>&1 &
    ODPID=$!
    rg_on_exit "rg_stop_pid $ODPID"
    rg_wait_port "$odport" 10
    run lat-opendkim-inet "inet:127.0.0.1:$odport" "$ODPID" a@rsa.bench.test
    rg_stop_pid "$ODPID"
    rg_start_milter "$RG_CONF" inet
    run lat-rg-inet "inet:127.0.0.1:$MILTER_PORT" "$MILTER_PID" a@rsa.bench.test
    rg_stop_milter
    rg_start_milter "$RG_CONF" "unix:$RG_TMP/milter2.sock"
    chmod 666 "$RG_TMP/milter2.sock"
    run lat-rg-unix "unix:$RG_TMP/milter2.sock" "$MILTER_PID" a@rsa.bench.test
    rg_stop_milter
    SESSIONS=$S0 MSGS=$M0
fi

# one message of each relayguard-milter run verifies, with dkimpy and OpenDKIM
# (only the runs that happened: ONLY may have left some out)
rg_milter_txt "$RG_CONF" "$RG_TMP/keys.txt"
[ ${#signed[@]} -gt 0 ] || log "no relayguard-milter run: no signature to verify"
for r in "${signed[@]}"; do
    set -- $r
    if [ -z "${2:-}" ]; then
        log "$1: no delivered message found to verify"
        continue
    fi
    v1=$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$2" 2>&1 | tail -1)
    if rg_verify_opendkim "$RG_TMP/keys.txt" "$2"; then v2="pass ($RG_OPENDKIM_PASS)"; else v2=FAIL; fi
    log "$1: a relayguard-milter message verifies: dkimpy $v1, OpenDKIM $v2"
done

echo
echo "smtp-source -s $SESSIONS -m $MSGS -l $SIZE -> Postfix -> smtp-sink ($(nproc) cores)"
printf "%-18s %9s %10s %18s %13s\n" setup messages "msgs/s" "CPU s / 10k msgs" "peak RSS MiB"
for r in "${results[@]}"; do printf "%-18s %9s %10s %18s %13s\n" $r; done
od_rate=$(printf '%s\n' "${results[@]}" | awk '$1 == "opendkim" { print $3 }')
od_cpu=$(printf '%s\n' "${results[@]}" | awk '$1 == "opendkim" { print $4 }')
for r in "${results[@]}"; do
    set -- $r
    case $1 in rg-*)
        [ -n "$od_rate" ] || continue
        printf '%s vs OpenDKIM: %.2fx msgs/s, %.2fx CPU per message\n' "$1" \
            "$(echo "$3 / $od_rate" | bc -l)" "$(echo "$4 / $od_cpu" | bc -l)" ;;
    esac
done
