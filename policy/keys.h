/*
 * keys.h - the Redis key schema, in one place.  docs/architecture.md has the
 * same table; decide.lua builds only the keys named here, from the same
 * prefixes.
 *
 *   rg:accts                 SET     account names
 *   rg:acct:NAME             HASH    account fields (account.h)
 *   rg:acct:gen              STRING  generation, INCR on every account change (a node's copy of
 *                                    an account, suspension included, is good while its generation
 *                                    is the current one; decide.lua reads "suspended" only when not)
 *   rg:acct:ix               HASH    login/unix-user index for rg_engine_new_lazy, kept by the
 *                                    lookup script (store_redis.c): "_gen" the generation it was
 *                                    built for (rebuilt when rg:acct:gen moved), "l:LOGIN" (lower
 *                                    case; names count) and "u:USER" -> account, "c" the accounts
 *                                    with client networks (comma-separated)
 *   rg:h:BUCKET              HASH    all of a bucket's state, one key (one HMGET per limit and decision):
 *                                    holds of messages in flight: slot -> units; slot s lapses at
 *                                    s * RG_HOLD_SLOT_MS (ms); a message holds in one slot;
 *                                    "_t" a rate's GCRA theoretical arrival time (µs);
 *                                    "q:WINDOW" a quota's use in that calendar window (the first
 *                                    charge of a window removes the older ones);
 *                                    "_s" the summary, binary: three little-endian doubles
 *                                    (struct '<ddd') n = units in the slots present, lo = 0 when
 *                                    there is none, else <= the lowest slot present, x = the
 *                                    engine time (ms) the key's expiry was last pushed to (past
 *                                    its holds' slot, a rate's TAT + 60 s, a quota's window + 8
 *                                    days), so a write sends PEXPIRE only when it must; a summary
 *                                    that is missing or not 24 bytes is rebuilt from the slots
 *   rg:r:MSGKEY              STRING  a message's reservation: "SLOT\nBUCKET=UNITS\n..." (its holds'
 *                                    slot, units held per bucket), or "charged" once charged without
 *                                    a queue id; TTL reservation_ttl
 *   rg:c:NODE:QUEUEID        STRING  "charged" marker, TTL reservation_ttl
 *   rg:s:g                   HASH    global suppression: address -> "reason|since|expires|note"
 *   rg:s:a:ACCOUNT           HASH    per-account suppression, same values
 *   rg:events                STREAM  one entry per decision, MAXLEN ~ events_max
 *   rg:st:ACCOUNT:HOUR       HASH    counters per verdict/reason, HOUR = YYYYMMDDHH UTC, TTL 8 days
 *                                    (ACCOUNT "*" holds the totals)
 *   rg:v:ID                  HASH    a return-path token's record (verp.h): "a" account, "s"
 *                                    original sender, "r" recipients (one per line), "t" minted
 *                                    (Unix s); TTL token_ttl of the bounce block
 *   rg:sb:g:ADDR             ZSET    soft bounces of an address (suppress = global): bounce id ->
 *   rg:sb:a:ACCOUNT:ADDR     ZSET    time (ms); trimmed to soft_bounces' window, which is its TTL
 *
 * BUCKET is  a:ACCOUNT:LIMIT | g:LIMIT   then  :d:DOMAIN (scope domain)
 * or :ip:ADDRESS (scope ip).  LIMIT is the limit's name (limit.h).
 * MSGKEY is NODE:MSGID.
 *
 * Value formats:
 *   suppression  "REASON|SINCE|EXPIRES|NOTE": REASON hard-bounce | complaint |
 *                unsubscribe | manual; SINCE, EXPIRES Unix seconds (EXPIRES 0 =
 *                never); NOTE free text without '|' (may be empty).  Addresses
 *                are stored normalised (rg_addr_normalize: lower case).  An
 *                expired entry counts as absent (and the script deletes it).
 *   stats hash   fields "accept" (messages charged at end of data),
 *                "reject", "tempfail" (refused decisions) and
 *                "r:REASON" (one per refusal reason), plus "rcpt" (recipients
 *                charged) - all HINCRBY counters.
 *   events       XADD fields: ts (ms), node, stage, qid, account, login,
 *                client, country, sender, rcpt, nrcpt, size, verdict
 *                (accept|reject|tempfail|dunno), code, reason, detail,
 *                and script (the X-PHP-Originating-Script of a locally
 *                submitted message) only when there is one.
 *                Bounce events (relayguard bounce) have the same fields with
 *                stage "bounce", "type" bounce.hard | bounce.soft | bounce.block |
 *                bounce.delayed | bounce.complaint | bounce.unsubscribe |
 *                bounce.ignored | bounce.refused, verdict the class, code the
 *                enhanced status, reason the outcome (suppressed, counted,
 *                ignored, bad_mac, unknown_token, ...); stats counters
 *                "b:CLASS" in rg:st:ACCOUNT:HOUR.
 *                An event's type (webhooks, relayguard events --type) is its
 *                "type" field when it has one (events other than decisions,
 *                e.g. detections), else "decision.VERDICT".
 *
 * Webhooks (relayguard-webhookd; docs/architecture.md "Webhooks"):
 *   rg:events group "webhookd"  consumer group: entries are routed into queues, then XACKed
 *   rg:wh:router             STRING  token of the one process that routes (PX claim_idle)
 *   rg:wh:q:QUEUE            LIST    events (JSON objects) waiting for one destination and
 *                                    one account, oldest first; QUEUE is DEST:ACCOUNT
 *   rg:wh:d:DEST             HASH    a destination: url, account ("" for a global URL);
 *                                    DEST = 16 hex digits of SHA-256(account "\n" url)
 *   rg:wh:ready              ZSET    QUEUE -> when its head may be sent (ms, Redis TIME)
 *   rg:wh:lease              ZSET    QUEUE -> when the lease of the process sending it ends
 *   rg:wh:owner              HASH    QUEUE -> lease token of that process
 *   rg:wh:t:QUEUE            HASH    retry state of the head: attempts, since, next, error
 *   rg:wh:dead               ZSET    dead-letter id -> when it died (ms)
 *   rg:wh:dl:ID              HASH    a dead letter: queue, url, account, attempts, since,
 *                                    died, error, event
 *   rg:wh:dead:seq           STRING  last dead-letter id
 *   rg:wh:stat               HASH    counters: routed, delivered, retried, dead, lost
 *
 * Detection (relayguard-detectd; detect.h, docs/architecture.md "Detection"):
 *   rg:events group "detectd"   consumer group: entries are fed to the detector, then XACKed
 *   rg:dt:ACCOUNT            HASH    an account's detection state (rg_detect_state_to_fields):
 *                                    b baseline per hour of week, o observations, h hour,
 *                                    n count, f fired, c cool-down end (ms), k known
 *                                    countries, s logins of the hour, g/q quiet until (ms),
 *                                    r refused-ratio slices, v version (each write +1, so
 *                                    detectors write only over what they read); TTL 60 days
 *                                    (p reputation slices, x/y bounce/complaint rate quiet
 *                                    until, e reputation actions taken)
 *   rg:detect:leases         HASH    consumer -> "START END MS": the stream range of the batch
 *                                    it read with NOACK and has not finished (at-least-once
 *                                    without a pending list; taken over after claim_idle)
 *   Detection events (XADD rg:events): type detection.volume | detection.new_country |
 *                                    detection.countries | detection.ips | detection.refused, stage
 *                                    "detect", account, login, client, country, verdict the
 *                                    action taken (alert | throttle | suspend), reason the
 *                                    signal, detail a sentence, and the evidence: baseline,
 *                                    threshold, current (recipients this hour), countries,
 *                                    ips, known, refused, total, ratio, cooling (yes|no)
 */
#ifndef RG_KEYS_H
#define RG_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "limit.h"

#define RG_KEY_ACCOUNTS      "rg:accts"
#define RG_KEY_ACCOUNT       "rg:acct:"
#define RG_KEY_ACCOUNT_GEN   "rg:acct:gen"
#define RG_KEY_HOLDS         "rg:h:"
#define RG_HOLD_SLOT_MS      10000   /* decide.lua SLOT */
#define RG_KEY_RESERVATION   "rg:r:"
#define RG_KEY_CHARGED       "rg:c:"
#define RG_KEY_SUPP_GLOBAL   "rg:s:g"
#define RG_KEY_SUPP_ACCOUNT  "rg:s:a:"
#define RG_KEY_EVENTS        "rg:events"
#define RG_KEY_STATS         "rg:st:"
#define RG_KEY_VERP          "rg:v:"
#define RG_KEY_SOFT_GLOBAL   "rg:sb:g:"
#define RG_KEY_SOFT_ACCOUNT  "rg:sb:a:"
#define RG_WH_GROUP          "webhookd"
#define RG_KEY_WH_QUEUE      "rg:wh:q:"
#define RG_KEY_WH_ROUTER     "rg:wh:router"
#define RG_KEY_WH_DEST       "rg:wh:d:"
#define RG_KEY_WH_READY      "rg:wh:ready"
#define RG_KEY_WH_LEASE      "rg:wh:lease"
#define RG_KEY_WH_OWNER      "rg:wh:owner"
#define RG_KEY_WH_RETRY      "rg:wh:t:"
#define RG_KEY_WH_DEAD       "rg:wh:dead"
#define RG_KEY_WH_DEADLETTER "rg:wh:dl:"
#define RG_KEY_WH_DEAD_SEQ   "rg:wh:dead:seq"
#define RG_KEY_WH_STAT       "rg:wh:stat"
#define RG_DETECT_GROUP      "detectd"
#define RG_KEY_DETECT        "rg:dt:"
#define RG_KEY_DETECT_LEASE  "rg:detect:leases"
#define RG_DETECT_TTL_S      (60 * 86400)

/*
 * The bucket id of a limit for a message: account is NULL for a global
 * (config) limit; domain/ip are used for those scopes.  Returns 0, or -1 if
 * it does not fit.
 */
int rg_bucket_id(const rg_limit *l, const char *account, const char *domain,
                 const char *ip, char *out, size_t outlen);

/*
 * An event's type into out: its "type" field when not empty, else
 * "decision." + verdict ("decision" without a verdict).
 */
void rg_event_type(const char *type_field, const char *verdict, char *out, size_t outlen);

/*
 * Does an event type match a pattern list (rg_event_patterns_parse)?  An
 * empty list matches every type; a pattern matches by fnmatch(3) ("decision.*")
 * or as a prefix up to a dot ("decision" matches "decision.reject").
 */
bool rg_event_type_matches(char *const *patterns, const char *type);

#endif
