#!/bin/bash
# relayguard-milter behind a real Postfix (SASL, Redis, smtp-sink), alone and
# together with relayguard-policyd: signed mail arrives and verifies with
# dkimpy and OpenDKIM (RSA, Ed25519, dual), refusals get the engine's codes,
# suppression and limits work from the milter alone, and with both adapters
# on one message it is charged once.
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require postfix swaks smtp-sink opendkim openssl curl
"$RG_PY" -c 'import dkim, nacl' 2>/dev/null || skip_all "python3-dkim/python3-nacl not installed"
rg_require_built "$RG_BIN_MILTER" "$RG_BIN_CLI"
rg_tmpdir
rg_start_redis
RG_CONF="$RG_TMP/rg.conf"
MPORT=$(rg_free_port)
rg_milter_conf "$RG_CONF" <<EOF0
milter {
    metrics = inet:127.0.0.1:$MPORT
}
EOF0
cat >"$RG_TMP/accounts.conf" <<'EOF2'
account alice {
    logins         = alice@relay.test
    domains        = example.com, rsa.test, ed.test
    feedback_id    = c1:alice:news:relayguard
    account_header = X-AuthUser
}
account quota {
    logins  = quota@relay.test
    domains = example.com
    limit   = quota 2/1d hard
}
account both {
    logins  = both@relay.test
    domains = example.com
    limit   = quota 100/1d per=rcpt
}
EOF2
rg_cli load "$RG_TMP/accounts.conf" >/dev/null || { echo "Bail out! relayguard load failed"; exit 1; }
rg_cli suppress add gone@example.net --reason complaint >/dev/null
rg_milter_txt "$RG_CONF" "$RG_TMP/keys.txt"
rg_start_sink
rg_start_milter "$RG_CONF" inet

# Postfix with the milter alone: no policy service
POLICYD_PORT=0
rg_start_postfix solo \
    "smtpd_recipient_restrictions =" "smtpd_end_of_data_restrictions =" \
    "smtpd_milters = inet:127.0.0.1:$MILTER_PORT" "non_smtpd_milters = inet:127.0.0.1:$MILTER_PORT" \
    "milter_default_action = tempfail" "milter_protocol = 6"
for u in alice quota both; do rg_sasl_user solo "$u@relay.test"; done
P=$PF_PORT

# --- signed mail verifies (RSA, Ed25519, dual) -----------------------------
declare -A want=([example.com]=2 [rsa.test]=1 [ed.test]=1)
for dom in example.com rsa.test ed.test; do
    tag="sig-$dom-$RANDOM"
    r=$(rg_send $P alice@relay.test "a@$dom" b@example.net --header "Subject: $tag" \
        --header "X-AuthUser: forged" --body "signed by relayguard for $dom")
    like "$r" "^250 " "$dom: accepted"
    rg_wait_for 20 bash -c "grep -rlF -- '$tag' '$SINK_DIR/mail' | grep -q ."
    f=$(grep -rlF -- "$tag" "$SINK_DIR/mail" | head -1)
    if [ -z "$f" ]; then fail "$dom: reached the sink"; continue; fi
    is "$(grep -c '^DKIM-Signature:' "$f")" "${want[$dom]}" "$dom: ${want[$dom]} signature(s)"
    is "$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$f")" "ok ${want[$dom]}" "$dom: dkimpy verifies"
    rg_verify_opendkim "$RG_TMP/keys.txt" "$f"; ok $? "$dom: OpenDKIM verifies"
    is "$RG_OPENDKIM_PASS" "${want[$dom]}" "$dom: OpenDKIM passes every signature"
    is "$(grep -c '^X-AuthUser:' "$f")" 1 "$dom: one X-AuthUser (the forged one removed)"
    grep -q '^X-AuthUser: alice@relay.test' "$f"; ok $? "$dom: X-AuthUser is the login"
    grep -q '^Feedback-ID: c1:alice:news:relayguard' "$f"; ok $? "$dom: Feedback-ID added"
done

# a 1 MB header line and a 0-byte body, through Postfix
tag="longhdr-$RANDOM"
python3 - "$P" "$tag" <<'PY'
import smtplib, sys
port, tag = int(sys.argv[1]), sys.argv[2]
msg = ("From: a@example.com\r\nTo: b@example.net\r\nSubject: %s\r\nX-Long: %s\r\n\r\nbody\r\n"
       % (tag, "y" * 1048576)).encode()
s = smtplib.SMTP("127.0.0.1", port, "client.test"); s.login("alice@relay.test", "secret")
s.sendmail("a@example.com", ["b@example.net"], msg); s.quit()
tag2 = tag + "-empty"
msg = ("From: a@example.com\r\nTo: b@example.net\r\nSubject: %s\r\n\r\n" % tag2).encode()
s = smtplib.SMTP("127.0.0.1", port, "client.test"); s.login("alice@relay.test", "secret")
s.sendmail("a@example.com", ["b@example.net"], msg); s.quit()
PY
ok $? "1 MB header line and 0-byte body: accepted"
printf 'py-longhdr\npy-empty\n' >>"$RG_TMP/queued.log"     # for rg_check_delivered
for t in "$tag" "$tag-empty"; do
    rg_wait_for 20 bash -c "grep -rlF -- 'Subject: $t' '$SINK_DIR/mail' | grep -q ."
    f=$(grep -rlF -- "Subject: $t" "$SINK_DIR/mail" | head -1)
    is "$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$f" 2>&1)" "ok 2" "$t: dkimpy verifies"
    rg_verify_opendkim "$RG_TMP/keys.txt" "$f"; ok $? "$t: OpenDKIM verifies"
done

# --- refusals from the milter alone ---------------------------------------
r=$(rg_send $P alice@relay.test a@example.com b@example.net --header "From: Boss <ceo@bank.test>")
is "$r" "550 5.7.1 header From domain bank.test is not allowed for account alice" "foreign header From: 550 at end of data"
r=$(rg_send $P alice@relay.test a@foreign.test b@example.net)
is "$r" "553 5.7.1 <a@foreign.test>: sender domain foreign.test is not allowed for account alice" "foreign envelope sender: 553"
r=$(rg_send $P alice@relay.test a@example.com gone@example.net)
like "$r" "^550 5.7.1 <gone@example.net>: suppressed \(complaint since [0-9-]+\)" "suppressed recipient: 550 at RCPT"
for i in 1 2; do
    r=$(rg_send $P quota@relay.test q@example.com b@example.net)
    like "$r" "^250 " "quota 2/1d: message $i accepted"
done
r=$(rg_send $P quota@relay.test q@example.com b@example.net)
is "$r" "550 5.7.1 quota quota-2-1d-msg (2/1d) of account quota reached" "quota 2/1d: the third refused"
is "$(rg_redis HGET "rg:h:a:quota:quota-2-1d-msg" "q:$(date -u +%Y%m%d)")" 2 "quota: charged 2"

# --- policyd and milter together: checked at both, charged once ------------
if [ -x "$RG_BIN_POLICYD" ]; then
    rg_start_policyd "$RG_CONF"
    rg_start_postfix both \
        "smtpd_milters = inet:127.0.0.1:$MILTER_PORT" "milter_default_action = tempfail" \
        "milter_protocol = 6"
    rg_sasl_user both both@relay.test
    rg_wait_policyd_ready "$POLICYD_PORT" protocol_state=RCPT sasl_username=alice@relay.test \
        sender=a@example.com recipient=x@example.net client_address=127.0.0.1 instance=warm >/dev/null
    for i in 1 2 3; do
        r=$(rg_send "${RG_PF_PORT[both]}" both@relay.test b@example.com "r1@example.net,r2@example.net" \
            --header "Subject: together-$i")
        like "$r" "^250 " "policyd + milter: message $i accepted"
    done
    is "$(rg_redis HGET "rg:h:a:both:quota-100-1d-rcpt" "q:$(date -u +%Y%m%d)")" 6 \
        "policyd + milter: 3 messages of 2 recipients charged once (6)"
    is "$(rg_redis HGETALL rg:h:a:both:quota-100-1d-rcpt | awk 'NR % 2 { f = $1; next } f ~ /^[0-9]/ { s += $1 } END { print s + 0 }')" 0 \
        "policyd + milter: no holds left"
    rg_wait_for 20 bash -c "[ \$(grep -rlF 'together-' '$SINK_DIR/mail' | wc -l) -ge 3 ]"
    f=$(grep -rlF -- "together-3" "$SINK_DIR/mail" | head -1)
    is "$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$f")" "ok 2" "policyd + milter: signed and verifies"
    r=$(rg_send "${RG_PF_PORT[both]}" both@relay.test b@example.com gone@example.net)
    like "$r" "^550 5.7.1 .*<gone@example.net>: suppressed \(complaint" "policyd + milter: suppressed recipient refused"
fi

rg_check_delivered

# The milter's Prometheus endpoint counted what it did.
m=$(curl -sf "http://127.0.0.1:$MPORT/metrics")
ok $? "milter metrics: GET /metrics answers"
metric() { printf '%s\n' "$m" | awk -v k="$1" '$1 == k { print $2 }'; }
like "$(metric 'relayguard_dkim_signatures_total{algorithm="rsa-sha256"}')" '^[1-9]' \
    "milter metrics: RSA signatures counted ($(metric 'relayguard_dkim_signatures_total{algorithm="rsa-sha256"}'))"
like "$(metric 'relayguard_dkim_signatures_total{algorithm="ed25519-sha256"}')" '^[1-9]' \
    "milter metrics: Ed25519 signatures counted"
like "$(metric 'relayguard_decisions_total{verdict="accept",reason="ok"}')" '^[1-9]' \
    "milter metrics: accepted decisions counted"
like "$(metric 'relayguard_decisions_total{verdict="reject",reason="header_from"}')" '^[1-9]' \
    "milter metrics: the header From refusal counted"
printf '%s\n' "$m" | grep -q '^relayguard_build_info{daemon="relayguard-milter",version="[^"]*"} 1$'
ok $? "milter metrics: build info names the milter"
rg_stop_milter; is "$?" 0 "milter: clean exit"
rg_log_clean "$MILTER_LOG"; ok $? "no sanitizer reports in the milter log"
done_testing
