#!/bin/bash
# bench/run-bounce.sh - how fast bounces are read: rg_bounce_parse() in-process
# over the corpus (GMime + classification), and the whole "relayguard bounce"
# command as an MTA's pipe runs it (process start, config, token check, Redis
# record lookup, suppression or soft count, event), one process per bounce;
# then the same N bounces (the same tokens, the lists emptied between runs)
# through the resident receivers: "relayguard bounce --lmtp" fed by
# bench/lmtp-load.py (one LMTP transaction per bounce, LPAR connections), and
# "relayguard bounce FILE..." (N files, one process).  For each: bounces/s
# (wall clock), relayguard's CPU per bounce (the pipe commands' and the
# files run's from "times", the server's from /proc/PID/stat) and so
# bounces/s per core, and Redis's CPU per bounce (INFO cpu) apart.
#
# The whole command is also measured in CPU (user + system of the
# commands), and against the start-up floor: a C hello world alone, linked
# with relayguard's libraries, and with OpenSSL started, FLOOR runs each.
#
# Usage: bench/run-bounce.sh           (as root: installs missing packages)
# Knobs (environment): BUILD=/work/build-bench SECONDS_PARSE=10 N=2000 PAR=1
#   LPAR=1 (LMTP connections)  FLOOR=300  OUT=FILE (also write the report there)  KEEP=0
# Target (issue 6): 1,000 typical DSNs per second per core.
{
set -euo pipefail
. "$(dirname "$0")/common.sh"

SECONDS_PARSE=${SECONDS_PARSE:-10}
N=${N:-2000}
PAR=${PAR:-1}
KEEP=${KEEP:-0}
CORPUS="$TOP_SRC/t/bounce/corpus"

need_pkgs redis-server redis-tools gcc make pkg-config libgmime-3.0-dev python3
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
# Redis's CPU seconds (user + system, the whole server)
redis_cpu() {
    redis-cli -p "$rport" INFO cpu | tr -d '\r' |
        awk -F: '/^used_cpu_(sys|user):/ { t += $2 } END { printf "%.4f", t }'
}
log "running relayguard bounce $N times, $PAR in parallel"
pipe_r0=$(redis_cpu)
t0=$(date +%s.%N)
pids=""
for ((p = 0; p < PAR; p++)); do run_one "$p" "$PAR" & pids="$pids $!"; done
for p in $pids; do wait "$p"; done
t1=$(date +%s.%N)
pipe_r1=$(redis_cpu)
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
pipe_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
pipe_rate=$rate pipe_cpu=$cpu_ms
pipe_redis=$(awk -v a="$pipe_r0" -v b="$pipe_r1" -v n="$N" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')

# --- the same bounces, one resident process ----------------------------------
LPAR=${LPAR:-1}
MSG="$CORPUS/postfix-user-unknown.eml"
supp_check() {   # supp_check MODE: every token's recipient suppressed again
    local got
    got=$(redis-cli -p "$rport" HLEN rg:s:a:acme)
    [ "$got" = "$N" ] || die "$1: expected $N suppressed addresses, found $got"
}
redis-cli -p "$rport" DEL rg:s:a:acme >/dev/null
log "relayguard bounce --lmtp: $N bounces over $LPAR connection(s)"
"$RG_CLI" -c "$d/relayguard.conf" bounce --lmtp "unix:$d/lmtp.sock" 2>>"$d/lmtp.log" &
lpid=$!
remember "$lpid"
for ((i = 0; i < 100; i++)); do [ -S "$d/lmtp.sock" ] && break; sleep 0.1; done
[ -S "$d/lmtp.sock" ] || die "the LMTP server did not start: $(tail -3 "$d/lmtp.log")"
lmtp_c0=$(cpu_ticks "$lpid"); lmtp_r0=$(redis_cpu)
t0=$(date +%s.%N)
pids=""
for ((p = 0; p < LPAR; p++)); do
    python3 "$TOP_SRC/bench/lmtp-load.py" "$d/lmtp.sock" "$d/tokens" "$MSG" "$p" "$LPAR" \
        >"$d/load.$p" 2>&1 & pids="$pids $!"
done
for p in $pids; do wait "$p" || die "lmtp-load: $(cat "$d"/load.*)"; done
t1=$(date +%s.%N)
lmtp_c1=$(cpu_ticks "$lpid"); lmtp_r1=$(redis_cpu)
stop_pid "$lpid"
supp_check lmtp
lmtp_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
lmtp_rate=$(awk -v n="$N" -v w="$lmtp_wall" 'BEGIN { printf "%.0f", n / w }')
lmtp_cpu=$(awk -v a="$lmtp_c0" -v b="$lmtp_c1" -v n="$N" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) * 1000 / hz / n }')
lmtp_redis=$(awk -v a="$lmtp_r0" -v b="$lmtp_r1" -v n="$N" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')

redis-cli -p "$rport" DEL rg:s:a:acme >/dev/null
log "relayguard bounce FILE...: $N files in one process"
mkdir -p "$d/files"
i=0
while IFS= read -r rp; do
    { printf 'Delivered-To: %s\n' "$rp"; cat "$MSG"; } >"$d/files/$(printf '%06d' "$i").eml"
    i=$((i + 1))
done <"$d/tokens"
files_r0=$(redis_cpu)
t0=$(date +%s.%N)
( "$RG_CLI" -c "$d/relayguard.conf" bounce "$d"/files/*.eml >"$d/files.out" 2>>"$d/errors"
  child_cpu >"$d/cpu-files" )
t1=$(date +%s.%N)
files_r1=$(redis_cpu)
supp_check files
files_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
files_rate=$(awk -v n="$N" -v w="$files_wall" 'BEGIN { printf "%.0f", n / w }')
files_cpu=$(awk -v n="$N" '{ printf "%.3f", $1 * 1000 / n }' "$d/cpu-files")
files_redis=$(awk -v a="$files_r0" -v b="$files_r1" -v n="$N" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')

percore() { awk -v c="$1" 'BEGIN { printf "%.0f", 1000 / c }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
report ""
report "### side by side: the same $N bounces (postfix-user-unknown.eml, a fresh token each), three ways"
report ""
report "| mode | wall s | bounces/s | relayguard CPU ms/bounce | bounces/s per core | Redis CPU ms/bounce | CPU vs pipe |"
report "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
report "| pipe: one \`relayguard bounce\` per bounce ($PAR at a time) | $pipe_wall | $pipe_rate | $pipe_cpu | $(percore "$pipe_cpu") | $pipe_redis | 1.0 |"
report "| \`relayguard bounce --lmtp\` (server process; $LPAR LMTP connection(s)) | $lmtp_wall | $lmtp_rate | $lmtp_cpu | $(percore "$lmtp_cpu") | $lmtp_redis | $(ratio "$pipe_cpu" "$lmtp_cpu")x less |"
report "| \`relayguard bounce FILE...\` ($N files, one process) | $files_wall | $files_rate | $files_cpu | $(percore "$files_cpu") | $files_redis | $(ratio "$pipe_cpu" "$files_cpu")x less |"
report ""
report "Target (issue 6): 1,000 bounces/s per core. LMTP server: $(percore "$lmtp_cpu")/s per core of its own CPU, $(awk -v a="$lmtp_cpu" -v b="$lmtp_redis" 'BEGIN { printf "%.0f", 1000 / (a + b) }')/s per core counting Redis too. The wall-clock rate of the LMTP run includes the Python client (bench/lmtp-load.py) on the same cores."

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
