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
RG_CONF="$RG_TMP/rg.conf"
rg_milter_conf "$RG_CONF" </dev/null
printf 'account local {\n    client_networks = 127.0.0.0/8\n    domains = example.com\n}\naccount uid0 {\n    local_users = root\n    domains = forged.test\n}\n' >"$RG_TMP/accounts.conf"
rg_cli load "$RG_TMP/accounts.conf" >/dev/null || { echo "Bail out! relayguard load failed"; exit 1; }
rg_milter_txt "$RG_CONF" "$RG_TMP/keys.txt"
rg_start_milter "$RG_CONF" inet

# The sink on 127.0.0.2: Sendmail drops a smart host that is one of its own
# addresses ([127.0.0.1] is in class w).
SINK_PORT=$(rg_free_port)
SINK_DIR="$RG_TMP/sink"; mkdir -p "$SINK_DIR/mail"; chown nobody "$SINK_DIR/mail"
smtp-sink -u nobody -d "$SINK_DIR/mail/%M." "127.0.0.2:$SINK_PORT" 100 >"$SINK_DIR/sink.log" 2>&1 &
rg_on_exit "rg_stop_pid $!"

SM_DIR="$RG_TMP/sendmail"; mkdir -p "$SM_DIR/queue"; chmod 700 "$SM_DIR/queue"
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
ok $? "sendmail.cf built from sendmail-cf with m4"
# Sendmail wants a qualified host name at start, before it reads the .cf;
# with an unqualified one that DNS does not know it sleeps a minute.  So it
# runs in its own UTS namespace named mta.relay.test.
if unshare -u true 2>/dev/null; then
    unshare -u sh -c 'hostname mta.relay.test && exec "$@"' sh \
        "$SM_BIN" -C "$SM_DIR/test.cf" -bd -q1m -L rg-sendmail-test >"$SM_DIR/start.log" 2>&1
else
    "$SM_BIN" -C "$SM_DIR/test.cf" -bd -q1m -L rg-sendmail-test >"$SM_DIR/start.log" 2>&1
fi
if ! rg_wait_port "$SM_PORT" 90; then
    echo "Bail out! Sendmail did not start on port $SM_PORT"
    { cat "$SM_DIR/start.log"; cat "$SM_DIR/sendmail.pid"; ss -tlnp "sport = :$SM_PORT"; } 2>&1 | sed 's/^/# /'
    exit 1
fi
rg_on_exit "kill \$(head -1 '$SM_DIR/sendmail.pid') 2>/dev/null"

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
