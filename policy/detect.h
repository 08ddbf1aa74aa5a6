/*
 * detect.h - compromised-account detection: the pure logic, clock injected.
 *
 * relayguard-detectd (detectd/) reads the events stream and feeds every
 * event of an account to rg_detect_feed() with that account's state; the
 * state lives in Redis (rg:dt:ACCOUNT, keys.h) as the text fields of
 * rg_detect_state_to_fields(), so that several detectors agree.  Nothing here
 * talks to Redis or reads a clock: an event carries its own time, so a test
 * replays weeks of history in a moment.
 *
 * Three signals:
 *   volume   recipients accepted at RCPT in the current UTC hour against a
 *            baseline: an EWMA per hour of the week (168 buckets, hour 0 =
 *            Monday 00 UTC).  When an hour ends, its count is folded into its
 *            bucket: base = alpha x count + (1 - alpha) x base (the first
 *            observation sets it); hours without traffic fold in 0.  An hour
 *            that fired is folded in at most at its threshold, so an attack
 *            does not teach the baseline.  Fires once per hour when the count
 *            goes above max(k x base, floor).
 *   logins   every event with a SASL login and a client address is a login
 *            sighting.  A country the account never used alerts
 *            (new_country; the first country of an account is learnt
 *            silently); N or more countries (countries_per_hour), or more than
 *            M addresses (ips_per_hour), within the last hour suspend.
 *   refused  recipients refused at RCPT as suppressed plus hard bounces
 *            (type bounce.hard: unknown recipients) over all RCPT decisions,
 *            in a sliding window of 12 slices; fires when the window holds
 *            refused_min recipients and the ratio reaches refused_ratio, at
 *            most once per window.
 *
 *   reputation  per account, recipients accepted at RCPT (the delivered
 *            volume), hard bounces (bounce.hard) and complaints
 *            (bounce.complaint) in a sliding window of 24 slices
 *            (reputation_window).  Once the window holds reputation_min
 *            recipients, a hard bounce that takes hard / volume above
 *            bounce_rate fires bounce_rate, a complaint that takes
 *            complaints / volume above complaint_rate fires complaint_rate
 *            (exactly at the threshold is not above).  Thresholds are the
 *            account's own when it has them.  Each fires at most once per
 *            cool-down; the actions of reputation_action are taken in turn
 *            (throttle, then suspend), back to the first once a window has
 *            passed without one.
 *
 * Actions: new_country is always an alert, countries and ips always
 * suspend, volume and refused do the configured action (the account's
 * detect_action, else the detect block's).  After an action - and after
 * `relayguard account resume` - the account cools down: detections until
 * cool_until are reported as alerts and change nothing.
 */
#ifndef RG_DETECT_H
#define RG_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define RG_DETECT_HOURS      168    /* hours in a week: one baseline bucket each */
#define RG_DETECT_KNOWN      32     /* countries remembered per account (oldest forgotten) */
#define RG_DETECT_SEEN       64     /* login addresses remembered within the hour */
#define RG_DETECT_SLICES     12     /* slices of the refused-ratio window */
#define RG_DETECT_LIST_MAX   1024   /* evidence lists (countries, addresses) as text */
#define RG_DETECT_REP_SLICES 24     /* slices of the reputation window */

typedef enum {
    RG_SIG_VOLUME = 0,
    RG_SIG_NEW_COUNTRY,
    RG_SIG_COUNTRIES,
    RG_SIG_IPS,
    RG_SIG_REFUSED,
    RG_SIG_BOUNCE_RATE,
    RG_SIG_COMPLAINT_RATE
} rg_detect_signal;

/* "volume", "new_country", "countries", "ips", "refused", "bounce_rate",
 * "complaint_rate" (event type detection.NAME). */
const char *rg_detect_signal_name(rg_detect_signal s);

/* One login the account was seen with (the newest time per address). */
typedef struct rg_detect_seen {
    uint64_t ts_ms;
    char cc[3];             /* "" when unknown */
    char ip[46];
} rg_detect_seen;

/* An account's detection state.  Zeroed (memset) is a new account. */
typedef struct rg_detect_state {
    double base[RG_DETECT_HOURS];      /* baseline, recipients per hour */
    uint16_t nobs[RG_DETECT_HOURS];    /* hours folded into each bucket (saturates) */
    int64_t hour;                      /* the current hour (ms / 3600000), 0 = none yet */
    uint64_t count;                    /* recipients accepted in it */
    bool fired;                        /* the volume signal fired in it */
    uint64_t cool_until_ms;            /* cool-down: alerts only until then */
    char known[RG_DETECT_KNOWN][3];    /* countries used, oldest first */
    size_t nknown;
    rg_detect_seen seen[RG_DETECT_SEEN];
    size_t nseen;
    uint64_t geo_quiet_ms;             /* countries/ips fired: not again until then */
    int64_t slice_at[RG_DETECT_SLICES];/* slice number held by each ring position */
    uint32_t total[RG_DETECT_SLICES], refused[RG_DETECT_SLICES];
    uint64_t refused_quiet_ms;         /* refused fired: not again until then */
    /* reputation: slices of reputation_window / RG_DETECT_REP_SLICES ms */
    uint64_t rep_width_ms;             /* the slice width the slices were counted in */
    int64_t rep_at[RG_DETECT_REP_SLICES];
    uint32_t rep_sent[RG_DETECT_REP_SLICES], rep_hard[RG_DETECT_REP_SLICES],
             rep_compl[RG_DETECT_REP_SLICES];
    uint64_t bounce_quiet_ms, complaint_quiet_ms;  /* fired: not again until then */
    unsigned rep_strikes;              /* reputation actions taken (the next one's index) */
    uint64_t rep_last_ms;              /* when the last one was taken */
} rg_detect_state;

/* An account's own reputation thresholds (fractions; 0: the detect block's). */
typedef struct rg_detect_account {
    double bounce_rate;
    double complaint_rate;
} rg_detect_account;

/* The sums of the reputation window that holds now_ms. */
typedef struct rg_detect_rates {
    uint64_t volume, hard, complaints;
} rg_detect_rates;

/* What the detector needs of one event (fields of keys.h; NULL = ""). */
typedef struct rg_detect_event {
    uint64_t ts_ms;
    const char *type;       /* "type" field: bounce.hard counts as refused; detect.* is skipped */
    const char *stage;      /* rcpt, eom, ... (rg_stage_name) */
    const char *verdict;
    const char *reason;
    const char *login;
    const char *client;
    const char *country;
} rg_detect_event;

/* A detection, with its evidence. */
typedef struct rg_detect_hit {
    rg_detect_signal signal;
    rg_detect_action action;    /* what to do (alert when cooling) */
    bool configurable;          /* volume/refused: the account's detect_action may override */
    bool cooling;               /* in the cool-down: reported, not acted on */
    uint64_t ts_ms;
    double baseline;            /* volume */
    double threshold;           /* volume: max(k x baseline, floor) */
    uint64_t current;           /* volume: recipients this hour */
    char country[3];            /* new_country; the login's country otherwise */
    char login[128];
    char client[46];
    char countries[RG_DETECT_LIST_MAX];  /* countries seen within the hour, "US,DE,BR" */
    char ips[RG_DETECT_LIST_MAX];        /* addresses seen within the hour */
    char known[RG_DETECT_LIST_MAX];      /* new_country: the countries known before */
    uint64_t refused, total;    /* refused: the window's counts */
    double ratio;
    /* bounce_rate, complaint_rate: the window (ms), recipients accepted in
     * it, hard bounces or complaints in it, their rate and the threshold */
    uint64_t window_ms, volume, count;
    double rate, rate_threshold;
} rg_detect_hit;

/*
 * Feed one event of an account.  Updates s and writes up to max hits into
 * out (an event can fire several signals); returns the number of hits.
 * The actions of configurable hits are conf->action; a caller that knows the
 * account's own detect_action replaces it, then calls rg_detect_acted().
 * Cannot fail.
 */
size_t rg_detect_feed(const rg_detect_conf *conf, rg_detect_state *s, const rg_detect_event *ev,
                      rg_detect_hit *out, size_t max);

/* The same with the account's own thresholds (acct NULL: none). */
size_t rg_detect_feed_account(const rg_detect_conf *conf, const rg_detect_account *acct,
                              rg_detect_state *s, const rg_detect_event *ev, rg_detect_hit *out,
                              size_t max);

/* The reputation sums of the window that holds now_ms (slices ending at it). */
rg_detect_rates rg_detect_reputation(const rg_detect_conf *conf, const rg_detect_state *s,
                                     uint64_t now_ms);

/*
 * Does count of volume pass rate (count / volume above it), volume being at
 * least min?  The rule of both reputation signals.
 */
bool rg_detect_rate_passed(uint64_t count, uint64_t volume, uint64_t min, double rate);

/* An action (throttle, suspend) was taken at now_ms: start the cool-down. */
void rg_detect_acted(const rg_detect_conf *conf, rg_detect_state *s, uint64_t now_ms);

/*
 * An administrator resumed the account (relayguard account resume): forget
 * the logins of the hour, start the cool-down.
 */
void rg_detect_resumed(const rg_detect_conf *conf, rg_detect_state *s, uint64_t now_ms);

/* The baseline of the hour holding now_ms (0 without history) and the threshold. */
double rg_detect_baseline(const rg_detect_state *s, uint64_t now_ms);
double rg_detect_threshold(const rg_detect_conf *conf, const rg_detect_state *s, uint64_t now_ms);

/* Hour of the week of an epoch hour: 0 = Monday 00:00-01:00 UTC. */
unsigned rg_detect_hour_of_week(int64_t hour);

/*
 * The state as hash fields (keys.h rg:dt:ACCOUNT): at most RG_DETECT_FIELDS
 * pairs; values are new strings the caller frees.  Returns the count.  The
 * baseline (fields b and o, 168 numbers each, most of the cost) changes only
 * when an hour ends: without with_baseline they are left out, for a writer
 * that knows they did not change.
 */
#define RG_DETECT_FIELDS 15
size_t rg_detect_state_to_fields(const rg_detect_state *s, bool with_baseline, const char **keys,
                                 char **values);

/* Do two states have the same baseline (base and nobs)? */
bool rg_detect_same_baseline(const rg_detect_state *a, const rg_detect_state *b);

/*
 * The state from hash fields (HGETALL); unknown fields are skipped and a
 * field that does not parse leaves its part of the state new (a damaged
 * state costs history, never a crash).  Returns the number of fields that
 * did not parse.
 */
size_t rg_detect_state_from_fields(rg_detect_state *s, char *const *keys, char *const *values,
                                   size_t n);

#endif
