#!/bin/bash
# relayguard limit show|reset on buckets seeded directly in Redis.
. "$top_srcdir/t/cli/common.sh"
echo "limit = quota 1000/1d scope=domain name=gdom" >> "$CONF"

run account add alice --domains example.com --limit 'rate 100/1h burst=20' \
    --limit 'quota 500/1d per=rcpt hard' --limit 'rate 10/1m scope=domain name=perdom'
is "$RC" 0 "account with limits"

now_us=$(date +%s%6N)
now_ms=$((now_us / 1000))
T=36000000                       # 1h / 100 in microseconds
# a bucket is one hash (keys.h): _t a rate's TAT, q:WINDOW a quota's use,
# slot -> units its holds; here one live slot with 1 unit, one lapsed slot
rg_redis hset rg:h:a:alice:rate-100-1h-msg _t $((now_us + 5 * T - 1000)) \
    $(( (now_ms + 600000) / 10000 + 1 )) 1 $(( (now_ms - 20000) / 10000 )) 4 >/dev/null
win=$(date -u +%Y%m%d)
rg_redis hset rg:h:a:alice:quota-500-1d-rcpt q:$win 123 q:20200101 7 >/dev/null
rg_redis hset rg:h:a:alice:perdom:d:example.com _t $((now_us + 60000000 + 5000000)) >/dev/null
rg_redis hset rg:h:a:alice:perdom:d:other.org _t $((now_us + 3 * 6000000)) >/dev/null
rg_redis hset rg:h:g:gdom:d:example.com q:$win 42 >/dev/null

run limit show alice
is "$RC" 0 "show: exit 0"
like "$OUT" "a:alice:rate-100-1h-msg +rate +5/20 +left 15 +holds 1 +free in 3m" "show: rate used/left/holds/frees"
like "$OUT" "a:alice:quota-500-1d-rcpt +quota +123/500 +left 377 +holds 0 +resets [0-9-]+T00:00:00Z" "show: quota used/left/reset"
like "$OUT" "a:alice:perdom:d:example.com +rate +10/10 +left 0 .*next in" "show: domain bucket, full"
like "$OUT" "a:alice:perdom:d:other.org +rate +3/10 +left 7" "show: second domain bucket"
run --json limit show alice
json_ok "show --json parses"
is "$(printf '%s' "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d), d[0]["used"], d[0]["left"], d[0]["holds"], d[1]["used"])')" \
   "4 5 15 1 123" "show --json: values"
run limit show alice --domain example.com
is "$(printf '%s\n' "$OUT" | wc -l)" 1 "show --domain: one bucket"
run limit show --global
like "$OUT" "g:gdom:d:example.com +quota +42/1000" "show --global: config limits"
run limit show alice --limit nope
is "$RC" 1 "show unknown limit: exit 1"
run limit show nobody
is "$RC" 1 "show unknown account: exit 1"

run limit reset alice --limit perdom --domain example.com
is "$RC" 0 "reset one domain: exit 0"
is "$(rg_redis exists rg:h:a:alice:perdom:d:example.com rg:h:a:alice:perdom:d:other.org)" 1 "reset --domain: only that bucket"
run limit reset alice --limit quota-500-1d-rcpt
is "$(rg_redis exists rg:h:a:alice:quota-500-1d-rcpt)" 0 "reset quota: every window (the bucket's hash)"
run limit reset alice
like "$OUT" "reset 3 limits: 2 keys deleted" "reset all: count (the rate's and other.org's hashes)"
is "$(rg_redis keys 'rg:h:a:alice:*' | grep -c .)" 0 "reset all: no bucket keys left"
run limit show alice --limit rate-100-1h-msg
like "$OUT" "rate +0/20 +left 20 +holds 0 +free" "show after reset: empty"
run limit reset --global
is "$(rg_redis exists rg:h:g:gdom:d:example.com)" 0 "reset --global"

done_testing
