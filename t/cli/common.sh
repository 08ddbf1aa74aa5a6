# t/cli/common.sh - sourced by the t/cli tests: a private Redis, a config
# for it, and run() that captures stdout, stderr and the exit code.
. "$top_srcdir/t/lib.sh"
[ -x "$RG_BIN_CLI" ] || skip_all "relayguard not built ($RG_BIN_CLI)"
rg_require python3
rg_tmpdir
rg_start_redis
CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$CONF" </dev/null

# run ARGS...: sets OUT, ERR, RC
run() {
    OUT=$("$RG_BIN_CLI" -c "$CONF" "$@" 2>"$RG_TMP/stderr")
    RC=$?
    ERR=$(cat "$RG_TMP/stderr")
}
# json_ok LABEL: is $OUT valid JSON?
json_ok() {
    printf '%s' "$OUT" | python3 -m json.tool >/dev/null 2>&1
    ok $? "$1"
}
