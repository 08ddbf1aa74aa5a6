#!/bin/bash
# dkim.sh - Exim signs with relayguard's key table: the smtp transport's
# dkim_domain, dkim_selector and dkim_private_key come from rg_dkim_*, so a
# message of an account allowed for its From domain gets one signature per
# key of the domain (RSA and Ed25519), which dkimpy verifies; a message of
# an account whose domain has no key is sent unsigned.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"
. "$top_srcdir/t/exim/common.sh"
RG_PY=/usr/bin/python3
"$RG_PY" -c 'import dkim, nacl' 2>/dev/null || skip_all "python3-dkim/python3-nacl not installed"
rg_require openssl

rg_tmpdir
rg_exim_setup
rg_start_redis
rg_start_sink

# Exim delivers as Debian-exim: the keys are that user's, mode 600 (relayguard
# refuses keys readable by group or others).
K="$RG_TMP/keys"
mkdir -p "$K"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$K/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$K/ed.pem" 2>/dev/null
chmod 600 "$K"/*.pem; chmod 700 "$K"
chown -R Debian-exim "$K"

RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" <<EOF
dkim {
    key = example.com rsa1 $K/rsa.pem
    key = example.com ed1 $K/ed.pem
}
EOF
chmod 644 "$RG_CONF"
cat >"$RG_TMP/accounts.conf" <<'EOF'
account alice {
    logins  = alice@relay.test
    domains = example.com
}
account bob {
    logins  = bob@relay.test
    domains = example.org
}
EOF
rg_cli load "$RG_TMP/accounts.conf" >/dev/null
ok $? "accounts loaded"
"$RG_BIN_CLI" -c "$RG_CONF" --json dkim list | "$RG_PY" -c '
import json, sys
for k in json.load(sys.stdin):
    print(k["selector"] + "._domainkey." + k["domain"], k["txt"])' >"$RG_TMP/keys.txt"
is "$(wc -l <"$RG_TMP/keys.txt")" 2 "the public keys of both selectors"

D="$RG_TMP/exim"
rg_exim_conf "$D"
rg_start_exim "$D"

r=$(rg_exim_send "$EXIM_PORT" alice@relay.test a@example.com signed@example.net \
    --header "From: Alice <a@example.com>" --header "Subject: signed by Exim")
like "$r" '^250 ' "alice's message accepted"
r=$(rg_exim_send "$EXIM_PORT" bob@relay.test b@example.org unsigned@example.net \
    --header "From: Bob <b@example.org>" --header "Subject: no key for example.org")
like "$r" '^250 ' "bob's message accepted"
n=$(rg_wait_sink_count 2 30)
is "$n" 2 "both messages reached the sink"

signed=$(grep -rl '^Subject: signed by Exim' "$SINK_DIR/mail" | head -1)
unsigned=$(grep -rl '^Subject: no key for example.org' "$SINK_DIR/mail" | head -1)
sigs=$(grep -c '^DKIM-Signature:' "$signed" 2>/dev/null)
is "$sigs" 2 "alice's message carries two DKIM signatures (RSA and Ed25519)"
like "$(grep -A3 '^DKIM-Signature:' "$signed" | tr -d '\n\t ')" 'a=rsa-sha256.*d=example\.com|d=example\.com.*a=rsa-sha256' \
   "one is rsa-sha256 for example.com"
like "$(grep -A3 '^DKIM-Signature:' "$signed" | tr -d '\n\t ')" 'a=ed25519-sha256' "one is ed25519-sha256"
out=$("$RG_PY" "$top_srcdir/t/milter/dkimverify.py" "$RG_TMP/keys.txt" "$signed" 2>&1)
ok $? "dkimpy verifies every signature Exim made with the keys relayguard chose"
diag "$out"
is "$(grep -c '^DKIM-Signature:' "$unsigned" 2>/dev/null)" 0 "bob's message (no key for example.org) is not signed"

is "$(rg_exim_panic "$D")" "" "Exim's panic log is empty"
rg_exim_asan_clean
ok $? "no sanitizer reports from the module"
done_testing
