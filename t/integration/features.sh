#!/bin/bash
# features.sh - the checks a user sees, end to end: swaks -> a private Postfix
# with SASL -> relayguard-policyd -> Redis; accepted mail goes on to smtp-sink.
#
# Sender domains (exact and leading-dot subdomains), networks, countries (a
# generated .mmdb), suppression, message size (SIZE= and end of data),
# unknown logins with and without a "default" account, suspension, events.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"

rg_require redis-server redis-cli postfix smtp-sink saslpasswd2 swaks perl python3
rg_require_built "$RG_BIN_POLICYD" "$RG_BIN_CLI"
perl -MMaxMind::DB::Writer::Tree -e1 2>/dev/null || skip_all "MaxMind::DB::Writer (libmaxmind-db-writer-perl) not installed"

rg_tmpdir
rg_start_redis
rg_start_sink
rg_mkmmdb "$RG_TMP/geo.mmdb" 127.0.0.0/8 FR 192.0.2.0/24 US

RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" <<EOF
geoip_db = $RG_TMP/geo.mmdb
EOF

# Accounts as a user writes them (account.h).  127.0.0.1 is in FR.
ACCOUNTS="$RG_TMP/accounts.conf"
cat >"$ACCOUNTS" <<'EOF'
account alice {
    logins  = alice@relay.test
    domains = example.com, .example.org
}
account netdeny {
    logins   = netdeny@relay.test
    domains  = example.com
    networks = 192.0.2.0/24, 2001:db8::/32
}
account netallow {
    logins   = netallow@relay.test
    domains  = example.com
    networks = 192.0.2.0/24, 127.0.0.0/8
}
account geodeny {
    logins    = geodeny@relay.test
    domains   = example.com
    countries = US, DE
}
account geoallow {
    logins    = geoallow@relay.test
    domains   = example.com
    countries = US, FR
}
account small {
    logins   = small@relay.test
    domains  = example.com
    max_size = 20K
}
account mallory {
    logins    = mallory@relay.test
    domains   = example.com
    suspended = yes
}
EOF

out=$(rg_cli load "$ACCOUNTS" 2>&1)
ok $? "relayguard load accounts.conf"
[ -z "$out" ] || diag "$out"

rg_start_policyd "$RG_CONF"
rg_start_postfix a
for u in alice netdeny netallow geodeny geoallow small mallory bob; do
    rg_sasl_user a "$u@relay.test"
done

probe=(protocol_state=RCPT protocol_name=ESMTP client_address=127.0.0.1 client_name=localhost
       sasl_method=PLAIN sasl_username=alice@relay.test sender=alice@example.com
       recipient=probe@example.net instance=probe.features.1 size=0)
a=$(rg_wait_policyd_ready "$POLICYD_PORT" "${probe[@]}")
like "$a" '^(OK|DUNNO|PREPEND)' "policyd ready, answers a raw policy request: '$a'"

P=$PF_PORT
send() { rg_send "$P" "$@"; }

# --- sender domains ---------------------------------------------------------
r=$(send alice@relay.test alice@example.com rcpt@example.net --header "X-RG-Test: accept-1")
like "$r" '^250 .*queued as' "alice, example.com: accepted ($r)"
r=$(send alice@relay.test news@mail.example.org rcpt@example.net --header "X-RG-Test: accept-sub")
like "$r" '^250 .*queued as' "alice, mail.example.org under .example.org: accepted ($r)"
r=$(send alice@relay.test alice@evil.test rcpt@example.net)
like "$r" '^553 5\.7\.1 ' "alice, foreign domain evil.test: 553 5.7.1 ($r)"
like "$r" 'evil\.test' "  the reply names the domain"
like "$r" 'alice' "  the reply names the account"
r=$(send alice@relay.test alice@sub.example.com rcpt@example.net)
like "$r" '^553 5\.7\.1 ' "alice, sub.example.com (example.com is exact): 553 5.7.1 ($r)"
r=$(send alice@relay.test alice@example.com.evil.test rcpt@example.net)
like "$r" '^553 5\.7\.1 ' "alice, example.com.evil.test: 553 5.7.1 ($r)"

# --- networks and countries -------------------------------------------------
r=$(send netdeny@relay.test a@example.com rcpt@example.net)
like "$r" '^5[0-9][0-9] 5\.7\.1 ' "networks without 127.0.0.1: refused 5.7.1 ($r)"
r=$(send netallow@relay.test a@example.com rcpt@example.net --header "X-RG-Test: net-allow")
like "$r" '^250 .*queued as' "networks with 127.0.0.0/8: accepted ($r)"
r=$(send geodeny@relay.test a@example.com rcpt@example.net)
like "$r" '^5[0-9][0-9] 5\.7\.1 ' "countries US, DE, client in FR: refused 5.7.1 ($r)"
r=$(send geoallow@relay.test a@example.com rcpt@example.net --header "X-RG-Test: geo-allow")
like "$r" '^250 .*queued as' "countries US, FR, client in FR: accepted ($r)"

# --- suppression --------------------------------------------------------------
out=$(rg_cli suppress add bounced@example.net --reason hard-bounce 2>&1)
ok $? "relayguard suppress add bounced@example.net --reason hard-bounce"
[ -z "$out" ] || diag "$out"
today=$(date -u +%F)
r=$(send alice@relay.test alice@example.com bounced@example.net)
like "$r" "^550 5\.7\.1 .*<bounced@example\.net>: suppressed \(hard-bounce since $today\)" \
    "suppressed recipient: 550 5.7.1 <addr>: suppressed (hard-bounce since $today) ($r)"
r=$(send alice@relay.test alice@example.com Bounced@EXAMPLE.net)
like "$r" '^550 5\.7\.1 .*suppressed' "suppression ignores the case of the address ($r)"
r=$(send alice@relay.test alice@example.com bounced@example.net,fine@example.net --header "X-RG-Test: supp-mixed")
like "$r" '^550 5\.7\.1 .*suppressed' "two recipients, one suppressed: that one refused ($r)"
like "$(grep -Eo 'queued as [0-9A-Z]+' "$(rg_last_swaks_log)")" 'queued as' "  and the message still goes to the other"

# --- message size -------------------------------------------------------------
r=$(rg_send_sized "$P" small@relay.test a@example.com rcpt@example.net 30000)
like "$r" '^552 5\.3\.4 ' "max_size 20K, MAIL FROM SIZE=30000: 552 5.3.4 ($r)"
r=$(rg_send_sized "$P" small@relay.test a@example.com rcpt@example.net 30000 nosize)
like "$r" '^552 5\.3\.4 ' "max_size 20K, 30000 bytes without SIZE=: 552 5.3.4 at end of data ($r)"
r=$(rg_send_sized "$P" small@relay.test a@example.com rcpt@example.net 5000)
like "$r" '^250 .*queued as' "max_size 20K, 5000 bytes: accepted ($r)"

# --- unknown login, suspension ----------------------------------------------------
r=$(send bob@relay.test bob@example.com rcpt@example.net)
like "$r" '^5[0-9][0-9] 5\.7\.[0-9] ' "login no account claims, no default account: refused ($r)"
r=$(send mallory@relay.test m@example.com rcpt@example.net)
like "$r" '^5[0-9][0-9] 5\.7\.[0-9] ' "suspended account: refused ($r)"

# Suspend a live account with the CLI; the policy follows within a few seconds.
out=$(rg_cli account set netallow --suspend 2>&1)
ok $? "relayguard account set netallow --suspend"
[ -z "$out" ] || diag "$out"
for ((i = 0; i < 30; i++)); do
    r=$(send netallow@relay.test a@example.com rcpt@example.net --quit-after RCPT)
    case $r in 5*) break ;; esac; sleep 0.2
done
like "$r" '^5[0-9][0-9] 5\.7\.[0-9] ' "account suspended with the CLI: refused ($r)"
out=$(rg_cli account set netallow --resume 2>&1)
ok $? "relayguard account set netallow --resume"
for ((i = 0; i < 30; i++)); do
    r=$(send netallow@relay.test a@example.com rcpt@example.net --quit-after RCPT)
    case $r in 2*) break ;; esac; sleep 0.2
done
like "$r" '^250 ' "resumed: accepted again ($r)"

# --- a "default" account for unknown logins ---------------------------------------
cat "$ACCOUNTS" - >"$RG_TMP/accounts2.conf" <<'EOF'
account default {
    domains = example.com
}
EOF
out=$(rg_cli load "$RG_TMP/accounts2.conf" 2>&1)
ok $? "relayguard load with a default account"
kill -HUP "$POLICYD_PID"
for ((i = 0; i < 30; i++)); do
    r=$(send bob@relay.test bob@example.com rcpt@example.net --quit-after RCPT)
    case $r in 2*) break ;; esac; sleep 0.2
done
like "$r" '^250 ' "unknown login under the default account: RCPT accepted ($r)"
r=$(send bob@relay.test bob@example.com rcpt@example.net --header "X-RG-Test: default")
like "$r" '^250 .*queued as' "unknown login, default allows example.com: accepted ($r)"
r=$(send bob@relay.test bob@evil.test rcpt@example.net)
like "$r" '^553 5\.7\.1 .*evil\.test' "unknown login, default refuses evil.test: 553 5.7.1 ($r)"
like "$r" 'default' "  the reply names the default account"
r=$(send mallory@relay.test m@example.com rcpt@example.net)
like "$r" '^5[0-9][0-9] 5\.7\.[0-9] ' "a suspended account does not fall back to default ($r)"

# --- events: every decision is recorded ---------------------------------------------
ev=$(rg_redis XRANGE rg:events - + 2>&1)
for reason in sender_domain network country suppressed size suspended; do
    like "$ev" "^$reason\$" "an event with reason $reason is in rg:events"
done
out=$(rg_cli events --count 10 2>&1)
ok $? "relayguard events --count 10"
like "$out" 'alice|bob|mallory|small' "  lists recent decisions"

# --- nothing lost -------------------------------------------------------------
rg_check_delivered
is "$(rg_sink_grep 'X-RG-Test: supp-mixed')" 1 "the message with one suppressed recipient arrived once"
is "$(grep -c '^X-Rcpt-Args: <fine@example.net>' "$SINK_DIR"/mail/*/* 2>/dev/null | awk -F: '{s+=$NF} END {print s+0}')" 1 \
    "  for the remaining recipient only"
sleep 0.5
is "$(rg_pf_sent_count a)" "$(rg_queued_count)" "Postfix logged status=sent for each accepted message"

rg_stop_policyd "$POLICYD_PID"
ok $? "relayguard-policyd stops on SIGTERM with status 0"
rg_log_clean "$POLICYD_LOG"
ok $? "no sanitizer or runtime errors in the policyd log"

done_testing
