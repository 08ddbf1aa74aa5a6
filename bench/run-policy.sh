#!/bin/bash
# bench/run-policy.sh - relayguard-policyd against postfwd and policyd-rate-limit,
# side by side, in one run, with the same load generator (bench/policy-load).
#
# Every system gets the same stream of full RCPT-stage policy requests
# (sasl_username from a pool of $ACCOUNTS accounts, random recipients from a
# pool of 1,000,000, a unique instance per message) on $CONNS persistent
# connections, one request in flight per connection (as Postfix's smtpd does).
#
#   relayguard-policyd  private Redis; each request: account lookup, TWO limits
#                       (rate 1000000/1h, quota 100000000/1d), suppression
#                       check against $SUPPRESSED imported addresses, event.
#   postfwd (postfwd2)  one rate(sasl_username/1000000/3600/...) rule, no
#                       logging, no DNS, --min/max_servers above the connection
#                       count (else connections wait in the backlog).
#   policyd-rate-limit  SQLite backend, one [1000000, 3600] limit by
#                       sasl_username, listen backlog raised from its
#                       hard-coded 5 to 4096 (a runtime patch of socket.listen).
#
# Before measuring, each system is checked: it must refuse past a small limit
# (and relayguard must refuse a suppressed recipient), so that a silently
# ignored rule cannot make a peer look fast.
#
# Usage: bench/run-policy.sh            (as root; installs missing packages)
# Knobs (environment): BUILD=/work/build-bench CONNS="1 50 500" DURATION=15
#   WARMUP=3 REPEAT=3 (runs per row; the median by decisions/s is shown)
#   MAX_OTHER=5 MAX_FORKS=50 (a run during which other processes used more
#   than 5 % of the CPU, or started more than 50 processes, is run again, up
#   to MAX_TRIES=4*REPEAT runs, RETRY_WAIT=20 s apart)
#   IDLE_CONNS=1000 ACCOUNTS=100 SUPPRESSED=100000
#   SYSTEMS="relayguard postfwd policyd-rate-limit" STORE=tcp|unix
#   EOM_ROW=1 (an extra relayguard row at 50 connections: RCPT + END-OF-MESSAGE)
#   OPEN_RATE=10000 (an extra relayguard row at 50 connections, open loop at
#   that many requests/s: latency at a fixed load; 0 = no such row)
#   VERIFY=1 PROFILE=0 (1: one more run at 50 connections under perf record)
#   OUT=FILE (also write the report there) KEEP=0 (keep the work folder)
#   ALLOW_STALE=0 (1: if the tree does not build, use the binaries already in $BUILD)
#   WAIT_QUIET=0 (S: first wait up to S seconds for a 1-minute load average < 0.5)
# Loopback only; every process it starts is stopped by PID at exit.
# The whole script is one block, so that bash has read all of it before it
# runs: editing the file during a run cannot break that run.
{
set -euo pipefail
. "$(dirname "$0")/common.sh"

CONNS=${CONNS:-"1 50 500"}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
IDLE_CONNS=${IDLE_CONNS:-1000}
ACCOUNTS=${ACCOUNTS:-100}
SUPPRESSED=${SUPPRESSED:-100000}
SYSTEMS=${SYSTEMS:-"relayguard postfwd policyd-rate-limit"}
STORE=${STORE:-tcp}
VERIFY=${VERIFY:-1}
PROFILE=${PROFILE:-0}
REPEAT=${REPEAT:-3}
MAX_OTHER=${MAX_OTHER:-5}
MAX_FORKS=${MAX_FORKS:-50}
MAX_TRIES=${MAX_TRIES:-$((REPEAT * 4))}
RETRY_WAIT=${RETRY_WAIT:-20}
EOM_ROW=${EOM_ROW:-1}
OPEN_RATE=${OPEN_RATE:-10000}
KEEP=${KEEP:-0}

[ "$(id -u)" = 0 ] || die "run as root (peers drop privileges to their own users)"
need_pkgs redis-server redis-tools postfwd policyd-rate-limit gcc make pkg-config libevent-dev time

make_workdir
cleanup() {
    stop_all
    if [ "$KEEP" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log "work folder $WORK"

# WAIT_QUIET=S: wait up to S seconds for the machine to be idle (1-minute load
# average under 0.5), since anything else running skews every number.
if [ "${WAIT_QUIET:-0}" -gt 0 ]; then
    for i in $(seq 1 "$WAIT_QUIET"); do
        awk '{ exit !($1 < 0.5) }' /proc/loadavg && break
        [ $((i % 60)) = 1 ] && log "waiting for a quiet machine: load $(cut -d' ' -f1-3 /proc/loadavg)"
        sleep 1
    done
fi
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
MAXC=0
for c in $CONNS; do [ "$c" -gt "$MAXC" ] && MAXC=$c; done

# ---------------------------------------------------------------- build

build_relayguard() {
    RG_STATUS=ok
    if [ ! -f "$BUILD/Makefile" ]; then
        mkdir -p "$BUILD"
        (cd "$BUILD" && "$TOP_SRC/configure" -q) >"$WORK/configure.log" 2>&1 ||
            { RG_STATUS="configure failed: $(tail -n 3 "$WORK/configure.log" | tr '\n' ' ')"; return 1; }
    fi
    RG_POLICYD="$BUILD/postfix-policyd/relayguard-policyd"
    RG_CLI="$BUILD/cli/relayguard"
    if ! make -C "$BUILD" -j2 postfix-policyd/relayguard-policyd cli/relayguard \
            bench/policy-load >"$WORK/build.log" 2>&1; then
        RG_STATUS="build failed: $(grep -m 3 -E 'error|Error' "$WORK/build.log" | tr '\n' ' ' | cut -c1-400)"
        if [ "${ALLOW_STALE:-0}" = 1 ] && [ -x "$RG_POLICYD" ] && [ -x "$RG_CLI" ]; then
            log "relayguard: $RG_STATUS"
            RG_STATUS="ok, but STALE binaries of $(date -r "$RG_POLICYD" '+%F %T') (the tree did not build)"
            return 0
        fi
        return 1
    fi
    [ -x "$RG_POLICYD" ] && [ -x "$RG_CLI" ] || { RG_STATUS="binaries missing after make"; return 1; }
}

RG_STATUS="not run"
case " $SYSTEMS " in *" relayguard "*) build_relayguard || log "relayguard: $RG_STATUS" ;; esac
find_policy_load
log "load generator: $POLICY_LOAD"

GEN=("$POLICY_LOAD" --accounts "$ACCOUNTS" --login 'bench%u@relay.test'
     --sender 'news@bench%u.example.com' --rcpt 'user%u@example.net' --rcpt-pool 1000000
     -t 10)

# ---------------------------------------------------------------- results

declare -A OTHER OTHERS RATE RUNS P50 P90 P99 MAXL ERRS ACTS CPUUS GENCPU
declare -A RSS PSS NOTE
VERIFY_LINES=""

is_refusal() { case "$1" in 4*|5*|REJECT|DEFER*) return 0 ;; *) return 1 ;; esac; }

# count_actions ACTIONS -> "accepted refused"
count_actions() {
    local a=0 r=0 item name n
    IFS=, read -ra items <<<"$1"
    for item in "${items[@]}"; do
        name=${item%%:*}; n=${item##*:}
        [ "$name" = none ] && continue
        if is_refusal "$name"; then r=$((r + n)); else a=$((a + n)); fi
    done
    echo "$a $r"
}

# verify SYSTEM WHAT EXPECT_ACCEPT EXPECT_REFUSE ARGS...  (a short check run)
verify() {
    local sys=$1 what=$2 ea=$3 er=$4; shift 4
    local out res acts a r ok
    out=$("$@" -q 2>&1) || true
    res=$(printf '%s\n' "$out" | grep '^RESULT' || true)
    acts=$(field actions "$res")
    read -r a r <<<"$(count_actions "${acts:-none}")"
    if [ "$a" = "$ea" ] && [ "$r" = "$er" ]; then ok=ok; else ok=FAILED; fi
    VERIFY_LINES="$VERIFY_LINES- $sys: $what: expected $ea accepted + $er refused, got ${acts:-$out} -> $ok"$'\n'
    log "verify $sys: $what: ${acts:-$out} ($ok)"
    [ "$ok" = ok ]
}

# measure_once TARGET CONNS PIDS... -> M_OUT (generator output), M_RES (its
# RESULT line), M_CPU (server CPU µs per decision, with a per-process split
# when there are 2-3 processes)
measure_once() {
    local target=$1 c=$2; shift 2
    local pids="$*" p n split="" warm req f0 f1 m0 m1
    # One snapshot of every process's CPU time before and after (a single awk
    # each: no fork per process).  Work of other processes during the run is
    # "other load": CPU of the processes that are not ours, plus a count of
    # processes started meanwhile (short test programs that come and go).
    f0=$(awk '/^processes/ { print $2 }' /proc/stat)
    m0=$(machine_ticks)
    awk '{ print $1, $14 + $15 }' /proc/[0-9]*/stat 2>/dev/null >"$WORK/cpu.0" || true
    M_OUT=$(/usr/bin/time -f 'GENTIME %U %S' "${GEN[@]}" -c "$c" -w "$WARMUP" -d "$DURATION" "$target" 2>&1) || true
    awk '{ print $1, $14 + $15 }' /proc/[0-9]*/stat 2>/dev/null >"$WORK/cpu.1" || true
    m1=$(machine_ticks)
    f1=$(awk '/^processes/ { print $2 }' /proc/stat)
    M_RES=$(printf '%s\n' "$M_OUT" | grep '^RESULT' || true)
    M_CPU="-"; M_OTHER="?"
    [ -n "$M_RES" ] || return 0
    warm=$(field warm "$M_RES"); req=$(field requests "$M_RES")
    n=$((warm + req))
    [ "$n" -gt 0 ] || return 0
    # per process: "pid ticks" of ours; and the foreign total
    local per
    per=$(awk -v ours=" $pids $$ $BASHPID " 'NR == FNR { t0[$1] = $2; next }
        ($1 in t0) { d = $2 - t0[$1]
            if (index(ours, " " $1 " ")) print $1, d; else foreign += d }
        END { print "foreign", foreign + 0 }' "$WORK/cpu.0" "$WORK/cpu.1")
    local total foreign
    total=$(printf '%s\n' "$per" | awk '$1 != "foreign" && $1 != "'"$$"'" && $1 != "'"$BASHPID"'" { s += $2 } END { print s + 0 }')
    foreign=$(printf '%s\n' "$per" | awk '$1 == "foreign" { print $2 }')
    # processes started during the run, less ours (time, the generator, a
    # few subshells)
    M_FORKS=$((f1 - f0 - 10))
    [ "$M_FORKS" -lt 0 ] && M_FORKS=0
    M_OTHER=$(awk -v a="$m0" -v b="$m1" -v f="$foreign" 'BEGIN {
        split(a, x, " "); split(b, y, " "); all = y[2] - x[2]
        if (all > 0) printf "%.0f", 100 * f / all; else print "?" }')
    M_CPU=$(awk -v d="$total" -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.0f", d / hz * 1e6 / n }')
    if [ "$(echo $pids | wc -w)" -gt 1 ] && [ "$(echo $pids | wc -w)" -le 3 ]; then
        for p in $pids; do
            split="$split${split:+ + }$(printf '%s\n' "$per" | awk -v p="$p" -v hz="$CLK_TCK" -v n="$n" \
                '$1 == p { printf "%.0f", $2 / hz * 1e6 / n }')"
        done
        M_CPU="$M_CPU ($split)"
    fi
}

# measure SYSTEM TARGET CONNS PIDS...: $REPEAT runs, the median by rate is
# kept.  This machine may be shared: a run during which something else used
# more than $MAX_OTHER % of the CPU does not count and is run again (up to
# $MAX_TRIES runs per row); if too few clean runs remain, all runs count and
# the row says so.
measure() {
    local sys=$1 target=$2 c=$3; shift 3
    local r best res rates="" tries=0 clean=0 o
    local -a ress=() cpus=() others=() cleanidx=()
    while [ "$clean" -lt "$REPEAT" ] && [ "$tries" -lt "$MAX_TRIES" ]; do
        tries=$((tries + 1))
        log "$sys: $c connections, ${WARMUP}s warm-up + ${DURATION}s (run $tries, $clean of $REPEAT clean so far)"
        measure_once "$target" "$c" "$@"
        printf '%s\n' "$M_OUT" >>"$WORK/$sys.load.log"
        if [ -z "$M_RES" ]; then
            log "$sys at $c: no result: $(printf '%s' "$M_OUT" | tail -n 3 | tr '\n' ' ')"
            RATE[$sys,$c]=fail; NOTE[$sys,$c]=$(printf '%s' "$M_OUT" | grep -v '^GENTIME' | tail -n 1)
            return 0
        fi
        ress+=("$M_RES"); cpus+=("$M_CPU"); others+=("$M_OTHER")
        o=${M_OTHER/\?/100}
        # many processes started meanwhile: someone is running tests
        [ "$M_FORKS" -gt "$MAX_FORKS" ] && [ "$o" -le "$MAX_OTHER" ] && o=$((MAX_OTHER + 1)) &&
            log "$sys at $c: $M_FORKS processes started by others during the run"
        if [ "$o" -le "$MAX_OTHER" ]; then
            clean=$((clean + 1)); cleanidx+=($((tries - 1)))
            rates="$rates $(field rate "$M_RES")"
        else
            rates="$rates $(field rate "$M_RES")*"
        fi
        log "$sys at $c: $(field rate "$M_RES")/s p50 $(field p50 "$M_RES") p99 $(field p99 "$M_RES") µs, errors $(field errors "$M_RES"), $(field actions "$M_RES"); other load ${M_OTHER}%"
        if [ "$o" -gt "$MAX_OTHER" ] && [ "$tries" -lt "$MAX_TRIES" ]; then
            log "$sys at $c: other load ${M_OTHER}% (limit ${MAX_OTHER}%), $M_FORKS other processes started: not counted, waiting ${RETRY_WAIT}s"
            sleep "$RETRY_WAIT"
        fi
    done
    local -a pick=()
    if [ "$clean" -gt 0 ]; then
        pick=("${cleanidx[@]}")
        [ "$clean" -lt "$REPEAT" ] && NOTE[$sys,$c]="only $clean clean run(s)"
    else
        pick=($(seq 0 $((tries - 1))))
        NOTE[$sys,$c]="no clean run: other load ${others[*]}%"
    fi
    # the median rate among the picked runs
    best=$(for i in "${pick[@]}"; do echo "$i $(field rate "${ress[$i]}")"; done | sort -k2,2n |
           awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    res=${ress[$best]}
    RATE[$sys,$c]=$(field rate "$res")
    RUNS[$sys,$c]=$(echo $rates | tr ' ' '/')
    P50[$sys,$c]=$(field p50 "$res"); P90[$sys,$c]=$(field p90 "$res")
    P99[$sys,$c]=$(field p99 "$res"); MAXL[$sys,$c]=$(field max "$res")
    ERRS[$sys,$c]=$(field errors "$res"); ACTS[$sys,$c]=$(field actions "$res")
    GENCPU[$sys,$c]=$(field gen_cpu "$res")
    CPUUS[$sys,$c]=${cpus[$best]}
    OTHER[$sys,$c]=${others[$best]}
    OTHERS[$sys,$c]=$(echo "${others[@]}" | tr ' ' '/')
}

# idle_rss SYSTEM TARGET PIDFUNC: hold $IDLE_CONNS connections (one request
# each), then read the memory of the processes PIDFUNC prints.
idle_rss() {
    local sys=$1 target=$2 pidfunc=$3 gen i pids
    log "$sys: $IDLE_CONNS idle connections"
    RSS[$sys,0]=$(rss_kb $($pidfunc)); PSS[$sys,0]=$(pss_kb $($pidfunc))
    "${GEN[@]}" --idle -c "$IDLE_CONNS" -d 120 -t 60 --connect-timeout 20 "$target" \
        >"$WORK/$sys.idle.out" 2>&1 &
    gen=$!
    remember "$gen"
    for i in $(seq 1 900); do
        grep -q '^READY' "$WORK/$sys.idle.out" && break
        alive "$gen" || break
        sleep 0.1
    done
    if grep -q '^READY' "$WORK/$sys.idle.out"; then
        sleep 1
        pids=$($pidfunc)
        RSS[$sys,$IDLE_CONNS]=$(rss_kb $pids); PSS[$sys,$IDLE_CONNS]=$(pss_kb $pids)
        NOTE[$sys,idle]="$(echo $pids | wc -w) process(es)"
        log "$sys: RSS ${RSS[$sys,$IDLE_CONNS]} kB, PSS ${PSS[$sys,$IDLE_CONNS]} kB with $IDLE_CONNS connections"
    else
        NOTE[$sys,idle]="could not hold $IDLE_CONNS connections: $(tail -n 2 "$WORK/$sys.idle.out" | tr '\n' ' ')"
        log "$sys: ${NOTE[$sys,idle]}"
    fi
    stop_pid "$gen"
    cat "$WORK/$sys.idle.out" >>"$WORK/$sys.load.log"
}

# ---------------------------------------------------------------- relayguard

rg_pids() { echo "$RG_PID"; }

run_relayguard() {
    [ "$RG_STATUS" = ok ] || return 0
    local d="$WORK/rg" rport pport store i
    mkdir -p "$d"
    rport=$(free_port 26379)
    if [ "$STORE" = unix ]; then
        mkdir -p "$d/redis"
        redis-server --port 0 --unixsocket "$d/redis/redis.sock" --unixsocketperm 700 \
            --save "" --appendonly no --dir "$d/redis" --logfile "$d/redis/redis.log" \
            --daemonize no >/dev/null 2>&1 &
        REDIS_PID=$!; remember "$REDIS_PID"
        for i in $(seq 1 100); do [ -S "$d/redis/redis.sock" ] && break; sleep 0.1; done
        store="redis+unix://$d/redis/redis.sock?db=0"
        REDIS_CLI=(redis-cli -s "$d/redis/redis.sock")
    else
        start_redis "$d/redis" "$rport"
        store="redis://127.0.0.1:$rport/0"
        REDIS_CLI=(redis-cli -p "$rport")
    fi
    pport=$(free_port 20040)
    cat >"$d/relayguard.conf" <<EOF
# relayguard-policyd benchmark configuration (bench/run-policy.sh)
store = $store
log = stderr
log_level = warning
node = bench
policyd {
    listen = inet:127.0.0.1:$pport
    max_connections = 20000
}
EOF
    {
        for i in $(seq 0 $((ACCOUNTS - 1))); do
            printf 'account bench%d {\n    logins = bench%d@relay.test\n    domains = bench%d.example.com\n' "$i" "$i" "$i"
            printf '    limit = rate 1000000/1h\n    limit = quota 100000000/1d\n}\n'
        done
        printf 'account limitcheck {\n    logins = limitcheck@relay.test\n    domains = limitcheck.example.com\n'
        printf '    limit = rate 100/1h\n    limit = quota 100000000/1d\n}\n'
    } >"$d/accounts.conf"
    if ! "$RG_CLI" -c "$d/relayguard.conf" load "$d/accounts.conf" >"$d/load.log" 2>&1; then
        RG_STATUS="relayguard load failed: $(tail -n 3 "$d/load.log" | tr '\n' ' ')"
        log "$RG_STATUS"; return 0
    fi
    log "relayguard: generating and importing $SUPPRESSED suppressed addresses"
    awk -v n="$SUPPRESSED" 'BEGIN {
        print "address,reason,since,expires,note"
        split("hard-bounce complaint unsubscribe manual", r, " ")
        for (i = 0; i < n; i++)
            printf "suppressed%d@example.net,%s,2026-11-01,%s,bench\n", i, r[i % 4 + 1], (i % 10 == 0) ? "2036-01-01" : ""
    }' >"$d/suppressed.csv"
    local ts te
    ts=$(date +%s.%N)
    if ! "$RG_CLI" -c "$d/relayguard.conf" suppress import "$d/suppressed.csv" >"$d/import.log" 2>&1; then
        RG_STATUS="suppress import failed: $(tail -n 3 "$d/import.log" | tr '\n' ' ')"
        log "$RG_STATUS"; return 0
    fi
    te=$(date +%s.%N)
    RG_IMPORT=$(awk -v a="$ts" -v b="$te" -v n="$SUPPRESSED" 'BEGIN { printf "%d rows in %.2f s (%.0f rows/s)", n, b - a, n / (b - a) }')
    log "relayguard: import: $RG_IMPORT; $(tail -n 1 "$d/import.log")"

    "$RG_POLICYD" -f -c "$d/relayguard.conf" -l "inet:127.0.0.1:$pport" >"$d/policyd.log" 2>&1 &
    RG_PID=$!; remember "$RG_PID"
    if ! wait_port "$pport" 20 || ! alive "$RG_PID"; then
        RG_STATUS="relayguard-policyd did not start: $(tail -n 5 "$d/policyd.log" | tr '\n' ' ')"
        log "$RG_STATUS"; stop_pid "$RG_PID"; return 0
    fi
    local target="inet:127.0.0.1:$pport"

    if [ "$VERIFY" = 1 ]; then
        verify relayguard "200 requests, unsuppressed recipients" 200 0 \
            "${GEN[@]}" -c 1 -w 0 -n 200 "$target" || true
        verify relayguard "200 requests to suppressed recipients" 0 200 \
            "${GEN[@]}" -c 1 -w 0 -n 200 --hit-rcpt 'suppressed%u@example.net' \
            --hit-pool "$SUPPRESSED" --hit-pct 100 "$target" || true
        verify relayguard "300 messages of an account limited to 100/1h" 100 200 \
            "${GEN[@]}" -c 1 -w 0 -n 300 --accounts 1 --login limitcheck@relay.test \
            --sender news@limitcheck.example.com "$target" || true
    fi

    if [ "$EOM_ROW" = 1 ]; then
        # Postfix with check_policy_service also in smtpd_end_of_data_restrictions:
        # each message is RCPT then END-OF-MESSAGE, which charges it and
        # releases its holds.  Run first: it leaves little state behind.
        local -a gen_saved=("${GEN[@]}")
        GEN+=(--eom)
        measure relayguard-rcpt+eom "$target" 50 "$RG_PID" "$REDIS_PID"
        GEN=("${gen_saved[@]}")
    fi
    for c in $CONNS; do
        "${REDIS_CLI[@]}" config resetstat >/dev/null 2>&1 || true
        measure relayguard "$target" "$c" "$RG_PID" "$REDIS_PID"
        if [ "$c" = 50 ]; then
            # what Redis spends its time on, per command (the script's own
            # commands are listed as well as the EVALSHA that runs them)
            RG_CMDSTATS=$("${REDIS_CLI[@]}" info commandstats 2>/dev/null | tr -d '\r' |
                sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),usec=\([0-9]*\),usec_per_call=\([0-9.]*\).*/\3 \1 \2 \4/p' |
                grep -v "^[0-9]* config" | sort -rn | head -n 16 |
                awk '{ printf "| %s | %d | %.2f | %.1f s |\n", $2, $3, $4, $1 / 1e6 }')
        fi
    done
    if [ "$OPEN_RATE" != 0 ]; then
        # open loop: a fixed offered load, latency from each request's
        # intended send time (the closed-loop rows measure capacity, where
        # latency is connections / throughput by construction)
        local -a gen_saved2=("${GEN[@]}")
        GEN+=(--rate "$OPEN_RATE")
        measure relayguard-open "$target" 50 "$RG_PID" "$REDIS_PID"
        GEN=("${gen_saved2[@]}")
    fi
    if [ "$PROFILE" = 1 ] && command -v perf >/dev/null; then
        # one more run at 50 connections, not counted, with perf attached
        log "relayguard: profiling at 50 connections"
        ( sleep "$WARMUP"; perf record -e cpu-clock -F 999 -g -o "$WORK/perf.data" \
            -p "$RG_PID,$REDIS_PID" -- sleep $((DURATION > 10 ? 10 : DURATION)) \
            >"$WORK/perf.log" 2>&1 ) &
        local perfpid=$!
        measure_once "$target" 50 "$RG_PID" "$REDIS_PID"
        wait "$perfpid" || true
        {
            echo "run with perf attached: $(field rate "$M_RES")/s"
            echo "by process:"
            perf report -i "$WORK/perf.data" --no-children -g none --sort comm --stdio 2>/dev/null |
                grep -E '^ +[0-9.]+%' | head -n 5
            echo "by symbol:"
            perf report -i "$WORK/perf.data" --no-children -g none --sort comm,dso,symbol --stdio 2>/dev/null |
                grep -E '^ +[0-9.]+%' | head -n 30
        } >"$WORK/perf.top" || true
    fi
    idle_rss relayguard "$target" rg_pids
    RSS[redis,0]=$(rss_kb "$REDIS_PID")
    RG_REDIS_MEM=$("${REDIS_CLI[@]}" info memory 2>/dev/null | sed -n 's/^used_memory_human://p' | tr -d '\r')
    RG_REDIS_KEYS=$("${REDIS_CLI[@]}" dbsize 2>/dev/null | tr -d '\r')
    stop_pid "$RG_PID"
    stop_pid "$REDIS_PID"
}

# ---------------------------------------------------------------- postfwd

PF_MASTER=""
pf_pids() { echo "$PF_MASTER" $(descendants "$PF_MASTER"); }

# start_postfwd DIR PORT LIMIT SERVERS -> PF_MASTER
start_postfwd() {
    local d=$1 port=$2 limit=$3 servers=$4 i
    mkdir -p "$d/run"
    chown postfw:postfw "$d/run"
    # the rule file must be given with an absolute path: postfwd2 chdirs to /
    # when it daemonizes and then runs with no rules at all, silently.
    echo "id=RATE01; sasl_username=~.; action=rate(sasl_username/$limit/3600/450 4.7.1 rate limit exceeded)" \
        >"$d/postfwd.cf"
    postfwd2 -f "$d/postfwd.cf" -u postfw -g postfw --interface 127.0.0.1 --port "$port" \
        --cache_socket "unix::$d/run/cache.socket" --pidfile "$d/run/postfwd2.pid" \
        --perfmon --nodns --min_servers "$servers" --max_servers $((servers + 10)) \
        --max_spare_servers $((servers + 9)) >"$d/postfwd.log" 2>&1 ||
        die "postfwd2 did not start: $(cat "$d/postfwd.log")"
    for i in $(seq 1 100); do [ -s "$d/run/postfwd2.pid" ] && break; sleep 0.1; done
    PF_MASTER=$(cat "$d/run/postfwd2.pid")
    remember "$PF_MASTER"
    wait_port "$port" 20 || die "postfwd2 does not listen on $port"
    # wait until the prefork server has spawned its children
    for i in $(seq 1 300); do
        [ "$(descendants "$PF_MASTER" | wc -l)" -ge $((servers + 2)) ] && break
        sleep 0.1
    done
}

# postfwd2 forks one process per connection: stop the master, then make sure
# every process it had is gone (by PID).
stop_postfwd() {
    local pids i p left
    [ -n "$PF_MASTER" ] || return 0
    pids=$(pf_pids)
    kill -TERM "$PF_MASTER" 2>/dev/null || true
    for i in $(seq 1 300); do
        left=""
        for p in $pids; do alive "$p" && left="$left $p"; done
        [ -z "$left" ] && break
        sleep 0.1
    done
    for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
    PF_MASTER=""
}

run_postfwd() {
    local d="$WORK/postfwd" port
    mkdir -p "$d"
    if [ "$VERIFY" = 1 ]; then
        port=$(free_port 20140)
        start_postfwd "$d/verify" "$port" 100 5
        verify postfwd "300 requests of one login limited to 100/1h" 100 200 \
            "${GEN[@]}" -c 1 -w 0 -n 300 --accounts 1 "127.0.0.1:$port" || true
        stop_postfwd
    fi
    # A fresh instance per row, sized for it: --min_servers/--max_servers just
    # above the connection count.  (One instance sized for the largest row
    # is slower at every row: the prefork parent tends all its children.)
    for c in $CONNS; do
        port=$(free_port 20045)
        start_postfwd "$d/c$c" "$port" 1000000 $((c + 10))
        measure postfwd "127.0.0.1:$port" "$c" $(pf_pids)
        stop_postfwd
    done
    port=$(free_port 20045)
    start_postfwd "$d/idle" "$port" 1000000 $((IDLE_CONNS + 10))
    idle_rss postfwd "127.0.0.1:$port" pf_pids
    stop_postfwd
}

# ---------------------------------------------------------------- policyd-rate-limit

PRL_PID=""
prl_pids() { echo "$PRL_PID"; }

start_prl() {
    local d=$1 port=$2 limit=$3 i
    mkdir -p "$d/db" "$d/run"
    chown policyd-rate-limit:policyd-rate-limit "$d/db" "$d/run"
    cat >"$d/prl.yaml" <<EOF
debug: False
user: "policyd-rate-limit"
group: "policyd-rate-limit"
pidfile: "$d/run/prl.pid"
backend: 0
sqlite_config:
    database: "$d/db/db.sqlite3"
SOCKET: ["127.0.0.1", $port]
limits:
    - [$limit, 3600]
limits_by_id: {}
limit_by_sasl: True
limit_by_sender: False
limit_by_ip: False
limited_networks: []
success_action: "dunno"
fail_action: "defer_if_permit Rate limit reach, retry later"
db_error_action: "dunno"
report: False
delay_to_close: 300
EOF
    # policyd-rate-limit calls listen(5), hard-coded; with 500 clients
    # connecting at once most SYNs would be dropped and retried after 1-3 s.
    cat >"$d/run-prl.py" <<'EOF'
import socket, sys, runpy
_listen = socket.socket.listen
socket.socket.listen = lambda self, backlog=0: _listen(self, 4096)
sys.argv = ["/usr/bin/policyd-rate-limit"] + sys.argv[1:]
runpy.run_path("/usr/bin/policyd-rate-limit", run_name="__main__")
EOF
    /usr/bin/python3 "$d/run-prl.py" -f "$d/prl.yaml" >"$d/prl.log" 2>&1 &
    PRL_PID=$!
    remember "$PRL_PID"
    wait_port "$port" 20 || die "policyd-rate-limit did not start: $(cat "$d/prl.log")"
}

run_prl() {
    local d="$WORK/prl" port
    mkdir -p "$d"
    if [ "$VERIFY" = 1 ]; then
        port=$(free_port 20150)
        start_prl "$d/verify" "$port" 100
        verify policyd-rate-limit "300 requests of one login limited to 100/1h" 100 200 \
            "${GEN[@]}" -c 1 -w 0 -n 300 --accounts 1 "127.0.0.1:$port" || true
        stop_pid "$PRL_PID"
    fi
    port=$(free_port 20047)
    start_prl "$d/main" "$port" 1000000
    for c in $CONNS; do
        measure policyd-rate-limit "127.0.0.1:$port" "$c" "$PRL_PID"
    done
    idle_rss policyd-rate-limit "127.0.0.1:$port" prl_pids
    stop_pid "$PRL_PID"
}

# ---------------------------------------------------------------- run

for s in $SYSTEMS; do
    case $s in
        relayguard) run_relayguard ;;
        postfwd) run_postfwd ;;
        policyd-rate-limit) run_prl ;;
        *) die "unknown system $s" ;;
    esac
done

# ---------------------------------------------------------------- report

ratio() {   # ratio A B -> "12.3x" or "-"
    awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.1f×", a / b; else print "-" }'
}
mib() { awk -v k="$1" 'BEGIN { if (k + 0 > 0) printf "%.1f MiB", k / 1024; else print "-" }'; }

report() {
    local s c r
    echo "## Policy delegation: relayguard-policyd vs postfwd vs policyd-rate-limit"
    echo
    machine_info
    echo "- load: bench/policy-load, full RCPT requests, $ACCOUNTS accounts, 1,000,000 recipients,"
    echo "  ${WARMUP} s warm-up then ${DURATION} s, $REPEAT runs per row, the median run by decisions/s shown;"
    echo "  generator, server and Redis share the 2 cores; \"other load\" = CPU used by other processes"
    echo "  during the run, in % of all cores; runs with more than ${MAX_OTHER}% or more than $MAX_FORKS processes"
    echo "  started by others were run again (up to $MAX_TRIES runs per row)"
    echo "- load average at the start: $LOAD_START"
    echo "- relayguard: ${RG_STATUS}; store $STORE; 2 limits + suppression ($SUPPRESSED addresses) per request"
    [ -n "${RG_IMPORT:-}" ] && echo "- relayguard suppress import of the $SUPPRESSED addresses: $RG_IMPORT"
    echo
    echo "| system | connections | decisions/s | p50 µs | p90 µs | p99 µs | max µs | server CPU µs/decision (policyd + redis) | errors | other load | relayguard/peer |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for c in $CONNS; do
        for s in $SYSTEMS; do
            r=${RATE[$s,$c]:-}
            if [ -z "$r" ]; then
                echo "| $s | $c | not run | | | | | | | | |"; continue
            fi
            if [ "$r" = fail ]; then
                echo "| $s | $c | failed: ${NOTE[$s,$c]:-} | | | | | | | | |"; continue
            fi
            local rat="-"
            [ "$s" != relayguard ] && rat=$(ratio "${RATE[relayguard,$c]:-0}" "$r")
            echo "| $s | $c | $r | ${P50[$s,$c]} | ${P90[$s,$c]} | ${P99[$s,$c]} | ${MAXL[$s,$c]} | ${CPUUS[$s,$c]} | ${ERRS[$s,$c]} | ${OTHER[$s,$c]}% | $rat |"
        done
    done
    if [ -n "${RATE[relayguard-open,50]:-}" ]; then
        s=relayguard-open; c=50
        echo "| relayguard, open loop: $OPEN_RATE/s offered | $c | ${RATE[$s,$c]} | ${P50[$s,$c]} | ${P90[$s,$c]} | ${P99[$s,$c]} | ${MAXL[$s,$c]} | ${CPUUS[$s,$c]} | ${ERRS[$s,$c]} | ${OTHER[$s,$c]}% | - |"
    fi
    if [ -n "${RATE[relayguard-rcpt+eom,50]:-}" ]; then
        s=relayguard-rcpt+eom; c=50
        echo "| relayguard, RCPT + END-OF-MESSAGE per message | $c | ${RATE[$s,$c]} | ${P50[$s,$c]} | ${P90[$s,$c]} | ${P99[$s,$c]} | ${MAXL[$s,$c]} | ${CPUUS[$s,$c]} | ${ERRS[$s,$c]} | ${OTHER[$s,$c]}% | - |"
    fi
    echo
    echo "Reply actions in the median run, decisions/s of every run (* = not counted: other load):"
    for c in $CONNS; do for s in $SYSTEMS relayguard-open relayguard-rcpt+eom; do
        [ -n "${ACTS[$s,$c]:-}" ] && echo "- $s, $c connections: ${ACTS[$s,$c]}; runs ${RUNS[$s,$c]}/s; other load ${OTHERS[$s,$c]}%; generator CPU ${GENCPU[$s,$c]} s${NOTE[$s,$c]:+; ${NOTE[$s,$c]}}"
    done; done
    echo
    echo "| system | memory, idle | memory with $IDLE_CONNS idle connections | notes |"
    echo "| --- | ---: | ---: | --- |"
    for s in $SYSTEMS; do
        if [ -n "${RSS[$s,$IDLE_CONNS]:-}" ]; then
            echo "| $s | RSS $(mib "${RSS[$s,0]}") (PSS $(mib "${PSS[$s,0]}")) | RSS $(mib "${RSS[$s,$IDLE_CONNS]}") (PSS $(mib "${PSS[$s,$IDLE_CONNS]}")) | ${NOTE[$s,idle]:-} |"
        else
            echo "| $s | - | - | ${NOTE[$s,idle]:-not run} |"
        fi
    done
    if [ -n "${RSS[redis,0]:-}" ]; then
        echo
        echo "relayguard's Redis at the end: RSS $(mib "${RSS[redis,0]}"), used_memory ${RG_REDIS_MEM:-?}, ${RG_REDIS_KEYS:-?} keys."
    fi
    if [ -n "${RG_CMDSTATS:-}" ]; then
        echo
        echo "Redis commands during the relayguard 50-connection row (INFO commandstats; the script's"
        echo "inner commands are counted as well as the EVALSHA that runs them):"
        echo
        echo "| command | calls | µs per call | total |"
        echo "| --- | ---: | ---: | ---: |"
        echo "$RG_CMDSTATS"
    fi
    if [ -n "$VERIFY_LINES" ]; then
        echo
        echo "Checks before measuring (a system that does not enforce its limit is not measured fairly):"
        printf '%s' "$VERIFY_LINES"
    fi
    if [ -n "${RATE[relayguard,50]:-}" ] && [ "${RATE[relayguard,50]}" != fail ]; then
        echo
        echo "Targets for relayguard-policyd:"
        awk -v r="${RATE[relayguard,50]}" 'BEGIN { printf "- >= 25,000 decisions/s at 50 connections: %d -> %s\n", r, (r >= 25000 ? "met" : "MISSED") }'
        for c in $CONNS; do
            awk -v p="${P99[relayguard,$c]}" -v c="$c" 'BEGIN { printf "- p99 <= 2 ms at %s connections (closed loop, at full load): %d µs -> %s\n", c, p, (p <= 2000 ? "met" : "MISSED") }'
        done
        if [ -n "${P99[relayguard-open,50]:-}" ]; then
            awk -v p="${P99[relayguard-open,50]}" -v r="$OPEN_RATE" 'BEGIN { printf "- p99 <= 2 ms at 50 connections, open loop at %d/s: %d µs -> %s\n", r, p, (p <= 2000 ? "met" : "MISSED") }'
        fi
        for s in $SYSTEMS; do
            [ "$s" = relayguard ] && continue
            for c in $CONNS; do
                [ -n "${RATE[$s,$c]:-}" ] && [ "${RATE[$s,$c]}" != fail ] || continue
                awk -v a="${RATE[relayguard,$c]}" -v b="${RATE[$s,$c]}" -v s="$s" -v c="$c" \
                    'BEGIN { printf "- >= 20x %s at %s connections: %.1fx -> %s\n", s, c, a / b, (a >= 20 * b ? "met" : "MISSED") }'
            done
        done
        if [ -n "${RSS[relayguard,$IDLE_CONNS]:-}" ]; then
            awk -v k="${RSS[relayguard,$IDLE_CONNS]}" -v n="$IDLE_CONNS" 'BEGIN { printf "- RSS <= 20 MB with %d idle connections: %.1f MiB -> %s\n", n, k / 1024, (k <= 20480 ? "met" : "MISSED") }'
        fi
    fi
    if [ -s "$WORK/perf.top" ]; then
        echo
        echo "perf (cpu-clock) of relayguard-policyd + redis-server at 50 connections, top symbols:"
        echo '```'
        cat "$WORK/perf.top"
        echo '```'
    fi
}

report | tee "$WORK/report.md"
[ -n "${OUT:-}" ] && cp "$WORK/report.md" "$OUT"
exit 0
}
