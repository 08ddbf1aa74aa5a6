#!/bin/bash
# relayguard stats: sent, refused by reason, bounced and complained over
# 1 h / 24 h / 7 d, the hard-bounce and complaint rates, a sparkline of the
# last 24 hours per row (UTF-8 blocks, or ASCII in a C locale), --json.
. "$top_srcdir/t/cli/common.sh"

# The windows are calendar hours: do not seed in the last seconds of an hour.
while [ "$(date -u +%M%S)" -ge 5950 ]; do sleep 1; done
h() { date -u -d "-$1 hours" +%Y%m%d%H; }
rg_redis hset "rg:st:shop:$(h 0)" accept 40 rcpt 50 reject 3 r:suppressed 3 b:hard 2 b:complaint 1 >/dev/null
rg_redis hset "rg:st:shop:$(h 1)" accept 80 rcpt 90 b:soft 4 b:block 1 >/dev/null
rg_redis hset "rg:st:shop:$(h 23)" accept 8 tempfail 2 r:rate_limit 2 >/dev/null
rg_redis hset "rg:st:shop:$(h 24)" accept 1000 rcpt 1100 b:hard 10 >/dev/null
rg_redis hset "rg:st:shop:$(h 170)" accept 99999 >/dev/null     # older than 7 days

LC_ALL=C.UTF-8 run stats shop
is "$RC" 0 "stats shop: exit 0"
like "$OUT" "^shop +1h +24h +7d +last 24 hours" "header: the windows and the sparkline's span"
like "$OUT" "accepted +40 +128 +1128 " "accepted (sent) over 1h/24h/7d; 8 days ago is not counted"
like "$OUT" "bounced +2 +7 +17 " "bounced = hard + soft + block"
like "$OUT" "hard bounces +2 +2 +12 " "hard bounces"
like "$OUT" "complaints +1 +1 +1 " "complaints"
like "$OUT" "hard-bounce rate +4.00% +1.43% +0.97%" "hard-bounce rate: hard bounces per recipient charged"
like "$OUT" "complaint rate +2.00% +0.71% +0.08%" "complaint rate: complaints per recipient charged"
like "$OUT" "  suppressed +3 +3 +3 " "refused by reason: suppressed"
like "$OUT" "  rate_limit +0 +2 +2 " "refused by reason: rate_limit"
# accepted, last 24 hours oldest first: 8 (23 h ago), zeros, 80 (1 h ago), 40 (now);
# the marks: zero is the lowest, any traffic at least the second
spark=$(printf '%s\n' "$OUT" | awk '$1 == "accepted" { print $5 }')
is "$spark" "▂▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁█▅" "accepted: a 24-hour sparkline in UTF-8 blocks (zero hours lowest, 8 above them)"
is "$(printf '%s' "$spark" | wc -m)" 24 "the sparkline has one mark per hour"
LC_ALL=C run stats shop
spark=$(printf '%s\n' "$OUT" | awk '$1 == "accepted" { print $5 }')
is "$spark" "._____________________#=" "in a C locale the sparkline is ASCII"

run --json stats shop
json_ok "stats --json parses"
got=$(printf '%s' "$OUT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
w, h = d["24h"], d["hourly"]
print(w["accepted"], w["bounced"], w["hard_bounces"], w["complaints"], round(w["hard_bounce_rate"], 4),
      d["7d"]["reasons"]["rate_limit"], len(h["accepted"]), h["accepted"][-1], h["accepted"][-2], h["accepted"][0],
      d["1h"]["complaint_rate"])')
is "$got" "128 7 2 1 0.0143 2 24 40 80 8 0.02" "stats --json: windows, rates, reasons, 24 hourly values oldest first"
run --json stats nobody
is "$(printf '%s' "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["7d"]["accepted"], d["7d"]["hard_bounce_rate"])')" \
   "0 None" "an account without traffic: zeros, and no rate (null) rather than a division by zero"
run stats 'bad name!'
is "$RC" 2 "a bad account name: usage error (2)"
done_testing
