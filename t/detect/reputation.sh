#!/bin/bash
# reputation.sh - reputation throttling end to end: replayed events (each
# with its own time, so hours of history replay in a moment) in a real
# Redis stream, a real relayguard-detectd reading them as its consumer group,
# a real relayguard-policyd applying what it did to the accounts.
#
#   - exactly at the hard-bounce rate (5 % of 1000) nothing happens; one
#     bounce more throttles the account, with a detection.bounce_rate event
#     carrying the evidence (window, volume, count, rate, threshold); the
#     engine applies the throttle; relayguard account resume lifts it;
#   - below the minimum volume even 20 % of hard bounces does nothing;
#   - the complaint rate (0.1 %) likewise, with detection.complaint_rate;
#   - an account's own bounce_rate is used instead of the block's;
#   - a throttle ends by itself (throttle_for); once the cool-down is over and
#     the rate is still passed, the second action of "throttle, suspend"
#     suspends; relayguard account resume lifts the suspension;
#   - two detectors share the stream without counting an event twice, and a
#     detector's unfinished batch (its lease) is taken over by another.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"

RG_BIN_DETECTD="$top_builddir/detectd/relayguard-detectd"
rg_require redis-server redis-cli python3
rg_require_built "$RG_BIN_POLICYD" "$RG_BIN_CLI" "$RG_BIN_DETECTD"

rg_tmpdir
rg_start_redis

RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" <<EOF
detect {
    bounce_rate        = 5%
    complaint_rate     = 0.1%
    reputation_window  = 24h
    reputation_min     = 1000
    reputation_action  = throttle, suspend
    throttle           = rate 3/1h
    throttle_for       = 1h
    cooldown           = 1h
    claim_idle         = 1s
}
EOF

# --- configuration --------------------------------------------------------------
"$RG_BIN_DETECTD" -t -c "$RG_CONF" >/dev/null 2>&1
ok $? "relayguard-detectd -t accepts the reputation keys"
out=$(rg_cli check-config 2>&1)
ok $? "relayguard check-config accepts them: $out"
bad() {     # bad LINE REGEX: a detect block with LINE is refused with file:line
    printf 'detect {\n    cooldown = 1h\n    %s\n}\n' "$1" >"$RG_TMP/bad.conf"
    local o
    o=$("$RG_BIN_DETECTD" -t -c "$RG_TMP/bad.conf" 2>&1)
    like "$o" "bad.conf:3: $2" "refused: '$1' ($o)"
}
bad 'bounce_rate = 5 percent' "bad bounce_rate '5 percent' \\(a percentage"
bad 'complaint_rate = 0%' "bad complaint_rate '0%'"
bad 'bounce_rate = 150%' "bad bounce_rate '150%'"
bad 'reputation_window = 10s' "bad reputation_window '10s'"
bad 'reputation_min = 0' "bad reputation_min '0'"
bad 'reputation_action = throttle, explode' "bad reputation_action 'throttle, explode'"
o=$(RG_CONF="$RG_TMP/bad.conf" rg_cli check-config 2>&1)
like "$o" "bad.conf:3: bad reputation_action" "relayguard check-config names the file and line: $o"

acct() {    # acct NAME: an account with login NAME@relay.test and domain example.com
    printf 'account %s {\n    logins  = %s@relay.test\n    domains = example.com\n}\n' "$1" "$1"
}
{
    acct news; acct small; acct fbl; acct promo
    cat <<'EOF'
account vip {
    logins      = vip@relay.test
    domains     = example.com
    bounce_rate = 2%
}
EOF
    acct twin; acct ghost; acct probe
} >"$RG_TMP/accounts.conf"
out=$(rg_cli load "$RG_TMP/accounts.conf" 2>&1)
ok $? "relayguard load: bounce_rate is an account field ($out)"
is "$(rg_redis HGET rg:acct:vip bounce_rate)" "2%" "the account's own threshold is stored"
printf 'account oops {\n    domains = example.com\n    complaint_rate = lots\n}\n' >"$RG_TMP/bad-accounts.conf"
out=$(rg_cli load "$RG_TMP/bad-accounts.conf" 2>&1)
like "$out" "bad-accounts.conf:3:.*bad complaint_rate 'lots'" "a bad account threshold is refused with file:line: $out"

# --- replaying events -----------------------------------------------------------------
# Events are XADDed as the adapters and relayguard bounce write them, with
# their own times (ms): detection's clock is the events'.
NOW=$(rg_now_ms)
MIN=60000 HOUR=3600000
replay() {      # replay ACCOUNT KIND COUNT TS: COUNT events of KIND (accept|hard|complaint) from TS on
    local acct=$1 kind=$2 n=$3 ts=$4 i
    for ((i = 0; i < n; i++)); do
        case $kind in
        accept) echo "XADD rg:events * ts $((ts + i)) node test stage rcpt account $acct login $acct@relay.test client 192.0.2.1 country US verdict accept reason ok" ;;
        hard) echo "XADD rg:events * ts $((ts + i)) type bounce.hard node test stage bounce account $acct rcpt u$i@example.net verdict hard code 5.1.1 reason suppressed" ;;
        complaint) echo "XADD rg:events * ts $((ts + i)) type bounce.complaint node test stage bounce account $acct rcpt u$i@example.net verdict complaint reason suppressed" ;;
        esac
    done | rg_redis >/dev/null
}
# until_ok SHELL-CONDITION: wait (max 20 s) until it holds.
until_ok() {
    local i
    for ((i = 0; i < 200; i++)); do eval "$1" && return 0; sleep 0.1; done
    eval "$1"
}
group_field() {
    rg_redis XINFO GROUPS rg:events | awk -v f="$1" '/^name$/ { getline; g = $0 }
        $0 == f { getline; if (g == "detectd") { print; exit } }'
}
# settled: the detectors read every entry and finished their batches.
settled() {
    until_ok '[ "$(group_field lag)" = 0 ] && [ "$(rg_redis HLEN rg:detect:leases)" = 0 ]'
}
# events_of TYPE ACCOUNT: the detection events of an account, as JSON lines.
events_of() {
    rg_cli --json events --type "$1" --count 1000 2>/dev/null | python3 -c '
import json, sys
for e in json.load(sys.stdin) or []:
    if e.get("account") == sys.argv[1]:
        print(json.dumps(e))' "$2"
}
count_of() { events_of "$1" "$2" | grep -c . ; }
last_of() { events_of "$1" "$2" | tail -1; }
jget() {
    [ -n "$1" ] || return 0
    python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2"
}
evidence() {    # verdict/window/volume/count/rate/threshold/cooling of an event
    python3 -c 'import json,sys; e = json.loads(sys.argv[1]) if sys.argv[1] else {}
print("/".join(str(e.get(k, "")) for k in ("verdict", "window", "volume", "count", "rate", "threshold", "cooling")))' "$1"
}

DETECTD_LOG="$RG_TMP/detectd.log"
start_detectd() {
    "$RG_BIN_DETECTD" -f -c "$RG_CONF" >>"$DETECTD_LOG" 2>&1 &
    DETECTD_PID=$!
    rg_on_exit "rg_stop_pid $DETECTD_PID"
}
start_detectd
rg_wait_for 10 bash -c "redis-cli -p $REDIS_PORT XINFO GROUPS rg:events 2>/dev/null | grep -qx detectd"
ok $? "relayguard-detectd created its consumer group"

rg_start_policyd "$RG_CONF"
req() {     # req LOGIN: one RCPT request, a new message each time
    local n=$(( $(cat "$RG_TMP/n" 2>/dev/null || echo 0) + 1 ))
    echo "$n" >"$RG_TMP/n"
    rg_policy_query "$POLICYD_PORT" protocol_state=RCPT protocol_name=ESMTP client_address=192.0.2.1 \
        client_name=client.test sasl_method=PLAIN sasl_username="$1" sender="${1%@*}@example.com" \
        recipient="rcpt$n@example.net" instance="rep.$n" size=100
}
a=$(rg_wait_policyd_ready "$POLICYD_PORT" protocol_state=RCPT protocol_name=ESMTP \
    client_address=192.0.2.1 sasl_method=PLAIN sasl_username=probe@relay.test \
    sender=probe@example.com recipient=first@example.net instance=rep.0 size=0)
like "$a" '^(OK|DUNNO)' "policyd ready: '$a'"
policyd_sees() {    # wait until policyd loaded the current accounts generation
    local gen
    gen=$(rg_redis GET rg:acct:gen)
    until_ok "grep -q 'accounts (generation $gen)' '$POLICYD_LOG' ||
              { req probe@relay.test >/dev/null; false; }"
}
codes() {   # codes LOGIN N: the reply codes of N requests
    local i c=
    for ((i = 0; i < $2; i++)); do a=$(req "$1"); c="$c ${a:0:3}"; done
    printf '%s\n' "$c"
}

# --- the hard-bounce rate ------------------------------------------------------------------
replay news accept 1000 $((NOW - 30 * MIN))
replay news hard 50 $((NOW - 20 * MIN))
settled
is "$(count_of detection.bounce_rate news)" 0 "50 hard bounces of 1000 recipients (exactly 5%): no detection"
is "$(rg_redis HEXISTS rg:acct:news throttle_until)" 0 "exactly at the threshold: not throttled"
T51=$((NOW - 19 * MIN))
replay news hard 1 $T51
until_ok '[ "$(count_of detection.bounce_rate news)" = 1 ]'
ok $? "the 51st hard bounce (5.1%) is a detection.bounce_rate event"
e=$(last_of detection.bounce_rate news)
is "$(evidence "$e")" "throttle/86400/1000/51/0.051000/0.050000/no" \
    "evidence: action, window (s), volume, count, rate, threshold"
like "$(jget "$e" detail)" "51 hard bounces of 1000 recipients \\(5.1%\\) within 1d, above 5%" \
    "detail: $(jget "$e" detail)"
is "$(jget "$e" ts)" "$T51" "the event's time is the bounce's"
like "$(rg_redis HGET rg:acct:news throttle)" 'rate 3/1h.*name=throttle' "news is throttled with the detect block's limit"
is "$(rg_redis HGET rg:acct:news throttle_until)" "$(( (T51 + HOUR + 999) / 1000 ))" "for throttle_for from the bounce"
policyd_sees
like "$(codes news@relay.test 4)" '^ (OK|DUN) (OK|DUN) (OK|DUN) 451$' "the engine applies the throttle: three accepted, then 451"
out=$(rg_cli account resume news 2>&1)
ok $? "relayguard account resume news: $out"
is "$(rg_redis HEXISTS rg:acct:news throttle_until)" 0 "resume lifts the throttle"
policyd_sees
like "$(req news@relay.test)" '^(OK|DUNNO)' "after resume news sends again"

# --- below the minimum volume ------------------------------------------------------------------
replay small accept 500 $((NOW - 30 * MIN))
replay small hard 100 $((NOW - 20 * MIN))
settled
is "$(count_of detection.bounce_rate small)" 0 "100 hard bounces of 500 recipients (20%, under reputation_min 1000): nothing"
is "$(rg_redis HEXISTS rg:acct:small throttle_until)/$(rg_redis HGET rg:acct:small suspended)" "0/no" \
    "below the minimum volume: neither throttled nor suspended"

# --- the complaint rate ------------------------------------------------------------------------
replay fbl accept 1000 $((NOW - 30 * MIN))
replay fbl complaint 1 $((NOW - 20 * MIN))
settled
is "$(count_of detection.complaint_rate fbl)" 0 "1 complaint of 1000 recipients (exactly 0.1%): nothing"
replay fbl complaint 1 $((NOW - 19 * MIN))
until_ok '[ "$(count_of detection.complaint_rate fbl)" = 1 ]'
ok $? "the 2nd complaint (0.2%) is a detection.complaint_rate event"
e=$(last_of detection.complaint_rate fbl)
is "$(evidence "$e")" "throttle/86400/1000/2/0.002000/0.001000/no" "complaint evidence"
like "$(rg_redis HGET rg:acct:fbl throttle)" 'rate 3/1h' "fbl is throttled"

# --- an account's own threshold ----------------------------------------------------------------
replay vip accept 1000 $((NOW - 30 * MIN))
replay vip hard 21 $((NOW - 20 * MIN))
until_ok '[ "$(count_of detection.bounce_rate vip)" = 1 ]'
ok $? "vip (bounce_rate = 2%): 21 hard bounces of 1000 fire, under the block's 5%"
is "$(jget "$(last_of detection.bounce_rate vip)" threshold)" "0.020000" "the evidence names the account's threshold"

# --- the throttle ends, the cool-down ends, then suspend ---------------------------------------
replay promo accept 1000 $((NOW - 6 * HOUR))
replay promo hard 60 $((NOW - 5 * HOUR))
until_ok '[ "$(count_of detection.bounce_rate promo)" = 1 ]'
is "$(evidence "$(last_of detection.bounce_rate promo)")" "throttle/86400/1000/51/0.051000/0.050000/no" \
    "promo five hours ago: throttled at the 51st bounce"
is "$(rg_redis HGET rg:acct:promo throttle_until)" "$(( (NOW - 5 * HOUR + 50 + HOUR + 999) / 1000 ))" \
    "the throttle ran until four hours ago"
policyd_sees
like "$(codes promo@relay.test 4)" '^ (OK|DUN) (OK|DUN) (OK|DUN) (OK|DUN)$' "the throttle ended by itself: the engine no longer applies it"
replay promo hard 1 $((NOW - 5 * HOUR + 30 * MIN))
settled
is "$(count_of detection.bounce_rate promo)" 1 "a bounce within the cool-down: no second event"
is "$(rg_redis HGET rg:acct:promo suspended)" "no" "within the cool-down: not suspended"
replay promo hard 1 $((NOW - 3 * HOUR))
until_ok '[ "$(count_of detection.bounce_rate promo)" = 2 ]'
ok $? "once the cool-down is over and the rate is still passed: a second event"
is "$(evidence "$(last_of detection.bounce_rate promo)")" "suspend/86400/1000/62/0.062000/0.050000/no" \
    "the second action of 'throttle, suspend' suspends"
is "$(rg_redis HGET rg:acct:promo suspended)" "yes" "promo is suspended"
policyd_sees
like "$(req promo@relay.test)" '^550 5\.7\.1 .*suspended' "the engine refuses promo"
out=$(rg_cli account resume promo 2>&1)
ok $? "relayguard account resume promo: $out"
is "$(rg_redis HGET rg:acct:promo suspended)" "no" "resume lifts the suspension"

# --- two detectors: no event counted twice ------------------------------------------------------
DETECTD1=$DETECTD_PID
start_detectd
DETECTD2=$DETECTD_PID
sleep 0.5
replay twin accept 2000 $((NOW - 30 * MIN))
replay twin hard 101 $((NOW - 20 * MIN))
settled
until_ok '[ "$(count_of detection.bounce_rate twin)" = 1 ]'
ok $? "two detectors: one detection.bounce_rate event for twin"
p=$(rg_redis HGET rg:dt:twin p)
sum=$(printf '%s\n' "$p" | tr ' ' '\n' | awk -F/ 'NF == 4 { s += $2; h += $3 } END { print s "/" h }')
is "$sum" "2000/101" "two detectors: every recipient and bounce counted once (state '$p')"
is "$(jget "$(last_of detection.bounce_rate twin)" count)" "101" "the evidence counts 101 hard bounces"
rg_stop_policyd "$DETECTD2"
ok $? "the second detector exits cleanly"

# --- a dead detector's batch is taken over ---------------------------------------------------------
# What a detector that died mid-batch leaves: entries read with NOACK (the
# group moved on past them) and its lease naming them, (START, END].
rg_stop_policyd "$DETECTD1"
ok $? "relayguard-detectd exits cleanly"
is "$(rg_redis HLEN rg:detect:leases)" 0 "a clean exit leaves no lease"
START=$(group_field last-delivered-id)
replay ghost accept 1000 $((NOW - 30 * MIN))
replay ghost hard 60 $((NOW - 20 * MIN))
rg_redis XREADGROUP GROUP detectd dead-one COUNT 100000 NOACK STREAMS rg:events '>' >/dev/null
END=$(group_field last-delivered-id)
rg_redis HSET rg:detect:leases dead-one "$START $END $(( $(rg_now_ms) - 5000 ))" >/dev/null
is "$(group_field lag)" 0 "the dead detector's entries are read: only its lease tells of them"
start_detectd
until_ok '[ "$(count_of detection.bounce_rate ghost)" = 1 ]'
ok $? "a new detector takes the dead one's batch over (its lease) and sees ghost's rate"
is "$(jget "$(last_of detection.bounce_rate ghost)" count)" "51" "the batch was fed once, in order"
until_ok '[ "$(rg_redis HLEN rg:detect:leases)" = 0 ]'
ok $? "the dead detector's lease is gone"
grep -q "took over the batch .* that dead-one left" "$DETECTD_LOG"
ok $? "the takeover is logged"

rg_stop_policyd "$DETECTD_PID"
ok $? "relayguard-detectd exits cleanly"
rg_log_clean "$DETECTD_LOG"
ok $? "no sanitizer report in the detectd log"
rg_log_clean "$POLICYD_LOG"
ok $? "no sanitizer report in the policyd log"
grep -q 'throttle: account=news detection.bounce_rate count=51 volume=1000' "$DETECTD_LOG"
ok $? "the throttle is logged with its evidence" || sed 's/^/# /' "$DETECTD_LOG" | tail -20
done_testing
