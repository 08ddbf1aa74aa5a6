#!/bin/bash
# deliver.sh - relayguard-webhookd sends the engine's events to a real HTTP
# receiver on loopback: global and per-account URLs, type filters, the
# signature (checked by the receiver as the documentation says), the JSON
# body, once each and in order.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/webhookd/common.sh"

rg_require curl openssl
wh_start_receiver main "" /alice=alice-secret-0123456789
CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$CONF" <<EOF
webhooks {
    url           = http://127.0.0.1:$RECV_PORT/global
    secret        = $SECRET
    retry_initial = 200ms
    retry_max     = 1s
}
EOF
accounts() {   # accounts [BOB_URL]
    cat <<EOF
account alice {
    logins         = alice@relay.test
    domains        = example.com
    webhook_url    = http://127.0.0.1:$RECV_PORT/alice
    webhook_events = decision.reject
    webhook_secret = alice-secret-0123456789
}
account bob {
    logins      = bob@relay.test
    domains     = example.org
    webhook_url = ${1:-}
}
EOF
}
accounts >"$RG_TMP/accounts.conf"
"$RG_BIN_CLI" -c "$CONF" load "$RG_TMP/accounts.conf" >/dev/null
ok $? "accounts with webhook fields load"
is "$(rg_redis hget rg:acct:alice webhook_events)" "decision.reject" \
   "the account keeps its webhook fields in Redis"

rg_start_policyd "$CONF"
wh_start one "$CONF"

decide alice@relay.test alice@example.com 5 a-ok
decide alice@relay.test mallory@foreign.example 3 a-bad
decide bob@relay.test bob@example.org 4 b-ok
is "$(stream_ids | wc -l)" 12 "the engine wrote 12 decision events"

wait_acked "$RECV_DIR" /global 12
is "$(report "$RECV_DIR" ids /global)" "$(stream_ids)" "the global URL got every event of the stream"
wait_acked "$RECV_DIR" /alice 3
is "$(report "$RECV_DIR" ids /alice)" "$(stream_ids alice reject)" \
   "alice's URL got alice's refusals only (webhook_events = decision.reject)"
is "$(report "$RECV_DIR" types /alice)" "decision.reject" "the type of a refusal is decision.reject"
is "$(report "$RECV_DIR" types /global)" "decision.accept decision.reject" "the global URL gets every type"
is "$(report "$RECV_DIR" bad-sig)" 0 "every signature verifies (the global secret, and alice's own)"
is "$(report "$RECV_DIR" acked-twice)" 0 "no event was acknowledged twice"
is "$(report "$RECV_DIR" order /global)" 0 "each account's events arrived in order"

# The body: a JSON array of event objects.
tail -n +2 "$RECV_DIR/last-global" >"$RG_TMP/body.json"
head -n 1 "$RECV_DIR/last-global" >"$RG_TMP/sig"
is "$(python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))[0]
keys = ("id", "account", "verdict", "code", "reason", "sender", "rcpt", "node")
print(type(e["ts"]).__name__, e["type"].split(".")[0], e["time"][-1], all(k in e for k in keys))' \
   "$RG_TMP/body.json")" \
   "int decision Z True" "the body is an array of events with id, type, time and the stream fields"

# The shell check of relayguard-webhookd(8), on the last request as received.
doc_check() {   # doc_check SECRET: the man page's lines, verbatim
    local SECRET=$1 SIG ts v1 mac
    SIG=$(cat "$RG_TMP/sig")
    cd "$RG_TMP" || return 1
    ts=${SIG#t=}; ts=${ts%%,*}; v1=${SIG#*v1=}
    mac=$( { printf '%s.' "$ts"; cat body.json; } |
           openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
    [ "$mac" = "$v1" ] && [ $(( $(date +%s) - ts )) -le 300 ] && echo valid
}
is "$(doc_check "$SECRET")" valid "the man page's shell check verifies a real request"
is "$(doc_check "not-the-secret-0123")" "" "... and fails with another secret"

# The receiver's check has teeth: another body or an old timestamp fails.
sign() {   # sign BODY AGE_SECONDS -> header value
    python3 - "$SECRET" "$1" "$2" <<'PY'
import hashlib, hmac, sys, time
secret, body, age = sys.argv[1].encode(), sys.argv[2].encode(), int(sys.argv[3])
t = str(int(time.time()) - age)
print("t=%s,v1=%s" % (t, hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()))
PY
}
post() {   # post SIGNATURE BODY -> HTTP status
    curl -s -o /dev/null -w '%{http_code}' -H "X-Relayguard-Signature: $1" --data-binary "$2" \
        "http://127.0.0.1:$RECV_PORT/probe"
}
good=$(sign '[{"id":"1-0"}]' 0)
is "$(post "$good" '[{"id":"1-0"}]')" 200 "receiver: a correctly signed body is accepted"
is "$(post "$good" '[{"id":"2-0"}]')" 400 "receiver: the same signature over another body is refused"
is "$(post "$(sign '[{"id":"1-0"}]' 3600)" '[{"id":"1-0"}]')" 400 "receiver: a replay an hour old is refused"

# An account change reaches webhookd without a restart: bob gets a URL.
accounts "http://127.0.0.1:$RECV_PORT/bob" >"$RG_TMP/accounts.conf"
"$RG_BIN_CLI" -c "$CONF" load "$RG_TMP/accounts.conf" >/dev/null
sleep 1.5      # webhookd looks at rg:acct:gen every second
decide bob@relay.test bob@example.org 2 b-new
wait_acked "$RECV_DIR" /bob 2
is "$(report "$RECV_DIR" acked /bob)" 2 "a URL added to an account is used for its next events"

# Busy: 400 events at once go out in batches (several events per POST).
decide bob@relay.test bob@example.org 400 b-busy
wait_acked "$RECV_DIR" /global 414 30
is "$(report "$RECV_DIR" acked /global)" 414 "400 more events delivered"
max=$(report "$RECV_DIR" max-batch /global)
ok "$([ "$max" -gt 1 ] && [ "$max" -le 100 ]; echo $?)" \
   "busy: events are batched, at most batch_max per POST (largest: $max)"
is "$(report "$RECV_DIR" acked-twice)" 0 "still no event acknowledged twice"
is "$(report "$RECV_DIR" order /global)" 0 "still in order per account"
nreq=$(report "$RECV_DIR" requests) nconn=$(report "$RECV_DIR" connections)
ok "$([ "$nconn" -lt "$nreq" ] && [ "$nconn" -le 32 ]; echo $?)" \
   "connections are reused: $nreq requests came on $nconn connections (concurrency 32)"
wait_acked "$RECV_DIR" /bob 402 10

# SIGHUP rereads relayguard.conf: the global URL now wants refusals only.
sed -i 's/^    retry_max     = 1s$/&\n    events        = decision.reject/' "$CONF"
kill -HUP "$WH_PID"
rg_wait_for 5 grep -q 'SIGHUP: reloading' "$WH_LOG"
ok $? "SIGHUP: webhookd rereads its configuration"
decide bob@relay.test bob@example.org 1 hup-ok
decide bob@relay.test mallory@foreign.example 1 hup-bad
wait_acked "$RECV_DIR" /global 415 10
sleep 0.5
is "$(report "$RECV_DIR" acked /global)" 415 "after the reload the global URL gets the refusal, not the accepted event"
is "$(report "$RECV_DIR" acked /bob)" 404 "bob's own URL (no filter) still gets both"

st=$("$RG_BIN_CLI" -c "$CONF" --json webhooks status)
is "$(printf '%s' "$st" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["queued"], d["dead"], d["delivered"])')" \
   "0 0 $((415 + 3 + 404))" "webhooks status: nothing queued, nothing dead, every delivery counted"

wh_stop "$WH_PID" "$WH_LOG"
ok $? "SIGTERM: webhookd stops cleanly"
is "$(rg_redis xinfo consumers rg:events webhookd | grep -c '^name$')" 0 \
   "a clean stop leaves no consumer behind in the group"
rg_log_clean "$WH_LOG"
ok $? "webhookd log free of sanitizer reports"
done_testing
