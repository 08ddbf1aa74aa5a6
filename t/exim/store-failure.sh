#!/bin/bash
# store-failure.sh - Redis stopped or hung under a real Exim: with
# on_store_error = tempfail (the default) every message is deferred with
# 451 4.3.0, Exim keeps running, and mail flows again once Redis is back;
# with on_store_error = accept mail is accepted without checks; a broken
# relayguard.conf defers too.  Nothing accepted is lost.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"
. "$top_srcdir/t/exim/common.sh"

rg_tmpdir
rg_exim_setup
rg_start_redis_aof
rg_start_sink

RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" </dev/null
OPEN_CONF="$RG_TMP/fail-open.conf"
rg_write_conf "$OPEN_CONF" <<'EOF'
on_store_error = accept
EOF
cat >"$RG_TMP/accounts.conf" <<'EOF'
account alice {
    logins  = alice@relay.test
    domains = example.com
    limit   = rate 1000/1h name=r
}
EOF
rg_cli load "$RG_TMP/accounts.conf" >/dev/null
ok $? "accounts loaded"

D="$RG_TMP/exim"
rg_exim_conf "$D"
rg_start_exim "$D"
P=$EXIM_PORT
# a second Exim whose relayguard.conf says on_store_error = accept
D2="$RG_TMP/exim-open"
EXIM_PORT=$(rg_free_port) RG_CONF=$OPEN_CONF rg_exim_conf "$D2"
P2=$(sed -n 's/^daemon_smtp_ports = //p' "$D2/exim.conf")
EXIM_PORT=$P2 rg_start_exim "$D2"

send() { rg_exim_send "$1" alice@relay.test a@example.com "$2@example.net"; }

like "$(send "$P" up1)" '^250 ' "Redis up: accepted"

rg_kill_redis
r=$(send "$P" down1)
is "$r" "451 4.3.0 relayguard: policy store unavailable, try again later" "Redis down: 451 4.3.0"
r=$(send "$P" down2)
is "$r" "451 4.3.0 relayguard: policy store unavailable, try again later" "Redis still down: 451 4.3.0 again"
kill -0 "$EXIM_PID" 2>/dev/null
ok $? "the Exim daemon is still running"
r=$(send "$P2" open1)
like "$r" '^250 ' "on_store_error = accept: accepted without checks while Redis is down"

rg_start_redis_aof "$REDIS_PORT"
r=
for i in $(seq 1 50); do
    r=$(send "$P" back1)
    case $r in 250*) break ;; esac
    sleep 0.2
done
like "$r" '^250 ' "Redis back on the same port: accepted again"

# A hung Redis (SIGSTOP): the store's time budget turns it into a deferral.
kill -STOP "$REDIS_PID"
r=$(send "$P" hung1)
kill -CONT "$REDIS_PID"
is "$r" "451 4.3.0 relayguard: policy store unavailable, try again later" "Redis hung: 451 4.3.0 after store_timeout, not a stuck session"
r=
for i in $(seq 1 50); do
    r=$(send "$P" back2)
    case $r in 250*) break ;; esac
    sleep 0.2
done
like "$r" '^250 ' "Redis resumed: accepted"

# A broken relayguard.conf: the expansion fails, the ACL defers (Exim's own
# 451) and Exim logs relayguard's error with file and line.
printf 'store = %s\nno_such_key = 1\n' "$REDIS_URL" >"$RG_TMP/broken.conf"
D3="$RG_TMP/exim-broken"
EXIM_PORT=$(rg_free_port) RG_CONF="$RG_TMP/broken.conf" rg_exim_conf "$D3"
P3=$(sed -n 's/^daemon_smtp_ports = //p' "$D3/exim.conf")
EXIM_PORT=$P3 rg_start_exim "$D3"
like "$(send "$P3" broken1)" '^451 ' "broken relayguard.conf: deferred, never accepted"
like "$(cat "$D3/log/paniclog" "$D3/log/mainlog" 2>/dev/null)" "relayguard: $RG_TMP/broken.conf:2: unknown key 'no_such_key'" \
   "Exim's log names the file and line"

accepted=$(cat "$D/log/mainlog" "$D2/log/mainlog" | grep -c ' <= ')
got=$(rg_wait_sink_count "$accepted" 30)
is "$got/$accepted" "4/4" "every accepted message reached the sink, nothing lost"
is "$(rg_exim_panic "$D"; rg_exim_panic "$D2")" "" "Exim's panic logs are empty"
rg_exim_asan_clean
ok $? "no sanitizer reports from the module"
done_testing
