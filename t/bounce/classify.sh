#!/bin/bash
# t/bounce/classify.sh - every fixture of t/bounce/corpus/ through
# "relayguard bounce parse", diffed against its .ref (the expected format,
# class, status and deciding rule of each recipient; written from RFC 3463,
# RFC 3464, RFC 5965 and the providers' documented replies).
. "${top_srcdir:-$(dirname "$0")/../..}/t/lib.sh"

dir="$top_srcdir/t/bounce/corpus"
n=0
for eml in "$dir"/*.eml; do
    ref="${eml%.eml}.ref"
    name=$(basename "$eml" .eml)
    n=$((n + 1))
    if [ ! -f "$ref" ]; then fail "$name: no .ref"; continue; fi
    got=$("$RG_BIN_CLI" bounce parse "$eml" 2>&1)
    if [ "$got" = "$(cat "$ref")" ]; then
        pass "$name"
    else
        fail "$name" "$(diff <(printf '%s\n' "$got") "$ref")"
    fi
done
ok "$([ "$n" -ge 20 ]; echo $?)" "the corpus has $n fixtures (20 at least)"

# Damaged copies: every fixture cut at 12 places, and 20 copies of each with
# 1 to 50 bytes overwritten (a fixed seed, so a failure can be reproduced).
# All of them in one process: each must give a report or a clean error.
rg_tmpdir
python3 - "$dir" "$RG_TMP/damaged" <<'PY'
import os, random, sys
src, out = sys.argv[1], sys.argv[2]
os.mkdir(out)
rnd = random.Random(6)
for name in sorted(os.listdir(src)):
    if not name.endswith(".eml"):
        continue
    data = open(os.path.join(src, name), "rb").read()
    for k in range(12):
        cut = len(data) * k // 12
        open(os.path.join(out, "%s.cut%02d" % (name, k)), "wb").write(data[:cut])
    for k in range(20):
        b = bytearray(data)
        for _ in range(rnd.randint(1, 50)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        open(os.path.join(out, "%s.mut%02d" % (name, k)), "wb").write(bytes(b))
PY
files=("$RG_TMP"/damaged/*)
"$RG_BIN_CLI" bounce parse "${files[@]}" >"$RG_TMP/damaged.out" 2>&1
rc=$?
ok "$([ "$rc" = 0 ] || [ "$rc" = 1 ]; echo $?)" "damaged copies: exit 0 or 1 (got $rc)"
is "$(grep -c '^== ' "$RG_TMP/damaged.out")" "${#files[@]}" "damaged copies: a report or an error for each of ${#files[@]}"
is "$(grep -cE '^(format|error) ' "$RG_TMP/damaged.out")" "${#files[@]}" "damaged copies: each one read to the end"
ok "$(grep -qE 'Sanitizer|runtime error|Segmentation' "$RG_TMP/damaged.out"; [ $? != 0 ]; echo $?)" "damaged copies: no crash, no sanitizer report"
done_testing
