#!/bin/bash
# Local submission through a real Sendmail (issue 3): relayguard-sendmail,
# set-group-id, runs Sendmail's MSP (submit.cf), which relays the marked
# message by SMTP from 127.0.0.1 to the MTA; with local_smtp_clients =
# 127.0.0.1 and local_submission = required the milter ties it to the
# submitter's account, removes the token, and refuses the MSP's mail that
# has none.  Sendmail is unpacked as in t/milter/sendmail.sh.
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require m4 swaks smtp-sink openssl useradd userdel groupadd groupdel su unshare flock
WRAPPER_BUILT="$top_builddir/t/milter/relayguard-sendmail-fixed"
rg_require_built "$RG_BIN_MILTER" "$RG_BIN_CLI" "$WRAPPER_BUILT"
[ "$(id -u)" = 0 ] || skip_all "needs root (a test user, a set-group-id wrapper)"
# the wrapper copy reads one fixed file (local-sendmail.conf): one test at a time
exec 9>"$top_builddir/t/milter/local-sendmail.lock"
flock 9
unshare -u true 2>/dev/null || skip_all "cannot name the host in a UTS namespace (unshare -u)"

SM_ROOT=${RG_SENDMAIL_ROOT:-/var/tmp/relayguard-sendmail/root}
SM_BIN="$SM_ROOT/usr/libexec/sendmail/sendmail"
SM_CF="$SM_ROOT/usr/share/sendmail/cf"
if [ ! -x "$SM_BIN" ] || [ ! -f "$SM_CF/m4/cf.m4" ]; then
    d=$(dirname "$SM_ROOT")
    mkdir -p "$d"
    ( cd "$d" && apt-get download sendmail-bin sendmail-cf >/dev/null 2>&1 &&
      for f in sendmail-bin_*.deb sendmail-cf_*.deb; do dpkg -x "$f" root; done ) ||
        skip_all "cannot download sendmail-bin/sendmail-cf to unpack"
fi
ldd "$SM_BIN" | grep -q 'not found' && skip_all "Sendmail's libraries are missing (apt-get install libwrap0)"

rg_tmpdir
rg_start_redis
TUSER="rglm$$"; TUSER=${TUSER:0:16}
TGROUP="rglmk$$"; TGROUP=${TGROUP:0:16}
groupadd "$TGROUP" || { echo "Bail out! groupadd $TGROUP failed"; exit 1; }
rg_on_exit "groupdel '$TGROUP'"
useradd -M -d /nonexistent -s /bin/sh "$TUSER" || { echo "Bail out! useradd $TUSER failed"; exit 1; }
rg_on_exit "userdel '$TUSER'"
PUB="$RG_TMP/pub"; mkdir -p "$PUB"; chmod 755 "$PUB"
openssl rand -hex 32 >"$PUB/local.key"
chgrp "$TGROUP" "$PUB/local.key"; chmod 640 "$PUB/local.key"
W="$PUB/relayguard-sendmail"
cp "$WRAPPER_BUILT" "$W"; chgrp "$TGROUP" "$W"; chmod 2755 "$W"

RG_CONF="$RG_TMP/rg.conf"
rg_milter_conf "$RG_CONF" <<EOF
local_key = $PUB/local.key
local_submission = required
local_smtp_clients = 127.0.0.1
EOF
printf 'account alice {\n    local_users = %s\n    domains = example.com\n    limit = quota 100/1d\n}\naccount lo {\n    client_networks = 127.0.0.0/8\n    domains = example.com\n}\n' "$TUSER" >"$RG_TMP/accounts.conf"
rg_cli load "$RG_TMP/accounts.conf" >/dev/null || { echo "Bail out! relayguard load failed"; exit 1; }
rg_start_milter "$RG_CONF" inet

SINK_PORT=$(rg_free_port)
SINK_DIR="$RG_TMP/sink"; mkdir -p "$SINK_DIR/mail"; chown nobody "$SINK_DIR/mail"
smtp-sink -u nobody -d "$SINK_DIR/mail/%M." "127.0.0.2:$SINK_PORT" 100 >"$SINK_DIR/sink.log" 2>&1 &
rg_on_exit "rg_stop_pid $!"

# the MTA, as in t/milter/sendmail.sh
SM_DIR="$RG_TMP/sendmail"; mkdir -p "$SM_DIR/queue"; chmod 755 "$SM_DIR"; chmod 700 "$SM_DIR/queue"
SM_PORT=$(rg_free_port)
cat >"$SM_DIR/test.mc" <<MC
divert(0)dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`mta.relay.test')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`QUEUE_DIR', \`$SM_DIR/queue')dnl
define(\`STATUS_FILE', \`$SM_DIR/statistics')dnl
define(\`ALIAS_FILE', \`')dnl
define(\`confPID_FILE', \`$SM_DIR/sendmail.pid')dnl
define(\`SMART_HOST', \`[127.0.0.2]')dnl
define(\`RELAY_MAILER_ARGS', \`TCP \$h $SINK_PORT')dnl
define(\`ESMTP_MAILER_ARGS', \`TCP \$h $SINK_PORT')dnl
define(\`confDONT_BLAME_SENDMAIL', \`GroupWritableDirPathSafe')dnl
FEATURE(\`no_default_msa')dnl
FEATURE(\`accept_unresolvable_domains')dnl
FEATURE(\`nocanonify')dnl
DAEMON_OPTIONS(\`Port=$SM_PORT, Addr=127.0.0.1, Name=MTA')dnl
INPUT_MAIL_FILTER(\`relayguard', \`S=inet:$MILTER_PORT@127.0.0.1, F=T, T=S:10s;R:30s;E:2m')dnl
RELAY_DOMAIN(\`example.net')dnl
MAILER(\`smtp')dnl
MC
m4 -D_CF_DIR_="$SM_CF/" "$SM_CF/m4/cf.m4" "$SM_DIR/test.mc" >"$SM_DIR/test.cf"
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

unshare -u sh -c 'hostname mta.relay.test && exec "$@"' sh \
    "$SM_BIN" -C "$SM_DIR/test.cf" -bd -q1m -L rg-sendmail-test >"$SM_DIR/start.log" 2>&1
if ! rg_wait_port "$SM_PORT" 90; then
    echo "Bail out! Sendmail did not start on port $SM_PORT"
    sed 's/^/# /' "$SM_DIR/start.log"
    exit 1
fi
rg_on_exit "kill \$(head -1 '$SM_DIR/sendmail.pid') 2>/dev/null"

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
else
    fail "the token header is gone"; fail "the MSP's Received names $TUSER"
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
