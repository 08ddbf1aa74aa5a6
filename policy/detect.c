/*
 * detect.c - compromised-account detection, the pure logic (see detect.h).
 * No I/O, no clock: everything comes with the event, so tests replay
 * history with an injected time.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "util.h"

#define HOUR_MS 3600000ull
#define FOLD_MAX (RG_DETECT_HOURS * 8)  /* hours of silence folded at most (8 weeks) */

static const char *const signal_names[] = { "volume", "new_country", "countries", "ips",
                                            "refused", "bounce_rate", "complaint_rate" };

const char *rg_detect_signal_name(rg_detect_signal s)
{
    return (unsigned)s < sizeof signal_names / sizeof signal_names[0] ? signal_names[s] : "?";
}

unsigned rg_detect_hour_of_week(int64_t hour)
{
    /* 1970-01-01 was a Thursday: hour 0 of the epoch is hour 72 of its week */
    int64_t h = (hour + 72) % RG_DETECT_HOURS;
    return (unsigned)(h < 0 ? h + RG_DETECT_HOURS : h);
}

static const char *str(const char *s)
{
    return s ? s : "";
}

/* --- volume ------------------------------------------------------------------ */

static double threshold_of(const rg_detect_conf *c, double base)
{
    double t = c->k * base;
    return t > (double)c->floor ? t : (double)c->floor;
}

double rg_detect_baseline(const rg_detect_state *s, uint64_t now_ms)
{
    unsigned w = rg_detect_hour_of_week((int64_t)(now_ms / HOUR_MS));
    return s->nobs[w] ? s->base[w] : 0;
}

double rg_detect_threshold(const rg_detect_conf *conf, const rg_detect_state *s, uint64_t now_ms)
{
    return threshold_of(conf, rg_detect_baseline(s, now_ms));
}

static void fold(const rg_detect_conf *c, rg_detect_state *s, int64_t hour, double x)
{
    unsigned w = rg_detect_hour_of_week(hour);
    if (s->nobs[w] == 0)
        s->base[w] = x;
    else
        s->base[w] = c->alpha * x + (1 - c->alpha) * s->base[w];
    if (s->nobs[w] < UINT16_MAX)
        s->nobs[w]++;
}

/* Move the current hour to hour, folding the ones that ended. */
static void roll(const rg_detect_conf *c, rg_detect_state *s, int64_t hour)
{
    if (s->hour == 0) {
        s->hour = hour;
        s->count = 0;
        s->fired = false;
        return;
    }
    if (hour <= s->hour)
        return;
    double x = (double)s->count;
    if (s->fired) {
        /* an hour that fired teaches the baseline at most its threshold */
        unsigned w = rg_detect_hour_of_week(s->hour);
        double t = threshold_of(c, s->nobs[w] ? s->base[w] : 0);
        if (x > t)
            x = t;
    }
    fold(c, s, s->hour, x);
    int64_t gap = hour - s->hour - 1;
    if (gap > FOLD_MAX)
        gap = FOLD_MAX;
    for (int64_t h = hour - gap; h < hour; h++)
        fold(c, s, h, 0);
    s->hour = hour;
    s->count = 0;
    s->fired = false;
}

/* --- logins ------------------------------------------------------------------- */

static void forget_old_logins(rg_detect_state *s, uint64_t now)
{
    size_t o = 0;
    for (size_t i = 0; i < s->nseen; i++)
        if (s->seen[i].ts_ms + HOUR_MS > now)
            s->seen[o++] = s->seen[i];
    s->nseen = o;
}

static void note_login(rg_detect_state *s, uint64_t now, const char *ip, const char *cc)
{
    for (size_t i = 0; i < s->nseen; i++) {
        if (strcmp(s->seen[i].ip, ip) == 0) {
            if (now > s->seen[i].ts_ms)
                s->seen[i].ts_ms = now;
            if (cc[0])
                rg_strlcpy(s->seen[i].cc, cc, sizeof s->seen[i].cc);
            return;
        }
    }
    if (s->nseen == RG_DETECT_SEEN) {
        /* full: the oldest sighting goes */
        size_t old = 0;
        for (size_t i = 1; i < s->nseen; i++)
            if (s->seen[i].ts_ms < s->seen[old].ts_ms)
                old = i;
        s->seen[old] = s->seen[--s->nseen];
    }
    rg_detect_seen *e = &s->seen[s->nseen++];
    memset(e, 0, sizeof *e);
    e->ts_ms = now;
    rg_strlcpy(e->cc, cc, sizeof e->cc);
    rg_strlcpy(e->ip, ip, sizeof e->ip);
}

/* Append item to a comma list unless it is there; silently stops when full. */
static void list_add(char *list, size_t len, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == n && memcmp(p, item, n) == 0)
            return;
        p += l + (end ? 1 : 0);
    }
    size_t used = strlen(list);
    if (used + (used ? 1 : 0) + n + 1 > len)
        return;
    if (used)
        list[used++] = ',';
    memcpy(list + used, item, n + 1);
}

/* Distinct countries and addresses of the hour, as lists; returns the counts. */
static void seen_lists(const rg_detect_state *s, char *ccs, char *ips, size_t len,
                       size_t *ncc, size_t *nip)
{
    ccs[0] = ips[0] = '\0';
    *ncc = 0;
    for (size_t i = 0; i < s->nseen; i++) {
        if (s->seen[i].cc[0]) {
            size_t before = strlen(ccs);
            list_add(ccs, len, s->seen[i].cc);
            if (strlen(ccs) != before)
                (*ncc)++;
        }
        list_add(ips, len, s->seen[i].ip);
    }
    *nip = s->nseen;
}

static bool known_country(const rg_detect_state *s, const char *cc)
{
    for (size_t i = 0; i < s->nknown; i++)
        if (strcmp(s->known[i], cc) == 0)
            return true;
    return false;
}

static void learn_country(rg_detect_state *s, const char *cc)
{
    if (s->nknown == RG_DETECT_KNOWN) {
        memmove(s->known[0], s->known[1], (RG_DETECT_KNOWN - 1) * sizeof s->known[0]);
        s->nknown--;
    }
    rg_strlcpy(s->known[s->nknown++], cc, sizeof s->known[0]);
}

static bool country_valid(const char *cc)
{
    return strlen(cc) == 2 && cc[0] >= 'A' && cc[0] <= 'Z' && cc[1] >= 'A' && cc[1] <= 'Z';
}

/* --- refused ratio ---------------------------------------------------------------- */

static void refused_count(const rg_detect_conf *c, rg_detect_state *s, uint64_t now,
                          bool total, bool refused, uint64_t *sum_total, uint64_t *sum_refused)
{
    uint64_t width = c->refused_window_ms / RG_DETECT_SLICES;
    if (width == 0)
        width = 1;
    int64_t slice = (int64_t)(now / width);
    size_t pos = (size_t)(slice % RG_DETECT_SLICES);
    if (s->slice_at[pos] != slice) {
        if (s->slice_at[pos] > slice) {
            /* an event older than this slot's slice: too late for the window */
            total = refused = false;
        } else {
            s->slice_at[pos] = slice;
            s->total[pos] = s->refused[pos] = 0;
        }
    }
    if (total && s->total[pos] < UINT32_MAX)
        s->total[pos]++;
    if (refused && s->refused[pos] < UINT32_MAX)
        s->refused[pos]++;
    *sum_total = *sum_refused = 0;
    for (size_t i = 0; i < RG_DETECT_SLICES; i++) {
        if (s->slice_at[i] > slice - RG_DETECT_SLICES && s->slice_at[i] <= slice) {
            *sum_total += s->total[i];
            *sum_refused += s->refused[i];
        }
    }
}

static rg_detect_hit *hit_new(const rg_detect_state *s, rg_detect_signal sig, rg_detect_action act,
                              bool configurable, const rg_detect_event *ev, rg_detect_hit *out,
                              size_t *n, size_t max);

/* --- reputation ----------------------------------------------------------------- */

static uint64_t rep_width(const rg_detect_conf *c)
{
    uint64_t w = c->reputation_window_ms / RG_DETECT_REP_SLICES;
    return w ? w : 1;
}

static void rep_clear(rg_detect_state *s)
{
    memset(s->rep_at, 0, sizeof s->rep_at);
    memset(s->rep_sent, 0, sizeof s->rep_sent);
    memset(s->rep_hard, 0, sizeof s->rep_hard);
    memset(s->rep_compl, 0, sizeof s->rep_compl);
}

static void add32(uint32_t *x)
{
    if (*x < UINT32_MAX)
        (*x)++;
}

/* Count one recipient, hard bounce or complaint at now. */
static void rep_count(const rg_detect_conf *c, rg_detect_state *s, uint64_t now, bool sent,
                      bool hard, bool compl)
{
    uint64_t width = rep_width(c);
    if (s->rep_width_ms != width) {
        /* the window was configured anew: slices of another width mean nothing */
        rep_clear(s);
        s->rep_width_ms = width;
    }
    int64_t slice = (int64_t)(now / width);
    size_t pos = (size_t)(slice % RG_DETECT_REP_SLICES);
    if (s->rep_at[pos] != slice) {
        if (s->rep_at[pos] > slice)
            return;             /* older than this slot's slice: outside the window */
        s->rep_at[pos] = slice;
        s->rep_sent[pos] = s->rep_hard[pos] = s->rep_compl[pos] = 0;
    }
    if (sent)
        add32(&s->rep_sent[pos]);
    if (hard)
        add32(&s->rep_hard[pos]);
    if (compl)
        add32(&s->rep_compl[pos]);
}

rg_detect_rates rg_detect_reputation(const rg_detect_conf *conf, const rg_detect_state *s,
                                     uint64_t now_ms)
{
    rg_detect_rates r = { 0, 0, 0 };
    uint64_t width = rep_width(conf);
    if (s->rep_width_ms != width)
        return r;
    int64_t slice = (int64_t)(now_ms / width);
    for (size_t i = 0; i < RG_DETECT_REP_SLICES; i++) {
        if (s->rep_at[i] > slice - RG_DETECT_REP_SLICES && s->rep_at[i] <= slice) {
            r.volume += s->rep_sent[i];
            r.hard += s->rep_hard[i];
            r.complaints += s->rep_compl[i];
        }
    }
    return r;
}

bool rg_detect_rate_passed(uint64_t count, uint64_t volume, uint64_t min, double rate)
{
    if (volume == 0 || volume < min)
        return false;
    /* in parts per million, integers: exactly at the threshold is exact (5% of
     * 1000 is 50, not 50.000000001), and is not above it */
    uint64_t ppm = (uint64_t)(rate * 1e6 + 0.5);   /* rate is within (0, 1] */
    if (count > UINT64_MAX / 1000000)
        return true;
    return count * 1000000 > ppm * volume;
}

/* A reputation signal: did this bounce or complaint take its rate above the threshold? */
static void rep_check(const rg_detect_conf *conf, rg_detect_state *s, const rg_detect_event *ev,
                      rg_detect_signal sig, double rate, rg_detect_hit *out, size_t *n, size_t max)
{
    uint64_t now = ev->ts_ms;
    uint64_t *quiet = sig == RG_SIG_BOUNCE_RATE ? &s->bounce_quiet_ms : &s->complaint_quiet_ms;
    rg_detect_rates r = rg_detect_reputation(conf, s, now);
    uint64_t count = sig == RG_SIG_BOUNCE_RATE ? r.hard : r.complaints;
    if (now < *quiet || !rg_detect_rate_passed(count, r.volume, conf->reputation_min, rate))
        return;
    if (s->rep_strikes && now >= s->rep_last_ms + conf->reputation_window_ms)
        s->rep_strikes = 0;     /* a whole window without an action: start over */
    unsigned na = conf->n_reputation_action ? conf->n_reputation_action : 1;
    unsigned i = s->rep_strikes < na ? s->rep_strikes : na - 1;
    rg_detect_action act = conf->n_reputation_action ? conf->reputation_action[i] : RG_DETECT_THROTTLE;
    rg_detect_hit *h = hit_new(s, sig, act, false, ev, out, n, max);
    if (h) {
        h->window_ms = conf->reputation_window_ms;
        h->volume = r.volume;
        h->count = count;
        h->rate = (double)count / (double)r.volume;
        h->rate_threshold = rate;
        if (!h->cooling && act != RG_DETECT_ALERT) {
            s->rep_strikes++;
            s->rep_last_ms = now;
        }
    }
    /* once per cool-down (at least a slice): the first bounce above the rate
     * is the event, not every one after it */
    uint64_t q = conf->cooldown_ms > rep_width(conf) ? conf->cooldown_ms : rep_width(conf);
    *quiet = now + q;
}

/* --- feeding -------------------------------------------------------------------------- */

static rg_detect_hit *hit_new(const rg_detect_state *s, rg_detect_signal sig, rg_detect_action act,
                              bool configurable, const rg_detect_event *ev, rg_detect_hit *out,
                              size_t *n, size_t max)
{
    if (*n >= max)
        return NULL;
    rg_detect_hit *h = &out[(*n)++];
    memset(h, 0, sizeof *h);
    h->signal = sig;
    h->configurable = configurable;
    h->ts_ms = ev->ts_ms;
    h->cooling = ev->ts_ms < s->cool_until_ms;
    h->action = h->cooling ? RG_DETECT_ALERT : act;
    rg_strlcpy(h->login, str(ev->login), sizeof h->login);
    rg_strlcpy(h->client, str(ev->client), sizeof h->client);
    rg_strlcpy(h->country, str(ev->country), sizeof h->country);
    return h;
}

size_t rg_detect_feed(const rg_detect_conf *conf, rg_detect_state *s, const rg_detect_event *ev,
                      rg_detect_hit *out, size_t max)
{
    return rg_detect_feed_account(conf, NULL, s, ev, out, max);
}

size_t rg_detect_feed_account(const rg_detect_conf *conf, const rg_detect_account *acct,
                              rg_detect_state *s, const rg_detect_event *ev, rg_detect_hit *out,
                              size_t max)
{
    const char *type = str(ev->type), *stage = str(ev->stage);
    const char *verdict = str(ev->verdict), *reason = str(ev->reason);
    uint64_t now = ev->ts_ms;
    size_t n = 0;

    if (strncmp(type, "detection.", 10) == 0)
        return 0;               /* our own detections */
    bool bounce = strcmp(type, "bounce.hard") == 0;
    bool complaint = strcmp(type, "bounce.complaint") == 0;
    if (type[0] && !bounce && !complaint)
        return 0;               /* other kinds of events carry no traffic */
    if (complaint) {
        rep_count(conf, s, now, false, false, true);
        rep_check(conf, s, ev, RG_SIG_COMPLAINT_RATE,
                  acct && acct->complaint_rate > 0 ? acct->complaint_rate : conf->complaint_rate,
                  out, &n, max);
        return n;
    }

    /* volume and the refused ratio: RCPT decisions (one per recipient) */
    /* (ASCII by hand: strcasecmp goes through the locale, once per event) */
    bool rcpt = (stage[0] | 0x20) == 'r' && (stage[1] | 0x20) == 'c' && (stage[2] | 0x20) == 'p' &&
                (stage[3] | 0x20) == 't' && stage[4] == '\0' && !bounce;
    bool accepted = rcpt && strcmp(verdict, "accept") == 0;
    bool suppressed = rcpt && strcmp(reason, "suppressed") == 0;
    if (accepted || suppressed || bounce) {
        uint64_t tot, ref;
        refused_count(conf, s, now, accepted || suppressed, suppressed || bounce, &tot, &ref);
        double ratio = tot ? (double)ref / (double)tot : 0;
        if (tot >= conf->refused_min && ratio >= conf->refused_ratio && now >= s->refused_quiet_ms) {
            rg_detect_hit *h = hit_new(s, RG_SIG_REFUSED, conf->action, true, ev, out, &n, max);
            if (h) {
                h->refused = ref;
                h->total = tot;
                h->ratio = ratio;
            }
            s->refused_quiet_ms = now + conf->refused_window_ms;
        }
    }
    if (accepted || bounce)
        rep_count(conf, s, now, accepted, bounce, false);
    if (bounce)
        rep_check(conf, s, ev, RG_SIG_BOUNCE_RATE,
                  acct && acct->bounce_rate > 0 ? acct->bounce_rate : conf->bounce_rate,
                  out, &n, max);
    if (accepted) {
        int64_t hour = (int64_t)(now / HOUR_MS);
        roll(conf, s, hour);
        if (hour == s->hour) {  /* an older hour's straggler is not counted */
            s->count++;
            double base = rg_detect_baseline(s, now);
            double t = threshold_of(conf, base);
            if (!s->fired && (double)s->count > t) {
                s->fired = true;
                rg_detect_hit *h = hit_new(s, RG_SIG_VOLUME, conf->action, true, ev, out, &n, max);
                if (h) {
                    h->baseline = base;
                    h->threshold = t;
                    h->current = s->count;
                }
            }
        }
    }

    /* logins */
    const char *login = str(ev->login), *client = str(ev->client), *cc = str(ev->country);
    if (login[0] && client[0] && !bounce) {
        if (!country_valid(cc))
            cc = "";
        forget_old_logins(s, now);
        note_login(s, now, client, cc);
        if (cc[0] && !known_country(s, cc)) {
            if (s->nknown > 0) {
                rg_detect_hit *h = hit_new(s, RG_SIG_NEW_COUNTRY, RG_DETECT_ALERT, false, ev, out,
                                           &n, max);
                if (h) {
                    for (size_t i = 0; i < s->nknown; i++)
                        list_add(h->known, sizeof h->known, s->known[i]);
                }
            }
            learn_country(s, cc);
        }
        char ccs[RG_DETECT_LIST_MAX], ips[RG_DETECT_LIST_MAX];
        size_t ncc, nip;
        seen_lists(s, ccs, ips, sizeof ccs, &ncc, &nip);
        rg_detect_signal sig = RG_SIG_VOLUME;
        bool geo = false;
        if (ncc >= conf->countries_per_hour) {
            sig = RG_SIG_COUNTRIES;
            geo = true;
        } else if (nip > conf->ips_per_hour) {
            sig = RG_SIG_IPS;
            geo = true;
        }
        if (geo && now >= s->geo_quiet_ms) {
            rg_detect_hit *h = hit_new(s, sig, RG_DETECT_SUSPEND, false, ev, out, &n, max);
            if (h) {
                rg_strlcpy(h->countries, ccs, sizeof h->countries);
                rg_strlcpy(h->ips, ips, sizeof h->ips);
            }
            s->geo_quiet_ms = now + HOUR_MS;
        }
    }
    return n;
}

void rg_detect_acted(const rg_detect_conf *conf, rg_detect_state *s, uint64_t now_ms)
{
    if (now_ms + conf->cooldown_ms > s->cool_until_ms)
        s->cool_until_ms = now_ms + conf->cooldown_ms;
}

void rg_detect_resumed(const rg_detect_conf *conf, rg_detect_state *s, uint64_t now_ms)
{
    s->nseen = 0;
    s->geo_quiet_ms = 0;
    s->rep_strikes = 0;
    s->cool_until_ms = now_ms + conf->cooldown_ms;
}

/* --- the state as text fields ------------------------------------------------------------ */

/* A growing string; cannot fail (rg_realloc aborts on no memory). */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (w < 0)
            return;
        if (b->p && b->n + (size_t)w < b->cap) {
            b->n += (size_t)w;
            return;
        }
        b->cap = (b->cap + (size_t)w + 64) * 2;
        b->p = rg_realloc(b->p, b->cap);
        if (b->n == 0)
            b->p[0] = '\0';
    }
}

static char *sb_take(sbuf *b)
{
    if (b->p == NULL)
        return rg_strdup("");
    return b->p;
}

static char *u64text(uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, v);
    return rg_strdup(num);
}

/*
 * Fields: b baseline (168 numbers), o observations (168), h hour, n count,
 * f fired, c cool_until (ms), k known countries "US,DE", s logins
 * "TS/CC/IP ..." (CC may be empty), g geo quiet (ms), r refused slices
 * "SLICE/TOTAL/REFUSED ...", q refused quiet (ms), p reputation slices
 * "WIDTH SLICE/SENT/HARD/COMPLAINTS ...", x bounce_rate quiet (ms), y
 * complaint_rate quiet (ms), e reputation actions "STRIKES/LAST_MS".
 */
bool rg_detect_same_baseline(const rg_detect_state *a, const rg_detect_state *b)
{
    return memcmp(a->base, b->base, sizeof a->base) == 0 &&
           memcmp(a->nobs, b->nobs, sizeof a->nobs) == 0;
}

size_t rg_detect_state_to_fields(const rg_detect_state *s, bool with_baseline, const char **keys,
                                 char **values)
{
    size_t n = 0;
    if (with_baseline) {
        sbuf b = { 0 }, o = { 0 };
        for (size_t i = 0; i < RG_DETECT_HOURS; i++) {
            sb_printf(&b, "%s%.6g", i ? "," : "", s->base[i]);
            sb_printf(&o, "%s%u", i ? "," : "", (unsigned)s->nobs[i]);
        }
        keys[n] = "b"; values[n++] = sb_take(&b);
        keys[n] = "o"; values[n++] = sb_take(&o);
    }
    keys[n] = "h"; values[n++] = u64text((uint64_t)(s->hour > 0 ? s->hour : 0));
    keys[n] = "n"; values[n++] = u64text(s->count);
    keys[n] = "f"; values[n++] = u64text(s->fired ? 1 : 0);
    keys[n] = "c"; values[n++] = u64text(s->cool_until_ms);
    sbuf k = { 0 };
    for (size_t i = 0; i < s->nknown; i++)
        sb_printf(&k, "%s%s", i ? "," : "", s->known[i]);
    keys[n] = "k"; values[n++] = sb_take(&k);
    sbuf l = { 0 };
    for (size_t i = 0; i < s->nseen; i++)
        sb_printf(&l, "%s%" PRIu64 "/%s/%s", i ? " " : "", s->seen[i].ts_ms, s->seen[i].cc,
                  s->seen[i].ip);
    keys[n] = "s"; values[n++] = sb_take(&l);
    keys[n] = "g"; values[n++] = u64text(s->geo_quiet_ms);
    sbuf r = { 0 };
    for (size_t i = 0; i < RG_DETECT_SLICES; i++)
        if (s->total[i] || s->refused[i])
            sb_printf(&r, "%s%" PRId64 "/%u/%u", r.n ? " " : "", s->slice_at[i],
                      (unsigned)s->total[i], (unsigned)s->refused[i]);
    keys[n] = "r"; values[n++] = sb_take(&r);
    keys[n] = "q"; values[n++] = u64text(s->refused_quiet_ms);
    sbuf p = { 0 };
    sb_printf(&p, "%" PRIu64, s->rep_width_ms);
    for (size_t i = 0; i < RG_DETECT_REP_SLICES; i++)
        if (s->rep_sent[i] || s->rep_hard[i] || s->rep_compl[i])
            sb_printf(&p, " %" PRId64 "/%u/%u/%u", s->rep_at[i], (unsigned)s->rep_sent[i],
                      (unsigned)s->rep_hard[i], (unsigned)s->rep_compl[i]);
    keys[n] = "p"; values[n++] = sb_take(&p);
    keys[n] = "x"; values[n++] = u64text(s->bounce_quiet_ms);
    keys[n] = "y"; values[n++] = u64text(s->complaint_quiet_ms);
    sbuf e = { 0 };
    sb_printf(&e, "%u/%" PRIu64, s->rep_strikes, s->rep_last_ms);
    keys[n] = "e"; values[n++] = sb_take(&e);
    return n;
}

static int parse_u64(const char *v, uint64_t *out)
{
    char *end;
    if (v[0] < '0' || v[0] > '9')
        return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = x;
    return 0;
}

/* A comma list of n numbers into d (as doubles).  0 or -1. */
static int parse_numbers(const char *v, double *d, size_t n)
{
    const char *p = v;
    for (size_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno != 0 || !(x >= 0) || isinf(x))
            return -1;
        d[i] = x;
        if (i + 1 < n) {
            if (*end != ',')
                return -1;
            p = end + 1;
        } else if (*end != '\0') {
            return -1;
        }
    }
    return 0;
}

static int parse_known(rg_detect_state *s, const char *v)
{
    s->nknown = 0;
    char *copy = rg_strdup(v), *save = NULL;
    int ret = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!country_valid(t) || s->nknown == RG_DETECT_KNOWN) {
            ret = -1;
            break;
        }
        rg_strlcpy(s->known[s->nknown++], t, sizeof s->known[0]);
    }
    free(copy);
    if (ret < 0)
        s->nknown = 0;
    return ret;
}

static int parse_seen(rg_detect_state *s, const char *v)
{
    s->nseen = 0;
    char *copy = rg_strdup(v), *save = NULL;
    int ret = 0;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *a = strchr(t, '/'), *b = a ? strchr(a + 1, '/') : NULL;
        uint64_t ts;
        if (b == NULL || s->nseen == RG_DETECT_SEEN) {
            ret = -1;
            break;
        }
        *a = *b = '\0';
        if (parse_u64(t, &ts) < 0 || (a[1] && !country_valid(a + 1)) || b[1] == '\0' ||
            strlen(b + 1) >= sizeof s->seen[0].ip) {
            ret = -1;
            break;
        }
        rg_detect_seen *e = &s->seen[s->nseen++];
        memset(e, 0, sizeof *e);
        e->ts_ms = ts;
        rg_strlcpy(e->cc, a + 1, sizeof e->cc);
        rg_strlcpy(e->ip, b + 1, sizeof e->ip);
    }
    free(copy);
    if (ret < 0)
        s->nseen = 0;
    return ret;
}

static int parse_slices(rg_detect_state *s, const char *v)
{
    memset(s->slice_at, 0, sizeof s->slice_at);
    memset(s->total, 0, sizeof s->total);
    memset(s->refused, 0, sizeof s->refused);
    char *copy = rg_strdup(v), *save = NULL;
    int ret = 0;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        long long slice;
        unsigned tot, ref;
        char extra;
        if (sscanf(t, "%lld/%u/%u%c", &slice, &tot, &ref, &extra) != 3 || slice < 0) {
            ret = -1;
            break;
        }
        size_t pos = (size_t)(slice % RG_DETECT_SLICES);
        s->slice_at[pos] = slice;
        s->total[pos] = tot;
        s->refused[pos] = ref;
    }
    free(copy);
    if (ret < 0) {
        memset(s->slice_at, 0, sizeof s->slice_at);
        memset(s->total, 0, sizeof s->total);
        memset(s->refused, 0, sizeof s->refused);
    }
    return ret;
}

/* "WIDTH SLICE/SENT/HARD/COMPLAINTS ..." */
static int parse_rep(rg_detect_state *s, const char *v)
{
    rep_clear(s);
    s->rep_width_ms = 0;
    char *copy = rg_strdup(v), *save = NULL;
    int ret = 0;
    char *t = strtok_r(copy, " ", &save);
    if (t == NULL || parse_u64(t, &s->rep_width_ms) < 0 || s->rep_width_ms == 0)
        ret = -1;
    while (ret == 0 && (t = strtok_r(NULL, " ", &save)) != NULL) {
        long long slice;
        unsigned sent, hard, compl;
        char extra;
        if (sscanf(t, "%lld/%u/%u/%u%c", &slice, &sent, &hard, &compl, &extra) != 4 || slice < 0) {
            ret = -1;
            break;
        }
        size_t pos = (size_t)(slice % RG_DETECT_REP_SLICES);
        s->rep_at[pos] = slice;
        s->rep_sent[pos] = sent;
        s->rep_hard[pos] = hard;
        s->rep_compl[pos] = compl;
    }
    free(copy);
    if (ret < 0) {
        rep_clear(s);
        s->rep_width_ms = 0;
    }
    return ret;
}

size_t rg_detect_state_from_fields(rg_detect_state *s, char *const *keys, char *const *values,
                                   size_t n)
{
    size_t bad = 0;
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i], *v = values[i];
        uint64_t x;
        if (strcmp(k, "b") == 0) {
            if (parse_numbers(v, s->base, RG_DETECT_HOURS) < 0) {
                memset(s->base, 0, sizeof s->base);
                memset(s->nobs, 0, sizeof s->nobs);
                bad++;
            }
        } else if (strcmp(k, "o") == 0) {
            double d[RG_DETECT_HOURS];
            if (parse_numbers(v, d, RG_DETECT_HOURS) < 0) {
                memset(s->nobs, 0, sizeof s->nobs);
                bad++;
            } else {
                for (size_t j = 0; j < RG_DETECT_HOURS; j++)
                    s->nobs[j] = d[j] > UINT16_MAX ? UINT16_MAX : (uint16_t)d[j];
            }
        } else if (strcmp(k, "k") == 0) {
            bad += parse_known(s, v) < 0;
        } else if (strcmp(k, "s") == 0) {
            bad += parse_seen(s, v) < 0;
        } else if (strcmp(k, "r") == 0) {
            bad += parse_slices(s, v) < 0;
        } else if (strcmp(k, "p") == 0) {
            bad += parse_rep(s, v) < 0;
        } else if (strcmp(k, "e") == 0) {
            unsigned long long last;
            unsigned strikes;
            char extra;
            if (sscanf(v, "%u/%llu%c", &strikes, &last, &extra) != 2 || strikes > 1000) {
                bad++;
            } else {
                s->rep_strikes = strikes;
                s->rep_last_ms = last;
            }
        } else if (strlen(k) == 1 && strchr("hnfcgqxy", k[0])) {
            if (parse_u64(v, &x) < 0) {
                bad++;
                continue;
            }
            switch (k[0]) {
            case 'h': s->hour = x > INT64_MAX ? 0 : (int64_t)x; break;
            case 'n': s->count = x; break;
            case 'f': s->fired = x != 0; break;
            case 'c': s->cool_until_ms = x; break;
            case 'g': s->geo_quiet_ms = x; break;
            case 'x': s->bounce_quiet_ms = x; break;
            case 'y': s->complaint_quiet_ms = x; break;
            default: s->refused_quiet_ms = x; break;
            }
        }
    }
    /* a baseline without its observations (or the reverse) is no baseline */
    for (size_t j = 0; j < RG_DETECT_HOURS; j++)
        if (s->nobs[j] == 0)
            s->base[j] = 0;
    return bad;
}
