#!/bin/bash
# t/bounce/verp-cli.sh - who gets a managed return path, as the admin sets
# it: the account field "bounces" (managed | off, default the bounce
# block's "bounces") through relayguard account add/set and relayguard load,
# the bounce block's "bounces" and template domain "bounces.%d" in
# check-config (errors with file:line), and "relayguard bounce token" and
# "relayguard bounce" with a template domain.
. "${top_srcdir:-$(dirname "$0")/../..}/t/lib.sh"
[ -x "$RG_BIN_CLI" ] || skip_all "relayguard not built ($RG_BIN_CLI)"
rg_tmpdir
rg_start_redis
CORPUS="$top_srcdir/t/bounce/corpus"
RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" <<EOC
bounce {
    domain  = bounces.%d
    bounces = managed
    key     = k1 0123456789abcdef0123456789abcdef
}
EOC
out=$(rg_cli check-config 2>&1)
ok $? "check-config: template domain bounces.%d and bounces = managed ($out)"

# --- the account field ---------------------------------------------------------
rg_cli account add acme --domains shop.test --managed-bounces >/dev/null
ok $? "account add --managed-bounces"
is "$(rg_redis HGET rg:acct:acme bounces)" managed "stored: bounces managed"
like "$(rg_cli --json account show acme)" '"bounces": "managed"' "account show --json: bounces managed"
rg_cli account set acme --no-managed-bounces >/dev/null
is "$(rg_redis HGET rg:acct:acme bounces)" off "account set --no-managed-bounces: off"
rg_cli account set acme --default-bounces >/dev/null
is "$(rg_redis HEXISTS rg:acct:acme bounces)" 0 "account set --default-bounces: the field is gone (the block's default)"
out=$(rg_cli account set acme --managed-bounces --no-managed-bounces 2>&1)
is "$?" 2 "--managed-bounces with --no-managed-bounces: usage error"
like "$out" 'exclude each other' "... saying why"

cat > "$RG_TMP/accounts.conf" <<'EOF'
account shop {
    domains = shop.test
    bounces = off
}
EOF
rg_cli load "$RG_TMP/accounts.conf" >/dev/null
ok $? "load: bounces = off"
is "$(rg_redis HGET rg:acct:shop bounces)" off "stored: off"
printf 'account bad {\n    domains = bad.test\n    bounces = sometimes\n}\n' > "$RG_TMP/bad-accounts.conf"
out=$(rg_cli load "$RG_TMP/bad-accounts.conf" 2>&1)
ok "$([ $? -ne 0 ]; echo $?)" "load: bounces = sometimes is refused"
like "$out" 'bad-accounts.conf:3: .*bad bounces .sometimes. \(managed, off or default\)' "... with file:line"

# --- config errors name the file and line -------------------------------------
printf 'bounce {\n  domain = bounces.%%d.example\n  key = k1 0123456789abcdef0123\n}\n' > "$RG_TMP/bad1.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/bad1.conf" check-config 2>&1)
like "$out" 'bad1.conf:2: bad domain .bounces\.%d\.example. .*template like bounces\.%d' \
    "config: %d only at the end"
printf 'bounce {\n  domain = %%d\n  key = k1 0123456789abcdef0123\n}\n' > "$RG_TMP/bad2.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/bad2.conf" check-config 2>&1)
like "$out" 'bad2.conf:2: bad domain' "config: the bare sender domain is not a bounce domain"
printf 'bounce {\n  domain = bounce.test\n  bounces = always\n  key = k1 0123456789abcdef0123\n}\n' > "$RG_TMP/bad3.conf"
out=$("$RG_BIN_CLI" -c "$RG_TMP/bad3.conf" check-config 2>&1)
like "$out" 'bad3.conf:3: bad bounces .always. \(managed or off\)' "config: bad bounces"

# --- a template domain end to end in the CLI -------------------------------------
RP=$(rg_cli bounce token acme billing@Shop.Test alice@example.net)
like "$RP" '^bounces\+k1-[a-z2-7]{39}@bounces\.shop\.test$' "bounce token: the sender's bounce domain ($RP)"
out=$(rg_cli bounce --rcpt "$RP" < "$CORPUS/postfix-user-unknown.eml" 2>&1)
like "$out" 'alice@example\.net: suppressed' "relayguard bounce: a DSN to bounces+TOKEN@bounces.shop.test suppresses"
like "$(rg_redis HGET rg:s:a:acme alice@example.net)" '^hard-bounce' "on acme's list"
tok=${RP#bounces+}; tok=${tok%@*}
out=$("$RG_BIN_CLI" -c "$RG_CONF" bounce --rcpt "bounces+$tok@elsewhere.test" < "$CORPUS/postfix-user-unknown.eml" 2>&1)
like "$out" 'ignored: no relayguard token' "a domain the template does not make is not ours"

# --- the record of a token for several recipients: one per line, in order
before=$(rg_redis --scan --pattern 'rg:v:*' | sort)
RP2=$(rg_cli bounce token acme billing@shop.test b@example.net C@Example.Net d@example.org)
like "$RP2" '^bounces\+k1-' "bounce token for three recipients ($RP2)"
key=$(comm -13 <(printf '%s\n' "$before") <(rg_redis --scan --pattern 'rg:v:*' | sort))
is "$(rg_redis HGET "$key" r)" "$(printf 'b@example.net\nc@example.net\nd@example.org')" \
    "its record: the recipients one per line, normalised ($key)"
is "$(rg_redis HGET "$key" a)" acme "its record: the account"
done_testing
