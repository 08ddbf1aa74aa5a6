#!/bin/bash
# t/transcript/run.sh - relayguard-policyd request/reply transcripts.
#
# Starts a private Redis, loads t/transcript/accounts.conf, starts
# relayguard-policyd and, for each t/transcript/*.in, sends its requests over
# one connection and compares the replies with the .ref beside it
# (client.py match: "..." in a .ref line matches any text).
#
# In a .in file:
#   #! COMMAND    shell setup run before the requests (rg_redis is there)
#   #? COMMAND    run after the requests; its output is appended to the
#                 replies as "? LINE" lines, so the .ref can check state
#   #@ pipeline   send every request before reading any reply
#   #@ raw        send the bytes as they are (framing errors)
# Any other '#' line is a comment.  One case per file; every case starts
# with the message counters of the accounts as the previous cases left them,
# so cases use accounts of their own where state matters.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

rg_require redis-server redis-cli python3
rg_require_built "$RG_BIN_POLICYD"
rg_tmpdir
rg_start_redis

conf="$RG_TMP/relayguard.conf"
rg_write_conf "$conf" <<EOF
reservation_ttl = 10m
EOF

# Accounts: through the CLI when it can, else straight into Redis with the
# same fields (account.h: lists comma-separated, limits one per line).
seed_accounts() {
    local a
    for a in alice carol dave erin frank; do rg_redis SADD rg:accts "$a" >/dev/null; done
    rg_redis HSET rg:acct:alice logins "alice@relay.test,alice" domains "example.com,.example.com" \
        networks "127.0.0.0/8,192.0.2.0/24" >/dev/null
    rg_redis HSET rg:acct:carol logins "carol" domains "example.com" networks "198.51.100.0/24" >/dev/null
    rg_redis HSET rg:acct:dave logins "dave" domains "example.org" limits "rate 3/1h" >/dev/null
    rg_redis HSET rg:acct:erin logins "erin" domains "example.net" limits "quota 3/1d per=rcpt" >/dev/null
    rg_redis HSET rg:acct:frank logins "frank" domains "example.com" >/dev/null
    rg_redis INCR rg:acct:gen >/dev/null
}
if [ -x "$RG_BIN_CLI" ] && "$RG_BIN_CLI" -c "$conf" load "$here/accounts.conf" >"$RG_TMP/load.out" 2>&1; then
    pass "accounts loaded with relayguard load"
else
    diag "relayguard load failed or is not built; seeding Redis directly:" "$(cat "$RG_TMP/load.out" 2>/dev/null)"
    seed_accounts
    pass "accounts seeded with redis-cli"
fi

rg_start_policyd "$conf"
rg_wait_for 10 grep -q "loaded .* accounts" "$POLICYD_LOG"
ok $? "policyd loaded the accounts"

for in in "$here"/*.in; do
    name=$(basename "$in" .in)
    ref="$here/$name.ref"
    got="$RG_TMP/$name.out"
    if [ ! -f "$ref" ]; then fail "$name: no $name.ref"; continue; fi
    while IFS= read -r line; do
        eval "${line#\#! }" || diag "$name: setup failed: ${line#\#! }"
    done < <(grep '^#! ' "$in")
    python3 "$here/client.py" send "$POLICYD_PORT" "$in" >"$got" 2>"$RG_TMP/$name.err" ||
        diag "$name: client: $(cat "$RG_TMP/$name.err")"
    while IFS= read -r line; do
        eval "${line#\#? }" 2>&1 | sed 's/^/? /' >>"$got"
    done < <(grep '^#? ' "$in")
    if python3 "$here/client.py" match "$ref" "$got" >"$RG_TMP/$name.diff"; then
        pass "$name"
    else
        fail "$name" "$(cat "$RG_TMP/$name.diff")"
    fi
done

kill -0 "$POLICYD_PID" 2>/dev/null
ok $? "policyd still running"
rg_stop_policyd "$POLICYD_PID"
ok $? "policyd exits 0 on SIGTERM"
rg_log_clean "$POLICYD_LOG"
ok $? "no sanitizer reports in the log"
if [ "$_rg_failed" != 0 ]; then diag "policyd log:"; tail -40 "$POLICYD_LOG" | sed 's/^/# /'; fi
done_testing
