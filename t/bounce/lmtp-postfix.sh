#!/bin/bash
# t/bounce/lmtp-postfix.sh - the bounce loop over LMTP with a real Postfix:
# a message with the minted return path bounces+TOKEN@bounces.shop.test
# (the template bounce domain "bounces.%d") is relayed to an smtp-sink that
# answers 550 5.1.1; Postfix's own DSN goes to the return path, which the
# regexp transport table of conf.examples/postfix-master.cf routes to
# lmtp:unix:SOCKET, where "relayguard bounce --lmtp" (dropped to user
# nobody) suppresses the recipient and answers 250.  The relay_domains
# regexp of conf.examples/postfix-master.cf is what lets a DSN from the
# Internet in (the test client is outside mynetworks): to a bounces.*
# domain it is accepted and recorded, elsewhere refused.  Two bounce
# addresses in one message get one LMTP transaction with a reply each; with
# Redis stopped the LMTP server answers 451 and Postfix keeps the DSN in
# its queue, then delivers it once Redis is back (nothing lost).
. "${top_srcdir:-$(dirname "$0")/../..}/t/lib.sh"
. "$top_srcdir/t/bounce/common.sh"
rg_require_built "$RG_BIN_CLI"
rg_require smtp-sink postfix swaks
[ "$(id -u)" = 0 ] || skip_all "needs root (a private Postfix)"
rg_tmpdir
rg_start_redis_aof      # restarted later: the tokens' records must survive it

# the server drops to nobody: it must read the config and key (SIGHUP too)
rg_bounce_conf nobody <<EOC
    domain = bounces.%d
EOC
rg_bounce_accounts <<'EOF'
account acme {
    logins  = acme@relay.test
    domains = shop.test
}
EOF
ok $? "accounts loaded"

SOCK="$RG_TMP/bounce.sock"
rg_bounce_start_lmtp "unix:$SOCK" --user nobody
is "$(ps -o user= -p "$LMTP_PID" | tr -d ' ')" nobody "relayguard bounce --lmtp runs as nobody (--user)"

# the "internet": refuses every recipient with 550 5.1.1
rg_bounce_refusing_sink alice@example.net
SINK_PORT=$BAD_PORT
POLICYD_PORT=0

# the tables exactly as conf.examples/postfix-master.cf shows them
ex="$top_srcdir/conf.examples/postfix-master.cf"
tline=$(sed -n 's|^#   /etc/postfix/rg_bounce_transport (LMTP): *||p' "$ex")
dline=$(sed -n 's|^#   /etc/postfix/rg_bounce_domains: *||p' "$ex" | head -1)
like "$tline" '^/.*/ +lmtp:unix:/' "conf.examples: the LMTP transport line ($tline)"
like "$dline" '^/.*/ +OK$' "conf.examples: the relay_domains line ($dline)"
printf '%s\n' "${tline%%lmtp:unix:*}lmtp:unix:$SOCK" >"$RG_TMP/rg_bounce_transport"
printf '%s\n' "$dline" >"$RG_TMP/rg_bounce_domains"
rg_start_postfix l "smtpd_recipient_restrictions =" "smtpd_end_of_data_restrictions =" \
    "mynetworks = 192.0.2.0/24" \
    "transport_maps = regexp:$RG_TMP/rg_bounce_transport" \
    "relay_domains = regexp:$RG_TMP/rg_bounce_domains"
rg_sasl_user l acme@relay.test
pf_log() { grep "$@" "$PF_LOG"; }

token() { rg_cli bounce token acme billing@shop.test "$@"; }
re() { printf '%s' "$1" | sed 's/[+.]/\\&/g'; }

# --- Postfix's own DSN to the return path goes over LMTP ---------------------
RP=$(token alice@example.net)
like "$RP" '^bounces\+k1-[a-z2-7]{39}@bounces\.shop\.test$' "return path minted for the template domain: $RP"
r=$(rg_send "$PF_PORT" acme@relay.test "$RP" alice@example.net --header "Subject: invoice 1001")
like "$r" '^250 ' "message with envelope sender $RP queued (SASL: the client is outside mynetworks)"
rg_bounce_wait_supp acme alice@example.net 30
like "$(rg_redis HGET rg:s:a:acme alice@example.net)" '^hard-bounce\|[0-9]+\|0\|bounce 5\.1\.1' \
    "alice@example.net suppressed by Postfix's DSN over LMTP"
[ -n "$(rg_redis HGET rg:s:a:acme alice@example.net)" ] || tail -20 "$PF_LOG" | while read -r l; do diag "$l"; done
pf_log -q 'status=bounced.*550 5.1.1'; ok $? "Postfix logged the 550 5.1.1 bounce"
rg_wait_for 10 pf_log -Eq "to=<$(re "$RP")>.*status=sent"
pf_log -Eq "to=<$(re "$RP")>, relay=[^ ]*bounce\.sock[^ ]*, .*status=sent \(250 2\.0\.0 .*suppressed\)"
ok $? "Postfix's lmtp delivered the DSN to the socket: status=sent (250 2.0.0 ... suppressed)"
grep -q "lmtp: unix: from=<> to=<$RP> .*status=done" "$LMTP_LOG"
ok $? "the LMTP server logged the delivery"

# --- relay_domains: a DSN from the Internet to a bounces.* domain ------------
RP2=$(token bob@example.net)
rg_bounce_dsn bob@example.net "$RP2" >"$RG_TMP/bob.eml"
r=$(rg_swaks --server "127.0.0.1:$PF_PORT" --from '<>' --to "$RP2" --data "$RG_TMP/bob.eml")
like "$r" '^250 ' "unauthenticated DSN to $RP2: accepted (relay_domains regexp)"
rg_bounce_wait_supp acme bob@example.net 30
like "$(rg_redis HGET rg:s:a:acme bob@example.net)" '^hard-bounce\|' "bob suppressed"
r=$(rg_swaks --server "127.0.0.1:$PF_PORT" --from '<>' --to "x@example.org" --quit-after RCPT)
like "$r" '^554 5\.7\.1 .*Relay access denied' "unauthenticated mail to another domain: relay access denied"
r=$(rg_swaks --server "127.0.0.1:$PF_PORT" --from '<>' --to "bounces+x@notbounces.shop.test" --quit-after RCPT)
like "$r" '^554 5\.7\.1 ' "nor to a domain that only ends like one (notbounces.shop.test)"

# --- two bounce addresses in one message: one transaction, a reply each ------
RP3=$(token carol@example.net)
RP4=$(token dave@example.net)
rg_bounce_dsn carol@example.net "$RP3" >"$RG_TMP/carol.eml"
r=$(rg_swaks --server "127.0.0.1:$PF_PORT" --from '<>' --to "$RP3,$RP4" --data "$RG_TMP/carol.eml")
like "$r" '^250 ' "one DSN to two return paths accepted"
rg_bounce_wait_supp acme dave@example.net 30
like "$(rg_redis HGET rg:s:a:acme carol@example.net)" '^hard-bounce\|' "carol suppressed (her token)"
like "$(rg_redis HGET rg:s:a:acme dave@example.net)" '^hard-bounce\|' "dave suppressed (his token names him)"
q=$(pf_log -E "to=<$(re "$RP3")>.*status=sent" | awk '{print $6}' | tr -d :)
rg_wait_for 10 pf_log -Eq "$q: to=<$(re "$RP4")>.*status=sent"
pf_log -Eq "$q: to=<$(re "$RP4")>.*status=sent \(250 2\.0\.0 .*dave@example\.net: suppressed\)"
ok $? "both recipients of queue id $q sent, each with its own LMTP reply"
grep -q "to=<$RP3> .*status=done" "$LMTP_LOG" && grep -q "to=<$RP4> .*status=done" "$LMTP_LOG"
ok $? "the LMTP server logged each recipient as done"

# --- Redis stopped: 451, Postfix keeps the DSN; delivered once Redis is back --
RP5=$(token erin@example.net)
rg_bounce_dsn erin@example.net "$RP5" >"$RG_TMP/erin.eml"
rg_kill_redis
r=$(rg_swaks --server "127.0.0.1:$PF_PORT" --from '<>' --to "$RP5" --data "$RG_TMP/erin.eml")
like "$r" '^250 ' "a DSN while Redis is stopped: accepted by Postfix"
rg_wait_for 20 pf_log -Eq "to=<$(re "$RP5")>.*status=deferred"
pf_log -Eq "to=<$(re "$RP5")>.*status=deferred \(host [^ ]*bounce\.sock[^ ]* said: 451 4\.3\.0 "
ok $? "the LMTP server answered 451 4.3.0: Postfix deferred it"
is "$(rg_pf_queue_count l)" 1 "the DSN waits in Postfix's queue"
rg_start_redis_aof "$REDIS_PORT"
postfix -c "$PF_CONF" flush >/dev/null 2>&1
rg_bounce_wait_supp acme erin@example.net 60
like "$(rg_redis HGET rg:s:a:acme erin@example.net)" '^hard-bounce\|' "after Redis is back and a queue run: erin suppressed"
rg_wait_for 20 pf_log -Eq "to=<$(re "$RP5")>.*status=sent"
pf_log -Eq "to=<$(re "$RP5")>.*status=sent"; ok $? "Postfix delivered the deferred DSN (status=sent)"
rg_wait_for 10 bash -c "[ \"\$(postqueue -c '$PF_CONF' -j 2>/dev/null | wc -l)\" = 0 ]"
is "$(rg_pf_queue_count l)" 0 "nothing left in Postfix's queue: no bounce lost"

rg_stop_pid "$LMTP_PID"
rg_bounce_sanitizer_clean "$LMTP_LOG"; ok $? "no sanitizer report from the LMTP server"
done_testing
