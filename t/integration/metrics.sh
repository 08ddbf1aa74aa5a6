#!/bin/bash
# metrics.sh - relayguard-policyd's Prometheus endpoint, scraped over HTTP
# and parsed with the Prometheus client library's own text parser:
#   decisions counted by verdict and reason, by account (bounded: the
#   accounts past metrics_accounts are counted as "_other"), the latency
#   histogram consistent with the decisions, Redis errors while Redis is
#   gone and the reconnect after it is back; 404 / 405 for other requests.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/t/lib.sh"

rg_require redis-server redis-cli curl /usr/bin/python3
/usr/bin/python3 -c 'import prometheus_client.parser' 2>/dev/null ||
    skip_all "python3-prometheus-client is not installed"
rg_require_built "$RG_BIN_POLICYD" "$RG_BIN_CLI"

rg_tmpdir
rg_start_redis_aof
MPORT=$(rg_free_port)
rg_write_conf "$RG_TMP/relayguard.conf" <<EOF
metrics_accounts = 2
policyd {
    metrics = inet:127.0.0.1:$MPORT
}
EOF
RG_CONF="$RG_TMP/relayguard.conf"
cat >"$RG_TMP/accounts.conf" <<'EOF'
account alice {
    logins  = alice@relay.test
    domains = example.com
}
account bob {
    logins  = bob@relay.test
    domains = example.com
}
account carol {
    logins  = carol@relay.test
    domains = example.com
}
EOF
out=$(rg_cli load "$RG_TMP/accounts.conf" 2>&1)
ok $? "relayguard load accounts.conf"
[ -z "$out" ] || diag "$out"
rg_cli suppress add gone@example.net --reason hard-bounce >/dev/null
ok $? "suppress gone@example.net"

rg_start_policyd "$RG_CONF"
rg_wait_port "$MPORT" 10
ok $? "the metrics endpoint listens on 127.0.0.1:$MPORT"

n=0
q() {  # q LOGIN SENDER RECIPIENT: one RCPT request, prints the action
    n=$((n + 1))
    rg_policy_query "$POLICYD_PORT" protocol_state=RCPT client_address=127.0.0.1 \
        "sasl_username=$1" "sender=$2" "recipient=$3" "instance=m.$n" size=0
}
a=$(rg_wait_policyd_ready "$POLICYD_PORT" protocol_state=RCPT client_address=127.0.0.1 \
    sasl_username=alice@relay.test sender=a@example.com recipient=r0@example.net instance=m.0)
like "$a" '^DUNNO' "policyd ready: '$a'"
for i in 1 2 3; do q alice@relay.test a@example.com "r$i@example.net" >/dev/null; done
like "$(q alice@relay.test a@foreign.test r@example.net)" '^553' "a foreign sender domain: 553"
like "$(q bob@relay.test b@example.com gone@example.net)" '^550' "a suppressed recipient: 550"
like "$(q carol@relay.test c@example.com r@example.net)" '^DUNNO' "carol accepted"

# scrape URL: the body, parsed; prints "name{labels} value" lines, sorted
scrape() {
    curl -sf "http://127.0.0.1:$MPORT/metrics" >"$RG_TMP/scrape.txt" || return 1
    /usr/bin/python3 - "$RG_TMP/scrape.txt" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        labels = ",".join('%s=%s' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s{%s} %g" % (s.name, labels, s.value))
PY
}
m=$(scrape)
ok $? "GET /metrics parses as Prometheus text"
val() { printf '%s\n' "$m" | awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print "absent" }'; }
# alice 3 + 1 ready probe accepted; carol 1
is "$(val 'relayguard_decisions_total{reason=ok,verdict=accept}')" 5 "5 accepted (reason ok)"
is "$(val 'relayguard_decisions_total{reason=sender_domain,verdict=reject}')" 1 "1 refused for the sender domain"
is "$(val 'relayguard_decisions_total{reason=suppressed,verdict=reject}')" 1 "1 refused as suppressed"
is "$(val 'relayguard_decision_seconds_count{}')" 7 "the latency histogram counts the 7 decisions"
is "$(val 'relayguard_decision_seconds_bucket{le=+Inf}')" 7 "its +Inf bucket holds them all"
is "$(val 'relayguard_account_decisions_total{account=alice,verdict=accept}')" 4 "alice: 4 accepted"
is "$(val 'relayguard_account_decisions_total{account=alice,verdict=reject}')" 1 "alice: 1 refused"
is "$(val 'relayguard_account_decisions_total{account=bob,verdict=reject}')" 1 "bob: 1 refused"
is "$(val 'relayguard_account_decisions_total{account=_other,verdict=accept}')" 1 \
    "carol, past metrics_accounts = 2, counts as _other"
is "$(val 'relayguard_account_decisions_total{account=carol,verdict=accept}')" absent "carol has no label"
is "$(val 'relayguard_store_errors_total{}')" 0 "no Redis errors yet"
like "$(val 'relayguard_build_info{daemon=relayguard-policyd,version=0.1.0}')" '^1$' "build info"

# Redis gone: the decisions tempfail and count as store errors
rg_kill_redis
like "$(q alice@relay.test a@example.com r9@example.net)" '^(451|DEFER)' "Redis down: tempfail"
m=$(scrape)
like "$(val 'relayguard_store_errors_total{}')" '^[1-9]' "Redis down: store errors counted ($(val 'relayguard_store_errors_total{}'))"
like "$(val 'relayguard_decisions_total{reason=store_error,verdict=tempfail}')" '^[1-9]' \
    "Redis down: tempfail decisions with reason store_error"
rg_start_redis_aof "$REDIS_PORT"
a=$(rg_wait_policyd_ready "$POLICYD_PORT" protocol_state=RCPT client_address=127.0.0.1 \
    sasl_username=alice@relay.test sender=a@example.com recipient=r10@example.net instance=m.100)
like "$a" '^DUNNO' "Redis back: accepted again"
m=$(scrape)
like "$(val 'relayguard_store_reconnects_total{}')" '^[1-9]' "the reconnect is counted"

code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/other")
is "$code" 404 "GET /other: 404"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$MPORT/metrics")
is "$code" 405 "POST /metrics: 405"
ctype=$(curl -s -o /dev/null -w '%{content_type}' "http://127.0.0.1:$MPORT/metrics")
like "$ctype" '^text/plain; version=0.0.4' "content type text/plain; version=0.0.4"

rg_stop_policyd "$POLICYD_PID"
ok $? "policyd stops on SIGTERM with status 0"
rg_log_clean "$POLICYD_LOG"
ok $? "no sanitizer or runtime errors in the policyd log"
done_testing
