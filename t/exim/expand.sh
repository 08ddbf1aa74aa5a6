#!/bin/bash
# expand.sh - every function of relayguard-exim.so through a real Exim's
# ${dlfunc} (exim -be): verdicts in ${extract} form with the same codes and
# texts as the other adapters, the DKIM values, and bad arguments (missing,
# empty, very long, not UTF-8, a broken relayguard.conf) as clear expansion
# errors, never a crash of Exim.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"
. "$top_srcdir/t/exim/common.sh"

rg_tmpdir
rg_exim_setup
rg_start_redis

RG_CONF="$RG_TMP/relayguard.conf"
mkdir -p "$RG_TMP/keys"; chmod 700 "$RG_TMP/keys"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$RG_TMP/keys/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$RG_TMP/keys/ed.pem" 2>/dev/null
chmod 600 "$RG_TMP/keys/"*.pem
rg_write_conf "$RG_CONF" <<EOF
dkim {
    key = example.com rsa1 $RG_TMP/keys/rsa.pem
    key = example.com ed1 $RG_TMP/keys/ed.pem
    key = other.test o1 $RG_TMP/keys/rsa.pem
}
EOF
cat >"$RG_TMP/accounts.conf" <<'EOF'
account alice {
    logins  = alice@relay.test
    domains = example.com
    limit   = quota 2/1d name=q2
}
account bob {
    logins  = bob@relay.test
    domains = example.com, .example.org
}
account netacct {
    client_networks = 192.0.2.0/24
    domains = net.example
}
account local {
    local_users = rgphp
    domains = example.com
}
EOF
rg_cli load "$RG_TMP/accounts.conf" >/dev/null
ok $? "accounts loaded"
rg_cli suppress add gone@example.net --reason hard-bounce >/dev/null
ok $? "a suppressed recipient"

D="$RG_TMP/exim"
rg_exim_conf "$D"
SO=$RG_SO C=$RG_CONF
be() { rg_exim_be "$D" "$1"; }
fn() { local f=$1; shift; local a= x; for x in "$@"; do a="$a{$x}"; done; be "\${dlfunc{$SO}{$f}$a}"; }

# --- verdicts ----------------------------------------------------------
is "$(fn rg_mail "$C" alice@relay.test 127.0.0.1 a@example.com -1)" \
   "action=accept reason=ok account=\"alice\"" "rg_mail: allowed sender domain is accepted"
is "$(fn rg_mail "$C" alice@relay.test 127.0.0.1 a@example.org 1000)" \
   'action=deny reason=sender_domain account="alice" reply="553 5.7.1 <a@example.org>: sender domain example.org is not allowed for account alice"' \
   "rg_mail: foreign sender domain is 553 5.7.1, as from the other adapters"
is "$(fn rg_mail "$C" nobody@relay.test 127.0.0.1 a@example.com -1)" \
   'action=deny reason=unknown_account account="" reply="550 5.7.1 login nobody@relay.test has no relay account"' \
   "rg_mail: unknown login is 550 5.7.1"
is "$(fn rg_rcpt "$C" "" 198.51.100.7 a@example.com b@example.net -1)" \
   "action=dunno reason=no_account account=\"\"" "rg_rcpt: unauthenticated client of no account is dunno"
is "$(fn rg_rcpt "$C" "" 192.0.2.9 x@net.example b@example.net -1)" \
   "action=accept reason=ok account=\"netacct\"" "rg_rcpt: a client network is its account"
is "$(fn rg_rcpt "$C" bob@relay.test 127.0.0.1 b@sub.example.org b@example.net -1)" \
   "action=accept reason=ok account=\"bob\"" "rg_rcpt: allowed recipient is accepted"
like "$(fn rg_rcpt "$C" bob@relay.test 127.0.0.1 b@example.com gone@example.net -1)" \
   '^action=deny reason=suppressed account="bob" reply="550 5.7.1 <gone@example.net>: suppressed \(hard-bounce since [0-9]{4}-[0-9]{2}-[0-9]{2}\)"$' \
   "rg_rcpt: suppressed recipient is 550 5.7.1 with reason and date"
is "$(fn rg_data "$C" bob@relay.test 127.0.0.1 b@example.com 1TEST1-000002-AB 1200 'Eve <eve@evil.test>')" \
   'action=deny reason=header_from account="bob" reply="550 5.7.1 header From domain evil.test is not allowed for account bob"' \
   "rg_data: foreign header From is 550 5.7.1"

# One message as Exim runs it, in one process: MAIL, RCPT (reservation
# under the module's message id), DATA (charged once under the queue id).
# alice has a quota of 2 messages a day.
msg() {
    local qid=$1 s="{$C}{alice@relay.test}{127.0.0.1}{a@example.com}"
    rg_exim_be "$D" "\${dlfunc{$SO}{rg_mail}$s{-1}}" "\${dlfunc{$SO}{rg_rcpt}$s{b@example.net}{-1}}" \
        "\${dlfunc{$SO}{rg_data}$s{$qid}{1200}{Alice <a@example.com>}}" | tr '\n' '|'
}
ok3="action=accept reason=ok account=\"alice\"|action=accept reason=ok account=\"alice\"|action=accept reason=ok account=\"alice\"|"
is "$(msg 1TEST1-000001-AB)" "$ok3" "message 1 of a quota of 2: MAIL, RCPT, DATA accepted"
is "$(msg 1TEST1-000003-AB)" "$ok3" "message 2 of a quota of 2: accepted (its RCPT reservation was charged once)"
like "$(msg 1TEST1-000004-AB)" \
   '^action=defer reason=quota account="alice" reply="451 4.7.1 quota q2 \(2/1d\) of account alice reached, try again in ' \
   "message 3: quota of 2 used up is 451 4.7.1 at MAIL"
is "$(rg_cli --json limit show alice 2>/dev/null | grep -o '"used": *[0-9]*' | tr -d ' ')" '"used":2' \
   "relayguard limit show: 2 used, each message charged once"
u=$(rg_redis --raw xrange rg:events - + | grep -c 1TEST1-000001-AB)
[ "$u" -ge 1 ]
ok $? "the queue id (\$message_exim_id) is in the events"
like "$(fn rg_not_smtp "$C" rgphp a@example.com 1TEST1-000004-AB 100 a@example.com)" \
   '^Failed: relayguard: rg_not_smtp: the message has no recipients' \
   "rg_not_smtp outside acl_not_smtp: a clear error (the recipients come from Exim)"

# --- DKIM --------------------------------------------------------------
is "$(fn rg_dkim_domain "$C" alice 'Alice <a@EXAMPLE.com>')" "example.com" \
   "rg_dkim_domain: account allowed for the From domain: the domain"
is "$(fn rg_dkim_domain "$C" alice 'x@other.test')" "" \
   "rg_dkim_domain: a domain with a key but not the account's: empty (Exim does not sign)"
is "$(fn rg_dkim_domain "$C" "" 'a@example.com')" "" "rg_dkim_domain: no account: empty"
is "$(fn rg_dkim_domain "$C" nosuch 'a@example.com')" "" "rg_dkim_domain: unknown account: empty"
is "$(fn rg_dkim_selector "$C" alice example.com)" "rsa1 : ed1" \
   "rg_dkim_selector: every key of the domain (RSA + Ed25519)"
is "$(fn rg_dkim_key "$C" alice example.com ed1)" "$RG_TMP/keys/ed.pem" "rg_dkim_key: the key file of the selector"
is "$(fn rg_dkim_key "$C" alice example.com nosuch)" "" "rg_dkim_key: unknown selector: empty"
is "$(fn rg_dkim_key "$C" local other.test o1)" "" "rg_dkim_key: account not allowed for the domain: empty"

# --- preload (smtp_accept_max_per_host, in the daemon) -----------------
is "$(fn rg_preload "$C" 20)" "20" "rg_preload: yields the per-host limit it is given"
is "$(fn rg_preload "$C" "")" "" "rg_preload: empty limit (none) stays empty"
is "$(fn rg_preload "$RG_TMP/missing.conf" 5)" "5" \
   "rg_preload with an unreadable relayguard.conf: still the limit (the daemon keeps accepting)"
is "$(fn rg_preload "$C" 2x)" "Failed: relayguard: rg_preload: argument 2 (MAX_PER_HOST) is not a number: '2x'" \
   "rg_preload: a limit that is not a number"

# --- bad arguments -----------------------------------------------------
is "$(fn rg_rcpt "$C" alice@relay.test 127.0.0.1 a@example.com)" \
   "Failed: relayguard: rg_rcpt: 4 arguments given, 6 expected: CONFIG LOGIN CLIENT SENDER RECIPIENT SIZE" \
   "missing arguments: a clear error naming them"
is "$(fn rg_data "$C")" \
   "Failed: relayguard: rg_data: 1 argument given, 7 expected: CONFIG LOGIN CLIENT SENDER QUEUE_ID SIZE FROM" \
   "rg_data with one argument"
is "$(fn rg_rcpt "$C" alice@relay.test 127.0.0.1 a@example.com "" -1)" \
   "Failed: relayguard: rg_rcpt: argument 5 (RECIPIENT) is empty" "empty recipient"
is "$(fn rg_data "$C" alice@relay.test 127.0.0.1 a@example.com "" 10 a@example.com)" \
   "Failed: relayguard: rg_data: argument 5 (QUEUE_ID) is empty (pass \$message_exim_id)" "empty queue id"
is "$(fn rg_not_smtp "$C" "" a@example.com 1TEST1-000005-AB 10 a@example.com)" \
   "Failed: relayguard: rg_not_smtp: argument 2 (USER) is empty (pass \$originator_uid)" "empty local user"
printf 'x%.0s' $(seq 1 600) >"$RG_TMP/long600"; printf 'y%.0s' $(seq 1 9000) >"$RG_TMP/long9000"
is "$(fn rg_rcpt "$C" alice@relay.test 127.0.0.1 a@example.com "\${readfile{$RG_TMP/long600}}@example.net" -1)" \
   "Failed: relayguard: rg_rcpt: argument 5 (RECIPIENT) is 612 bytes long, at most 511 allowed" \
   "very long recipient"
is "$(fn rg_data "$C" alice@relay.test 127.0.0.1 a@example.com 1TEST1-000006-AB 10 "\${readfile{$RG_TMP/long9000}}")" \
   "Failed: relayguard: rg_data: argument 7 (FROM) is 9000 bytes long, at most 8192 allowed" \
   "very long From header"
is "$(fn rg_rcpt "$C" alice@relay.test 127.0.0.1 a@example.com $'b\xff\xfe@example.net' -1)" \
   "Failed: relayguard: rg_rcpt: argument 5 (RECIPIENT) is not valid UTF-8 text (or holds control bytes)" \
   "recipient that is not UTF-8"
is "$(fn rg_mail "$C" $'al\xc3ice' 127.0.0.1 a@example.com -1)" \
   "Failed: relayguard: rg_mail: argument 2 (LOGIN) is not valid UTF-8 text (or holds control bytes)" \
   "login that is not UTF-8"
is "$(fn rg_mail "$C" alice@relay.test 127.0.0.1 a@example.com 12x)" \
   "Failed: relayguard: rg_mail: argument 5 (SIZE) is not a number: '12x'" "size that is not a number"
is "$(fn rg_mail "$RG_TMP/missing.conf" alice@relay.test 127.0.0.1 a@example.com -1)" \
   "Failed: relayguard: $RG_TMP/missing.conf: cannot open: No such file or directory" \
   "missing relayguard.conf"
printf 'store = redis://127.0.0.1:1/0\nbogus_key = 1\n' >"$RG_TMP/bad.conf"
like "$(fn rg_mail "$RG_TMP/bad.conf" alice@relay.test 127.0.0.1 a@example.com -1)" \
   "^Failed: relayguard: $RG_TMP/bad.conf:2: " "broken relayguard.conf: the error names file and line"
is "$(fn rg_dkim_key "$C" alice example.com "")" \
   "Failed: relayguard: rg_dkim_key: argument 4 (SELECTOR) is empty (pass \$dkim_selector)" "empty DKIM selector"
is "$(be "\${dlfunc{$SO}{rg_nosuch}{x}}")" \
   "Failed: dlsym \"rg_nosuch\" in \"$SO\" failed: $SO: undefined symbol: rg_nosuch" \
   "an unknown function is Exim's own error"

# One Exim process, many calls: the config and the account are read once
# (without rg_preload a process looks up only the account of its login).
expr="\${dlfunc{$SO}{rg_mail}{$C}{bob@relay.test}{127.0.0.1}{b@example.com}{-1}}"
loads() { grep -Ec 'loaded [0-9]+ accounts|looked up [0-9]+ account' "$D/be.stderr"; }
before=$(loads)
out=$(rg_exim_be "$D" "$expr" "$expr" "$expr" "$expr" | grep -c '^action=accept ')
after=$(loads)
is "$out/$((after - before))" "4/1" "four calls in one Exim process: four verdicts, config and account loaded once"
like "$(grep -E 'looked up [0-9]+ account' "$D/be.stderr" | tail -1)" \
   'looked up 1 account\(s\) for l:bob@relay.test' \
   "a process without rg_preload reads only the account of its login, not all of them"

# Never a crash: no panic log, and (sanitizer builds) no reports.
is "$(rg_exim_panic "$D")" "" "Exim's panic log is empty"
rg_exim_asan_clean
ok $? "no sanitizer reports from the module"
done_testing
