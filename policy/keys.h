/*
 * keys.h - the Redis key schema, in one place.  docs/architecture.md has the
 * same table; decide.lua builds only the keys named here, from the same
 * prefixes.
 *
 *   rg:accts                 SET     account names
 *   rg:acct:NAME             HASH    account fields (account.h)
 *   rg:acct:gen              STRING  generation, INCR on every account change
 *   rg:b:BUCKET              STRING  GCRA theoretical arrival time (µs), expires when idle
 *   rg:q:BUCKET:WINDOW       STRING  quota use in one calendar window, expires 8 days after the window
 *   rg:h:BUCKET              HASH    holds of messages in flight: slot -> units; slot s lapses at
 *                                    s * RG_HOLD_SLOT_MS (ms); a message holds in one slot;
 *                                    summary "_n" (units in the slots present) and "_lo"
 *                                    (<= the lowest slot present), so a check reads 3 fields
 *   rg:r:MSGKEY              HASH    a message's reservation: BUCKET -> held units, "_slot", "_charged", TTL reservation_ttl
 *   rg:c:NODE:QUEUEID        STRING  "charged" marker, TTL reservation_ttl
 *   rg:s:g                   HASH    global suppression: address -> "reason|since|expires|note"
 *   rg:s:a:ACCOUNT           HASH    per-account suppression, same values
 *   rg:events                STREAM  one entry per decision, MAXLEN ~ events_max
 *   rg:st:ACCOUNT:HOUR       HASH    counters per verdict/reason, HOUR = YYYYMMDDHH UTC, TTL 8 days
 *                                    (ACCOUNT "*" holds the totals)
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
 *                (accept|reject|tempfail|dunno), code, reason, detail.
 */
#ifndef RG_KEYS_H
#define RG_KEYS_H

#include <stddef.h>

#include "limit.h"

#define RG_KEY_ACCOUNTS      "rg:accts"
#define RG_KEY_ACCOUNT       "rg:acct:"
#define RG_KEY_ACCOUNT_GEN   "rg:acct:gen"
#define RG_KEY_RATE          "rg:b:"
#define RG_KEY_QUOTA         "rg:q:"
#define RG_KEY_HOLDS         "rg:h:"
#define RG_HOLD_SLOT_MS      10000   /* decide.lua SLOT */
#define RG_KEY_RESERVATION   "rg:r:"
#define RG_KEY_CHARGED       "rg:c:"
#define RG_KEY_SUPP_GLOBAL   "rg:s:g"
#define RG_KEY_SUPP_ACCOUNT  "rg:s:a:"
#define RG_KEY_EVENTS        "rg:events"
#define RG_KEY_STATS         "rg:st:"

/*
 * The bucket id of a limit for a message: account is NULL for a global
 * (config) limit; domain/ip are used for those scopes.  Returns 0, or -1 if
 * it does not fit.
 */
int rg_bucket_id(const rg_limit *l, const char *account, const char *domain,
                 const char *ip, char *out, size_t outlen);

#endif
