#!/bin/bash
# t/bounce/files.sh - "relayguard bounce FILE..." and "relayguard bounce
# --maildir DIR": a mailbox of collected bounces in one process, through the
# same code path as the pipe (one Redis connection for the run).  Each
# message is reported, the exit code says what matters most (75 when
# one must be retried), a maildir's done messages are marked seen (cur/,
# flag S) so a second run skips them, and with Redis stopped nothing is
# marked and everything is recorded by the next run.
. "${top_srcdir:-$(dirname "$0")/../..}/t/lib.sh"
. "$top_srcdir/t/bounce/common.sh"
rg_require_built "$RG_BIN_CLI"
rg_tmpdir
rg_start_redis_aof
EX_DATAERR=65 EX_NOINPUT=66 EX_TEMPFAIL=75

rg_bounce_conf "$(id -un)" <<EOC
    domain = bounce.test
EOC
token() { rg_cli bounce token acme billing@shop.test "$@"; }
supp() { rg_redis HGET rg:s:a:acme "$1"; }
M="$RG_TMP/mail"
mkdir -p "$M"
for who in alice bob carol; do
    rp=$(token "$who@example.net")
    rg_bounce_dsn "$who@example.net" "$rp" >"$M/$who.eml"
done
: >"$M/empty.eml"

# --- FILE... ------------------------------------------------------------------
out=$(rg_cli bounce "$M/alice.eml" "$M/bob.eml" 2>"$RG_TMP/err")
rc=$?
is "$rc" 0 "two files: exit 0"
like "$(printf '%s\n' "$out" | tr '\n' ' ')" "== $M/alice\.eml hard 5\.1\.1 alice@example\.net: suppressed" "alice.eml reported (the To: header names the token)"
like "$(printf '%s\n' "$out" | tr '\n' ' ')" "== $M/bob\.eml hard 5\.1\.1 bob@example\.net: suppressed" "bob.eml reported"
like "$out" "2 messages: 2 done, 0 to retry" "a summary line"
like "$(supp alice@example.net)$(supp bob@example.net)" '^hard-bounce\|.*hard-bounce\|' "alice and bob suppressed"
out=$(rg_cli bounce "$M/carol.eml" "$M/empty.eml" "$M/missing.eml" 2>"$RG_TMP/err")
rc=$?
is "$rc" "$EX_NOINPUT" "an unreadable file: exit $EX_NOINPUT (EX_NOINPUT), the others still handled"
like "$(supp carol@example.net)" '^hard-bounce\|' "carol suppressed"
like "$(cat "$RG_TMP/err")" "missing\.eml: No such file" "the missing file named on stderr"
like "$out" "3 messages: 1 done, 0 to retry, 2 unreadable or empty" "summary: one done, two bad"

# --- --maildir DIR --------------------------------------------------------------
rg_redis FLUSHALL >/dev/null
MD="$RG_TMP/Maildir"
mkdir -p "$MD/new" "$MD/cur" "$MD/tmp"
i=0
for who in dave erin frank; do
    rp=$(token "$who@example.net")
    rg_bounce_dsn "$who@example.net" "$rp" >"$MD/new/17000000$i.M1P1.host"
    i=$((i + 1))
done
rp=$(token grace@example.net)
rg_bounce_dsn grace@example.net "$rp" >"$MD/cur/170000010.M1P1.host:2,F"
cp "$MD/cur/170000010.M1P1.host:2,F" "$MD/cur/170000011.M1P1.host:2,S"   # seen before: skipped

# Redis stopped: every message to retry, nothing marked seen
rg_kill_redis
out=$(rg_cli bounce --maildir "$MD" 2>"$RG_TMP/err")
rc=$?
is "$rc" "$EX_TEMPFAIL" "Redis stopped: exit $EX_TEMPFAIL (EX_TEMPFAIL)"
like "$out" "4 messages: 0 done, 4 to retry" "4 messages to retry (one seen before skipped)"
is "$(ls "$MD/new" | wc -l)" 3 "nothing moved out of new/"
rg_start_redis_aof "$REDIS_PORT"

out=$(rg_cli bounce --maildir "$MD" 2>"$RG_TMP/err")
rc=$?
is "$rc" 0 "Redis back: exit 0"
like "$out" "4 messages: 4 done, 0 to retry, 0 unreadable or empty \(1 seen before, skipped\)" "all four done"
for who in dave erin frank grace; do
    like "$(supp "$who@example.net")" '^hard-bounce\|' "$who suppressed"
done
is "$(ls "$MD/new" | wc -l)" 0 "new/ is empty"
is "$(ls "$MD/cur" | grep -c ':2,S$')" 4 "cur/: three from new/ marked seen (:2,S), and the seen one kept"
[ -e "$MD/cur/170000010.M1P1.host:2,FS" ]; ok $? "a flagged message keeps its flag: :2,FS"
n_ev=$(rg_redis XLEN rg:events)
out=$(rg_cli bounce --maildir "$MD" 2>&1)
like "$out" "0 messages: 0 done, 0 to retry, 0 unreadable or empty \(5 seen before, skipped\)" "a second run skips them all"
is "$(rg_redis XLEN rg:events)" "$n_ev" "and writes nothing"

out=$(rg_cli bounce --maildir "$RG_TMP/nope" 2>&1)
rc=$?
is "$rc" "$EX_NOINPUT" "a folder that is not a maildir: exit $EX_NOINPUT"
like "$out" "not a maildir" "with a clear error"
done_testing
