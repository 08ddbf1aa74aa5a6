#!/bin/bash
# relayguard limit show/reset on buckets charged by a real relayguard-policyd.
. "$top_srcdir/t/cli/common.sh"
[ -x "$RG_BIN_POLICYD" ] || skip_all "relayguard-policyd not built ($RG_BIN_POLICYD)"

run account add alice --domains example.com --limit 'rate 2/1h' --limit 'quota 500/1d per=rcpt'
PORT=$(rg_free_port)
"$RG_BIN_POLICYD" -f -c "$CONF" -l "inet:127.0.0.1:$PORT" 2>"$RG_TMP/policyd.log" &
PD=$!
rg_on_exit "rg_stop_pid $PD"
rg_wait_port "$PORT" 10 || { echo "Bail out! relayguard-policyd did not start"; exit 1; }

# send N FIRST: N messages of 2 recipients each; prints one RCPT action per message
send() {
    python3 - "$PORT" "$1" "$2" <<'EOT'
import socket, sys
port, n, first = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
f = socket.create_connection(("127.0.0.1", port)).makefile("rwb")
def req(**kw):
    for k, v in kw.items():
        f.write(("%s=%s\n" % (k, v)).encode())
    f.write(b"\n"); f.flush()
    out = []
    while True:
        l = f.readline()
        if l in (b"\n", b""): break
        out.append(l.decode().strip())
    return " ".join(out)
for i in range(first, first + n):
    base = dict(request="smtpd_access_policy", sasl_username="alice", client_address="192.0.2.1",
                sender="a@example.com", instance="m%d" % i, queue_id="Q%d" % i)
    a = req(protocol_state="RCPT", recipient="b@y.test", **base)
    print(a)
    if a == "action=DUNNO":
        req(protocol_state="END-OF-MESSAGE", recipient_count="2", **base)
EOT
}

out=$(send 2 0)
is "$out" "$(printf 'action=DUNNO\naction=DUNNO')" "two messages pass"
run limit show alice
like "$OUT" "a:alice:rate-2-1h-msg +rate +2/2 +left 0 +holds 0 +next in" "show: the rate bucket is full"
like "$OUT" "a:alice:quota-500-1d-rcpt +quota +4/500 +left 496" "show: 4 recipients counted"
out=$(send 1 2)
like "$out" "^action=(451|550)" "third message is refused"
run limit reset alice --limit rate-2-1h-msg
is "$RC" 0 "reset the rate"
run limit show alice --limit rate-2-1h-msg
like "$OUT" "rate +0/2 +left 2" "show after reset: empty"
out=$(send 1 3)
is "$out" "action=DUNNO" "after reset the next message passes"
run --json limit show alice
json_ok "show --json parses"

done_testing
