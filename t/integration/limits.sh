#!/bin/bash
# limits.sh - rate limits and quotas through a real Postfix: a limit of N lets
# exactly N messages through and refuses the next (451 4.7.1 soft, 550 5.7.1
# hard); per=rcpt charges the recipient count once; a refused or abandoned
# message charges nothing.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"

rg_require redis-server redis-cli postfix smtp-sink saslpasswd2 swaks python3
rg_require_built "$RG_BIN_POLICYD" "$RG_BIN_CLI"

rg_tmpdir
rg_start_redis
rg_start_sink

# Holds of abandoned messages expire after reservation_ttl: short here, so
# that the test can show they were never charged.
RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" <<EOF
reservation_ttl = 3s
EOF

ACCOUNTS="$RG_TMP/accounts.conf"
cat >"$ACCOUNTS" <<'EOF'
account rate5 {
    logins  = rate5@relay.test
    domains = example.com
    limit   = rate 5/1h name=r5
}
account hard5 {
    logins  = hard5@relay.test
    domains = example.com
    limit   = rate 5/1h hard name=h5
}
account quota5 {
    logins  = quota5@relay.test
    domains = example.com
    limit   = quota 5/1d name=q5
}
account rcpt {
    logins  = rcpt@relay.test
    domains = example.com
    limit   = quota 10/1d per=rcpt name=qr
}
account plain {
    logins  = plain@relay.test
    domains = example.com
}
account refused {
    logins  = refused@relay.test
    domains = example.com
    limit   = quota 3/1d name=q3
    limit   = rate 3/1h name=r3
}
EOF
out=$(rg_cli load "$ACCOUNTS" 2>&1)
ok $? "relayguard load accounts.conf"
[ -z "$out" ] || diag "$out"

rg_start_policyd "$RG_CONF"
rg_start_postfix a
for u in rate5 hard5 quota5 rcpt refused; do rg_sasl_user a "$u@relay.test"; done
a=$(rg_wait_policyd_ready "$POLICYD_PORT" protocol_state=RCPT client_address=127.0.0.1 \
    sasl_username=plain@relay.test sender=x@example.com recipient=y@example.net instance=probe.1)
like "$a" '^(OK|DUNNO|PREPEND)' "policyd ready: '$a'"
P=$PF_PORT

# quota_used ACCOUNT LIMIT: the charged count in the current quota window.
# (the q:WINDOW fields of the bucket's hash rg:h:BUCKET, keys.h)
quota_used() {
    rg_redis HGETALL "rg:h:a:$1:$2" | awk 'NR % 2 { f = $1; next } f ~ /^q:/ { s += $1 } END { print s + 0 }'
}

# cli_field ACCOUNT LIMIT FIELD: a number of relayguard --json limit show
# ("used", "holds", ...), summed over the limit's buckets.
cli_field() {
    rg_cli --json limit show "$1" 2>&1 | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError as e:
    print("bad json: %s" % e); sys.exit(0)
rows = d if isinstance(d, list) else d.get("limits", [d])
print(sum(r.get(sys.argv[2], 0) for r in rows if r.get("limit") == sys.argv[1]))' "$2" "$3"
}
cli_used() { cli_field "$1" "$2" used; }

# send_n LOGIN N: send N messages one after another; prints one reply per line.
send_n() {
    local i
    for ((i = 1; i <= $2; i++)); do rg_send "$P" "$1" "${1%@*}@example.com" "to$i@example.net"; done
}
# The replies must be N times 250 "queued", then the refusal.
check_exactly() {  # check_exactly LOGIN N REFUSAL-REGEX LABEL
    local replies acc
    replies=$(send_n "$1" $(($2 + 1)))
    acc=$(printf '%s\n' "$replies" | head -n "$2" | grep -c 'queued as')
    is "$acc" "$2" "$4: the first $2 messages are accepted"
    like "$(printf '%s\n' "$replies" | tail -n 1)" "$3" "$4: message $(($2 + 1)) is refused"
    [ "$acc" = "$2" ] || diag "$replies"
}

check_exactly rate5@relay.test 5 '^451 4\.7\.1 .* in [0-9]+ ?[a-z]' "rate 5/1h (soft), with the time until it frees"
check_exactly hard5@relay.test 5 '^550 5\.7\.1 ' "rate 5/1h hard"
check_exactly quota5@relay.test 5 '^451 4\.7\.1 .* in [0-9]+ ?[a-z]' "quota 5/1d (soft), with the time until it frees"
is "$(quota_used quota5 q5)" 5 "quota 5/1d: q:WINDOW holds 5, the refused message is not charged"

out=$(rg_cli limit show quota5 2>&1)
ok $? "relayguard limit show quota5"
diag "$out"
is "$(cli_used quota5 q5)" 5 "relayguard --json limit show quota5: used 5"
is "$(cli_used rate5 r5)" 5 "relayguard --json limit show rate5: used 5"

# --- per=rcpt: one message to three recipients is charged 3, once ---------------
r=$(rg_send "$P" rcpt@relay.test rcpt@example.com r1@example.net,r2@example.net,r3@example.net)
like "$r" '^250 .*queued as' "per=rcpt: a message to 3 recipients is accepted ($r)"
is "$(quota_used rcpt qr)" 3 "per=rcpt: charged 3 (rg:h:a:rcpt:qr q:WINDOW)"
is "$(cli_used rcpt qr)" 3 "relayguard --json limit show rcpt: used 3"
r=$(rg_send "$P" rcpt@relay.test rcpt@example.com r4@example.net)
like "$r" '^250 .*queued as' "per=rcpt: one more recipient ($r)"
is "$(quota_used rcpt qr)" 4 "per=rcpt: now 4"

# --- refused and abandoned messages charge nothing ---------------------------------
r=$(rg_send "$P" refused@relay.test refused@evil.test r@example.net)
like "$r" '^553 5\.7\.1 ' "foreign sender domain: refused ($r)"
r=$(rg_send "$P" refused@relay.test refused@evil.test r@example.net)
like "$r" '^553 5\.7\.1 ' "again: refused ($r)"
r=$(rg_send "$P" refused@relay.test refused@example.com r@example.net --quit-after RCPT)
like "$r" '^250 ' "QUIT after RCPT ($r)"
r=$(python3 - "$P" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), "client.test", timeout=30)
s.ehlo(); s.login("refused@relay.test", "secret")
s.mail("refused@example.com"); code, _ = s.rcpt("r@example.net")
s.rset()
print(code, s.noop()[0]); s.quit()
PY
)
like "$r" '^250 250' "RSET after RCPT ($r)"
is "$(quota_used refused q3)" 0 "nothing charged to the quota"
is "$(for k in $(rg_redis --scan --pattern 'rg:h:a:refused:*'); do rg_redis HEXISTS "$k" _t; done | grep -c '^1')" 0 \
    "nothing charged to the rate (no _t in any rg:h:a:refused:* bucket)"
# The holds of the abandoned transactions lapse after reservation_ttl (3s
# here; the engine rounds holds up to its hold slots, so allow 30 s).
t0=$(rg_now_ms)
for ((i = 0; i < 300; i++)); do
    [ "$(cli_field refused q3 holds)" = 0 ] && [ "$(cli_field refused r3 holds)" = 0 ] && break
    sleep 0.1
done
is "$(cli_field refused q3 holds)/$(cli_field refused r3 holds)" 0/0 \
    "the holds of abandoned messages lapse ($(( $(rg_now_ms) - t0 )) ms after)"
check_exactly refused@relay.test 3 '^451 4\.7\.1 ' "after refused and abandoned messages, quota+rate 3"
is "$(quota_used refused q3)" 3 "  quota use is 3"

# --- nothing lost -------------------------------------------------------------
rg_check_delivered
rg_stop_policyd "$POLICYD_PID"
ok $? "relayguard-policyd stops on SIGTERM with status 0"
rg_log_clean "$POLICYD_LOG"
ok $? "no sanitizer or runtime errors in the policyd log"

done_testing
