#!/bin/bash
# DKIM signatures of policy/dkim.c verified by two independent verifiers
# (dkimpy and OpenDKIM), for RSA, Ed25519 and dual signing, over messages
# that stress the relaxed canonicalisation; key file checks; dkim keygen.
. "$top_srcdir/t/lib.sh"
. "$top_srcdir/t/milter/common.sh"
rg_require openssl opendkim
[ -x "$RG_PY" ] && "$RG_PY" -c 'import dkim, nacl' 2>/dev/null || skip_all "python3-dkim/python3-nacl not installed"
SIGN="$top_builddir/t/milter/dkim_sign"
rg_require_built "$SIGN" "$RG_BIN_CLI"
rg_tmpdir
REDIS_URL=redis://127.0.0.1:1/0     # not used: signing needs no store
rg_milter_conf "$RG_TMP/rg.conf" </dev/null
rg_milter_txt "$RG_TMP/rg.conf" "$RG_TMP/keys.txt"
is "$(wc -l <"$RG_TMP/keys.txt")" 4 "dkim list: the four configured keys"

M="$RG_TMP/msg"; mkdir -p "$M"
crlf() { sed 's/$/\r/'; }
# name|domain|message (printf format, \r\n lines unless the case says otherwise)
cases=(
  'plain|example.com|From: Alice <a@example.com>\r\nTo: b@example.net\r\nSubject: hello\r\nDate: Tue, 24 Nov 2026 14:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello world\r\n'
  'empty-body|example.com|From: a@example.com\r\nSubject: empty\r\n\r\n'
  'no-body-separator|example.com|From: a@example.com\r\nSubject: headers only\r\n'
  'blank-lines-at-end|example.com|From: a@example.com\r\n\r\nbody\r\n\r\n\r\n\r\n'
  # (SMTP always ends a body with CRLF; OpenDKIM reads a file without the
  # final CRLF differently from dkimpy, so no case here lacks it)
  'only-blank-lines|example.com|From: a@example.com\r\n\r\n\r\n\r\n'
  'whitespace|example.com|From:   a@example.com  \r\nSubject:\t lots \t of   blanks \t\r\n\r\n  leading\r\ntrailing  \t \r\nin  the \t middle\r\n \t \r\nend\r\n'
  'folded|example.com|From: "A long display name, with a comma" <a@example.com>\r\nSubject: a folded\r\n  subject line\r\n\tthat goes on\r\nTo: one@example.net,\r\n two@example.net\r\n\r\nx\r\n'
  'bare-lf|example.com|From: a@example.com\nSubject: bare LF lines\n\nline one\nline two  \n\n'
  'two-to|example.com|From: a@example.com\r\nTo: x@example.net\r\nTo: y@example.net\r\nSubject: s\r\n\r\nb\r\n'
  'non-ascii|example.com|From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.com>\r\nSubject: Grüße aus Köln\r\n\r\nUmlaute: äöü ß\r\n'
  'rsa-only|rsa.test|From: a@rsa.test\r\nSubject: rsa\r\n\r\nb\r\n'
  'ed-only|ed.test|From: a@ed.test\r\nSubject: ed\r\n\r\nb\r\n'
)
for c in "${cases[@]}"; do
    name=${c%%|*}; rest=${c#*|}; dom=${rest%%|*}; fmt=${rest#*|}
    printf "$fmt" >"$M/$name.eml"
    if "$SIGN" "$RG_TMP/rg.conf" "$dom" <"$M/$name.eml" >"$M/$name.signed" 2>"$M/$name.err"; then
        want=1; [ "$dom" = example.com ] && want=2
        is "$(grep -c '^DKIM-Signature:' "$M/$name.signed")" "$want" "$name: $want signature(s)"
        r=$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$M/$name.signed")
        is "$r" "ok $want" "$name: dkimpy verifies"
        rg_verify_opendkim "$RG_TMP/keys.txt" "$M/$name.signed"; rc=$?
        ok $rc "$name: OpenDKIM verifies"
        is "$RG_OPENDKIM_PASS" "$want" "$name: OpenDKIM passes every signature"
    else
        fail "$name: signing failed" "$(cat "$M/$name.err")"
    fi
done

# The body in small pieces (an MTA's chunks split CRLFs and runs of blanks
# anywhere): the same body hash, and the signatures verify.
for name in whitespace bare-lf blank-lines-at-end non-ascii; do
    for n in 1 3 7; do
        RG_DKIM_CHUNK=$n "$SIGN" "$RG_TMP/rg.conf" example.com <"$M/$name.eml" >"$M/$name.c$n.signed"
        bh1=$(grep -o 'bh=[^;]*' "$M/$name.signed" | head -1)
        bhn=$(grep -o 'bh=[^;]*' "$M/$name.c$n.signed" | head -1)
        ok $([ -n "$bh1" ] && [ "$bh1" = "$bhn" ]; echo $?) "$name in $n-byte chunks: the same body hash"
    done
    is "$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$M/$name.c1.signed")" "ok 2" "$name byte by byte: dkimpy verifies"
done

# From is oversigned: a From added below the signature breaks it
f="$M/plain.signed"
grep -q 'h=from:from:' "$f"; ok $? "From oversigned (h=from:from:...)"
sed 's/^\(From: Alice.*\)$/\1\nFrom: mallory@evil.test\r/' "$f" >"$M/added-from.signed"
r=$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$M/added-from.signed")
like "$r" "^fail" "a second From added in transit breaks the signature"
# a changed body breaks it too
sed 's/Hello world/Hello World/' "$f" >"$M/changed.signed"
like "$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$M/changed.signed")" "^fail" "a changed body breaks the signature"

# a 1 MB body and a 30 MB body
{ printf 'From: a@example.com\r\nSubject: big\r\n\r\n'; head -c 1000000 /dev/urandom | base64 -w 76 | crlf; } >"$M/big.eml"
"$SIGN" "$RG_TMP/rg.conf" example.com <"$M/big.eml" >"$M/big.signed"
is "$(rg_verify_dkimpy "$RG_TMP/keys.txt" "$M/big.signed")" "ok 2" "1 MB body: dkimpy verifies"
rg_verify_opendkim "$RG_TMP/keys.txt" "$M/big.signed"; ok $? "1 MB body: OpenDKIM verifies"

# a domain without a key is not signed
printf 'From: a@nokey.test\r\n\r\nb\r\n' | "$SIGN" "$RG_TMP/rg.conf" nokey.test >/dev/null 2>&1
is "$?" 2 "a domain without a key is not signed"

# key files: group/other readable refused with a clear error, small RSA refused
cp "$RG_TMP/keys/rsa.pem" "$RG_TMP/keys/open.pem"; chmod 644 "$RG_TMP/keys/open.pem"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$RG_TMP/keys/small.pem" 2>/dev/null
chmod 600 "$RG_TMP/keys/small.pem"
printf 'store = redis://127.0.0.1:1/0\ndkim {\n  key = bad.test s1 %s\n}\n' "$RG_TMP/keys/open.pem" >"$RG_TMP/open.conf"
printf 'store = redis://127.0.0.1:1/0\ndkim {\n  key = bad.test s1 %s\n}\n' "$RG_TMP/keys/small.pem" >"$RG_TMP/small.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/open.conf" dkim list 2>&1); rc=$?
is "$rc" 2 "dkim list: an open key file is a config error"
like "$out" "open.conf:3: dkim key .*open.pem: readable or writable by group or others \(mode 0644\).*chmod 600" \
    "the error names file, line, key and the fix"
out=$("$RG_BIN_CLI" -c "$RG_TMP/open.conf" check-config 2>&1); rc=$?
is "$rc" 2 "check-config: an open key file is an error"
like "$out" "open.conf:3: dkim key .*readable or writable by group or others" "check-config names the key"
out=$("$RG_BIN_CLI" -c "$RG_TMP/small.conf" dkim list 2>&1)
like "$out" "RSA key of 1024 bits; DKIM keys need 2048 bits or more" "an RSA-1024 key is refused"
if [ -x "$RG_BIN_MILTER" ]; then
    out=$("$RG_BIN_MILTER" -t -c "$RG_TMP/open.conf" 2>&1); rc=$?
    ok $((rc == 0)) "relayguard-milter refuses to start with an open key"
    like "$out" "readable or writable by group or others" "relayguard-milter says why"
fi

# dkim keygen: 0600 key, TXT record, and the key signs verifiably
kd="$RG_TMP/gen"; mkdir -p "$kd"
out=$("$RG_BIN_CLI" -c "$RG_TMP/rg.conf" dkim keygen Gen.Test s2026 --dir "$kd"); rc=$?
is "$rc" 0 "dkim keygen (RSA): exit 0"
is "$(stat -c %a "$kd/gen.test.s2026.pem")" 600 "dkim keygen: key mode 0600"
like "$out" 's2026\._domainkey\.gen\.test\. IN TXT \( "v=DKIM1; k=rsa; p=' "dkim keygen: prints the TXT record"
out=$("$RG_BIN_CLI" -c "$RG_TMP/rg.conf" dkim keygen gen.test e2026 --ed25519 --dir "$kd"); rc=$?
is "$rc" 0 "dkim keygen --ed25519: exit 0"
like "$out" 'v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=' "dkim keygen --ed25519: raw 32-byte key in the record"
"$RG_BIN_CLI" -c "$RG_TMP/rg.conf" dkim keygen gen.test s2026 --dir "$kd" >/dev/null 2>&1
is "$?" 2 "dkim keygen never overwrites a key"
"$RG_BIN_CLI" -c "$RG_TMP/rg.conf" dkim keygen 'bad/dom' s --dir "$kd" >/dev/null 2>&1
is "$?" 2 "dkim keygen: a bad domain is a usage error"
printf 'store = redis://127.0.0.1:1/0\ndkim {\n  key = gen.test s2026 %s\n  key = gen.test e2026 %s\n}\n' \
    "$kd/gen.test.s2026.pem" "$kd/gen.test.e2026.pem" >"$RG_TMP/gen.conf"
rg_milter_txt "$RG_TMP/gen.conf" "$RG_TMP/gen.txt"
printf 'From: a@gen.test\r\nSubject: generated keys\r\n\r\nbody\r\n' | "$SIGN" "$RG_TMP/gen.conf" gen.test >"$M/gen.signed"
is "$(rg_verify_dkimpy "$RG_TMP/gen.txt" "$M/gen.signed")" "ok 2" "generated keys: dkimpy verifies both"
rg_verify_opendkim "$RG_TMP/gen.txt" "$M/gen.signed"; ok $? "generated keys: OpenDKIM verifies"
done_testing
