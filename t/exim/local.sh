#!/bin/bash
# local.sh - local submission through a real Exim (PHP's mail() runs
# "sendmail -t" as the site's unix user): acl_not_smtp and rg_not_smtp
# count each message against the account of that unix user, refuse what
# the account may not send (sender domain, suppressed recipient, a used-up
# quota) and put X-PHP-Originating-Script into the event.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"
. "$top_srcdir/t/exim/common.sh"

rg_tmpdir
rg_exim_setup
rg_test_user rgphp
rg_test_user rgstranger
rg_start_redis
rg_start_sink

RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" </dev/null
chmod 644 "$RG_CONF"
cat >"$RG_TMP/accounts.conf" <<'EOF'
account site1 {
    local_users = rgphp
    domains     = example.com
    limit       = quota 3/1d name=q3
}
EOF
rg_cli load "$RG_TMP/accounts.conf" >/dev/null
ok $? "accounts loaded: site1 is the unix user rgphp"
rg_cli suppress add gone@example.net --reason complaint >/dev/null
ok $? "gone@example.net suppressed"

D="$RG_TMP/exim"
rg_exim_conf "$D"
# PHP passes the site's address with -f (sendmail_path = "sendmail -t -i -f ...")
sed -i 's/^qualify_domain = relay.test$/&\nuntrusted_set_sender = */' "$D/exim.conf"
rg_start_exim "$D"

# submit USER [exim args]: a message on stdin, as PHP's mail() sends it.
# Refused messages come back to the sender as Exim's error mail (-oem).
ACCEPTED=0
submit() {
    local user=$1 rc; shift
    printf 'From: Site <www@example.com>\nTo: someone@example.net\nSubject: order %s\nX-PHP-Originating-Script: 1001:contact-form.php\n\nThank you.\n' "$RANDOM" |
        rg_exim_as "$D" "$user" "$@" >"$RG_TMP/submit.out" 2>&1
    rc=$?
    [ $rc -ne 0 ] || ACCEPTED=$((ACCEPTED + 1))
    return $rc
}

submit rgphp -t -i -f www@example.com
ok $? "exim -t as rgphp: accepted"
submit rgphp -bm -i -f www@example.com other@example.net
ok $? "exim -bm as rgphp: accepted"
used=$(rg_cli --json limit show site1 2>/dev/null | grep -o '"used": *[0-9]*' | tr -d ' ')
is "$used" '"used":2' "both messages counted against site1, the account of unix user rgphp"

submit rgphp -bm -i -f www@example.com gone@example.net
rc=$?
out=$(cat "$RG_TMP/submit.out")
[ $rc -ne 0 ]
ok $? "exim -bm to a suppressed recipient: Exim refuses the message (exit $rc)"
like "$out" '550 5.7.1 <gone@example.net>: suppressed \(complaint since ' "the caller is told why"

submit rgphp -t -i
rc=$?
out=$(cat "$RG_TMP/submit.out")
[ $rc -ne 0 ]
ok $? "no -f: the sender is rgphp@relay.test, refused (exit $rc)"
like "$out" '553 5.7.1 <rgphp@relay.test>: sender domain relay.test is not allowed for account site1' \
   "the caller gets the sender-domain reply"

submit rgstranger -t -i -f www@example.com
rc=$?
out=$(cat "$RG_TMP/submit.out")
[ $rc -ne 0 ]
ok $? "a unix user of no account is refused (exit $rc)"
like "$out" '550 5.7.1 local user rgstranger has no relay account' "with the engine's reason"

submit rgphp -t -i -f www@example.com
ok $? "third message of a quota of 3: accepted"
submit rgphp -t -i -f www@example.com
rc=$?
out=$(cat "$RG_TMP/submit.out")
[ $rc -ne 0 ]
ok $? "fourth message: quota used up, not accepted (exit $rc)"
like "$out" '451 4.7.1 quota q3 \(3/1d\) of account site1 reached' "the caller is told to try later"
used=$(rg_cli --json limit show site1 2>/dev/null | grep -o '"used": *[0-9]*' | tr -d ' ')
is "$used" '"used":3' "refused messages were not charged"

# The event of a charged message names the PHP script and the local user.
ev=$(rg_redis --raw xrevrange rg:events + - | tr '\n' ' ')
like "$ev" 'script 1001:contact-form.php' "X-PHP-Originating-Script is in the event"
like "$ev" 'account site1' "the event names the account"

refused=4
rg_wait_sink_count $((ACCEPTED + refused)) 40 >/dev/null
got=$(grep -rL '^Subject: Mail failure' "$SINK_DIR/mail" | wc -l)
is "$got/$ACCEPTED" "3/3" "the 3 accepted messages reached the sink, nothing lost"
got=$(grep -rl '^Subject: Mail failure' "$SINK_DIR/mail" | wc -l)
is "$got" "$refused" "each refused message came back to its sender as Exim's error mail"
is "$(rg_exim_panic "$D"; cat "$D"/log-*/paniclog 2>/dev/null | grep -v 'lost privilege for using -C')" "" \
   "Exim's panic logs are empty"
rg_exim_asan_clean
ok $? "no sanitizer reports from the module"
done_testing
