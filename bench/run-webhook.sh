#!/bin/bash
# bench/run-webhook.sh - webhook deliveries per second: relayguard-webhookd
# draining N events from the events stream into a loopback receiver.
#
# Usage: bench/run-webhook.sh            (as root: installs missing packages)
# Knobs (environment): BUILD=/work/build-bench EVENTS=50000 REPEAT=3 OUT=FILE KEEP=0
#
# Each run: a fresh private Redis; the consumer group "webhookd" is created
# first, then EVENTS decision events (the fields the engine writes) are
# added to rg:events, then the webhookd processes start and the clock runs
# until the receiver has acknowledged every event.  So a run measures
# routing (XREADGROUP + the ROUTE script), claiming, signing, POSTing and
# recording, end to end, with the backlog a receiver outage leaves.
# Receivers: bench/webhook-sink (C, libevent; checks every signature) and,
# for comparison, the tests' Python receiver (t/webhookd/receiver.py).
# The median run of each scenario is reported.
{
set -euo pipefail
. "$(dirname "$0")/common.sh"

EVENTS=${EVENTS:-50000}
REPEAT=${REPEAT:-3}
KEEP=${KEEP:-0}
SECRET=bench-secret-0123456789

need_pkgs redis-server redis-tools gcc make pkg-config libcurl4-openssl-dev libevent-dev python3 curl
make_workdir
cleanup() {
    stop_all
    if [ "$KEEP" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -f "$BUILD/Makefile" ]; then
    mkdir -p "$BUILD"
    (cd "$BUILD" && "$TOP_SRC/configure" -q) >"$WORK/configure.log" 2>&1 ||
        die "configure failed: $(tail -n 5 "$WORK/configure.log")"
fi
make -C "$BUILD" -j2 webhookd/relayguard-webhookd bench/webhook-sink >"$WORK/build.log" 2>&1 ||
    die "build failed: $(grep -m 5 -E 'error|Error' "$WORK/build.log")"
WEBHOOKD="$BUILD/webhookd/relayguard-webhookd"
SINK="$BUILD/bench/webhook-sink"

# cpu_ms PID: user + system CPU time so far, in ms
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }

# run_once ACCOUNTS PROCS RECEIVER(c|python) -> "secs events/s posts webhookd_cpu_ms redis_cpu_ms"
run_once() {
    local accounts=$1 procs=$2 recv=$3 d="$WORK/run" rport sport pids=() i
    rm -rf "$d"; mkdir -p "$d"
    rport=$(free_port 27479); start_redis "$d/redis" "$rport"
    local R=(redis-cli -p "$rport")
    sport=$(free_port 28580)
    if [ "$recv" = c ]; then
        "$SINK" "$sport" "$SECRET" >"$d/sink.log" 2>&1 &
    else
        mkdir -p "$d/recv"
        /usr/bin/python3 "$TOP_SRC/t/webhookd/receiver.py" "$sport" "$d/recv" "$SECRET" >"$d/sink.log" 2>&1 &
    fi
    local sink_pid=$!; remember "$sink_pid"
    wait_port "$sport" 20 || die "receiver did not start"
    cat >"$d/relayguard.conf" <<EOF
# bench/run-webhook.sh
store = redis://127.0.0.1:$rport/0
node = bench
log = stderr
webhooks {
    url    = http://127.0.0.1:$sport/hook
    secret = $SECRET
}
EOF
    "${R[@]}" xgroup create rg:events webhookd '$' mkstream >/dev/null
    # EVENTS decision events, fields as decide.lua writes them, 10,000 per EVAL
    local left=$EVENTS
    while [ "$left" -gt 0 ]; do
        local n=$((left > 10000 ? 10000 : left))
        "${R[@]}" eval "
            for i = 1, tonumber(ARGV[1]) do
                local a = 'acct' .. (i % tonumber(ARGV[2]))
                redis.call('XADD', 'rg:events', '*', 'ts', '1795527901000', 'node', 'mx1',
                    'stage', 'rcpt', 'qid', '4F1A2B3C', 'account', a, 'login', a .. '@relay.test',
                    'client', '192.0.2.7', 'country', 'US', 'sender', 'news@example.com',
                    'rcpt', 'user' .. i .. '@example.net', 'nrcpt', '0', 'size', '4096',
                    'verdict', 'accept', 'code', '250', 'reason', 'ok', 'detail', '')
            end" 0 "$n" "$accounts" >/dev/null
        left=$((left - n))
    done
    local redis_cpu0 t0 t1 got=0
    redis_cpu0=$(cpu_ms "$REDIS_PID")
    t0=$(date +%s.%N)
    for i in $(seq 1 "$procs"); do
        "$WEBHOOKD" -f -c "$d/relayguard.conf" >"$d/webhookd.$i.log" 2>&1 &
        pids+=($!); remember "$!"
    done
    while :; do
        if [ "$recv" = c ]; then
            got=$(curl -s "http://127.0.0.1:$sport/count" | cut -d' ' -f1)
        else
            got=$(python3 -c '
import json, sys
n = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["status"] == 200: n += len(r["events"])
print(n)' "$d/recv/requests.jsonl" 2>/dev/null || echo 0)
        fi
        [ "${got:-0}" -ge "$EVENTS" ] && break
        for p in "${pids[@]}"; do alive "$p" || die "webhookd died: $(tail -n 3 "$d"/webhookd.*.log)"; done
        sleep 0.05
    done
    t1=$(date +%s.%N)
    local wcpu=0 posts
    for p in "${pids[@]}"; do wcpu=$((wcpu + $(cpu_ms "$p"))); done
    local rcpu=$(( $(cpu_ms "$REDIS_PID") - redis_cpu0 ))
    posts=$(cat "$d"/webhookd.*.log | grep -c ': delivered ')
    local bad
    bad=$(cat "$d"/webhookd.*.log | grep -c 'deferred\|dead letters' || true)
    [ "$bad" = 0 ] || log "note: $bad deferred POSTs in this run"
    for p in "${pids[@]}"; do stop_pid "$p"; done
    stop_pid "$sink_pid"; stop_pid "$REDIS_PID"
    awk -v a="$t0" -v b="$t1" -v n="$EVENTS" -v p="$posts" -v w="$wcpu" -v r="$rcpu" \
        'BEGIN { printf "%.2f %.0f %d %d %d\n", b - a, n / (b - a), p, w, r }'
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
report=""
scenario() {   # scenario LABEL ACCOUNTS PROCS RECEIVER
    local label=$1 res=() r mid
    for r in $(seq 1 "$REPEAT"); do
        log "$label: run $r of $REPEAT"
        res+=("$(run_once "$2" "$3" "$4")")
        log "  ${res[-1]}"
    done
    mid=$(printf '%s\n' "${res[@]}" | sort -k2,2n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
    read -r secs rate posts wcpu rcpu <<<"$mid"
    report+="| $label | $EVENTS | $secs s | **$rate** | $posts | $(awk -v n="$EVENTS" -v p="$posts" 'BEGIN { printf "%.1f", n / p }') | $wcpu ms | $rcpu ms |"$'\n'
}
scenario "1 account, 1 process, C receiver" 1 1 c
scenario "100 accounts, 1 process, C receiver" 100 1 c
scenario "100 accounts, 2 processes, C receiver" 100 2 c
scenario "100 accounts, 1 process, Python receiver" 100 1 python

out="### Webhook deliveries (relayguard-webhookd)

\`bench/run-webhook.sh\` (EVENTS=$EVENTS, REPEAT=$REPEAT, median run; load at start: $LOAD_START).
A backlog of $EVENTS decision events in \`rg:events\` is drained into a loopback
receiver; the clock stops when the receiver has acknowledged the last one.
Every POST is signed and the C receiver checks every signature.

| scenario | events | time | events/s | POSTs | events/POST | webhookd CPU | Redis CPU |
| --- | --- | --- | --- | --- | --- | --- | --- |
$report"
printf '%s\n' "$out"
[ -n "${OUT:-}" ] && printf '%s\n' "$out" >"$OUT"
exit 0
}
