#!/bin/bash
# relayguard-milter killed with SIGKILL in the middle of a smtp-source run:
# Postfix tempfails (milter_default_action = tempfail), every message it
# accepted reaches the sink, and the restarted milter serves again.
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require postfix smtp-source smtp-sink swaks openssl
rg_require_built "$RG_BIN_MILTER" "$RG_BIN_CLI"
rg_tmpdir
rg_start_redis
RG_CONF="$RG_TMP/rg.conf"
rg_milter_conf "$RG_CONF" </dev/null
printf 'account local {\n    client_networks = 127.0.0.0/8\n    domains = example.com\n}\n' >"$RG_TMP/accounts.conf"
rg_cli load "$RG_TMP/accounts.conf" >/dev/null || { echo "Bail out! relayguard load failed"; exit 1; }
rg_start_sink
rg_start_milter "$RG_CONF" inet
POLICYD_PORT=0
rg_start_postfix kill \
    "smtpd_recipient_restrictions =" "smtpd_end_of_data_restrictions =" \
    "smtpd_milters = inet:127.0.0.1:$MILTER_PORT" "milter_default_action = tempfail" \
    "milter_protocol = 6" "milter_connect_timeout = 2s"
P=$PF_PORT

smtp-source -s 10 -m 3000 -l 2048 -f a@example.com -t b@example.net "127.0.0.1:$P" \
    >"$RG_TMP/source.log" 2>&1 &
SRC=$!
rg_on_exit "rg_stop_pid $SRC"
# let some messages through, then kill the milter hard
rg_wait_for 30 bash -c "[ \$(find '$SINK_DIR/mail' -type f | wc -l) -ge 100 ]"
kill -9 "$MILTER_PID"
wait "$MILTER_PID" 2>/dev/null
killed_at=$(rg_sink_count)
ok $((killed_at >= 3000)) "milter killed during the run ($killed_at delivered by then)"
sleep 2
wait "$SRC" 2>/dev/null
grep -q '451 4.7.1' "$RG_TMP/source.log" || grep -q 'milter.*tempfail\|451 4.7.1 Service unavailable' "$PF_LOG"
ok $? "Postfix tempfailed while the milter was down (451 4.7.1)"
accepted=$(grep -Ec 'qmgr\[[0-9]+\]: [0-9A-F]+: from=<' "$PF_LOG")
rg_wait_for 60 bash -c "[ \$(find '$SINK_DIR/mail' -type f | wc -l) -ge $accepted ]"
is "$(rg_sink_count)" "$accepted" "nothing lost: every message Postfix accepted reached the sink ($accepted)"
unsigned=$(grep -rL '^DKIM-Signature:' "$SINK_DIR/mail" | wc -l)
is "$unsigned" 0 "every delivered message is signed (none slipped past the dead milter)"

# restarted on the same port, it serves again
: >"$MILTER_LOG.2"
"$RG_BIN_MILTER" -f -c "$RG_CONF" -l "$MILTER_SOCK" >>"$MILTER_LOG" 2>&1 &
MILTER_PID=$!
rg_on_exit "rg_stop_pid $MILTER_PID"
rg_wait_port "$MILTER_PORT" 10; ok $? "milter restarted"
r=$(rg_send "$P" "" a@example.com b@example.net --header "Subject: after-restart")
like "$r" "^250 " "after the restart: accepted"
rg_wait_for 20 bash -c "grep -rlF 'after-restart' '$SINK_DIR/mail' | grep -q ."
f=$(grep -rlF -- "after-restart" "$SINK_DIR/mail" | head -1)
grep -q '^DKIM-Signature:' "$f"; ok $? "after the restart: signed"
rg_stop_milter; is "$?" 0 "milter: clean exit"
done_testing
