#!/bin/bash
# bounce.sh - the bounce loop through a real Exim: the pipe router and
# transport of conf.examples/exim/bounce.conf and the RCPT rule of
# acls.conf.  A DSN for a minted bounces+TOKEN address, sent to the Exim
# daemon, goes through the pipe to "relayguard bounce" and the recipient it
# names is suppressed; an unsubscribe+TOKEN message unsubscribes; a forged
# token is consumed without suppressing anything; another local part of
# the bounce domain is refused at RCPT; and while Redis does not answer,
# relayguard bounce exits EX_TEMPFAIL, so the DSN stays in Exim's queue
# and is dealt with on the next attempt - never lost.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"
. "$top_srcdir/t/exim/common.sh"

rg_tmpdir
rg_exim_setup
rg_start_redis
rg_start_sink

# The pipe runs "relayguard bounce" as Debian-exim: it reads the config and
# the key, nothing else.
mkdir -m 755 "$RG_TMP/etc"
openssl rand -hex 32 >"$RG_TMP/etc/bounce-k1.key"
chown Debian-exim "$RG_TMP/etc/bounce-k1.key"; chmod 600 "$RG_TMP/etc/bounce-k1.key"
RG_CONF="$RG_TMP/etc/relayguard.conf"
rg_write_conf "$RG_CONF" <<EOC
bounce {
    domain = bounce.test
    key = k1 $RG_TMP/etc/bounce-k1.key
}
EOC
chmod 644 "$RG_CONF"
cat >"$RG_TMP/accounts.conf" <<'EOF2'
account acme {
    logins  = acme@relay.test
    domains = shop.test
}
EOF2
rg_cli load "$RG_TMP/accounts.conf" >/dev/null
ok $? "accounts loaded"

# the VERP addresses, as the module or the milter would mint them
rp=$(rg_cli bounce token acme billing@shop.test alice@example.net 2>&1)
like "$rp" '^bounces\+k1-[a-z0-9]+@bounce\.test$' "return path minted: $rp"
rp2=$(rg_cli bounce token acme billing@shop.test carol@example.net 2>&1)
un=$(rg_cli bounce token acme billing@shop.test bob@example.net --unsubscribe 2>&1)
like "$un" '^unsubscribe\+k1-[a-z0-9]+@bounce\.test$' "unsubscribe address minted: $un"

# Exim with the three pieces of bounce.conf, as shipped, for this instance
D="$RG_TMP/exim"
RG_EXIM_MAIN=$(rg_exim_example "$top_srcdir/conf.examples/exim/bounce.conf" "main section" |
    sed -e "s|^RELAYGUARD_BOUNCE_DOMAIN *=.*|RELAYGUARD_BOUNCE_DOMAIN = bounce.test|" \
        -e "s|^RELAYGUARD_BIN *=.*|RELAYGUARD_BIN = $RG_BIN_CLI|" \
        -e "s|^RELAYGUARD_BOUNCE_USER *=.*|RELAYGUARD_BOUNCE_USER = Debian-exim|")
RG_EXIM_ROUTERS=$(rg_exim_example "$top_srcdir/conf.examples/exim/bounce.conf" routers)
RG_EXIM_TRANSPORTS=$(rg_exim_example "$top_srcdir/conf.examples/exim/bounce.conf" transports)
grep -q '^RELAYGUARD_BOUNCE_DOMAIN = bounce.test' <<<"$RG_EXIM_MAIN" && grep -q 'driver *= *pipe' <<<"$RG_EXIM_TRANSPORTS"
ok $? "bounce.conf's main section, router and transport found"
rg_exim_conf "$D"
# no queue runner: the deferred DSN below is retried when the test says so
RG_EXIM_QUEUE_RUN="" rg_start_exim "$D"
P=$EXIM_PORT

# a DSN as a remote MTA sends it: null sender, to the return path
dsn() {     # dsn TO FILE
    sed "s|^To: bounces+.*|To: $1|" "$top_srcdir/t/bounce/corpus/postfix-user-unknown.eml" >"$2"
}
suppressed() { rg_redis HGET rg:s:a:acme "$1"; }

dsn "$rp" "$RG_TMP/dsn1.eml"
r=$(rg_exim_send "$P" "" "<>" "$rp" --data "$RG_TMP/dsn1.eml")
like "$r" '^250 .*id=' "DSN to the return path: accepted by Exim"
rg_wait_for 20 test -n "$(suppressed alice@example.net)"
like "$(suppressed alice@example.net)" '^hard-bounce\|' \
   "Exim -> pipe -> relayguard bounce: the recipient the DSN names is suppressed"
grep -F "<$rp>" "$D/log/mainlog" | grep -q ' => .* R=relayguard_bounce T=relayguard_bounce '
ok $? "Exim logs the delivery through the relayguard_bounce router and transport"

# an unsubscribe (RFC 8058 one-click or a mailto: reply) to unsubscribe+TOKEN
r=$(rg_exim_send "$P" "" "bob@example.net" "$un" --header "Subject: unsubscribe" --body "unsubscribe")
like "$r" '^250 .*id=' "mail to the unsubscribe address: accepted"
rg_wait_for 20 test -n "$(suppressed bob@example.net)"
like "$(suppressed bob@example.net)" '^unsubscribe\|' "the recipient of the unsubscribe token is suppressed"

# a forged token: accepted (it looks like ours), consumed by relayguard
# bounce with a log line and an event, nothing suppressed, nothing queued
forged="bounces+k1-aeaqaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@bounce.test"
dsn "$forged" "$RG_TMP/dsn2.eml"
r=$(rg_exim_send "$P" "" "<>" "$forged" --data "$RG_TMP/dsn2.eml")
like "$r" '^250 .*id=' "DSN to a forged token: accepted"
rg_wait_for 20 sh -c "[ \$(grep -c ' Completed' '$D/log/mainlog') -ge 3 ]"
is "$(grep -c ' Completed' "$D/log/mainlog")" 3 "the forged-token DSN completed (consumed, not bounced or frozen)"
is "$(rg_redis HLEN rg:s:a:acme)" 2 "nothing more suppressed for a forged token"

# another local part of the bounce domain is not ours: refused at RCPT
r=$(rg_exim_send "$P" "" "<>" "postmaster@bounce.test")
like "$r" '^550 ' "another local part of the bounce domain: 550 at RCPT"

# Redis does not answer (SIGSTOP) while the DSN is delivered: relayguard
# bounce gives up after store_timeout with EX_TEMPFAIL, Exim defers and
# keeps it; once Redis answers, the next attempt suppresses.  The DSN is
# queued (-odq, SMTP on stdin) so that its delivery attempt is ours.
dsn "$rp2" "$RG_TMP/dsn3.eml"
{
    printf 'HELO client.test\r\nMAIL FROM:<>\r\nRCPT TO:<%s>\r\nDATA\r\n' "$rp2"
    sed -e 's/$/\r/' -e 's/^\./../' "$RG_TMP/dsn3.eml"
    printf '.\r\nQUIT\r\n'
} | rg_exim -C "$D/exim.conf" -odq -bs >"$RG_TMP/bs.out" 2>&1
id=$(sed -n 's/^250 OK id=\([^ \r]*\).*/\1/p' "$RG_TMP/bs.out" | tr -d '\r')
like "$id" '^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2,4}$' "a third DSN queued: $id"
kill -STOP "$REDIS_PID"
rg_exim -C "$D/exim.conf" -M "$id" >/dev/null 2>&1
kill -CONT "$REDIS_PID"
grep -F "$id == " "$D/log/mainlog" | grep -F "<$rp2>" |
    grep -q 'R=relayguard_bounce T=relayguard_bounce defer .* returned 75 '
ok $? "Redis hung: the pipe exits 75 (EX_TEMPFAIL) and Exim defers the DSN"
rg_exim -C "$D/exim.conf" -bp 2>/dev/null | grep -q "$id"
ok $? "the deferred DSN is still in Exim's queue"
is "$(suppressed carol@example.net)" "" "nothing suppressed while Redis did not answer"
rg_exim -C "$D/exim.conf" -M "$id" >/dev/null 2>&1
like "$(suppressed carol@example.net)" '^hard-bounce\|' "next attempt with Redis back: suppressed"
is "$(rg_exim -C "$D/exim.conf" -bpc 2>/dev/null)" 0 "Exim's queue is empty: every DSN dealt with"

is "$(rg_exim_panic "$D")" "" "Exim's panic log is empty"
rg_exim_asan_clean
ok $? "no sanitizer reports from the module"
done_testing
