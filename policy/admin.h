/*
 * admin.h - the admin side of the store: blocking Redis operations behind
 * the relayguard command line (accounts, suppression, limits, events,
 * stats).  Keys and value formats are exactly those of keys.h.
 *
 * One rg_admin is one blocking connection; not thread-safe.  Calls return
 * -1 on a store error with the reason in rg_admin_error(); lookups return
 * 1 found / 0 not found.
 */
#ifndef RG_ADMIN_H
#define RG_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "account.h"
#include "config.h"
#include "limit.h"
#include "rg.h"

#define RG_ADMIN_MIN_TIMEOUT_MS 2000   /* admin commands wait at least this long */

typedef struct rg_admin rg_admin;

/*
 * Connect to cfg->store (AUTH user/password, SELECT db) with connect and
 * command timeouts of max(store_timeout, RG_ADMIN_MIN_TIMEOUT_MS).
 * NULL with the reason in err.
 */
rg_admin *rg_admin_connect(const rg_config *cfg, char *err, size_t errlen);
/* Close and free; leaves *ap NULL.  NULL is fine. */
void rg_admin_close(rg_admin **ap);
/* The last error ("" if none).  Valid until the next call. */
const char *rg_admin_error(const rg_admin *ad);

/* --- field maps (a hash as parallel arrays of new strings) ---------------- */

typedef struct rg_fields {
    char **keys;
    char **values;
    size_t n;
} rg_fields;

/* Append a copy of key/value.  Cannot fail. */
void rg_fields_add(rg_fields *f, const char *key, const char *value);
/* Value of key or NULL. */
const char *rg_fields_get(const rg_fields *f, const char *key);
/* Same keys with the same values, in any order? */
bool rg_fields_equal(const rg_fields *a, const rg_fields *b);
/* Free the contents; leaves an empty map. */
void rg_fields_clear(rg_fields *f);
/* The hash fields of an account (rg_account_to_fields).  Cannot fail. */
void rg_fields_from_account(const rg_account *a, rg_fields *out);

/* --- accounts ------------------------------------------------------------ */

/* Account names (rg:accts), sorted, as a NULL-terminated list for rg_strv_free. */
int rg_admin_account_names(rg_admin *ad, char ***names);
/* The stored hash rg:acct:NAME into out (empty on 0).  1 / 0 / -1. */
int rg_admin_account_fields(rg_admin *ad, const char *name, rg_fields *out);

/*
 * Account changes are optimistic transactions: begin (WATCH rg:acct:gen),
 * read what you need, then commit.  Every writer bumps rg:acct:gen inside
 * its MULTI/EXEC, so commit fails with 0 when anyone changed any account in
 * between: begin again.  commit writes each account of put (replacing its
 * whole hash, SADD rg:accts), deletes each name of del (hash and SREM),
 * then INCR rg:acct:gen once, all in one MULTI/EXEC; nothing at all (and
 * no INCR) when both are empty.  1 committed, 0 conflict, -1 error.
 * abort drops the WATCH.
 */
int rg_admin_accounts_begin(rg_admin *ad);
int rg_admin_accounts_commit(rg_admin *ad, const rg_account *const *put, size_t nput,
                             char *const *del, size_t ndel);
void rg_admin_accounts_abort(rg_admin *ad);

/*
 * Change one account: read it, let fn change it (fn returns 1 to write, 0
 * for nothing to write), write it with the accounts generation bumped, all
 * as one optimistic transaction retried when another writer got in between.
 * The same path as `relayguard account set` (relayguard-detectd suspends and
 * throttles with it).  1 written, 0 nothing to write, -2 no such account
 * (message in rg_admin_error), -1 store error.
 */
typedef int rg_account_edit_fn(void *arg, rg_account *a);
int rg_admin_account_edit(rg_admin *ad, const char *name, rg_account_edit_fn *fn, void *arg);

/* The blocking hiredis connection (a redisContext *), for a daemon that
 * pipelines its own commands (relayguard-detectd). */
void *rg_admin_redis(rg_admin *ad);

/* --- suppression ----------------------------------------------------------- */

#define RG_SUPP_NOTE_MAX 256

typedef struct rg_supp {
    char addr[RG_ADDR_MAX];      /* normalised */
    char reason[16];             /* hard-bounce | complaint | unsubscribe | manual */
    int64_t since;               /* Unix seconds */
    int64_t expires;             /* Unix seconds, 0 = never */
    char note[RG_SUPP_NOTE_MAX]; /* no '|' */
} rg_supp;

bool rg_supp_reason_valid(const char *reason);
/* The stored value "REASON|SINCE|EXPIRES|NOTE".  0, or -1 (bad reason,
 * '|' or a control byte in the note, truncation). */
int rg_supp_format(const rg_supp *e, char *buf, size_t len);
/* Parse a stored value for addr.  0 / -1. */
int rg_supp_parse(const char *addr, const char *value, rg_supp *out);
/* Expired at now (Unix seconds)? */
bool rg_supp_expired(const rg_supp *e, int64_t now);

/* account NULL: the global list.  put: 1 new, 0 replaced, -1. */
int rg_admin_supp_put(rg_admin *ad, const char *account, const rg_supp *e);
/*
 * Many entries, pipelined: all HSETs are sent before the replies are read,
 * so n entries cost one round trip.  *added gets the number of new
 * addresses.  0 / -1.
 */
int rg_admin_supp_put_many(rg_admin *ad, const char *account, const rg_supp *e, size_t n,
                           size_t *added);
/* 1 deleted, 0 absent, -1. */
int rg_admin_supp_del(rg_admin *ad, const char *account, const char *addr);
/* 1 suppressed (entry in out), 0 absent or expired, -1. */
int rg_admin_supp_get(rg_admin *ad, const char *account, const char *addr, rg_supp *out);
/*
 * Call cb for every entry of a list (HSCAN; order undefined; an entry added
 * or removed meanwhile may or may not be seen).  Values that do not parse
 * are skipped.  cb returns non-zero to stop.  0 / -1.
 */
typedef int rg_supp_cb(void *arg, const rg_supp *e);
int rg_admin_supp_scan(rg_admin *ad, const char *account, rg_supp_cb *cb, void *arg);

/* --- limits ------------------------------------------------------------------ */

/* What one bucket holds at a moment. */
typedef struct rg_limit_state {
    char bucket[512];        /* BUCKET of keys.h */
    char subject[RG_ADDR_MAX]; /* the domain or address for scope domain/ip, else "" */
    uint64_t used;           /* units counted (rate: clipped to [0,burst]) */
    uint64_t left;           /* capacity - used */
    uint64_t holds;          /* units reserved by messages in flight (unexpired) */
    uint64_t next_ms;        /* rate: ms until one more unit fits (0 if left > 0) */
    uint64_t free_ms;        /* rate: ms until empty; quota: ms until the window resets */
    uint64_t reset_at_ms;    /* quota: window end (epoch ms); rate: when empty */
    char window[32];         /* quota: the window id */
} rg_limit_state;

/*
 * Bucket usage of limit l (account NULL for a global limit) at now_ms.
 * Scope account/global: exactly one state, even for an untouched bucket.
 * Scope domain/ip: one per subject found in the store (SCAN), or just
 * `subject` when it is not NULL.  cb returns non-zero to stop.
 * Returns the number of states, or -1.
 */
typedef int rg_limit_state_cb(void *arg, const rg_limit *l, const rg_limit_state *st);
int rg_admin_limit_states(rg_admin *ad, const rg_limit *l, const char *account,
                          const char *subject, uint64_t now_ms, rg_limit_state_cb *cb, void *arg);

/*
 * Delete a limit's bucket keys (rate, every quota window, holds).  For
 * scope domain/ip: only subject's when given, else every subject's.
 * Returns the number of keys deleted, or -1.
 */
long rg_admin_limit_reset(rg_admin *ad, const rg_limit *l, const char *account,
                          const char *subject);

/* Used units of a rate bucket: ceil((tat - now) / T) clipped to [0, burst]. */
uint64_t rg_gcra_used(const rg_limit *l, uint64_t now_us, uint64_t tat_us);

/* --- events ------------------------------------------------------------------ */

typedef struct rg_event_filter {
    const char *account;     /* NULL: any */
    const char *verdict;     /* NULL: any */
    char **types;            /* NULL: any; else type patterns (keys.h rg_event_type_matches) */
} rg_event_filter;

/* One event: id is the stream id, f its fields (keys.h).  cb returns non-zero to stop. */
typedef int rg_event_cb(void *arg, const char *id, const rg_fields *f);

/*
 * The newest count events that pass the filter, oldest first.  last_id
 * gets the newest id in the stream ("0-0" if it is empty), for follow.
 * Returns the number delivered, or -1.
 */
long rg_admin_events_latest(rg_admin *ad, const rg_event_filter *flt, size_t count,
                            rg_event_cb *cb, void *arg, char *last_id, size_t idlen);
/*
 * Deliver every event after after_id as it arrives (XREAD BLOCK), until cb
 * returns non-zero (then 0) or the store fails (-1).
 */
int rg_admin_events_follow(rg_admin *ad, const rg_event_filter *flt, const char *after_id,
                           rg_event_cb *cb, void *arg);

/* --- stats ------------------------------------------------------------------- */

/*
 * The hourly counters rg:st:ACCOUNT:HOUR ("*" for the totals) of the hour of
 * now_ms (per_hour[0]) and the hours-1 before it (per_hour[1..]), one
 * pipelined round trip.  per_hour: hours empty rg_fields, filled with the
 * hash as it is (field -> decimal); the caller clears them.  0 / -1 (then
 * all are left empty).
 */
int rg_admin_stats_hours(rg_admin *ad, const char *account, uint64_t now_ms, unsigned hours,
                         rg_fields *per_hour);

/* --- the bounce loop (cli/bounce.c; keys.h rg:v:, rg:sb:) -------------------- */

/*
 * Write the record of a return-path token, rg:v:ID: account, original
 * sender, the recipients (normalised, n of them) and minted (Unix seconds),
 * expiring after ttl_ms; one MULTI/EXEC.  0 / -1.
 */
int rg_admin_verp_put(rg_admin *ad, const char *id, const char *account, const char *sender,
                      char *const *rcpts, size_t n, int64_t minted, uint64_t ttl_ms);
/* The record's fields (a, s, r, t) into out.  1 found / 0 absent or expired / -1. */
int rg_admin_verp_get(rg_admin *ad, const char *id, rg_fields *out);

/*
 * Count a soft bounce of addr (account NULL: the global counter): add
 * member (the bounce's id, so a retried delivery counts once) at now_ms,
 * forget those older than window_ms, and return how many remain; one
 * MULTI/EXEC.  -1 on error.
 */
long rg_admin_soft_bounce(rg_admin *ad, const char *account, const char *addr,
                          const char *member, uint64_t now_ms, uint64_t window_ms);

/*
 * Append an event (fields of keys.h) to rg:events, capped ~events_max, and
 * when counter is not NULL add 1 to that field of the hourly stats of
 * account (when not NULL or "") and of "*", as decide.lua does.  0 / -1.
 */
int rg_admin_event_add(rg_admin *ad, uint64_t events_max, const rg_fields *f,
                       const char *account, const char *counter, uint64_t now_ms);

#endif
