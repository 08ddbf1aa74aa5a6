#!/bin/bash
# detectd.sh - compromised-account detection end to end: policy requests to a
# real relayguard-policyd (Redis, a generated .mmdb), relayguard-detectd
# reading the events stream as its consumer group, acting on the accounts.
#
#   - a login from a new country raises a detection.new_country alert;
#   - logins from three countries within an hour suspend the account: the
#     next request gets the suspended reply; the event carries the evidence;
#   - relayguard account resume lifts it and starts the cool-down: three
#     countries again are only reported;
#   - a volume spike of an account with detect_action = throttle gives it the
#     throttle limit, which the engine applies; resume lifts it;
#   - a second detector shares the work and takes over what a killed one left.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"

RG_BIN_DETECTD="$top_builddir/detectd/relayguard-detectd"
rg_require redis-server redis-cli perl python3
rg_require_built "$RG_BIN_POLICYD" "$RG_BIN_CLI" "$RG_BIN_DETECTD"
perl -MMaxMind::DB::Writer::Tree -e1 2>/dev/null || skip_all "MaxMind::DB::Writer (libmaxmind-db-writer-perl) not installed"

rg_tmpdir
rg_start_redis
rg_mkmmdb "$RG_TMP/geo.mmdb" 127.0.0.0/8 FR 192.0.2.0/24 US 198.51.100.0/24 DE 203.0.113.0/24 BR
like "$(mmdblookup --file "$RG_TMP/geo.mmdb" --ip 198.51.100.7 country iso_code 2>/dev/null)" 'DE' \
    "the generated .mmdb puts 198.51.100.7 in DE"

RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" <<EOF
geoip_db = $RG_TMP/geo.mmdb
detect {
    floor              = 20
    k                  = 5
    countries_per_hour = 3
    throttle           = rate 3/1h
    throttle_for       = 1h
    cooldown           = 1h
    claim_idle         = 1s
}
EOF

cat >"$RG_TMP/accounts.conf" <<'EOF'
account alice {
    logins  = alice@relay.test
    domains = example.com
}
account bulk {
    logins        = bulk@relay.test
    domains       = example.com
    detect_action = throttle
}
EOF
out=$(rg_cli load "$RG_TMP/accounts.conf" 2>&1)
ok $? "relayguard load accounts.conf (detect_action is an account field)"
[ -z "$out" ] || diag "$out"

"$RG_BIN_DETECTD" -t -c "$RG_CONF" >/dev/null 2>&1
ok $? "relayguard-detectd -t accepts the detect block"
printf 'detect {\n    action = explode\n}\n' >"$RG_TMP/bad.conf"
bad=$("$RG_BIN_DETECTD" -t -c "$RG_TMP/bad.conf" 2>&1)
like "$bad" "bad.conf:2: bad action 'explode'" "a bad detect value is refused with file:line: $bad"
printf 'detect {\n    floor = 10\n    acknowledge = maybe\n}\n' >"$RG_TMP/bad.conf"
bad=$("$RG_BIN_DETECTD" -t -c "$RG_TMP/bad.conf" 2>&1)
like "$bad" "bad.conf:3: bad acknowledge 'maybe' \\(yes or no\\)" "acknowledge is yes or no: $bad"

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
# req LOGIN CLIENT: one RCPT policy request (a new message each time; the
# counter is a file, as req runs in $(...) subshells).
req() {
    local n=$(( $(cat "$RG_TMP/n" 2>/dev/null || echo 0) + 1 ))
    echo "$n" >"$RG_TMP/n"
    rg_policy_query "$POLICYD_PORT" protocol_state=RCPT protocol_name=ESMTP client_address="$2" \
        client_name=client.test sasl_method=PLAIN sasl_username="$1" sender="${1%@*}@example.com" \
        recipient="rcpt$n@example.net" instance="detect.$n" size=100
}
a=$(rg_wait_policyd_ready "$POLICYD_PORT" protocol_state=RCPT protocol_name=ESMTP \
    client_address=192.0.2.10 sasl_method=PLAIN sasl_username=alice@relay.test \
    sender=alice@example.com recipient=first@example.net instance=detect.0 size=0)
like "$a" '^(OK|DUNNO)' "policyd ready; alice from the US: '$a'"

# until SHELL-CONDITION: wait (max 10 s) until it holds.
until_ok() {
    local i
    for ((i = 0; i < 100; i++)); do eval "$1" && return 0; sleep 0.1; done
    eval "$1"
}
# The newest detection event of a type, as JSON (empty when none).
event() {
    rg_cli --json events --type "$1" --count 1 2>/dev/null |
        python3 -c '
import json, sys
try:
    e = json.load(sys.stdin)
except ValueError:
    e = []
print(json.dumps(e[-1]) if e else "")'
}
# jget JSON FIELD
jget() {
    [ -n "$1" ] || return 0
    python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2"
}
# wait_event TYPE [FIELD VALUE]: the newest event of TYPE (with FIELD = VALUE).
wait_event() {
    local wt=$1 wf=${2:-} wv=${3:-}     # seen by until_ok's eval (dynamic scope)
    until_ok '[ -n "$(event "$wt")" ] && { [ -z "$wf" ] || [ "$(jget "$(event "$wt")" "$wf")" = "$wv" ]; }'
    event "$wt"
}
redis_is() { [ "$(rg_redis "${@:1:$#-1}")" = "${!#}" ]; }

# --- a new country alerts ---------------------------------------------------
a=$(req alice@relay.test 198.51.100.7)
like "$a" '^(OK|DUNNO)' "alice from DE is accepted (detection is not in the decision path)"
e=$(wait_event detection.new_country)
ok $([ -n "$e" ]; echo $?) "detection.new_country event"
is "$(jget "$e" account)/$(jget "$e" country)/$(jget "$e" verdict)" "alice/DE/alert" \
    "new country: account, country, action alert"
is "$(jget "$e" known)" "US" "new country: evidence lists the known countries"
is "$(jget "$e" client)" "198.51.100.7" "new country: evidence names the client"
is "$(rg_redis HGET rg:acct:alice suspended)" "no" "an alert changes nothing"

# --- three countries within an hour suspend -------------------------------------
a=$(req alice@relay.test 203.0.113.5)
like "$a" '^(OK|DUNNO)' "alice from BR: '$a'"
until_ok 'redis_is HGET rg:acct:alice suspended yes'
ok $? "logins from US, DE and BR within an hour suspend alice"
e=$(wait_event detection.countries)
is "$(jget "$e" verdict)" "suspend" "detection.countries: action suspend"
c=$(jget "$e" countries)
missing=$(for cc in US DE BR; do [[ ",$c," == *",$cc,"* ]] || echo "$cc"; done)
is "$missing" "" "evidence: countries seen '$c'"
like "$(jget "$e" ips)" '203\.0\.113\.5' "evidence: addresses seen '$(jget "$e" ips)'"
a=$(req alice@relay.test 192.0.2.10)
like "$a" '^550 5\.7\.1 .*account alice is suspended' "the next request is refused: '$a'"
like "$(rg_cli account show alice)" 'suspended *(= *)?(yes|true)|"suspended": true|suspended: yes' \
    "relayguard account show: suspended" || diag "$(rg_cli account show alice)"

# --- resume, cool-down --------------------------------------------------------------
out=$(rg_cli account resume alice 2>&1)
ok $? "relayguard account resume alice: $out"
like "$out" 'not acted on until' "resume says when the cool-down ends"
a=$(req alice@relay.test 192.0.2.10)
like "$a" '^(OK|DUNNO)' "after resume alice sends again: '$a'"
cool=$(rg_redis HGET rg:dt:alice c)
ok $([ "${cool:-0}" -gt "$(rg_now_ms)" ]; echo $?) "resume starts the cool-down (rg:dt:alice c)"
req alice@relay.test 198.51.100.7 >/dev/null
req alice@relay.test 203.0.113.5 >/dev/null
e=$(wait_event detection.countries cooling yes)
is "$(jget "$e" cooling)" "yes" "three countries again within the cool-down: reported"
is "$(jget "$e" verdict)" "alert" "within the cool-down: alert only"
is "$(rg_redis HGET rg:acct:alice suspended)" "no" "within the cool-down: not suspended"
out=$(rg_cli account resume nobody 2>&1)
is "$?" "1" "resume of an unknown account: exit 1 ($out)"

# --- a volume spike throttles (detect_action = throttle) ---------------------------
# No history: the baseline is 0, the threshold the floor (20 recipients an hour).
for i in $(seq 1 21); do req bulk@relay.test 192.0.2.20 >/dev/null; done
until_ok '[ -n "$(rg_redis HGET rg:acct:bulk throttle_until)" ]'
ok $? "the 21st recipient of the hour throttles bulk"
e=$(wait_event detection.volume)
is "$(jget "$e" account)/$(jget "$e" verdict)/$(jget "$e" current)" "bulk/throttle/21" \
    "detection.volume: account, action, current volume"
is "$(jget "$e" threshold)/$(jget "$e" baseline)" "20.00/0.00" "evidence: threshold and baseline"
like "$(rg_redis HGET rg:acct:bulk throttle)" 'rate 3/1h.*name=throttle' "the throttle limit is the detect block's"
# policyd_sees: wait until policyd has loaded the current accounts generation
# (a decision notices a newer one and reloads, at most every 500 ms; these
# requests trigger it).
policyd_sees() {
    local gen
    gen=$(rg_redis GET rg:acct:gen)
    until_ok "grep -q 'accounts (generation $gen)' '$POLICYD_LOG' ||
              { req alice@relay.test 192.0.2.10 >/dev/null; false; }"
}
policyd_sees
ok $? "policyd loaded the throttled account"
# The engine applies it: 3 messages an hour, the 4th waits.
codes=
for i in 1 2 3 4; do a=$(req bulk@relay.test 192.0.2.20); codes="$codes ${a:0:3}"; done
like "$codes" '^ (OK|DUN) (OK|DUN) (OK|DUN) 451$' "throttled: three accepted, then 451 ($codes)"
like "$a" 'throttle' "the refusal names the throttle: '$a'"
out=$(rg_cli account resume bulk 2>&1)
ok $? "relayguard account resume bulk"
is "$(rg_redis HEXISTS rg:acct:bulk throttle_until)" "0" "resume clears the throttle"
policyd_sees
a=$(req bulk@relay.test 192.0.2.20)
like "$a" '^(OK|DUNNO)' "after resume bulk sends again: '$a'"

# --- every entry is acknowledged; a second detector takes over a dead one's ---------
# lag: entries of the stream the group has not read yet
group_lag() { rg_redis XINFO GROUPS rg:events | awk 'p { print; exit } /^lag$/ { p = 1 }'; }
until_ok '[ "$(group_lag)" = 0 ] && [ "$(rg_redis XPENDING rg:events detectd | head -1)" = 0 ]'
ok $? "relayguard-detectd read and acknowledged every event"
rg_stop_policyd "$DETECTD_PID"
ok $? "relayguard-detectd stops on SIGTERM with status 0"
# Entries read by a consumer that then died: claimed by XREADGROUP, never acked.
rg_redis HSET rg:acct:carol logins carol@relay.test domains example.com suspended no >/dev/null
rg_redis SADD rg:accts carol >/dev/null
for cc in 192.0.2.30:US 198.51.100.30:DE 203.0.113.30:BR; do
    rg_redis XADD rg:events '*' ts "$(rg_now_ms)" node test stage RCPT account carol \
        login carol@relay.test client "${cc%:*}" country "${cc#*:}" verdict accept reason ok >/dev/null
done
rg_redis XREADGROUP GROUP detectd ghost COUNT 100 STREAMS rg:events '>' >/dev/null
is "$(rg_redis XPENDING rg:events detectd | head -1)" "3" "three events pending for a dead consumer"
start_detectd
until_ok 'redis_is HGET rg:acct:carol suspended yes'
ok $? "a new detector takes the dead one's events over (XAUTOCLAIM) and suspends carol"
until_ok '[ "$(rg_redis XPENDING rg:events detectd | head -1)" = 0 ]'
ok $? "and acknowledges them"

rg_stop_policyd "$DETECTD_PID"
ok $? "relayguard-detectd exits cleanly"

# acknowledge = no: read with NOACK; detections work the same, nothing pends.
sed 's/^    claim_idle         = 1s$/    claim_idle         = 1s\n    acknowledge        = no/' "$RG_CONF" >"$RG_TMP/noack.conf"
grep -q 'acknowledge *= no' "$RG_TMP/noack.conf"
ok $? "a configuration with acknowledge = no"
RG_CONF_SAVED=$RG_CONF; RG_CONF="$RG_TMP/noack.conf"
start_detectd
RG_CONF=$RG_CONF_SAVED
until_ok '[ "$(group_lag)" = 0 ]'
rg_redis HSET rg:acct:dave logins dave@relay.test domains example.com suspended no >/dev/null
rg_redis SADD rg:accts dave >/dev/null
for cc in 192.0.2.40:US 198.51.100.40:DE 203.0.113.40:BR; do
    rg_redis XADD rg:events '*' ts "$(rg_now_ms)" node test stage rcpt account dave \
        login dave@relay.test client "${cc%:*}" country "${cc#*:}" verdict accept reason ok >/dev/null
done
until_ok 'redis_is HGET rg:acct:dave suspended yes'
ok $? "acknowledge = no: three countries suspend dave"
is "$(rg_redis XPENDING rg:events detectd | head -1)" "0" "acknowledge = no: nothing pends"
rg_stop_policyd "$DETECTD_PID"
ok $? "relayguard-detectd (NOACK) exits cleanly"
rg_log_clean "$DETECTD_LOG"
ok $? "no sanitizer report in the detectd log"
rg_log_clean "$POLICYD_LOG"
ok $? "no sanitizer report in the policyd log"
grep -q 'suspend: account=alice detection.countries' "$DETECTD_LOG"
ok $? "the suspension is logged" || sed 's/^/# /' "$DETECTD_LOG" | tail -20
done_testing
