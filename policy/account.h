/*
 * account.h - an account: who may send what from where.
 *
 * In a file (relayguard load FILE):
 *
 *   account alice {
 *       logins          = alice@relay.test, alice   # SASL logins (the name always counts)
 *       local_users     = www-alice                 # unix users of local submission
 *       client_networks = 203.0.113.0/24            # unauthenticated hosts that are this account
 *       domains         = example.com, .example.org # allowed sender domains ("*": any)
 *       networks        = 192.0.2.0/24, 2001:db8::/32  # allowed client networks (empty: any)
 *       countries       = US, DE                    # allowed client countries (empty: any)
 *       limit           = rate 100/1h burst=20      # any number of limit lines
 *       limit           = quota 500/1d per=rcpt hard
 *       max_size        = 10M                       # 0 or absent: no limit
 *       suspended       = no
 *       # header policy (feature 8), added by relayguard-milter and signed:
 *       feedback_id      = "c1:alice:newsletter:relay"  # Feedback-ID: value
 *       list_unsubscribe = "<https://u.example.com/u?id=1>, <mailto:u@example.com>"
 *       bulk             = yes      # with list_unsubscribe: List-Unsubscribe-Post (RFC 8058)
 *       account_header   = X-AuthUser        # value: the login (or account name)
 *       account_header   = X-AuthUser hmac   # value: HMAC-SHA256 of it (milter header_secret)
 *       # webhooks (relayguard-webhookd): this account's events also go to its own URL
 *       webhook_url      = https://hooks.customer.example/relay
 *       webhook_events   = decision.reject, detection   # types (patterns); empty: all
 *       webhook_secret   = "at least 16 characters"     # default: the webhooks block's secret
 *       # compromised-account detection (relayguard-detectd)
 *       detect_action    = suspend   # alert | throttle | suspend; default: the detect block's
 *       throttle         = rate 10/1h name=throttle     # set by detectd with throttle_until,
 *       throttle_until   = 1764000000                   # cleared by relayguard account resume
 *       bounce_rate      = 2%        # reputation thresholds; default: the detect block's
 *       complaint_rate   = 0.05%
 *       # the managed return path (relayguard.conf bounce block, verp.h)
 *       bounces          = managed   # managed | off; default: the bounce block's "bounces"
 *   }
 *
 * The account named "default" applies to SASL logins that no account claims.
 * In Redis an account is the hash rg:acct:NAME with the same keys as fields
 * (lists as comma-separated text, limits one per line in "limits").
 */
#ifndef RG_ACCOUNT_H
#define RG_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "limit.h"
#include "match.h"

typedef struct rg_account {
    char *name;
    char **logins;            /* NULL-terminated lists, never NULL */
    char **local_users;
    char **domains;
    char **countries;         /* upper case */
    rg_cidr *client_networks; size_t n_client_networks;
    rg_cidr *networks;        size_t n_networks;
    rg_limit *limits;         size_t n_limits;
    uint64_t max_size;        /* bytes, 0 = none */
    bool suspended;
    /* header policy; NULL when not set (then not written to Redis either) */
    char *feedback_id;
    char *list_unsubscribe;
    bool bulk;
    char *account_header;     /* header name */
    bool account_header_hmac;
    /* webhooks; NULL when not set */
    char *webhook_url;
    char **webhook_events;    /* NULL-terminated, never NULL; empty = all types */
    char *webhook_secret;
    /* compromised-account detection (relayguard-detectd, detect.h) */
    int detect_action;        /* -1: the detect block's action; else an rg_detect_action */
    rg_limit *throttle;       /* the temporary limit of a "throttle" action; NULL when none */
    int64_t throttle_until;   /* Unix seconds; the engine applies throttle until then */
    double bounce_rate;       /* reputation thresholds (fractions); 0: the detect block's */
    double complaint_rate;
    int bounces;              /* managed return path: -1 the bounce block's default, 0 off,
                                 1 managed */
} rg_account;

/* Does the account get a managed return path, managed_default being the
 * bounce block's "bounces"? */
bool rg_account_bounces_managed(const rg_account *a, bool managed_default);

/* A valid account name: 1..64 of [A-Za-z0-9._@+-]. */
bool rg_account_name_valid(const char *name);

rg_account *rg_account_new(const char *name);
void rg_account_free(rg_account *a);

/*
 * Set one key (as in the file) from text.  For "limit", appends.  Returns 0,
 * or -1 with the reason in err (without file/line: the caller adds them).
 */
int rg_account_set(rg_account *a, const char *key, const char *value, char *err, size_t errlen);

/* Build an account from an "account NAME { }" block.  NULL + "FILE:LINE: msg" in err. */
rg_account *rg_account_from_block(const rg_conf *c, const rg_conf_block *b, char *err, size_t errlen);

/*
 * Field/value pairs for the Redis hash, in a fixed order (the header policy
 * fields feedback_id, list_unsubscribe, bulk, account_header follow, only
 * when set).  Writes up to max
 * pairs into keys[]/values[] (values are new strings the caller frees with
 * free()); returns the count.
 */
size_t rg_account_to_fields(const rg_account *a, const char **keys, char **values, size_t max);

/* Build from hash fields (as HGETALL returns them).  NULL + msg on error. */
rg_account *rg_account_from_fields(const char *name, char *const *keys, char *const *values,
                                   size_t n, char *err, size_t errlen);

/* The throttle limit while it lasts (now_ms before throttle_until), else NULL. */
const rg_limit *rg_account_throttle(const rg_account *a, uint64_t now_ms);

/* Does the account allow this sender domain / client address? */
bool rg_account_allows_domain(const rg_account *a, const char *domain);
bool rg_account_allows_network(const rg_account *a, const rg_cidr *ip);
bool rg_account_allows_country(const rg_account *a, const char *cc);

/*
 * A set of accounts with the indexes the engine looks up by (login, local
 * user, client network).  Immutable once built; the engine swaps whole sets.
 */
typedef struct rg_accounts rg_accounts;

rg_accounts *rg_accounts_new(void);
/* Takes ownership of a.  Returns 0, or -1 (duplicate name, or a login,
 * local user claimed twice) with a message in err. */
int rg_accounts_add(rg_accounts *s, rg_account *a, char *err, size_t errlen);
void rg_accounts_free(rg_accounts *s);
size_t rg_accounts_count(const rg_accounts *s);
const rg_account *rg_accounts_at(const rg_accounts *s, size_t i);
const rg_account *rg_accounts_by_name(const rg_accounts *s, const char *name);
const rg_account *rg_accounts_by_login(const rg_accounts *s, const char *login);   /* case-insensitive */
const rg_account *rg_accounts_by_local_user(const rg_accounts *s, const char *user);
const rg_account *rg_accounts_by_client(const rg_accounts *s, const rg_cidr *ip);  /* longest prefix */

/* Read every "account NAME {}" block of a file.  NULL + "FILE:LINE: msg" in err. */
rg_accounts *rg_accounts_load_file(const char *path, char *err, size_t errlen);

#endif
