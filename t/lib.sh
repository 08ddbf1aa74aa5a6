# t/lib.sh - shared helpers for shell tests (sourced, bash).
#
# Every test prints TAP.  Real components are started in a private folder on
# free loopback ports and stopped by PID when the test exits.
#
#   . "$top_srcdir/t/lib.sh"
#   rg_require redis-server swaks       # skip (or, under CI, fail) when missing
#   rg_tmpdir                           # sets RG_TMP (removed at exit unless RG_KEEP=1)
#   rg_start_redis                      # sets REDIS_PORT, REDIS_URL, REDIS_PID
#   ok "$cond" "label";  is "$got" "$want" "label";  done_testing
set -u

top_srcdir=${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
RG_BIN_POLICYD="$top_builddir/postfix-policyd/relayguard-policyd"
RG_BIN_CLI="$top_builddir/cli/relayguard"

_rg_n=0
_rg_failed=0
_rg_cleanups=()

# --- TAP ---------------------------------------------------------------
ok() {  # ok CONDITION-EXIT-STATUS LABEL   (pass 0 for success)
    _rg_n=$((_rg_n + 1))
    if [ "$1" = 0 ]; then echo "ok $_rg_n - $2"; else echo "not ok $_rg_n - $2"; _rg_failed=$((_rg_failed + 1)); fi
}
pass() { ok 0 "$1"; }
fail() { ok 1 "$1"; [ $# -gt 1 ] && diag "$2"; return 0; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
is() {  # is GOT WANT LABEL
    if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; diag "got:  '$1'" "want: '$2'"; fi
}
like() {  # like GOT REGEX LABEL
    if printf '%s' "$1" | grep -Eq -- "$2"; then ok 0 "$3"; else ok 1 "$3"; diag "got:  '$1'" "want match: /$2/"; fi
}
done_testing() { echo "1..$_rg_n"; [ "$_rg_failed" = 0 ]; }

# Skip the whole test when a component is missing.  Under CI a skip is a
# failure: CI must have everything.
skip_all() {
    if [ -n "${CI:-}" ]; then echo "1..1"; echo "not ok 1 - required component missing under CI: $*"; exit 1; fi
    echo "1..0 # SKIP $*"; exit 0
}
rg_require() {
    local p
    for p in "$@"; do
        command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || skip_all "$p not installed"
    done
}

# --- lifetime ------------------------------------------------------------
rg_on_exit() { _rg_cleanups+=("$*"); }
_rg_exit() {
    local i
    for ((i = ${#_rg_cleanups[@]} - 1; i >= 0; i--)); do eval "${_rg_cleanups[$i]}" >/dev/null 2>&1 || true; done
}
trap _rg_exit EXIT

rg_tmpdir() {
    RG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/rgtest.XXXXXX")
    chmod 755 "$RG_TMP"
    if [ -z "${RG_KEEP:-}" ]; then rg_on_exit "rm -rf '$RG_TMP'"; else diag "keeping $RG_TMP"; fi
}

# A free TCP port on 127.0.0.1 (the kernel picks it).
rg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait until a TCP port accepts connections (max $2 seconds, default 10).
rg_wait_port() {
    local port=$1 max=${2:-10} i
    for ((i = 0; i < max * 20; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# Kill a PID and wait for it to go (max 5 s, then SIGKILL).
rg_stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null; return 0
}

# --- Redis ---------------------------------------------------------------
# rg_start_redis [PORT]: a private redis-server in $RG_TMP/redis-PORT.
rg_start_redis() {
    rg_require redis-server redis-cli
    REDIS_PORT=${1:-$(rg_free_port)}
    local dir="$RG_TMP/redis-$REDIS_PORT"
    mkdir -p "$dir"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
        --daemonize no --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" &
    REDIS_PID=$!
    rg_on_exit "rg_stop_pid $REDIS_PID"
    rg_wait_port "$REDIS_PORT" 10 || { echo "Bail out! redis-server did not start"; exit 1; }
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}
rg_redis() { redis-cli -p "$REDIS_PORT" "$@"; }

# Write a minimal relayguard.conf for the private Redis into $1 (extra lines on stdin).
rg_write_conf() {
    local f=$1
    {
        echo "store = $REDIS_URL"
        echo "node = test"
        echo "log = stderr"
        echo "store_timeout = 500ms"
        cat
    } > "$f"
}
