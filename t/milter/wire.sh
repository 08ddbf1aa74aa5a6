#!/bin/bash
# relayguard-milter's protocol code on a real socket (t/milter/wire.py
# speaks the MTA side): bad input on a connection - a length of 0, one
# above the limit, an unknown command, a truncated packet, a string
# without its NUL - is logged and closes that connection only; the milter
# keeps serving; QUIT_NC reuses a connection for a second session; 200
# connections at once are all served; an idle connection times out; SIGTERM
# with a message in flight ends its session and exits cleanly.
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require openssl
rg_require_built "$RG_BIN_MILTER" "$RG_BIN_CLI"
rg_tmpdir
rg_start_redis
RG_CONF="$RG_TMP/rg.conf"
rg_milter_conf "$RG_CONF" <<'EOF'
milter {
    timeout = 2s
}
EOF
printf 'account local {\n    client_networks = 127.0.0.0/8\n    domains = example.com\n}\n' >"$RG_TMP/accounts.conf"
rg_cli load "$RG_TMP/accounts.conf" >/dev/null || { echo "Bail out! relayguard load failed"; exit 1; }
rg_cli suppress add gone@example.net --reason manual >/dev/null
rg_start_milter "$RG_CONF" inet
W() { "$RG_PY" "$top_srcdir/t/milter/wire.py" 127.0.0.1 "$MILTER_PORT" "$@"; }

# each bad packet: the milter closes that connection and logs why
check_bad() {  # LABEL CASE LOG-PATTERN
    local before out
    before=$(grep -c 'closing the connection' "$MILTER_LOG")
    out=$(W "$2" 2>&1)
    is "$out" "closed" "$1: the milter closes the connection"
    rg_wait_for 5 bash -c "[ \$(grep -c 'closing the connection' '$MILTER_LOG') -gt $before ]"
    grep -q "warning: milter 127.0.0.1:[0-9]*: $3.*; closing the connection" "$MILTER_LOG"
    ok $? "$1: logged ($(grep 'closing the connection' "$MILTER_LOG" | tail -1 | sed 's/^.*warning: //'))"
}
check_bad "length 0" zero-length "packet length 0 out of range"
check_bad "length above the limit" huge-length "packet length 16777216 out of range"
check_bad "unknown command" unknown-command "unknown command 0x5a"
check_bad "truncated packet" truncated "connection lost in the middle of a packet"
check_bad "header without its NUL" header-no-nul "header packet without its final NUL"
check_bad "connect without address" connect-short "connect packet of"
kill -0 "$MILTER_PID" 2>/dev/null
ok $? "the milter still runs after the bad input"

# a whole session still works, and the refusal comes with its reply code
is "$(W session '<a@example.com>' '<gone@example.net>')" "rcpt y 550 5.7.1" \
    "a session after the bad input: the suppressed recipient refused (550 5.7.1)"
is "$(W session '<a@example.com>' '<ok@example.net>')" "rcpt c eom c" \
    "a session after the bad input: accepted, end of message continues"

# QUIT_NC: two sessions on one connection, both decided
is "$(W reuse '<a@example.com>' '<gone@example.net>' '<ok@example.net>')" \
    "session1 rcpt y 550 5.7.1 session2 rcpt c eom c" \
    "QUIT_NC: a second session on the same connection is served"

# 200 connections open at once, each negotiates and is answered at RCPT
is "$(W many 200 '<a@example.com>' '<ok@example.net>')" "200 answered" \
    "200 concurrent connections: every RCPT answered"
rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$MILTER_PID/status")
diag "peak RSS with 200 connections: $((rss / 1024)) MiB"

# an idle connection is closed after milter.timeout (2 s here)
is "$(W idle 30)" "closed" "an idle connection is closed by the milter"
grep -q 'warning: milter connection idle for 2 s: closing it' "$MILTER_LOG"
ok $? "the idle connection is logged"

# SIGTERM with a message in flight: the session is aborted and closed, exit 0
W hold '<a@example.com>' >"$RG_TMP/hold.out" 2>&1 &
HOLD=$!
rg_wait_for 10 grep -q held "$RG_TMP/hold.out"
rg_stop_milter
ok $? "SIGTERM with a message in flight: clean exit"
wait "$HOLD"
is "$(tail -1 "$RG_TMP/hold.out")" "closed" "the MTA's connection is closed at SIGTERM"
! grep -q 'AddressSanitizer\|runtime error' "$MILTER_LOG"
ok $? "no sanitizer reports in the milter log"
done_testing
