# t/webhookd/common.sh - sourced by the webhookd tests: a private Redis, a
# relayguard-policyd (the real engine writes the events), the loopback
# receiver (receiver.py) and relayguard-webhookd processes.
. "$top_srcdir/t/lib.sh"
RG_BIN_WEBHOOKD="$top_builddir/webhookd/relayguard-webhookd"
WH_DIR="$top_srcdir/t/webhookd"
rg_require redis-server redis-cli python3
rg_require_built "$RG_BIN_POLICYD" "$RG_BIN_CLI" "$RG_BIN_WEBHOOKD"
rg_tmpdir
rg_start_redis
SECRET=global-secret-0123456789

# wh_start_receiver NAME [PORT] [extra secrets..]: RECV_PORT, RECV_DIR, RECV_PID
wh_start_receiver() {
    local name=$1 port=${2:-}
    shift 2 2>/dev/null || shift
    [ -n "$port" ] || port=$(rg_free_port)
    RECV_PORT=$port
    RECV_DIR="$RG_TMP/recv-$name"
    mkdir -p "$RECV_DIR"
    /usr/bin/python3 "$WH_DIR/receiver.py" "$RECV_PORT" "$RECV_DIR" "$SECRET" "$@" \
        >>"$RECV_DIR/stderr" 2>&1 &
    RECV_PID=$!
    rg_on_exit "rg_stop_pid $RECV_PID"
    rg_wait_port "$RECV_PORT" 10 || { echo "Bail out! receiver did not start"; cat "$RECV_DIR/stderr"; exit 1; }
}

# wh_start NAME CONF: a relayguard-webhookd in the foreground; WH_PID, WH_LOG
wh_start() {
    WH_LOG="$RG_TMP/webhookd-$1.log"
    "$RG_BIN_WEBHOOKD" -f -c "$2" >>"$WH_LOG" 2>&1 &
    WH_PID=$!
    rg_on_exit "rg_stop_pid $WH_PID"
    # ready when it has joined the consumer group
    rg_wait_for 10 sh -c "grep -q 'starting as consumer' '$WH_LOG'" ||
        { echo "Bail out! relayguard-webhookd did not start"; sed 's/^/# /' "$WH_LOG"; exit 1; }
    rg_wait_for 10 sh -c "redis-cli -p $REDIS_PORT xinfo groups rg:events | grep -q webhookd"
}

# wh_stop PID LOG: SIGTERM; 0 when it exited 0 with a clean log (ASan)
wh_stop() {
    local pid=$1 i rc
    kill -TERM "$pid" 2>/dev/null || return 1
    for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; wait "$pid" 2>/dev/null; return 1; fi
    wait "$pid" 2>/dev/null; rc=$?
    [ "$rc" = 0 ] && rg_log_clean "$2"
}

# decide LOGIN SENDER N TAG: N decisions by the real engine (via policyd)
decide() {
    /usr/bin/python3 "$WH_DIR/policy.py" "$POLICYD_PORT" "$@" >/dev/null
}

# report DIR: facts about what a receiver got (python, see below)
report() {
    /usr/bin/python3 - "$@" <<'PY'
import json, sys
d, what = sys.argv[1], sys.argv[2]
path = sys.argv[3] if len(sys.argv) > 3 else None
reqs = []
try:
    with open(d + "/requests.jsonl") as f:
        reqs = [json.loads(l) for l in f]
except FileNotFoundError:
    pass
if path:
    reqs = [r for r in reqs if r["path"] == path]
acked = [i for r in reqs if r["status"] == 200 for i in r["events"]]
if what == "acked":            # distinct events answered 200
    print(len(set(acked)))
elif what == "acked-twice":    # events answered 200 more than once at the same path
    pairs = [(r["path"], i) for r in reqs if r["status"] == 200 for i in r["events"]]
    print(len(pairs) - len(set(pairs)))
elif what == "ids":            # distinct acknowledged ids, sorted
    print("\n".join(sorted(set(acked))))
elif what == "bad-sig":        # requests whose signature did not verify
    print(sum(1 for r in reqs if r["sig"] != "ok"))
elif what == "status":         # how many requests were answered STATUS
    print(sum(1 for r in reqs if r["status"] == int(sys.argv[4])))
elif what == "types":
    print(" ".join(sorted(set(t for r in reqs for t in r["types"]))))
elif what == "order":          # per account, acknowledged events in stream order?
    def key(i):
        a, b = i.split("-")
        return (int(a), int(b))
    seen, bad = {}, 0
    for r in reqs:
        if r["status"] != 200:
            continue
        for i, a in zip(r["events"], r["accounts"]):
            if a in seen and key(i) <= key(seen[a]):
                bad += 1
            seen[a] = i
    print(bad)
elif what == "requests":       # how many requests
    print(len(reqs))
elif what == "connections":    # how many TCP connections they came on
    print(len(set(r["port"] for r in reqs)))
elif what == "max-batch":
    print(max([len(r["events"]) for r in reqs] or [0]))
PY
}

# wait_acked DIR PATH N [SECONDS]: until N distinct events were acknowledged at PATH
wait_acked() {
    local i
    for ((i = 0; i < ${4:-20} * 10; i++)); do
        [ "$(report "$1" acked "$2")" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}

# stream_ids [ACCOUNT] [VERDICT]: ids in the events stream, sorted
stream_ids() {
    /usr/bin/python3 - "$REDIS_PORT" "${1:-}" "${2:-}" <<'PY'
import subprocess, sys
port, acct, verdict = sys.argv[1:4]
out = subprocess.run(["redis-cli", "-p", port, "--json", "xrange", "rg:events", "-", "+"],
                     capture_output=True, text=True).stdout
import json
ids = []
for i, f in json.loads(out or "[]"):
    m = dict(zip(f[::2], f[1::2]))
    if (not acct or m.get("account") == acct) and (not verdict or m.get("verdict") == verdict):
        ids.append(i)
print("\n".join(sorted(ids)))
PY
}
