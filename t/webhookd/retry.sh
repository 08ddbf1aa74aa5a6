#!/bin/bash
# retry.sh - at-least-once: a receiver that is down for a while, answers
# 500 or never answers still gets every event once it is back, and an event
# it acknowledged is never sent to it again; after retry_for the events go
# to the dead letters and `relayguard webhooks retry` sends them again.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/webhookd/common.sh"

wh_start_receiver main
MAIN_PORT=$RECV_PORT MAIN_DIR=$RECV_DIR MAIN_PID=$RECV_PID
DEAD_PORT=$(rg_free_port)      # nothing listens here until the end
CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$CONF" <<EOF
webhooks {
    url           = http://127.0.0.1:$MAIN_PORT/global
    secret        = $SECRET
    timeout       = 1s
    retry_initial = 200ms
    retry_max     = 500ms
    retry_for     = 8s
}
EOF
"$RG_BIN_CLI" -c "$CONF" load /dev/stdin >/dev/null <<EOF
account alice {
    logins  = alice@relay.test
    domains = example.com
}
account carol {
    logins      = carol@relay.test
    domains     = example.com
    webhook_url = http://127.0.0.1:$DEAD_PORT/carol
}
EOF
rg_start_policyd "$CONF"
wh_start one "$CONF"

# carol's events go to the global URL and to hers, where nobody answers
decide carol@relay.test carol@example.com 2 dead

# --- 1. the receiver is down for a while, then back
decide alice@relay.test alice@example.com 3 up
wait_acked "$MAIN_DIR" /global 5
is "$(report "$MAIN_DIR" acked /global)" 5 "receiver up: 5 events delivered"
rg_stop_pid "$MAIN_PID"
decide alice@relay.test alice@example.com 20 down
rg_wait_for 10 grep -q "deferred .*Couldn't connect\|deferred .*Connection refused\|deferred .*Failed to connect" "$WH_LOG"
ok $? "receiver down: webhookd defers and retries"
sleep 1
wh_start_receiver main "$MAIN_PORT"
MAIN_PID=$RECV_PID
wait_acked "$MAIN_DIR" /global 25 20
is "$(report "$MAIN_DIR" acked /global)" 25 "receiver back: every event delivered"
is "$(report "$MAIN_DIR" acked-twice)" 0 "no event the receiver acknowledged was sent to it again"
is "$(report "$MAIN_DIR" order /global)" 0 "in order, across the outage"

# --- 2. 500s are retried
echo "500 3" >"$MAIN_DIR/mode"
decide alice@relay.test alice@example.com 5 e500
wait_acked "$MAIN_DIR" /global 30 20
is "$(report "$MAIN_DIR" status /global 500)" 3 "the receiver answered 500 three times"
is "$(report "$MAIN_DIR" acked /global)" 30 "... and every event was delivered after them"
like "$(cat "$WH_LOG")" "deferred 5 events: HTTP 500: failing on purpose" "the log says why an attempt failed"

# --- 3. a receiver that never answers: timeout, then retried
echo "hang 1" >"$MAIN_DIR/mode"
decide alice@relay.test alice@example.com 2 hang
wait_acked "$MAIN_DIR" /global 32 20
is "$(report "$MAIN_DIR" status /global 0)" 1 "one request was left unanswered"
is "$(report "$MAIN_DIR" acked /global)" 32 "... timed out and was sent again"
like "$(cat "$WH_LOG")" "deferred [0-9]+ events?: .*timed out" "the log names the timeout"
is "$(report "$MAIN_DIR" acked-twice)" 0 "still nothing acknowledged twice"
is "$(report "$MAIN_DIR" bad-sig)" 0 "every attempt was signed afresh and verifies"

# --- 4. carol's URL never answers: after retry_for her events are dead letters
rg_wait_for 20 sh -c "'$RG_BIN_CLI' -c '$CONF' webhooks list-dead | grep -q carol"
"$RG_BIN_CLI" -c "$CONF" --json webhooks list-dead >"$RG_TMP/dead.json"
is "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(len(d), sorted(set(x["account"] for x in d)), all(x["attempts"] > 1 for x in d),
      sorted(set(x["event"]["account"] for x in d)), all(x["url"].endswith("/carol") for x in d))' "$RG_TMP/dead.json")" \
   "2 ['carol'] True ['carol'] True" "carol's 2 events are dead letters, with their URL, attempts and event"
ndead=2
"$RG_BIN_CLI" -c "$CONF" webhooks retry 999999 >/dev/null 2>&1
is "$?" 1 "webhooks retry of an unknown id: exit 1"
"$RG_BIN_CLI" -c "$CONF" webhooks retry >/dev/null 2>&1
is "$?" 2 "webhooks retry without an id: usage error"
wh_start_receiver carol "$DEAD_PORT"
CAROL_DIR=$RECV_DIR
out=$("$RG_BIN_CLI" -c "$CONF" webhooks retry --all)
like "$out" "^$ndead dead letters? back in" "webhooks retry --all puts them back"
wait_acked "$CAROL_DIR" /carol "$ndead" 20
is "$(report "$CAROL_DIR" acked /carol)" "$ndead" "the retried dead letters are delivered"
"$RG_BIN_CLI" -c "$CONF" webhooks list-dead >/dev/null
is "$?" 1 "the dead-letter list is empty again (exit 1)"

# drop: dead letters are kept until retried or dropped
rg_stop_pid "$RECV_PID"          # carol's receiver goes away again
decide carol@relay.test carol@example.com 1 dead2
rg_wait_for 20 sh -c "'$RG_BIN_CLI' -c '$CONF' webhooks list-dead | grep -q carol"
id=$("$RG_BIN_CLI" -c "$CONF" webhooks list-dead | awk 'NR == 1 { print $1 }')
is "$("$RG_BIN_CLI" -c "$CONF" webhooks drop "$id")" "1 dead letter deleted" "webhooks drop ID"
"$RG_BIN_CLI" -c "$CONF" webhooks drop "$id" >/dev/null 2>&1
is "$?" 1 "webhooks drop of an id already gone: exit 1"
"$RG_BIN_CLI" -c "$CONF" webhooks list-dead >/dev/null
is "$?" 1 "nothing dead any more"

wh_stop "$WH_PID" "$WH_LOG"
ok $? "webhookd stops cleanly (exit 0, no sanitizer report)"
done_testing
