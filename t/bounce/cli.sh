#!/bin/bash
# t/bounce/cli.sh - "relayguard bounce" against a private Redis: the loop
# (token -> record -> suppression, soft-bounce counting, complaints,
# unsubscribes, events), forged and tampered tokens that suppress nothing,
# malformed messages without a crash, and the sysexits codes an MTA sees.
. "${top_srcdir:-$(dirname "$0")/../..}/t/lib.sh"
[ -x "$RG_BIN_CLI" ] || skip_all "relayguard not built ($RG_BIN_CLI)"
rg_require python3
rg_tmpdir
rg_start_redis
CORPUS="$top_srcdir/t/bounce/corpus"
EX_DATAERR=65 EX_TEMPFAIL=75

mkdir -m 700 "$RG_TMP/keys"
printf 'k2-secret-%s\n' 0123456789abcdef > "$RG_TMP/keys/k2"
chmod 600 "$RG_TMP/keys/k2"
CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$CONF" <<EOC
bounce {
    domain = bounce.test
    key = k2 $RG_TMP/keys/k2
    key = k1 an-old-inline-secret-0123456789 retired=2026-01-01
    soft_bounces = 3/7d
}
EOC
# the attacker's config: same key id, a secret of their own
rg_write_conf "$RG_TMP/forger.conf" <<EOC
bounce {
    domain = bounce.test
    key = k2 guessed-secret-0123456789abcdef
}
EOC

bounce() {   # bounce ARGS... < message: sets OUT, ERR, RC
    OUT=$("$RG_BIN_CLI" -c "$CONF" bounce "$@" 2>"$RG_TMP/stderr")
    RC=$?
    ERR=$(cat "$RG_TMP/stderr")
}
supp() {     # supp ADDR [ACCOUNT]: the stored suppression value, or ""
    rg_redis HGET "rg:s:a:${2:-acme}" "$1"
}

# --- minting ---------------------------------------------------------------
RP=$("$RG_BIN_CLI" -c "$CONF" bounce token acme billing@shop.test alice@example.net)
is "$?" 0 "token: minted"
like "$RP" '^bounces\+k2-[a-z2-7]{39}@bounce\.test$' "token: bounces+KEYID-BODY@DOMAIN"
local_part=${RP%@*}
ok "$([ ${#local_part} -le 64 ]; echo $?)" "token: local part ${#local_part} <= 64 octets"
id=$(rg_redis KEYS 'rg:v:*' | head -1)
is "$(rg_redis HGET "$id" a)|$(rg_redis HGET "$id" r)" "acme|alice@example.net" "token: record holds account and recipient"
ttl=$(rg_redis TTL "$id")
ok "$([ "$ttl" -gt 1200000 ] && [ "$ttl" -le 1209600 ]; echo $?)" "token: record expires after token_ttl (14d)"
"$RG_BIN_CLI" -c "$RG_TMP/forger.conf" bounce token acme a@b.test x@y.test >/dev/null 2>&1
ok $? "token: the forger can mint with their own key (against their own Redis)"

# --- a hard bounce suppresses ------------------------------------------------
bounce --rcpt "$RP" < "$CORPUS/postfix-user-unknown.eml"
is "$RC" 0 "hard: exit 0"
like "$OUT" '^hard 5\.1\.1 alice@example\.net: suppressed$' "hard: reported"
like "$(supp alice@example.net)" '^hard-bounce\|[0-9]+\|0\|bounce 5\.1\.1 status 5\.1\.1$' "hard: on the account's list"
"$RG_BIN_CLI" -c "$CONF" suppress check alice@example.net --account acme >/dev/null
is "$?" 0 "hard: relayguard suppress check agrees"
ev=$(rg_redis XREVRANGE rg:events + - COUNT 1)
like "$(echo $ev)" 'type bounce\.hard .*stage bounce .*account acme .*rcpt alice@example\.net .*reason suppressed' "hard: event written"
hour=$(date -u +%Y%m%d%H)
is "$(rg_redis HGET "rg:st:acme:$hour" b:hard)" 1 "hard: stats counter b:hard"
bounce --rcpt "$RP" < "$CORPUS/postfix-user-unknown.eml"
like "$OUT" 'already_suppressed' "hard: the same bounce again changes nothing"

# the return path found in Delivered-To when the MTA passes no --rcpt
RP2=$("$RG_BIN_CLI" -c "$CONF" bounce token acme billing@shop.test dave@gmail.example)
sed "s/^Delivered-To: .*/Delivered-To: $RP2/" "$CORPUS/gmail-no-such-user.eml" > "$RG_TMP/m"
bounce < "$RG_TMP/m"
is "$RC|$OUT" "0|hard 5.1.1 dave@gmail.example: suppressed" "hard: token from Delivered-To"

# --- forged and tampered tokens suppress nothing ---------------------------------
RPB=$("$RG_BIN_CLI" -c "$CONF" bounce token acme billing@shop.test bob@example.net)
tok=${RPB#bounces+}; tok=${tok%@*}
c=${tok:10:1}; [ "$c" = a ] && r=b || r=a
tampered="bounces+${tok:0:10}$r${tok:11}@bounce.test"
bounce --rcpt "$tampered" < "$CORPUS/postfix-user-unknown.eml"
is "$RC|$OUT" "0|refused: token bad_mac" "tampered: refused, exit 0"
like "$ERR" 'refused token .*bad_mac.*nothing suppressed' "tampered: a log line"
FORGED=$("$RG_BIN_CLI" -c "$RG_TMP/forger.conf" bounce token acme x@y.test bob@example.net)
bounce --rcpt "$FORGED" < "$CORPUS/postfix-user-unknown.eml"
is "$RC|$OUT" "0|refused: token bad_mac" "forged (own secret, same key id): refused"
bounce --rcpt "bounces+k9-${tok:3}@bounce.test" < "$CORPUS/postfix-user-unknown.eml"
is "$OUT" "refused: token unknown_key" "forged (unknown key id): refused"
bounce --rcpt "bounces+k2-short@bounce.test" < "$CORPUS/postfix-user-unknown.eml"
is "$OUT" "refused: token malformed" "malformed token: refused"
is "$(supp bob@example.net)" "" "forged/tampered: bob is not suppressed"
ev=$(rg_redis XREVRANGE rg:events + - COUNT 1)
like "$(echo $ev)" 'type bounce\.refused .*reason malformed' "refused: an event"
bounce --rcpt "someone@elsewhere.test" < "$CORPUS/postfix-user-unknown.eml"
is "$RC|$OUT" "0|ignored: no relayguard token" "no token: ignored with exit 0"

# a genuine token whose record is gone (expired in Redis)
RPX=$("$RG_BIN_CLI" -c "$CONF" bounce token acme a@shop.test zed@example.net)
for k in $(rg_redis KEYS 'rg:v:*'); do [ "$(rg_redis HGET "$k" r)" = zed@example.net ] && rg_redis DEL "$k" >/dev/null; done
bounce --rcpt "$RPX" < "$CORPUS/postfix-user-unknown.eml"
is "$RC|$OUT|$(supp zed@example.net)" "0|ignored: unknown token|" "record gone: ignored, nothing suppressed"

# --- multi-recipient: a bounce suppresses only a recipient of the message ----------
RPM=$("$RG_BIN_CLI" -c "$CONF" bounce token acme news@shop.test alice@example.net bob@example.net carl@example.net)
bounce --rcpt "$RPM" < "$CORPUS/postfix-multi.eml"
like "$OUT" 'delayed 4\.2\.2 bob@example\.net: recorded' "multi: bob's delay recorded"
is "$(supp bob@example.net)" "" "multi: a delay suppresses nothing"
sed 's/alice@example.net/mallory@example.net/g' "$CORPUS/postfix-user-unknown.eml" > "$RG_TMP/m"
bounce --rcpt "$RPM" < "$RG_TMP/m"
like "$OUT" 'mallory@example\.net: not a recipient' "multi: a bounce naming a stranger"
is "$(supp mallory@example.net)" "" "multi: the stranger is not suppressed"
sed 's/alice@example.net/carl@example.net/g' "$CORPUS/postfix-user-unknown.eml" > "$RG_TMP/m"
bounce --rcpt "$RPM" < "$RG_TMP/m"
like "$(supp carl@example.net)" '^hard-bounce' "multi: carl (a recipient) suppressed"

# --- soft bounces: N within M -----------------------------------------------------
RPS=$("$RG_BIN_CLI" -c "$CONF" bounce token acme a@shop.test erin@gmail.example)
for i in 1 2; do
    sed "s/^Message-ID: .*/Message-ID: <soft-$i@x>/" "$CORPUS/gmail-over-quota.eml" > "$RG_TMP/soft$i"
    bounce --rcpt "$RPS" < "$RG_TMP/soft$i"
done
bounce --rcpt "$RPS" < "$RG_TMP/soft2"       # the MTA retried the same bounce
is "$OUT|$(supp erin@gmail.example)" "soft 5.2.2 erin@gmail.example: counted|" "soft: 2 distinct bounces counted, not suppressed"
is "$(rg_redis ZCARD rg:sb:a:acme:erin@gmail.example)" 2 "soft: a retried bounce counts once"
sed "s/^Message-ID: .*/Message-ID: <soft-3@x>/" "$CORPUS/gmail-over-quota.eml" > "$RG_TMP/soft3"
bounce --rcpt "$RPS" < "$RG_TMP/soft3"
like "$(supp erin@gmail.example)" '^hard-bounce\|[0-9]+\|0\|3 soft bounces' "soft: the third within 7d suppresses"

# --- a block is counted, never suppressed -------------------------------------------
RPK=$("$RG_BIN_CLI" -c "$CONF" bounce token acme a@shop.test frank@gmail.example)
bounce --rcpt "$RPK" < "$CORPUS/gmail-dmarc.eml"
is "$OUT|$(supp frank@gmail.example)" "block 5.7.26 frank@gmail.example: recorded|" "block: recorded, not suppressed"

# --- complaints: ARF to a feedback-loop address, token in Original-Mail-From --------------
RPC=$("$RG_BIN_CLI" -c "$CONF" bounce token acme a@shop.test alice2@example.net)
sed -e "s/bounces+k1-[a-z0-9]*@bounce.example.com/${RPC}/g" -e 's/alice@example.net/alice2@example.net/g' \
    "$CORPUS/arf-abuse.eml" > "$RG_TMP/arf"
"$RG_BIN_CLI" -c "$CONF" bounce < "$RG_TMP/arf" >/dev/null 2>&1
is "$?" 0 "complaint: exit 0"
like "$(supp alice2@example.net)" '^complaint\|' "complaint: suppressed with reason complaint"

# --- unsubscribe+TOKEN ------------------------------------------------------------
UN=$("$RG_BIN_CLI" -c "$CONF" bounce token acme news@shop.test uma@example.net --unsubscribe)
like "$UN" '^unsubscribe\+k2-[a-z2-7]{39}@bounce\.test$' "unsubscribe: address minted"
printf 'From: Uma <uma@example.net>\nTo: %s\nSubject: unsubscribe\n\nunsubscribe\n' "$UN" > "$RG_TMP/u"
bounce --rcpt "$UN" < "$RG_TMP/u"
like "$(supp uma@example.net)" '^unsubscribe\|' "unsubscribe: suppressed with reason unsubscribe"
bounce --rcpt "${UN/unsubscribe+/bounces+}" < "$CORPUS/postfix-user-unknown.eml"
is "$OUT" "refused: token bad_mac" "unsubscribe token used as a return path: refused"

# --- suppress = global ----------------------------------------------------------
sed 's/soft_bounces = 3\/7d/soft_bounces = 3\/7d\n    suppress = global/' "$CONF" > "$RG_TMP/global.conf"
RPG=$("$RG_BIN_CLI" -c "$RG_TMP/global.conf" bounce token acme a@shop.test gil@example.net)
sed 's/alice@example.net/gil@example.net/g' "$CORPUS/postfix-user-unknown.eml" |
    "$RG_BIN_CLI" -c "$RG_TMP/global.conf" bounce --rcpt "$RPG" >/dev/null 2>&1
like "$(rg_redis HGET rg:s:g gil@example.net)" '^hard-bounce' "suppress = global: on the global list"

# --- malformed messages: no crash, a defined exit code, a log line -------------------
RPZ=$("$RG_BIN_CLI" -c "$CONF" bounce token acme a@shop.test zoe@example.net)
bounce --rcpt "$RPZ" < /dev/null
is "$RC" "$EX_DATAERR" "empty input: EX_DATAERR"
like "$ERR" 'empty message' "empty input: logged"
bounce --rcpt "$RPZ" < "$CORPUS/truncated-mime.eml"
is "$RC" 0 "truncated MIME: exit 0"
head -c 300000 /dev/urandom > "$RG_TMP/garbage"
bounce --rcpt "$RPZ" < "$RG_TMP/garbage"
ok "$([ "$RC" = 0 ]; echo $?)" "binary garbage: exit 0 (got $RC)"
like "$ERR" 'nothing suppressed|not a bounce' "binary garbage: logged"
python3 - "$RG_TMP/huge" <<'PY'
import base64, os, sys
body = base64.encodebytes(os.urandom(6 << 20)).decode()
open(sys.argv[1], "w").write(
    "From: MAILER-DAEMON@relay.test\nSubject: Undelivered Mail Returned to Sender\n"
    "MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=X\n\n"
    "--X\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; relay.test\n\n"
    "Final-Recipient: rfc822; zoe@example.net\nAction: failed\nStatus: 5.1.1\n\n"
    "--X\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
    + body + "\n--X--\n")
PY
is "$(supp zoe@example.net | cut -d'|' -f1)" hard-bounce "truncated MIME: still read (the token's one recipient)"
RPH=$("$RG_BIN_CLI" -c "$CONF" bounce token acme a@shop.test zoe2@example.net)
sed -i 's/zoe@/zoe2@/' "$RG_TMP/huge"
bounce --rcpt "$RPH" < "$RG_TMP/huge"
is "$RC|$OUT" "0|hard 5.1.1 zoe2@example.net: suppressed" "huge part (8 MiB): parsed, exit 0"
RPW=$("$RG_BIN_CLI" -c "$CONF" bounce token acme a@shop.test mona@example.net)
bounce --rcpt "$RPW" < "$CORPUS/wrong-charset.eml"
is "$RC|$OUT" "0|hard 5.1.1 mona@example.net: suppressed" "unknown charset and bad UTF-8: parsed"
printf 'no header block at all\n' | "$RG_BIN_CLI" -c "$CONF" bounce --rcpt "$RPZ" >/dev/null 2>"$RG_TMP/stderr"
is "$?" 0 "text without headers: exit 0"

# --- transient failures make the MTA retry ---------------------------------------
sed "s#^store = .*#store = redis://127.0.0.1:$(rg_free_port)/0#" "$CONF" > "$RG_TMP/down.conf"
"$RG_BIN_CLI" -c "$RG_TMP/down.conf" bounce --rcpt "$RP" < "$CORPUS/postfix-user-unknown.eml" >/dev/null 2>"$RG_TMP/stderr"
is "$?" "$EX_TEMPFAIL" "Redis down: EX_TEMPFAIL"
like "$(cat "$RG_TMP/stderr")" 'MTA will retry' "Redis down: logged"
"$RG_BIN_CLI" -c "$RG_TMP/no-such.conf" bounce < "$CORPUS/postfix-user-unknown.eml" >/dev/null 2>&1
is "$?" "$EX_TEMPFAIL" "config unreadable: EX_TEMPFAIL"
rg_write_conf "$RG_TMP/nobounce.conf" </dev/null
"$RG_BIN_CLI" -c "$RG_TMP/nobounce.conf" bounce < "$CORPUS/postfix-user-unknown.eml" >/dev/null 2>&1
is "$?" "$EX_TEMPFAIL" "no bounce block: EX_TEMPFAIL"

# forwarding that fails is a temporary failure (after the lists are written)
sed 's#soft_bounces = 3/7d#soft_bounces = 3/7d\n    forward = yes\n    sendmail = /nonexistent/sendmail -oi#' "$CONF" > "$RG_TMP/fwd.conf"
RPF=$("$RG_BIN_CLI" -c "$RG_TMP/fwd.conf" bounce token acme a@shop.test fay@example.net)
sed 's/alice@example.net/fay@example.net/g' "$CORPUS/postfix-user-unknown.eml" |
    "$RG_BIN_CLI" -c "$RG_TMP/fwd.conf" bounce --rcpt "$RPF" >/dev/null 2>"$RG_TMP/stderr"
is "$?" "$EX_TEMPFAIL" "forward fails: EX_TEMPFAIL"
like "$(cat "$RG_TMP/stderr")" 'cannot run /nonexistent/sendmail' "forward fails: logged"
like "$(supp fay@example.net)" '^hard-bounce' "forward fails: the suppression is written anyway"

# --- config errors name the file and line -------------------------------------------
printf 'bounce {\n  domain = bounce.test\n  key = k1 short\n}\n' > "$RG_TMP/bad1.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/bad1.conf" check-config 2>&1)
like "$out" 'bad1.conf:3: bad key: the secret is too short' "config: short secret, file:line"
chmod 644 "$RG_TMP/keys/k2"
out=$("$RG_BIN_CLI" -c "$CONF" check-config 2>&1)
like "$out" 'relayguard.conf:[0-9]+: bad key: .*readable by group or others' "config: key file mode checked"
chmod 600 "$RG_TMP/keys/k2"
printf 'bounce {\n  domain = bounce.test\n  key = k1 0123456789abcdef0123 retired=2026-01-01\n}\n' > "$RG_TMP/bad2.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/bad2.conf" check-config 2>&1)
like "$out" 'bad2.conf:1: block .bounce. needs a domain and a key that is not retired' "config: no signing key"
printf 'bounce {\n  domain = bounce.test\n  key = k1 0123456789abcdef0123\n  soft_bounces = lots\n}\n' > "$RG_TMP/bad3.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/bad3.conf" check-config 2>&1)
like "$out" 'bad3.conf:4: bad soft_bounces' "config: bad soft_bounces"
done_testing
