#!/bin/bash
# bench/run-detect.sh - policy decisions/s with compromised-account detection
# on (relayguard-detectd reading the events stream) and off, on one machine.
#
# relayguard-policyd with a private Redis and $ACCOUNTS accounts (two limits
# each, as in bench/run-policy.sh) gets full RCPT requests from
# bench/policy-load on $CONNS persistent connections.  Runs alternate off, on,
# off, on ... ($REPEAT of each), so that a change in the machine's other load
# hits both sides alike; the median of each side and their ratio are printed
# (issue 5 target: on >= 0.9 x off).  Per run: decisions/s, Redis CPU per
# decision (the bottleneck), relayguard-detectd CPU per decision, and how far
# detectd was behind when the run ended (entries of the stream not yet read).
#
# Then, less noisy: detectd alone on a backlog.  $BACKLOG decisions are made
# with no detector running, then relayguard-detectd reads them all as fast as
# it can; its CPU and Redis's (INFO commandstats of the detector's commands)
# per event are printed.  Nothing else runs meanwhile, so these numbers move
# much less with the machine's other load than decisions/s do.  PROFILE=1
# records detectd with perf (-e cpu-clock -g) during the backlog run and
# prints the top of the report.
#
# CALLGRIND=N: Redis's instructions per event, which the machine's other load
# does not move at all.  N decisions are made with no detector, saved, and
# loaded into a private redis-server under valgrind --tool=callgrind (as
# bench/run-script.sh does for the decision script); relayguard-detectd then
# reads them all from it, and the instructions Redis spent (counters zeroed
# before detectd starts) are printed per event, split by command (inclusive,
# callgrind_annotate); relayguard-detectd runs under callgrind as well, for
# its own instructions per event.  Kernel time (socket reads and writes) is
# not in these.
#
# Usage: bench/run-detect.sh    (as root)
# Knobs (environment): BUILD=/work/build-bench CONNS=50 DURATION=15 WARMUP=3
#   REPEAT=3 ACCOUNTS=100 ACK=yes (detect block "acknowledge") OUT=FILE (also
#   write the report there) KEEP=0 BACKLOG=200000 (0: no backlog run) PROFILE=0
#   BATCH=2000 (detect block "batch") MAX_DELAY= (detect block "max_delay",
#   empty: the default) CALLGRIND=0 (events of the callgrind run; 0: none)
#   TASKSET= (a CPU list: relayguard-detectd runs there, in its own process
#   group, with taskset -c; e.g. TASKSET=1) REDIS_CPU= (pin the private
#   redis-server likewise, e.g. REDIS_CPU=0) DETECTD= (another
#   relayguard-detectd binary, for A/B runs against the same build)
# Loopback only; every process it starts is stopped by PID at exit.
{
set -euo pipefail
. "$(dirname "$0")/common.sh"

CONNS=${CONNS:-50}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
REPEAT=${REPEAT:-3}
ACCOUNTS=${ACCOUNTS:-100}
KEEP=${KEEP:-0}
BACKLOG=${BACKLOG:-200000}
PROFILE=${PROFILE:-0}

need_pkgs redis-server redis-tools gcc make pkg-config libevent-dev
make_workdir
cleanup_on_exit
log "work folder $WORK"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

build_targets postfix-policyd/relayguard-policyd detectd/relayguard-detectd cli/relayguard \
    bench/policy-load
RG_POLICYD="$BUILD/postfix-policyd/relayguard-policyd"
RG_DETECTD=${DETECTD:-"$BUILD/detectd/relayguard-detectd"}
RG_CLI="$BUILD/cli/relayguard"
find_policy_load

d="$WORK/rg"
mkdir -p "$d"
rport=$(free_port 26379)
start_redis "$d/redis" "$rport"
RPID=$REDIS_PID
pport=$(free_port 20040)
cat >"$d/relayguard.conf" <<EOF
# bench/run-detect.sh
store = redis://127.0.0.1:$rport/0
log = stderr
log_level = warning
node = bench
events_max = 1000000
policyd {
    listen = inet:127.0.0.1:$pport
    max_connections = 20000
}
detect {
    action = alert
    acknowledge = ${ACK:-yes}
    batch = ${BATCH:-2000}
${MAX_DELAY:+    max_delay = $MAX_DELAY}
}
EOF
{
    for i in $(seq 0 $((ACCOUNTS - 1))); do
        printf 'account bench%d {\n    logins = bench%d@relay.test\n    domains = bench%d.example.com\n' "$i" "$i" "$i"
        printf '    limit = rate 1000000/1h\n    limit = quota 100000000/1d\n}\n'
    done
} >"$d/accounts.conf"
"$RG_CLI" -c "$d/relayguard.conf" load "$d/accounts.conf" >"$d/load.log" 2>&1 || die "load failed"
"$RG_POLICYD" -f -c "$d/relayguard.conf" >"$d/policyd.log" 2>&1 &
PPID_RG=$!; remember "$PPID_RG"
wait_port "$pport" 20 || die "relayguard-policyd did not start"
GEN=("$POLICY_LOAD" --accounts "$ACCOUNTS" --login 'bench%u@relay.test'
     --sender 'news@bench%u.example.com' --rcpt 'user%u@example.net' --rcpt-pool 1000000 -t 10)
"${GEN[@]}" -c 1 -w 0 -n 200 -q "inet:127.0.0.1:$pport" >/dev/null 2>&1 || true   # accounts loaded

# relayguard-detectd with CONF; with TASKSET, in a process group (session)
# of its own, pinned to those CPUs.  Sets DPID.
start_detectd() {
    if [ -n "${TASKSET:-}" ]; then
        setsid taskset -c "$TASKSET" "$RG_DETECTD" -f -c "$1" >>"$d/detectd.log" 2>&1 &
    else
        "$RG_DETECTD" -f -c "$1" >>"$d/detectd.log" 2>&1 &
    fi
    DPID=$!; remember "$DPID"
}
[ -z "${REDIS_CPU:-}" ] || taskset -cp "$REDIS_CPU" "$RPID" >/dev/null

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)
R=(redis-cli -p "$rport")

# run MODE -> one line "MODE rate redis_us detectd_us lag"
run() {
    local mode=$1 dpid="" r0 r1 d0=0 d1=0 p0 p1 out res n rate lag=0 gen
    if [ "$mode" = on ]; then
        start_detectd "$d/relayguard.conf"
        dpid=$DPID
        for _ in $(seq 1 50); do
            "${R[@]}" XINFO GROUPS rg:events 2>/dev/null | grep -qx detectd && break; sleep 0.1
        done
        d0=$(ticks "$dpid")
    else
        # off: no detector reads the stream (its group is gone with its backlog)
        "${R[@]}" XGROUP DESTROY rg:events detectd >/dev/null 2>&1 || true
    fi
    r0=$(ticks "$RPID"); p0=$(ticks "$PPID_RG")
    "${R[@]}" CONFIG RESETSTAT >/dev/null
    # (times: the CPU of the subshell's children, i.e. the load generator)
    out=$("${GEN[@]}" -c "$CONNS" -w "$WARMUP" -d "$DURATION" -q "inet:127.0.0.1:$pport" 2>&1; times) || true
    r1=$(ticks "$RPID"); p1=$(ticks "$PPID_RG")
    gen=$(printf '%s\n' "$out" | tail -1 | awk '{ t = 0; for (i = 1; i <= 2; i++) {
        split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] } print t }')
    res=$(printf '%s\n' "$out" | grep '^RESULT' || true)
    rate=$(field rate "$res"); n=$(( $(field warm "$res") + $(field requests "$res") ))
    # Redis's own accounting (INFO commandstats, execution time only): the
    # decision script (EVALSHA) and what the detector sends (stream reads and
    # acks, the compare-and-set write of the states: EVAL)
    local cs decide_us detect_us
    cs=$("${R[@]}" INFO commandstats)
    printf '%s\n' "$cs" | grep -E '^cmdstat_(xreadgroup|xack|eval|evalsha|hset|hget|expire|xadd):' |
        sed "s/^/    $mode: /; s/,rejected.*//" >>"$WORK/commandstats.log"
    decide_us=$(printf '%s\n' "$cs" | sed -n 's/^cmdstat_evalsha:.*,usec=\([0-9]*\),.*/\1/p')
    detect_us=$(printf '%s\n' "$cs" | awk -F'[:,=]' '/^cmdstat_(xreadgroup|xack|xautoclaim|eval|xgroup):/ {
        for (i = 2; i < NF; i++) if ($i == "usec") s += $(i + 1) } END { print s + 0 }')
    if [ -n "$dpid" ]; then
        d1=$(ticks "$dpid")
        lag=$("${R[@]}" XINFO GROUPS rg:events | awk 'p { print; exit } /^lag$/ { p = 1 }')
        stop_pid "$dpid"
    fi
    # (the detector's state reads, HGETALL, happen only when its cache misses;
    # they are not told apart from decide.lua's own and left out)
    awk -v m="$mode" -v rate="${rate:-0}" -v n="$n" -v r="$((r1 - r0))" -v dd="$((d1 - d0))" \
        -v hz="$CLK_TCK" -v lag="${lag:-?}" -v du="${decide_us:-0}" -v tu="${detect_us:-0}" \
        -v pp="$((p1 - p0))" -v gs="${gen:-0}" 'BEGIN {
        n = n ? n : 1
        printf "%s %.0f %.1f %.1f %s %.2f %.2f %.1f %.1f %.1f\n", m, rate, r / hz * 1e6 / n, dd / hz * 1e6 / n, lag,
            du / n, tu / n, pp / hz * 1e6 / n, gs * 1e6 / n, (r + dd + pp) / hz * 1e6 / n + gs * 1e6 / n }'
}

RESULTS=""
for i in $(seq 1 "$REPEAT"); do
    for mode in off on; do
        line=$(run "$mode")
        log "run $i: $line   (mode decisions/s redis_us detectd_us lag script_us detector_us policyd_us loadgen_us all_us, per decision)"
        RESULTS="$RESULTS$line"$'\n'
    done
done
# The backlog run: fill, then let detectd read it all.  One line
# "events detectd_us redis_us xreadgroup_us xack_us eval_us other_us seconds" (per event).
backlog_run() {
    local dpid d1 r0 r1 t0 t1 cs n a0 a1 got
    added() { "${R[@]}" XINFO STREAM rg:events | awk 'p { print; exit } /^entries-added$/ { p = 1 }'; }
    readn() { "${R[@]}" XINFO GROUPS rg:events | awk '/^name$/ { getline; g = $0 }
        /^entries-read$/ { getline; if (g == "detectd") { print; exit } }'; }
    "${R[@]}" XGROUP DESTROY rg:events detectd >/dev/null 2>&1 || true
    "${R[@]}" DEL rg:detect:leases >/dev/null
    "${R[@]}" XGROUP CREATE rg:events detectd '$' MKSTREAM >/dev/null
    a0=$(added)
    "${GEN[@]}" -c "$CONNS" -w 0 -d 600 -n "$BACKLOG" -q "inet:127.0.0.1:$pport" >/dev/null 2>&1 || true
    a1=$(added); n=$((a1 - a0))
    "${R[@]}" CONFIG RESETSTAT >/dev/null
    r0=$(ticks "$RPID"); t0=$(date +%s.%N)
    start_detectd "$d/relayguard.conf"
    dpid=$DPID
    if [ "$PROFILE" = 1 ]; then
        perf record -e cpu-clock -g -o "$WORK/perf.data" -p "$dpid" >/dev/null 2>&1 &
        PERF_PID=$!; remember "$PERF_PID"
    fi
    for _ in $(seq 1 6000); do
        got=$(readn)
        [ "${got:-0}" -ge "$a1" ] && break
        sleep 0.05
    done
    t1=$(date +%s.%N); d1=$(ticks "$dpid"); r1=$(ticks "$RPID")
    if [ "$PROFILE" = 1 ]; then
        kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null || true
    fi
    stop_pid "$dpid"
    cs=$("${R[@]}" INFO commandstats)
    printf '%s\n' "$cs" | grep -E '^cmdstat_' | sed "s/^/    backlog: /; s/,rejected.*//" >"$WORK/backlog-commandstats.log"
    printf '%s\n' "$cs" | awk -F'[:,=]' -v n="$n" -v dd="$d1" -v rr="$((r1 - r0))" -v hz="$CLK_TCK" \
        -v secs="$(echo "$t1 - $t0" | bc)" '
        # the time of EXEC holds the commands it ran: counted once, under their own names
        /^cmdstat_/ && !/^cmdstat_exec:/ { for (i = 2; i < NF; i++) if ($i == "usec") u[$1] = $(i + 1); all += u[$1] }
        END {
            n = n ? n : 1
            x = u["cmdstat_xreadgroup"]; a = u["cmdstat_xack"]; e = u["cmdstat_eval"] + u["cmdstat_evalsha"]
            printf "%d %.2f %.2f %.2f %.2f %.2f %.2f %.2f\n", n, dd / hz * 1e6 / n, rr / hz * 1e6 / n,
                x / n, a / n, e / n, (all - x - a - e) / n, secs }'
}

# The callgrind run: one line "events all xreadgroup reply eval other
# detectd" (Redis instructions per event, inclusive per command; then
# relayguard-detectd's own, also under callgrind).
callgrind_run() {
    local cg="$WORK/cg" cport cpid dpid a1 got f tot
    command -v valgrind >/dev/null || die "CALLGRIND needs valgrind (apt-get install valgrind)"
    mkdir -p "$cg"
    added() { "${R[@]}" XINFO STREAM rg:events | awk 'p { print; exit } /^entries-added$/ { p = 1 }'; }
    "${R[@]}" XGROUP DESTROY rg:events detectd >/dev/null 2>&1 || true
    "${R[@]}" DEL rg:detect:leases >/dev/null
    "${R[@]}" XTRIM rg:events MAXLEN 0 >/dev/null
    "${R[@]}" XGROUP CREATE rg:events detectd '$' MKSTREAM >/dev/null
    "${GEN[@]}" -c "$CONNS" -w 0 -d 600 -n "$CALLGRIND" -q "inet:127.0.0.1:$pport" >/dev/null 2>&1 || true
    a1=$(added)
    "${R[@]}" SAVE >/dev/null
    cp "$d/redis/dump.rdb" "$cg/dump.rdb"   # (dir is a protected setting in Redis 7)
    [ "$(redis-cli -p "$rport" XLEN rg:events)" -gt 0 ] || die "callgrind run: no events made"
    cport=$(free_port 27379)
    start_redis_callgrind "$cg" "$cport" 600 --dbfilename dump.rdb
    cpid=$CG_PID
    [ "$(redis-cli -p "$cport" XLEN rg:events)" -gt 0 ] || die "callgrind run: the saved stream did not load"
    sed "s#^store = .*#store = redis://127.0.0.1:$cport/0#" "$d/relayguard.conf" >"$cg/relayguard.conf"
    # Under valgrind a batch takes a hundred times longer: a long max_delay
    # keeps the rounds as a backlog gets them at full speed (eight batches;
    # a detector without the setting refuses it and reads as it always did).
    sed 's/^\(    batch = .*\)$/\1\n    max_delay = 10m/' "$cg/relayguard.conf" >"$cg/md.conf"
    if ! grep -q max_delay "$d/relayguard.conf" && "$RG_DETECTD" -t -c "$cg/md.conf" >/dev/null 2>&1; then
        mv "$cg/md.conf" "$cg/relayguard.conf"
    fi
    callgrind_control -z "$cpid" >/dev/null 2>&1
    # relayguard-detectd under callgrind too: its own instructions per event
    valgrind --tool=callgrind --callgrind-out-file="$cg/detectd.out" \
        "$RG_DETECTD" -f -c "$cg/relayguard.conf" >>"$d/detectd.log" 2>&1 &
    dpid=$!; remember "$dpid"
    for _ in $(seq 1 6000); do
        got=$(redis-cli -p "$cport" XINFO GROUPS rg:events | awk '/^name$/ { getline; g = $0 }
            /^entries-read$/ { getline; if (g == "detectd") { print; exit } }')
        [ "${got:-0}" -ge "$a1" ] && break
        sleep 0.1
    done
    stop_pid "$dpid"
    callgrind_control -d "$cpid" >/dev/null 2>&1
    f=$(ls -t "$cg"/cg.*.out.[0-9]* 2>/dev/null | head -n 1)
    [ -n "$f" ] || die "no callgrind dump"
    stop_pid "$cpid"
    local dtot
    dtot=$(awk '/^(totals|summary):/ { print $2; exit }' "$cg/detectd.out" 2>/dev/null)
    cp "$f" "$WORK/callgrind.out"
    callgrind_annotate --inclusive=yes --threshold=100 "$f" 2>/dev/null >"$WORK/callgrind.txt" || true
    tot=$(awk '/^(totals|summary):/ { print $2; exit }' "$f")
    # lines "  1,234 (12.34%)  FILE:FUNCTION [OBJECT]" (the percentage may hold a space)
    awk -v n="$CALLGRIND" -v tot="$tot" '
        function num(s) { gsub(",", "", s); return s + 0 }
        /^ *[0-9,]+ +\( *[0-9.]+%\) +/ { t = $0; sub(/^[^)]*\) +/, "", t); sub(/ .*/, "", t)
            sub(/.*:/, "", t); if (!(t in v)) v[t] = num($1) }
        END {
            x = v["xreadCommand"]; e = v["evalCommand"] + v["evalShaCommand"]
            r = v["streamReplyWithRange"]
            printf "%d %.0f %.0f %.0f %.0f %.0f %.0f\n", n, tot / n, x / n, r / n, e / n, (tot - x - e) / n, dt / n
        }' dt="${dtot:-0}" "$WORK/callgrind.txt"
}

median() { printf '%s' "$RESULTS" | awk -v m="$1" -v c="$2" '$1 == m { print $c }' | sort -n |
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
OFF=$(median off 2); ON=$(median on 2)
BL=""
if [ "$BACKLOG" -gt 0 ]; then
    BL=$(backlog_run)
    log "backlog: $BL   (events detectd_us redis_us xreadgroup_us xack_us eval_us other_us seconds)"
fi
CG=""
if [ "${CALLGRIND:-0}" -gt 0 ]; then
    CG=$(callgrind_run)
    log "callgrind: $CG   (events, Redis instructions per event: all xreadgroup reply-with-entries eval other; detectd's)"
fi
REPORT=$(
    echo "## detection on vs off (bench/run-detect.sh)"
    echo
    machine_info
    echo "- load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $CONNS connections, $DURATION s per run after $WARMUP s warm-up, $REPEAT runs each, alternating; acknowledge = ${ACK:-yes}, batch = ${BATCH:-2000}"
    echo
    echo "| detection | decisions/s (median) | Redis CPU µs/decision | of which decide.lua | of which detector commands | detectd CPU µs/decision | policyd CPU µs | load generator CPU µs | all four, CPU µs/decision | detectd lag at the end |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    echo "| off | $OFF | $(median off 3) | $(median off 6) | $(median off 7) | - | $(median off 8) | $(median off 9) | $(median off 10) | - |"
    echo "| on  | $ON | $(median on 3) | $(median on 6) | $(median on 7) | $(median on 4) | $(median on 8) | $(median on 9) | $(median on 10) | $(median on 5) entries |"
    echo
    awk -v a="$ON" -v b="$OFF" 'BEGIN { printf "ratio on/off: %.3f (target >= 0.9)\n", (b > 0 ? a / b : 0) }'
    # On a machine whose cores are all busy with these four processes, the
    # decisions/s are bound by their CPU per decision: the ratio of those is
    # what the machine's other load (noise in decisions/s) does not move much.
    awk -v a="$(median on 10)" -v b="$(median off 10)" 'BEGIN {
        printf "CPU-bound estimate, all CPU per decision off/on: %.3f\n", (a > 0 ? b / a : 0) }'
    echo
    echo "Redis INFO commandstats of the last two runs (commands called from scripts included):"
    [ ! -f "$WORK/commandstats.log" ] || tail -n 16 "$WORK/commandstats.log"
    echo
    echo "every run (mode, decisions/s, Redis CPU µs, detectd CPU µs, lag, decide.lua µs, detector µs, policyd CPU µs, load generator CPU µs, all CPU µs; per decision):"
    printf '%s' "$RESULTS" | sed 's/^/    /'
    if [ -n "$BL" ]; then
        set -- $BL
        echo
        echo "detectd alone on a backlog of $1 events (nothing else running; per event):"
        echo
        echo "| detectd CPU µs | Redis CPU µs | XREADGROUP µs | XACK µs | EVAL µs | other commands µs | events/s |"
        echo "| --- | --- | --- | --- | --- | --- | --- |"
        awk -v n="$1" -v s="$8" -v a="$2" -v b="$3" -v c="$4" -v e="$5" -v f="$6" -v g="$7" 'BEGIN {
            printf "| %s | %s | %s | %s | %s | %s | %.0f |\n", a, b, c, e, f, g, (s > 0 ? n / s : 0) }'
        echo
        echo "Redis INFO commandstats of the backlog run:"
        cat "$WORK/backlog-commandstats.log"
        if [ "$PROFILE" = 1 ] && [ -s "$WORK/perf.data" ]; then
            echo
            echo "perf report (relayguard-detectd, cpu-clock, self time):"
            perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
                grep -E '^ +[0-9.]+%' | head -25 | sed 's/^/    /' || true
        fi
    fi
    if [ -n "$CG" ]; then
        set -- $CG
        echo
        echo "Redis instructions per event (callgrind, redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $1 events read by relayguard-detectd; inclusive):"
        echo
        echo "| Redis: all | XREADGROUP | of which replying with the entries | EVAL (leases, state writes) | all else (reading commands, MULTI/EXEC, HDEL, HGETALL, ...) | relayguard-detectd (user space, start-up included) |"
        echo "| --- | --- | --- | --- | --- | --- |"
        echo "| $2 | $3 | $4 | $5 | $6 | $7 |"
        echo
        echo "top of callgrind_annotate --inclusive=yes:"
        grep -E '^ *[0-9,]+ +\(' "$WORK/callgrind.txt" | head -30 | sed 's/^/    /'
    fi
)
printf '%s\n' "$REPORT"
[ -z "${OUT:-}" ] || printf '%s\n' "$REPORT" >"$OUT"
exit 0
}
