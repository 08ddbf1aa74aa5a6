#!/bin/bash
# lost.sh - the events stream is capped (events_max): entries trimmed while
# no relayguard-webhookd ran are never lost silently: they are logged and
# counted, and everything still in the stream is delivered.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/webhookd/common.sh"

wh_start_receiver main
CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$CONF" <<EOF
events_max = 10
webhooks {
    url    = http://127.0.0.1:$RECV_PORT/global
    secret = $SECRET
}
EOF
printf 'account alice {\n    logins = alice@relay.test\n    domains = example.com\n}\n' |
    "$RG_BIN_CLI" -c "$CONF" load /dev/stdin >/dev/null
rg_start_policyd "$CONF"

# The group exists (webhookd ran once), then webhookd is down while 1000
# decisions are written into a stream capped at about 10 entries.
wh_start first "$CONF"
wh_stop "$WH_PID" "$WH_LOG"
ok $? "webhookd ran once and stopped"
decide alice@relay.test alice@example.com 1000 burst
kept=$(rg_redis xlen rg:events)
ok "$([ "$kept" -lt 1000 ]; echo $?)" "the capped stream kept $kept of 1000 events"

wh_start second "$CONF"
wait_acked "$RECV_DIR" /global "$kept" 20
is "$(report "$RECV_DIR" ids /global)" "$(stream_ids)" "every event still in the stream is delivered"
rg_wait_for 15 grep -q 'trimmed from rg:events' "$WH_LOG"
ok $? "webhookd logs that entries were trimmed before it read them"
like "$(grep 'trimmed from rg:events' "$WH_LOG")" "error: $((1000 - kept)) events \(after " \
     "the log gives the number lost and the range"
st=$("$RG_BIN_CLI" -c "$CONF" --json webhooks status)
is "$(printf '%s' "$st" | python3 -c 'import json,sys; print(json.load(sys.stdin)["lost"])')" \
   "$((1000 - kept))" "webhooks status counts them as lost"
# counted once, however often the check runs
sleep 11
is "$("$RG_BIN_CLI" -c "$CONF" --json webhooks status | python3 -c 'import json,sys; print(json.load(sys.stdin)["lost"])')" \
   "$((1000 - kept))" "the loss is counted once"
wh_stop "$WH_PID" "$WH_LOG"
ok $? "webhookd stops cleanly"
done_testing
