#!/bin/bash
# t/bounce/verp-postfix.sh - the managed return path end to end with real
# components (issue 6, sections 1 and 4): relayguard-milter behind a private
# Postfix rewrites the envelope sender of an account with "bounces =
# managed" to bounces+TOKEN@bounces.shop.test (smfi_chgfrom; the bounce
# domain is the template "bounces.%d", %d the sender's domain) after the
# engine wrote the token's record; one recipient of a two-recipient message goes
# to an smtp-sink that answers 550 5.1.1 (-f RCPT -B), the other to a sink
# that accepts; Postfix's own DSN goes to the VERP address, transport_maps
# (a regexp table for every bounces.* domain, as conf.examples/postfix-main.cf
# shows) routes it to the pipe running "relayguard bounce", exactly the refused
# recipient lands on the suppression list, and the next message to it is
# refused at RCPT by the milter.  A DSN to a tampered token suppresses
# nothing; an account with "bounces = off" keeps its envelope sender.
. "${top_srcdir:-$(dirname "$0")/../..}/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require_built "$RG_BIN_CLI" "$RG_BIN_MILTER"
rg_require smtp-sink postfix swaks
[ "$(id -u)" = 0 ] || skip_all "needs root (a private Postfix)"
rg_tmpdir
rg_start_redis

. "$top_srcdir/t/bounce/common.sh"
# Postfix's pipe runs "relayguard bounce" as nobody: it must read the config and key.
rg_bounce_conf nobody <<EOC
    domain  = bounces.%d
    bounces = managed
EOC
rg_bounce_accounts <<'EOF2'
account acme {
    logins  = acme@relay.test
    domains = shop.test
}
account plain {
    logins  = plain@relay.test
    domains = plain.test
    bounces = off
}
EOF2
ok $? "accounts loaded (acme managed by the bounce block's default, plain off)"

# the "internet": one sink accepts (and keeps every message), one refuses
# every recipient with 550 5.1.1
rg_start_sink
rg_bounce_refusing_sink alice@example.net

rg_start_milter "$RG_CONF" inet
POLICYD_PORT=0
cat > "$RG_TMP/transport" <<EOF2
alice@example.net   smtp:[127.0.0.1]:$BAD_PORT
EOF2
# the template's domains, as in conf.examples/postfix-main.cf
echo '/@bounces\.[^@]+$/  rgbounce:' > "$RG_TMP/bounce-transport"
rg_start_postfix v "smtpd_recipient_restrictions =" "smtpd_end_of_data_restrictions =" \
    "smtpd_milters = inet:127.0.0.1:$MILTER_PORT" "milter_default_action = tempfail" \
    "milter_protocol = 6" "transport_maps = texthash:$RG_TMP/transport, regexp:$RG_TMP/bounce-transport" \
    "rgbounce_destination_recipient_limit = 1"
rg_sasl_user v acme@relay.test
rg_sasl_user v plain@relay.test
# the pipe transport of conf.examples/postfix-master.cf
rg_bounce_pipe_transport
postfix -c "$PF_CONF" reload >/dev/null 2>&1
ok $? "Postfix with relayguard-milter and the rgbounce pipe transport"

before=$(rg_send "$PF_PORT" acme@relay.test billing@shop.test alice@example.net --quit-after RCPT)
is "$(rg_code "$before")" 250 "before: alice@example.net is accepted at RCPT"

# --- one message, two recipients; the milter rewrites the envelope sender --
tag="verp-$RANDOM$RANDOM"
r=$(rg_send "$PF_PORT" acme@relay.test billing@shop.test "alice@example.net,bob@example.net" \
    --header "Subject: invoice $tag")
like "$r" '^250 ' "acme's message to alice and bob queued"
qid=$(sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' "$(rg_last_swaks_log)" | tail -1)
rp=$(grep -o 'return_path=<[^>]*>' "$MILTER_LOG" | tail -1 | sed 's/return_path=<\(.*\)>/\1/')
like "$rp" '^bounces\+k1-[a-z2-7]{39}@bounces\.shop\.test$' "the milter logged the managed return path: $rp"
rg_wait_for 20 grep -q "$qid: from=<$rp>" "$PF_LOG"
grep -q "$qid: from=<$rp>" "$PF_LOG"
ok $? "Postfix queued $qid with the envelope sender changed by the milter (smfi_chgfrom)"

# bob's copy reaches the good sink with MAIL FROM:<bounces+...>
rg_wait_for 30 bash -c "grep -rlF -- '$tag' '$SINK_DIR/mail' | grep -q ."
f=$(grep -rlF -- "$tag" "$SINK_DIR/mail" | head -1)
is "$(rg_sink_count)" 1 "bob's copy reached the sink"
mailargs=$(grep -m1 '^X-Mail-Args:' "$f" 2>/dev/null)
like "$mailargs" "^X-Mail-Args: <$(printf '%s' "$rp" | sed 's/[+.]/\\&/g')>" "the sink saw MAIL FROM:<$rp>"
grep -q '^X-Rcpt-Args: <bob@example.net>' "$f"
ok $? "the sink's copy is bob's"

# the token resolves to the account and every recipient (the record the engine wrote)
id=$(rg_redis --scan --pattern 'rg:v:*' | head -1)
is "$(rg_redis HGET "$id" a)" acme "record $id: account acme"
# the end-of-message event carries the token's id, so an event consumer can
# tie a later bounce (which names the token) to the message it answers
ev=$(rg_redis XREVRANGE rg:events + - COUNT 20 | awk -v q="$qid" '
    /^stage$/ {getline; st=$0} /^qid$/ {getline; qq=$0}
    /^verp$/ {getline; if (st == "eom" && qq == q) {print; exit}}')
is "$ev" "${id#rg:v:}" "the end-of-message event of $qid carries the token id ${id#rg:v:}"
is "$(rg_redis HGET "$id" s)" billing@shop.test "record: the original sender"
is "$(rg_redis HGET "$id" r | tr '\n' ' ')" "alice@example.net bob@example.net " "record: both recipients"

# alice: the sink's 550, Postfix's DSN to the VERP address, the pipe
rg_bounce_wait_supp acme alice@example.net 30
v=$(rg_redis HGET rg:s:a:acme alice@example.net)
like "$v" '^hard-bounce\|[0-9]+\|0\|bounce 5\.1\.1' "alice@example.net suppressed for account acme by Postfix's DSN"
[ -n "$v" ] || { diag "maillog:"; tail -30 "$PF_LOG" | while read -r l; do diag "$l"; done; }
rg_wait_for 30 grep -Eq "to=<$(printf '%s' "$rp" | sed 's/[+.]/\\&/g')>.*relay=rgbounce.*status=sent" "$PF_LOG"
grep -Eq "to=<$(printf '%s' "$rp" | sed 's/[+.]/\\&/g')>.*relay=rgbounce.*status=sent" "$PF_LOG"
ok $? "Postfix delivered its DSN to the VERP address through the pipe (status=sent)"
is "$(rg_redis HGET rg:s:a:acme bob@example.net)" "" "bob@example.net (delivered) is not suppressed"
is "$(rg_redis HLEN rg:s:a:acme)" 1 "exactly one address suppressed"

after=$(rg_send "$PF_PORT" acme@relay.test billing@shop.test alice@example.net --quit-after RCPT)
like "$after" '^550 5\.7\.1 .*alice@example\.net.*suppressed \(hard-bounce since [0-9-]+\)' \
    "after: the next message to alice is refused at RCPT by the milter"
other=$(rg_send "$PF_PORT" acme@relay.test billing@shop.test bob@example.net --quit-after RCPT)
is "$(rg_code "$other")" 250 "after: bob is still accepted"

# --- a tampered token suppresses nothing -----------------------------------
tok=${rp#bounces+}; tok=${tok%@*}
last=${tok: -2:1}
[ "$last" = a ] && sub=b || sub=a
bad="bounces+${tok:0:${#tok}-2}$sub${tok: -1}@bounces.shop.test"
cat > "$RG_TMP/fake-dsn.eml" <<EOF2
From: MAILER-DAEMON@evil.test
To: $bad
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; evil.test

Final-Recipient: rfc822; bob@example.net
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--b1--
EOF2
r=$(rg_swaks --server "127.0.0.1:$PF_PORT" --from "" --to "$bad" --data "$RG_TMP/fake-dsn.eml")
like "$r" '^250 ' "a forged DSN to a tampered token ($bad) is accepted by Postfix"
for ((i = 0; i < 200; i++)); do
    rg_redis XREVRANGE rg:events + - COUNT 5 | grep -q bad_mac && break
    sleep 0.1
done
ev=$(rg_redis XREVRANGE rg:events + - COUNT 5 | tr '\n' ' ')
like "$ev" 'bad_mac' "relayguard bounce refused the tampered token (bad_mac event)"
is "$(rg_redis HGET rg:s:a:acme bob@example.net)" "" "the tampered token suppressed nothing (bob)"
is "$(rg_redis HLEN rg:s:a:acme)" 1 "still exactly one address suppressed"

# --- bounces = off: the envelope sender is kept ----------------------------
tag2="plain-$RANDOM$RANDOM"
r=$(rg_send "$PF_PORT" plain@relay.test news@plain.test bob@example.net --header "Subject: $tag2")
like "$r" '^250 ' "plain's message queued"
rg_wait_for 20 bash -c "grep -rlF -- '$tag2' '$SINK_DIR/mail' | grep -q ."
f=$(grep -rlF -- "$tag2" "$SINK_DIR/mail" | head -1)
is "$(grep -m1 '^X-Mail-Args:' "$f" 2>/dev/null | cut -d' ' -f2)" "<news@plain.test>" \
    "bounces = off: the sink saw MAIL FROM:<news@plain.test>"
is "$(rg_redis --scan --pattern 'rg:v:*' | wc -l)" 1 "no token record for plain's message"

is "$(rg_pf_queue_count v)" 0 "nothing left in Postfix's queue"
rg_stop_milter; ok $? "relayguard-milter stopped cleanly"
done_testing
