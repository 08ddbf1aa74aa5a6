#!/bin/bash
# t/bounce/lmtp-exim.sh - the bounce loop over LMTP with a real Exim: the
# "LMTP" pieces of conf.examples/exim/bounce.conf (a router for the bounce
# domain and an lmtp transport to the socket of "relayguard bounce --lmtp")
# deliver a DSN from the Internet to the return path, two return paths of
# one DSN in one LMTP transaction (batch_max) with a reply each, and
# Exim's own bounce for a recipient refused at SMTP time (errors_to the
# managed return path relayguard-exim.so set); with Redis stopped the
# server answers 451, Exim defers the bounce and delivers it on the next
# queue run once Redis is back.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"
. "$top_srcdir/t/exim/common.sh"
. "$top_srcdir/t/bounce/common.sh"

rg_tmpdir
rg_exim_setup
rg_start_redis_aof      # restarted later: the tokens' records must survive it
rg_start_sink

# the module mints in Exim's processes (the Exim user): one owner for the key
rg_bounce_conf Debian-exim <<EOC
    domain  = bounce.test
    bounces = managed
EOC
rg_bounce_accounts <<'EOF'
account acme {
    logins  = acme@relay.test
    domains = shop.test
}
EOF
ok $? "accounts loaded"
SOCK="$RG_TMP/bounce.sock"
rg_bounce_start_lmtp "unix:$SOCK" --user Debian-exim
is "$(ps -o user= -p "$LMTP_PID" | tr -d ' ')" Debian-exim "relayguard bounce --lmtp runs as Debian-exim (--user)"

# a server that refuses every recipient with 550 5.1.1 (for carol)
rg_bounce_refusing_sink carol@example.net

# Exim with bounce.conf's main section and its LMTP router and transport
ex="$top_srcdir/conf.examples/exim/bounce.conf"
RG_EXIM_MAIN=$( { rg_exim_example "$ex" "main section"; rg_exim_example "$ex" "LMTP: main section"; } |
    sed -e "s|^RELAYGUARD_BOUNCE_DOMAIN *=.*|RELAYGUARD_BOUNCE_DOMAIN = bounce.test|" \
        -e "s|^RELAYGUARD_BIN *=.*|RELAYGUARD_BIN = $RG_BIN_CLI|" \
        -e "s|^RELAYGUARD_BOUNCE_USER *=.*|RELAYGUARD_BOUNCE_USER = Debian-exim|" \
        -e "s|^RELAYGUARD_BOUNCE_SOCKET *=.*|RELAYGUARD_BOUNCE_SOCKET = $SOCK|")
RG_EXIM_ROUTERS=$(rg_exim_example "$ex" "LMTP: routers")
RG_EXIM_TRANSPORTS=$(rg_exim_example "$ex" "LMTP: transports")
grep -q "^RELAYGUARD_BOUNCE_SOCKET = $SOCK" <<<"$RG_EXIM_MAIN" && grep -q 'driver *= *lmtp' <<<"$RG_EXIM_TRANSPORTS" &&
    grep -q 'transport *= *relayguard_bounce_lmtp' <<<"$RG_EXIM_ROUTERS"
ok $? "bounce.conf's LMTP router and transport found"
D="$RG_TMP/exim"
rg_exim_conf "$D"
# carol to the refusing server; the managed return path as transport.conf
# sets it, and errors_to it as its comment advises (Exim's own bounces)
rp_line=$(grep -E '^  return_path = ' "$top_srcdir/conf.examples/exim/transport.conf")
errors_to='  errors_to = ${if def:acl_m_rg_return_path{$acl_m_rg_return_path}fail}'
awk -v rp="$rp_line" -v et="$errors_to" -v bad="$BAD_PORT" '
    /^to_sink:/ { print "to_bad:\n  driver = manualroute\n  condition = ${if eq{$local_part@$domain}{carol@example.net}}\n  route_list = * 127.0.0.1::" bad "\n  transport = remote_smtp\n  self = send\n" et "\n" }
    /^  route_list = \* 127\.0\.0\.1::/ { print; print et; next }
    /^  driver = smtp/ { print; print rp; next }
    { print }' "$D/exim.conf" >"$D/exim.conf.new" && mv "$D/exim.conf.new" "$D/exim.conf"
out=$(rg_exim -C "$D/exim.conf" -bV 2>&1)
like "$out" '^Exim version' "Exim accepts the configuration"
# no queue runner: the deferred bounce below is retried when the test says so
RG_EXIM_QUEUE_RUN="" rg_start_exim "$D"
P=$EXIM_PORT
supp() { rg_redis HGET rg:s:a:acme "$1"; }
token() { rg_cli bounce token acme billing@shop.test "$@"; }
re() { printf '%s' "$1" | sed 's/[+.]/\\&/g'; }

# --- a DSN from the Internet to a return path --------------------------------
RP1=$(token alice@example.net)
rg_bounce_dsn alice@example.net "$RP1" >"$RG_TMP/alice.eml"
r=$(rg_exim_send "$P" "" "<>" "$RP1" --data "$RG_TMP/alice.eml")
like "$r" '^250 .*id=' "DSN to $RP1 accepted by Exim"
rg_bounce_wait_supp acme alice@example.net 30
like "$(supp alice@example.net)" '^hard-bounce\|' "Exim -> lmtp transport -> relayguard bounce --lmtp: alice suppressed"
rg_wait_for 10 grep -q "T=relayguard_bounce_lmtp" "$D/log/mainlog"
grep -F "<$RP1>" "$D/log/mainlog" | grep -Eq ' => .* R=relayguard_bounce_lmtp T=relayguard_bounce_lmtp .*C="250 2\.0\.0 .*alice@example\.net: suppressed"'
ok $? "Exim logged the delivery with the server's 250 (C=...)"

# --- two return paths in one DSN: one LMTP transaction, a reply each --------
RP2=$(token bob@example.net)
RP3=$(token dave@example.net)
rg_bounce_dsn bob@example.net "$RP2" >"$RG_TMP/bob.eml"
r=$(rg_exim_send "$P" "" "<>" "$RP2,$RP3" --data "$RG_TMP/bob.eml")
like "$r" '^250 .*id=' "one DSN to two return paths accepted"
rg_bounce_wait_supp acme dave@example.net 30
like "$(supp bob@example.net)" '^hard-bounce\|' "bob suppressed"
like "$(supp dave@example.net)" '^hard-bounce\|' "dave suppressed (his token names him)"
rg_wait_for 10 grep -q "to=<$RP3> nrcpt=2 " "$LMTP_LOG"
grep -q "to=<$RP2> nrcpt=2 .*status=done" "$LMTP_LOG" && grep -q "to=<$RP3> nrcpt=2 .*status=done" "$LMTP_LOG"
ok $? "both in one LMTP transaction (nrcpt=2), each done"

# --- Exim's own bounce (SMTP-time refusal) follows errors_to to the server ---
tag="lmtp-$RANDOM$RANDOM"
r=$(rg_exim_send "$P" acme@relay.test billing@shop.test "carol@example.net,erin@example.net" \
    --header "Subject: $tag")
like "$r" '^250 .*id=' "acme's message to carol and erin accepted"
rg_bounce_wait_supp acme carol@example.net 30
like "$(supp carol@example.net)" '^hard-bounce\|' \
    "carol (refused 550 5.1.1) suppressed through Exim's bounce to the managed return path, over LMTP"
[ -n "$(supp carol@example.net)" ] || tail -20 "$D/log/mainlog" | sed 's/^/# /'
is "$(supp erin@example.net)" "" "erin (delivered) is not"
grep -Eq '=> bounces\+k1-[a-z2-7]+ <bounces\+k1-[a-z2-7]+@bounce\.test> F=<> .*T=relayguard_bounce_lmtp' "$D/log/mainlog"
ok $? "Exim delivered its bounce to the VERP address over LMTP"

# --- Redis stopped: 451, Exim defers; delivered on the next queue run -------
RP4=$(token frank@example.net)
rg_bounce_dsn frank@example.net "$RP4" >"$RG_TMP/frank.eml"
rg_kill_redis
r=$(rg_exim_send "$P" "" "<>" "$RP4" --data "$RG_TMP/frank.eml")
like "$r" '^250 .*id=' "a DSN while Redis is stopped: accepted by Exim"
rg_wait_for 20 grep -q "== $RP4 .*451 4\.3\.0" "$D/log/mainlog"
grep -Eq "== $(re "$RP4") .*T=relayguard_bounce_lmtp .*451 4\.3\.0 " "$D/log/mainlog"
ok $? "the server answered 451 4.3.0: Exim deferred it (==)"
is "$(rg_exim -C "$D/exim.conf" -bpc 2>/dev/null)" 1 "the bounce waits in Exim's queue"
rg_start_redis_aof "$REDIS_PORT"
rg_exim -C "$D/exim.conf" -qff >/dev/null 2>&1
rg_bounce_wait_supp acme frank@example.net 30
like "$(supp frank@example.net)" '^hard-bounce\|' "after Redis is back and a queue run: frank suppressed"
rg_wait_for 10 bash -c "[ \"\$('$EXIM' -C '$D/exim.conf' -bpc 2>/dev/null)\" = 0 ]"
is "$(rg_exim -C "$D/exim.conf" -bpc 2>/dev/null)" 0 "Exim's queue is empty: no bounce lost"

is "$(rg_exim_panic "$D")" "" "Exim's panic log is empty"
rg_stop_pid "$LMTP_PID"
rg_bounce_sanitizer_clean "$LMTP_LOG"; ok $? "no sanitizer report from the LMTP server"
rg_exim_asan_clean; ok $? "no sanitizer reports from the module"
done_testing
