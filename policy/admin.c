/*
 * admin.c - blocking Redis operations for the relayguard command line.
 * The key schema and value formats are keys.h's; nothing here decides a
 * message (that is decide.lua's job), it only reads, writes and deletes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "admin.h"
#include "conf.h"
#include "keys.h"
#include "util.h"
#include "verp.h"

struct rg_admin {
    redisContext *c;
    char store[512];       /* store URL for messages, password masked */
    char err[512];
};

static void set_err(rg_admin *ad, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(rg_admin *ad, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ad->err, sizeof ad->err, fmt, ap);
    va_end(ap);
}

const char *rg_admin_error(const rg_admin *ad)
{
    return ad->err;
}

/* Record why a reply is missing or an error reply; frees r.  Always NULL. */
static redisReply *reply_failed(rg_admin *ad, redisReply *r)
{
    if (r == NULL) {
        set_err(ad, "store %s: %s", ad->store,
                ad->c->errstr[0] ? ad->c->errstr : "no reply");
    } else {
        set_err(ad, "store %s: %.*s", ad->store, (int)r->len, r->str);
        freeReplyObject(r);
    }
    return NULL;
}

/* Run one command; NULL (error recorded) on failure or an error reply. */
static redisReply *cmd_argv(rg_admin *ad, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(ad->c, argc, argv, NULL);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return reply_failed(ad, r);
    return r;
}

/* Read one pipelined reply; NULL (error recorded) on failure or an error reply. */
static redisReply *get_reply(rg_admin *ad)
{
    void *v = NULL;
    if (redisGetReply(ad->c, &v) != REDIS_OK)
        return reply_failed(ad, NULL);
    redisReply *r = v;
    if (r->type == REDIS_REPLY_ERROR)
        return reply_failed(ad, r);
    return r;
}

/* snprintf into a fixed buffer; -1 (error recorded) when it does not fit. */
static int key_fmt(rg_admin *ad, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int key_fmt(rg_admin *ad, char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len) {
        set_err(ad, "key too long");
        return -1;
    }
    return 0;
}

rg_admin *rg_admin_connect(const rg_config *cfg, char *err, size_t errlen)
{
    uint64_t ms = cfg->store_timeout_ms;
    if (ms < RG_ADMIN_MIN_TIMEOUT_MS)
        ms = RG_ADMIN_MIN_TIMEOUT_MS;
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

    rg_admin *ad = rg_calloc(1, sizeof *ad);
    if (rg_strlcpy(ad->store, cfg->store_text, sizeof ad->store) >= sizeof ad->store)
        ad->store[sizeof ad->store - 1] = '\0';   /* only used in messages */
    if (ad->store[0] == '\0')
        snprintf(ad->store, sizeof ad->store, "%s", cfg->store.host);

    if (cfg->store.unix_socket)
        ad->c = redisConnectUnixWithTimeout(cfg->store.host, tv);
    else
        ad->c = redisConnectWithTimeout(cfg->store.host, cfg->store.port, tv);
    if (ad->c == NULL || ad->c->err) {
        snprintf(err, errlen, "store %s: %s", ad->store,
                 ad->c ? ad->c->errstr : "out of memory");
        rg_admin_close(&ad);
        return NULL;
    }
    redisSetTimeout(ad->c, tv);

    redisReply *r = NULL;
    if (cfg->store.password[0]) {
        if (cfg->store.user[0]) {
            const char *argv[] = { "AUTH", cfg->store.user, cfg->store.password };
            r = cmd_argv(ad, 3, argv);
        } else {
            const char *argv[] = { "AUTH", cfg->store.password };
            r = cmd_argv(ad, 2, argv);
        }
        if (r == NULL)
            goto fail;
        freeReplyObject(r);
    }
    if (cfg->store.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", cfg->store.db);
        const char *argv[] = { "SELECT", db };
        if ((r = cmd_argv(ad, 2, argv)) == NULL)
            goto fail;
        freeReplyObject(r);
    }
    return ad;

fail:
    snprintf(err, errlen, "%s", ad->err);
    rg_admin_close(&ad);
    return NULL;
}

void rg_admin_close(rg_admin **ap)
{
    if (*ap == NULL)
        return;
    if ((*ap)->c)
        redisFree((*ap)->c);
    free(*ap);
    *ap = NULL;
}

/* --- field maps ------------------------------------------------------------- */

void rg_fields_add(rg_fields *f, const char *key, const char *value)
{
    f->keys = rg_realloc(f->keys, (f->n + 1) * sizeof *f->keys);
    f->values = rg_realloc(f->values, (f->n + 1) * sizeof *f->values);
    f->keys[f->n] = rg_strdup(key);
    f->values[f->n] = rg_strdup(value);
    f->n++;
}

const char *rg_fields_get(const rg_fields *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->keys[i], key) == 0)
            return f->values[i];
    return NULL;
}

bool rg_fields_equal(const rg_fields *a, const rg_fields *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const char *v = rg_fields_get(b, a->keys[i]);
        if (v == NULL || strcmp(v, a->values[i]) != 0)
            return false;
    }
    return true;
}

void rg_fields_clear(rg_fields *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->keys[i]);
        free(f->values[i]);
    }
    free(f->keys);
    free(f->values);
    f->keys = NULL;
    f->values = NULL;
    f->n = 0;
}

#define MAX_ACCOUNT_FIELDS 32

void rg_fields_from_account(const rg_account *a, rg_fields *out)
{
    const char *keys[MAX_ACCOUNT_FIELDS];
    char *values[MAX_ACCOUNT_FIELDS];
    size_t n = rg_account_to_fields(a, keys, values, MAX_ACCOUNT_FIELDS);
    for (size_t i = 0; i < n; i++) {
        rg_fields_add(out, keys[i], values[i]);
        free(values[i]);
    }
}

/* Append the pairs of an HGETALL-style flat array. */
static void fields_from_pairs(rg_fields *out, const redisReply *r)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING)
            rg_fields_add(out, k->str, v->str);
    }
}

/* --- accounts ------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rg_admin_account_names(rg_admin *ad, char ***names)
{
    const char *argv[] = { "SMEMBERS", RG_KEY_ACCOUNTS };
    redisReply *r = cmd_argv(ad, 2, argv);
    if (r == NULL)
        return -1;
    char **v = rg_calloc(r->elements + 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            v[n++] = rg_strdup(r->element[i]->str);
    freeReplyObject(r);
    qsort(v, n, sizeof *v, cmp_str);
    *names = v;
    return 0;
}

int rg_admin_account_fields(rg_admin *ad, const char *name, rg_fields *out)
{
    char key[256];
    if (key_fmt(ad, key, sizeof key, "%s%s", RG_KEY_ACCOUNT, name) < 0)
        return -1;
    const char *argv[] = { "HGETALL", key };
    redisReply *r = cmd_argv(ad, 2, argv);
    if (r == NULL)
        return -1;
    fields_from_pairs(out, r);
    int found = r->elements > 0;
    freeReplyObject(r);
    return found;
}

int rg_admin_accounts_begin(rg_admin *ad)
{
    const char *argv[] = { "WATCH", RG_KEY_ACCOUNT_GEN };
    redisReply *r = cmd_argv(ad, 2, argv);
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}

void rg_admin_accounts_abort(rg_admin *ad)
{
    const char *argv[] = { "UNWATCH" };
    redisReply *r = cmd_argv(ad, 1, argv);
    if (r)
        freeReplyObject(r);
}

/* Queue the commands that replace one account's hash.  Returns commands appended. */
static int append_account(rg_admin *ad, const rg_account *a)
{
    char key[256];
    if (key_fmt(ad, key, sizeof key, "%s%s", RG_KEY_ACCOUNT, a->name) < 0)
        return -1;
    rg_fields f = { 0 };
    rg_fields_from_account(a, &f);

    int n = 0;
    const char *del[] = { "DEL", key };
    redisAppendCommandArgv(ad->c, 2, del, NULL);
    n++;
    if (f.n > 0) {
        size_t argc = 2 + 2 * f.n;
        const char **argv = rg_malloc(argc * sizeof *argv);
        argv[0] = "HSET";
        argv[1] = key;
        for (size_t i = 0; i < f.n; i++) {
            argv[2 + 2 * i] = f.keys[i];
            argv[3 + 2 * i] = f.values[i];
        }
        redisAppendCommandArgv(ad->c, (int)argc, argv, NULL);
        free(argv);
        n++;
    }
    const char *sadd[] = { "SADD", RG_KEY_ACCOUNTS, a->name };
    redisAppendCommandArgv(ad->c, 3, sadd, NULL);
    n++;
    rg_fields_clear(&f);
    return n;
}

int rg_admin_accounts_commit(rg_admin *ad, const rg_account *const *put, size_t nput,
                             char *const *del, size_t ndel)
{
    if (nput == 0 && ndel == 0) {
        rg_admin_accounts_abort(ad);
        return 1;
    }
    size_t queued = 0;
    const char *multi[] = { "MULTI" };
    redisAppendCommandArgv(ad->c, 1, multi, NULL);
    for (size_t i = 0; i < nput; i++) {
        int n = append_account(ad, put[i]);
        if (n < 0) {
            /* Still inside MULTI: DISCARD drops what was queued. */
            const char *discard[] = { "DISCARD" };
            redisAppendCommandArgv(ad->c, 1, discard, NULL);
            for (size_t k = 0; k < queued + 2; k++) {
                redisReply *r = get_reply(ad);
                if (r)
                    freeReplyObject(r);
            }
            set_err(ad, "account name too long: %s", put[i]->name);
            return -1;
        }
        queued += (size_t)n;
    }
    for (size_t i = 0; i < ndel; i++) {
        char key[256];
        if (snprintf(key, sizeof key, "%s%s", RG_KEY_ACCOUNT, del[i]) >= (int)sizeof key)
            key[0] = '\0';   /* cannot exist: names are short */
        const char *d[] = { "DEL", key };
        const char *s[] = { "SREM", RG_KEY_ACCOUNTS, del[i] };
        redisAppendCommandArgv(ad->c, 2, d, NULL);
        redisAppendCommandArgv(ad->c, 3, s, NULL);
        queued += 2;
    }
    const char *incr[] = { "INCR", RG_KEY_ACCOUNT_GEN };
    const char *exec[] = { "EXEC" };
    redisAppendCommandArgv(ad->c, 2, incr, NULL);
    redisAppendCommandArgv(ad->c, 1, exec, NULL);
    queued++;

    /* MULTI, the queued commands (QUEUED each), then EXEC's reply. */
    int failed = 0;
    for (size_t i = 0; i < queued + 1; i++) {
        redisReply *r = get_reply(ad);
        if (r == NULL) {
            if (ad->c->err)
                return -1;
            failed = 1;
            continue;
        }
        freeReplyObject(r);
    }
    redisReply *r = get_reply(ad);
    if (r == NULL)
        return -1;
    int ret;
    if (r->type == REDIS_REPLY_NIL) {
        ret = 0;             /* WATCH fired: someone changed accounts */
    } else if (failed) {
        ret = -1;
    } else {
        ret = 1;
    }
    freeReplyObject(r);
    return ret;
}

void *rg_admin_redis(rg_admin *ad)
{
    return ad->c;
}

#define EDIT_TRIES 20

int rg_admin_account_edit(rg_admin *ad, const char *name, rg_account_edit_fn *fn, void *arg)
{
    for (int tries = 0; tries < EDIT_TRIES; tries++) {
        rg_fields f = { 0 };
        char err[512];
        if (rg_admin_accounts_begin(ad) < 0)
            return -1;
        int found = rg_admin_account_fields(ad, name, &f);
        if (found <= 0) {
            rg_admin_accounts_abort(ad);
            if (found == 0)
                set_err(ad, "account %s not found", name);
            return found < 0 ? -1 : -2;
        }
        rg_account *a = rg_account_from_fields(name, f.keys, f.values, f.n, err, sizeof err);
        rg_fields_clear(&f);
        if (a == NULL) {
            rg_admin_accounts_abort(ad);
            set_err(ad, "account %s: stored data does not parse: %s", name, err);
            return -1;
        }
        if (fn(arg, a) == 0) {
            rg_admin_accounts_abort(ad);
            rg_account_free(a);
            return 0;
        }
        const rg_account *put[1] = { a };
        int r = rg_admin_accounts_commit(ad, put, 1, NULL, 0);
        rg_account_free(a);
        if (r != 0)
            return r;       /* 1 written, -1 error */
    }
    set_err(ad, "account %s: accounts keep changing; gave up after %d tries", name, EDIT_TRIES);
    return -1;
}

/* --- suppression ------------------------------------------------------------- */

static const char *const supp_reasons[] = { "hard-bounce", "complaint", "unsubscribe", "manual", NULL };

bool rg_supp_reason_valid(const char *reason)
{
    for (size_t i = 0; supp_reasons[i]; i++)
        if (strcmp(reason, supp_reasons[i]) == 0)
            return true;
    return false;
}

int rg_supp_format(const rg_supp *e, char *buf, size_t len)
{
    if (!rg_supp_reason_valid(e->reason))
        return -1;
    for (const unsigned char *p = (const unsigned char *)e->note; *p; p++)
        if (*p == '|' || *p < 0x20 || *p == 0x7f)
            return -1;
    int n = snprintf(buf, len, "%s|%" PRId64 "|%" PRId64 "|%s", e->reason, e->since,
                     e->expires, e->note);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* A decimal integer field of exactly [s, end).  0 / -1. */
static int parse_i64(const char *s, const char *end, int64_t *out)
{
    if (s == end)
        return -1;
    char tmp[32];
    size_t n = (size_t)(end - s);
    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *e;
    errno = 0;
    long long v = strtoll(tmp, &e, 10);
    if (errno || *e != '\0')
        return -1;
    *out = v;
    return 0;
}

int rg_supp_parse(const char *addr, const char *value, rg_supp *out)
{
    memset(out, 0, sizeof *out);
    if (rg_strlcpy(out->addr, addr, sizeof out->addr) >= sizeof out->addr)
        return -1;
    const char *p1 = strchr(value, '|');
    const char *p2 = p1 ? strchr(p1 + 1, '|') : NULL;
    const char *p3 = p2 ? strchr(p2 + 1, '|') : NULL;
    if (p3 == NULL)
        return -1;
    size_t rlen = (size_t)(p1 - value);
    if (rlen >= sizeof out->reason)
        return -1;
    memcpy(out->reason, value, rlen);
    out->reason[rlen] = '\0';
    if (parse_i64(p1 + 1, p2, &out->since) < 0 || parse_i64(p2 + 1, p3, &out->expires) < 0)
        return -1;
    rg_strlcpy(out->note, p3 + 1, sizeof out->note);   /* a long note is cut, not lost */
    return 0;
}

bool rg_supp_expired(const rg_supp *e, int64_t now)
{
    return e->expires != 0 && e->expires <= now;
}

static int supp_key(rg_admin *ad, const char *account, char *buf, size_t len)
{
    if (account == NULL)
        return key_fmt(ad, buf, len, "%s", RG_KEY_SUPP_GLOBAL);
    return key_fmt(ad, buf, len, "%s%s", RG_KEY_SUPP_ACCOUNT, account);
}

int rg_admin_supp_put(rg_admin *ad, const char *account, const rg_supp *e)
{
    size_t added;
    if (rg_admin_supp_put_many(ad, account, e, 1, &added) < 0)
        return -1;
    return added == 1;
}

int rg_admin_supp_put_many(rg_admin *ad, const char *account, const rg_supp *e, size_t n,
                           size_t *added)
{
    char key[256], value[RG_SUPP_NOTE_MAX + 128];
    *added = 0;
    if (supp_key(ad, account, key, sizeof key) < 0)
        return -1;
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        if (rg_supp_format(&e[i], value, sizeof value) < 0)
            continue;        /* the caller validated; never store a bad value */
        const char *argv[] = { "HSET", key, e[i].addr, value };
        redisAppendCommandArgv(ad->c, 4, argv, NULL);
        sent++;
    }
    int ret = 0;
    for (size_t i = 0; i < sent; i++) {
        redisReply *r = get_reply(ad);
        if (r == NULL) {
            ret = -1;
            if (ad->c->err)
                break;       /* connection gone: no more replies will come */
            continue;
        }
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
            (*added)++;
        freeReplyObject(r);
    }
    return ret;
}

int rg_admin_supp_del(rg_admin *ad, const char *account, const char *addr)
{
    char key[256];
    if (supp_key(ad, account, key, sizeof key) < 0)
        return -1;
    const char *argv[] = { "HDEL", key, addr };
    redisReply *r = cmd_argv(ad, 3, argv);
    if (r == NULL)
        return -1;
    int ret = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    return ret;
}

int rg_admin_supp_get(rg_admin *ad, const char *account, const char *addr, rg_supp *out)
{
    char key[256];
    if (supp_key(ad, account, key, sizeof key) < 0)
        return -1;
    const char *argv[] = { "HGET", key, addr };
    redisReply *r = cmd_argv(ad, 3, argv);
    if (r == NULL)
        return -1;
    int ret = 0;
    if (r->type == REDIS_REPLY_STRING && rg_supp_parse(addr, r->str, out) == 0
        && !rg_supp_expired(out, (int64_t)time(NULL)))
        ret = 1;
    freeReplyObject(r);
    return ret;
}

int rg_admin_supp_scan(rg_admin *ad, const char *account, rg_supp_cb *cb, void *arg)
{
    char key[256], cursor[32] = "0";
    if (supp_key(ad, account, key, sizeof key) < 0)
        return -1;
    do {
        const char *argv[] = { "HSCAN", key, cursor, "COUNT", "1000" };
        redisReply *r = cmd_argv(ad, 5, argv);
        if (r == NULL)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
            || r->element[0]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            set_err(ad, "store %s: unexpected HSCAN reply", ad->store);
            return -1;
        }
        rg_strlcpy(cursor, r->element[0]->str, sizeof cursor);
        const redisReply *items = r->element[1];
        for (size_t i = 0; i + 1 < items->elements; i += 2) {
            rg_supp e;
            if (items->element[i]->type != REDIS_REPLY_STRING
                || items->element[i + 1]->type != REDIS_REPLY_STRING
                || rg_supp_parse(items->element[i]->str, items->element[i + 1]->str, &e) < 0)
                continue;
            if (cb(arg, &e) != 0) {
                freeReplyObject(r);
                return 0;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* --- limits ------------------------------------------------------------------ */

static uint64_t gcra_interval_us(const rg_limit *l)
{
    uint64_t t = l->count ? l->period_ms * 1000 / l->count : 0;
    return t ? t : 1;
}

uint64_t rg_gcra_used(const rg_limit *l, uint64_t now_us, uint64_t tat_us)
{
    if (tat_us <= now_us)
        return 0;
    uint64_t t = gcra_interval_us(l);
    uint64_t used = (tat_us - now_us + t - 1) / t;
    return used > l->burst ? l->burst : used;
}

/* Copy s into buf with Redis glob characters escaped.  0 / -1 (too long). */
static int glob_escape(const char *s, char *buf, size_t len)
{
    size_t j = 0;
    for (; *s; s++) {
        if (strchr("*?[]\\", *s)) {
            if (j + 1 >= len)
                return -1;
            buf[j++] = '\\';
        }
        if (j + 1 >= len)
            return -1;
        buf[j++] = *s;
    }
    buf[j] = '\0';
    return 0;
}

/* "BUCKET" without subject for a domain/ip limit, with its ":d:" / ":ip:" tail. */
static int subject_prefix(rg_admin *ad, const rg_limit *l, const char *account, char *buf,
                          size_t len)
{
    rg_limit base = *l;
    base.scope = account ? RG_SCOPE_ACCOUNT : RG_SCOPE_GLOBAL;
    char id[512];
    if (rg_bucket_id(&base, account, NULL, NULL, id, sizeof id) < 0) {
        set_err(ad, "bucket id too long");
        return -1;
    }
    return key_fmt(ad, buf, len, "%s%s", id, l->scope == RG_SCOPE_DOMAIN ? ":d:" : ":ip:");
}

/* A sorted set of strings, for subjects found by SCAN. */
typedef struct strset {
    char **v;
    size_t n;
} strset;

/* Add a copy (duplicates are removed by strset_sort). */
static void strset_add(strset *s, const char *str, size_t len)
{
    if ((s->n & (s->n - 1)) == 0)     /* grow at powers of two */
        s->v = rg_realloc(s->v, (s->n ? 2 * s->n : 1) * sizeof *s->v);
    s->v[s->n++] = rg_strndup(str, len);
}

/* Sort and drop duplicates. */
static void strset_sort(strset *s)
{
    size_t j = 0;
    if (s->n == 0)
        return;
    qsort(s->v, s->n, sizeof *s->v, cmp_str);
    for (size_t i = 1; i < s->n; i++) {
        if (strcmp(s->v[i], s->v[j]) == 0)
            free(s->v[i]);
        else
            s->v[++j] = s->v[i];
    }
    s->n = j + 1;
}

static void strset_clear(strset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/*
 * SCAN keys matching pattern; for each, the text between strip_head bytes
 * and strip_tail bytes from the end goes into out (if out), and the key
 * itself is deleted when del.  Returns keys seen (or deleted), or -1.
 */
static long scan_keys(rg_admin *ad, const char *pattern, size_t strip_head, size_t strip_tail,
                      strset *out, bool del)
{
    char cursor[32] = "0";
    long count = 0;
    do {
        const char *argv[] = { "SCAN", cursor, "MATCH", pattern, "COUNT", "1000" };
        redisReply *r = cmd_argv(ad, 6, argv);
        if (r == NULL)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
            || r->element[0]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            set_err(ad, "store %s: unexpected SCAN reply", ad->store);
            return -1;
        }
        rg_strlcpy(cursor, r->element[0]->str, sizeof cursor);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len < strip_head + strip_tail)
                continue;
            if (out)
                strset_add(out, k->str + strip_head, k->len - strip_head - strip_tail);
            if (del) {
                const char *d[] = { "UNLINK", k->str };
                redisReply *dr = cmd_argv(ad, 2, d);
                if (dr == NULL) {
                    freeReplyObject(r);
                    return -1;
                }
                count += dr->integer;
                freeReplyObject(dr);
            } else {
                count++;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return count;
}

/* A number Lua wrote (0 when absent or not a number); Lua may write
 * numbers as floats ("1.7e+15"): read them as doubles then. */
static uint64_t reply_u64(const char *str)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(str, &e, 10);
    if (*e != '\0' || errno) {
        double d = strtod(str, &e);
        v = d > 0 ? (unsigned long long)d : 0;
    }
    return v;
}

/* Fill st for one bucket: its hash rg:h:BUCKET holds the holds (slot ->
 * units), a rate's TAT (_t) and a quota's use per window (q:WINDOW); keys.h.
 * 0 / -1. */
static int bucket_state(rg_admin *ad, const rg_limit *l, const char *bucket, uint64_t now_ms,
                        rg_limit_state *st)
{
    char key[600], qfield[40] = "";
    uint64_t start, end = 0, tat = 0;
    if (rg_strlcpy(st->bucket, bucket, sizeof st->bucket) >= sizeof st->bucket) {
        set_err(ad, "bucket id too long");
        return -1;
    }
    if (l->kind == RG_LIMIT_QUOTA) {
        rg_window_bounds(l, now_ms, &start, &end, st->window, sizeof st->window);
        snprintf(qfield, sizeof qfield, "q:%s", st->window);
    }
    if (key_fmt(ad, key, sizeof key, "%s%s", RG_KEY_HOLDS, bucket) < 0)
        return -1;
    const char *argv[] = { "HGETALL", key };
    redisReply *r = cmd_argv(ad, 2, argv);
    if (r == NULL)
        return -1;
    st->holds = 0;
    st->used = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
        if (f[0] >= '0' && f[0] <= '9') {
            /* a slot: holds that have lapsed do not count */
            uint64_t slot = strtoull(f, NULL, 10);
            long long units = strtoll(v, NULL, 10);
            if (slot * RG_HOLD_SLOT_MS > now_ms && units > 0)
                st->holds += (uint64_t)units;
        } else if (l->kind == RG_LIMIT_RATE && strcmp(f, "_t") == 0) {
            tat = reply_u64(v);
        } else if (l->kind == RG_LIMIT_QUOTA && strcmp(f, qfield) == 0) {
            st->used = reply_u64(v);
        }
    }
    freeReplyObject(r);
    if (l->kind == RG_LIMIT_RATE) {
        uint64_t now_us = now_ms * 1000;
        st->used = rg_gcra_used(l, now_us, tat);
        st->left = l->burst - st->used;
        uint64_t t = gcra_interval_us(l), tau = l->burst * t;
        st->free_ms = tat > now_us ? (tat - now_us + 999) / 1000 : 0;
        st->reset_at_ms = now_ms + st->free_ms;
        /* one more fits when tat + T - now <= tau */
        st->next_ms = tat + t > now_us + tau ? (tat + t - now_us - tau + 999) / 1000 : 0;
    } else {
        st->left = st->used < l->count ? l->count - st->used : 0;
        st->free_ms = end > now_ms ? end - now_ms : 0;
        st->reset_at_ms = end;
        st->next_ms = st->left > 0 ? 0 : st->free_ms;
    }
    return 0;
}

int rg_admin_limit_states(rg_admin *ad, const rg_limit *l, const char *account,
                          const char *subject, uint64_t now_ms, rg_limit_state_cb *cb, void *arg)
{
    rg_limit_state st;
    char bucket[512];
    bool scoped = l->scope == RG_SCOPE_DOMAIN || l->scope == RG_SCOPE_IP;

    if (!scoped || subject) {
        memset(&st, 0, sizeof st);
        const char *dom = l->scope == RG_SCOPE_DOMAIN ? subject : NULL;
        const char *ip = l->scope == RG_SCOPE_IP ? subject : NULL;
        if (rg_bucket_id(l, account, dom, ip, bucket, sizeof bucket) < 0) {
            set_err(ad, "bucket id too long");
            return -1;
        }
        if (scoped && rg_strlcpy(st.subject, subject, sizeof st.subject) >= sizeof st.subject) {
            set_err(ad, "'%s' is too long", subject);
            return -1;
        }
        if (bucket_state(ad, l, bucket, now_ms, &st) < 0)
            return -1;
        cb(arg, l, &st);
        return 1;
    }

    /* Scope domain/ip: every subject with a bucket hash (rate, quota, holds). */
    char prefix[512], esc[1100], pattern[1200];
    if (subject_prefix(ad, l, account, prefix, sizeof prefix) < 0
        || glob_escape(prefix, esc, sizeof esc) < 0) {
        set_err(ad, "bucket id too long");
        return -1;
    }
    strset subjects = { 0 };
    int ret = 0;
    snprintf(pattern, sizeof pattern, "%s%s*", RG_KEY_HOLDS, esc);
    if (scan_keys(ad, pattern, strlen(RG_KEY_HOLDS) + strlen(prefix), 0, &subjects, false) < 0)
        ret = -1;
    if (ret == 0)
        strset_sort(&subjects);
    for (size_t i = 0; ret >= 0 && i < subjects.n; i++) {
        memset(&st, 0, sizeof st);
        rg_strlcpy(st.subject, subjects.v[i], sizeof st.subject);
        if (key_fmt(ad, bucket, sizeof bucket, "%s%s", prefix, subjects.v[i]) < 0
            || bucket_state(ad, l, bucket, now_ms, &st) < 0) {
            ret = -1;
            break;
        }
        ret++;
        if (cb(arg, l, &st) != 0)
            break;
    }
    strset_clear(&subjects);
    return ret;
}

/* UNLINK the hash of one bucket (its rate, every quota window and its
 * holds), or of every bucket under a prefix.  Keys deleted, or -1. */
static long reset_bucket(rg_admin *ad, const char *bucket, bool is_prefix)
{
    char esc[1100], pattern[1200];
    if (is_prefix) {
        if (glob_escape(bucket, esc, sizeof esc) < 0) {
            set_err(ad, "bucket id too long");
            return -1;
        }
        snprintf(pattern, sizeof pattern, "%s%s*", RG_KEY_HOLDS, esc);
        return scan_keys(ad, pattern, 0, 0, NULL, true);
    }
    char holds[600];
    if (key_fmt(ad, holds, sizeof holds, "%s%s", RG_KEY_HOLDS, bucket) < 0)
        return -1;
    const char *argv[] = { "UNLINK", holds };
    redisReply *r = cmd_argv(ad, 2, argv);
    if (r == NULL)
        return -1;
    long n = r->integer;
    freeReplyObject(r);
    return n;
}

long rg_admin_limit_reset(rg_admin *ad, const rg_limit *l, const char *account,
                          const char *subject)
{
    char bucket[512];
    bool scoped = l->scope == RG_SCOPE_DOMAIN || l->scope == RG_SCOPE_IP;
    if (scoped && subject == NULL) {
        if (subject_prefix(ad, l, account, bucket, sizeof bucket) < 0)
            return -1;
        return reset_bucket(ad, bucket, true);
    }
    const char *dom = l->scope == RG_SCOPE_DOMAIN ? subject : NULL;
    const char *ip = l->scope == RG_SCOPE_IP ? subject : NULL;
    if (rg_bucket_id(l, account, dom, ip, bucket, sizeof bucket) < 0) {
        set_err(ad, "bucket id too long");
        return -1;
    }
    return reset_bucket(ad, bucket, false);
}

/* --- events ------------------------------------------------------------------ */

static bool event_passes(const rg_event_filter *flt, const rg_fields *f)
{
    const char *v;
    if (flt && flt->account && ((v = rg_fields_get(f, "account")) == NULL || strcmp(v, flt->account) != 0))
        return false;
    if (flt && flt->verdict && ((v = rg_fields_get(f, "verdict")) == NULL || strcmp(v, flt->verdict) != 0))
        return false;
    if (flt && flt->types) {
        char type[128];
        rg_event_type(rg_fields_get(f, "type"), rg_fields_get(f, "verdict"), type, sizeof type);
        if (!rg_event_type_matches(flt->types, type))
            return false;
    }
    return true;
}

/* One stream entry [id, [f, v, ...]] into id/f.  0 / -1 (malformed). */
static int entry_parse(const redisReply *e, const char **id, rg_fields *f)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
        return -1;
    *id = e->element[0]->str;
    if (e->element[1]->type == REDIS_REPLY_ARRAY)
        fields_from_pairs(f, e->element[1]);
    return 0;
}

typedef struct event_copy {
    char *id;
    rg_fields f;
} event_copy;

long rg_admin_events_latest(rg_admin *ad, const rg_event_filter *flt, size_t count,
                            rg_event_cb *cb, void *arg, char *last_id, size_t idlen)
{
    char end[64] = "+";
    event_copy *got = NULL;
    size_t ngot = 0;
    long ret = 0;
    bool first = true, more = true;

    rg_strlcpy(last_id, "0-0", idlen);
    /* The first page always runs: it also gives the newest id. */
    while (first || (ngot < count && more)) {
        const char *argv[] = { "XREVRANGE", RG_KEY_EVENTS, end, "-", "COUNT", count ? "500" : "1" };
        redisReply *r = cmd_argv(ad, 6, argv);
        if (r == NULL) {
            ret = -1;
            break;
        }
        more = r->elements == 500;
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
                || e->element[0]->type != REDIS_REPLY_STRING)
                continue;
            const char *id = e->element[0]->str;
            if (first && rg_strlcpy(last_id, id, idlen) >= idlen)
                rg_strlcpy(last_id, "$", idlen);
            first = false;
            if (ngot >= count)
                break;
            snprintf(end, sizeof end, "(%s", id);
            rg_fields f = { 0 };
            entry_parse(e, &id, &f);
            if (!event_passes(flt, &f)) {
                rg_fields_clear(&f);
                continue;
            }
            got = rg_realloc(got, (ngot + 1) * sizeof *got);
            got[ngot].id = rg_strdup(id);
            got[ngot].f = f;
            ngot++;
        }
        first = false;
        freeReplyObject(r);
    }
    bool stop = false;
    for (size_t i = ngot; i-- > 0;) {
        if (ret >= 0 && !stop) {
            ret++;
            stop = cb(arg, got[i].id, &got[i].f) != 0;
        }
        free(got[i].id);
        rg_fields_clear(&got[i].f);
    }
    free(got);
    return ret;
}

int rg_admin_events_follow(rg_admin *ad, const rg_event_filter *flt, const char *after_id,
                           rg_event_cb *cb, void *arg)
{
    char last[64];
    if (rg_strlcpy(last, after_id, sizeof last) >= sizeof last) {
        set_err(ad, "bad stream id");
        return -1;
    }
    for (;;) {
        const char *argv[] = { "XREAD", "COUNT", "500", "BLOCK", "1000", "STREAMS", RG_KEY_EVENTS, last };
        redisReply *r = cmd_argv(ad, 8, argv);
        if (r == NULL)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {   /* nil: timed out, nothing new */
            freeReplyObject(r);
            continue;
        }
        const redisReply *s = r->element[0];
        const redisReply *entries = s->type == REDIS_REPLY_ARRAY && s->elements == 2 ? s->element[1] : NULL;
        for (size_t i = 0; entries && i < entries->elements; i++) {
            const char *id;
            rg_fields f = { 0 };
            if (entry_parse(entries->element[i], &id, &f) < 0)
                continue;
            rg_strlcpy(last, id, sizeof last);
            int stop = event_passes(flt, &f) ? cb(arg, id, &f) : 0;
            rg_fields_clear(&f);
            if (stop) {
                freeReplyObject(r);
                return 0;
            }
        }
        freeReplyObject(r);
    }
}

/* --- stats ------------------------------------------------------------------- */

int rg_admin_stats_hours(rg_admin *ad, const char *account, uint64_t now_ms, unsigned hours,
                         rg_fields *per_hour)
{
    char key[300], hour[16];
    time_t now = (time_t)(now_ms / 1000);
    for (unsigned h = 0; h < hours; h++) {
        time_t t = now - (time_t)h * 3600;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(hour, sizeof hour, "%Y%m%d%H", &tm);
        if (key_fmt(ad, key, sizeof key, "%s%s:%s", RG_KEY_STATS, account, hour) < 0)
            return -1;
        const char *argv[] = { "HGETALL", key };
        redisAppendCommandArgv(ad->c, 2, argv, NULL);
    }
    int ret = 0;
    for (unsigned h = 0; h < hours; h++) {
        redisReply *r = get_reply(ad);
        if (r == NULL) {
            ret = -1;
            if (ad->c->err)
                break;
            continue;
        }
        for (size_t i = 0; ret == 0 && i + 1 < r->elements; i += 2) {
            const redisReply *k = r->element[i], *v = r->element[i + 1];
            if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING)
                rg_fields_add(&per_hour[h], k->str, v->str);
        }
        freeReplyObject(r);
    }
    if (ret < 0)
        for (unsigned h = 0; h < hours; h++)
            rg_fields_clear(&per_hour[h]);
    return ret;
}

/* --- the bounce loop ----------------------------------------------------------- */

/* Read the n replies of a pipelined MULTI ... EXEC; the EXEC reply, or NULL. */
static redisReply *exec_replies(rg_admin *ad, size_t n)
{
    redisReply *last = NULL;
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = get_reply(ad);
        if (r == NULL) {
            failed = 1;
            if (ad->c->err)
                break;
            continue;
        }
        if (i + 1 == n)
            last = r;
        else
            freeReplyObject(r);
    }
    if (failed || last == NULL || last->type != REDIS_REPLY_ARRAY) {
        if (last != NULL) {
            freeReplyObject(last);
            if (!failed)
                set_err(ad, "store %s: transaction aborted", ad->store);
        }
        return NULL;
    }
    return last;
}

int rg_admin_verp_put(rg_admin *ad, const char *id, const char *account, const char *sender,
                      char *const *rcpts, size_t n, int64_t minted, uint64_t ttl_ms)
{
    rg_verp_record rec;
    if (strlen(id) > RG_VERP_ID_TEXT) {
        set_err(ad, "key too long");
        return -1;
    }
    rg_verp_record_init(&rec, id, account, sender, (const char *const *)rcpts, n, minted, ttl_ms);
    rg_store_record_append(ad->c, &rec.rec);
    rg_verp_record_free(&rec);
    redisReply *x = exec_replies(ad, 5);
    if (x == NULL)
        return -1;
    freeReplyObject(x);
    return 0;
}

int rg_admin_verp_get(rg_admin *ad, const char *id, rg_fields *out)
{
    char key[64];
    if (key_fmt(ad, key, sizeof key, "%s%s", RG_KEY_VERP, id) < 0)
        return -1;
    const char *argv[] = { "HGETALL", key };
    redisReply *r = cmd_argv(ad, 2, argv);
    if (r == NULL)
        return -1;
    fields_from_pairs(out, r);
    int found = r->elements > 0;
    freeReplyObject(r);
    return found;
}

long rg_admin_soft_bounce(rg_admin *ad, const char *account, const char *addr,
                          const char *member, uint64_t now_ms, uint64_t window_ms)
{
    char key[RG_ADDR_MAX + RG_NAME_MAX + 16], now[32], cut[32], win[32];
    int rc = account ? key_fmt(ad, key, sizeof key, "%s%s:%s", RG_KEY_SOFT_ACCOUNT, account, addr)
                     : key_fmt(ad, key, sizeof key, "%s%s", RG_KEY_SOFT_GLOBAL, addr);
    if (rc < 0)
        return -1;
    snprintf(now, sizeof now, "%" PRIu64, now_ms);
    snprintf(cut, sizeof cut, "(%" PRIu64, now_ms > window_ms ? now_ms - window_ms : 0);
    snprintf(win, sizeof win, "%" PRIu64, window_ms);
    const char *multi[] = { "MULTI" };
    const char *zadd[] = { "ZADD", key, now, member };
    const char *trim[] = { "ZREMRANGEBYSCORE", key, "-inf", cut };
    const char *card[] = { "ZCARD", key };
    const char *exp[] = { "PEXPIRE", key, win };
    const char *exec[] = { "EXEC" };
    redisAppendCommandArgv(ad->c, 1, multi, NULL);
    redisAppendCommandArgv(ad->c, 4, zadd, NULL);
    redisAppendCommandArgv(ad->c, 4, trim, NULL);
    redisAppendCommandArgv(ad->c, 2, card, NULL);
    redisAppendCommandArgv(ad->c, 3, exp, NULL);
    redisAppendCommandArgv(ad->c, 1, exec, NULL);
    redisReply *x = exec_replies(ad, 6);
    if (x == NULL)
        return -1;
    long count = -1;
    if (x->elements == 4 && x->element[2]->type == REDIS_REPLY_INTEGER)
        count = (long)x->element[2]->integer;
    else
        set_err(ad, "store %s: unexpected reply to ZCARD", ad->store);
    freeReplyObject(x);
    return count;
}

int rg_admin_event_add(rg_admin *ad, uint64_t events_max, const rg_fields *f,
                       const char *account, const char *counter, uint64_t now_ms)
{
    char max[32], hour[16], k1[300], k2[300];
    size_t argc = 0, ncmd = 0;
    const char **argv = rg_calloc(6 + 2 * f->n, sizeof *argv);
    snprintf(max, sizeof max, "%" PRIu64, events_max);
    argv[argc++] = "XADD";
    argv[argc++] = RG_KEY_EVENTS;
    argv[argc++] = "MAXLEN";
    argv[argc++] = "~";
    argv[argc++] = max;
    argv[argc++] = "*";
    for (size_t i = 0; i < f->n; i++) {
        argv[argc++] = f->keys[i];
        argv[argc++] = f->values[i];
    }
    redisAppendCommandArgv(ad->c, (int)argc, argv, NULL);
    free(argv);
    ncmd++;
    if (counter != NULL) {
        time_t t = (time_t)(now_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(hour, sizeof hour, "%Y%m%d%H", &tm);
        const char *who[2] = { "*", account };
        for (int i = 0; i < 2; i++) {
            if (who[i] == NULL || who[i][0] == '\0')
                continue;
            char *k = i == 0 ? k1 : k2;
            if (key_fmt(ad, k, sizeof k1, "%s%s:%s", RG_KEY_STATS, who[i], hour) < 0)
                break;
            const char *incr[] = { "HINCRBY", k, counter, "1" };
            const char *exp[] = { "EXPIRE", k, "691200" };
            redisAppendCommandArgv(ad->c, 4, incr, NULL);
            redisAppendCommandArgv(ad->c, 3, exp, NULL);
            ncmd += 2;
        }
    }
    int ret = 0;
    for (size_t i = 0; i < ncmd; i++) {
        redisReply *r = get_reply(ad);
        if (r == NULL) {
            ret = -1;
            if (ad->c->err)
                break;
            continue;
        }
        freeReplyObject(r);
    }
    return ret;
}
