#!/bin/bash
# bench/run-floor.sh - how far relayguard-policyd's decisions/s are from the
# floor under them, in one run: the same tree built three times, with
#
#   real  policy/decide.lua, as shipped
#   bare  bench/floor/bare.lua: per decision, the Redis commands decide.lua
#         runs for the benchmark's request (suppression lists, reservation,
#         two limits read and written, the event) with the same keys and
#         argument sizes, and none of the logic between them
#   bare5 bench/floor/bare5.lua (not run by default): bare with five
#         commands instead of eight, as a schema with one hash per account
#         for its limits and no account suppression lookup would need
#   noop  bench/floor/noop.lua: one FCALL per batch that answers every
#         decision "ok" and runs no command: the policy protocol, the event
#         loop and the Redis round trip alone
#
# each measured by bench/run-policy.sh (SYSTEMS=relayguard) with the same
# load, one after the other.  bare and noop enforce nothing (their checks
# before measuring are off); they only tell what any Lua script doing a
# decision's commands can reach on this machine (bare), and what a
# Redis-backed policy server can reach at all (noop).
#
# Usage: bench/run-floor.sh        (as root, like run-policy.sh)
# Knobs: VARIANTS="real bare noop" CONNS="1 50 500" REPEAT=2 DURATION=10
#        WARMUP=2 STORE=tcp|unix KEEP=0, and run-policy.sh's others
# About 4 minutes per variant, plus a configure and build of each.
{
set -euo pipefail
. "$(dirname "$0")/common.sh"

VARIANTS=${VARIANTS:-"real bare noop"}
export CONNS=${CONNS:-"1 50 500"} REPEAT=${REPEAT:-2} DURATION=${DURATION:-10}
export WARMUP=${WARMUP:-2} STORE=${STORE:-tcp} EOM_ROW=0 OPEN_RATE=0 SYSTEMS=relayguard
KEEP=${KEEP:-0}

[ "$(id -u)" = 0 ] || die "run as root (as bench/run-policy.sh)"
make_workdir
cleanup() { if [ "$KEEP" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

for v in $VARIANTS; do
    case $v in real|bare|noop|bare5) ;; *) die "unknown variant '$v' (real, bare, bare5, noop)" ;; esac
    src="$WORK/src-$v"
    mkdir -p "$src"
    # the tree as it is now, edits included: in a git checkout its tracked
    # and new files (not the builds in it), else all of it
    if [ -d "$TOP_SRC/.git" ]; then
        (cd "$TOP_SRC" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - --) |
            tar -C "$src" -xf -
    else
        tar -C "$TOP_SRC" --exclude=./build --exclude=./build-asan -cf - . | tar -C "$src" -xf -
    fi
    [ "$v" = real ] || cp "$TOP_SRC/bench/floor/$v.lua" "$src/policy/decide.lua"
    if [ ! -x "$src/configure" ]; then
        (cd "$src" && autoreconf -fi) >"$WORK/autoreconf-$v.log" 2>&1 ||
            die "autoreconf failed: $(tail -n 3 "$WORK/autoreconf-$v.log")"
    fi
    log "$v: building and measuring"
    VERIFY=$([ "$v" = real ] && echo 1 || echo 0) BUILD="$WORK/build-$v" OUT="$WORK/$v.md" \
        "$src/bench/run-policy.sh" >"$WORK/$v.log" 2>&1 ||
        die "$v: run-policy.sh failed: $(tail -n 5 "$WORK/$v.log")"
done

echo "## relayguard-policyd against its floor"
echo
echo "- store $STORE; $REPEAT runs per row (median shown); ${DURATION} s each"
machine_info
echo
echo "| variant | connections | decisions/s | p50 µs | p99 µs | server CPU µs/decision (policyd + redis) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for v in $VARIANTS; do
    # the rows of run-policy.sh's result table
    awk -F'|' -v v="$v" '$2 ~ /^ relayguard $/ && $3 ~ /^ [0-9]+ $/ {
        printf "| %s | %s | %s | %s | %s | %s |\n", v, $3, $4, $5, $7, $9 }' "$WORK/$v.md" |
        sed 's/  */ /g'
done
echo
for v in $VARIANTS; do
    echo "- $v: $(grep -m 1 -E '^- relayguard: ' "$WORK/$v.md" | sed 's/^- relayguard: //')"
    grep -E '^- relayguard, [0-9]+ connections:' "$WORK/$v.md" | sed "s/^- relayguard/  - $v/"
done
}
exit
