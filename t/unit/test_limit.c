/*
 * test_limit - limit specs, durations, sizes, calendar windows and the GCRA
 * arithmetic (with a hand-set clock).
 */
#include <stdio.h>
#include <time.h>

#include "clock.h"
#include "limit.h"
#include "unit.h"

/* ms since the epoch of a UTC date and time */
static uint64_t
utc_ms(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = mi, .tm_sec = s };
    return (uint64_t)timegm(&tm) * 1000;
}

static void
test_duration_parse(void **state)
{
    static const struct { const char *label, *in; int rc; uint64_t ms; } cases[] = {
        { "milliseconds",  "250ms", 0, 250 },
        { "seconds",       "2s",    0, 2000 },
        { "bare seconds",  "45",    0, 45000 },
        { "minutes",       "1m",    0, 60000 },
        { "hours",         "1h",    0, 3600000 },
        { "days",          "1d",    0, 86400000 },
        { "zero",          "0",     0, 0 },
        { "empty",         "",      -1, 0 },
        { "unit only",     "ms",    -1, 0 },
        { "bad unit",      "1x",    -1, 0 },
        { "negative",      "-1s",   -1, 0 },
        { "fraction",      "1.5s",  -1, 0 },
        { "leading blank", " 1s",   -1, 0 },
        { "two parts",     "1h30m", -1, 0 },
        { "months",        "1mo",   -1, 0 },
        { "overflow",      "99999999999999999999", -1, 0 },
        { "overflow mult", "18446744073709551d", -1, 0 },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        uint64_t ms = 0;
        CHECK_INT(cases[i].label, rg_duration_parse(cases[i].in, &ms), cases[i].rc);
        if (cases[i].rc == 0)
            CHECK_U64(cases[i].label, ms, cases[i].ms);
    }
}

static void
test_size_parse(void **state)
{
    static const struct { const char *label, *in; int rc; uint64_t bytes; } cases[] = {
        { "bytes",      "1000", 0, 1000 },
        { "kilo",       "512K", 0, 512 * 1024 },
        { "kilo lower", "512k", 0, 512 * 1024 },
        { "mega",       "10M",  0, 10 * 1048576 },
        { "mega B",     "10MB", 0, 10 * 1048576 },
        { "mebi",       "10MiB", 0, 10 * 1048576 },
        { "giga",       "1G",   0, 1073741824ull },
        { "tera",       "2T",   0, 2ull << 40 },
        { "zero",       "0",    0, 0 },
        { "empty",      "",     -1, 0 },
        { "suffix only", "M",   -1, 0 },
        { "bad suffix", "10X",  -1, 0 },
        { "fraction",   "1.5M", -1, 0 },
        { "blank",      "10 M", -1, 0 },
        { "overflow",   "20000000000T", -1, 0 },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        uint64_t b = 0;
        CHECK_INT(cases[i].label, rg_size_parse(cases[i].in, &b), cases[i].rc);
        if (cases[i].rc == 0)
            CHECK_U64(cases[i].label, b, cases[i].bytes);
    }
}

static void
test_duration_format(void **state)
{
    static const struct { const char *label; uint64_t ms; const char *out; } cases[] = {
        { "zero",            0, "0ms" },
        { "under a second",  120, "120ms" },
        { "one second",      1000, "1s" },
        { "rounds up",       1001, "2s" },
        { "seconds",         45000, "45s" },
        { "hours minutes",   3780000, "1h 3m" },
        { "all parts",       90061000, "1d 1h 1m 1s" },
        { "two days",        172800000, "2d" },
    };
    char buf[64];
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++)
        CHECK_STR(cases[i].label, rg_duration_format(cases[i].ms, buf, sizeof buf), cases[i].out);
    /* a short buffer truncates, still terminated */
    CHECK_STR("short buffer", rg_duration_format(90061000, buf, 5), "1d 1");
}

static void
test_spec_parse(void **state)
{
    static const struct {
        const char *label, *spec;
        rg_limit_scope dflt;
        rg_limit_kind kind;
        uint64_t count, period_ms, burst;
        rg_window_unit wu;
        unsigned wm;
        rg_limit_unit unit;
        rg_limit_scope scope;
        bool hard;
        const char *name;
    } cases[] = {
        { "plain rate", "100/1h", RG_SCOPE_ACCOUNT, RG_LIMIT_RATE, 100, 3600000, 100, 0, 0,
          RG_UNIT_MSG, RG_SCOPE_ACCOUNT, false, "rate-100-1h-msg" },
        { "rate keyword burst", "rate 100/1h burst=20", RG_SCOPE_ACCOUNT, RG_LIMIT_RATE, 100,
          3600000, 20, 0, 0, RG_UNIT_MSG, RG_SCOPE_ACCOUNT, false, "rate-100-1h-msg" },
        { "unit without number", "10/h", RG_SCOPE_ACCOUNT, RG_LIMIT_RATE, 10, 3600000, 10, 0, 0,
          RG_UNIT_MSG, RG_SCOPE_ACCOUNT, false, "rate-10-1h-msg" },
        { "bare seconds", "10/30", RG_SCOPE_GLOBAL, RG_LIMIT_RATE, 10, 30000, 10, 0, 0,
          RG_UNIT_MSG, RG_SCOPE_GLOBAL, false, "rate-10-30s-msg" },
        { "60m is 1h", "5/60m per=rcpt", RG_SCOPE_ACCOUNT, RG_LIMIT_RATE, 5, 3600000, 5, 0, 0,
          RG_UNIT_RCPT, RG_SCOPE_ACCOUNT, false, "rate-5-1h-rcpt" },
        { "days", "7/2d hard", RG_SCOPE_ACCOUNT, RG_LIMIT_RATE, 7, 172800000, 7, 0, 0,
          RG_UNIT_MSG, RG_SCOPE_ACCOUNT, true, "rate-7-2d-msg" },
        { "quota day rcpt", "quota 500/1d per=rcpt hard", RG_SCOPE_ACCOUNT, RG_LIMIT_QUOTA,
          500, 86400000, 0, RG_WIN_DAY, 1, RG_UNIT_RCPT, RG_SCOPE_ACCOUNT, true,
          "quota-500-1d-rcpt" },
        { "quota month", "quota 10000/1mo", RG_SCOPE_ACCOUNT, RG_LIMIT_QUOTA, 10000,
          31 * 86400000ull, 0, RG_WIN_MONTH, 1, RG_UNIT_MSG, RG_SCOPE_ACCOUNT, false,
          "quota-10000-1mo-msg" },
        { "quota 3 hours scope", "quota 50/3h scope=domain name=My.Limit_1", RG_SCOPE_ACCOUNT,
          RG_LIMIT_QUOTA, 50, 3 * 3600000ull, 0, RG_WIN_HOUR, 3, RG_UNIT_MSG, RG_SCOPE_DOMAIN,
          false, "My.Limit_1" },
        { "scope ip soft", "1/1s scope=ip soft", RG_SCOPE_GLOBAL, RG_LIMIT_RATE, 1, 1000, 1, 0,
          0, RG_UNIT_MSG, RG_SCOPE_IP, false, "rate-1-1s-msg" },
        { "options first", "per=rcpt 20/1m", RG_SCOPE_ACCOUNT, RG_LIMIT_RATE, 20, 60000, 20,
          0, 0, RG_UNIT_RCPT, RG_SCOPE_ACCOUNT, false, "rate-20-1m-rcpt" },
        { "extra blanks", "  rate\t3/1h   burst=1 ", RG_SCOPE_ACCOUNT, RG_LIMIT_RATE, 3, 3600000,
          1, 0, 0, RG_UNIT_MSG, RG_SCOPE_ACCOUNT, false, "rate-3-1h-msg" },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        const char *lb = cases[i].label;
        rg_limit l, back;
        char err[256] = "", text[256], text2[256];

        if (rg_limit_parse(cases[i].spec, cases[i].dflt, &l, err, sizeof err) != 0)
            fail_msg("case '%s': parse failed: %s", lb, err);
        CHECK_INT(lb, l.kind, cases[i].kind);
        CHECK_U64(lb, l.count, cases[i].count);
        CHECK_U64(lb, l.period_ms, cases[i].period_ms);
        CHECK_INT(lb, l.unit, cases[i].unit);
        CHECK_INT(lb, l.scope, cases[i].scope);
        CHECK_INT(lb, l.hard, cases[i].hard);
        CHECK_STR(lb, l.name, cases[i].name);
        if (l.kind == RG_LIMIT_RATE) {
            CHECK_U64(lb, l.burst, cases[i].burst);
        } else {
            CHECK_INT(lb, l.win_unit, cases[i].wu);
            CHECK_INT(lb, l.win_mult, cases[i].wm);
        }
        /* format, parse again (under the other default scope), same limit and text */
        rg_limit_format(&l, text, sizeof text);
        if (rg_limit_parse(text, cases[i].dflt == RG_SCOPE_GLOBAL ? RG_SCOPE_ACCOUNT
                                                                  : RG_SCOPE_GLOBAL,
                           &back, err, sizeof err) != 0)
            fail_msg("case '%s': formatted '%s' does not parse: %s", lb, text, err);
        if (memcmp(&l, &back, sizeof l) != 0)
            fail_msg("case '%s': round trip through '%s' changed the limit", lb, text);
        CHECK_STR(lb, rg_limit_format(&back, text2, sizeof text2), text);
    }
}

static void
test_spec_format(void **state)
{
    rg_limit l;
    char err[256], buf[256];
    (void)state;
    assert_int_equal(rg_limit_parse("quota 500/1d per=rcpt hard", RG_SCOPE_ACCOUNT, &l, err,
                                    sizeof err), 0);
    CHECK_STR("quota text", rg_limit_format(&l, buf, sizeof buf),
              "quota 500/1d per=rcpt hard scope=account name=quota-500-1d-rcpt");
    assert_int_equal(rg_limit_parse("100/1h burst=20", RG_SCOPE_GLOBAL, &l, err, sizeof err), 0);
    CHECK_STR("rate text", rg_limit_format(&l, buf, sizeof buf),
              "rate 100/1h burst=20 scope=global name=rate-100-1h-msg");
    CHECK_STR("short buffer", rg_limit_format(&l, buf, 10), "");
}

static void
test_spec_errors(void **state)
{
    static const struct { const char *label, *spec, *msg; } cases[] = {
        { "empty",              "",                      "missing N/PERIOD" },
        { "no period",          "100",                   "expected N/PERIOD" },
        { "zero count",         "0/1h",                  "count must be" },
        { "bad count",          "x/1h",                  "bad count" },
        { "bad period",         "100/1x",                "bad period '1x'" },
        { "empty period",       "100/",                  "bad period ''" },
        { "zero period",        "100/0h",                "must not be 0" },
        { "quota seconds",      "quota 100/30s",         "quota windows are h, d or mo" },
        { "quota minutes",      "quota 100/1m",          "quota windows are h, d or mo" },
        { "quota bare",         "quota 100/60",          "quota windows are h, d or mo" },
        { "rate months",        "100/1mo",               "months are for quotas" },
        { "burst zero",         "100/1h burst=0",        "burst" },
        { "burst text",         "100/1h burst=x",        "burst" },
        { "burst on quota",     "quota 5/1d burst=3",    "burst= applies to rates" },
        { "bad per",            "100/1h per=byte",       "per=msg or per=rcpt" },
        { "bad scope",          "100/1h scope=world",    "scope is account" },
        { "bad name chars",     "100/1h name=a:b",       "bad 'name=a:b'" },
        { "empty name",         "100/1h name=",          "bad 'name='" },
        { "long name",          "100/1h name=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          "a name is 1 to 63" },
        { "unknown word",       "100/1h fast",           "unknown word 'fast'" },
        { "repeated option",    "100/1h hard soft",      "repeats an option" },
        { "two counts",         "100/1h 5/1m",           "two counts" },
        { "too fast",           "2000001/1s",               "rate too high" },
        { "kind after count",   "100/1h quota",          "unknown word 'quota'" },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        rg_limit l;
        char err[256] = "";
        CHECK_INT(cases[i].label, rg_limit_parse(cases[i].spec, RG_SCOPE_ACCOUNT, &l, err,
                                                 sizeof err), -1);
        CHECK_HAS(cases[i].label, err, cases[i].msg);
    }
}

static void
test_windows(void **state)
{
    struct d { int y, mo, d, h; };
    static const struct {
        const char *label, *spec;
        struct d now;
        int min;
        struct d start, end;
        const char *id;
    } cases[] = {
        { "day middle", "quota 5/1d", { 2026, 11, 24, 13 }, 45,
          { 2026, 11, 24, 0 }, { 2026, 11, 25, 0 }, "20261124" },
        { "Jan 31 to Feb 1", "quota 5/1d", { 2027, 1, 31, 23 }, 59,
          { 2027, 1, 31, 0 }, { 2027, 2, 1, 0 }, "20270131" },
        { "Feb 28 non-leap", "quota 5/1d", { 2027, 2, 28, 12 }, 0,
          { 2027, 2, 28, 0 }, { 2027, 3, 1, 0 }, "20270228" },
        { "Feb 28 leap 2028", "quota 5/1d", { 2028, 2, 28, 12 }, 0,
          { 2028, 2, 28, 0 }, { 2028, 2, 29, 0 }, "20280228" },
        { "Feb 29 leap 2028", "quota 5/1d", { 2028, 2, 29, 23 }, 59,
          { 2028, 2, 29, 0 }, { 2028, 3, 1, 0 }, "20280229" },
        { "Dec 31 to Jan 1", "quota 5/1d", { 2026, 12, 31, 23 }, 59,
          { 2026, 12, 31, 0 }, { 2027, 1, 1, 0 }, "20261231" },
        { "hour", "quota 5/1h", { 2026, 11, 24, 13 }, 45,
          { 2026, 11, 24, 13 }, { 2026, 11, 24, 14 }, "2026112413" },
        { "hour at end of year", "quota 5/1h", { 2026, 12, 31, 23 }, 30,
          { 2026, 12, 31, 23 }, { 2027, 1, 1, 0 }, "2026123123" },
        { "6 hours", "quota 5/6h", { 2026, 11, 24, 13 }, 45,
          { 2026, 11, 24, 12 }, { 2026, 11, 24, 18 }, "2026112412" },
        /* 2 days from the epoch: 2026-11-24 is day 20781, odd -> window from the 23rd */
        { "2 days", "quota 5/2d", { 2026, 11, 24, 13 }, 0,
          { 2026, 11, 23, 0 }, { 2026, 11, 25, 0 }, "20261123" },
        { "month", "quota 5/1mo", { 2026, 11, 24, 13 }, 45,
          { 2026, 11, 1, 0 }, { 2026, 12, 1, 0 }, "202611" },
        { "month Dec", "quota 5/1mo", { 2026, 12, 31, 23 }, 59,
          { 2026, 12, 1, 0 }, { 2027, 1, 1, 0 }, "202612" },
        { "month Feb leap", "quota 5/1mo", { 2028, 2, 29, 12 }, 0,
          { 2028, 2, 1, 0 }, { 2028, 3, 1, 0 }, "202802" },
        { "first instant of month", "quota 5/1mo", { 2027, 3, 1, 0 }, 0,
          { 2027, 3, 1, 0 }, { 2027, 4, 1, 0 }, "202703" },
        /* (2026-1970)*12 + 10 = 682; 682 % 3 = 1 -> from October */
        { "3 months", "quota 5/3mo", { 2026, 11, 24, 0 }, 0,
          { 2026, 10, 1, 0 }, { 2027, 1, 1, 0 }, "202610" },
        { "3 months start", "quota 5/3mo", { 2027, 1, 1, 0 }, 0,
          { 2027, 1, 1, 0 }, { 2027, 4, 1, 0 }, "202701" },
        { "12 months is a calendar year", "quota 5/12mo", { 2028, 7, 4, 0 }, 0,
          { 2028, 1, 1, 0 }, { 2029, 1, 1, 0 }, "202801" },
        /* Jan 2027 is month 684; 684 % 5 = 4 -> from September 2026 */
        { "5 months across a year", "quota 5/5mo", { 2027, 1, 15, 0 }, 0,
          { 2026, 9, 1, 0 }, { 2027, 2, 1, 0 }, "202609" },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        const char *lb = cases[i].label;
        rg_limit l;
        char err[256], id[32];
        uint64_t s, e;

        if (rg_limit_parse(cases[i].spec, RG_SCOPE_ACCOUNT, &l, err, sizeof err) != 0)
            fail_msg("case '%s': %s", lb, err);
        rg_window_bounds(&l, utc_ms(cases[i].now.y, cases[i].now.mo, cases[i].now.d,
                                    cases[i].now.h, cases[i].min, 0) + 123,
                         &s, &e, id, sizeof id);
        CHECK_U64(lb, s, utc_ms(cases[i].start.y, cases[i].start.mo, cases[i].start.d,
                                cases[i].start.h, 0, 0));
        CHECK_U64(lb, e, utc_ms(cases[i].end.y, cases[i].end.mo, cases[i].end.d,
                                cases[i].end.h, 0, 0));
        CHECK_STR(lb, id, cases[i].id);
        /* the last ms of the window is still inside, the end is the next window */
        uint64_t s2, e2;
        rg_window_bounds(&l, e - 1, &s2, &e2, id, sizeof id);
        CHECK_U64(lb, s2, s);
        rg_window_bounds(&l, e, &s2, &e2, id, sizeof id);
        CHECK_U64(lb, s2, e);
    }
}

static void
test_gcra(void **state)
{
    /* "10/10s": T = 1 s, tau = burst * T */
    static const struct {
        const char *label, *spec;
        uint64_t at_ms, tat_us, held, n;
        bool fits;
        uint64_t new_tat_us, retry_us;
    } cases[] = {
        { "new bucket",            "10/10s", 1000, 0, 0, 1, true, 2000000, 0 },
        { "new bucket full burst", "10/10s", 1000, 0, 0, 10, true, 11000000, 0 },
        { "over the burst",        "10/10s", 1000, 0, 0, 11, false, 0, 1000000 },
        { "exactly at tau",        "10/10s", 0, 9000000, 0, 1, true, 10000000, 0 },
        { "one past tau",          "10/10s", 0, 10000000, 0, 1, false, 0, 1000000 },
        { "stale tat ignored",     "10/10s", 50000, 1000, 0, 1, true, 51000000, 0 },
        { "held units count",      "10/10s", 0, 0, 9, 1, true, 1000000, 0 },
        { "held units block",      "10/10s", 0, 0, 9, 2, false, 0, 1000000 },
        { "held alone over",       "10/10s", 0, 0, 11, 0, false, 0, 1000000 },
        { "n zero fits",           "10/10s", 0, 5000000, 0, 0, true, 5000000, 0 },
        { "burst 1",               "10/10s burst=1", 0, 0, 0, 1, true, 1000000, 0 },
        { "burst 1 second",        "10/10s burst=1", 0, 1000000, 0, 1, false, 0, 1000000 },
        { "burst 1 after T",       "10/10s burst=1", 1000, 1000000, 0, 1, true, 2000000, 0 },
        { "uneven T floors",       "3/10s", 0, 0, 0, 1, true, 3333333, 0 },
        { "1h rate retry 36s",     "100/1h", 0, 3600000000ull, 0, 1, false, 0, 36000000 },
        { "huge n saturates",      "1/1d", 0, 0, 0, UINT64_MAX, false, 0, UINT64_MAX },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        const char *lb = cases[i].label;
        rg_limit l;
        rg_test_clock clk;
        char err[256];
        uint64_t tat = 0, retry = 0;

        if (rg_limit_parse(cases[i].spec, RG_SCOPE_ACCOUNT, &l, err, sizeof err) != 0)
            fail_msg("case '%s': %s", lb, err);
        rg_test_clock_init(&clk, cases[i].at_ms);
        uint64_t now_us = clk.clock.now_ms(&clk.clock) * 1000;
        bool ok = rg_gcra_take(&l, now_us, cases[i].tat_us, cases[i].held, cases[i].n,
                               &tat, &retry);
        CHECK_INT(lb, ok, cases[i].fits);
        if (ok)
            CHECK_U64(lb, tat, cases[i].new_tat_us);
        else
            CHECK_U64(lb, retry, cases[i].retry_us);
    }
}

/* A bucket over time: a burst, a refusal, recovery at the rate. */
static void
test_gcra_sequence(void **state)
{
    rg_limit l;
    rg_test_clock clk;
    char err[256];
    uint64_t tat = 0, retry = 0, nt;
    (void)state;

    assert_int_equal(rg_limit_parse("100/1h burst=20", RG_SCOPE_ACCOUNT, &l, err, sizeof err), 0);
    rg_test_clock_init(&clk, 1700000000000ull);
#define NOW_US (clk.clock.now_ms(&clk.clock) * 1000)
    for (int i = 0; i < 20; i++) {
        if (!rg_gcra_take(&l, NOW_US, tat, 0, 1, &nt, &retry))
            fail_msg("burst message %d refused", i + 1);
        tat = nt;
    }
    assert_false(rg_gcra_take(&l, NOW_US, tat, 0, 1, &nt, &retry));
    assert_int_equal(retry, 36000000);                 /* one emission interval: 36 s */
    clk.now += 35999;
    assert_false(rg_gcra_take(&l, NOW_US, tat, 0, 1, &nt, &retry));
    assert_int_equal(retry, 1000);
    clk.now += 1;
    assert_true(rg_gcra_take(&l, NOW_US, tat, 0, 1, &nt, &retry));
    tat = nt;
    assert_false(rg_gcra_take(&l, NOW_US, tat, 0, 1, &nt, &retry));
    /* after a long idle time the whole burst is back, not more */
    clk.now += 24 * 3600 * 1000ull;
    assert_true(rg_gcra_take(&l, NOW_US, tat, 0, 20, &nt, &retry));
    assert_false(rg_gcra_take(&l, NOW_US, tat, 0, 21, &nt, &retry));
#undef NOW_US
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_size_parse),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_spec_format),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_gcra),
        cmocka_unit_test(test_gcra_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
