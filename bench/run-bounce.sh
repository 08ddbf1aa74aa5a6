#!/bin/bash
# bench/run-bounce.sh - how fast bounces are read: rg_bounce_parse() in-process
# over the corpus (GMime + classification), and the whole "relayguard bounce"
# command as an MTA's pipe runs it (process start, config, token check, Redis
# record lookup, suppression or soft count, event), one process per bounce.
#
# Usage: bench/run-bounce.sh           (as root: installs missing packages)
# Knobs (environment): BUILD=/work/build-bench SECONDS_PARSE=10 N=2000 PAR=1
#   OUT=FILE (also write the report there)  KEEP=0
# Target (issue 6): 1,000 typical DSNs per second per core.
{
set -euo pipefail
. "$(dirname "$0")/common.sh"

SECONDS_PARSE=${SECONDS_PARSE:-10}
N=${N:-2000}
PAR=${PAR:-1}
KEEP=${KEEP:-0}
CORPUS="$TOP_SRC/t/bounce/corpus"

need_pkgs redis-server redis-tools gcc make pkg-config libgmime-3.0-dev
make_workdir
cleanup() {
    stop_all
    if [ "$KEEP" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -f "$BUILD/Makefile" ]; then
    mkdir -p "$BUILD"
    (cd "$BUILD" && "$TOP_SRC/configure" -q) >"$WORK/configure.log" 2>&1 ||
        die "configure failed: $(tail -n 5 "$WORK/configure.log")"
fi
make -C "$BUILD" -j2 cli/relayguard bench/bounce-parse >"$WORK/build.log" 2>&1 ||
    die "build failed: $(grep -m 5 -E 'error|Error' "$WORK/build.log")"
RG_CLI="$BUILD/cli/relayguard"

report() { printf '%s\n' "$*"; [ -z "${OUT:-}" ] || printf '%s\n' "$*" >>"$OUT"; }
[ -z "${OUT:-}" ] || : >"$OUT"

report "## bounce parsing, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
report ""
report "### in-process: rg_bounce_parse() (bench/bounce-parse, $SECONDS_PARSE s over the corpus)"
report '```'
while IFS= read -r l; do report "$l"; done < <("$BUILD/bench/bounce-parse" "$SECONDS_PARSE" "$CORPUS"/*.eml)
report '```'

# the whole command, against a private Redis
d="$WORK/cmd"
mkdir -p "$d"
rport=$(free_port 26579)
start_redis "$d/redis" "$rport"
openssl rand -hex 32 >"$d/k1.key"; chmod 600 "$d/k1.key"
cat >"$d/relayguard.conf" <<EOC
store = redis://127.0.0.1:$rport/0
log = stderr
log_level = warning
bounce {
    domain = bounce.test
    key = k1 $d/k1.key
}
EOC
# one token per bounce (as in production: one message, one return path)
log "minting $N tokens"
for ((i = 0; i < N; i++)); do
    "$RG_CLI" -c "$d/relayguard.conf" bounce token acme billing@shop.test "u$i@example.net"
done >"$d/tokens"
run_one() {   # run_one FIRST STEP: every STEP-th token from FIRST
    local i=0 rp
    while IFS= read -r rp; do
        if (( i % $2 == $1 )); then
            "$RG_CLI" -c "$d/relayguard.conf" bounce --rcpt "$rp" \
                <"$CORPUS/postfix-user-unknown.eml" >/dev/null 2>>"$d/errors"
        fi
        i=$((i + 1))
    done <"$d/tokens"
}
log "running relayguard bounce $N times, $PAR in parallel"
t0=$(date +%s.%N)
pids=""
for ((p = 0; p < PAR; p++)); do run_one "$p" "$PAR" & pids="$pids $!"; done
for p in $pids; do wait "$p"; done
t1=$(date +%s.%N)
supp=$(redis-cli -p "$rport" HLEN rg:s:a:acme)
[ "$supp" = "$N" ] || die "expected $N suppressed addresses, found $supp: $(head -3 "$d/errors")"
rate=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
report ""
report "### whole command: relayguard bounce < postfix-user-unknown.eml, $N bounces, $PAR in parallel"
report '```'
report "$N bounces in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s: $rate bounces/s ($supp addresses suppressed, $(redis-cli -p "$rport" XLEN rg:events) events)"
report '```'
}
