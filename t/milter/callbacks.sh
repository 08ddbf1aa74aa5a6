#!/bin/bash
# relayguard-milter driven over the real milter protocol by miltertest:
# every callback and verdict, forged headers, aborts, malformed and extreme
# input.  The Lua scripts (t/milter/lua/) check the replies and the header
# edits; this wrapper checks the codes and texts in the milter's log and
# verifies the signatures of the messages the scripts rebuild.
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require miltertest openssl opendkim
"$RG_PY" -c 'import dkim, nacl' 2>/dev/null || skip_all "python3-dkim/python3-nacl not installed"
rg_require_built "$RG_BIN_MILTER" "$RG_BIN_CLI"
rg_tmpdir
rg_start_redis
RG_CONF="$RG_TMP/rg.conf"
rg_milter_conf "$RG_CONF" <<EOF2
milter {
    header_secret = a-test-secret-of-some-length
}
EOF2
cat >"$RG_TMP/accounts.conf" <<'EOF2'
account alice {
    logins           = alice@relay.test
    domains          = example.com
    feedback_id      = c1:alice:news:relayguard
    list_unsubscribe = "<https://u.example.com/u?id=1>, <mailto:u@example.com>"
    bulk             = yes
    account_header   = X-AuthUser
}
account small {
    logins   = small@relay.test
    domains  = ed.test
    max_size = 2000
}
account one {
    logins  = one@relay.test
    domains = one.test
    limit   = quota 1/1d hard
}
account net {
    client_networks = 198.51.100.0/24
    domains         = rsa.test
    account_header  = X-Relayguard-Account hmac
}
EOF2
rg_cli load "$RG_TMP/accounts.conf" >/dev/null || { echo "Bail out! relayguard load failed"; exit 1; }
rg_cli suppress add gone@example.net --reason hard-bounce >/dev/null
rg_milter_txt "$RG_CONF" "$RG_TMP/keys.txt"
rg_start_milter "$RG_CONF"
OUT="$RG_TMP/out"; mkdir -p "$OUT"

mt() {  # mt NAME: run t/milter/lua/NAME.lua
    local log="$RG_TMP/mt-$1.log"
    miltertest -D sock="$MILTER_SOCK" -D out="$OUT" -D lib="$top_srcdir/t/milter/lua/lib.lua" \
        -s "$top_srcdir/t/milter/lua/$1.lua" >"$log" 2>&1
    local rc=$?
    ok $rc "miltertest $1.lua"
    [ $rc = 0 ] || sed 's/^/# /' "$log" | tail -15
}
logline() { grep -F -- "$1" "$MILTER_LOG" | head -1; }

mt accept
r=$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$OUT/accept.eml")
is "$r" "ok 2" "accept: both signatures verify with dkimpy (added headers included)"
rg_verify_opendkim "$RG_TMP/keys.txt" "$OUT/accept.eml"; ok $? "accept: OpenDKIM verifies"
like "$(logline 'QACCEPT1: accept: END-OF-MESSAGE')" "account=alice login=alice@relay.test .*nrcpt=2" \
    "accept: end of message with 2 recipients logged"
is "$(rg_redis EXISTS rg:c:test:QACCEPT1)" "1" "accept: the charged marker under the queue id"

mt refusals
like "$(logline "QUNKNOWN: reject")" "reject: RCPT .*550 5.7.1 login nobody@relay.test has no relay account" "unknown login: 550 at RCPT"
like "$(logline "QFOREIGN: reject")" "reject: RCPT .*553 5.7.1 <a@foreign.test>: sender domain foreign.test is not allowed for account alice" \
    "foreign envelope sender: 553 at RCPT"
like "$(logline "QSIZE: reject")" "reject: RCPT .*552 5.3.4 message size 999999 exceeds" "SIZE= over max_size: 552 at RCPT"
like "$(logline 'QSUPP: reject: RCPT')" "550 5.7.1 <gone@example.net>: suppressed \(hard-bounce since" "suppressed recipient: 550 at RCPT"
like "$(logline 'QSUPP: reject: END-OF-HEADERS')" "550 5.7.1 header From domain bank.test is not allowed for account alice" \
    "foreign header From: 550 at end of headers"
like "$(logline "QTWOFROM: reject")" "550 5.7.1 message From header has several or unreadable addresses" "two From headers: 550"
like "$(logline "QNOFROM: reject")" "550 5.7.1 message has no From header address" "no From header: 550"
like "$(logline 'QBIGEOM: reject')" "END-OF-MESSAGE .*552 5.3.4" "size at end of message: 552"
like "$(logline 'QONE1: accept: END-OF-MESSAGE')" "account=one" "quota: the first message is charged"
like "$(logline 'QONE2: reject')" "RCPT .*550 5.7.1 quota quota-1-1d-msg \(1/1d\) of account one reached" \
    "quota: the second is refused (550 at RCPT)"

mt nonsmtp
like "$(logline 'QNONSMTP: reject: RCPT')" "550 5.7.1 <gone@example.net>: suppressed" \
    "non-SMTP session (client port 0): the suppressed recipient is decided at RCPT"
like "$(logline 'QSMTPSUPP: reject: RCPT')" "550 5.7.1 <gone@example.net>: suppressed" \
    "SMTP session: refused at RCPT"

mt notours
like "$(logline QINBOUND)" "dunno: RCPT" "not relayguard's mail: dunno"

mt malformed
for q in QLONGHDR QBARELF QUTF8 QEMPTY QRCPT1000 QBIG30M; do
    r=$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$OUT/$q.eml" 2>&1)
    is "$r" "ok 2" "$q: the milter's signatures verify with dkimpy"
done
for q in QLONGHDR QUTF8 QEMPTY QBIG30M; do
    rg_verify_opendkim "$RG_TMP/keys.txt" "$OUT/$q.eml"; ok $? "$q: OpenDKIM verifies"
done
like "$(logline 'QRCPT1000: accept: END-OF-MESSAGE')" "nrcpt=1000" "1,000 recipients counted at end of message"

# SIGHUP reloads (keys and accounts) and the milter keeps serving
kill -HUP "$MILTER_PID"
rg_wait_for 5 grep -q "reload: .* read" "$MILTER_LOG"; ok $? "SIGHUP: reloaded"
kill -0 "$MILTER_PID" 2>/dev/null; ok $? "SIGHUP: still running"
mt accept
rg_stop_milter; rc=$?; is "$rc" 0 "SIGTERM: clean exit (status 0)"
rg_log_clean "$MILTER_LOG"; ok $? "no sanitizer reports in the milter log"
done_testing
