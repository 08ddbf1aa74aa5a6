#!/bin/bash
# smtp.sh - relayguard-exim.so in a real Exim daemon on loopback, with the
# ACLs of conf.examples/exim/acls.conf, PLAIN logins and swaks: an allowed
# domain is accepted, a foreign one refused, a limit of N lets exactly N
# through, a suppressed recipient is refused - with the codes of the
# Postfix tests - and every accepted message reaches the sink.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"
. "$top_srcdir/t/exim/common.sh"

rg_tmpdir
rg_exim_setup
rg_start_redis
rg_start_sink

RG_CONF="$RG_TMP/relayguard.conf"
rg_write_conf "$RG_CONF" </dev/null
cat >"$RG_TMP/accounts.conf" <<'EOF'
account alice {
    logins  = alice@relay.test
    domains = example.com
}
account rate3 {
    logins  = rate3@relay.test
    domains = example.com
    limit   = rate 3/1h name=r3
}
account hard2 {
    logins  = hard2@relay.test
    domains = example.com
    limit   = quota 2/1d hard name=q2
}
account multi {
    logins  = multi@relay.test
    domains = example.com
    limit   = quota 10/1d per=rcpt name=qr
}
EOF
rg_cli load "$RG_TMP/accounts.conf" >/dev/null
ok $? "accounts loaded"
rg_cli suppress add gone@example.net --reason hard-bounce >/dev/null
ok $? "gone@example.net suppressed"

D="$RG_TMP/exim"
rg_exim_conf "$D"
rg_start_exim "$D"
P=$EXIM_PORT

r=$(rg_exim_send "$P" alice@relay.test a@example.com b@example.net)
like "$r" '^250 .*id=' "allowed sender domain: 250 queued"
r=$(rg_exim_send "$P" alice@relay.test a@example.org b@example.net)
is "$r" "553 5.7.1 <a@example.org>: sender domain example.org is not allowed for account alice" \
   "foreign sender domain: 553 5.7.1 at MAIL, the text of the other adapters"
r=$(rg_exim_send "$P" nobody@relay.test a@example.com b@example.net)
is "$r" "550 5.7.1 login nobody@relay.test has no relay account" "login of no account: 550 5.7.1"
r=$(rg_exim_send "$P" "" a@example.com b@example.net)
like "$r" '^550 relay not permitted' "unauthenticated client of no account: not relayed (dunno, Exim's own rule)"
r=$(rg_exim_send "$P" alice@relay.test a@example.com gone@example.net)
like "$r" '^550 5.7.1 <gone@example.net>: suppressed \(hard-bounce since [0-9-]{10}\)$' \
   "suppressed recipient: 550 5.7.1 with reason and date"
r=$(rg_exim_send "$P" alice@relay.test a@example.com b@example.net --header "From: Eve <eve@evil.test>")
is "$r" "550 5.7.1 header From domain evil.test is not allowed for account alice" \
   "foreign header From: 550 5.7.1 at end of data"

# A limit of N lets exactly N through.
got=
for i in 1 2 3 4; do got="$got$(rg_code "$(rg_exim_send "$P" rate3@relay.test a@example.com "r$i@example.net")") "; done
is "$got" "250 250 250 451 " "rate 3/1h: exactly 3 accepted, the 4th deferred"
r=$(rg_exim_send "$P" rate3@relay.test a@example.com r5@example.net)
like "$r" '^451 4.7.1 rate limit r3 \(3/1h\) of account rate3 reached, try again in ' "soft limit: 451 4.7.1 with the wait"
got=
for i in 1 2 3; do got="$got$(rg_code "$(rg_exim_send "$P" hard2@relay.test a@example.com "h$i@example.net")") "; done
is "$got" "250 250 550 " "hard quota 2/1d: exactly 2 accepted, the 3rd refused"

# Several messages on one connection, several recipients each: each message
# is charged once with its recipient count (per=rcpt).
out=$(python3 - "$P" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), "client.test", timeout=30)
s.login("multi@relay.test", "secret")
res = []
for n, rcpts in ((1, ["m1@example.net", "m2@example.net", "m3@example.net"]), (2, ["m4@example.net", "m5@example.net"])):
    msg = "From: <a@example.com>\r\nSubject: %d\r\n\r\nbody\r\n" % n
    refused = s.sendmail("a@example.com", rcpts, msg)
    res.append("ok" if not refused else "refused")
s.quit()
print(" ".join(res))
PY
)
is "$out" "ok ok" "two messages on one connection (3 and 2 recipients) accepted"
used=$(rg_cli --json limit show multi 2>/dev/null | grep -o '"used": *[0-9]*' | tr -d ' ')
is "$used" '"used":5' "per=rcpt quota: 5 recipients charged, each message once"

# A client sending bytes that are not UTF-8 in an address: the module
# refuses the argument, the expansion fails, Exim defers (never accepts
# unchecked) and keeps serving.
r=$(python3 - "$P" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline().decode("latin-1").rstrip("\r\n")
        lines.append(l)
        if len(l) < 4 or l[3] != "-":
            return lines[-1]
reply()
for cmd in (b"EHLO client.test", b"AUTH PLAIN AGFsaWNlQHJlbGF5LnRlc3QAc2VjcmV0", b"MAIL FROM:<a@example.com>"):
    s.sendall(cmd + b"\r\n"); reply()
s.sendall(b"RCPT TO:<b\xff\xfe@example.net>\r\n")
print(reply()[:3])
s.sendall(b"QUIT\r\n")
PY
)
is "$r" 451 "a recipient that is not UTF-8: 451, not accepted"
like "$(rg_exim_send "$P" alice@relay.test a@example.com after@example.net)" '^250 ' "and Exim goes on accepting"
grep -q 'rg_rcpt: argument 5 (RECIPIENT) is not valid UTF-8' "$D/log/mainlog" "$D/log/paniclog" 2>/dev/null
ok $? "Exim's log says which argument was bad"

# rg_preload: the daemon holds the accounts and every connection process
# inherits them, so 10 connections do not load the accounts 10 times (the
# daemon checks the generation every 2 s, and reloads when it moved).
evals() { rg_redis info commandstats | sed -n 's/^cmdstat_eval:calls=\([0-9]*\),.*/\1/p'; }
e0=$(evals); e0=${e0:-0}
for i in $(seq 1 10); do rg_send "$P" alice@relay.test a@example.com "p$i@example.net" --quit-after RCPT >/dev/null; done
e1=$(evals)
loads=$((e1 - e0))
[ "$loads" -lt 10 ]
ok $? "10 connections, $loads account loads: the connection processes inherit the daemon's accounts"

# Nothing lost: every accepted message reaches the sink.
accepted=$(grep -c ' <= ' "$D/log/mainlog")
got=$(rg_wait_sink_count "$accepted" 30)
is "$got" "$accepted" "every message Exim accepted reached the sink ($got of $accepted)"
[ "$accepted" -eq 9 ]
ok $? "Exim accepted 9 messages ($accepted)"

# Events carry Exim's queue id.
qid=$(grep -o '[0-9A-Za-z]\{6\}-[0-9A-Za-z]\{6\}-[0-9A-Za-z]\{2\} <= ' "$D/log/mainlog" | head -1 | cut -d' ' -f1)
n=$(rg_redis --raw xrange rg:events - + | grep -cx "$qid")
[ -n "$qid" ] && [ "$n" -ge 1 ]
ok $? "the charge event carries Exim's queue id ($qid)"

# rg_preload: an account changed after the daemon read it is seen by new
# connections (the daemon checks the generation every 2 s and reloads when
# it moved; a connection process that sees a newer one looks up its own).
rg_cli account set alice --domains example.org >/dev/null
ok $? "alice's domains changed to example.org"
refused_now() { [ "$(rg_code "$(rg_exim_send "$P" alice@relay.test a@example.com chg@example.net)")" = 553 ]; }
rg_wait_for 20 refused_now
ok $? "rg_preload: the changed account is seen: example.com now 553 for alice"
# (a connection forked before the daemon's next check may still decide on
# the old copy at MAIL: the window is those 2 s)
accepted_now() { [ "$(rg_code "$(rg_exim_send "$P" alice@relay.test a@example.org chg2@example.net)")" = 250 ]; }
rg_wait_for 20 accepted_now
ok $? "and example.org accepted"

is "$(rg_exim_panic "$D" | grep -v 'rg_rcpt: argument 5 (RECIPIENT) is not valid UTF-8')" "" \
   "Exim's panic log holds nothing else"
rg_exim_asan_clean
ok $? "no sanitizer reports from the module"
done_testing
