#!/bin/bash
# bench/run-import.sh - time `relayguard suppress import` of $ROWS generated CSV
# rows (default 1,000,000) into a private Redis, and print rows/s.
#
# Usage: bench/run-import.sh             (as root: installs missing packages)
# Knobs (environment): BUILD=/work/build-bench ROWS=1000000 REPEAT=3
#   STORE=tcp|unix  OUT=FILE (also write the report there)  KEEP=0
# Each run imports into an empty Redis (FLUSHALL between runs); the median run
# is reported.  After the last run the count in Redis and a few addresses are
# checked with `relayguard suppress check`.
# The whole script is one block, so that bash has read all of it before it
# runs: editing the file during a run cannot break that run.
{
set -euo pipefail
. "$(dirname "$0")/common.sh"

ROWS=${ROWS:-1000000}
REPEAT=${REPEAT:-3}
STORE=${STORE:-tcp}
KEEP=${KEEP:-0}

need_pkgs redis-server redis-tools gcc make pkg-config time
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
make -C "$BUILD" -j2 cli/relayguard >"$WORK/build.log" 2>&1 ||
    die "building cli/relayguard failed: $(grep -m 5 -E 'error|Error' "$WORK/build.log")"
RG_CLI="$BUILD/cli/relayguard"

d="$WORK/import"
mkdir -p "$d"
if [ "$STORE" = unix ]; then
    mkdir -p "$d/redis"
    redis-server --port 0 --unixsocket "$d/redis/redis.sock" --unixsocketperm 700 \
        --save "" --appendonly no --dir "$d/redis" --logfile "$d/redis/redis.log" \
        --daemonize no >/dev/null 2>&1 &
    REDIS_PID=$!; remember "$REDIS_PID"
    for i in $(seq 1 100); do [ -S "$d/redis/redis.sock" ] && break; sleep 0.1; done
    store="redis+unix://$d/redis/redis.sock?db=0"
    REDIS_CLI=(redis-cli -s "$d/redis/redis.sock")
else
    rport=$(free_port 26479)
    start_redis "$d/redis" "$rport"
    store="redis://127.0.0.1:$rport/0"
    REDIS_CLI=(redis-cli -p "$rport")
fi
cat >"$d/relayguard.conf" <<EOF
# relayguard suppress import benchmark (bench/run-import.sh)
store = $store
log = stderr
log_level = warning
EOF

log "generating $ROWS rows"
ts=$(date +%s.%N)
# Realistic rows: four reasons, a date or Unix seconds for since, one in ten
# with an expiry, a short note on some; a few mixed-case addresses (stored
# lower case).
awk -v n="$ROWS" 'BEGIN {
    print "address,reason,since,expires,note"
    split("hard-bounce complaint unsubscribe manual", r, " ")
    for (i = 0; i < n; i++) {
        addr = sprintf("user%d@d%d.example.net", i, i % 5000)
        if (i % 97 == 0) addr = sprintf("User%d@D%d.Example.NET", i, i % 5000)
        since = (i % 2) ? "2026-11-01" : sprintf("%d", 1790000000 + i)
        ex = (i % 10 == 0) ? "2036-01-01" : ""
        note = (i % 3 == 0) ? "bench import" : ""
        printf "%s,%s,%s,%s,%s\n", addr, r[i % 4 + 1], since, ex, note
    }
}' >"$d/suppressed.csv"
te=$(date +%s.%N)
GEN_S=$(awk -v a="$ts" -v b="$te" 'BEGIN { printf "%.2f", b - a }')
log "generated $(du -h "$d/suppressed.csv" | cut -f1) in ${GEN_S}s"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
TIMEV=""
[ -x /usr/bin/time ] && TIMEV=/usr/bin/time

secs=(); rates=(); peaks=()
for r in $(seq 1 "$REPEAT"); do
    "${REDIS_CLI[@]}" flushall >/dev/null
    log "import run $r of $REPEAT"
    ts=$(date +%s.%N)
    if [ -n "$TIMEV" ]; then
        $TIMEV -f '%M' -o "$d/time.$r" "$RG_CLI" -c "$d/relayguard.conf" suppress import \
            "$d/suppressed.csv" >"$d/import.$r.log" 2>&1 || die "import failed: $(tail -n 5 "$d/import.$r.log")"
    else
        "$RG_CLI" -c "$d/relayguard.conf" suppress import "$d/suppressed.csv" \
            >"$d/import.$r.log" 2>&1 || die "import failed: $(tail -n 5 "$d/import.$r.log")"
    fi
    te=$(date +%s.%N)
    s=$(awk -v a="$ts" -v b="$te" 'BEGIN { printf "%.2f", b - a }')
    secs+=("$s")
    rates+=("$(awk -v s="$s" -v n="$ROWS" 'BEGIN { printf "%.0f", n / s }')")
    peaks+=("$( [ -n "$TIMEV" ] && tail -n 1 "$d/time.$r" || echo '')")
    log "run $r: ${s}s, ${rates[-1]} rows/s; $(tail -n 1 "$d/import.$r.log")"
done

# median by time
mid=$(for i in "${!secs[@]}"; do echo "$i ${secs[$i]}"; done | sort -k2,2n |
      awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')

# checks on the last import
stored=$("${REDIS_CLI[@]}" hlen rg:s:g | tr -d '\r')
redis_mem=$("${REDIS_CLI[@]}" info memory | sed -n 's/^used_memory_human://p' | tr -d '\r')
checks=""
for a in user0@d0.example.net user12345@d2345.example.net user97@d97.example.net "user$((ROWS - 1))@d$(((ROWS - 1) % 5000)).example.net" nobody@example.org; do
    out=$("$RG_CLI" -c "$d/relayguard.conf" suppress check "$a" 2>&1 | head -n 1) || true
    checks="$checks- \`relayguard suppress check $a\`: $out"$'\n'
done

{
    echo "## relayguard suppress import"
    echo
    machine_info
    echo "- $ROWS rows ($(du -h "$d/suppressed.csv" | cut -f1) CSV, generated in ${GEN_S}s), store $STORE, empty Redis each run"
    echo "- load average at the start: $LOAD_START (anything else running skews the numbers)"
    echo
    echo "| run | seconds | rows/s | CLI peak RSS |"
    echo "| ---: | ---: | ---: | ---: |"
    for i in "${!secs[@]}"; do
        pk=${peaks[$i]:-}
        [ -n "$pk" ] && pk=$(awk -v k="$pk" 'BEGIN { printf "%.1f MiB", k / 1024 }')
        echo "| $((i + 1)) | ${secs[$i]} | ${rates[$i]} | ${pk:--} |"
    done
    echo
    echo "Median: ${secs[$mid]} s, ${rates[$mid]} rows/s (target: well under a minute for 1,000,000)."
    echo "Output of the CLI: $(tail -n 1 "$d/import.$mid.log")"
    echo "Stored in rg:s:g after the last run: $stored entries; Redis used_memory $redis_mem."
    echo
    printf '%s' "$checks"
} | tee "$WORK/report.md"
[ -n "${OUT:-}" ] && cp "$WORK/report.md" "$OUT"
exit 0
}
