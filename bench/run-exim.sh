#!/bin/bash
# bench/run-exim.sh - the same load (smtp-source -> a private Exim -> smtp-sink)
# into three Exim configurations, one run each:
#   none        no policy: relaying allowed for 127.0.0.0/8
#   relayguard  conf.examples/exim/acls.conf: rg_mail, rg_rcpt, rg_data for an
#               account of client network 127.0.0.0/8 with a rate limit, and
#               rg_preload in the daemon (conf.examples/exim/main.conf)
#   relayguard-nopreload  the same without rg_preload
#   ratelimit   Exim's own "ratelimit" ACL condition, the equivalent per-user
#               limit (per_mail, keyed by the client address), in RCPT
# then the per-call cost of the module, measured in one process that dlopens
# relayguard-exim.so and calls its functions as Exim does (bench driver
# compiled here), and the once-per-process cost of its first call.
#
# smtp-source sends one message per connection, so Exim forks a process per
# message and relayguard's once-per-process work (configuration, Redis
# connection, accounts) is paid by every message: the worst case.
#
#   bench/run-exim.sh [MESSAGES] [SESSIONS]          (default 3000, 20)
#   knobs: ACCOUNTS=1 (accounts in the store) CALLS=20000 INITS=200
#          SYSTEMS="none relayguard relayguard-nopreload ratelimit"
# BUILD (default /work/build-bench) is a configured and built tree.
set -u
MSGS=${1:-3000}
SESSIONS=${2:-20}
SIZE=4096
CALLS=${CALLS:-20000}
INITS=${INITS:-200}
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
top_builddir=${BUILD:-/work/build-bench}
export top_srcdir top_builddir
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/exim/common.sh"
TMPDIR=/var/tmp rg_tmpdir
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ -f "$RG_SO" ] || { log "build first: $RG_SO missing"; exit 1; }
rg_require smtp-source smtp-sink
rg_exim_setup

rg_start_redis
rg_start_sink
RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" <<'EOF'
log_level = warning
EOF
chmod 644 "$RG_CONF"
cat >"$RG_TMP/accounts.conf" <<'EOF'
account bench {
    client_networks = 127.0.0.0/8
    domains         = bench.test
    limit           = rate 100000000/1h name=r
}
EOF
# ACCOUNTS: how many accounts the store holds (a cPanel host has one per
# site); each Exim process loads them all once, on its first call.
ACCOUNTS=${ACCOUNTS:-1}
for ((i = 2; i <= ACCOUNTS; i++)); do
    printf 'account site%d {\n    logins = site%d@bench.test\n    local_users = site%d\n    domains = site%d.example, .site%d.example\n    limit = rate 200/1h\n    limit = quota 2000/1d hard\n}\n' \
        "$i" "$i" "$i" "$i" "$i"
done >>"$RG_TMP/accounts.conf"
rg_cli load "$RG_TMP/accounts.conf" >/dev/null || { log "relayguard load failed"; exit 1; }

cat >"$RG_TMP/none.acl" <<'EOF'
acl_check_mail:
  accept
acl_check_rcpt:
  accept  hosts = 127.0.0.0/8
  deny    message = relay not permitted
acl_check_data:
  accept
acl_check_not_smtp:
  accept
EOF
cat >"$RG_TMP/ratelimit.acl" <<'EOF'
acl_check_mail:
  accept
acl_check_rcpt:
  defer   ratelimit = 100000000 / 1h / per_mail / $sender_host_address
          message   = 451 4.7.1 rate limit reached
  accept  hosts = 127.0.0.0/8
  deny    message = relay not permitted
acl_check_data:
  accept
acl_check_not_smtp:
  accept
EOF
cp "$top_srcdir/conf.examples/exim/acls.conf" "$RG_TMP/relayguard.acl"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
busy_pct() {    # % of both cores busy over $1 seconds, from /proc/stat
    local a b
    a=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
    sleep "$1"
    b=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
    echo "$a $b" | awk '{ printf "%.0f", 100 * ($3 - $1) / ($4 - $2) }'
}

# The machine is shared: the systems take turns, ROUNDS rounds of
# MSGS/ROUNDS messages each in a rotating order, and each gets the median
# of its rounds, so that a burst of someone else's load does not land on one
# system only.  Besides messages/s, the CPU Exim spent per message (the
# daemon's reaped children: connection, delivery and transport processes)
# and Redis's CPU per message, which the load of other users does not
# inflate as much as wall time.
ROUNDS=${ROUNDS:-5}
SYSLIST=${SYSTEMS:-none relayguard relayguard-nopreload ratelimit}
declare -A PORT DIRS PID RATES CPUS RCPUS
ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)
for name in $SYSLIST; do
    dir="$RG_TMP/exim-$name"
    EXIM_PORT=$(rg_free_port) rg_exim_conf "$dir" "$RG_TMP/${name%-nopreload}.acl"
    # no DKIM in this comparison: the transport signs in none of them
    sed -i '/^  dkim_domain/,/^  dkim_canon/d' "$dir/exim.conf"
    # rg_preload only where relayguard runs and is asked for
    [ "$name" = relayguard ] || sed -i '/rg_preload/d' "$dir/exim.conf"
    PORT[$name]=$(sed -n 's/^daemon_smtp_ports = //p' "$dir/exim.conf")
    EXIM_PORT=${PORT[$name]} rg_start_exim "$dir"
    DIRS[$name]=$dir PID[$name]=$EXIM_PID
done
per=$((MSGS / ROUNDS))
log "$ROUNDS rounds of $per messages per system; machine $(busy_pct 2)% busy before, load $(loadavg)"
order=($SYSLIST)
for ((r = 0; r < ROUNDS; r++)); do
    for ((k = 0; k < ${#order[@]}; k++)); do
        name=${order[$(((k + r) % ${#order[@]}))]}
        before=$(rg_sink_count)
        c0=$(ticks "${PID[$name]}"); rc0=$(ticks "$REDIS_PID")
        t0=$(date +%s.%N)
        smtp-source -s "$SESSIONS" -m "$per" -l "$SIZE" -f a@bench.test -t b@example.net \
            "127.0.0.1:${PORT[$name]}" >>"${DIRS[$name]}/source.log" 2>&1
        t1=$(date +%s.%N)
        n=$(rg_wait_sink_count $((before + per)) 300)
        sleep 1         # the last delivery processes are reaped
        c1=$(ticks "${PID[$name]}"); rc1=$(ticks "$REDIS_PID")
        rate=$(echo "$per $t0 $t1" | awk '{ printf "%.0f", $1 / ($3 - $2) }')
        cpu=$(echo "$c0 $c1 $HZ $per" | awk '{ printf "%.1f", ($2 - $1) * 1000 / $3 / $4 }')
        rcpu=$(echo "$rc0 $rc1 $HZ $per" | awk '{ printf "%.2f", ($2 - $1) * 1000 / $3 / $4 }')
        RATES[$name]="${RATES[$name]:-} $rate"; CPUS[$name]="${CPUS[$name]:-} $cpu"; RCPUS[$name]="${RCPUS[$name]:-} $rcpu"
        log "round $((r + 1)) $name: $rate msgs/s, Exim $cpu ms CPU/msg, Redis $rcpu ms CPU/msg, $((n - before)) delivered; load $(loadavg)"
        [ $((n - before)) -eq "$per" ] || log "WARNING: $name: $((n - before)) of $per delivered"
    done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "n/a") }'; }
declare -A RATE CPU RCPU ACC
for name in $SYSLIST; do
    RATE[$name]=$(echo "${RATES[$name]}" | median)
    CPU[$name]=$(echo "${CPUS[$name]}" | median)
    RCPU[$name]=$(echo "${RCPUS[$name]}" | median)
    ACC[$name]=$(grep -c ' <= ' "${DIRS[$name]}/log/mainlog")
    rg_stop_pid "${PID[$name]}"
done

# ---- per-call cost: the module's functions called as Exim calls them ------
cat >"$RG_TMP/calls.c" <<'EOF'
/* bench driver: dlopen relayguard-exim.so and time its calls (µs). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* the Exim globals dlfunc.c reads (local_scan API); no recipients, no headers */
int recipients_count = 0;
void *recipients_list = NULL;
void *header_list = NULL;
typedef int fn(unsigned char **, int, unsigned char **);
static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static void pr(const char *name, double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    printf("%s %.0f %.0f %d\n", name, v[n / 2], v[(int)(n * 0.99)], n);
}
int main(int argc, char **argv) {
    const char *so = argv[1], *conf = argv[2];
    int n = atoi(argv[3]), init_only = argc > 4;
    double t0 = now_us();
    void *h = dlopen(so, RTLD_LAZY);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    double t_open = now_us() - t0;
    fn *mail = (fn *)dlsym(h, "rg_mail"), *rcpt = (fn *)dlsym(h, "rg_rcpt"), *data = (fn *)dlsym(h, "rg_data");
    unsigned char *y;
    char qid[32];
    char *am[] = { (char *)conf, "", "127.0.0.1", "a@bench.test", "-1" };
    char *ar[] = { (char *)conf, "", "127.0.0.1", "a@bench.test", "b@example.net", "-1" };
    char *ad[] = { (char *)conf, "", "127.0.0.1", "a@bench.test", qid, "4096", "a@bench.test" };
    t0 = now_us();
    int rc = mail(&y, 5, (unsigned char **)am);
    double t_first = now_us() - t0;
    if (rc != 0 || strncmp((char *)y, "action=accept", 13) != 0) { fprintf(stderr, "first call: %s\n", y); return 1; }
    if (init_only && strcmp(argv[4], "fork") == 0) {
        /* as under the Exim daemon with rg_preload: the parent holds the
         * instance, each child times its first call (its own Redis connection) */
        fn *pre = (fn *)dlsym(h, "rg_preload");
        char *ap[] = { (char *)conf, "" };
        pre(&y, 2, (unsigned char **)ap);
        for (int i = 0; i < n; i++) {
            fflush(stdout);
            pid_t p = fork();
            if (p == 0) {
                t0 = now_us();
                rc = mail(&y, 5, (unsigned char **)am);
                printf("fork %.0f\n", now_us() - t0);
                fflush(stdout);
                _exit(rc == 0 && strncmp((char *)y, "action=accept", 13) == 0 ? 0 : 1);
            }
            int st;
            waitpid(p, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "child failed\n"); return 1; }
        }
        return 0;
    }
    if (init_only) { printf("init %.0f %.0f\n", t_open, t_first); return 0; }
    double *vm = calloc(n, sizeof *vm), *vr = calloc(n, sizeof *vr), *vd = calloc(n, sizeof *vd);
    for (int i = 0; i < n; i++) {
        snprintf(qid, sizeof qid, "1bench-%06d-%02d", i, getpid() % 100);
        t0 = now_us(); mail(&y, 5, (unsigned char **)am); vm[i] = now_us() - t0;
        t0 = now_us(); rcpt(&y, 6, (unsigned char **)ar); vr[i] = now_us() - t0;
        t0 = now_us(); rc = data(&y, 7, (unsigned char **)ad); vd[i] = now_us() - t0;
        if (rc != 0 || strncmp((char *)y, "action=accept", 13) != 0) { fprintf(stderr, "call %d: %s\n", i, y); return 1; }
    }
    pr("rg_mail", vm, n); pr("rg_rcpt", vr, n); pr("rg_data", vd, n);
    return 0;
}
EOF
sed -i 's/#include <time.h>/#include <time.h>\n#include <unistd.h>\n#include <sys\/wait.h>/' "$RG_TMP/calls.c"
gcc -O2 -Wall -rdynamic -o "$RG_TMP/calls" "$RG_TMP/calls.c" -ldl || { log "cannot build the driver"; exit 1; }
log "per-call: $CALLS messages (MAIL, RCPT, DATA) in one process; machine $(busy_pct 2)% busy, load $(loadavg)"
"$RG_TMP/calls" "$RG_SO" "$RG_CONF" "$CALLS" >"$RG_TMP/calls.out" 2>&1 || { cat "$RG_TMP/calls.out"; exit 1; }
log "first call in a fresh process (config, Redis connect, accounts): $INITS processes"
: >"$RG_TMP/init.out"
for i in $(seq 1 "$INITS"); do "$RG_TMP/calls" "$RG_SO" "$RG_CONF" 0 init >>"$RG_TMP/init.out" 2>&1; done
log "first call in a process forked from one that ran rg_preload (as under the Exim daemon): $INITS forks"
"$RG_TMP/calls" "$RG_SO" "$RG_CONF" "$INITS" fork >"$RG_TMP/fork.out" 2>&1 || { cat "$RG_TMP/fork.out"; exit 1; }
pct() { sort -n | awk '{ v[NR] = $1 } END { printf "%.0f %.0f", v[int((NR + 1) / 2)], v[int(NR * 0.99)] }'; }
read -r open50 open99 < <(awk '$1 == "init" { print $2 }' "$RG_TMP/init.out" | pct)
read -r first50 first99 < <(awk '$1 == "init" { print $3 }' "$RG_TMP/init.out" | pct)
read -r fork50 fork99 < <(awk '$1 == "fork" { print $2 }' "$RG_TMP/fork.out" | pct)

for s in none relayguard relayguard-nopreload ratelimit; do
    : "${RATE[$s]:=n/a}" "${CPU[$s]:=n/a}" "${RCPU[$s]:=n/a}" "${RATES[$s]:=}" "${ACC[$s]:=0}"
done
ratio() { echo "$1 $2" | awk '$1 + 0 > 0 && $2 + 0 > 0 { printf "%.2f", $1 / $2; next } { printf "n/a" }'; }
row() { echo "| $2 | ${RATE[$1]} | $(ratio "${RATE[$1]}" "${RATE[none]}") | ${CPU[$1]} | ${RCPU[$1]} |${RATES[$1]} | ${ACC[$1]} |"; }
cat <<EOF

## Exim: relayguard-exim.so against Exim alone and Exim's ratelimit ($(date -u '+%Y-%m-%d %H:%M') UTC)

\`bench/run-exim.sh $MSGS $SESSIONS\` (ROUNDS=$ROUNDS): smtp-source, $SESSIONS sessions, messages of
$SIZE bytes, one message per connection, into a private Exim 4.96 (Debian's
exim4-daemon-heavy) that delivers each at once to smtp-sink. The systems take turns in
$ROUNDS rounds of $per messages; medians of the rounds.

| Exim with | msgs/s accepted | vs Exim alone | Exim CPU ms/msg | Redis CPU ms/msg | msgs/s per round | accepted |
| --- | --- | --- | --- | --- | --- | --- |
$(row none "no policy")
$(row relayguard "relayguard ACLs (rg_mail, rg_rcpt, rg_data) + rg_preload")
$(row relayguard-nopreload "relayguard ACLs, no rg_preload")
$(row ratelimit "Exim ratelimit (per_mail, per client)")

Per call, in one process ($CALLS messages; µs, p50 / p99):

| call | p50 µs | p99 µs |
| --- | --- | --- |
$(awk '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$RG_TMP/calls.out")
| first call of a process (config, Redis connect + SCRIPT LOAD, $ACCOUNTS account(s)), $INITS processes | $first50 | $first99 |
| dlopen of relayguard-exim.so (RTLD_LAZY, as Exim) | $open50 | $open99 |
| first call of a process forked after rg_preload (its own Redis connect + SCRIPT LOAD) | $fork50 | $fork99 |
EOF
