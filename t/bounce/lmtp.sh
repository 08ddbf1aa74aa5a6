#!/bin/bash
# t/bounce/lmtp.sh - "relayguard bounce --lmtp": the bounce loop as a
# resident LMTP server (RFC 2033), spoken to by swaks (--protocol LMTP) and
# by a scripted client (t/bounce/lmtp-talk.py) that sends exact bytes:
# pipelined commands, several recipients with one reply each after the dot,
# a huge command line, NUL bytes in a command and in a message, the size
# limit, a client that vanishes mid-DATA, Redis stopped (451, then 250 and
# recorded once it is back, also across a kept connection that went stale),
# SIGHUP reload, SIGTERM draining an open transaction, and TCP.
. "${top_srcdir:-$(dirname "$0")/../..}/t/lib.sh"
. "$top_srcdir/t/bounce/common.sh"
rg_require_built "$RG_BIN_CLI"
rg_require swaks python3
rg_tmpdir
# Redis with an append-only file: stopped and started again, it keeps the tokens' records
rg_start_redis_aof
TALK="python3 -u $top_srcdir/t/bounce/lmtp-talk.py"

rg_bounce_conf "$(id -un)" <<EOC
    domain = bounce.test
    soft_bounces = 3/7d
EOC
SOCK="$RG_TMP/bounce.sock"
rg_bounce_start_lmtp "unix:$SOCK" --size-limit 200000
ok 0 "relayguard bounce --lmtp unix:$SOCK is listening"
[ -S "$SOCK" ]; ok $? "the socket exists"

token() { rg_cli bounce token acme billing@shop.test "$@"; }
lmtp() {  # lmtp FROM TO FILE [swaks args..]: the transcript's server lines
    swaks --protocol LMTP --socket "$SOCK" --helo client.test --from "$1" --to "$2" \
        --data "$3" "${@:4}" 2>&1 | sed -n 's/^<[-~*]* *//p'
}
supp() { rg_redis HGET rg:s:a:acme "$1"; }

# --- one bounce, the way an MTA sends it ------------------------------------
RP1=$(token alice@example.net)
rg_bounce_dsn alice@example.net "$RP1" >"$RG_TMP/alice.eml"
out=$(lmtp '<>' "$RP1" "$RG_TMP/alice.eml")
like "$out" "^220 .* LMTP relayguard-bounce ready" "greeting 220"
like "$out" "250-PIPELINING" "LHLO: PIPELINING"
like "$out" "250-SIZE 200000" "LHLO: SIZE with the limit"
like "$out" "250-ENHANCEDSTATUSCODES" "LHLO: ENHANCEDSTATUSCODES"
like "$out" "250 8BITMIME" "LHLO: 8BITMIME"
like "$out" "250 2\.0\.0 <$(printf '%s' "$RP1" | sed 's/[+.]/\\&/g')> hard 5\.1\.1 alice@example\.net: suppressed" \
    "after the dot: 250 for the recipient, with what was done"
like "$(supp alice@example.net)" '^hard-bounce\|' "alice suppressed (the pipe command's code path)"
ev=$(rg_redis XREVRANGE rg:events + - COUNT 1 | tr '\n' ' ')
like "$ev" 'type bounce\.hard .*stage bounce .*account acme .*rcpt alice@example\.net' "a bounce.hard event"

# --- pipelining, three recipients, three replies after the dot -------------
RP2=$(token bob@example.net)
tok=${RP2%@*}   # the second last character changed: the MAC no longer matches
[ "${tok: -2:1}" = a ] && sub=b || sub=a
bad="${tok:0:${#tok}-2}$sub${tok: -1}@bounce.test"
rg_bounce_dsn bob@example.net "$RP2" >"$RG_TMP/bob.eml"
out=$(lmtp '<>' "$RP2,$bad,postmaster@bounce.test" "$RG_TMP/bob.eml" --pipeline)
like "$out" "250 2\.0\.0 <$(printf '%s' "$RP2" | sed 's/[+.]/\\&/g')> hard 5\.1\.1 bob@example\.net: suppressed" \
    "pipelined, recipient 1 (a token): suppressed"
like "$out" "250 2\.0\.0 <$(printf '%s' "$bad" | sed 's/[+.]/\\&/g')> refused: token bad_mac" \
    "recipient 2 (a tampered token): 250, consumed, nothing suppressed"
like "$out" "250 2\.0\.0 <postmaster@bounce\.test> ignored: no relayguard token" \
    "recipient 3 (no token): 250, consumed with an event"
is "$(printf '%s\n' "$out" | grep -c '^250 2\.0\.0 <')" 3 "one reply per recipient"
like "$(supp bob@example.net)" '^hard-bounce\|' "bob suppressed"
is "$(rg_redis HLEN rg:s:a:acme)" 2 "only alice and bob are suppressed"

# the same with exact bytes: everything up to DATA in one write
RP3=$(token carol@example.net)
RP4=$(token dave@example.net oscar@example.net)   # a message to two
rg_bounce_dsn carol@example.net "$RP3" | sed 's/$/\r/' >"$RG_TMP/carol.eml"
out=$($TALK "unix:$SOCK" <<EOF
expect 1
send b"LHLO client.test\r\nMAIL FROM:<> SIZE=1000 BODY=8BITMIME\r\nRCPT TO:<$RP3>\r\nRCPT TO:<$RP4>\r\nDATA\r\n"
expect 5
send open("$RG_TMP/carol.eml", "rb").read() + b".\r\nQUIT\r\n"
expect 3
EOF
)
is "$(printf '%s\n' "$out" | cut -c1-4 | tr '\n' ' ')" "220  250- 250- 250- 250- 250  250  250  250  354  250  250  221  " \
    "pipelined in one write: LHLO, MAIL, RCPT, RCPT, DATA, then two replies after the dot, QUIT"
like "$out" "250 2\.0\.0 <bounces\+[^>]*> hard 5\.1\.1 carol@example\.net: suppressed" "the message's token: carol suppressed"
like "$out" "250 2\.0\.0 <bounces\+[^>]*> hard carol@example\.net: not a recipient of the message" \
    "the token of a message to dave and oscar with carol's report: consumed, nothing suppressed"
like "$(supp carol@example.net)" '^hard-bounce\|' "carol suppressed"
is "$(supp dave@example.net)$(supp oscar@example.net)" "" "dave and oscar not suppressed"

# a token whose bounces+ prefix the MTA took off (Exim without
# rcpt_include_affixes): deferred at RCPT, not consumed as "no token"
bare=${RP1#bounces+}
out=$($TALK "unix:$SOCK" <<EOF
expect 1
send b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<$bare>\r\nQUIT\r\n"
expect 4
EOF
)
like "$out" "451 4\.3\.5 <$(printf '%s' "$bare" | sed 's/[.]/\\&/g')> a token without its bounces\+ prefix" \
    "RCPT TO a token without its prefix: 451 4.3.5 (a configuration error; the MTA keeps the bounce)"

# --- a huge command line, NUL bytes, bad commands ---------------------------
out=$($TALK "unix:$SOCK" <<'EOF'
expect 1
send b"LHLO client.test\r\n"
expect 1
send b"NOOP " + b"x" * 300000 + b"\r\n"
expect 1
send b"NOOP\r\n"
expect 1
send b"NO\x00OP\r\n"
expect 1
send b"HELO client.test\r\n"
expect 1
send b"RCPT TO:<a@b.test>\r\n"
expect 1
send b"MAIL FROM:<> SIZE=999999999\r\n"
expect 1
send b"MAIL FROM:<> FOO=BAR\r\n"
expect 1
send b"VRFY postmaster\r\n"
expect 1
send b"MAIL FROM:<>\r\nDATA\r\nRSET\r\nQUIT\r\n"
expect 4
EOF
)
lines() { printf '%s\n' "$out" | grep -v '^250-' | sed -n "$1p"; }
like "$(lines 3)" '^500 5\.5\.2 line too long' "a 300 kB command line: 500 5.5.2 line too long"
like "$(lines 4)" '^250 2\.0\.0' "and the session goes on (NOOP)"
like "$(lines 5)" '^500 5\.5\.2 NUL byte' "a NUL byte in a command: 500 5.5.2"
like "$(lines 6)" '^500 5\.5\.1 .*LHLO' "HELO: this is LMTP"
like "$(lines 7)" '^503 5\.5\.1' "RCPT before MAIL: 503"
like "$(lines 8)" '^552 5\.3\.4' "MAIL SIZE= above the limit: 552 5.3.4"
like "$(lines 9)" '^555 5\.5\.4' "an unknown MAIL parameter: 555 5.5.4"
like "$(lines 10)" '^502 5\.5\.1 .*LHLO, MAIL, RCPT' "VRFY: 502 5.5.1, naming the commands it takes"
like "$(lines 12)" '^503 5\.5\.1' "DATA without a recipient: 503"
like "$(lines 14)" '^221 ' "QUIT: 221"

# NUL bytes and 8-bit garbage inside a message are the parser's business
RP5=$(token erin@example.net)
out=$($TALK "unix:$SOCK" <<EOF
expect 1
send b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<$RP5>\r\nDATA\r\n"
expect 4
send open("$RG_TMP/alice.eml", "rb").read().replace(b"alice", b"erin").replace(b"failed\n", b"fa\x00il\xff\xfe\x00ed\n") + b"\x00\x00\r\n.\r\n"
expect 1
EOF
)
like "$(printf '%s\n' "$out" | tail -1)" '^250 2\.0\.0 .* hard 5\.1\.1 erin@example\.net: suppressed' \
    "a DSN with NUL and non-UTF-8 bytes: read, erin suppressed"

# --- the size limit: 552 after the dot, and the server stays up ------------
out=$($TALK "unix:$SOCK" <<EOF
expect 1
send b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<$RP5>\r\nRCPT TO:<$RP4>\r\nDATA\r\n"
expect 5
send b"Subject: big\r\n\r\n" + (b"y" * 999 + b"\r\n") * 300 + b".\r\n"
expect 2
send b"MAIL FROM:<>\r\nRCPT TO:<$RP5>\r\nDATA\r\n"
expect 3
send b"Subject: one long line\r\n\r\n" + b"z" * 500000 + b"\r\n.\r\n"
expect 1
send b"MAIL FROM:<>\r\nRCPT TO:<$RP5>\r\nDATA\r\n.\r\n"
expect 4
EOF
)
is "$(printf '%s\n' "$out" | grep -c '^552 5\.3\.4 .*too big')" 3 \
    "300 kB of lines (two recipients) and a 500 kB single line over a 200 kB limit: 552 5.3.4 for each recipient"
like "$(printf '%s\n' "$out" | tail -1)" '^550 5\.6\.0 .*empty message' "an empty message: 550 5.6.0"

# --- a client that vanishes mid-DATA -------------------------------------
RP6=$(token frank@example.net)
$TALK "unix:$SOCK" >/dev/null <<EOF
expect 1
send b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<$RP6>\r\nDATA\r\n"
expect 4
send open("$RG_TMP/alice.eml", "rb").read().replace(b"alice", b"frank")[:300]
sleep 0.3
close
EOF
rg_wait_for 5 grep -q 'lost connection after DATA' "$LMTP_LOG"
grep -q 'lost connection after DATA.*nothing recorded' "$LMTP_LOG"
ok $? "mid-DATA disconnect: logged, nothing recorded"
is "$(supp frank@example.net)" "" "frank not suppressed from half a message"
kill -0 "$LMTP_PID"; ok $? "the server is still running"

# --- Redis gone: 451 (the MTA keeps the bounce), then recorded -------------
rg_bounce_dsn frank@example.net "$RP6" >"$RG_TMP/frank.eml"
RP7=$(token grace@example.net)
rg_bounce_dsn grace@example.net "$RP7" >"$RG_TMP/grace.eml"
# a connection kept from the last message goes stale when Redis restarts
rg_kill_redis
rg_start_redis_aof "$REDIS_PORT"
out=$(lmtp '<>' "$RP7" "$RG_TMP/grace.eml")
like "$out" '250 2\.0\.0 <[^>]*> hard 5\.1\.1 grace@example\.net: suppressed' \
    "Redis restarted under a kept connection: the next bounce is recorded (250) on a new one"
like "$(supp grace@example.net)" '^hard-bounce\|' "grace suppressed"
rg_kill_redis
out=$(lmtp '<>' "$RP6,$RP7" "$RG_TMP/frank.eml")
like "$out" "451 4\.3\.0 <$(printf '%s' "$RP6" | sed 's/[+.]/\\&/g')> not recorded, try again later" \
    "Redis stopped: 451 4.3.0 for the recipient (the MTA keeps the bounce)"
is "$(printf '%s\n' "$out" | grep -c '^451 4\.3\.0 ')" 2 "and for the second recipient of the message"
grep -q 'lmtp: .*status=deferred' "$LMTP_LOG"; ok $? "logged as deferred"
kill -0 "$LMTP_PID"; ok $? "the server is still running"
rg_start_redis_aof "$REDIS_PORT"
is "$(supp frank@example.net)" "" "nothing was recorded while Redis was down"
out=$(lmtp '<>' "$RP6" "$RG_TMP/frank.eml")
like "$out" '250 2\.0\.0 <[^>]*> hard 5\.1\.1 frank@example\.net: suppressed' "the MTA's retry: 250"
like "$(supp frank@example.net)" '^hard-bounce\|' "frank suppressed once Redis is back"

# --- SIGHUP: reload ---------------------------------------------------------
cp "$RG_CONF" "$RG_TMP/good.conf"
echo "this is not a setting" >>"$RG_CONF"
kill -HUP "$LMTP_PID"
rg_wait_for 5 grep -q 'reload: .*keeping the old configuration' "$LMTP_LOG"
grep -q 'error: reload: .*relayguard.conf:[0-9]*.*keeping the old configuration' "$LMTP_LOG"
ok $? "SIGHUP with a broken relayguard.conf: file:line in the log, the old configuration kept"
cp "$RG_TMP/good.conf" "$RG_CONF"
kill -HUP "$LMTP_PID"
rg_wait_for 5 grep -q 'reload: .* read' "$LMTP_LOG"
grep -q 'reload: .* read' "$LMTP_LOG"; ok $? "SIGHUP: reloaded"
RP8=$(token heidi@example.net)
rg_bounce_dsn heidi@example.net "$RP8" >"$RG_TMP/heidi.eml"
like "$(lmtp '<>' "$RP8" "$RG_TMP/heidi.eml")" '250 2\.0\.0 .*heidi@example\.net: suppressed' "after the reload: 250"

# --- TCP ----------------------------------------------------------------
PORT=$(rg_free_port)
LMTP_LOG_UNIX=$LMTP_LOG UNIX_PID=$LMTP_PID
LMTP_LOG="$RG_TMP/lmtp-inet.log"
"$RG_BIN_CLI" -c "$RG_CONF" bounce --lmtp "inet:127.0.0.1:$PORT" 2>>"$LMTP_LOG" &
INET_PID=$!
rg_on_exit "rg_stop_pid $INET_PID"
rg_wait_port "$PORT" 10
RP9=$(token ivan@example.net)
rg_bounce_dsn ivan@example.net "$RP9" >"$RG_TMP/ivan.eml"
out=$(swaks --protocol LMTP --server "127.0.0.1:$PORT" --helo c --from '<>' --to "$RP9" --data "$RG_TMP/ivan.eml" 2>&1)
like "$out" '250 2\.0\.0 .*ivan@example\.net: suppressed' "inet:127.0.0.1:$PORT: 250"
out=$("$RG_BIN_CLI" -c "$RG_CONF" bounce --lmtp "inet:127.0.0.1:$PORT" 2>&1)
rc=$?
ok "$([ $rc != 0 ]; echo $?)" "a second server on the same port: exits $rc"
like "$out" 'bind|listen' "with a clear error: $out"
out=$("$RG_BIN_CLI" -c "$RG_CONF" bounce --lmtp "bogus:1" 2>&1)
like "$out" "bad listen address 'bogus:1'" "a bad --lmtp address: clear error"

# --- SIGTERM: an open transaction is finished, then 421 --------------------
RP10=$(token judy@example.net)
rg_bounce_dsn judy@example.net "$RP10" >"$RG_TMP/judy.eml"
$TALK "unix:$SOCK" >"$RG_TMP/drain.out" <<EOF &
expect 1
send b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<$RP10>\r\nDATA\r\n"
expect 4
sleep 1.5
send open("$RG_TMP/judy.eml", "rb").read() + b".\r\n"
expect 2
EOF
talk=$!
rg_wait_for 20 grep -q '^354' "$RG_TMP/drain.out"   # the transaction is open
kill -TERM "$UNIX_PID"
wait "$talk"
out=$(cat "$RG_TMP/drain.out")
like "$out" '250 2\.0\.0 .*judy@example\.net: suppressed' "SIGTERM during a transaction: it is finished (250)"
like "$(printf '%s\n' "$out" | tail -1)" '^421 4\.3\.2 .*shutting down' "then 421 4.3.2"
for ((i = 0; i < 50; i++)); do kill -0 "$UNIX_PID" 2>/dev/null || break; sleep 0.1; done
wait "$UNIX_PID"; rc=$?
is "$rc" 0 "the server stopped with exit code 0"
[ ! -e "$SOCK" ]; ok $? "and removed its socket"
grep -q 'stopped: .* messages' "$LMTP_LOG_UNIX"; ok $? "logged its totals"
rg_stop_pid "$INET_PID"

rg_bounce_sanitizer_clean "$LMTP_LOG_UNIX" "$LMTP_LOG"
ok $? "no sanitizer report from either server"
grep -Ei 'AddressSanitizer|runtime error' "$LMTP_LOG_UNIX" "$LMTP_LOG" | head -5 | while read -r l; do diag "$l"; done
done_testing
