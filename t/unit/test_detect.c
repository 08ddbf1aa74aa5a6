/*
 * test_detect.c - compromised-account detection (policy/detect.c) on a
 * replayed history: the clock is the events' own time, so weeks of traffic
 * replay in a moment.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit.h"

#include "account.h"
#include "config.h"
#include "detect.h"

#define HOUR 3600000ull
#define DAY (24 * HOUR)
#define WEEK (7 * DAY)

static rg_detect_conf conf_default(void)
{
    rg_config *c = rg_config_new_default();
    rg_detect_conf d = c->detect;
    rg_config_free(c);
    return d;
}

/* 2026-11-02 00:00 UTC, a Monday. */
static uint64_t monday(void)
{
    struct tm tm = { 0 };
    tm.tm_year = 2026 - 1900;
    tm.tm_mon = 10;
    tm.tm_mday = 2;
    return (uint64_t)timegm(&tm) * 1000;
}

/* The normal profile: 60 recipients an hour on weekdays 9-17 UTC, 6 otherwise. */
static unsigned normal(uint64_t hour_start)
{
    uint64_t d = (hour_start - monday()) / DAY % 7, h = hour_start / HOUR % 24;
    return d < 5 && h >= 9 && h < 17 ? 60 : 6;
}

typedef struct replay {
    rg_detect_hit hits[64];
    size_t nhits;
} replay;

static void rcpt(const rg_detect_conf *c, rg_detect_state *s, uint64_t ts, const char *verdict,
                 const char *reason, replay *r)
{
    rg_detect_event ev = { .ts_ms = ts, .stage = "rcpt", .verdict = verdict, .reason = reason,
                           .login = "alice", .client = "", .country = "" };
    rg_detect_hit h[4];
    size_t n = rg_detect_feed(c, s, &ev, h, 4);
    for (size_t i = 0; i < n && r->nhits < 64; i++)
        r->hits[r->nhits++] = h[i];
}

/* n accepted recipients spread over the hour that starts at t. */
static void hour_of(const rg_detect_conf *c, rg_detect_state *s, uint64_t t, unsigned n, replay *r)
{
    for (unsigned i = 0; i < n; i++)
        rcpt(c, s, t + (uint64_t)i * (HOUR / n), "accept", "ok", r);
}

/* Normal traffic for every hour of [from, to). */
static void history(const rg_detect_conf *c, rg_detect_state *s, uint64_t from, uint64_t to,
                    replay *r)
{
    for (uint64_t t = from; t < to; t += HOUR)
        hour_of(c, s, t, normal(t), r);
}

static void test_hour_of_week(void **state)
{
    (void)state;
    int64_t h = (int64_t)(monday() / HOUR);
    CHECK_INT("monday 00", rg_detect_hour_of_week(h), 0);
    CHECK_INT("monday 10", rg_detect_hour_of_week(h + 10), 10);
    CHECK_INT("sunday 23", rg_detect_hour_of_week(h + 167), 167);
    CHECK_INT("next monday", rg_detect_hour_of_week(h + 168), 0);
    CHECK_INT("epoch: thursday 00", rg_detect_hour_of_week(0), 72);
}

static void test_volume_replay(void **state)
{
    (void)state;
    rg_detect_conf c = conf_default();
    c.action = RG_DETECT_THROTTLE;
    rg_detect_state *s = calloc(1, sizeof *s);
    replay r = { 0 };
    uint64_t t0 = monday();

    /* Four weeks of normal traffic build the baseline and raise nothing. */
    history(&c, s, t0, t0 + 4 * WEEK, &r);
    CHECK_INT("normal weeks: no detection", r.nhits, 0);
    uint64_t spike = t0 + 4 * WEEK + 10 * HOUR;     /* Monday 10:00 */
    double base = rg_detect_baseline(s, spike);
    if (fabs(base - 60) > 0.01)
        fail_msg("baseline of Monday 10:00 = %f, want 60", base);
    if (fabs(rg_detect_baseline(s, spike - 8 * HOUR) - 6) > 0.01)
        fail_msg("baseline of Monday 02:00 = %f, want 6", rg_detect_baseline(s, spike - 8 * HOUR));
    CHECK_INT("threshold = k x baseline", (long long)rg_detect_threshold(&c, s, spike), 300);
    /* the quiet hours are below the floor: the floor holds */
    CHECK_INT("threshold at night = floor", (long long)rg_detect_threshold(&c, s, spike - 8 * HOUR),
              100);

    /* Monday up to the spike, then 20 x the usual hour. */
    history(&c, s, t0 + 4 * WEEK, spike, &r);
    CHECK_INT("before the spike", r.nhits, 0);
    hour_of(&c, s, spike, 20 * 60, &r);
    CHECK_INT("the spike fires once", r.nhits, 1);
    rg_detect_hit *h = &r.hits[0];
    CHECK_STR("signal", rg_detect_signal_name(h->signal), "volume");
    CHECK_INT("configured action", h->action, RG_DETECT_THROTTLE);
    CHECK_INT("configurable", h->configurable, 1);
    CHECK_INT("not cooling", h->cooling, 0);
    CHECK_INT("evidence: current", h->current, 301);
    CHECK_INT("evidence: threshold", (long long)h->threshold, 300);
    if (fabs(h->baseline - 60) > 0.01)
        fail_msg("evidence: baseline %f, want 60", h->baseline);
    /* fired at the 301st recipient, i.e. a quarter into the hour */
    if (h->ts_ms < spike || h->ts_ms > spike + HOUR / 4)
        fail_msg("fired at +%llu ms", (unsigned long long)(h->ts_ms - spike));

    /* The detector acts (throttle) and the account cools down. */
    rg_detect_acted(&c, s, h->ts_ms);
    CHECK_U64("cool-down end", s->cool_until_ms, h->ts_ms + c.cooldown_ms);

    /* Within the cool-down a second spike is only reported. */
    r.nhits = 0;
    hour_of(&c, s, spike + HOUR, 20 * 60, &r);
    CHECK_INT("spike while cooling", r.nhits, 1);
    CHECK_INT("cooling", r.hits[0].cooling, 1);
    CHECK_INT("cooling: alert only", r.hits[0].action, RG_DETECT_ALERT);

    /* After the cool-down normal traffic flows again: a week of it raises nothing. */
    r.nhits = 0;
    uint64_t after = spike + 2 * HOUR;
    history(&c, s, after, after + WEEK - 2 * HOUR, &r);
    CHECK_INT("normal week after the cool-down", r.nhits, 0);

    /* The spike hour taught the baseline at most its threshold (300), not 1200. */
    double b2 = rg_detect_baseline(s, spike + WEEK);
    if (fabs(b2 - (c.alpha * 300 + (1 - c.alpha) * 60)) > 0.01)
        fail_msg("baseline after the spike = %f, want %f", b2, c.alpha * 300 + (1 - c.alpha) * 60);

    /* And a new spike after the cool-down is acted on again. */
    r.nhits = 0;
    hour_of(&c, s, spike + WEEK, 20 * 60, &r);
    CHECK_INT("next spike", r.nhits, 1);
    CHECK_INT("acted again", r.hits[0].action, RG_DETECT_THROTTLE);
    free(s);
}

/* The engine applies a throttle until throttle_until, and no longer. */
static void test_throttle_lasts(void **state)
{
    (void)state;
    rg_account *a = rg_account_new("alice");
    char err[256];
    assert_null(rg_account_throttle(a, 1000));
    assert_int_equal(rg_account_set(a, "throttle", "rate 10/1h name=throttle", err, sizeof err), 0);
    assert_int_equal(rg_account_set(a, "throttle_until", "2000", err, sizeof err), 0);
    const rg_limit *l = rg_account_throttle(a, 1999999);
    assert_non_null(l);
    CHECK_STR("throttle name", l->name, "throttle");
    CHECK_U64("throttle count", l->count, 10);
    assert_null(rg_account_throttle(a, 2000000));
    assert_int_equal(rg_account_set(a, "throttle_until", "later", err, sizeof err), -1);
    assert_int_equal(rg_account_set(a, "detect_action", "suspend", err, sizeof err), 0);
    CHECK_INT("detect_action", a->detect_action, RG_DETECT_SUSPEND);
    assert_int_equal(rg_account_set(a, "detect_action", "explode", err, sizeof err), -1);
    CHECK_HAS("message", err, "alert, throttle or suspend");

    /* the fields survive the trip through Redis */
    const char *keys[32];
    char *values[32];
    size_t n = rg_account_to_fields(a, keys, values, 32);
    rg_account *b = rg_account_from_fields("alice", (char *const *)keys, values, n, err, sizeof err);
    assert_non_null(b);
    CHECK_INT("round trip: action", b->detect_action, RG_DETECT_SUSPEND);
    assert_non_null(rg_account_throttle(b, 1999999));
    CHECK_INT("round trip: until", b->throttle_until, 2000);
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    rg_account_free(b);
    rg_account_free(a);
}

static size_t login(const rg_detect_conf *c, rg_detect_state *s, uint64_t ts, const char *ip,
                    const char *cc, rg_detect_hit *h, size_t max)
{
    rg_detect_event ev = { .ts_ms = ts, .stage = "rcpt", .verdict = "accept", .reason = "ok",
                           .login = "alice@relay.test", .client = ip, .country = cc };
    return rg_detect_feed(c, s, &ev, h, max);
}

static void test_countries(void **state)
{
    (void)state;
    rg_detect_conf c = conf_default();
    rg_detect_state *s = calloc(1, sizeof *s);
    rg_detect_hit h[4];
    uint64_t t = monday();

    /* The first country is learnt without a word; it stays quiet. */
    CHECK_INT("first country", login(&c, s, t, "192.0.2.1", "US", h, 4), 0);
    CHECK_INT("same country", login(&c, s, t + HOUR * 30, "192.0.2.2", "US", h, 4), 0);
    /* A new country alerts, with the known ones as evidence. */
    t += 40 * HOUR;
    CHECK_INT("new country", login(&c, s, t, "198.51.100.1", "DE", h, 4), 1);
    CHECK_STR("signal", rg_detect_signal_name(h[0].signal), "new_country");
    CHECK_INT("alert", h[0].action, RG_DETECT_ALERT);
    CHECK_STR("country", h[0].country, "DE");
    CHECK_STR("known before", h[0].known, "US");
    CHECK_STR("client", h[0].client, "198.51.100.1");
    CHECK_INT("known now", login(&c, s, t + 1000, "198.51.100.1", "DE", h, 4), 0);

    /* A third country within the hour: new_country and countries -> suspend. */
    CHECK_INT("US again", login(&c, s, t + 5 * 60000, "192.0.2.1", "US", h, 4), 0);
    size_t n = login(&c, s, t + 10 * 60000, "203.0.113.9", "BR", h, 4);
    CHECK_INT("third country", n, 2);
    CHECK_STR("first hit", rg_detect_signal_name(h[0].signal), "new_country");
    CHECK_STR("second hit", rg_detect_signal_name(h[1].signal), "countries");
    CHECK_INT("suspend", h[1].action, RG_DETECT_SUSPEND);
    CHECK_INT("not configurable", h[1].configurable, 0);
    CHECK_HAS("countries seen", h[1].countries, "DE");
    CHECK_HAS("countries seen", h[1].countries, "BR");
    CHECK_HAS("countries seen", h[1].countries, "US");
    CHECK_HAS("ips seen", h[1].ips, "203.0.113.9");
    /* the login from 192.0.2.2 was 10 hours earlier: outside the hour */
    if (strstr(h[1].ips, "192.0.2.2"))
        fail_msg("192.0.2.2 is not within the hour: %s", h[1].ips);
    /* not again within the hour */
    CHECK_INT("quiet", login(&c, s, t + 20 * 60000, "203.0.113.10", "BR", h, 4), 0);

    /* resume forgets the hour's logins and cools down: the next logins from
     * two countries are fine, and a third within the cool-down only alerts */
    uint64_t r = t + 30 * 60000;
    rg_detect_resumed(&c, s, r);
    CHECK_INT("after resume", login(&c, s, r + 1000, "198.51.100.1", "DE", h, 4), 0);
    CHECK_INT("after resume, US", login(&c, s, r + 2000, "192.0.2.1", "US", h, 4), 0);
    n = login(&c, s, r + 3000, "203.0.113.9", "BR", h, 4);
    CHECK_INT("three again", n, 1);
    CHECK_INT("cooling: alert", h[0].action, RG_DETECT_ALERT);
    CHECK_INT("cooling", h[0].cooling, 1);
    free(s);
}

static void test_ips(void **state)
{
    (void)state;
    rg_detect_conf c = conf_default();
    c.ips_per_hour = 5;
    rg_detect_state *s = calloc(1, sizeof *s);
    rg_detect_hit h[4];
    uint64_t t = monday();
    char ip[32];
    for (int i = 1; i <= 5; i++) {
        snprintf(ip, sizeof ip, "192.0.2.%d", i);
        CHECK_INT(ip, login(&c, s, t + (uint64_t)i * 1000, ip, "US", h, 4), 0);
    }
    CHECK_INT("the 6th address", login(&c, s, t + 6000, "192.0.2.6", "US", h, 4), 1);
    CHECK_STR("signal", rg_detect_signal_name(h[0].signal), "ips");
    CHECK_INT("suspend", h[0].action, RG_DETECT_SUSPEND);
    CHECK_HAS("evidence", h[0].ips, "192.0.2.6");
    CHECK_HAS("evidence", h[0].ips, "192.0.2.1");
    /* an hour later the old addresses are gone */
    s->geo_quiet_ms = 0;
    CHECK_INT("an hour later", login(&c, s, t + HOUR + 7000, "192.0.2.7", "US", h, 4), 0);
    free(s);
}

static void test_refused(void **state)
{
    (void)state;
    rg_detect_conf c = conf_default();
    c.action = RG_DETECT_SUSPEND;
    c.floor = 100000;           /* this is not about volume */
    rg_detect_state *s = calloc(1, sizeof *s);
    replay r = { 0 };
    uint64_t t = monday();
    /* 150 recipients, 10 % suppressed: below the ratio */
    for (int i = 0; i < 150; i++)
        rcpt(&c, s, t + (uint64_t)i * 1000, i % 10 == 0 ? "reject" : "accept",
             i % 10 == 0 ? "suppressed" : "ok", &r);
    CHECK_INT("10 %", r.nhits, 0);
    /* other refusals (rate limits) are not refused recipients */
    for (int i = 0; i < 50; i++)
        rcpt(&c, s, t + 200000 + (uint64_t)i, "tempfail", "rate_limit", &r);
    CHECK_INT("rate limits", r.nhits, 0);
    /* hard bounces count as refused (unknown recipients) */
    for (int i = 0; i < 30; i++) {
        rg_detect_event ev = { .ts_ms = t + 300000 + (uint64_t)i, .type = "bounce.hard",
                               .stage = "bounce", .verdict = "hard", .reason = "suppressed" };
        rg_detect_hit h[4];
        size_t n = rg_detect_feed(&c, s, &ev, h, 4);
        for (size_t j = 0; j < n; j++)
            r.hits[r.nhits++] = h[j];
    }
    CHECK_INT("ratio reached", r.nhits, 1);
    CHECK_STR("signal", rg_detect_signal_name(r.hits[0].signal), "refused");
    CHECK_INT("action", r.hits[0].action, RG_DETECT_SUSPEND);
    CHECK_INT("total", r.hits[0].total, 150);
    /* 15 suppressed + bounces until 20 % of 150 = 30 refused */
    CHECK_INT("refused", r.hits[0].refused, 30);
    /* an old window is forgotten */
    r.nhits = 0;
    for (int i = 0; i < 120; i++)
        rcpt(&c, s, t + 2 * HOUR + (uint64_t)i * 1000, "accept", "ok", &r);
    CHECK_INT("fresh window", r.nhits, 0);
    /* detection.* events are not traffic */
    rg_detect_event own = { .ts_ms = t + 3 * HOUR, .type = "detection.volume", .stage = "rcpt",
                            .verdict = "accept", .login = "alice", .client = "192.0.2.1",
                            .country = "US" };
    rg_detect_hit h[4];
    CHECK_INT("own events", rg_detect_feed(&c, s, &own, h, 4), 0);
    free(s);
}

static void test_fields_round_trip(void **state)
{
    (void)state;
    rg_detect_conf c = conf_default();
    rg_detect_state *s = calloc(1, sizeof *s), *t = calloc(1, sizeof *t);
    replay r = { 0 };
    rg_detect_hit h[4];
    uint64_t t0 = monday();
    history(&c, s, t0, t0 + 2 * WEEK + 5 * HOUR, &r);
    login(&c, s, t0 + 2 * WEEK + 5 * HOUR, "192.0.2.1", "US", h, 4);
    login(&c, s, t0 + 2 * WEEK + 5 * HOUR + 1, "2001:db8::1", "DE", h, 4);
    rcpt(&c, s, t0 + 2 * WEEK + 5 * HOUR + 2, "reject", "suppressed", &r);
    rg_detect_acted(&c, s, t0 + 2 * WEEK);

    const char *keys[RG_DETECT_FIELDS];
    char *values[RG_DETECT_FIELDS];
    size_t n = rg_detect_state_to_fields(s, false, keys, values);
    CHECK_INT("fields without the baseline", n, RG_DETECT_FIELDS - 2);
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    n = rg_detect_state_to_fields(s, true, keys, values);
    CHECK_INT("fields", n, RG_DETECT_FIELDS);
    CHECK_INT("parses", rg_detect_state_from_fields(t, (char *const *)keys, values, n), 0);
    CHECK_INT("hour", t->hour, s->hour);
    CHECK_U64("count", t->count, s->count);
    CHECK_U64("cool", t->cool_until_ms, s->cool_until_ms);
    CHECK_INT("known", t->nknown, 2);
    CHECK_STR("known[1]", t->known[1], "DE");
    CHECK_INT("seen", t->nseen, 2);
    CHECK_STR("seen v6", t->seen[1].ip, "2001:db8::1");
    for (size_t i = 0; i < RG_DETECT_HOURS; i++) {
        if (fabs(t->base[i] - s->base[i]) > 1e-3 * (1 + s->base[i]) || t->nobs[i] != s->nobs[i])
            fail_msg("bucket %zu: %f/%u, want %f/%u", i, t->base[i], t->nobs[i], s->base[i],
                     s->nobs[i]);
    }
    uint64_t tt = 0, ss = 0;
    for (size_t i = 0; i < RG_DETECT_SLICES; i++) {
        tt += t->refused[i];
        ss += s->refused[i];
    }
    CHECK_U64("refused slices", tt, ss);
    /* (%.6g keeps 6 digits: equal baselines are compared in memory, not as text) */
    CHECK_INT("same baseline", rg_detect_same_baseline(s, s), 1);
    t->base[10] += 1;
    CHECK_INT("other baseline", rg_detect_same_baseline(s, t), 0);
    for (size_t i = 0; i < n; i++)
        free(values[i]);

    /* Damaged fields cost their part of the state, never a crash. */
    static const struct { const char *k, *v; } bad[] = {
        { "b", "1,2,3" }, { "o", "x" }, { "h", "-5" }, { "k", "USA,DE" },
        { "s", "12/US" }, { "s", "x/US/1.2.3.4" }, { "r", "1/2" }, { "c", "" }, { "zz", "ignored" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *k[1] = { (char *)bad[i].k }, *v[1] = { (char *)bad[i].v };
        size_t nb = rg_detect_state_from_fields(t, k, v, 1);
        CHECK_INT(bad[i].k, nb, strcmp(bad[i].k, "zz") == 0 ? 0 : 1);
    }
    free(s);
    free(t);
}

/* --- reputation ------------------------------------------------------------------ */

/* One event of the reputation signals: "accept" (an accepted recipient),
 * "hard" (bounce.hard) or "complaint" (bounce.complaint). */
static size_t rep_event(const rg_detect_conf *c, const rg_detect_account *acct, rg_detect_state *s,
                        uint64_t ts, const char *kind, replay *r)
{
    rg_detect_event ev = { .ts_ms = ts };
    if (strcmp(kind, "accept") == 0) {
        ev.stage = "rcpt";
        ev.verdict = "accept";
        ev.reason = "ok";
    } else {
        ev.type = strcmp(kind, "hard") == 0 ? "bounce.hard" : "bounce.complaint";
        ev.stage = "bounce";
        ev.verdict = kind;
        ev.reason = "suppressed";
    }
    rg_detect_hit h[4];
    size_t n = rg_detect_feed_account(c, acct, s, &ev, h, 4);
    for (size_t i = 0; i < n; i++)
        if (h[i].signal == RG_SIG_BOUNCE_RATE || h[i].signal == RG_SIG_COMPLAINT_RATE)
            r->hits[r->nhits++] = h[i];
    return n;
}

static rg_detect_conf conf_reputation(void)
{
    rg_detect_conf c = conf_default();
    c.floor = 1000000;              /* not about volume, */
    c.refused_min = 1000000;        /* nor about the refused ratio */
    return c;
}

/* The rule itself: count / volume above the rate, volume at least min. */
static void test_rate_rule(void **state)
{
    (void)state;
    static const struct {
        const char *label;
        uint64_t count, volume, min;
        double rate;
        bool passed;
    } cases[] = {
        { "5% of 1000 is exactly at 5%: not above", 50, 1000, 1000, 0.05, false },
        { "51 of 1000 is above 5%", 51, 1000, 1000, 0.05, true },
        { "0.1% of 1000 exactly: not above", 1, 1000, 1000, 0.001, false },
        { "2 of 1000 is above 0.1%", 2, 1000, 1000, 0.001, true },
        { "0.1% exactly at a large volume", 1000, 1000000, 1000, 0.001, false },
        { "one more at a large volume", 1001, 1000000, 1000, 0.001, true },
        { "below the minimum volume", 500, 999, 1000, 0.05, false },
        { "exactly the minimum volume", 500, 1000, 1000, 0.05, true },
        { "no volume at all", 5, 0, 1, 0.05, false },
        { "a rate of 100% is never passed", 1000, 1000, 1, 1.0, false },
        { "more bounces than recipients pass 100%", 1001, 1000, 1, 1.0, true },
        { "0.07% (thresholds in ppm)", 8, 10000, 1000, 0.0007, true },
        { "0.07% exactly", 7, 10000, 1000, 0.0007, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_INT(cases[i].label,
                  rg_detect_rate_passed(cases[i].count, cases[i].volume, cases[i].min, cases[i].rate),
                  cases[i].passed);
    /* the thresholds as written in a configuration */
    double d = 0;
    CHECK_INT("5%", rg_rate_parse("5%", &d), 0);
    CHECK_INT("5% of 1000: 50 is not above", rg_detect_rate_passed(50, 1000, 1, d), 0);
    CHECK_INT("0.1%", rg_rate_parse("0.1%", &d), 0);
    CHECK_INT("0.1% of 1000: 1 is not above", rg_detect_rate_passed(1, 1000, 1, d), 0);
    CHECK_INT("0.1% of 1000: 2 is", rg_detect_rate_passed(2, 1000, 1, d), 1);
    CHECK_INT("a fraction", rg_rate_parse("0.05", &d), 0);
    CHECK_INT("0.05 = 5%", rg_detect_rate_passed(51, 1000, 1, d), 1);
    static const char *const bad[] = { "0", "0%", "-1%", "101%", "1.5", "5 %", "5%%", "abc", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(bad[i], rg_rate_parse(bad[i], &d), -1);
}

/* The window: 24 slices of reputation_window; the oldest falls out whole. */
static void test_rate_window(void **state)
{
    (void)state;
    rg_detect_conf c = conf_reputation();
    c.reputation_window_ms = DAY;       /* slices of an hour */
    c.reputation_min = 1000;
    rg_detect_state *s = calloc(1, sizeof *s);
    replay r = { 0 };
    uint64_t t = monday() + 10 * HOUR;
    for (int i = 0; i < 1000; i++)
        rep_event(&c, NULL, s, t + (uint64_t)i, "accept", &r);
    rg_detect_rates w = rg_detect_reputation(&c, s, t + HOUR);
    CHECK_U64("volume in the window", w.volume, 1000);
    /* 23 hours later the first slice is still in the window (24 slices) */
    CHECK_U64("23 h later", rg_detect_reputation(&c, s, t + 23 * HOUR).volume, 1000);
    /* 24 hours later its slice has left */
    CHECK_U64("24 h later", rg_detect_reputation(&c, s, t + 24 * HOUR).volume, 0);
    /* bounces a day later see no volume: below the minimum, nothing */
    for (int i = 0; i < 100; i++)
        rep_event(&c, NULL, s, t + 24 * HOUR + (uint64_t)i, "hard", &r);
    CHECK_INT("old volume does not count", r.nhits, 0);
    /* a slice that is older than the window when it comes is not counted */
    memset(s, 0, sizeof *s);
    rep_event(&c, NULL, s, t + 30 * HOUR, "accept", &r);
    rep_event(&c, NULL, s, t + 30 * HOUR - 25 * HOUR, "accept", &r);
    CHECK_U64("a straggler older than the window", rg_detect_reputation(&c, s, t + 30 * HOUR).volume, 1);
    /* a new window length: the slices of the old width are dropped */
    c.reputation_window_ms = 7 * DAY;
    CHECK_U64("window changed", rg_detect_reputation(&c, s, t + 30 * HOUR).volume, 0);
    free(s);
}

/* Minimum volume, exactly at the threshold, the hit's evidence, once per cool-down. */
static void test_bounce_rate(void **state)
{
    (void)state;
    rg_detect_conf c = conf_reputation();
    rg_detect_state *s = calloc(1, sizeof *s);
    replay r = { 0 };
    uint64_t t = monday() + 10 * HOUR;
    /* 999 recipients and 100 bounces (10 %): under the minimum volume */
    for (int i = 0; i < 999; i++)
        rep_event(&c, NULL, s, t + (uint64_t)i, "accept", &r);
    for (int i = 0; i < 100; i++)
        rep_event(&c, NULL, s, t + 1000 + (uint64_t)i, "hard", &r);
    CHECK_INT("under reputation_min", r.nhits, 0);
    /* a 1000th recipient: 100 / 1000 = 10 %, but recipients do not fire */
    rep_event(&c, NULL, s, t + 2000, "accept", &r);
    CHECK_INT("a recipient does not fire", r.nhits, 0);
    rep_event(&c, NULL, s, t + 2001, "hard", &r);
    CHECK_INT("the next bounce fires", r.nhits, 1);
    rg_detect_hit *h = &r.hits[0];
    CHECK_STR("signal", rg_detect_signal_name(h->signal), "bounce_rate");
    CHECK_INT("action: the first of reputation_action", h->action, RG_DETECT_THROTTLE);
    CHECK_INT("not configurable by detect_action", h->configurable, 0);
    CHECK_U64("volume", h->volume, 1000);
    CHECK_U64("count", h->count, 101);
    CHECK_U64("window", h->window_ms, 24 * HOUR);
    if (fabs(h->rate - 0.101) > 1e-9 || fabs(h->rate_threshold - 0.05) > 1e-12)
        fail_msg("rate %f threshold %f", h->rate, h->rate_threshold);
    /* once per cool-down */
    rg_detect_acted(&c, s, t + 2001);
    for (int i = 0; i < 10; i++)
        rep_event(&c, NULL, s, t + 3000 + (uint64_t)i, "hard", &r);
    CHECK_INT("quiet within the cool-down", r.nhits, 1);
    free(s);

    /* exactly at the threshold: 50 of 1000 */
    s = calloc(1, sizeof *s);
    r.nhits = 0;
    for (int i = 0; i < 1000; i++)
        rep_event(&c, NULL, s, t + (uint64_t)i, "accept", &r);
    for (int i = 0; i < 50; i++)
        rep_event(&c, NULL, s, t + 1000 + (uint64_t)i, "hard", &r);
    CHECK_INT("exactly 5%", r.nhits, 0);
    rep_event(&c, NULL, s, t + 1100, "hard", &r);
    CHECK_INT("51 of 1000", r.nhits, 1);
    CHECK_U64("51", r.hits[0].count, 51);
    free(s);

    /* the account's own threshold */
    s = calloc(1, sizeof *s);
    r.nhits = 0;
    rg_detect_account own = { .bounce_rate = 0.02, .complaint_rate = 0 };
    for (int i = 0; i < 1000; i++)
        rep_event(&c, &own, s, t + (uint64_t)i, "accept", &r);
    for (int i = 0; i < 21; i++)
        rep_event(&c, &own, s, t + 1000 + (uint64_t)i, "hard", &r);
    CHECK_INT("2% of the account: 21 of 1000 fire", r.nhits, 1);
    CHECK_U64("at the 21st", r.hits[0].count, 21);
    if (fabs(r.hits[0].rate_threshold - 0.02) > 1e-12)
        fail_msg("threshold %f", r.hits[0].rate_threshold);
    free(s);
}

/* Complaints, and the actions in turn: throttle, then suspend, then over again. */
static void test_complaint_rate_actions(void **state)
{
    (void)state;
    rg_detect_conf c = conf_reputation();
    c.reputation_action[0] = RG_DETECT_THROTTLE;
    c.reputation_action[1] = RG_DETECT_SUSPEND;
    c.n_reputation_action = 2;
    c.cooldown_ms = HOUR;
    rg_detect_state *s = calloc(1, sizeof *s);
    replay r = { 0 };
    uint64_t t = monday() + 10 * HOUR;
    for (int i = 0; i < 1000; i++)
        rep_event(&c, NULL, s, t + (uint64_t)i, "accept", &r);
    rep_event(&c, NULL, s, t + 1000, "complaint", &r);
    CHECK_INT("1 of 1000 = 0.1%: not above", r.nhits, 0);
    rep_event(&c, NULL, s, t + 1001, "complaint", &r);
    CHECK_INT("2 of 1000", r.nhits, 1);
    CHECK_STR("signal", rg_detect_signal_name(r.hits[0].signal), "complaint_rate");
    CHECK_INT("first: throttle", r.hits[0].action, RG_DETECT_THROTTLE);
    CHECK_U64("complaints", r.hits[0].count, 2);
    rg_detect_acted(&c, s, t + 1001);
    /* within the cool-down: quiet */
    rep_event(&c, NULL, s, t + 30 * 60000, "complaint", &r);
    CHECK_INT("cool-down", r.nhits, 1);
    /* after it, still above: the second action */
    rep_event(&c, NULL, s, t + HOUR + 2000, "complaint", &r);
    CHECK_INT("after the cool-down", r.nhits, 2);
    CHECK_INT("second: suspend", r.hits[1].action, RG_DETECT_SUSPEND);
    CHECK_INT("not cooling", r.hits[1].cooling, 0);
    rg_detect_acted(&c, s, t + HOUR + 2000);
    /* the last action repeats */
    rep_event(&c, NULL, s, t + 2 * HOUR + 3000, "complaint", &r);
    CHECK_INT("third", r.nhits, 3);
    CHECK_INT("the last action repeats", r.hits[2].action, RG_DETECT_SUSPEND);
    /* a resume starts over with the first action */
    rg_detect_resumed(&c, s, t + 2 * HOUR + 4000);
    for (int i = 0; i < 1000; i++)
        rep_event(&c, NULL, s, t + 3 * HOUR + 5000 + (uint64_t)i, "accept", &r);
    rep_event(&c, NULL, s, t + 3 * HOUR + 7000, "complaint", &r);
    CHECK_INT("after resume and its cool-down", r.nhits, 4);
    CHECK_INT("resume: throttle first again", r.hits[3].action, RG_DETECT_THROTTLE);
    /* complaints are not refused recipients, hard bounces are not complaints */
    CHECK_U64("complaints in the window", rg_detect_reputation(&c, s, t + 3 * HOUR + 7000).complaints, 6);
    CHECK_U64("hard bounces", rg_detect_reputation(&c, s, t + 3 * HOUR + 7000).hard, 0);

    /* the reputation state survives the hash fields */
    const char *keys[RG_DETECT_FIELDS];
    char *values[RG_DETECT_FIELDS];
    size_t n = rg_detect_state_to_fields(s, false, keys, values);
    rg_detect_state *u = calloc(1, sizeof *u);
    CHECK_INT("parses", rg_detect_state_from_fields(u, (char *const *)keys, values, n), 0);
    rg_detect_rates a = rg_detect_reputation(&c, s, t + 3 * HOUR + 7000),
                    b = rg_detect_reputation(&c, u, t + 3 * HOUR + 7000);
    CHECK_U64("volume survives", b.volume, a.volume);
    CHECK_U64("complaints survive", b.complaints, a.complaints);
    CHECK_U64("quiet survives", u->complaint_quiet_ms, s->complaint_quiet_ms);
    CHECK_INT("strikes survive", u->rep_strikes, s->rep_strikes);
    CHECK_U64("last action survives", u->rep_last_ms, s->rep_last_ms);
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    char *k[1] = { (char *)"p" }, *v[1] = { (char *)"3600000 12/x/1/2" };
    CHECK_INT("damaged slices", rg_detect_state_from_fields(u, k, v, 1), 1);
    CHECK_U64("cost their part", rg_detect_reputation(&c, u, t).volume, 0);
    free(u);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hour_of_week),
        cmocka_unit_test(test_volume_replay),
        cmocka_unit_test(test_throttle_lasts),
        cmocka_unit_test(test_countries),
        cmocka_unit_test(test_ips),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_fields_round_trip),
        cmocka_unit_test(test_rate_rule),
        cmocka_unit_test(test_rate_window),
        cmocka_unit_test(test_bounce_rate),
        cmocka_unit_test(test_complaint_rate_actions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
