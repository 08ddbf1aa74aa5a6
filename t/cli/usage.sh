#!/bin/bash
# relayguard: help, version, usage errors and store errors (exit codes).
. "$top_srcdir/t/cli/common.sh"

run help
is "$RC" 0 "help: exit 0"
like "$OUT" "^usage: relayguard" "help: usage on stdout"
run version
like "$OUT" "^relayguard [0-9]" "version"
run frobnicate
is "$RC" 2 "unknown command: exit 2"
like "$ERR" "^relayguard: unknown command 'frobnicate'" "unknown command: message"
like "$ERR" "usage: relayguard" "usage error: usage on stderr"
is "$OUT" "" "usage error: nothing on stdout"
run account add alice --frob
is "$RC" 2 "unknown option: exit 2"
run account show
is "$RC" 2 "missing argument: exit 2"
run events --count x
is "$RC" 2 "bad number: exit 2"

OUT=$("$RG_BIN_CLI" -c "$RG_TMP/missing.conf" account list 2>&1); RC=$?
is "$RC" 2 "missing config: exit 2"
like "$OUT" "missing\.conf" "missing config: names the file"

# a store that does not answer
port=$(rg_free_port)
printf 'store = redis://127.0.0.1:%s/0\nnode = t\nlog = stderr\n' "$port" > "$RG_TMP/down.conf"
OUT=$("$RG_BIN_CLI" -c "$RG_TMP/down.conf" account list 2>&1); RC=$?
is "$RC" 3 "store down: exit 3"
like "$OUT" "^relayguard: store redis://127\.0\.0\.1:$port/0: " "store down: message names the store"

# AUTH and SELECT: a Redis with a password, db 3
rg_redis config set requirepass s3cret >/dev/null
printf 'store = redis://default:s3cret@127.0.0.1:%s/3\nnode = t\nlog = stderr\n' "$REDIS_PORT" > "$RG_TMP/auth.conf"
OUT=$("$RG_BIN_CLI" -c "$RG_TMP/auth.conf" suppress add auth@example.com 2>&1); RC=$?
is "$RC" 0 "AUTH user:pass works"
is "$(redis-cli -p "$REDIS_PORT" -a s3cret --no-auth-warning -n 3 hexists rg:s:g auth@example.com)" 1 "SELECT db 3"
printf 'store = redis://default:wrong@127.0.0.1:%s/3\nnode = t\nlog = stderr\n' "$REDIS_PORT" > "$RG_TMP/auth.conf"
OUT=$("$RG_BIN_CLI" -c "$RG_TMP/auth.conf" suppress list 2>&1); RC=$?
is "$RC" 3 "wrong password: exit 3"
redis-cli -p "$REDIS_PORT" -a s3cret --no-auth-warning config set requirepass '' >/dev/null

# unix socket
sock="$RG_TMP/redis.sock"
redis-server --port 0 --unixsocket "$sock" --save '' --appendonly no --dir "$RG_TMP" \
    --logfile "$RG_TMP/redis-unix.log" --daemonize no &
upid=$!
rg_on_exit "rg_stop_pid $upid"
for i in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
printf 'store = redis+unix://%s?db=2\nnode = t\nlog = stderr\n' "$sock" > "$RG_TMP/unix.conf"
OUT=$("$RG_BIN_CLI" -c "$RG_TMP/unix.conf" suppress add unix@example.com 2>&1); RC=$?
is "$RC" 0 "redis+unix:// works"
is "$(redis-cli -s "$sock" -n 2 hexists rg:s:g unix@example.com)" 1 "redis+unix:// ?db=2"

done_testing
