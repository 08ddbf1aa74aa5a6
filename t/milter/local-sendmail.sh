#!/bin/bash
# Local submission through a real Sendmail (issue 3): relayguard-sendmail,
# set-group-id, runs Sendmail's MSP (submit.cf), which relays the marked
# message by SMTP from 127.0.0.1 to the MTA; with local_smtp_clients =
# 127.0.0.1 and local_submission = required the milter ties it to the
# submitter's account, removes the token, and refuses the MSP's mail that
# has none.  Sendmail is unpacked as in t/milter/sendmail.sh (common.sh).
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require m4 swaks smtp-sink openssl useradd userdel groupadd groupdel su unshare flock
WRAPPER_BUILT="$top_builddir/t/milter/relayguard-sendmail-fixed"
rg_require_built "$RG_BIN_MILTER" "$RG_BIN_CLI" "$WRAPPER_BUILT"
rg_local_lock
unshare -u true 2>/dev/null || skip_all "cannot name the host in a UTS namespace (unshare -u)"

rg_sendmail_unpack

rg_tmpdir
rg_start_redis
rg_test_user rglm; TUSER=$RG_USER
rg_local_wrapper rglmk

RG_CONF="$RG_TMP/rg.conf"
rg_milter_conf "$RG_CONF" <<EOF
local_key = $PUB/local.key
local_submission = required
local_smtp_clients = 127.0.0.1
bounce {
    key = k1 $RG_TMP/bounce-k1.key
    domain = bounce.test
}
EOF
openssl rand -hex 32 >"$RG_TMP/bounce-k1.key"; chmod 600 "$RG_TMP/bounce-k1.key"
printf 'account alice {\n    local_users = %s\n    domains = example.com\n    limit = quota 100/1d\n    bounces = managed\n}\naccount lo {\n    client_networks = 127.0.0.0/8\n    domains = example.com\n}\n' "$TUSER" >"$RG_TMP/accounts.conf"
rg_milter_load "$RG_TMP/accounts.conf"
rg_start_milter "$RG_CONF" inet

rg_sendmail_sink
# the MTA, as in t/milter/sendmail.sh
rg_sendmail_mta_cf
ok $? "sendmail.cf built with m4"
# the MSP: the test user's own client queue, relaying to the MTA's port
mkdir -p "$SM_DIR/mqueue"; chown "$TUSER" "$SM_DIR/mqueue"; chmod 700 "$SM_DIR/mqueue"
cat >"$SM_DIR/submit.mc" <<MC
divert(0)dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`mta.relay.test')dnl
define(\`MSP_QUEUE_DIR', \`$SM_DIR/mqueue')dnl
define(\`confRUN_AS_USER', \`$TUSER')dnl
define(\`RELAY_MAILER_ARGS', \`TCP \$h $SM_PORT')dnl
define(\`confDONT_BLAME_SENDMAIL', \`GroupWritableDirPathSafe')dnl
FEATURE(\`msp', \`[127.0.0.1]')dnl
MC
m4 -D_CF_DIR_="$SM_CF/" "$SM_CF/m4/cf.m4" "$SM_DIR/submit.mc" >"$SM_DIR/submit.cf"
ok $? "submit.cf (the MSP) built with m4"
chmod 644 "$SM_DIR/submit.cf"

rg_sendmail_start

WCONF="$top_builddir/t/milter/local-sendmail.conf"
{ cat "$RG_CONF"; echo "local_sendmail = $SM_BIN -C $SM_DIR/submit.cf"; } >"$WCONF"
chgrp "$TGROUP" "$WCONF"; chmod 640 "$WCONF"
rg_on_exit "rm -f '$WCONF'"

# as the test user, on a host named mta.relay.test (Sendmail wants a qualified name)
as_user() {
    unshare -u sh -c 'hostname mta.relay.test && exec su -s /bin/sh "$0" -c "$1"' "$TUSER" "$1"
}
at_sink() { rg_wait_for 30 bash -c "grep -rlF -- 'Subject: $1' '$SINK_DIR/mail' | grep -q ."; grep -rlF -- "Subject: $1" "$SINK_DIR/mail" | head -1; }

printf 'From: a@example.com\nTo: b@example.net\nSubject: msp-wrapped\n\nhello\n' |
    as_user "'$W' -t -i -f a@example.com" 2>"$RG_TMP/wrap.err"
ok $? "relayguard-sendmail -t through the MSP as $TUSER: submitted"
f=$(at_sink msp-wrapped)
[ -n "$f" ]; ok $? "delivered through the MTA"
if [ -n "$f" ]; then
    grep -q '^X-Relayguard-Local' "$f"; ok $((! $?)) "the token header is gone"
    grep -q "^Received: (from $TUSER@localhost)" "$f"; ok $? "the MSP's Received names $TUSER"
    # alice has managed bounces: the MSP's mail (local, recipients checked at
    # end of headers) gets its return path like SMTP mail
    like "$(grep -m1 '^X-Mail-Args:' "$f")" '^X-Mail-Args: <bounces\+k1-[a-z2-7]+@bounce\.test>' \
        "the managed return path reached the sink as MAIL FROM"
else
    fail "the token header is gone"; fail "the MSP's Received names $TUSER"
    fail "the managed return path reached the sink as MAIL FROM"
fi
rg_wait_for 10 grep -q "accept: END-OF-MESSAGE from 127.0.0.1; account=alice" "$MILTER_LOG"
ok $? "the milter tied it to alice"
is "$(rg_redis XRANGE rg:events - + | grep -cx alice)" 2 "two events of alice (RCPT, EOM)"

# the MSP without the wrapper: no token, required: refused at end of data;
# the MSP keeps it and returns it (no message is lost)
printf 'From: a@example.com\nTo: b@example.net\nSubject: msp-plain\n\nhello\n' |
    as_user "'$SM_BIN' -C '$SM_DIR/submit.cf' -t -i -f a@example.com" 2>/dev/null
rg_wait_for 10 grep -q "local submission without a valid X-Relayguard-Local header" "$MILTER_LOG"
ok $? "the MSP's plain mail is refused: no token"
is "$(grep -rlF -- 'Subject: msp-plain' "$SINK_DIR/mail" 2>/dev/null | xargs -r grep -L 'MAILER-DAEMON' | wc -l)" 0 \
    "... and not delivered"
rg_stop_milter; is "$?" 0 "milter: clean exit"
rg_log_clean "$MILTER_LOG"; ok $? "no sanitizer reports in the milter log"
done_testing
