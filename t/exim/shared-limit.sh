#!/bin/bash
# shared-limit.sh - a real Exim (relayguard-exim.so) and a real Postfix
# (relayguard-policyd) on one Redis enforce one limit together: a quota of
# 4 lets exactly 4 messages through, whichever MTA they come through, and
# both refuse the next with the same reply.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"
. "$top_srcdir/t/exim/common.sh"

rg_tmpdir
rg_exim_setup
rg_require_built "$RG_BIN_POLICYD"
rg_start_redis
rg_start_sink

# Two nodes, one store.
PF_RGCONF="$RG_TMP/postfix-node.conf"
rg_write_conf "$PF_RGCONF" </dev/null
RG_CONF="$RG_TMP/exim-node.conf"
rg_write_conf "$RG_CONF" </dev/null
sed -i 's/^node = test$/node = exim1/' "$RG_CONF"
sed -i 's/^node = test$/node = postfix1/' "$PF_RGCONF"
cat >"$RG_TMP/accounts.conf" <<'EOF'
account shared {
    logins  = shared@relay.test
    domains = example.com
    limit   = quota 4/1d name=q4
}
EOF
rg_cli load "$RG_TMP/accounts.conf" >/dev/null
ok $? "accounts loaded"

rg_start_policyd "$PF_RGCONF"
rg_start_postfix a
rg_sasl_user a shared@relay.test

D="$RG_TMP/exim"
rg_exim_conf "$D"
rg_start_exim "$D"

ex() { rg_code "$(rg_exim_send "$EXIM_PORT" shared@relay.test a@example.com "$1@example.net")"; }
pf() { rg_code "$(rg_send "$PF_PORT" shared@relay.test a@example.com "$1@example.net")"; }

got="$(ex e1) $(pf p1) $(ex e2) $(pf p2)"
is "$got" "250 250 250 250" "4 messages, 2 through Exim and 2 through Postfix: all accepted"
r1=$(rg_exim_send "$EXIM_PORT" shared@relay.test a@example.com e3@example.net)
r2=$(rg_send "$PF_PORT" shared@relay.test a@example.com p3@example.net)
like "$r1" '^451 4.7.1 quota q4 \(4/1d\) of account shared reached' "the 5th through Exim: 451 4.7.1"
like "$r2" '^451 4.7.1 <p3@example.net>: Recipient address rejected: quota q4 \(4/1d\) of account shared reached' \
   "the 5th through Postfix: 451 4.7.1"
# Postfix puts its own "<rcpt>: Recipient address rejected: " before a policy reply
t2=${r2/<p3@example.net>: Recipient address rejected: /}
is "${r1%%, try again*}" "${t2%%, try again*}" "Exim and Postfix give the same code and text"
used=$(rg_cli --json limit show shared 2>/dev/null | grep -o '"used": *[0-9]*' | tr -d ' ')
is "$used" '"used":4' "one bucket in Redis holds all 4"
nodes=$(rg_redis --raw xrange rg:events - + | grep -xE 'exim1|postfix1' | sort -u | tr '\n' ' ')
is "$nodes" "exim1 postfix1 " "events from both nodes"

got=$(rg_wait_sink_count 4 30)
is "$got" 4 "the 4 accepted messages reached the sink"
is "$(rg_exim_panic "$D")" "" "Exim's panic log is empty"
rg_exim_asan_clean
ok $? "no sanitizer reports from the module"
done_testing
