/*
 * detect_store.c - detection state and actions in Redis (detect_store.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "detect_store.h"
#include "keys.h"
#include "util.h"

/*
 * Compare-and-set of a batch of states.  ARGV: n, ttl_s, then per account:
 * key, version read, field count, fields and values.  Returns the 1-based
 * indexes of the accounts whose version had changed (not written).
 */
static const char save_lua[] =
    "local out, pos = {}, 3\n"
    "for i = 1, tonumber(ARGV[1]) do\n"
    "  local key, ver, nf = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])\n"
    "  local cur = redis.call('HGET', key, 'v') or '0'\n"
    "  if cur == ver then\n"
    "    redis.call('HSET', key, 'v', tostring(tonumber(ver) + 1),\n"
    "                unpack(ARGV, pos + 3, pos + 2 + 2 * nf))\n"
    "    redis.call('EXPIRE', key, ARGV[2])\n"
    "  else\n"
    "    out[#out + 1] = i\n"
    "  end\n"
    "  pos = pos + 3 + 2 * nf\n"
    "end\n"
    "return out\n";

int rg_detect_key(const char *account, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s%s", RG_KEY_DETECT, account);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int rg_detect_store_load(rg_admin *ad, char *const *accounts, size_t n, rg_detect_state *states,
                         uint64_t *versions)
{
    redisContext *c = rg_admin_redis(ad);
    char key[256];
    for (size_t i = 0; i < n; i++) {
        if (rg_detect_key(accounts[i], key, sizeof key) < 0)
            key[0] = '\0';      /* impossible for a valid name; reads nothing */
        const char *argv[] = { "HGETALL", key };
        redisAppendCommandArgv(c, 2, argv, NULL);
    }
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        void *v = NULL;
        if (redisGetReply(c, &v) != REDIS_OK)
            return -1;          /* the connection is broken: the caller reconnects */
        redisReply *r = v;
        memset(&states[i], 0, sizeof states[i]);
        versions[i] = 0;
        if (r->type != REDIS_REPLY_ARRAY) {
            ret = -1;
            freeReplyObject(r);
            continue;
        }
        size_t nf = r->elements / 2;
        char **k = rg_calloc(nf + 1, sizeof *k), **val = rg_calloc(nf + 1, sizeof *val);
        size_t m = 0;
        for (size_t j = 0; j + 1 < r->elements; j += 2) {
            if (r->element[j]->type != REDIS_REPLY_STRING ||
                r->element[j + 1]->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(r->element[j]->str, "v") == 0) {
                versions[i] = strtoull(r->element[j + 1]->str, NULL, 10);
                continue;
            }
            k[m] = r->element[j]->str;
            val[m++] = r->element[j + 1]->str;
        }
        rg_detect_state_from_fields(&states[i], k, val, m);
        free(k);
        free(val);
        freeReplyObject(r);
    }
    return ret;
}

int rg_detect_store_save(rg_admin *ad, char *const *accounts, size_t n,
                         const rg_detect_state *states, const rg_detect_state *before,
                         const bool *with_baseline, const uint64_t *versions, bool *conflict)
{
    if (n == 0)
        return 0;
    size_t per = 3 + 2 * RG_DETECT_FIELDS;
    /* EVAL script 0 n ttl, then per account: key, version, count, fields and values */
    const char **argv = rg_calloc(5 + n * per, sizeof *argv);
    char **owned = rg_calloc(n * (RG_DETECT_FIELDS + 3), sizeof *owned);
    size_t argc = 0, no = 0;
    char num[32], ttl[32];

    snprintf(num, sizeof num, "%zu", n);
    snprintf(ttl, sizeof ttl, "%d", RG_DETECT_TTL_S);
    argv[argc++] = "EVAL";
    argv[argc++] = save_lua;
    argv[argc++] = "0";
    argv[argc++] = num;
    argv[argc++] = ttl;
    for (size_t i = 0; i < n; i++) {
        char key[256], v[32];
        if (rg_detect_key(accounts[i], key, sizeof key) < 0)
            key[0] = '\0';
        snprintf(v, sizeof v, "%" PRIu64, versions[i]);
        owned[no] = rg_strdup(key);
        argv[argc++] = owned[no++];
        owned[no] = rg_strdup(v);
        argv[argc++] = owned[no++];
        const char *keys[RG_DETECT_FIELDS], *bkeys[RG_DETECT_FIELDS];
        char *values[RG_DETECT_FIELDS], *bvalues[RG_DETECT_FIELDS];
        bool wb = with_baseline ? with_baseline[i] : true;
        size_t nf = rg_detect_state_to_fields(&states[i], wb, keys, values), nb = 0;
        if (before)
            nb = rg_detect_state_to_fields(&before[i], wb, bkeys, bvalues);
        char cnt[16];
        size_t at = argc++, sent = 0;
        for (size_t j = 0; j < nf; j++) {
            /* the same state gives the same keys in the same order */
            if (j < nb && strcmp(bkeys[j], keys[j]) == 0 && strcmp(bvalues[j], values[j]) == 0) {
                free(values[j]);
                continue;
            }
            argv[argc++] = keys[j];
            owned[no] = values[j];
            argv[argc++] = owned[no++];
            sent++;
        }
        for (size_t j = 0; j < nb; j++)
            free(bvalues[j]);
        snprintf(cnt, sizeof cnt, "%zu", sent);
        owned[no] = rg_strdup(cnt);
        argv[at] = owned[no++];
        conflict[i] = false;
    }
    redisReply *r = redisCommandArgv(rg_admin_redis(ad), (int)argc, argv, NULL);
    int ret = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        ret = -1;
    } else {
        for (size_t j = 0; j < r->elements; j++) {
            long long idx = r->element[j]->integer;
            if (r->element[j]->type == REDIS_REPLY_INTEGER && idx >= 1 && (size_t)idx <= n)
                conflict[idx - 1] = true;
        }
    }
    if (r)
        freeReplyObject(r);
    for (size_t i = 0; i < no; i++)
        free(owned[i]);
    free(owned);
    free(argv);
    return ret;
}

int rg_detect_store_account_action(rg_admin *ad, const char *account)
{
    char key[256];
    if (snprintf(key, sizeof key, "%s%s", RG_KEY_ACCOUNT, account) >= (int)sizeof key)
        return -2;
    const char *argv[] = { "HMGET", key, "detect_action", "suspended" };
    redisReply *r = redisCommandArgv(rg_admin_redis(ad), 4, argv, NULL);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        if (r)
            freeReplyObject(r);
        return -3;
    }
    int ret = -1;
    if (r->element[0]->type == REDIS_REPLY_STRING) {
        rg_detect_action a;
        if (rg_detect_action_parse(r->element[0]->str, &a) == 0)
            ret = (int)a;
    } else if (r->element[1]->type != REDIS_REPLY_STRING) {
        ret = -2;               /* neither field: the account is gone */
    }
    freeReplyObject(r);
    return ret;
}

static int edit_suspend(void *arg, rg_account *a)
{
    (void)arg;
    if (a->suspended)
        return 0;
    a->suspended = true;
    return 1;
}

int rg_detect_store_suspend(rg_admin *ad, const char *account)
{
    return rg_admin_account_edit(ad, account, edit_suspend, NULL);
}

typedef struct throttle_arg {
    const rg_limit *l;
    int64_t until;
} throttle_arg;

static int edit_throttle(void *arg, rg_account *a)
{
    const throttle_arg *t = arg;
    if (a->throttle && memcmp(a->throttle, t->l, sizeof *t->l) == 0 && a->throttle_until >= t->until)
        return 0;
    if (a->throttle == NULL)
        a->throttle = rg_malloc(sizeof *a->throttle);
    *a->throttle = *t->l;
    if (t->until > a->throttle_until)
        a->throttle_until = t->until;
    return 1;
}

int rg_detect_store_throttle(rg_admin *ad, const char *account, const rg_limit *l, int64_t until_s)
{
    throttle_arg t = { l, until_s };
    return rg_admin_account_edit(ad, account, edit_throttle, &t);
}

static int edit_resume(void *arg, rg_account *a)
{
    (void)arg;
    if (!a->suspended && a->throttle == NULL && a->throttle_until == 0)
        return 0;
    a->suspended = false;
    free(a->throttle);
    a->throttle = NULL;
    a->throttle_until = 0;
    return 1;
}

int rg_detect_store_resume(rg_admin *ad, const rg_config *cfg, const char *account,
                           uint64_t now_ms)
{
    int r = rg_admin_account_edit(ad, account, edit_resume, NULL);
    if (r < 0)
        return r;
    char *names[1] = { (char *)account };
    for (int tries = 0; tries < 20; tries++) {
        rg_detect_state *s = rg_malloc(sizeof *s);
        uint64_t ver;
        bool conflict = false;
        if (rg_detect_store_load(ad, names, 1, s, &ver) < 0 ||
            (rg_detect_resumed(&cfg->detect, s, now_ms),
             rg_detect_store_save(ad, names, 1, s, NULL, NULL, &ver, &conflict) < 0)) {
            free(s);
            return -1;
        }
        free(s);
        if (!conflict)
            return 1;
    }
    return -1;
}

static void add_num(rg_fields *f, const char *k, double v, bool integer)
{
    char num[48];
    if (integer)
        snprintf(num, sizeof num, "%.0f", v);
    else
        snprintf(num, sizeof num, "%.2f", v);
    rg_fields_add(f, k, num);
}

/* A rate as a fraction with the precision of the thresholds (parts per million). */
static void add_rate(rg_fields *f, const char *k, double v)
{
    char num[48];
    snprintf(num, sizeof num, "%.6f", v);
    rg_fields_add(f, k, num);
}

/* A window as text: "24h", "7d", "90m". */
static const char *window_text(uint64_t ms, char *buf, size_t len)
{
    uint64_t s = ms / 1000;
    if (s && s % 86400 == 0)
        snprintf(buf, len, "%" PRIu64 "d", s / 86400);
    else if (s && s % 3600 == 0)
        snprintf(buf, len, "%" PRIu64 "h", s / 3600);
    else if (s && s % 60 == 0)
        snprintf(buf, len, "%" PRIu64 "m", s / 60);
    else
        snprintf(buf, len, "%" PRIu64 "s", s);
    return buf;
}

int rg_detect_store_event(rg_admin *ad, const rg_config *cfg, const char *account,
                          const rg_detect_hit *h, rg_detect_action done)
{
    rg_fields f = { 0 };
    char type[64], detail[RG_TEXT_MAX + RG_DETECT_LIST_MAX], win[32];
    const char *sig = rg_detect_signal_name(h->signal);
    snprintf(type, sizeof type, "detection.%s", sig);

    switch (h->signal) {
    case RG_SIG_VOLUME:
        snprintf(detail, sizeof detail,
                 "%" PRIu64 " recipients this hour, above %.0f (baseline %.1f x k %.1f, floor %"
                 PRIu64 ")", h->current, h->threshold, h->baseline, cfg->detect.k,
                 cfg->detect.floor);
        break;
    case RG_SIG_NEW_COUNTRY:
        snprintf(detail, sizeof detail, "login %s from %s in %s, a country the account never "
                 "used (known: %s)", h->login, h->client, h->country, h->known);
        break;
    case RG_SIG_COUNTRIES:
        snprintf(detail, sizeof detail, "logins from countries %s within an hour (limit %u)",
                 h->countries, cfg->detect.countries_per_hour);
        break;
    case RG_SIG_IPS:
        snprintf(detail, sizeof detail, "logins from more than %u addresses within an hour: %s",
                 cfg->detect.ips_per_hour, h->ips);
        break;
    case RG_SIG_BOUNCE_RATE:
    case RG_SIG_COMPLAINT_RATE:
        snprintf(detail, sizeof detail, "%" PRIu64 " %s of %" PRIu64 " recipients (%.3g%%) within "
                 "%s, above %.3g%% (at least %" PRIu64 " recipients)", h->count,
                 h->signal == RG_SIG_BOUNCE_RATE ? "hard bounces" : "complaints", h->volume,
                 h->rate * 100, window_text(h->window_ms, win, sizeof win),
                 h->rate_threshold * 100, cfg->detect.reputation_min);
        break;
    default:
        snprintf(detail, sizeof detail, "%" PRIu64 " of %" PRIu64 " recipients refused (%.0f%%) "
                 "within %" PRIu64 " min", h->refused, h->total, h->ratio * 100,
                 cfg->detect.refused_window_ms / 60000);
        break;
    }
    if (h->cooling && strlen(detail) + 40 < sizeof detail)
        strcat(detail, "; cooling down, not acted on");

    add_num(&f, "ts", (double)h->ts_ms, true);
    rg_fields_add(&f, "type", type);
    rg_fields_add(&f, "node", cfg->node);
    rg_fields_add(&f, "stage", "detect");
    rg_fields_add(&f, "qid", "");
    rg_fields_add(&f, "account", account);
    rg_fields_add(&f, "login", h->login);
    rg_fields_add(&f, "client", h->client);
    rg_fields_add(&f, "country", h->country);
    rg_fields_add(&f, "sender", "");
    rg_fields_add(&f, "rcpt", "");
    rg_fields_add(&f, "nrcpt", "0");
    rg_fields_add(&f, "size", "0");
    rg_fields_add(&f, "verdict", rg_detect_action_name(done));
    rg_fields_add(&f, "code", "");
    rg_fields_add(&f, "reason", sig);
    rg_fields_add(&f, "detail", detail);
    switch (h->signal) {
    case RG_SIG_VOLUME:
        add_num(&f, "baseline", h->baseline, false);
        add_num(&f, "threshold", h->threshold, false);
        add_num(&f, "current", (double)h->current, true);
        break;
    case RG_SIG_REFUSED:
        add_num(&f, "refused", (double)h->refused, true);
        add_num(&f, "total", (double)h->total, true);
        add_num(&f, "ratio", h->ratio, false);
        break;
    case RG_SIG_NEW_COUNTRY:
        rg_fields_add(&f, "known", h->known);
        break;
    case RG_SIG_BOUNCE_RATE:
    case RG_SIG_COMPLAINT_RATE:
        add_num(&f, "window", (double)(h->window_ms / 1000), true);
        add_num(&f, "volume", (double)h->volume, true);
        add_num(&f, "count", (double)h->count, true);
        add_rate(&f, "rate", h->rate);
        add_rate(&f, "threshold", h->rate_threshold);
        break;
    default:
        rg_fields_add(&f, "countries", h->countries);
        rg_fields_add(&f, "ips", h->ips);
        break;
    }
    rg_fields_add(&f, "cooling", h->cooling ? "yes" : "no");
    int r = rg_admin_event_add(ad, cfg->events_max, &f, account, NULL, h->ts_ms);
    rg_fields_clear(&f);
    return r;
}
