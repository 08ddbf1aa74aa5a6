#!/bin/bash
# two.sh - two relayguard-webhookd processes share one events stream: every
# event is delivered, none twice, each account's in order; when one of them
# is killed (SIGKILL) the other takes over its pending entries and leases.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/webhookd/common.sh"

wh_start_receiver main
CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$CONF" <<EOF
webhooks {
    url           = http://127.0.0.1:$RECV_PORT/global
    secret        = $SECRET
    timeout       = 1s
    concurrency   = 4
    batch_max     = 20
    retry_initial = 200ms
    retry_max     = 500ms
    claim_idle    = 2s
}
EOF
accounts=
for a in alice bob carol dave; do
    accounts+="account $a {
    logins  = $a@relay.test
    domains = example.com
    webhook_url = http://127.0.0.1:$RECV_PORT/$a
}
"
done
printf '%s' "$accounts" | "$RG_BIN_CLI" -c "$CONF" load /dev/stdin >/dev/null
ok $? "four accounts, each with its own URL"
rg_start_policyd "$CONF"
wh_start A "$CONF"
A_PID=$WH_PID A_LOG=$WH_LOG
wh_start B "$CONF"
B_PID=$WH_PID B_LOG=$WH_LOG

# --- both running: 600 events in bursts
for round in 1 2 3 4 5 6; do
    pids=()
    for a in alice bob carol dave; do
        decide "$a@relay.test" "$a@example.com" 25 "r$round" &
        pids+=($!)
    done
    wait "${pids[@]}"
done
n=$(stream_ids | wc -l)
is "$n" 600 "the engine wrote 600 events"
wait_acked "$RECV_DIR" /global 600 30
is "$(report "$RECV_DIR" ids /global)" "$(stream_ids)" "the global URL got every event"
for a in alice bob carol dave; do
    wait_acked "$RECV_DIR" "/$a" 150 10
done
is "$(for a in alice bob carol dave; do report "$RECV_DIR" acked "/$a"; done | tr '\n' ' ')" \
   "150 150 150 150 " "each account's URL got its 150 events"
is "$(report "$RECV_DIR" acked-twice)" 0 "two processes: no event delivered twice"
is "$(report "$RECV_DIR" order /global)" 0 "two processes: each account's events in order at the global URL"
is "$(for a in alice bob carol dave; do report "$RECV_DIR" order "/$a"; done | tr '\n' ' ')" \
   "0 0 0 0 " "... and at each account's URL"
a_sent=$(grep -c 'delivered' "$A_LOG") b_sent=$(grep -c 'delivered' "$B_LOG")
ok "$([ "$a_sent" -gt 0 ] && [ "$b_sent" -gt 0 ]; echo $?)" \
   "both processes did part of the work (POSTs: $a_sent and $b_sent)"

# --- one dies in the middle: SIGKILL, no clean-up at all
echo "slow 0.3" >"$RECV_DIR/mode.slow"
for round in 1 2 3; do
    pids=()
    for a in alice bob carol dave; do
        decide "$a@relay.test" "$a@example.com" 25 "k$round" &
        pids+=($!)
    done
    wait "${pids[@]}"
    [ "$round" = 1 ] && { sleep 0.2; kill -9 "$A_PID"; wait "$A_PID"; } 2>/dev/null
done
rm -f "$RECV_DIR/mode.slow"
n=$(stream_ids | wc -l)
is "$n" 900 "300 more events, written while webhookd A was killed"
# B takes over A's pending stream entries after claim_idle and its queue
# leases when they end (2 x timeout + 5 s)
wait_acked "$RECV_DIR" /global 900 40
is "$(report "$RECV_DIR" ids /global)" "$(stream_ids)" "after the kill, every event still reached the global URL"
for a in alice bob carol dave; do
    wait_acked "$RECV_DIR" "/$a" 225 20
done
is "$(for a in alice bob carol dave; do report "$RECV_DIR" acked "/$a"; done | tr '\n' ' ')" \
   "225 225 225 225 " "... and every account's URL"
dups=$(report "$RECV_DIR" acked-twice)
# At-least-once: only events in flight at the kill (answered 2xx to A,
# which died before recording it) may come again: at most concurrency x batch_max.
ok "$([ "$dups" -le 80 ]; echo $?)" "sent again after the kill: $dups events, at most those A had in flight"
is "$("$RG_BIN_CLI" -c "$CONF" --json webhooks status | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["queued"], d["sending"], d["dead"])')" \
   "0 0 0" "nothing left queued, leased or dead"

wh_stop "$B_PID" "$B_LOG"
ok $? "webhookd B stops cleanly"
done_testing
