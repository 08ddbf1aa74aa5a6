# bench/common.sh - helpers shared by the benchmark scripts (sourced, bash).
#
# Everything runs in a private work folder on loopback ports; every process
# started here is remembered by PID and stopped by PID on exit.

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP_SRC=$(cd "$BENCH_SRC/.." && pwd)
BUILD=${BUILD:-/work/build-bench}
STARTED_PIDS=""

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Install missing Debian packages (one apt-get call).
need_pkgs() {
    local missing="" p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    log "installing:$missing"
    [ "$(id -u)" = 0 ] || die "need root to install:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2 ||
        { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2; } ||
        die "apt-get install$missing failed"
}

# A private work folder, traversable by the peers' unprivileged users.
make_workdir() {
    WORK=$(mktemp -d "${BENCH_TMP:-/var/tmp}/relayguard-bench.XXXXXX")
    chmod 755 "$WORK"
}

remember() { STARTED_PIDS="$STARTED_PIDS $1"; }

# On exit stop everything started and remove $WORK (kept, and named, when
# KEEP=1); INT and TERM exit 130 through it.
cleanup() {
    stop_all
    if [ "${KEEP:-0}" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
}
cleanup_on_exit() {
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

# Is PID running (a zombie counts as gone)?
alive() {
    local st
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Stop one process by PID: TERM, wait up to 10 s, then KILL.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "pid $pid did not stop on TERM, killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true     # reap it if it is our child
}

stop_all() {
    local pid
    for pid in $STARTED_PIDS; do stop_pid "$pid"; done
    STARTED_PIDS=""
}

# A free loopback TCP port at or above $1.
free_port() {
    local p=$1
    while ss -Htln "sport = :$p" 2>/dev/null | grep -q . || ss -Htan "sport = :$p" 2>/dev/null | grep -q .; do
        p=$((p + 1))
    done
    echo "$p"
}

# Wait until something listens on 127.0.0.1:$1 (timeout $2 s, default 20).
wait_port() {
    local port=$1 t=${2:-20} i
    for i in $(seq 1 $((t * 10))); do
        ss -Htln "sport = :$port" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# Configure $BUILD when it is not yet (logs in $WORK), then make TARGET...
# there; dies with the first errors when either fails.
build_targets() {
    if [ ! -f "$BUILD/Makefile" ]; then
        mkdir -p "$BUILD"
        (cd "$BUILD" && "$TOP_SRC/configure" -q) >"$WORK/configure.log" 2>&1 ||
            die "configure failed: $(tail -n 5 "$WORK/configure.log")"
    fi
    make -C "$BUILD" -j2 "$@" >"$WORK/build.log" 2>&1 ||
        die "build failed: $(grep -m 5 -E 'error|Error' "$WORK/build.log")"
}

# The load generator: the built one, else make it, else compile it directly.
find_policy_load() {
    local src="$BENCH_SRC/policy-load.c"
    if [ -d "$BUILD" ] && [ -f "$BUILD/Makefile" ]; then
        make -s -C "$BUILD" bench/policy-load >/dev/null 2>&1 || true
        if [ -x "$BUILD/bench/policy-load" ] && [ "$BUILD/bench/policy-load" -nt "$src" ]; then
            POLICY_LOAD="$BUILD/bench/policy-load"
            return 0
        fi
    fi
    need_pkgs gcc libevent-dev pkg-config
    POLICY_LOAD="$WORK/policy-load"
    gcc -O2 -g -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
        -o "$POLICY_LOAD" "$src" $(pkg-config --cflags --libs libevent) ||
        die "cannot build $src"
}

# Start a private Redis on 127.0.0.1:$2 with data in $1 (no persistence).
start_redis() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir" --logfile "$dir/redis.log" --daemonize no --protected-mode yes \
        >/dev/null 2>&1 &
    REDIS_PID=$!
    remember "$REDIS_PID"
    wait_port "$port" 20 || die "redis did not start (see $dir/redis.log)"
}

# A private redis-server under valgrind --tool=callgrind on 127.0.0.1:$2,
# its files (cg.PID.out*, redis.log, valgrind.log) in $1, then $4... as more
# redis-server options.  Waits up to $3 tenths of a second for PONG (dies if
# valgrind exits first); the caller checks the outcome.  Sets CG_PID.
start_redis_callgrind() {
    local dir=$1 port=$2 tries=$3 i
    shift 3
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p.out" \
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --hz 1 \
        --dir "$dir" --logfile "$dir/redis.log" "$@" >"$dir/valgrind.log" 2>&1 &
    CG_PID=$!
    remember "$CG_PID"
    for i in $(seq 1 "$tries"); do
        redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && break
        alive "$CG_PID" || die "redis-server under valgrind died: $(tail -n 5 "$dir/valgrind.log")"
        sleep 0.1
    done
}

# All descendants of a PID (not including it).
descendants() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2; pids[NR] = $1 }
        END {
            want[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (i in pids) { p = pids[i]
                    if (!(p in want) && (parent[p] in want)) { want[p] = 1; changed = 1 } }
            }
            for (p in want) if (p != root) print p
        }'
}

# Memory of a set of PIDs, in kB: VmRSS summed, and Pss summed (shared pages
# divided among the sharers, so a forking server is not counted N times).
rss_kb() {
    local sum=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
pss_kb() {
    local sum=0 pid v
    for pid in "$@"; do
        v=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# CPU time (user + system) of a set of PIDs, in clock ticks.
cpu_ticks() {
    local sum=0 pid v
    for pid in "$@"; do
        v=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)

# field NAME LINE: the value of NAME=... in a RESULT line.
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

machine_info() {
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
    echo "- memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "- kernel: $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), libevent $(pkg-config --modversion libevent 2>/dev/null || echo '?')"
}

# "busy total" jiffies of the whole machine (all cores) from /proc/stat.
# busy = user + nice + system + steal: irq and softirq time (loopback TCP is
# mostly softirq) is left out, since it cannot be told apart from ours.
machine_ticks() {
    awk '/^cpu / { busy = $2 + $3 + $4 + $9; print busy, busy + $5 + $6 + $7 + $8; exit }' /proc/stat
}
