#!/bin/bash
# Local submission through a real Postfix (sendmail -> postdrop -> pickup ->
# cleanup -> non_smtpd_milters) run as a test unix user, and forged
# "Received: ... (Postfix, from userid N)" headers.
#
# Postfix never shows a milter the Received header that it adds to pickup
# mail: milter8.c hides the first header of every message from milters
# ("Sendmail compatibility"), so the first Received header a milter sees
# is one the submitter wrote.  relayguard-milter therefore never takes a
# unix user from a Received header; to it, Postfix local submission is the
# client localhost [127.0.0.1] (port 0), and an account's client_networks
# decide as for any local client.  This test pins both: a forged uid header
# never selects the account of that uid, by SMTP or by sendmail, and local
# submission is still checked (a foreign sender domain is refused) and
# counted against the account that owns 127.0.0.0/8.
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require postfix sendmail swaks smtp-sink openssl useradd userdel su
rg_require_built "$RG_BIN_MILTER" "$RG_BIN_CLI"
rg_tmpdir
rg_start_redis
RG_CONF="$RG_TMP/rg.conf"
rg_milter_conf "$RG_CONF" </dev/null

# a test unix user, removed at exit
rg_test_user rgloc; TUSER=$RG_USER
TUID=$(id -u "$TUSER")

cat >"$RG_TMP/accounts.conf" <<EOF2
account uid0 {
    local_users = root, $TUSER
    domains     = example.com, forged.test
    limit       = quota 100/1d
}
account lo {
    client_networks = 127.0.0.0/8
    domains         = example.com
    limit           = quota 100/1d
}
EOF2
rg_milter_load "$RG_TMP/accounts.conf"
rg_milter_postfix_local "$RG_CONF"
P=$PF_PORT
day=$(date -u +%Y%m%d)

# sendmail as the test user, with the private instance's configuration
as_user() {
    su -s /bin/sh "$TUSER" -c "/usr/sbin/sendmail -C '$PF_CONF' $*"
}
# the maillog line of the message with Subject $1 (milter-reject or the queue id)
wait_subject_seen() {
    rg_wait_for 20 bash -c "grep -rlF -- 'Subject: $1' '$SINK_DIR/mail' | grep -q . || grep -q 'milter-reject' '$PF_LOG'"
}

# --- by SMTP: a forged uid header as the first header selects nothing -----
printf 'Received: by local.relay.test (Postfix, from userid 0)\r\n\tid 4AB12C0FFEE; Tue, 24 Nov 2026 10:00:00 +0000 (UTC)\r\nFrom: a@example.com\r\nTo: b@example.net\r\nSubject: smtp-forged\r\n\r\nx\r\n' >"$RG_TMP/smtp-forged.eml"
r=$(rg_send $P "" a@example.com b@example.net --data "$RG_TMP/smtp-forged.eml")
like "$r" "^250 " "SMTP with a forged 'from userid 0' Received header on top: accepted"
is "$(rg_redis HGET "rg:h:a:lo:quota-100-1d-msg" "q:$day")" 1 "... and charged to the network account lo, not to uid0"
r=$(rg_send $P "" a@forged.test b@example.net --data "$RG_TMP/smtp-forged.eml")
is "$r" "553 5.7.1 <a@forged.test>: sender domain forged.test is not allowed for account lo" \
    "SMTP with a forged uid header and a sender only uid0 may use: 553 for account lo"

# --- local submission as the test user -----------------------------------
# 1. a forged first Received header claiming uid 0, and a sender only uid0 may use
printf 'Received: by local.relay.test (Postfix, from userid 0)\n\tid 4AB12C0FFEE; Tue, 24 Nov 2026 10:00:00 +0000 (UTC)\nFrom: a@forged.test\nTo: b@example.net\nSubject: local-forged\n\nforged\n' |
    as_user -t -f a@forged.test
ok $? "sendmail -t as $TUSER (uid $TUID): submitted"
rg_wait_for 20 grep -q 'milter-reject: END-OF-MESSAGE from localhost\[127.0.0.1\]' "$PF_LOG"
like "$(grep 'milter-reject: END-OF-MESSAGE' "$PF_LOG" | head -1)" \
    "milter-reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 5.7.1 <a@forged.test>: sender domain forged.test is not allowed for account lo" \
    "local submission with a forged uid header: refused for a foreign sender domain, as account lo"
# A non_smtpd milter may not refuse a recipient (Postfix would retry the
# message forever): the milter refuses at end of headers and Postfix bounces.
grep -q "can't reject recipient in non-smtpd" "$PF_LOG"
ok $((! $?)) "no 'can't reject recipient in non-smtpd(8) submission' from Postfix"
rg_wait_for 20 bash -c "grep -rlF -- 'local-forged' '$SINK_DIR/mail' | xargs -r grep -l 'MAILER-DAEMON' | grep -q ."
is "$(grep -rlF -- 'local-forged' "$SINK_DIR/mail" | xargs -r grep -l '^From: .*MAILER-DAEMON@' | wc -l)" 1 \
    "the refused local message bounced to its sender"
is "$(grep -rlF -- 'local-forged' "$SINK_DIR/mail" | xargs -r grep -L '^From: .*MAILER-DAEMON@' | wc -l)" 0 \
    "the refused local message itself was not delivered"
is "$(find "$PF_DIR/spool/maildrop" -type f | wc -l)" 0 "nothing left in the maildrop"

# 2. a plain local message with an allowed sender: checked, signed, counted
printf 'From: a@example.com\nTo: b@example.net\nSubject: local-ok\n\nhello\n' | as_user -t -f a@example.com
ok $? "sendmail -t as $TUSER: submitted"
rg_wait_for 20 bash -c "grep -rlF -- 'local-ok' '$SINK_DIR/mail' | grep -q ."
f=$(grep -rlF -- "local-ok" "$SINK_DIR/mail" | head -1)
if [ -n "$f" ]; then
    grep -q "^Received: by local.relay.test (Postfix, from userid $TUID)" "$f"
    ok $? "delivered with Postfix's own 'from userid $TUID' header (which the milter never saw)"
    is "$(grep -c '^DKIM-Signature:' "$f")" 2 "local message signed for example.com"
else
    fail "local message delivered"; fail "local message signed"
fi
is "$(rg_redis HGET "rg:h:a:lo:quota-100-1d-msg" "q:$day")" 2 "local message charged once, to account lo"
is "$(rg_redis HGET "rg:h:a:uid0:quota-100-1d-msg" "q:$day")" "" "nothing charged to uid0"
is "$(rg_redis XRANGE rg:events - + | grep -cx uid0)" 0 "no event of account uid0"

rg_stop_milter; is "$?" 0 "milter: clean exit"
rg_log_clean "$MILTER_LOG"; ok $? "no sanitizer reports in the milter log"
done_testing
