/*
 * limit.h - rate limits (GCRA) and calendar quotas: parsing and time math.
 *
 * Spec syntax (config "limit = SPEC", CLI "--limit 'SPEC'"):
 *
 *   [rate|quota] N/PERIOD [per=msg|rcpt] [burst=N] [soft|hard]
 *                         [scope=account|domain|ip|global] [name=ID]
 *
 *   rate  (default): smooth GCRA / leaky bucket.  N per PERIOD, PERIOD is
 *         Ns, Nm, Nh, Nd (a bare number is seconds).  burst = bucket
 *         capacity, default N (so "100/1h" allows 100 at once, then one
 *         every 36 s).
 *   quota: calendar window in UTC: Nh, Nd, Nmo (windows aligned to the Unix
 *         epoch for h and d, to January 1970 for mo), e.g. 500/1d, 10000/1mo.
 *   per=msg (default) counts messages, per=rcpt counts recipients.
 *   soft (default): over the limit -> 451 4.7.1 with the time until it frees;
 *   hard: 550 5.7.1.
 *   scope: account (default inside an account), global (default at the top
 *   level of relayguard.conf), domain (per envelope sender domain), ip (per
 *   client address).
 *   name: stable id used in the Redis key; default derived from the spec
 *   ("rate-100-1h-msg"), so changing the spec starts a fresh bucket.
 */
#ifndef RG_LIMIT_H
#define RG_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { RG_LIMIT_RATE = 0, RG_LIMIT_QUOTA } rg_limit_kind;
typedef enum { RG_UNIT_MSG = 0, RG_UNIT_RCPT } rg_limit_unit;
typedef enum { RG_SCOPE_ACCOUNT = 0, RG_SCOPE_DOMAIN, RG_SCOPE_IP, RG_SCOPE_GLOBAL } rg_limit_scope;
typedef enum { RG_WIN_HOUR = 0, RG_WIN_DAY, RG_WIN_MONTH } rg_window_unit;

typedef struct rg_limit {
    char name[64];
    rg_limit_kind kind;
    rg_limit_unit unit;
    rg_limit_scope scope;
    uint64_t count;          /* N */
    uint64_t period_ms;      /* rate: PERIOD in ms */
    rg_window_unit win_unit; /* quota */
    unsigned win_mult;       /* quota: the N of Nd */
    uint64_t burst;          /* rate: capacity; default count */
    bool hard;
} rg_limit;

/*
 * Parse a spec.  default_scope applies when no scope= is given.
 * Returns 0, or -1 with a message in err ("bad period '1x' in ...").
 */
int rg_limit_parse(const char *spec, rg_limit_scope default_scope, rg_limit *out,
                   char *err, size_t errlen);

/* Canonical spec text, parseable again by rg_limit_parse.  Returns buf. */
char *rg_limit_format(const rg_limit *l, char *buf, size_t len);

/*
 * Calendar window containing now_ms for a quota: start and end (exclusive),
 * in ms since the epoch, UTC, and a window id for keys ("20261124",
 * "202611", "2026112413" for hour windows; multiples use the window start).
 */
void rg_window_bounds(const rg_limit *l, uint64_t now_ms, uint64_t *start_ms,
                      uint64_t *end_ms, char *id, size_t idlen);

/*
 * GCRA, the reference arithmetic.  decide.lua does exactly the same on the
 * shared state; the unit tests pin it down.  All times in microseconds.
 *
 *   T    = floor(period_ms * 1000 / count)      emission interval
 *   tau  = burst * T                            bucket depth
 *   base = max(tat, now)
 *   need = base + (held + n) * T                held: units reserved by messages in flight
 *   fits when need - now <= tau
 *   on success *new_tat = base + n * T          (what charging n would store)
 *   else       *retry_us = need - tau - now     (time until n more fit)
 *
 * tat_us is the bucket's theoretical arrival time, 0 for a new bucket.
 */
bool rg_gcra_take(const rg_limit *l, uint64_t now_us, uint64_t tat_us, uint64_t held,
                  uint64_t n, uint64_t *new_tat_us, uint64_t *retry_us);

/* "1h 3m", "45s", "120ms" for humans.  Returns buf. */
char *rg_duration_format(uint64_t ms, char *buf, size_t len);

/* Parse "250ms", "2s", "1m", "1h", "1d"; bare number = seconds.  0 or -1. */
int rg_duration_parse(const char *s, uint64_t *ms);

/* Parse "10M", "512K", "1G", "1000" (bytes).  0 or -1. */
int rg_size_parse(const char *s, uint64_t *bytes);

#endif
