#!/bin/bash
# t/integration/policyd-badinput.sh - relayguard-policyd against hostile and
# broken clients.  Each bad connection must be dropped with a log line while
# a well-behaved client on its own connection keeps getting right answers
# and the daemon stays up.  Then: idle timeout, max_connections, SIGHUP
# reload (good and broken config) and SIGTERM draining a pending decision.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

rg_require redis-server redis-cli python3
rg_require_built "$RG_BIN_POLICYD"
rg_tmpdir
rg_start_redis

conf="$RG_TMP/relayguard.conf"
# a generous store_timeout: the drain test below stops Redis for a moment
write_conf() {
    rg_write_conf "$conf.tmp" <<EOF
policyd {
    idle_timeout = 2s
    max_connections = 100
}
EOF
    sed 's/^store_timeout = .*/store_timeout = 3s/' "$conf.tmp" >"$conf"
}
write_conf
rg_redis SADD rg:accts alice >/dev/null
rg_redis HSET rg:acct:alice logins alice domains example.com networks 127.0.0.0/8 >/dev/null
rg_redis INCR rg:acct:gen >/dev/null

rg_start_policyd "$conf"
rg_wait_for 10 grep -q "loaded .* accounts" "$POLICYD_LOG"
ok $? "policyd started and loaded the accounts"

# --- the python side: a good client, bad clients, small probes -------------
cat >"$RG_TMP/pc.py" <<'EOF'
import os, socket, struct, sys, time

PORT = int(os.environ["POLICYD_PORT"])

def req(login, sender, rcpt="bob@example.net", state="RCPT", inst="i.1"):
    return (f"request=smtpd_access_policy\nprotocol_state={state}\nclient_address=127.0.0.1\n"
            f"sasl_username={login}\nsender={sender}\nrecipient={rcpt}\ninstance={inst}\n\n").encode()

def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    return s

def reply(s):
    buf = b""
    while not buf.endswith(b"\n\n"):
        d = s.recv(4096)
        if not d:
            return None
        buf += d
    return buf.decode()

def closed_by_server(s, wait=5):
    """True when the server closes (EOF or reset) within wait seconds."""
    s.settimeout(wait)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False

def send_bad(data, chunk=65536):
    s = connect()
    try:
        for i in range(0, len(data), chunk):
            s.sendall(data[i:i + chunk])
    except (BrokenPipeError, ConnectionResetError):
        return "closed"
    return "closed" if closed_by_server(s) else "open"

def good_client(stopfile, result):
    """Alternate an allowed and a refused request until stopfile appears."""
    s = connect()
    good = bad = 0
    want_ok, want_no = "action=DUNNO\n\n", "action=553 5.7.1 "
    while not os.path.exists(stopfile):
        for r, want in ((req("alice", "alice@example.com"), want_ok),
                        (req("alice", "alice@example.org"), want_no)):
            try:
                s.sendall(r)
                got = reply(s)
            except OSError as e:
                got = f"error {e}"
            if got is not None and got.startswith(want):
                good += 1
            else:
                bad += 1
                sys.stderr.write(f"good client: got {got!r}, want {want!r}\n")
                s = connect()
        time.sleep(0.002)
    open(result, "w").write(f"{good} {bad}\n")

cmd = sys.argv[1]
if cmd == "good":
    good_client(sys.argv[2], sys.argv[3])
elif cmd == "one":              # one request on a new connection: print the reply
    s = connect()
    s.sendall(req(sys.argv[2], sys.argv[3]))
    print(repr(reply(s)))
elif cmd == "no-blank-line":
    s = connect()
    s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@example.com\n")
    time.sleep(0.2)
    s.close()
elif cmd == "vanish":           # mid-request, then a reset instead of a FIN
    s = connect()
    s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@exa")
    time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
elif cmd == "long-line":
    print(send_bad(b"request=smtpd_access_policy\nsender=" + b"a" * (1 << 20) + b"\n\n"))
elif cmd == "many-attrs":
    print(send_bad(b"request=smtpd_access_policy\n" + b"a=1\n" * 10000 + b"\n"))
elif cmd == "long-request":
    print(send_bad(b"request=smtpd_access_policy\n" + (b"x=" + b"v" * 4000 + b"\n") * 20 + b"\n"))
elif cmd == "nul":
    print(send_bad(b"request=smtpd_access_policy\n\x00\x01\x02\xff\xfe garbage \x00\n\n"))
elif cmd == "binary-name":
    print(send_bad(b"request=smtpd_access_policy\n\xff\xfe\xfd=1\n\n"))
elif cmd == "no-equals":
    print(send_bad(b"request=smtpd_access_policy\nGET / HTTP/1.0\n\n"))
elif cmd == "idle":             # silent client: closed after idle_timeout (2s)
    s = connect()
    t = time.time()
    print("closed" if closed_by_server(s, 6) else "open", round(time.time() - t))
elif cmd == "flood":            # N connections at once: how many are refused
    n = int(sys.argv[2])
    socks = [connect() for _ in range(n)]
    time.sleep(0.5)
    refused = 0
    for s in socks:
        s.setblocking(False)
        try:
            refused += s.recv(1) == b""
        except BlockingIOError:
            pass
        except ConnectionResetError:
            refused += 1
    print(refused)
elif cmd == "send-and-close":   # leave while the decision is pending
    s = connect()
    s.sendall(req("alice", "alice@example.com", inst="gone.1"))
    open(sys.argv[2], "w").close()
    s.close()
elif cmd == "pending-then-term":  # a decision in flight while SIGTERM arrives
    s = connect()
    s.sendall(req("alice", "alice@example.com", inst="drain.1"))
    open(sys.argv[2], "w").close()          # tell the shell: request sent
    got = reply(s)
    print(repr(got), "closed" if got and closed_by_server(s, 5) else "open")
EOF
export POLICYD_PORT
pc() { python3 "$RG_TMP/pc.py" "$@"; }

# --- bad input while a good client keeps going ---------------------------------
stop="$RG_TMP/stop-good"
pc good "$stop" "$RG_TMP/good.result" 2>"$RG_TMP/good.err" &
good_pid=$!
sleep 0.3

log_has() { rg_wait_for 5 grep -qF -- "$1" "$POLICYD_LOG"; }

pc no-blank-line
log_has "connection closed in the middle of a request"
ok $? "no blank line, then close: logged"

pc vanish
n=$(grep -cF "connection closed in the middle of a request" "$POLICYD_LOG")
[ "$n" -ge 2 ]
ok $? "client vanishing mid-request (reset): logged"

is "$(pc long-line)" "closed" "1 MB line: connection dropped"
log_has "request line too long (over 8192 bytes), dropping connection"
ok $? "1 MB line: logged"
like "$(grep -F 'request line too long' "$POLICYD_LOG" | head -1)" \
    'warning: 127\.0\.0\.1:[0-9]+: request line too long \(over 8192 bytes\), dropping connection' \
    "log line names the client"

is "$(pc many-attrs)" "closed" "10,000 attributes: connection dropped"
log_has "too many attributes (over 256), dropping connection"
ok $? "10,000 attributes: logged"

is "$(pc long-request)" "closed" "80 kB request of short lines: connection dropped"
log_has "request too long (over 65536 bytes), dropping connection"
ok $? "80 kB request: logged"

is "$(pc nul)" "closed" "binary garbage with NUL: connection dropped"
log_has "NUL byte in request, dropping connection"
ok $? "NUL: logged"

is "$(pc binary-name)" "closed" "non-UTF-8 attribute name: connection dropped"
log_has "attribute name is not text, dropping connection"
ok $? "binary name: logged"

is "$(pc no-equals)" "closed" "line without '=': connection dropped"
log_has "request line without '=', dropping connection"
ok $? "line without '=': logged"

like "$(pc idle)" "^closed [234]$" "a silent connection is closed after idle_timeout"

# --- SIGHUP: a new account appears; a broken config keeps the old one ------------
rg_redis SADD rg:accts grace >/dev/null
rg_redis HSET rg:acct:grace logins grace domains example.net >/dev/null
kill -HUP "$POLICYD_PID"
log_has "reload: the new configuration is in use"
ok $? "SIGHUP: reloaded"
rg_wait_for 5 sh -c "python3 '$RG_TMP/pc.py' one grace grace@example.net | grep -q DUNNO"
ok $? "after SIGHUP the new account is known"

echo "this is not = a valid { config" >"$conf"
kill -HUP "$POLICYD_PID"
log_has "keeping the old configuration"
ok $? "SIGHUP with a broken config: error logged, old config kept"
like "$(pc one alice alice@example.com)" "action=DUNNO" "still answering after a failed reload"
write_conf

# --- max_connections = 100 -----------------------------------------------------
refused=$(pc flood 120)
[ "${refused:-0}" -ge 15 ] && [ "${refused:-0}" -le 21 ]
ok $? "max_connections: 120 at once, $refused refused (want about 21)"
log_has "too many connections (max_connections = 100)"
ok $? "max_connections: logged"

touch "$stop"
wait "$good_pid"
read -r good bad <"$RG_TMP/good.result"
[ "${good:-0}" -ge 100 ] && [ "${bad:-1}" = 0 ]
ok $? "the good client got $good right replies and $bad wrong ones"
[ -s "$RG_TMP/good.err" ] && diag "$(head -5 "$RG_TMP/good.err")"

kill -0 "$POLICYD_PID" 2>/dev/null
ok $? "policyd is still alive"

# --- a client that leaves while its decision is pending --------------------------
sent="$RG_TMP/sent-gone"
kill -STOP "$REDIS_PID"
pc send-and-close "$sent"
rg_wait_for 5 test -e "$sent"
sleep 0.2
kill -CONT "$REDIS_PID"
sleep 0.3    # the verdict lands on the closed connection
like "$(pc one alice alice@example.com)" "action=DUNNO" "a client gone while its decision was pending: the daemon goes on"

# --- SIGTERM drains: a decision in flight is answered, then exit 0 -----------------
sent="$RG_TMP/sent"
kill -STOP "$REDIS_PID"                 # the decision waits for Redis
pc pending-then-term "$sent" >"$RG_TMP/drain.out" &
client=$!
rg_wait_for 5 test -e "$sent"
sleep 0.1
kill -TERM "$POLICYD_PID"
sleep 0.2
kill -CONT "$REDIS_PID"
wait "$client"
is "$(cat "$RG_TMP/drain.out")" "'action=DUNNO\n\n' closed" "SIGTERM: the pending decision is answered, then the connection closed"
for ((i = 0; i < 120; i++)); do kill -0 "$POLICYD_PID" 2>/dev/null || break; sleep 0.05; done
wait "$POLICYD_PID"
is "$?" 0 "SIGTERM: exit status 0 within the drain time"
grep -q "draining: 1 decision(s) pending" "$POLICYD_LOG"
ok $? "SIGTERM: drain logged with the pending decision"
(exec 3<>"/dev/tcp/127.0.0.1/$POLICYD_PORT") 2>/dev/null
ok $((! $?)) "no longer listening"
rg_log_clean "$POLICYD_LOG"
ok $? "no sanitizer reports in the log"

if [ "$_rg_failed" != 0 ]; then diag "policyd log (tail):"; tail -40 "$POLICYD_LOG" | sed 's/^/# /'; fi
done_testing
