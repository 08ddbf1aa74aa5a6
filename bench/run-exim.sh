#!/bin/bash
# bench/run-exim.sh - the same load (smtp-load, below -> a private Exim -> smtp-sink)
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
# Exim's CPU per message counts the daemon, its connection processes and
# (through a subreaper) the delivery processes, which outlive the
# connection process that forked them; "CPU vs Exim alone" is Exim alone's
# CPU per message (Exim + Redis) over each configuration's: what the
# messages/s ratio is when the machine is CPU-bound.
#
# The load sends one message per connection, so Exim forks a process per
# message and relayguard's once-per-process work (configuration, Redis
# connection, accounts) is paid by every message: the worst case.
#
#   bench/run-exim.sh [MESSAGES] [SESSIONS]          (default 3000, 20)
#   knobs: ACCOUNTS=1 (accounts in the store) CALLS=20000 INITS=200
#          SPOOL_TMPFS=1 (Exim's spool on /dev/shm: no fsync waits)
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
rg_require smtp-sink gcc
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

# The load.  Not smtp-source: it waits for the reply to QUIT, and Exim 4.96
# (built without SERVERSIDE_CLOSE_NOWAIT, as Debian's is) sends that reply
# only after polling up to 200 ms for the client to close first.  That was
# 200 ms of idle per connection in every configuration alike (the
# 2026-11-24 17:24 run measured it: about 220 ms per message whatever the
# policy).  Postfix's own smtp client does not wait for the reply to QUIT
# (smtp_skip_quit_response = yes), and neither does this one: one message
# per connection, QUIT, close.
cat >"$RG_TMP/smtp-load.c" <<'EOF'
/* smtp-load HOST PORT SESSIONS MESSAGES SIZE FROM TO: MESSAGES messages,
 * one per connection, over SESSIONS processes; prints the count accepted. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
static char buf[65536];
static size_t have;
/* read one reply (all its lines); returns its code, -1 on EOF */
static int reply(int fd) {
    for (;;) {
        char *nl;
        while ((nl = memchr(buf, '\n', have)) == NULL) {
            ssize_t n = read(fd, buf + have, sizeof buf - have);
            if (n <= 0) return -1;
            have += (size_t)n;
        }
        size_t len = (size_t)(nl - buf) + 1;
        int last = len >= 4 && buf[3] != '-', code = atoi(buf);
        memmove(buf, nl + 1, have - len);
        have -= len;
        if (last) return code;
    }
}
static int say(int fd, const char *s, size_t n) { return write(fd, s, n) == (ssize_t)n ? 0 : -1; }
static int one(const struct sockaddr_in *sa, const char *body, size_t blen, const char *from, const char *to) {
    char cmd[1024];
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok = 0, on = 1, n;
    have = 0;
    if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) goto out;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (reply(fd) != 220) goto out;
    if (say(fd, "EHLO load.test\r\n", 16) || reply(fd) != 250) goto out;
    n = snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>\r\n", from);
    if (say(fd, cmd, (size_t)n) || reply(fd) != 250) goto out;
    n = snprintf(cmd, sizeof cmd, "RCPT TO:<%s>\r\n", to);
    if (say(fd, cmd, (size_t)n) || reply(fd) != 250) goto out;
    if (say(fd, "DATA\r\n", 6) || reply(fd) != 354) goto out;
    if (say(fd, body, blen) || reply(fd) != 250) goto out;
    ok = 1;
    (void)say(fd, "QUIT\r\n", 6);   /* and close, without waiting for the 221 */
out:
    if (fd >= 0) close(fd);
    return ok;
}
int main(int argc, char **argv) {
    if (argc != 8) { fprintf(stderr, "usage: smtp-load HOST PORT SESSIONS MESSAGES SIZE FROM TO\n"); return 2; }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
    inet_pton(AF_INET, argv[1], &sa.sin_addr);
    int sessions = atoi(argv[3]), msgs = atoi(argv[4]), fds[2];
    size_t size = (size_t)atol(argv[5]);
    char *body = malloc(size + 512);
    size_t o = (size_t)sprintf(body, "From: <%s>\r\nTo: <%s>\r\nSubject: load\r\n\r\n", argv[6], argv[7]);
    while (o < size) { size_t l = size - o > 78 ? 78 : size - o; memset(body + o, 'x', l); o += l; memcpy(body + o, "\r\n", 2); o += 2; }
    memcpy(body + o, ".\r\n", 3); o += 3;
    if (sessions < 1 || pipe(fds) < 0) return 2;
    for (int s = 0; s < sessions; s++) {
        if (fork() == 0) {
            int mine = msgs / sessions + (s < msgs % sessions), done = 0;
            for (int i = 0; i < mine; i++) done += one(&sa, body, o, argv[6], argv[7]);
            _exit(write(fds[1], &done, sizeof done) == sizeof done ? 0 : 1);
        }
    }
    close(fds[1]);
    int total = 0, d;
    while (read(fds[0], &d, sizeof d) == sizeof d) total += d;
    while (wait(NULL) > 0) {}
    printf("%d\n", total);
    return total == msgs ? 0 : 1;
}
EOF
gcc -O2 -Wall -o "$RG_TMP/smtp-load" "$RG_TMP/smtp-load.c" || { log "cannot build the load generator"; exit 1; }

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
# an Exim's CPU: the daemon with its reaped children (connection processes)
# and its subreaper's reaped orphans (delivery and transport processes)
exim_ticks() { echo $(( $(ticks "${PID[$1]}") + $(ticks "${REAPER[$1]}") )); }
declare -A REAPER
cat >"$RG_TMP/subreaper.c" <<'EOF'
/* subreaper CMD...: run CMD as a child subreaper; wait for every descendant */
#include <errno.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 2 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) return 2;
    pid_t p = fork();
    if (p == 0) { execvp(argv[1], argv + 1); _exit(127); }
    while (wait(NULL) > 0 || errno == EINTR) {}
    return 0;
}
EOF
gcc -O2 -Wall -o "$RG_TMP/subreaper" "$RG_TMP/subreaper.c" || { log "cannot build the subreaper"; exit 1; }
HZ=$(getconf CLK_TCK)
for name in $SYSLIST; do
    dir="$RG_TMP/exim-$name"
    EXIM_PORT=$(rg_free_port) rg_exim_conf "$dir" "$RG_TMP/${name%-nopreload}.acl"
    # no DKIM in this comparison: the transport signs in none of them
    sed -i '/^  dkim_domain/,/^  dkim_canon/d' "$dir/exim.conf"
    # rg_preload only where relayguard runs and is asked for
    [ "$name" = relayguard ] || sed -i '/rg_preload/d' "$dir/exim.conf"
    # the spool on tmpfs (SPOOL_TMPFS=1, the default): Exim fsyncs every
    # spool file it writes, and on this machine's shared disk that wait
    # (the same for every configuration) would hide the CPU being compared
    if [ "${SPOOL_TMPFS:-1}" = 1 ] && [ -d /dev/shm ]; then
        spool=$(mktemp -d /dev/shm/rg-bench-spool.XXXXXX)
        rg_on_exit "rm -rf '$spool'"
        chown Debian-exim:Debian-exim "$spool"; chmod 750 "$spool"
        sed -i "s|^spool_directory = .*|spool_directory = $spool|" "$dir/exim.conf"
    fi
    PORT[$name]=$(sed -n 's/^daemon_smtp_ports = //p' "$dir/exim.conf")
    # under a subreaper, so that the CPU of the delivery processes (which
    # outlive the connection process that forked them) is counted too
    "$RG_TMP/subreaper" "${RG_EXIM_ENV[@]}" "$EXIM" -C "$dir/exim.conf" -bd -q10s -oP "$dir/exim.pid" \
        >"$dir/start.log" 2>&1 &
    REAPER[$name]=$!
    rg_wait_port "${PORT[$name]}" 15 || { log "Exim $name did not start"; cat "$dir/start.log" >&2; exit 1; }
    EXIM_PID=$(cat "$dir/exim.pid")
    rg_on_exit "rg_stop_pid $EXIM_PID"
    DIRS[$name]=$dir PID[$name]=$EXIM_PID
done
per=$((MSGS / ROUNDS))
BUSY_BEFORE=$(busy_pct 2)
log "$ROUNDS rounds of $per messages per system; machine $BUSY_BEFORE% busy before, load $(loadavg)"
stat0=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
order=($SYSLIST)
for ((r = 0; r < ROUNDS; r++)); do
    for ((k = 0; k < ${#order[@]}; k++)); do
        name=${order[$(((k + r) % ${#order[@]}))]}
        before=$(rg_sink_count)
        c0=$(exim_ticks "$name"); rc0=$(ticks "$REDIS_PID")
        t0=$(date +%s.%N)
        "$RG_TMP/smtp-load" 127.0.0.1 "${PORT[$name]}" "$SESSIONS" "$per" "$SIZE" a@bench.test \
            b@example.net >>"${DIRS[$name]}/source.log" 2>&1
        t1=$(date +%s.%N)
        n=$(rg_wait_sink_count $((before + per)) 300)
        sleep 1         # the last delivery processes are reaped
        c1=$(exim_ticks "$name"); rc1=$(ticks "$REDIS_PID")
        rate=$(echo "$per $t0 $t1" | awk '{ printf "%.0f", $1 / ($3 - $2) }')
        cpu=$(echo "$c0 $c1 $HZ $per" | awk '{ printf "%.1f", ($2 - $1) * 1000 / $3 / $4 }')
        rcpu=$(echo "$rc0 $rc1 $HZ $per" | awk '{ printf "%.2f", ($2 - $1) * 1000 / $3 / $4 }')
        RATES[$name]="${RATES[$name]:-} $rate"; CPUS[$name]="${CPUS[$name]:-} $cpu"; RCPUS[$name]="${RCPUS[$name]:-} $rcpu"
        log "round $((r + 1)) $name: $rate msgs/s, Exim $cpu ms CPU/msg, Redis $rcpu ms CPU/msg, $((n - before)) delivered; load $(loadavg)"
        [ $((n - before)) -eq "$per" ] || log "WARNING: $name: $((n - before)) of $per delivered"
    done
done
stat1=$(awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
BUSY_DURING=$(echo "$stat0 $stat1" | awk '{ printf "%.0f", 100 * ($3 - $1) / ($4 - $2) }')
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
    /* RG_LOGIN, RG_SENDER: a SASL login instead of the client network */
    char *login = getenv("RG_LOGIN") ? getenv("RG_LOGIN") : "";
    char *sender = getenv("RG_SENDER") ? getenv("RG_SENDER") : "a@bench.test";
    char *am[] = { (char *)conf, login, "127.0.0.1", sender, "-1" };
    char *ar[] = { (char *)conf, login, "127.0.0.1", sender, "b@example.net", "-1" };
    char *ad[] = { (char *)conf, login, "127.0.0.1", sender, qid, "4096", sender };
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
login_row=""
if [ "$ACCOUNTS" -ge 2 ]; then
    log "first call in a fresh process, SASL login site2@bench.test: $INITS processes"
    : >"$RG_TMP/init-login.out"
    for i in $(seq 1 "$INITS"); do
        RG_LOGIN=site2@bench.test RG_SENDER=a@site2.example \
            "$RG_TMP/calls" "$RG_SO" "$RG_CONF" 0 init >>"$RG_TMP/init-login.out" 2>&1
    done
    read -r l50 l99 < <(awk '$1 == "init" { print $3 }' "$RG_TMP/init-login.out" | pct)
    login_row="| first call of a process, SASL login of one of the $ACCOUNTS accounts (config, Redis connect, that account), $INITS processes | $l50 | $l99 |"
fi

for s in none relayguard relayguard-nopreload ratelimit; do
    : "${RATE[$s]:=n/a}" "${CPU[$s]:=n/a}" "${RCPU[$s]:=n/a}" "${RATES[$s]:=}" "${ACC[$s]:=0}"
done
ratio() { echo "$1 $2" | awk '$1 + 0 > 0 && $2 + 0 > 0 { printf "%.2f", $1 / $2; next } { printf "n/a" }'; }
# CPU-bound estimate: Exim alone's CPU per message (Exim + Redis) over this one's
cpuratio() { echo "${CPU[none]} ${RCPU[none]} ${CPU[$1]} ${RCPU[$1]}" |
    awk '$3 + $4 > 0 { printf "%.2f", ($1 + $2) / ($3 + $4); next } { printf "n/a" }'; }
row() { echo "| $2 | ${RATE[$1]} | $(ratio "${RATE[$1]}" "${RATE[none]}") | ${CPU[$1]} | ${RCPU[$1]} | $(cpuratio "$1") |${RATES[$1]} | ${ACC[$1]} |"; }
cat <<EOF

## Exim: relayguard-exim.so against Exim alone and Exim's ratelimit ($(date -u '+%Y-%m-%d %H:%M') UTC)

\`bench/run-exim.sh $MSGS $SESSIONS\` (ROUNDS=$ROUNDS, ACCOUNTS=$ACCOUNTS): smtp-load (this script's
client: no wait for the reply to QUIT), $SESSIONS sessions, messages of $SIZE bytes, one
message per connection, into a private Exim 4.96 (Debian's exim4-daemon-heavy) that
delivers each at once to smtp-sink (spool on tmpfs: SPOOL_TMPFS=${SPOOL_TMPFS:-1}). The systems take turns in $ROUNDS rounds of $per
messages; medians of the rounds. Machine: $BUSY_BEFORE% busy before the start, $BUSY_DURING% during.

| Exim with | msgs/s accepted | vs Exim alone | Exim CPU ms/msg | Redis CPU ms/msg | CPU vs Exim alone (alone's CPU / this one's) | msgs/s per round | accepted |
| --- | --- | --- | --- | --- | --- | --- | --- |
$(row none "no policy")
$(row relayguard "relayguard ACLs (rg_mail, rg_rcpt, rg_data) + rg_preload")
$(row relayguard-nopreload "relayguard ACLs, no rg_preload")
$(row ratelimit "Exim ratelimit (per_mail, per client)")

Per call, in one process ($CALLS messages; µs, p50 / p99):

| call | p50 µs | p99 µs |
| --- | --- | --- |
$(awk '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$RG_TMP/calls.out")
| first call of a process, client network (config, Redis connect, the accounts with client networks; $ACCOUNTS account(s) in all), $INITS processes | $first50 | $first99 |
$login_row
| dlopen of relayguard-exim.so (RTLD_LAZY, as Exim) | $open50 | $open99 |
| first call of a process forked after rg_preload (its own Redis connect) | $fork50 | $fork99 |
EOF
