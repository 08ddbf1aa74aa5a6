#!/bin/bash
# rounds.sh - relayguard-detectd reads in rounds (detect block max_delay),
# with real Redis:
#   - max_delay is a duration from 10ms to 10m; anything else is refused
#     with file:line;
#   - a backlog is read in one round of full batches, each under a lease of
#     its own, and the accounts' states are written once for the round;
#   - a detector that keeps up pauses until max_delay: an event added
#     meanwhile waits in the stream; SIGHUP ends the pause (the event is read
#     at once), SIGTERM ends it and the detector exits cleanly;
#   - a round whose state write fails (the detector's Redis user may not
#     write states) keeps its leases and is read again from them once the
#     write works: every event counted exactly once;
#   - a detector killed mid-round (its batches read, no state written) loses
#     nothing: another one takes its leases over and counts every event
#     exactly once.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"

RG_BIN_DETECTD="$top_builddir/detectd/relayguard-detectd"
rg_require redis-server redis-cli
rg_require_built "$RG_BIN_DETECTD"

rg_tmpdir
rg_start_redis

# --- configuration -----------------------------------------------------------------
bad() {     # bad VALUE: "max_delay = VALUE" on line 3 is refused with file:line
    printf 'detect {\n    batch = 10\n    max_delay = %s\n}\n' "$1" >"$RG_TMP/bad.conf"
    local out
    out=$("$RG_BIN_DETECTD" -t -c "$RG_TMP/bad.conf" 2>&1)
    like "$out" "bad.conf:3: bad max_delay '$1' \\(a duration from 10ms to 10m, e.g. 1s\\)" \
        "max_delay = $1 is refused: $out"
}
bad 5ms
bad 11m
bad soon
printf 'detect {\n    max_delay = 250ms\n}\n' >"$RG_TMP/good.conf"
"$RG_BIN_DETECTD" -t -c "$RG_TMP/good.conf" >/dev/null 2>&1
ok $? "max_delay = 250ms is accepted"

# floor: no volume detection (its event would be one more stream entry)
RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" <<EOF
detect {
    floor      = 1000000
    batch      = 50
    max_delay  = 10m
    claim_idle = 1s
}
EOF

# events ACCOUNT N: N accepted recipients of ACCOUNT, all in this hour.
TS=$(rg_now_ms)
events() {
    local i
    for ((i = 0; i < $2; i++)); do
        printf 'XADD rg:events * ts %s node test stage rcpt qid Q%d account %s login %s@relay.test client 192.0.2.1 country "" sender a@example.com rcpt r%d@example.net nrcpt 1 size 100 verdict accept code "" reason ok detail ""\n' \
            "$TS" "$i" "$1" "$1" "$i"
    done | rg_redis >/dev/null
}
lag() { rg_redis XINFO GROUPS rg:events | awk 'p { print; exit } /^lag$/ { p = 1 }'; }
# until SHELL-CONDITION: wait (max 15 s) until it holds.
until_ok() {
    local i
    for ((i = 0; i < 150; i++)); do eval "$1" && return 0; sleep 0.1; done
    return 1
}

LOG="$RG_TMP/detectd.log"
start_detectd() {   # start_detectd CONF LOG
    "$RG_BIN_DETECTD" -f -d -c "$1" >>"$2" 2>&1 &
    DETECTD_PID=$!
    rg_on_exit "rg_stop_pid $DETECTD_PID"
}

# --- a backlog is one round -------------------------------------------------------------
rg_redis XGROUP CREATE rg:events detectd '$' MKSTREAM >/dev/null
events acme 300
is "$(rg_redis XLEN rg:events)" 300 "300 events wait in the stream"
start_detectd "$RG_CONF" "$LOG"
until_ok 'grep -q "round: " "$LOG" 2>/dev/null'
ok $? "the detector read its first round"
like "$(grep -m 1 'round: ' "$LOG")" 'round: 300 events in 7 reads' \
    "the backlog is one round: six full batches of 50 and an empty read"
is "$(rg_redis HGET rg:dt:acme n)" 300 "every event counted once"
is "$(rg_redis HGET rg:dt:acme v)" 1 "the account's state is written once for the round (version 1)"
is "$(rg_redis HLEN rg:detect:leases)" 0 "the round's leases are dropped once it is processed"

# --- max_delay: the pause, SIGHUP, SIGTERM ------------------------------------------------
is "$(lag)" 0 "nothing left to read"
events acme 1
sleep 2
is "$(lag)" 1 "max_delay = 10m: a detector that keeps up pauses; the new event waits in the stream"
kill -HUP "$DETECTD_PID"
until_ok '[ "$(lag)" = 0 ] && [ "$(rg_redis HGET rg:dt:acme n)" = 301 ]'
ok $? "SIGHUP ends the pause: the event is read and counted at once"
rg_stop_policyd "$DETECTD_PID"
ok $? "SIGTERM ends the pause: the detector exits with status 0"
is "$(rg_redis HLEN rg:detect:leases)" 0 "a clean exit leaves no lease"

# --- a detector killed mid-round loses nothing ---------------------------------------------------
# Its Redis user may read but not write the states (rg:dt:*): it reads its
# round, fails to write, keeps its leases and tries again, until killed.
rg_redis ACL SETUSER det on '>secret' '+@all' '~rg:[^d]*' '~rg:d[^t]*' '%R~rg:dt:*' >/dev/null
like "$(redis-cli -p "$REDIS_PORT" --user det --pass secret --no-auth-warning HSET rg:dt:x n 1 2>&1)" \
    'NOPERM' "the user det may not write detection states"
sed "s#^store = .*#store = redis://det:secret@127.0.0.1:$REDIS_PORT/0#" "$RG_CONF" >"$RG_TMP/det.conf"

# A failed round is read again from its own leases.
events redo 300
LOG_R="$RG_TMP/detectd-redo.log"
start_detectd "$RG_TMP/det.conf" "$LOG_R"
until_ok '[ "$(lag)" = 0 ] && grep -q "reading the batch .* again" "$LOG_R"'
ok $? "a detector that cannot write states read the events and tries again"
ok $([ "$(rg_redis HLEN rg:detect:leases)" -ge 2 ]; echo $?) "its round's leases stay"
is "$(rg_redis HGET rg:dt:redo n)" "" "no state of account redo was written"
rg_redis ACL SETUSER det allkeys >/dev/null
until_ok '[ "$(rg_redis HLEN rg:detect:leases)" = 0 ] && [ -n "$(rg_redis HGET rg:dt:redo n)" ]'
ok $? "once it may write, it reads its leases' ranges again and drops them"
is "$(rg_redis HGET rg:dt:redo n)" 300 "every event of the failed round counted exactly once"
rg_stop_policyd "$DETECTD_PID"
ok $? "the detector exits cleanly"
rg_redis ACL SETUSER det resetkeys '~rg:[^d]*' '~rg:d[^t]*' '%R~rg:dt:*' >/dev/null

# A detector killed mid-round.
events crash 300
LOG_A="$RG_TMP/detectd-a.log"
start_detectd "$RG_TMP/det.conf" "$LOG_A"
PID_A=$DETECTD_PID
until_ok '[ "$(lag)" = 0 ] && grep -q "reading the batch .* again" "$LOG_A"'
ok $? "detector A read the 300 events and failed to write their states"
leases=$(rg_redis HKEYS rg:detect:leases)
n_leases=$(printf '%s\n' "$leases" | grep -c .)
ok $([ "$n_leases" -ge 2 ]; echo $?) "A holds a lease for each read of its round ($n_leases)"
ok $(printf '%s\n' "$leases" | grep -qv "^test:$PID_A\(/[0-9]*\)\?$"; [ $? = 1 ]; echo $?) \
    "the leases are A's: $(echo $leases)"
is "$(rg_redis HGET rg:dt:crash n)" "" "no state of account crash was written"
kill -9 "$PID_A"
wait "$PID_A" 2>/dev/null
LOG_B="$RG_TMP/detectd-b.log"
sed 's/^    max_delay  = 10m$/    max_delay  = 100ms/' "$RG_CONF" >"$RG_TMP/b.conf"
start_detectd "$RG_TMP/b.conf" "$LOG_B"
until_ok '[ "$(rg_redis HLEN rg:detect:leases)" = 0 ] && [ -n "$(rg_redis HGET rg:dt:crash n)" ]'
ok $? "detector B took the dead one's leases over"
is "$(rg_redis HGET rg:dt:crash n)" 300 "no event lost, none counted twice"
is "$(grep -c "took over the batch .* that test:$PID_A" "$LOG_B")" "$n_leases" \
    "each of A's leases was taken over once"
rg_stop_policyd "$DETECTD_PID"
ok $? "detector B exits cleanly"

rg_log_clean "$LOG"
ok $? "no sanitizer report in the first detector's log"
rg_log_clean "$LOG_R"
ok $? "no sanitizer report in the retrying detector's log"
rg_log_clean "$LOG_A"
ok $? "no sanitizer report in A's log"
rg_log_clean "$LOG_B"
ok $? "no sanitizer report in B's log"
done_testing
