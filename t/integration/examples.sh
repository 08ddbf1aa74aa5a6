#!/bin/bash
# examples.sh - the files in conf.examples/ work as shipped: relayguard.conf
# and accounts.conf pass check-config, and a Postfix configured with the
# lines of postfix-main.cf enforces the example account alice (the one
# scripts/demo shows: example.com only, rate 3/1h).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"

rg_require redis-server redis-cli postfix smtp-sink saslpasswd2 swaks
rg_require_built "$RG_BIN_POLICYD" "$RG_BIN_CLI"
EX="$top_srcdir/conf.examples"

out=$("$RG_BIN_CLI" -c "$EX/relayguard.conf" check-config --accounts "$EX/accounts.conf" 2>&1)
ok $? "relayguard check-config: conf.examples/relayguard.conf and accounts.conf"
diag "$out"
out=$("$RG_BIN_POLICYD" -t -c "$EX/relayguard.conf" 2>&1)
ok $? "relayguard-policyd -t: conf.examples/relayguard.conf"

# Every key of relayguard.conf(5) / config.h appears in the example.
for k in store store_timeout on_store_error node geoip_db events_max reservation_ttl log log_level \
         limit listen user max_connections idle_timeout pidfile store_connections header_secret \
         timeout key sign_headers oversign; do
    grep -Eq "^[# ]*$k *=" "$EX/relayguard.conf"
    ok $? "conf.examples/relayguard.conf shows '$k'"
done

rg_tmpdir
rg_start_redis
rg_start_sink
RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" </dev/null
out=$(rg_cli load "$EX/accounts.conf" 2>&1)
ok $? "relayguard load conf.examples/accounts.conf"
diag "$out"
rg_start_policyd "$RG_CONF"

# The settings of postfix-main.cf (continuation lines joined), pointed at
# this test's policyd instead of port 10040.
mapfile -t settings < <(awk '
    /^[ \t]*#/ || /^[ \t]*$/ { next }
    /^[ \t]/ { sub(/^[ \t]+/, " "); cur = cur $0; next }
    { if (cur != "") print cur; cur = $0 }
    END { if (cur != "") print cur }' "$EX/postfix-main.cf" | sed "s/127\.0\.0\.1:10040/127.0.0.1:$POLICYD_PORT/g")
ok $(( ${#settings[@]} >= 5 ? 0 : 1 )) "postfix-main.cf has ${#settings[@]} settings"
rg_start_postfix ex "${settings[@]}"
warnings=$(postconf -c "$PF_DIR/etc" -n 2>&1 >/dev/null)
is "$warnings" "" "postconf has no warnings about the example lines"
rg_sasl_user ex alice@relay.test
rg_sasl_user ex stranger@relay.test
rg_sasl_user ex old@relay.test
a=$(rg_wait_policyd_ready "$POLICYD_PORT" protocol_state=RCPT client_address=127.0.0.1 \
    sasl_username=stranger@relay.test sender=s@relay.test recipient=y@example.net instance=probe.1)
like "$a" '^(OK|DUNNO|PREPEND)' "policyd ready: '$a'"

r=$(rg_send "$PF_PORT" alice@relay.test alice@example.com bob@example.net)
like "$r" '^250 .*queued as' "alice, example.com: accepted ($r)"
r=$(rg_send "$PF_PORT" alice@relay.test alice@example.org bob@example.net)
like "$r" '^553 5\.7\.1 .*example\.org.*alice' "alice, example.org: 553 5.7.1 naming domain and account ($r)"
r=$(rg_send "$PF_PORT" alice@relay.test alice@example.com bob@example.net)
like "$r" '^250 .*queued as' "alice, message 2: accepted ($r)"
r=$(rg_send "$PF_PORT" alice@relay.test alice@example.com bob@example.net)
like "$r" '^250 .*queued as' "alice, message 3: accepted ($r)"
r=$(rg_send "$PF_PORT" alice@relay.test alice@example.com bob@example.net)
like "$r" '^451 4\.7\.1 ' "alice, message 4: over rate 3/1h, 451 4.7.1 ($r)"
r=$(rg_send "$PF_PORT" stranger@relay.test s@relay.test bob@example.net)
like "$r" '^250 .*queued as' "unknown login under the example default account: accepted ($r)"
r=$(rg_send "$PF_PORT" old@relay.test x@old.example.com bob@example.net)
like "$r" '^5[0-9][0-9] 5\.7\.1 ' "the suspended example account: refused ($r)"
r=$(rg_swaks --server "127.0.0.1:$PF_PORT" --from alice@example.com --to bob@example.net)
like "$r" '^250 .*queued as' "no login, no client_networks account: relayguard says DUNNO, Postfix's mynetworks relays ($r)"

rg_check_delivered
done_testing
