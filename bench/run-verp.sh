#!/bin/bash
# bench/run-verp.sh - what the managed return path costs: smtp-source ->
# private Postfix -> relayguard-milter (unix socket, no DKIM key for the
# domain) -> smtp-sink, for an account with "bounces = off" and the same
# with "bounces = managed" (a token minted and its record rg:v:ID written
# with every end-of-message decision, the envelope sender changed with
# smfi_chgfrom).  Prints messages/s, milter and Redis CPU per message, and
# Redis memory per record (MEMORY USAGE).  Run as root on an idle machine:
#   bench/run-verp.sh [MESSAGES] [SESSIONS] [RCPTS]   (default 10000, 20, 1)
# BUILD (default /work/build-bench) is a configured and built tree.
set -u
MSGS=${1:-10000}
SESSIONS=${2:-20}
RCPTS=${3:-1}
SIZE=4096
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
top_builddir=${BUILD:-/work/build-bench}
export top_srcdir top_builddir
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
TMPDIR=/var/tmp rg_tmpdir
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ -x "$RG_BIN_MILTER" ] || { log "build first: $RG_BIN_MILTER missing"; exit 1; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
redis_cpu() { rg_redis INFO cpu | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.3f", s }'; }

rg_start_redis
RG_CONF="$RG_TMP/rg.conf"
cat >"$RG_CONF" <<EOF
store = redis://127.0.0.1:$REDIS_PORT/0
node = bench
log = stderr
log_level = warning
store_timeout = 1s
bounce {
    domain = bounce.bench.test
    key = k1 0123456789abcdef0123456789abcdef
}
EOF
accounts() {  # accounts BOUNCES: the bench account, loaded
    printf 'account bench {\n  client_networks = 127.0.0.0/8\n  domains = bench.test\n  bounces = %s\n}\n' \
        "$1" >"$RG_TMP/accounts.conf"
    rg_cli load "$RG_TMP/accounts.conf" >/dev/null
}
accounts off                    # before the milter starts: it loads them then
rg_start_sink bench
POLICYD_PORT=0
rg_start_milter "$RG_CONF" "unix:$RG_TMP/milter.sock"
chmod 666 "$RG_TMP/milter.sock"
rg_start_postfix verp "smtpd_recipient_restrictions =" "smtpd_end_of_data_restrictions =" \
    "smtpd_milters = unix:$RG_TMP/milter.sock" "milter_default_action = tempfail" \
    "milter_protocol = 6" "default_process_limit = 200" >/dev/null
results=()
run() {  # run NAME BOUNCES
    local name=$1 bounces=$2
    accounts "$bounces"
    # the first decision's script reply shows the new generation and the
    # milter reloads the accounts; the second uses them
    rg_send "$PF_PORT" "" a@bench.test warm@example.net >/dev/null
    sleep 1
    rg_send "$PF_PORT" "" a@bench.test warm@example.net >/dev/null
    local before c0 c1 r0 r1 t0 t1 n
    local want; want=$(rg_queued_count)
    rg_wait_for 20 bash -c "[ \$(find '$SINK_DIR/mail' -type f | wc -l) -ge $want ]"
    before=$(rg_sink_count)
    c0=$(cpu_ticks "$MILTER_PID"); r0=$(redis_cpu); t0=$(date +%s.%N)
    smtp-source -s "$SESSIONS" -m "$MSGS" -l "$SIZE" -r "$RCPTS" -f a@bench.test -t to@example.net \
        "127.0.0.1:$PF_PORT" >"$RG_TMP/source-$name.log" 2>&1
    rg_wait_for 300 bash -c "[ \$(find '$SINK_DIR/mail' -type f | wc -l) -ge $((before + MSGS)) ]"
    t1=$(date +%s.%N); c1=$(cpu_ticks "$MILTER_PID"); r1=$(redis_cpu)
    n=$(( $(rg_sink_count) - before ))
    local rate mcpu rcpu
    rate=$(echo "scale=1; $n / ($t1 - $t0)" | bc)
    mcpu=$(echo "scale=1; ($c1 - $c0) / $HZ * 1000000 / $n" | bc)
    rcpu=$(echo "scale=1; ($r1 - $r0) * 1000000 / $n" | bc)
    log "$name: $n messages, $rate msgs/s, milter $mcpu us/msg, Redis $rcpu us/msg"
    results+=("$name $n $rate $mcpu $rcpu")
}
run off off
run managed managed
records=$(rg_redis --scan --pattern 'rg:v:*' | wc -l)
one=$(rg_redis --scan --pattern 'rg:v:*' | head -1)
mem=$(rg_redis MEMORY USAGE "$one")
rp=$(grep -rh -m1 '^X-Mail-Args:' "$(ls -t $(find "$SINK_DIR/mail" -type f) | head -1)")
echo
echo "smtp-source -s $SESSIONS -m $MSGS -l $SIZE -r $RCPTS -> Postfix -> relayguard-milter (unix) -> smtp-sink ($(nproc) cores)"
printf "%-10s %9s %10s %16s %15s\n" bounces messages "msgs/s" "milter us/msg" "Redis us/msg"
for r in "${results[@]}"; do printf "%-10s %9s %10s %16s %15s\n" $r; done
echo "records rg:v:* written: $records; MEMORY USAGE of one ($RCPTS recipient(s)): $mem bytes"
echo "last message at the sink: $rp"
