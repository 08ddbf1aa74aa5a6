#!/bin/bash
# t/bounce/postfix.sh - the bounce loop end to end with real components:
# Postfix relays a message whose envelope sender is a minted return path
# bounces+TOKEN@bounce.test to an smtp-sink that answers 550 5.1.1 (-f RCPT
# -B), Postfix's own DSN goes to the return path, which transport_maps
# routes to a pipe transport running "relayguard bounce", the recipient lands
# on the account's suppression list, and the next message to it through
# relayguard-policyd is refused at RCPT.  With forward = yes the DSN is also
# passed on to the original sender, with the null sender.
. "${top_srcdir:-$(dirname "$0")/../..}/t/lib.sh"
rg_require_built "$RG_BIN_CLI" "$RG_BIN_POLICYD"
rg_require smtp-sink postfix swaks
[ "$(id -u)" = 0 ] || skip_all "needs root (a private Postfix)"
rg_tmpdir
rg_start_redis

. "$top_srcdir/t/bounce/common.sh"
# Postfix's pipe runs "relayguard bounce" as nobody: it must read the config and key.
rg_bounce_conf nobody <<EOC
    domain = bounce.test
    # the pipe's environment names the private instance (MAIL_CONFIG)
    forward = yes
    sendmail = /usr/sbin/sendmail
EOC
rg_bounce_accounts <<'EOF2'
account acme {
    logins  = acme@relay.test
    domains = shop.test
}
EOF2
ok $? "accounts loaded"

# the "internet": refuses every recipient with 550 5.1.1
rg_bounce_refusing_sink alice@example.net
SINK_PORT=$BAD_PORT

rg_start_policyd "$RG_CONF"
rg_start_postfix b "transport_maps = inline:{bounce.test=rgbounce:}" \
    "rgbounce_destination_recipient_limit = 1"
rg_sasl_user b acme@relay.test
# the pipe transport of conf.examples/postfix-master.cf
rg_bounce_pipe_transport
postfix -c "$PF_CONF" reload >/dev/null 2>&1
ok $? "Postfix with the rgbounce pipe transport"
rg_wait_policyd_ready "$POLICYD_PORT" protocol_state=RCPT sasl_username=acme@relay.test \
    sender=billing@shop.test recipient=x@example.net instance=probe.1 client_address=127.0.0.1 >/dev/null

RP=$(rg_cli bounce token acme billing@shop.test alice@example.net)
like "$RP" '^bounces\+k1-[a-z2-7]{39}@bounce\.test$' "return path minted: $RP"

before=$(rg_send "$PF_PORT" acme@relay.test billing@shop.test alice@example.net --quit-after RCPT)
is "$(rg_code "$before")" 250 "before: alice@example.net is accepted at RCPT"

# relayed with the VERP return path (unauthenticated from mynetworks: policyd says DUNNO)
r=$(rg_send "$PF_PORT" "" "$RP" alice@example.net --header "Subject: invoice 1001")
like "$r" '^250 ' "message with envelope sender $RP queued"

# wait for the sink's refusal, Postfix's DSN, and the pipe
rg_bounce_wait_supp acme alice@example.net 30
v=$(rg_redis HGET rg:s:a:acme alice@example.net)
like "$v" '^hard-bounce\|[0-9]+\|0\|bounce 5\.1\.1' "alice@example.net suppressed for account acme by the DSN"
[ -n "$v" ] || { diag "maillog:"; tail -30 "$PF_LOG" | sed 's/^/  /' | while read -r l; do diag "$l"; done; }
grep -q 'status=bounced.*550 5.1.1' "$PF_LOG"
ok $? "Postfix logged the 550 5.1.1 bounce"
# (the pipe writes the list before it forwards: the delivery ends later)
rg_wait_for 30 grep -Eq 'to=<bounces\+k1-[a-z2-7]+@bounce.test>.*relay=rgbounce.*status=sent' "$PF_LOG"
grep -Eq 'to=<bounces\+k1-[a-z2-7]+@bounce.test>.*relay=rgbounce.*status=sent' "$PF_LOG"
ok $? "Postfix delivered its DSN to relayguard bounce through the pipe (status=sent)"
ev=$(rg_redis XREVRANGE rg:events + - COUNT 20 | tr '\n' ' ')
like "$ev" 'bounce\.hard .*stage bounce .*account acme .*sender billing@shop\.test .*rcpt alice@example\.net' "a bounce.hard event"

# the forwarded copy: null sender, to the original sender, through the same Postfix
for ((i = 0; i < 100; i++)); do
    grep -q 'to=<billing@shop.test>' "$PF_LOG" && break
    sleep 0.1
done
fq=$(grep -E 'from=<>, size=' "$PF_LOG" | grep -v 'nrcpt=0' | awk '{print $6}' | tr -d : | while read -r q; do
    grep -q "$q: to=<billing@shop.test>" "$PF_LOG" && echo "$q"; done | head -1)
ok "$([ -n "$fq" ]; echo $?)" "forward = yes: the DSN went on to <billing@shop.test> with the null sender (queue id ${fq:-none})"

after=$(rg_send "$PF_PORT" acme@relay.test billing@shop.test alice@example.net --quit-after RCPT)
like "$after" '^550 5\.7\.1 .*alice@example\.net.*suppressed \(hard-bounce since [0-9-]+\)' "after: the next message to alice is refused at RCPT"
other=$(rg_send "$PF_PORT" acme@relay.test billing@shop.test bob@example.net --quit-after RCPT)
is "$(rg_code "$other")" 250 "after: another recipient is still accepted"
is "$(rg_pf_queue_count b)" 0 "nothing left in Postfix's queue (the DSN was consumed)"
done_testing
