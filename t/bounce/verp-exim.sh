#!/bin/bash
# t/bounce/verp-exim.sh - the managed return path in a real Exim with
# relayguard-exim.so (issue 6): rg_data's verdict carries
# return_path="bounces+TOKEN@bounce.test" for an account with managed
# bounces, the ACL of conf.examples/exim/acls.conf keeps it in
# $acl_m_rg_return_path, and the smtp transport's return_path option of
# conf.examples/exim/transport.conf makes it the MAIL FROM the sink sees;
# the token's record resolves to the account and every recipient through
# "relayguard bounce" with a DSN for each.  With the routers' errors_to
# (as the transport.conf comment advises), Exim's own bounce for a
# recipient a server refused at SMTP time goes to the VERP address too, a
# router pipes it to "relayguard bounce", and exactly that recipient is
# suppressed.  A message of an account with "bounces = off" keeps its
# envelope sender.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"
. "$top_srcdir/t/exim/common.sh"

rg_tmpdir
rg_exim_setup
rg_start_redis
rg_start_sink

. "$top_srcdir/t/bounce/common.sh"
# The module mints in Exim's processes (the Exim user) and the pipe runs
# "relayguard bounce" as the same user: one owner for the key (mode 600).
rg_bounce_conf Debian-exim <<EOC
    domain  = bounce.test
    bounces = managed
EOC
rg_bounce_accounts <<'EOF'
account acme {
    logins  = acme@relay.test
    domains = shop.test
}
account plain {
    logins  = plain@relay.test
    domains = plain.test
    bounces = off
}
EOF
ok $? "accounts loaded"

# a server that refuses every recipient with 550 5.1.1 (for carol)
rg_bounce_refusing_sink carol@example.net

D="$RG_TMP/exim"
rg_exim_conf "$D"
# conf.examples/exim/transport.conf's return_path, and routers: the bounce
# domain to a pipe, carol to the refusing server, errors_to as advised
rp_line=$(grep -E '^  return_path = ' "$top_srcdir/conf.examples/exim/transport.conf")
[ -n "$rp_line" ] || { echo "Bail out! no return_path in conf.examples/exim/transport.conf"; exit 1; }
errors_to='  errors_to = ${if def:acl_m_rg_return_path{$acl_m_rg_return_path}fail}'
awk -v rp="$rp_line" -v et="$errors_to" -v bad="$BAD_PORT" -v cli="$RG_BIN_CLI" -v conf="$RG_CONF" '
    /^begin routers/ { print; print "rg_bounce:\n  driver = accept\n  domains = bounce.test\n  transport = rg_bounce_pipe\n\nto_bad:\n  driver = manualroute\n  condition = ${if eq{$local_part@$domain}{carol@example.net}}\n  route_list = * 127.0.0.1::" bad "\n  transport = remote_smtp\n  self = send\n" et "\n"; next }
    /^  route_list = \* 127\.0\.0\.1::/ { print; print et; next }
    /^begin transports/ { print; print "rg_bounce_pipe:\n  driver = pipe\n  user = Debian-exim\n  command = " cli " -c " conf " bounce\n  envelope_to_add\n  return_fail_output\n  temp_errors = 75\n"; next }
    /^  driver = smtp/ { print; print rp; next }
    { print }' "$D/exim.conf" > "$D/exim.conf.new" && mv "$D/exim.conf.new" "$D/exim.conf"
out=$(rg_exim -C "$D/exim.conf" -bV 2>&1)
like "$out" '^Exim version' "Exim accepts the configuration with return_path, errors_to and the bounce pipe"
rg_start_exim "$D"
P=$EXIM_PORT

# --- two recipients; the sink sees MAIL FROM:<bounces+...> -----------------
tag="verp-$RANDOM$RANDOM"
r=$(rg_exim_send "$P" acme@relay.test billing@shop.test "alice@example.net,bob@example.net" \
    --header "Subject: $tag")
like "$r" '^250 .*id=' "acme's message to alice and bob accepted"
rg_wait_for 30 bash -c "grep -rlF -- '$tag' '$SINK_DIR/mail' | grep -q ."
f=$(grep -rlF -- "$tag" "$SINK_DIR/mail" | head -1)
is "$(rg_sink_count)" 1 "it reached the sink (one transaction, two recipients)"
rg_wait_for 10 grep -q '^X-Rcpt-Args: <bob@example.net>' "$f"
rp=$(grep -m1 '^X-Mail-Args:' "$f" 2>/dev/null | sed -E 's/^X-Mail-Args: <([^>]*)>.*/\1/')
like "$rp" '^bounces\+k1-[a-z2-7]{39}@bounce\.test$' "the sink saw MAIL FROM:<$rp>"
is "$(grep -c '^X-Rcpt-Args:' "$f")" 2 "both recipients in that transaction"
grep -q "P=<$rp>" "$D/log/mainlog"
ok $? "Exim logged the delivery with the return path P=<...>"

# the record resolves the account and every recipient: a DSN for each
dsn() { rg_bounce_dsn "$@"; }   # dsn RCPT TO: a minimal RFC 3464 report about RCPT
out=$(dsn alice@example.net "$rp" | rg_cli bounce --rcpt "$rp" 2>&1)
ok $? "relayguard bounce took the DSN for alice"
like "$(rg_redis HGET rg:s:a:acme alice@example.net)" '^hard-bounce\|' "alice suppressed for account acme"
is "$(rg_redis HGET rg:s:a:acme bob@example.net)" "" "bob is not (the DSN named alice)"
dsn bob@example.net "$rp" | rg_cli bounce --rcpt "$rp" >/dev/null 2>&1
like "$(rg_redis HGET rg:s:a:acme bob@example.net)" '^hard-bounce\|' "the same token resolves bob: suppressed by his DSN"
dsn mallory@example.net "$rp" | rg_cli bounce --rcpt "$rp" >/dev/null 2>&1
is "$(rg_redis HGET rg:s:a:acme mallory@example.net)" "" "an address that was not a recipient is not suppressed"

# --- Exim's own bounce (SMTP-time refusal) follows errors_to to the loop ---
tag="verp2-$RANDOM$RANDOM"
r=$(rg_exim_send "$P" acme@relay.test billing@shop.test "carol@example.net,dave@example.net" \
    --header "Subject: $tag")
like "$r" '^250 .*id=' "acme's message to carol and dave accepted"
rg_bounce_wait_supp acme carol@example.net 30
like "$(rg_redis HGET rg:s:a:acme carol@example.net)" '^hard-bounce\|' \
    "carol (refused 550 5.1.1 at RCPT) suppressed through Exim's bounce to the VERP address"
[ -n "$(rg_redis HGET rg:s:a:acme carol@example.net)" ] || tail -20 "$D/log/mainlog" | sed 's/^/# /'
is "$(rg_redis HGET rg:s:a:acme dave@example.net)" "" "dave (delivered) is not"
grep -Eq '=> bounces\+k1-[a-z2-7]+ <bounces\+k1-[a-z2-7]+@bounce\.test> F=<> .*T=rg_bounce_pipe' "$D/log/mainlog"
ok $? "Exim delivered its bounce to the VERP address through the pipe"

after=$(rg_exim_send "$P" acme@relay.test billing@shop.test carol@example.net)
like "$after" '^550 5\.7\.1 <carol@example\.net>: suppressed \(hard-bounce since ' \
    "the next message to carol is refused at RCPT"

# --- bounces = off: unchanged ----------------------------------------------
tag="plain-$RANDOM$RANDOM"
r=$(rg_exim_send "$P" plain@relay.test news@plain.test dave@example.net --header "Subject: $tag")
like "$r" '^250 .*id=' "plain's message accepted"
rg_wait_for 20 bash -c "grep -rlF -- '$tag' '$SINK_DIR/mail' | grep -q ."
f=$(grep -rlF -- "$tag" "$SINK_DIR/mail" | head -1)
is "$(grep -m1 '^X-Mail-Args:' "$f" 2>/dev/null | cut -d' ' -f2)" "<news@plain.test>" \
    "bounces = off: MAIL FROM:<news@plain.test> (the transport's return_path expansion failed: unchanged)"

is "$(rg_exim_panic "$D")" "" "Exim's panic log is empty"
rg_exim_asan_clean; ok $? "no sanitizer reports from the module"
done_testing
