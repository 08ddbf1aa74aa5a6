#!/bin/bash
# config.sh - the webhooks block and the account webhook fields: bad values
# are errors naming the file and line; relayguard-webhookd -t; events
# --type; webhooks commands against a store that is down.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/webhookd/common.sh"

conf() {   # conf BODY-OF-WEBHOOKS-BLOCK -> $RG_TMP/c.conf
    { echo "store = $REDIS_URL"; echo "log = stderr"; echo "webhooks {"; printf '%s\n' "$@"; echo "}"; } \
        >"$RG_TMP/c.conf"
}
check() {  # check LABEL REGEX BODY..: check-config fails with a message matching REGEX
    local label=$1 want=$2 out rc
    shift 2
    conf "$@"
    out=$("$RG_BIN_CLI" -c "$RG_TMP/c.conf" check-config 2>&1); rc=$?
    is "$rc" 2 "$label: check-config exit 2"
    like "$out" "$want" "$label: message"
}

conf "url = https://hooks.example.com/a" "url = http://127.0.0.1:9/b" "secret = 0123456789abcdef" \
     "events = decision.reject, detection*" "timeout = 5s" "retry_for = 48h" "concurrency = 8" "batch_max = 50"
out=$("$RG_BIN_CLI" -c "$RG_TMP/c.conf" check-config 2>&1)
ok $? "a full webhooks block is valid (two url lines)"
out=$("$RG_BIN_WEBHOOKD" -t -c "$RG_TMP/c.conf" 2>&1)
ok $? "relayguard-webhookd -t accepts it"
like "$out" "configuration OK" "relayguard-webhookd -t says so"

check "no secret" "c\.conf:3: block 'webhooks' needs a secret" "url = https://h.example/a"
check "short secret" "c\.conf:5: secret is too short" "url = https://h.example/a" "secret = short"
check "bad url" "c\.conf:5: bad url 'ftp://h.example/a'" "secret = 0123456789abcdef" "url = ftp://h.example/a"
check "url with a blank" "c\.conf:5: bad url" "secret = 0123456789abcdef" "url = http://h.example/a b"
check "bad events" "c\.conf:6: bad events 'Decision!'" "secret = 0123456789abcdef" "url = http://h.example/" "events = Decision!"
check "bad timeout" "c\.conf:6: bad timeout 'soon'" "secret = 0123456789abcdef" "url = http://h.example/" "timeout = soon"
check "bad concurrency" "c\.conf:5: bad concurrency '0' \(1 to 1000\)" "secret = 0123456789abcdef" "concurrency = 0"
check "unknown key" "c\.conf:5: unknown key 'retries' in block 'webhooks'" "secret = 0123456789abcdef" "retries = 5"
check "repeated key" "c\.conf:5: 'secret' is already set at line 4" "secret = 0123456789abcdef" "secret = 0123456789abcdeg"

printf 'store = %s\nlog = stderr\n' "$REDIS_URL" >"$RG_TMP/none.conf"
out=$("$RG_BIN_WEBHOOKD" -f -c "$RG_TMP/none.conf" 2>&1); rc=$?
is "$rc" 1 "webhookd without a webhooks block: exit 1"
like "$out" "no 'webhooks' block" "... and says why"

# account fields
printf 'account a {\n    domains = example.com\n    webhook_url = gopher://x/\n}\n' >"$RG_TMP/a.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/none.conf" check-config --accounts "$RG_TMP/a.conf" 2>&1)
like "$out" "a\.conf:3: bad webhook_url 'gopher://x/'" "bad webhook_url: file and line"
printf 'account a {\n    domains = example.com\n    webhook_secret = short\n}\n' >"$RG_TMP/a.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/none.conf" check-config --accounts "$RG_TMP/a.conf" 2>&1)
like "$out" "a\.conf:3: bad webhook_secret" "short webhook_secret: file and line"
printf 'account a {\n    domains = example.com\n    webhook_events = a b!\n}\n' >"$RG_TMP/a.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/none.conf" check-config --accounts "$RG_TMP/a.conf" 2>&1)
like "$out" "a\.conf:3: bad webhook_events" "bad webhook_events: file and line"

# relayguard events --type, on events of two kinds: decisions and one with a type of its own
rg_redis xadd rg:events '*' ts 1795527901000 node n stage rcpt account alice verdict reject reason sender_domain >/dev/null
rg_redis xadd rg:events '*' ts 1795527902000 node n stage rcpt account bob verdict accept reason ok >/dev/null
rg_redis xadd rg:events '*' ts 1795527903000 node n type detection.spike account alice verdict '' reason volume >/dev/null
ev() { "$RG_BIN_CLI" -c "$RG_TMP/none.conf" --json events "$@" | python3 -c 'import json,sys; print(" ".join(e["account"] + ":" + e["reason"] for e in json.load(sys.stdin)))'; }
is "$(ev --type decision.reject)" "alice:sender_domain" "events --type decision.reject"
is "$(ev --type decision)" "alice:sender_domain bob:ok" "events --type decision: every decision"
is "$(ev --type 'detection*')" "alice:volume" "events --type 'detection*': the event's own type"
is "$(ev --type 'decision.*,detection' --account alice)" "alice:sender_domain alice:volume" "events --type with --account"
"$RG_BIN_CLI" -c "$RG_TMP/none.conf" events --type 'x y!' >/dev/null 2>&1
is "$?" 2 "events --type with a bad pattern: exit 2"
"$RG_BIN_CLI" -c "$RG_TMP/none.conf" events --follow --count 0 --type decision.reject >"$RG_TMP/follow.out" 2>&1 &
fpid=$!
rg_on_exit "rg_stop_pid $fpid"
sleep 0.5
rg_redis xadd rg:events '*' ts 1795527904000 node n stage rcpt qid FOLLOW-A account carol verdict accept reason ok >/dev/null
rg_redis xadd rg:events '*' ts 1795527905000 node n stage rcpt qid FOLLOW-R account carol verdict reject reason suppressed >/dev/null
rg_wait_for 5 grep -q FOLLOW-R "$RG_TMP/follow.out"
is "$(grep -c FOLLOW "$RG_TMP/follow.out"):$(grep -o 'FOLLOW-[AR]' "$RG_TMP/follow.out")" "1:FOLLOW-R" \
   "events --follow --type shows only the matching new events"
rg_stop_pid $fpid

# webhooks commands: usage and a store that is down
"$RG_BIN_CLI" -c "$RG_TMP/none.conf" webhooks frob >/dev/null 2>&1
is "$?" 2 "webhooks with an unknown command: exit 2"
"$RG_BIN_CLI" -c "$RG_TMP/none.conf" webhooks retry 12 --all >/dev/null 2>&1
is "$?" 2 "webhooks retry ID --all: exit 2"
"$RG_BIN_CLI" -c "$RG_TMP/none.conf" webhooks list-dead >/dev/null 2>&1
is "$?" 1 "webhooks list-dead with no dead letters: exit 1"
printf 'store = redis://127.0.0.1:%s/0\nlog = stderr\n' "$(rg_free_port)" >"$RG_TMP/down.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/down.conf" webhooks status 2>&1)
is "$?" 3 "webhooks status with the store down: exit 3"
like "$out" "Connection refused" "... with the reason"
done_testing
