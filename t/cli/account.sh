#!/bin/bash
# relayguard account add|set|show|list|del, load, check-config.
. "$top_srcdir/t/cli/common.sh"

# --- account lifecycle
run account add alice --domains example.com,.example.org --networks 192.0.2.0/24,2001:db8::/32 \
    --countries us,DE --logins alice@relay.test --limit 'rate 100/1h burst=20' \
    --limit 'quota 500/1d per=rcpt hard' --max-size 10M
is "$RC" 0 "account add: exit 0"
is "$OUT" "account alice added" "account add: message"
is "$(rg_redis sismember rg:accts alice)" 1 "account add: in rg:accts"
is "$(rg_redis hget rg:acct:alice domains)" "example.com,.example.org" "account add: domains field"
is "$(rg_redis get rg:acct:gen)" 1 "account add: gen bumped once"

run account add alice --domains x.com
is "$RC" 1 "account add existing: exit 1"
like "$ERR" "^relayguard: account alice already exists" "account add existing: message"

run account add bob --networks 10.0.0.0/33
is "$RC" 2 "bad CIDR: exit 2"
like "$ERR" "10\.0\.0\.0/33" "bad CIDR: message names it"
is "$(rg_redis exists rg:acct:bob)" 0 "bad CIDR: nothing written"

run account add bob --limit 'rate 10/1x'
is "$RC" 2 "bad limit: exit 2"
like "$ERR" "--limit" "bad limit: message names the option"
run account add bob --limit 'rate 10/1h name=throttle'
is "$RC" 2 "a limit named throttle (relayguard-detectd's bucket): exit 2"
like "$ERR" "reserved for relayguard-detectd" "reserved limit name: the message says whose name it is"
run account add 'bad name!'
is "$RC" 2 "bad account name: exit 2"
run account add carol --suspend --resume
is "$RC" 2 "--suspend with --resume: exit 2"
run account set nobody --suspend
is "$RC" 1 "set missing account: exit 1"

run account show alice
is "$RC" 0 "show: exit 0"
like "$OUT" "domains +example.com,.example.org" "show: domains"
like "$OUT" "countries +US,DE" "show: countries upper-cased"
like "$OUT" "limit +rate 100/1h burst=20" "show: rate limit"
like "$OUT" "limit +quota 500/1d per=rcpt hard" "show: quota"
like "$OUT" "suspended +no" "show: suspended"
run --json account show alice
json_ok "show --json parses"
is "$(printf '%s' "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["domains"][1], len(d["limits"]), d["suspended"], d["max_size"])')" \
   ".example.org 2 False 10485760" "show --json: values"

run account set alice --suspend
is "$OUT" "account alice updated" "set --suspend"
is "$(rg_redis hget rg:acct:alice suspended)" "yes" "set --suspend: stored"
is "$(rg_redis get rg:acct:gen)" 2 "set: gen bumped"
run account set alice --suspend
is "$OUT" "account alice unchanged" "set with no change"
is "$(rg_redis get rg:acct:gen)" 2 "set with no change: gen unchanged"
run account set alice --limit 'rate 5/1m'
run account show alice
is "$(printf '%s\n' "$OUT" | grep -c '^limit ')" 1 "set --limit replaces the list"
like "$OUT" "limit +rate 5/1m" "set --limit: new limit"
like "$OUT" "domains +example.com,.example.org" "set keeps other fields"
run account set alice --no-limits --resume
run account show alice
like "$OUT" "limit +-" "set --no-limits clears"
like "$OUT" "suspended +no" "set --resume"

# --- header policy fields (the milter's Feedback-ID, List-Unsubscribe, account header)
run account set alice --feedback-id 'c1:alice:news:relay' \
    --list-unsubscribe '<https://u.example.com/u?id=1>, <mailto:u@example.com>' --bulk \
    --account-header 'X-AuthUser hmac'
is "$RC:$OUT" "0:account alice updated" "set header policy: exit 0"
is "$(rg_redis hget rg:acct:alice feedback_id)" "c1:alice:news:relay" "--feedback-id stored"
is "$(rg_redis hget rg:acct:alice list_unsubscribe)" "<https://u.example.com/u?id=1>, <mailto:u@example.com>" \
    "--list-unsubscribe stored"
is "$(rg_redis hget rg:acct:alice bulk)" "yes" "--bulk stored"
is "$(rg_redis hget rg:acct:alice account_header)" "X-AuthUser hmac" "--account-header stored"
run account show alice
like "$OUT" "feedback_id +c1:alice:news:relay" "show: feedback_id"
like "$OUT" "list_unsubscribe +<https://u.example.com/u\?id=1>, <mailto:u@example.com>" "show: list_unsubscribe"
like "$OUT" "bulk +yes" "show: bulk"
like "$OUT" "account_header +X-AuthUser hmac" "show: account_header"
run --json account show alice
json_ok "show --json with header policy parses"
is "$(printf '%s' "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["feedback_id"], d["bulk"], d["account_header"], d["list_unsubscribe"].split(",")[0])')" \
   "c1:alice:news:relay True X-AuthUser hmac <https://u.example.com/u?id=1>" "show --json: header policy values"
run account set alice --list-unsubscribe 'https://no-brackets.example.com'
is "$RC" 2 "bad --list-unsubscribe: exit 2"
like "$ERR" "--list-unsubscribe: bad list_unsubscribe" "bad --list-unsubscribe: message names the option"
run account set alice --account-header 'Bad Header: x'
is "$RC" 2 "bad --account-header: exit 2"
like "$ERR" "--account-header: bad account_header" "bad --account-header: message names the option"
run account set alice --feedback-id "$(printf 'two\nlines')"
is "$RC" 2 "--feedback-id on two lines: exit 2"
run account set alice --bulk --no-bulk
is "$RC" 2 "--bulk with --no-bulk: exit 2"
is "$(rg_redis hget rg:acct:alice feedback_id)" "c1:alice:news:relay" "refused options changed nothing"
run account set alice --feedback-id '' --list-unsubscribe '' --no-bulk --account-header ''
is "$RC:$OUT" "0:account alice updated" "clearing the header policy: exit 0"
is "$(rg_redis hexists rg:acct:alice feedback_id):$(rg_redis hexists rg:acct:alice bulk):$(rg_redis hexists rg:acct:alice account_header)" \
   "0:0:0" "cleared fields are gone from the hash"
run --json account show alice
is "$(printf '%s' "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["bulk"], "feedback_id" in d)')" \
   "False False" "show --json after clearing: bulk false, no feedback_id"
# webhook fields (relayguard-webhookd)
run account set alice --webhook-url https://hooks.example.net/relay --webhook-events 'decision.reject,bounce.*' \
    --webhook-secret 's3cret-of-alice-0123'
is "$RC:$OUT" "0:account alice updated" "--webhook-url/--webhook-events/--webhook-secret: exit 0"
is "$(rg_redis hget rg:acct:alice webhook_url)|$(rg_redis hget rg:acct:alice webhook_events)" \
   "https://hooks.example.net/relay|decision.reject,bounce.*" "webhook fields stored"
run account set alice --webhook-url 'ftp://hooks.example.net/x'
is "$RC" 2 "--webhook-url that is not http(s): exit 2"
like "$ERR" "webhook" "  the error names the webhook URL"
is "$(rg_redis hget rg:acct:alice webhook_url)" "https://hooks.example.net/relay" "  and changes nothing"
run account set alice --webhook-url '' --webhook-events '' --webhook-secret ''
is "$(rg_redis hexists rg:acct:alice webhook_url):$(rg_redis hexists rg:acct:alice webhook_secret)" "0:0" \
   "empty webhook options clear the fields"
run account add hp --domains hp.test --feedback-id 'x:hp' --account-header X-Sender-Account
is "$RC" 0 "account add with header options: exit 0"
is "$(rg_redis hget rg:acct:hp feedback_id):$(rg_redis hget rg:acct:hp account_header)" "x:hp:X-Sender-Account" \
   "account add: header fields stored"
run account del hp

run account add bob --domains bob.test
run account list
is "$OUT" "$(printf 'alice\nbob')" "list: sorted names"
run --json account list
json_ok "list --json parses"
run account del bob
is "$RC" 0 "del: exit 0"
is "$(rg_redis sismember rg:accts bob):$(rg_redis exists rg:acct:bob)" "0:0" "del: set and hash gone"
run account del bob
is "$RC" 1 "del missing: exit 1"
run account show bob
is "$RC" 1 "show missing: exit 1"

# --- load
cat > "$RG_TMP/accounts.conf" <<'EOT'
# accounts
account alice {
    domains = example.com
    limit   = rate 100/1h
}
account dave {
    domains  = dave.test, .dave.test
    networks = 198.51.100.0/24
}
account erin {
    domains = erin.test
}
EOT
run account add zed --domains zed.test
run load "$RG_TMP/accounts.conf" --dry-run
is "$RC" 0 "load --dry-run: exit 0"
like "$OUT" "dry run: added 2, changed 1, unchanged 0, deleted 0" "load --dry-run: summary"
is "$(rg_redis exists rg:acct:dave)" 0 "load --dry-run: writes nothing"
gen=$(rg_redis get rg:acct:gen)
run load "$RG_TMP/accounts.conf"
is "$OUT" "added 2, changed 1, unchanged 0, deleted 0" "load: summary"
is "$(rg_redis get rg:acct:gen)" $((gen + 1)) "load: one gen bump for all changes"
is "$(rg_redis hget rg:acct:dave networks)" "198.51.100.0/24" "load: account written"
gen=$(rg_redis get rg:acct:gen)
run load "$RG_TMP/accounts.conf"
is "$OUT" "added 0, changed 0, unchanged 3, deleted 0" "second load: unchanged 3"
is "$(rg_redis get rg:acct:gen)" "$gen" "second load: gen unchanged"
run load "$RG_TMP/accounts.conf" --prune
is "$OUT" "added 0, changed 0, unchanged 3, deleted 1" "load --prune deletes the extra account"
is "$(rg_redis sismember rg:accts zed)" 0 "load --prune: zed gone"
printf 'account bad {\n    domains = x.test\n    networks = 1.2.3.0/99\n}\n' > "$RG_TMP/bad.conf"
run load "$RG_TMP/bad.conf"
is "$RC" 2 "load bad file: exit 2"
like "$ERR" "bad\.conf:3: .*1\.2\.3\.0/99" "load bad file: file:line"

# --- check-config
run check-config
is "$RC:$OUT" "0:$CONF: OK" "check-config good"
run check-config --accounts "$RG_TMP/accounts.conf"
like "$OUT" "accounts.conf: OK \(3 accounts\)" "check-config --accounts good"
run check-config --accounts "$RG_TMP/bad.conf"
is "$RC" 2 "check-config bad accounts: exit 2"
like "$ERR" "^relayguard: $RG_TMP/bad.conf:3: " "check-config bad accounts: file:line"
printf 'store = %s\nnode = t\n\nstore_timeout = fast\n' "$REDIS_URL" > "$RG_TMP/bad-main.conf"
OUT=$("$RG_BIN_CLI" -c "$RG_TMP/bad-main.conf" check-config 2>&1); RC=$?
is "$RC" 2 "check-config bad: exit 2"
like "$OUT" "^relayguard: $RG_TMP/bad-main.conf:4: " "check-config bad: exact file:line"

done_testing
