#!/bin/bash
# cluster.sh - two Postfix nodes, each with its own relayguard-policyd, share
# one Redis: a limit of N allows N messages in total across both nodes, one
# after another and all at once.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"

rg_require redis-server redis-cli postfix smtp-sink saslpasswd2 swaks
rg_require_built "$RG_BIN_POLICYD" "$RG_BIN_CLI"

rg_tmpdir
rg_start_redis
rg_start_sink

for n in 1 2; do
    rg_write_conf "$RG_TMP/node$n.conf" </dev/null
    sed -i "s/^node = .*/node = node$n/" "$RG_TMP/node$n.conf"
done
RG_CONF="$RG_TMP/node1.conf"

cat >"$RG_TMP/accounts.conf" <<'EOF'
account shared {
    logins  = shared@relay.test
    domains = example.com
    limit   = quota 6/1d name=q6
}
account burst {
    logins  = burst@relay.test
    domains = example.com
    limit   = rate 5/1h name=r5
}
account plain {
    logins  = plain@relay.test
    domains = example.com
}
EOF
out=$(rg_cli load "$RG_TMP/accounts.conf" 2>&1)
ok $? "relayguard load accounts.conf"
[ -z "$out" ] || diag "$out"

probe=(protocol_state=RCPT client_address=127.0.0.1 sasl_username=plain@relay.test
       sender=plain@example.com recipient=y@example.net size=0)
rg_start_policyd "$RG_TMP/node1.conf" policyd1
PD1_PID=$POLICYD_PID PD1_LOG=$POLICYD_LOG
rg_start_postfix n1
a=$(rg_wait_policyd_ready "$POLICYD_PORT" "${probe[@]}" instance=probe.1)
like "$a" '^(OK|DUNNO|PREPEND)' "policyd of node 1 ready: '$a'"
rg_start_policyd "$RG_TMP/node2.conf" policyd2
PD2_PID=$POLICYD_PID PD2_LOG=$POLICYD_LOG
rg_start_postfix n2
a=$(rg_wait_policyd_ready "$POLICYD_PORT" "${probe[@]}" instance=probe.2)
like "$a" '^(OK|DUNNO|PREPEND)' "policyd of node 2 ready: '$a'"
for n in n1 n2; do
    for u in shared burst plain; do rg_sasl_user "$n" "$u@relay.test"; done
done
P1=${RG_PF_PORT[n1]} P2=${RG_PF_PORT[n2]}

# --- one after another, alternating nodes: quota 6 -> exactly 6 --------------------
replies=
for ((i = 1; i <= 8; i++)); do
    if ((i % 2)); then p=$P1; else p=$P2; fi
    replies+="$(rg_send "$p" shared@relay.test shared@example.com "s$i@example.net")"$'\n'
done
is "$(printf '%s' "$replies" | head -n 6 | grep -c 'queued as')" 6 "quota 6/1d across two nodes: messages 1-6 accepted"
is "$(printf '%s' "$replies" | tail -n 2 | grep -c '^451 4\.7\.1 ')" 2 "  messages 7 and 8 refused with 451 4.7.1, on either node"
printf '%s' "$replies" | grep -q -v 'queued as' || diag "$replies"
used=$(rg_redis HGETALL rg:h:a:shared:q6 | awk 'NR % 2 { f = $1; next } f ~ /^q:/ { s += $1 } END { print s + 0 }')
is "$used" 6 "  one shared quota counter: 6"

# --- all at once: 12 concurrent sessions, 6 per node, rate 5/1h -> exactly 5 --------
before=$(rg_queued_count)
pids=()
for ((i = 1; i <= 12; i++)); do
    if ((i % 2)); then p=$P1; else p=$P2; fi
    rg_send "$p" burst@relay.test burst@example.com "b$i@example.net" >"$RG_TMP/burst.$i" &
    pids+=($!)
done
wait "${pids[@]}"
acc=$(cat "$RG_TMP"/burst.* | grep -c 'queued as')
ref=$(cat "$RG_TMP"/burst.* | grep -c '^451 4\.7\.1 ')
is "$acc" 5 "rate 5/1h, 12 concurrent messages on two nodes: exactly 5 accepted"
is "$ref" 7 "  and 7 refused with 451 4.7.1"
[ "$acc" = 5 ] && [ "$ref" = 7 ] || diag "$(cat "$RG_TMP"/burst.*)"
is "$(( $(rg_queued_count) - before ))" 5 "  the MTAs queued 5"

# --- nothing lost -------------------------------------------------------------
rg_check_delivered
rg_stop_policyd "$PD1_PID"; ok $? "policyd 1 stops on SIGTERM with status 0"
rg_stop_policyd "$PD2_PID"; ok $? "policyd 2 stops on SIGTERM with status 0"
rg_log_clean "$PD1_LOG" && rg_log_clean "$PD2_LOG"
ok $? "no sanitizer or runtime errors in the policyd logs"

done_testing
