#!/bin/bash
# functions.sh - relayguard-policyd runs decide.lua as a Redis function
# (FUNCTION LOAD, FCALL), with a real Redis:
#   - the library relayguard_SHA is loaded at connect and decisions use FCALL;
#   - FUNCTION FLUSH behind its back: the next decision still gets its answer
#     (EVAL once) and the library is loaded again;
#   - a Redis user refused FUNCTION and FCALL (ACL): decisions run with
#     EVALSHA, the log says so once, and limits stay exact;
#   - the same script text gives the same verdicts either way.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"

rg_require redis-server redis-cli
rg_require_built "$RG_BIN_POLICYD" "$RG_BIN_CLI"

rg_tmpdir
rg_start_redis
rg_write_conf "$RG_TMP/relayguard.conf" </dev/null
RG_CONF="$RG_TMP/relayguard.conf"
cat >"$RG_TMP/accounts.conf" <<'EOF'
account alice {
    logins  = alice@relay.test
    domains = example.com
    limit   = rate 3/1h name=r3
}
account bob {
    logins  = bob@relay.test
    domains = example.org
    limit   = quota 2/1d name=q2
}
EOF
out=$(rg_cli load "$RG_TMP/accounts.conf" 2>&1)
ok $? "relayguard load accounts.conf"
[ -z "$out" ] || diag "$out"

req() {   # req PORT LOGIN SENDER INSTANCE
    rg_policy_query "$1" protocol_state=RCPT client_address=127.0.0.1 sasl_username="$2" \
        sender="$3" recipient="r-$4@example.net" instance="$4" size=0
}
calls() { rg_redis info commandstats | tr -d '\r' | sed -n "s/^cmdstat_$1:calls=\([0-9]*\),.*/\1/p"; }

# ---- functions on
rg_start_policyd "$RG_CONF" policyd-fn
P=$POLICYD_PORT
a=$(rg_wait_policyd_ready "$P" protocol_state=RCPT client_address=127.0.0.1 \
    sasl_username=alice@relay.test sender=a@example.com recipient=w@example.net instance=w.0 size=0)
is "$a" DUNNO "first decision answered: '$a'"
lib=$(rg_redis function list | grep -m 1 '^relayguard_')
like "$lib" '^relayguard_[0-9a-f]{16}$' "library loaded at connect: '$lib'"
before=$(calls fcall)
[ "${before:-0}" -gt 0 ]; ok $? "decisions run with FCALL ($before calls)"
is "$(calls evalsha)" "" "no EVALSHA"

# alice: rate 3/1h; one is used by the ready probe
is "$(req "$P" alice@relay.test a@example.com m.1)" DUNNO "alice message 2 of 3"

# ---- FUNCTION FLUSH behind its back
e0=$(calls eval)
is "$(rg_redis function flush)" OK "FUNCTION FLUSH"
a=$(req "$P" alice@relay.test a@example.com m.2)
is "$a" DUNNO "after FUNCTION FLUSH: message 3 of 3 still answered"
is "$(rg_redis function list | grep -c '^relayguard_')" 1 "library loaded again"
a=$(req "$P" alice@relay.test a@example.com m.3)
like "$a" '^451 4\.7\.1 ' "message 4 over rate 3/1h: '$a'"
is "$(( $(calls eval) - ${e0:-0} ))" 1 "one EVAL (the flushed batch), no more"
rg_stop_pid "$POLICYD_PID"
ok $? "policyd stops"
rg_log_clean "$POLICYD_LOG"; ok $? "no sanitizer reports in the log"
grep -q 'EVALSHA' "$POLICYD_LOG"
ok $(( $? == 0 )) "no fallback to EVALSHA logged"

# ---- an ACL user without FUNCTION and FCALL
is "$(rg_redis acl setuser nofn on '>secret' '~*' '&*' +@all -function -fcall)" OK "ACL user nofn"
rg_redis config resetstat >/dev/null
sed "s|^store = .*|store = redis://nofn:secret@127.0.0.1:$REDIS_PORT/0|" "$RG_CONF" >"$RG_TMP/nofn.conf"
rg_start_policyd "$RG_TMP/nofn.conf" policyd-nofn
P=$POLICYD_PORT
a=$(rg_wait_policyd_ready "$P" protocol_state=RCPT client_address=127.0.0.1 \
    sasl_username=bob@relay.test sender=b@example.org recipient=w@example.net instance=b.0 size=0)
is "$a" DUNNO "without functions: bob's message 1 of 2 answered"
is "$(req "$P" bob@relay.test b@example.org b.1)" DUNNO "bob message 2 of 2"
a=$(req "$P" bob@relay.test b@example.org b.2)
like "$a" '^451 4\.7\.1 ' "bob message 3 over quota 2/1d: '$a'"
is "$(calls fcall)" "" "no FCALL (refused)"
n=$(calls evalsha)
[ "${n:-0}" -ge 2 ]; ok $? "decisions run with EVALSHA ($n calls)"
is "$(grep -c 'refused FUNCTION LOAD' "$POLICYD_LOG")" 1 "the fallback is logged once"

# SCRIPT FLUSH behind its back, in EVALSHA mode: answered as before
is "$(rg_redis script flush)" OK "SCRIPT FLUSH"
a=$(req "$P" alice@relay.test a@example.com m.4)
like "$a" '^451 4\.7\.1 ' "alice still over her limit after SCRIPT FLUSH: '$a'"
is "$(req "$P" bob@relay.test b@example.org b.3 | cut -c1-9)" "451 4.7.1" "bob still over his quota"
rg_stop_pid "$POLICYD_PID"
ok $? "policyd (no functions) stops"
rg_log_clean "$POLICYD_LOG"; ok $? "no sanitizer reports in the log"

done_testing
