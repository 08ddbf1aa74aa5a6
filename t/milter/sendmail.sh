#!/bin/bash
# relayguard-milter behind a real Sendmail (sendmail-bin and sendmail-cf
# unpacked, not installed: they conflict with Postfix), a private .cf built
# with m4 and INPUT_MAIL_FILTER(F=T): a message is signed and verifies, a
# foreign sender is refused.
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require m4 swaks smtp-sink openssl opendkim
"$RG_PY" -c 'import dkim, nacl' 2>/dev/null || skip_all "python3-dkim/python3-nacl not installed"
rg_require_built "$RG_BIN_MILTER" "$RG_BIN_CLI"

# The unpacked packages live outside the test folder and are reused.
rg_sendmail_unpack

rg_tmpdir
rg_start_redis
RG_CONF="$RG_TMP/rg.conf"
rg_milter_conf "$RG_CONF" </dev/null
printf 'account local {\n    client_networks = 127.0.0.0/8\n    domains = example.com\n}\naccount uid0 {\n    local_users = root\n    domains = forged.test\n}\n' >"$RG_TMP/accounts.conf"
rg_milter_load "$RG_TMP/accounts.conf"
rg_milter_txt "$RG_CONF" "$RG_TMP/keys.txt"
rg_start_milter "$RG_CONF" inet

rg_sendmail_sink
rg_sendmail_mta_cf
ok $? "sendmail.cf built from sendmail-cf with m4"
rg_sendmail_start

r=$(rg_swaks --server "127.0.0.1:$SM_PORT" --from a@example.com --to b@example.net --header "Subject: via-sendmail")
like "$r" "^250 2.0.0 .* Message accepted for delivery" "Sendmail: accepted"
rg_wait_for 20 bash -c "grep -rlF 'via-sendmail' '$SINK_DIR/mail' | grep -q ."
f=$(grep -rlF -- "via-sendmail" "$SINK_DIR/mail" | head -1)
if [ -n "$f" ]; then
    is "$(grep -c '^DKIM-Signature:' "$f")" 2 "Sendmail: two signatures"
    is "$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$f")" "ok 2" "Sendmail: dkimpy verifies"
    rg_verify_opendkim "$RG_TMP/keys.txt" "$f"; ok $? "Sendmail: OpenDKIM verifies"
else
    fail "Sendmail: the message reached the sink"
fi
# Sendmail 8.17 opens one milter connection per SMTP session and sends every
# message of the session over it (MAIL .. end of message again, QUIT at the
# end; it sent no QUIT_NC in any session tried): each message is decided and
# signed on its own.
smtp-source -s 1 -m 3 -d -S multi-per-session -f a@example.com -t b@example.net \
    "127.0.0.1:$SM_PORT" >"$RG_TMP/multi.log" 2>&1
ok $? "Sendmail: three messages in one SMTP session sent"
rg_wait_for 20 bash -c "[ \$(grep -rlF 'multi-per-session' '$SINK_DIR/mail' | wc -l) -ge 3 ]"
n=0 good=0
for f in $(grep -rlF -- "multi-per-session" "$SINK_DIR/mail"); do
    n=$((n + 1))
    [ "$(grep -c '^DKIM-Signature:' "$f")" = 2 ] &&
        [ "$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$f")" = "ok 2" ] && good=$((good + 1))
done
is "$n $good" "3 3" "Sendmail: each message of the session has two signatures that dkimpy verifies"
r=$(rg_swaks --server "127.0.0.1:$SM_PORT" --from a@foreign.test --to b@example.net)
like "$r" "^553 5.7.1 .*sender domain foreign.test is not allowed for account local" \
    "Sendmail: a foreign sender is refused at MAIL"
r=$(rg_swaks --server "127.0.0.1:$SM_PORT" --from a@example.com --to b@example.net --header "From: x@bank.test")
like "$r" "^550 5.7.1 .*header From domain bank.test is not allowed for account local" \
    "Sendmail: a foreign header From is refused at end of data"
# Local submission goes through Sendmail's MSP, which relays by SMTP to
# 127.0.0.1 with "Received: (from USER@localhost) ... /Submit" on top; any
# local process can write that header, so it never selects an account.
printf 'Received: (from root@localhost)\r\n\tby mta.relay.test (8.17.1.9/8.17.1.9/Submit) id 5AOH0xx;\r\n\tTue, 24 Nov 2026 10:00:00 GMT\r\nFrom: a@example.com\r\nTo: b@example.net\r\nSubject: forged MSP header\r\n\r\nx\r\n' >"$RG_TMP/msp-forged.eml"
r=$(rg_swaks --server "127.0.0.1:$SM_PORT" --from a@example.com --to b@example.net --data "$RG_TMP/msp-forged.eml")
like "$r" "^250 " "Sendmail: a message with a forged MSP 'from root@localhost' header on top is accepted"
is "$(redis-cli -p "$REDIS_PORT" XRANGE rg:events - + | grep -cx uid0)" 0 \
    "Sendmail: ... as account local: no event of root's account uid0"
r=$(rg_swaks --server "127.0.0.1:$SM_PORT" --from a@forged.test --to b@example.net --data "$RG_TMP/msp-forged.eml")
like "$r" "^553 5.7.1 .*sender domain forged.test is not allowed for account local" \
    "Sendmail: with a sender only uid0 may use: 553 for account local"
rg_stop_milter; is "$?" 0 "milter: clean exit"
done_testing
