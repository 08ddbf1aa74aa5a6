#!/bin/bash
# bench/run-bounce.sh - how fast bounces are read: rg_bounce_parse() in-process
# over the corpus (GMime + classification), and the whole "relayguard bounce"
# command as an MTA's pipe runs it (process start, config, token check, Redis
# record lookup, suppression or soft count, event), one process per bounce.
#
# The whole command is also measured in CPU (user + system of the
# commands), and against the start-up floor: a C hello world alone, linked
# with relayguard's libraries, and with OpenSSL started, FLOOR runs each.
#
# Usage: bench/run-bounce.sh           (as root: installs missing packages)
# Knobs (environment): BUILD=/work/build-bench SECONDS_PARSE=10 N=2000 PAR=1
#   FLOOR=300  OUT=FILE (also write the report there)  KEEP=0
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
# CPU seconds (user + system) of the children this shell waited for, from
# "times" (run in this shell: in a pipe or $(...) it would be a new process)
child_cpu() {
    local f="$d/times.$BASHPID"
    times >"$f"
    tail -n 1 "$f" |
        awk '{ split($1, u, "m"); split($2, s, "m"); printf "%.4f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'
}
run_one() {   # run_one FIRST STEP: every STEP-th token from FIRST; then its CPU
    local i=0 rp
    while IFS= read -r rp; do
        if (( i % $2 == $1 )); then
            "$RG_CLI" -c "$d/relayguard.conf" bounce --rcpt "$rp" \
                <"$CORPUS/postfix-user-unknown.eml" >/dev/null 2>>"$d/errors"
        fi
        i=$((i + 1))
    done <"$d/tokens"
    child_cpu >"$d/cpu.$1"
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
cpu_ms=$(cat "$d"/cpu.* | awk -v n="$N" '{ t += $1 } END { printf "%.2f", t * 1000 / n }')
report ""
report "### whole command: relayguard bounce < postfix-user-unknown.eml, $N bounces, $PAR in parallel"
report '```'
report "$N bounces in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s: $rate bounces/s ($supp addresses suppressed, $(redis-cli -p "$rport" XLEN rg:events) events)"
report "CPU: $cpu_ms ms per bounce (the commands' user + system), so $(awk -v c="$cpu_ms" 'BEGIN { printf "%.0f", 1000 / c }') bounces/s per core"
report '```'

# The floor: what any process costs here before it does anything, with
# and without the libraries "relayguard" is linked with (GMime brings GLib,
# GIO, GPGME and 18 more), and with OpenSSL 3 started as relayguard bounce
# starts it (no openssl.cnf: it needs only the default provider).
FLOOR=${FLOOR:-300}
log "start-up floor: $FLOOR runs of each"
cat >"$d/hello.c" <<'EOC'
int main(void) { return 0; }
EOC
cat >"$d/hello-crypto.c" <<'EOC'
#include <openssl/crypto.h>
#include <openssl/evp.h>
int main(void) {
    unsigned char md[EVP_MAX_MD_SIZE]; unsigned n;
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
                        OPENSSL_INIT_NO_ADD_ALL_DIGESTS, NULL);
    return EVP_Digest("x", 1, md, &n, EVP_sha256(), NULL) != 1;
}
EOC
libs=$(pkg-config --libs gmime-3.0 hiredis libcrypto)
gcc -O2 -o "$d/hello" "$d/hello.c" &&
gcc -O2 -o "$d/hello-libs" "$d/hello.c" -Wl,--no-as-needed $libs &&
gcc -O2 -o "$d/hello-libs-crypto" "$d/hello-crypto.c" -Wl,--no-as-needed $libs ||
    die "cannot build the floor programs"
floor() {   # floor LABEL CMD..: CPU ms per run
    local i
    ( for ((i = 0; i < FLOOR; i++)); do "$@" </dev/null >/dev/null 2>&1; done; child_cpu ) |
        awk -v k="$FLOOR" '{ printf "%.2f", $1 * 1000 / k }'
}
f1=$(floor "$d/hello"); f2=$(floor "$d/hello-libs"); f3=$(floor "$d/hello-libs-crypto")
f4=$(floor "$RG_CLI" version)
report ""
report "### start-up floor: CPU per process ($FLOOR runs each; $(ldd "$RG_CLI" | wc -l) shared objects in relayguard)"
report ""
report "| process | CPU ms | at most per second per core |"
report "| --- | ---: | ---: |"
for row in "C hello world, no libraries:$f1" "C hello world linked with relayguard's libraries (GMime, GLib, hiredis, OpenSSL):$f2" \
           "the same, OpenSSL started and one SHA-256:$f3" "relayguard version:$f4" \
           "relayguard bounce, the whole command (above):$cpu_ms"; do
    report "| ${row%%:*} | ${row##*:} | $(awk -v c="${row##*:}" 'BEGIN { printf "%.0f", 1000 / c }') |"
done
}
