/*
 * limit.c - limit specs (grammar in limit.h), calendar windows for quotas,
 * the GCRA reference arithmetic, durations and sizes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "limit.h"
#include "util.h"

#define MS_SECOND  1000ull
#define MS_MINUTE  (60 * MS_SECOND)
#define MS_HOUR    (60 * MS_MINUTE)
#define MS_DAY     (24 * MS_HOUR)

#define COUNT_MAX   1000000000000000ull     /* 10^15: counts and bursts */
#define PERIOD_MAX  (3660 * MS_DAY)          /* about ten years */
#define WIN_MULT_MAX 120000u                 /* hours, days or months in a window */

/* Parse a decimal number without sign into *v; digits only, overflow refused.
 * Returns the number of digits read (0: none or overflow). */
static size_t
parse_u64(const char *s, uint64_t *v)
{
    uint64_t n = 0;
    size_t i = 0;

    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return 0;
        n = n * 10 + d;
    }
    *v = n;
    return i;
}

/* Parse "250ms", "2s", "1m", "1h", "1d"; a bare number is seconds.  0 or -1. */
int
rg_duration_parse(const char *s, uint64_t *ms)
{
    uint64_t n, mult;
    size_t d;

    if (s == NULL || (d = parse_u64(s, &n)) == 0)
        return -1;
    s += d;
    if (*s == '\0' || strcmp(s, "s") == 0)
        mult = MS_SECOND;
    else if (strcmp(s, "ms") == 0)
        mult = 1;
    else if (strcmp(s, "m") == 0)
        mult = MS_MINUTE;
    else if (strcmp(s, "h") == 0)
        mult = MS_HOUR;
    else if (strcmp(s, "d") == 0)
        mult = MS_DAY;
    else
        return -1;
    if (n > UINT64_MAX / mult)
        return -1;
    *ms = n * mult;
    return 0;
}

/* Parse "10M", "512K", "1G", "2T", "1000" (bytes; K = 1024; optional "B"/"iB").  0 or -1. */
int
rg_size_parse(const char *s, uint64_t *bytes)
{
    uint64_t n, mult = 1;
    size_t d;

    if (s == NULL || (d = parse_u64(s, &n)) == 0)
        return -1;
    s += d;
    switch (*s) {
    case 'k': case 'K': mult = 1ull << 10; s++; break;
    case 'm': case 'M': mult = 1ull << 20; s++; break;
    case 'g': case 'G': mult = 1ull << 30; s++; break;
    case 't': case 'T': mult = 1ull << 40; s++; break;
    default: break;
    }
    if (mult > 1 && (*s == 'i' || *s == 'I'))
        s++;
    if (*s == 'b' || *s == 'B')
        s++;
    if (*s != '\0' || n > UINT64_MAX / mult)
        return -1;
    *bytes = n * mult;
    return 0;
}

/*
 * "1d 2h", "45s", "120ms" for humans: under a second in ms, else whole
 * seconds rounded up, as d/h/m/s parts.  Truncated when buf is short.  Returns buf.
 */
char *
rg_duration_format(uint64_t ms, char *buf, size_t len)
{
    static const struct { uint64_t secs; const char *unit; } parts[] = {
        { 86400, "d" }, { 3600, "h" }, { 60, "m" }, { 1, "s" },
    };
    char tmp[96];
    size_t o = 0;

    if (len == 0)
        return buf;
    if (ms < 1000) {
        snprintf(buf, len, "%llums", (unsigned long long)ms);
        return buf;
    }
    uint64_t secs = ms / 1000 + (ms % 1000 != 0);
    tmp[0] = '\0';
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        uint64_t q = secs / parts[i].secs;
        secs %= parts[i].secs;
        if (q == 0)
            continue;
        int n = snprintf(tmp + o, sizeof tmp - o, "%s%llu%s", o ? " " : "",
                         (unsigned long long)q, parts[i].unit);
        if (n < 0 || (size_t)n >= sizeof tmp - o)
            break;
        o += (size_t)n;
    }
    rg_strlcpy(buf, tmp, len);      /* truncation is allowed here: text for humans */
    return buf;
}

/* The canonical period of a limit ("1h", "90s", "3mo") into buf. */
static void
period_text(const rg_limit *l, char *buf, size_t len)
{
    if (l->kind == RG_LIMIT_QUOTA) {
        static const char *u[] = { "h", "d", "mo" };
        snprintf(buf, len, "%u%s", l->win_mult, u[l->win_unit]);
        return;
    }
    uint64_t p = l->period_ms;
    if (p % MS_DAY == 0)
        snprintf(buf, len, "%llud", (unsigned long long)(p / MS_DAY));
    else if (p % MS_HOUR == 0)
        snprintf(buf, len, "%lluh", (unsigned long long)(p / MS_HOUR));
    else if (p % MS_MINUTE == 0)
        snprintf(buf, len, "%llum", (unsigned long long)(p / MS_MINUTE));
    else
        snprintf(buf, len, "%llus", (unsigned long long)(p / MS_SECOND));
}

static bool
limit_name_valid(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n >= 1 && n <= 63;
}

/* Parse "N/PERIOD" into out (kind already set).  0 or -1. */
static int
parse_count_period(const char *tok, const char *spec, rg_limit *out, char *err, size_t errlen)
{
    const char *slash = strchr(tok, '/');
    uint64_t n, m = 1;
    size_t d;

    if (slash == NULL) {
        rg_seterr(err, errlen, "expected N/PERIOD, not '%s' in '%s'", tok, spec);
        return -1;
    }
    d = parse_u64(tok, &n);
    if (d == 0 || tok + d != slash) {
        rg_seterr(err, errlen, "bad count '%.*s' in '%s'", (int)(slash - tok), tok, spec);
        return -1;
    }
    if (n == 0 || n > COUNT_MAX) {
        rg_seterr(err, errlen, "count must be 1 to %llu in '%s'", (unsigned long long)COUNT_MAX,
                spec);
        return -1;
    }
    out->count = n;

    const char *p = slash + 1;
    d = parse_u64(p, &m);
    if (d == 0) {
        if ((*p >= '0' && *p <= '9') || *p == '\0') {
            rg_seterr(err, errlen, "bad period '%s' in '%s'", slash + 1, spec);
            return -1;
        }
        m = 1;      /* "100/h" means "100/1h" */
    }
    p += d;
    if (m == 0) {
        rg_seterr(err, errlen, "period must not be 0 in '%s'", spec);
        return -1;
    }

    if (out->kind == RG_LIMIT_QUOTA) {
        if (strcmp(p, "h") == 0)
            out->win_unit = RG_WIN_HOUR;
        else if (strcmp(p, "d") == 0)
            out->win_unit = RG_WIN_DAY;
        else if (strcmp(p, "mo") == 0)
            out->win_unit = RG_WIN_MONTH;
        else {
            rg_seterr(err, errlen, "bad period '%s' in '%s': quota windows are h, d or mo",
                    slash + 1, spec);
            return -1;
        }
        if (m > WIN_MULT_MAX) {
            rg_seterr(err, errlen, "period '%s' too long in '%s'", slash + 1, spec);
            return -1;
        }
        out->win_mult = (unsigned)m;
        static const uint64_t unit_ms[] = { MS_HOUR, MS_DAY, 31 * MS_DAY };
        out->period_ms = m * unit_ms[out->win_unit];    /* nominal; windows are calendar */
        return 0;
    }

    uint64_t unit;
    if (*p == '\0' || strcmp(p, "s") == 0)
        unit = MS_SECOND;
    else if (strcmp(p, "m") == 0)
        unit = MS_MINUTE;
    else if (strcmp(p, "h") == 0)
        unit = MS_HOUR;
    else if (strcmp(p, "d") == 0)
        unit = MS_DAY;
    else if (strcmp(p, "mo") == 0) {
        rg_seterr(err, errlen, "bad period '%s' in '%s': months are for quotas "
                "(rate periods are s, m, h or d)", slash + 1, spec);
        return -1;
    } else {
        rg_seterr(err, errlen, "bad period '%s' in '%s': rate periods are s, m, h or d",
                slash + 1, spec);
        return -1;
    }
    if (m > PERIOD_MAX / unit) {
        rg_seterr(err, errlen, "period '%s' too long in '%s'", slash + 1, spec);
        return -1;
    }
    out->period_ms = m * unit;
    if (out->count > out->period_ms * 1000) {
        rg_seterr(err, errlen, "rate too high in '%s' (more than one per microsecond)", spec);
        return -1;
    }
    return 0;
}

/*
 * Parse a spec (grammar in limit.h).  default_scope applies without scope=.
 * 0, or -1 with a message in err; out is written only on success.
 */
int
rg_limit_parse(const char *spec, rg_limit_scope default_scope, rg_limit *out,
               char *err, size_t errlen)
{
    rg_limit l;
    char *copy, *save = NULL, *tok;
    bool seen_kind = false, seen_count = false, seen_per = false, seen_burst = false;
    bool seen_hs = false, seen_scope = false, seen_name = false;
    int rc = -1;

    memset(&l, 0, sizeof l);
    l.kind = RG_LIMIT_RATE;
    l.unit = RG_UNIT_MSG;
    l.scope = default_scope;
    if (spec == NULL)
        spec = "";
    copy = rg_strdup(spec);

    for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (!seen_count && !seen_kind && (strcmp(tok, "rate") == 0 || strcmp(tok, "quota") == 0)) {
            l.kind = tok[0] == 'q' ? RG_LIMIT_QUOTA : RG_LIMIT_RATE;
            seen_kind = true;
        } else if (!seen_count && strchr(tok, '=') == NULL) {
            if (parse_count_period(tok, spec, &l, err, errlen) < 0)
                goto out;
            seen_count = true;
        } else if (strncmp(tok, "per=", 4) == 0) {
            if (seen_per) goto dup;
            seen_per = true;
            if (strcmp(tok + 4, "msg") == 0)
                l.unit = RG_UNIT_MSG;
            else if (strcmp(tok + 4, "rcpt") == 0)
                l.unit = RG_UNIT_RCPT;
            else {
                rg_seterr(err, errlen, "bad '%s' in '%s': per=msg or per=rcpt", tok, spec);
                goto out;
            }
        } else if (strncmp(tok, "burst=", 6) == 0) {
            if (seen_burst) goto dup;
            seen_burst = true;
            size_t d = parse_u64(tok + 6, &l.burst);
            if (d == 0 || tok[6 + d] != '\0' || l.burst == 0 || l.burst > COUNT_MAX) {
                rg_seterr(err, errlen, "bad '%s' in '%s': burst is a number from 1 to %llu",
                        tok, spec, (unsigned long long)COUNT_MAX);
                goto out;
            }
        } else if (strcmp(tok, "soft") == 0 || strcmp(tok, "hard") == 0) {
            if (seen_hs) goto dup;
            seen_hs = true;
            l.hard = tok[0] == 'h';
        } else if (strncmp(tok, "scope=", 6) == 0) {
            if (seen_scope) goto dup;
            seen_scope = true;
            const char *v = tok + 6;
            if (strcmp(v, "account") == 0)
                l.scope = RG_SCOPE_ACCOUNT;
            else if (strcmp(v, "domain") == 0)
                l.scope = RG_SCOPE_DOMAIN;
            else if (strcmp(v, "ip") == 0)
                l.scope = RG_SCOPE_IP;
            else if (strcmp(v, "global") == 0)
                l.scope = RG_SCOPE_GLOBAL;
            else {
                rg_seterr(err, errlen, "bad '%s' in '%s': scope is account, domain, ip or global",
                        tok, spec);
                goto out;
            }
        } else if (strncmp(tok, "name=", 5) == 0) {
            if (seen_name) goto dup;
            seen_name = true;
            if (!limit_name_valid(tok + 5)) {
                rg_seterr(err, errlen, "bad '%s' in '%s': a name is 1 to 63 of A-Z a-z 0-9 _ . -",
                        tok, spec);
                goto out;
            }
            rg_strlcpy(l.name, tok + 5, sizeof l.name);     /* fits: checked above */
        } else if (seen_count && strchr(tok, '=') == NULL && strchr(tok, '/') != NULL) {
            rg_seterr(err, errlen, "two counts in '%s'", spec);
            goto out;
        } else {
            rg_seterr(err, errlen, "unknown word '%s' in '%s'", tok, spec);
            goto out;
        }
        continue;
dup:
        rg_seterr(err, errlen, "'%s' repeats an option in '%s'", tok, spec);
        goto out;
    }

    if (!seen_count) {
        rg_seterr(err, errlen, "missing N/PERIOD in '%s'", spec);
        goto out;
    }
    if (l.kind == RG_LIMIT_QUOTA && seen_burst) {
        rg_seterr(err, errlen, "burst= applies to rates, not quotas, in '%s'", spec);
        goto out;
    }
    if (l.kind == RG_LIMIT_RATE && !seen_burst)
        l.burst = l.count;
    if (!seen_name) {
        char per[24];
        period_text(&l, per, sizeof per);
        snprintf(l.name, sizeof l.name, "%s-%llu-%s-%s",
                 l.kind == RG_LIMIT_QUOTA ? "quota" : "rate", (unsigned long long)l.count,
                 per, l.unit == RG_UNIT_RCPT ? "rcpt" : "msg");     /* at most 47 bytes */
    }
    *out = l;
    rc = 0;
out:
    free(copy);
    return rc;
}

/*
 * Canonical spec: "rate 100/1h burst=20 per=rcpt hard scope=account name=x";
 * defaults (burst = count, per=msg, soft) are left out, scope and name are
 * always written so the text parses back to the same limit in any context.
 * Returns buf ("" if it does not fit).
 */
char *
rg_limit_format(const rg_limit *l, char *buf, size_t len)
{
    static const char *scopes[] = { "account", "domain", "ip", "global" };
    char per[24], burst[40] = "";
    int n;

    if (len == 0)
        return buf;
    period_text(l, per, sizeof per);
    if (l->kind == RG_LIMIT_RATE && l->burst != l->count)
        snprintf(burst, sizeof burst, " burst=%llu", (unsigned long long)l->burst);
    n = snprintf(buf, len, "%s %llu/%s%s%s%s scope=%s name=%s",
                 l->kind == RG_LIMIT_QUOTA ? "quota" : "rate", (unsigned long long)l->count,
                 per, burst, l->unit == RG_UNIT_RCPT ? " per=rcpt" : "",
                 l->hard ? " hard" : "", scopes[l->scope & 3], l->name);
    if (n < 0 || (size_t)n >= len)
        buf[0] = '\0';
    return buf;
}

/* ms since the epoch of the first of month idx (months since January 1970). */
static uint64_t
month_start_ms(uint64_t idx)
{
    struct tm tm;

    memset(&tm, 0, sizeof tm);
    tm.tm_year = (int)(70 + idx / 12);
    tm.tm_mon = (int)(idx % 12);
    tm.tm_mday = 1;
    return (uint64_t)timegm(&tm) * 1000;
}

/*
 * The UTC calendar window of a quota around now_ms: hours and days aligned
 * to the epoch, months to January 1970.  id: "YYYYMMDDHH", "YYYYMMDD" or
 * "YYYYMM" of the window start ("" if idlen is too small).
 */
void
rg_window_bounds(const rg_limit *l, uint64_t now_ms, uint64_t *start_ms,
                 uint64_t *end_ms, char *id, size_t idlen)
{
    unsigned mult = l->win_mult ? l->win_mult : 1;
    uint64_t start, end;
    struct tm tm;
    time_t t;

    if (l->win_unit == RG_WIN_MONTH) {
        t = (time_t)(now_ms / 1000);
        gmtime_r(&t, &tm);
        uint64_t idx = (uint64_t)(tm.tm_year - 70) * 12 + (uint64_t)tm.tm_mon;
        idx -= idx % mult;
        start = month_start_ms(idx);
        end = month_start_ms(idx + mult);
    } else {
        uint64_t w = (l->win_unit == RG_WIN_HOUR ? MS_HOUR : MS_DAY) * mult;
        start = now_ms - now_ms % w;
        end = start + w;
    }
    if (start_ms)
        *start_ms = start;
    if (end_ms)
        *end_ms = end;
    if (id == NULL || idlen == 0)
        return;
    t = (time_t)(start / 1000);
    gmtime_r(&t, &tm);
    int n;
    if (l->win_unit == RG_WIN_HOUR)
        n = snprintf(id, idlen, "%04d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour);
    else if (l->win_unit == RG_WIN_DAY)
        n = snprintf(id, idlen, "%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    else
        n = snprintf(id, idlen, "%04d%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    if (n < 0 || (size_t)n >= idlen)
        id[0] = '\0';
}

/*
 * GCRA as in limit.h, in microseconds, with 128-bit intermediates; results
 * that do not fit in 64 bits saturate at UINT64_MAX.  Returns true when n
 * more units fit; new_tat_us / retry_us may be NULL.
 */
bool
rg_gcra_take(const rg_limit *l, uint64_t now_us, uint64_t tat_us, uint64_t held,
             uint64_t n, uint64_t *new_tat_us, uint64_t *retry_us)
{
    typedef unsigned __int128 u128;
    u128 T = l->count ? (u128)l->period_ms * 1000 / l->count : 0;
    u128 tau = (u128)l->burst * T;
    u128 base = tat_us > now_us ? tat_us : now_us;
    u128 need = base + ((u128)held + n) * T;

    if (need - now_us <= tau) {
        u128 tat = base + (u128)n * T;
        if (new_tat_us)
            *new_tat_us = tat > UINT64_MAX ? UINT64_MAX : (uint64_t)tat;
        if (retry_us)
            *retry_us = 0;
        return true;
    }
    u128 retry = need - tau - now_us;
    if (retry_us)
        *retry_us = retry > UINT64_MAX ? UINT64_MAX : (uint64_t)retry;
    if (new_tat_us)
        *new_tat_us = tat_us;
    return false;
}
