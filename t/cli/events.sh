#!/bin/bash
# relayguard events and stats on seeded stream entries and counter hashes.
. "$top_srcdir/t/cli/common.sh"

ev() {  # ev TS_MS NODE QID ACCOUNT VERDICT CODE REASON SENDER RCPT NRCPT DETAIL
    rg_redis xadd rg:events '*' ts "$1" node "$2" stage rcpt qid "$3" account "$4" login "$4" \
        client 192.0.2.1 country US sender "$8" rcpt "$9" nrcpt "${10}" size 0 \
        verdict "$5" code "$6" reason "$7" detail "${11}" >/dev/null
}
# 2026-11-24T13:45:01Z
ev 1795527901000 node1 4F1A2B3C alice reject 553 sender_domain a@x b@y 1 "domain x not allowed"
ev 1795527902000 node1 4F1A2B3D bob accept 250 ok c@bob.test "" 3 ""
ev 1795527903000 node2 4F1A2B3E alice tempfail 451 rate_limit a@example.com d@z 1 "retry in 36s"

run events
is "$RC" 0 "events: exit 0"
is "$(printf '%s\n' "$OUT" | head -1)" \
   "2026-11-24T13:45:01Z node1 4F1A2B3C reject alice <a@x> -> <b@y> 553 sender_domain domain x not allowed" \
   "events: plain line format, oldest first"
like "$(printf '%s\n' "$OUT" | sed -n 2p)" "accept bob <c@bob.test> -> \(3 rcpt\) 250 ok$" "events: message-level event"
run events --count 1
is "$(printf '%s\n' "$OUT" | wc -l):$(printf '%s' "$OUT" | cut -d' ' -f3)" "1:4F1A2B3E" "events --count 1: the newest"
run events --account alice
is "$(printf '%s\n' "$OUT" | wc -l)" 2 "events --account"
run events --verdict reject
like "$OUT" " 4F1A2B3C reject " "events --verdict"
is "$(printf '%s\n' "$OUT" | wc -l)" 1 "events --verdict: one line"
run events --verdict maybe
is "$RC" 2 "events bad --verdict: exit 2"
run --json events
json_ok "events --json parses"
is "$(printf '%s' "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d), d[0]["qid"], d[0]["time"])')" \
   "3 4F1A2B3C 2026-11-24T13:45:01Z" "events --json: values"

# --follow: new events arrive as they are added
"$RG_BIN_CLI" -c "$CONF" events --follow --count 0 > "$RG_TMP/follow.out" 2>&1 &
fpid=$!
rg_on_exit "rg_stop_pid $fpid"
sleep 0.5
ev 1795527904000 node3 FOLLOW1 carol reject 550 suppressed a@c.test x@y 1 ""
for i in $(seq 50); do grep -q FOLLOW1 "$RG_TMP/follow.out" && break; sleep 0.1; done
like "$(cat "$RG_TMP/follow.out")" "node3 FOLLOW1 reject carol" "events --follow shows a new event"
is "$(wc -l < "$RG_TMP/follow.out")" 1 "events --follow --count 0: no old events"
rg_stop_pid $fpid

# --- stats
# The windows are calendar hours: do not seed in the last seconds of an hour,
# or the check would run in the next one.
while [ "$(date -u +%M%S)" -ge 5950 ]; do sleep 1; done
h0=$(date -u +%Y%m%d%H)
h3=$(date -u -d '-3 hours' +%Y%m%d%H)
h30=$(date -u -d '-30 hours' +%Y%m%d%H)
h200=$(date -u -d '-200 hours' +%Y%m%d%H)
rg_redis hset "rg:st:*:$h0" accept 5 reject 2 r:sender_domain 2 rcpt 9 >/dev/null
rg_redis hset "rg:st:*:$h3" accept 10 tempfail 1 r:rate_limit 1 >/dev/null
rg_redis hset "rg:st:*:$h30" accept 100 reject 4 r:sender_domain 4 >/dev/null
rg_redis hset "rg:st:*:$h200" accept 1000 >/dev/null
rg_redis hset "rg:st:alice:$h0" reject 2 r:sender_domain 2 >/dev/null

run stats
is "$RC" 0 "stats: exit 0"
like "$OUT" "accepted +5 +15 +115" "stats: accepted over 1h/24h/7d"
like "$OUT" "rejected +2 +2 +6" "stats: rejected"
like "$OUT" "tempfailed +0 +1 +1" "stats: tempfailed"
like "$OUT" "sender_domain +2 +2 +6" "stats: by reason"
like "$OUT" "rate_limit +0 +1 +1" "stats: second reason"
run stats alice
like "$OUT" "^alice " "stats ACCOUNT: header"
like "$OUT" "rejected +2 +2 +2" "stats ACCOUNT: its counters only"
run --json stats
json_ok "stats --json parses"
is "$(printf '%s' "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["7d"]["accepted"], d["24h"]["reasons"]["sender_domain"], d["1h"]["recipients"])')" \
   "115 2 9" "stats --json: values"

done_testing
