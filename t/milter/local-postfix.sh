#!/bin/bash
# Local submission identified by relayguard-sendmail (issue 3): a real
# Postfix with non_smtpd_milters = relayguard-milter, test unix users, and
# the wrapper installed set-group-id to a test group that alone can read
# the local key.
#
#   - the wrapper's mail is tied to the submitter's account (local_users),
#     counted against it (a quota of 3 lets 3 through and bounces the 4th),
#     and the X-Relayguard-Local header is gone at the sink;
#   - forged headers (wrong HMAC, another user's login, too old), sent with
#     the plain sendmail, give no identity (local_submission = optional:
#     the message is the client 127.0.0.1's) or are refused (required);
#   - plain sendmail without the header: the client 127.0.0.1 / refused;
#   - the wrapper under setgid ignores RELAYGUARD_CONF, drops the group
#     before sendmail runs, and never loses bad input (a 1 MB line, NUL
#     bytes, no blank line, nothing at all, CRLF, an inbound header).
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require postfix sendmail smtp-sink openssl useradd userdel groupadd groupdel su python3 flock
WRAPPER_BUILT="$top_builddir/t/milter/relayguard-sendmail-fixed"
rg_require_built "$RG_BIN_MILTER" "$RG_BIN_CLI" "$WRAPPER_BUILT"
rg_local_lock
rg_tmpdir
rg_start_redis
RG_CONF="$RG_TMP/rg.conf"
WCONF="$top_builddir/t/milter/local-sendmail.conf"   # compiled into the wrapper copy

# two test users and the key group, removed at exit
rg_test_user rgls; TUSER=$RG_USER
rg_test_user rgls2; TUSER2=$RG_USER
TUID=$(id -u "$TUSER")

# the key and the wrapper, as an installation has them
rg_local_wrapper rglsk

RG_MILTER_LOG_LEVEL=info rg_milter_conf "$RG_CONF" <<EOF
local_key = $PUB/local.key
local_max_age = 1h
EOF
cat >"$RG_TMP/accounts.conf" <<EOF
account alice {
    local_users = $TUSER
    domains     = example.com
    limit       = quota 3/1d hard
}
account carol {
    local_users = $TUSER2
    domains     = example.com
    limit       = quota 100/1d
}
account bob {
    local_users = rgbob
    domains     = example.com, bob.test
    limit       = quota 100/1d
}
account lo {
    client_networks = 127.0.0.0/8
    domains         = example.com
    limit           = quota 100/1d
}
EOF
rg_milter_load "$RG_TMP/accounts.conf"
rg_milter_postfix_local "$RG_CONF"

# the wrapper's configuration: the same settings, with the private Postfix
# (the milter does not read local_sendmail)
{ cat "$RG_CONF"; echo "local_sendmail = /usr/sbin/sendmail -C $PF_CONF"; } >"$WCONF"
chgrp "$TGROUP" "$WCONF"; chmod 640 "$WCONF"
rg_on_exit "rm -f '$WCONF'"

# what the account's daily quota has charged today (relayguard limit show)
counted() {
    rg_cli --json limit show "$1" | python3 -c '
import json, sys
print(sum(b["used"] for b in json.load(sys.stdin) if b["kind"] == "quota"))'
}
# run a command line as a test user (sanitizers: no leak check in a
# set-group-id process, which cannot be traced)
as() { local u=$1; shift; su -s /bin/sh "$u" -c "ASAN_OPTIONS=detect_leaks=0 $*"; }
wrap() { local u=$1; shift; as "$u" "RELAYGUARD_CONF=/nonexistent '$W' $*"; }
plain() { local u=$1; shift; as "$u" "/usr/sbin/sendmail -C '$PF_CONF' $*"; }
msg() { printf 'From: a@example.com\nTo: b@example.net\nSubject: %s\n\n%s\n' "$1" "${2:-hello}"; }
delivered() {   # messages at the sink with this subject (waits for one)
    rg_wait_for 20 bash -c "grep -rlF -- 'Subject: $1' '$SINK_DIR/mail' | grep -q ."
    grep -rlF -- "Subject: $1" "$SINK_DIR/mail" 2>/dev/null | xargs -r grep -L '^From: .*MAILER-DAEMON@' | wc -l
}
bounced() {     # bounces of the message with this subject (waits for one)
    rg_wait_for 20 bash -c "grep -rlF -- 'Subject: $1' '$SINK_DIR/mail' | xargs -r grep -l '^From: .*MAILER-DAEMON@' | grep -q ."
    grep -rlF -- "Subject: $1" "$SINK_DIR/mail" 2>/dev/null | xargs -r grep -l '^From: .*MAILER-DAEMON@' | wc -l
}
token_hmac() {  # a token for uid/login/time signed with the real key (the test is root)
    python3 - "$PUB/local.key" "$1" "$2" "$3" <<'PY'
import hmac, hashlib, sys
key = open(sys.argv[1], "rb").read().rstrip(b"\r\n")
part = "v=1; u=%s; l=%s; t=%s; n=0123456789abcdef0123456789abcdef" % tuple(sys.argv[2:5])
print(part + "; s=" + hmac.new(key, part.encode(), hashlib.sha256).hexdigest())
PY
}

# --- 1. the wrapper as set-group-id program ----------------------------------
# (wrap sets RELAYGUARD_CONF=/nonexistent, which the set-group-id wrapper ignores)
su -s /bin/sh "$TUSER" -c "cat '$PUB/local.key'" >/dev/null 2>&1
ok $((! $?)) "$TUSER cannot read the key itself"
# the group is gone before sendmail runs: a stand-in sendmail shows the ids
printf '#!/bin/sh\nid -G >"$1"; cat >>"$1"\n' >"$PUB/show"; chmod 755 "$PUB/show"
cp "$WCONF" "$WCONF.real"
sed -i "s|^local_sendmail = .*|local_sendmail = $PUB/show|" "$WCONF"
touch "$RG_TMP/ids"; chown "$TUSER" "$RG_TMP/ids"
msg "ids" | wrap "$TUSER" "'$RG_TMP/ids'"
ok $? "the set-group-id wrapper ignores RELAYGUARD_CONF and runs the configured sendmail"
tgid=$(getent group "$TGROUP" | cut -d: -f3)
grep -qw "$tgid" <(head -1 "$RG_TMP/ids")
ok $((! $?)) "sendmail runs without the key group (ids: $(head -1 "$RG_TMP/ids"))"
like "$(sed -n 2p "$RG_TMP/ids")" "^X-Relayguard-Local: v=1; u=$TUID; l=$TUSER; t=[0-9]+; n=[0-9a-f]{32}; s=[0-9a-f]{64}\$" \
    "the message gets the token header on top"
cp "$WCONF.real" "$WCONF"; rm -f "$WCONF.real"

# --- 2. optional: forged and missing tokens fall to the client 127.0.0.1 ----
msg plain-none | plain "$TUSER" -t -f a@example.com
ok $? "plain sendmail, no token: submitted"
is "$(delivered plain-none)" 1 "... delivered"
is "$(counted lo 100)" 1 "... charged to lo (the client 127.0.0.1)"

good=$(token_hmac "$TUID" "$TUSER" "$(date +%s)")
sig=${good##*s=}
forged_bob="v=1; u=$TUID; l=rgbob; t=$(date +%s); n=0123456789abcdef0123456789abcdef; s=$sig"
old=$(token_hmac "$TUID" "$TUSER" $(( $(date +%s) - 7200 )))
wrong="v=1; u=$TUID; l=$TUSER; t=$(date +%s); n=0123456789abcdef0123456789abcdef; s=$(printf '%064d' 0)"
{ printf 'X-Relayguard-Local: %s\n' "$forged_bob"; msg forged-login; } | plain "$TUSER" -t -f a@example.com
{ printf 'X-Relayguard-Local: %s\n' "$old"; msg forged-old; } | plain "$TUSER" -t -f a@example.com
{ printf 'X-Relayguard-Local: %s\n' "$wrong"; msg forged-hmac; } | plain "$TUSER" -t -f a@example.com
is "$(delivered forged-login)" 1 "another user's login in a token: delivered"
is "$(delivered forged-old)" 1 "a two-hour-old token: delivered"
is "$(delivered forged-hmac)" 1 "a wrong HMAC: delivered"
is "$(counted lo 100)" 4 "... all three charged to lo, none to alice or bob"
is "$(counted bob 100)" 0 "nothing charged to bob"
rg_wait_for 10 grep -q "ignoring the X-Relayguard-Local header: expired" "$MILTER_LOG"
for why in "bad signature (uid=$TUID login=rgbob)" "expired (uid=$TUID login=$TUSER)" "bad signature (uid=$TUID login=$TUSER)"; do
    grep -qE "^.*: [0-9A-F]+: ignoring the X-Relayguard-Local header: $(printf '%s' "$why" | sed 's/[()]/\\&/g')" "$MILTER_LOG"
    ok $? "logged with the queue id: $why"
done
is "$(grep -rl '^X-Relayguard-Local:' "$SINK_DIR/mail" | wc -l)" 0 "no X-Relayguard-Local header at the sink"
# a token signed for bob's login is refused for a domain only bob may use
{ printf 'X-Relayguard-Local: %s\n' "$forged_bob"; printf 'From: a@bob.test\nTo: b@example.net\nSubject: forged-bobdomain\n\nx\n'; } |
    plain "$TUSER" -t -f a@bob.test
is "$(bounced forged-bobdomain)" 1 "a forged token for bob does not lend bob's domain (bounced)"

# --- 3. the wrapper: the submitter's account, its limit -----------------------
for i in 1 2; do
    msg "wrapped-$i" | wrap "$TUSER" -t -i -f a@example.com
    ok $? "relayguard-sendmail -t as $TUSER: submitted ($i)"
done
is "$(delivered wrapped-1)" 1 "first delivered"
is "$(delivered wrapped-2)" 1 "second delivered"
is "$(counted alice 3)" 2 "both charged to alice"
is "$(counted lo 100)" 4 "not to lo"
f=$(grep -rlF -- "Subject: wrapped-1" "$SINK_DIR/mail" | head -1)
grep -q '^X-Relayguard-Local' "$f"; ok $((! $?)) "the token header is gone at the sink"
grep -q "^Received: by local.relay.test (Postfix, from userid $TUID)" "$f"
ok $? "Postfix's own Received shows uid $TUID"
is "$(grep -c '^DKIM-Signature:' "$f")" 2 "signed for example.com"
is "$(rg_redis XRANGE rg:events - + | grep -cx alice)" 4 "events of account alice (two RCPT, two EOM)"

# --- 4. required: no valid token, no mail --------------------------------------
echo "local_submission = required" >>"$RG_CONF"
kill -HUP "$MILTER_PID"
rg_wait_for 10 grep -q "reload: .* read" "$MILTER_LOG"
msg req-none | plain "$TUSER" -t -f a@example.com
is "$(bounced req-none)" 1 "required: plain sendmail without a token bounces"
is "$(delivered req-none)" 0 "... and is not delivered"
grep -q "local submission without a valid X-Relayguard-Local header" "$PF_LOG"
ok $? "... with a reply that says why"
{ printf 'X-Relayguard-Local: %s\n' "$old"; msg req-old; } | plain "$TUSER" -t -f a@example.com
is "$(bounced req-old)" 1 "required: an expired token bounces"
msg wrapped-3 | wrap "$TUSER" -t -oi -f a@example.com b@example.net
is "$(delivered wrapped-3)" 1 "required: the wrapper's third message is delivered"
is "$(counted alice 3)" 3 "alice: 3 of 3"
msg wrapped-4 | wrap "$TUSER" -t -f a@example.com
is "$(bounced wrapped-4)" 1 "the fourth message goes over alice's quota of 3: bounced"
is "$(delivered wrapped-4)" 0 "... not delivered"
grep -q "milter-reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 5.7.1 quota quota-3-1d-msg (3/1d) of account alice reached" "$PF_LOG"
ok $? "... refused for alice's quota"
is "$(counted alice 3)" 3 "alice: still 3 (a refusal is not charged)"
is "$(counted lo 100)" 4 "lo: nothing more"

# --- 5. bad input through the wrapper is never lost ------------------------------
big=$(head -c 1000000 /dev/zero | tr '\0' x)
{ msg bad-longline; printf '%s\n' "$big"; } | wrap "$TUSER2" -t -f a@example.com
ok $? "a 1 MB line: submitted"
printf 'From: a@example.com\nTo: b@example.net\nSubject: bad-nul\n\nbefore\0after\001\377\n' |
    wrap "$TUSER2" -t -f a@example.com
ok $? "NUL and 8-bit bytes: submitted"
printf 'From: a@example.com\nTo: b@example.net\nSubject: bad-noblank' | wrap "$TUSER2" -t -f a@example.com
ok $? "headers only, no blank line, no final newline: submitted"
printf 'From: a@example.com\r\nTo: b@example.net\r\nSubject: bad-crlf\r\nX-Relayguard-Local: %s\r\n\r\nbody\r\n' "$forged_bob" |
    wrap "$TUSER2" -t -f a@example.com
ok $? "CRLF with an inbound token for bob: submitted"
wrap "$TUSER2" -f a@example.com b@example.net </dev/null
ok $? "nothing at all on stdin: submitted"
is "$(delivered bad-longline)" 1 "the 1 MB line arrived"
f=$(grep -rlF -- "Subject: bad-longline" "$SINK_DIR/mail" | head -1)
body=$(python3 -c '
import sys
m = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n")
b = m.split(b"\n\n", 1)[1].replace(b"\n ", b"").replace(b"\n", b"")
print(b == b"hello" + b"x" * 1000000)' "$f")
is "$body" True "... with all its bytes (hello and a million x, folded or not)"
is "$(delivered bad-nul)" 1 "the NUL message arrived"
is "$(delivered bad-noblank)" 1 "the message without a blank line arrived"
is "$(delivered bad-crlf)" 1 "the CRLF message arrived"
for ((i = 0; i < 100; i++)); do [ "$(counted carol 100)" = 5 ] && break; sleep 0.2; done
is "$(counted carol 100)" 5 "all five charged to carol ($TUSER2), the inbound token for bob ignored"
is "$(counted bob 100)" 0 "nothing charged to bob"
# (bounces quote the refused originals, tokens included: see relayguard-sendmail(8))
is "$(grep -rl '^X-Relayguard-Local:' "$SINK_DIR/mail" | xargs -r grep -L '^From: .*MAILER-DAEMON@' | wc -l)" 0 \
    "still no X-Relayguard-Local header in any delivered message"
is "$(find "$PF_DIR/spool/maildrop" -type f | wc -l)" 0 "nothing left in the maildrop"

# --- 6. the wrapper's own failures: a clear error, exit 75, sendmail not run ------
chmod 644 "$PUB/local.key"
out=$(msg unsafe | wrap "$TUSER" -t 2>&1); rc=$?
chmod 640 "$PUB/local.key"
is "$rc" 75 "a key readable by others: EX_TEMPFAIL"
like "$out" "local_key $PUB/local.key: readable or writable by others.*the message was not sent" "... and says why"
chgrp root "$W"; chmod 2755 "$W"
out=$(msg nokey | wrap "$TUSER" -t 2>&1); rc=$?
is "$rc" 75 "a wrapper that is not set-group-id to the key's group: EX_TEMPFAIL"
like "$out" "Permission denied; the message was not sent" "... and says why"

# --- 7. local mail relayed over SMTP (Sendmail's MSP): local_smtp_clients ------
echo "local_smtp_clients = 127.0.0.1" >>"$RG_CONF"
kill -HUP "$MILTER_PID"
rg_wait_for 10 bash -c "[ \$(grep -c 'reload: .* read' '$MILTER_LOG') -ge 2 ]"
tok=$(token_hmac "$(id -u "$TUSER2")" "$TUSER2" "$(date +%s)")
printf 'X-Relayguard-Local: %s\r\nFrom: a@example.com\r\nTo: b@example.net\r\nSubject: smtp-token\r\n\r\nx\r\n' "$tok" >"$RG_TMP/smtp-token.eml"
r=$(rg_send "$PF_PORT" "" a@example.com b@example.net --data "$RG_TMP/smtp-token.eml")
like "$r" "^250 " "SMTP from a local_smtp_clients address with a token: accepted"
is "$(counted carol 100)" 6 "... charged to carol ($TUSER2)"
is "$(delivered smtp-token)" 1 "... delivered"
f=$(grep -rlF -- "Subject: smtp-token" "$SINK_DIR/mail" | head -1)
grep -q '^X-Relayguard-Local' "$f"; ok $((! $?)) "... without the token header"
printf 'From: a@example.com\r\nTo: b@example.net\r\nSubject: smtp-none\r\n\r\nx\r\n' >"$RG_TMP/smtp-none.eml"
r=$(rg_send "$PF_PORT" "" a@example.com b@example.net --data "$RG_TMP/smtp-none.eml")
is "$r" "550 5.7.1 local submission without a valid X-Relayguard-Local header (submit through relayguard-sendmail)" \
    "required: SMTP from there without a token is refused at end of data"
printf 'X-Relayguard-Local: %s\r\nFrom: a@example.com\r\nTo: b@example.net\r\nSubject: smtp-old\r\n\r\nx\r\n' "$old" >"$RG_TMP/smtp-old.eml"
r=$(rg_send "$PF_PORT" "" a@example.com b@example.net --data "$RG_TMP/smtp-old.eml")
like "$r" "^550 5.7.1 local submission without a valid" "required: ... and with an expired token"
is "$(counted lo 100)" 4 "lo: nothing more"

rg_stop_milter; is "$?" 0 "milter: clean exit"
rg_log_clean "$MILTER_LOG"; ok $? "no sanitizer reports in the milter log"
done_testing
