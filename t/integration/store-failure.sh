#!/bin/bash
# store-failure.sh - Redis dies under a running relay.
#   on_store_error = tempfail (default): 451 4.3.0, quickly; policyd lives on;
#     normal service within 2 s of Redis coming back on the same port; a
#     message whose RCPT passed is tempfailed at end of data, not accepted.
#   on_store_error = accept: mail goes through and the policyd logs it.
# Every accepted message reaches the sink.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"

rg_require redis-server redis-cli postfix smtp-sink saslpasswd2 swaks python3
rg_require_built "$RG_BIN_POLICYD" "$RG_BIN_CLI"

rg_tmpdir
rg_start_redis_aof
rg_start_sink

rg_write_conf "$RG_TMP/tempfail.conf" <<EOF
on_store_error = tempfail
EOF
sed -i 's/^node = .*/node = tempfail/' "$RG_TMP/tempfail.conf"
rg_write_conf "$RG_TMP/accept.conf" <<EOF
on_store_error = accept
EOF
sed -i 's/^node = .*/node = accept/' "$RG_TMP/accept.conf"
RG_CONF="$RG_TMP/tempfail.conf"

cat >"$RG_TMP/accounts.conf" <<'EOF'
account alice {
    logins  = alice@relay.test
    domains = example.com
    limit   = rate 1000/1h name=r1000
}
EOF
out=$(rg_cli load "$RG_TMP/accounts.conf" 2>&1)
ok $? "relayguard load accounts.conf"
[ -z "$out" ] || diag "$out"

probe=(protocol_state=RCPT client_address=127.0.0.1 sasl_username=alice@relay.test
       sender=alice@example.com recipient=y@example.net size=0)
rg_start_policyd "$RG_TMP/tempfail.conf" policyd-tempfail
T_PID=$POLICYD_PID T_LOG=$POLICYD_LOG T_PORT=$POLICYD_PORT
rg_start_postfix t
a=$(rg_wait_policyd_ready "$T_PORT" "${probe[@]}" instance=probe.1)
like "$a" '^(OK|DUNNO|PREPEND)' "tempfail policyd ready: '$a'"
rg_start_policyd "$RG_TMP/accept.conf" policyd-accept
A_PID=$POLICYD_PID A_LOG=$POLICYD_LOG A_PORT=$POLICYD_PORT
rg_start_postfix a
a=$(rg_wait_policyd_ready "$A_PORT" "${probe[@]}" instance=probe.2)
like "$a" '^(OK|DUNNO|PREPEND)' "accept policyd ready: '$a'"
rg_sasl_user t alice@relay.test
rg_sasl_user a alice@relay.test
PT=${RG_PF_PORT[t]} PA=${RG_PF_PORT[a]}
send() { rg_send "$1" alice@relay.test alice@example.com "${2:-rcpt@example.net}"; }

# mid_transaction PORT REDIS_PID: MAIL and RCPT with Redis up, then Redis is
# killed, then DATA.  Prints "RCPT-reply | DATA-reply".
mid_transaction() {
    RG_QUEUED_LOG="$RG_TMP/queued.log" python3 - "$@" <<'PY'
import os, signal, smtplib, sys, time
port, redis_pid = int(sys.argv[1]), int(sys.argv[2])
s = smtplib.SMTP("127.0.0.1", port, "client.test", timeout=30)
s.ehlo(); s.login("alice@relay.test", "secret")
s.mail("alice@example.com")
rc = s.rcpt("mid@example.net")
os.kill(redis_pid, signal.SIGKILL)
time.sleep(0.3)
msg = b"From: <alice@example.com>\r\nTo: <mid@example.net>\r\nSubject: mid\r\n\r\nhello\r\n"
try:
    dc = s.data(msg)
except smtplib.SMTPResponseException as e:
    dc = (e.smtp_code, e.smtp_error)
dtext = "%d %s" % (dc[0], dc[1].decode())
if dc[0] == 250 and "queued as" in dtext:
    with open(os.environ["RG_QUEUED_LOG"], "a") as f: f.write(dtext.split("queued as ")[1] + "\n")
print("%d %s | %s" % (rc[0], rc[1].decode(), dtext))
s.quit()
PY
}

r=$(send "$PT"); like "$r" '^250 .*queued as' "Redis up, tempfail node: accepted ($r)"
r=$(send "$PA"); like "$r" '^250 .*queued as' "Redis up, accept node: accepted ($r)"

# --- Redis down -------------------------------------------------------------------
rg_kill_redis
t0=$(rg_now_ms)
a=$(rg_policy_query "$T_PORT" "${probe[@]}" instance=down.1)
dt=$(( $(rg_now_ms) - t0 ))
like "$a" '^451 4\.3\.0' "Redis down: raw policy request answered 451 4.3.0 ('$a')"
ok $(( dt < 2000 ? 0 : 1 )) "  within the time budget (${dt} ms)"
for i in 1 2 3; do
    r=$(send "$PT" "down$i@example.net")
    like "$r" '^451 4\.3\.0 ' "Redis down, on_store_error=tempfail: message $i gets 451 4.3.0 ($r)"
    sleep 0.3
done
kill -0 "$T_PID" 2>/dev/null
ok $? "the tempfail policyd is still running"
lines_before=$(wc -l <"$A_LOG")
r=$(send "$PA" open@example.net)
like "$r" '^250 .*queued as' "Redis down, on_store_error=accept: message accepted ($r)"
sleep 0.2
newlog=$(tail -n +"$((lines_before + 1))" "$A_LOG")
printf '%s\n' "$newlog" | grep -Ei 'store|redis' | grep -Eiq 'accept|fail.?open'
ok $? "  the accept policyd logged the store failure and that it let the message through"
diag "$(printf '%s\n' "$newlog" | tail -3)"
kill -0 "$A_PID" 2>/dev/null
ok $? "the accept policyd is still running"

sleep 1.5   # down for a while: the policyds keep retrying with backoff

# --- Redis back on the same port: service within 2 s ----------------------------------
rg_start_redis_aof "$REDIS_PORT"
t_up=$(rg_now_ms)
r= ; took=
for ((i = 0; i < 50; i++)); do
    t1=$(rg_now_ms)
    r=$(send "$PT" "back$i@example.net")
    case $r in 250*) took=$((t1 - t_up)); break ;; esac
    sleep 0.1
done
like "$r" '^250 .*queued as' "Redis back: accepted again ($r)"
ok $(( ${took:-99999} <= 2000 ? 0 : 1 )) "  normal service within 2 s of Redis coming back (${took:-never} ms)"
r=$(send "$PT"); like "$r" '^250 .*queued as' "  and the next message too ($r)"
is "$(rg_redis HGET rg:acct:alice domains 2>/dev/null | tr -d ' ')" example.com "accounts survived the restart (AOF)"

# --- Redis dies between RCPT and end of data ----------------------------------------
before=$(rg_queued_count)
r=$(mid_transaction "$PT" "$REDIS_PID")
{ wait "$REDIS_PID"; } 2>/dev/null
like "$r" '^250 .*\| 451 4\.3\.0' "tempfail: RCPT passed, Redis died, end of data gets 451 4.3.0 ($r)"
is "$(rg_queued_count)" "$before" "  the message was not accepted"
rg_start_redis_aof "$REDIS_PORT"
for ((i = 0; i < 30; i++)); do r=$(send "$PA" "ok$i@example.net"); case $r in 250*) break ;; esac; sleep 0.1; done
r=$(mid_transaction "$PA" "$REDIS_PID")
{ wait "$REDIS_PID"; } 2>/dev/null
like "$r" '^250 .*\| 250 .*queued as' "accept: RCPT passed, Redis died, end of data accepted ($r)"
rg_start_redis_aof "$REDIS_PORT"

kill -0 "$T_PID" 2>/dev/null && kill -0 "$A_PID" 2>/dev/null
ok $? "both policyds survived two Redis crashes"

# --- nothing lost -------------------------------------------------------------
rg_check_delivered
rg_stop_policyd "$T_PID"; ok $? "tempfail policyd stops on SIGTERM with status 0"
rg_stop_policyd "$A_PID"; ok $? "accept policyd stops on SIGTERM with status 0"
rg_log_clean "$T_LOG" && rg_log_clean "$A_LOG"
ok $? "no sanitizer or runtime errors in the policyd logs"

done_testing
