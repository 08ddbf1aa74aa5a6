/*
 * relayguard-detectd - notices compromised accounts from the events stream.
 *
 * One loop, one blocking Redis connection:
 *   read    XREADGROUP as a member of the consumer group "detectd" (XAUTOCLAIM
 *           first for what a dead detector left pending), a batch at a time;
 *   feed    group the batch's events by account, read those accounts'
 *           detection states in one pipelined round trip (rg:dt:ACCOUNT),
 *           feed each event to the pure logic (policy/detect.c);
 *   save    write the states back in one EVAL, each only if no other
 *           detector wrote it meanwhile (else read it again and feed again);
 *   act     for each detection: suspend or throttle the account (the same
 *           transaction as `relayguard account set`; rg:abatch:gen is bumped so
 *           every node's engine sees it at its next decision) and XADD the
 *           detection event with its evidence;
 *   ack     XACK the batch.
 * Detection runs off the stream, so a decision costs Redis nothing more
 * (docs/architecture.md "Detection" has the measurement).  SIGHUP reloads
 * the configuration; SIGTERM and SIGINT finish the batch and exit.
 */
#include <errno.h>
#include <search.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "admin.h"
#include "config.h"
#include "daemon.h"
#include "detect.h"
#include "detect_store.h"
#include "geoip.h"
#include "keys.h"
#include "log.h"
#include "util.h"

#define IDENT "relayguard-detectd"
#define BLOCK_MS "500"              /* XREADGROUP BLOCK: how soon a signal is noticed */
#define GATHER_MS 200               /* after a batch that was not full: let the stream fill */
#define SAVE_TRIES 5
#define HITS_MAX 8
#define ACTION_UNKNOWN (-9)

/*
 * States this detector wrote last, by account, with the version they got:
 * while nobody else writes an account (one detector, or the same accounts
 * keep going to the same one) a batch reads nothing from Redis, and the
 * version check of the write tells when somebody did.  Bounded: when full it
 * is emptied (the states are read again).
 */
#define CACHE_MAX 20000
typedef struct centry {
    char *name;
    uint64_t version;
    rg_detect_state st;
} centry;

static struct {
    char *config_path;
    int debug;
    rg_config *cfg;
    rg_geoip *geo;
    rg_admin *ad;
    char consumer[200];
    volatile sig_atomic_t stop, hup;
    uint64_t next_connect, backoff_ms, next_autoclaim;
    char autoclaim_from[64];
    bool group_ok;
    unsigned long events, detections;
    struct hsearch_data cache;
    centry **centries;
    size_t ncache;
} g;

static void cache_clear(void)
{
    if (g.centries == NULL)
        return;
    hdestroy_r(&g.cache);
    for (size_t i = 0; i < g.ncache; i++) {
        free(g.centries[i]->name);
        free(g.centries[i]);
    }
    free(g.centries);
    g.centries = NULL;
    g.ncache = 0;
}

static centry *cache_get(const char *name)
{
    ENTRY q = { .key = (char *)name }, *e = NULL;
    if (g.centries == NULL || hsearch_r(q, FIND, &e, &g.cache) == 0)
        return NULL;
    return e->data;
}

/* Remember st as version of name (a copy). */
static void cache_put(const char *name, const rg_detect_state *st, uint64_t version)
{
    centry *c = cache_get(name);
    if (c == NULL) {
        if (g.ncache == CACHE_MAX)
            cache_clear();
        if (g.centries == NULL) {
            memset(&g.cache, 0, sizeof g.cache);
            if (hcreate_r(CACHE_MAX * 2, &g.cache) == 0)
                return;
            g.centries = rg_calloc(CACHE_MAX, sizeof *g.centries);
        }
        c = rg_calloc(1, sizeof *c);
        c->name = rg_strdup(name);
        ENTRY q = { .key = c->name, .data = c }, *e = NULL;
        if (hsearch_r(q, ENTER, &e, &g.cache) == 0) {
            free(c->name);
            free(c);
            return;
        }
        g.centries[g.ncache++] = c;
    }
    c->st = *st;
    c->version = version;
}

/* Forget name's state (somebody else wrote it). */
static void cache_drop(const char *name)
{
    centry *c = cache_get(name);
    if (c)
        c->version = UINT64_MAX;    /* never matches: read again */
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " IDENT " [-fdtVh] [-c FILE]\n"
        "  -c FILE    configuration (default " RG_DEFAULT_CONFIG ")\n"
        "  -f         stay in the foreground\n"
        "  -d         debug logging\n"
        "  -t         check the configuration and exit\n"
        "  -V         print the version and exit\n"
        "  -h         this help\n");
}

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        g.hup = 1;
    else
        g.stop = 1;
}

/* --- Redis ---------------------------------------------------------------------- */

static redisContext *ctx(void)
{
    return rg_admin_redis(g.ad);
}

/* The connection failed: drop it, reconnect later with backoff. */
static void store_lost(const char *what)
{
    rg_error("error: %s; reconnecting", what);
    rg_admin_close(&g.ad);
    g.backoff_ms = g.backoff_ms ? (g.backoff_ms * 2 > 2000 ? 2000 : g.backoff_ms * 2) : 100;
    g.next_connect = mono_ms() + g.backoff_ms;
}

static bool store_up(void)
{
    char err[1024];
    if (g.ad)
        return true;
    if (mono_ms() < g.next_connect)
        return false;
    if ((g.ad = rg_admin_connect(g.cfg, err, sizeof err)) == NULL) {
        rg_error("error: %s", err);
        g.backoff_ms = g.backoff_ms ? (g.backoff_ms * 2 > 2000 ? 2000 : g.backoff_ms * 2) : 100;
        g.next_connect = mono_ms() + g.backoff_ms;
        return false;
    }
    if (g.backoff_ms)
        rg_info("store %s: connected again", g.cfg->store_text);
    g.backoff_ms = 0;
    g.group_ok = false;
    return true;
}

/* One command; NULL (connection dropped, logged) on failure or an error reply. */
static redisReply *command(int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(ctx(), argc, argv, NULL);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        char why[1024];
        snprintf(why, sizeof why, "store %.400s: %.30s: %.500s", g.cfg->store_text, argv[0],
                 r ? r->str : ctx()->errstr[0] ? ctx()->errstr : "no reply");
        if (r && strstr(r->str, "BUSYGROUP")) {
            freeReplyObject(r);
            return NULL;        /* the caller looks at nothing else */
        }
        if (r)
            freeReplyObject(r);
        store_lost(why);
        return NULL;
    }
    return r;
}

/* The consumer group, created at the stream's end ("$") when missing. */
static int ensure_group(void)
{
    if (g.group_ok)
        return 0;
    const char *av[] = { "XGROUP", "CREATE", RG_KEY_EVENTS, RG_DETECT_GROUP, "$", "MKSTREAM" };
    redisReply *r = redisCommandArgv(ctx(), 6, av, NULL);
    if (r == NULL) {
        store_lost(ctx()->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "BUSYGROUP") == NULL) {
        char why[512];
        snprintf(why, sizeof why, "XGROUP CREATE: %s", r->str);
        freeReplyObject(r);
        store_lost(why);
        return -1;
    }
    if (r->type != REDIS_REPLY_ERROR)
        rg_info("created the consumer group %s of %s", RG_DETECT_GROUP, RG_KEY_EVENTS);
    freeReplyObject(r);
    g.group_ok = true;
    return 0;
}

/* --- a batch ---------------------------------------------------------------------- */

typedef struct sentry {
    const char *id;
    const redisReply *fields;   /* flat field/value array */
    rg_detect_event ev;
    char country[3];            /* looked up here when the event has none */
} sentry;

typedef struct pending {
    rg_detect_hit hit;
    rg_detect_action act;       /* what to do */
} pending;

typedef struct abatch {
    char *name;
    size_t *idx;                /* entries of this account, in stream order */
    size_t n;
    int action;                 /* detect_action: ACTION_UNKNOWN until read, then as
                                   rg_detect_store_account_action says */
    pending *p;
    size_t np;
} abatch;

static const char *field(const redisReply *f, const char *name)
{
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i]->type == REDIS_REPLY_STRING && strcmp(f->element[i]->str, name) == 0)
            return f->element[i + 1]->type == REDIS_REPLY_STRING ? f->element[i + 1]->str : "";
    return "";
}

/* Feed an account's events to its state; collect what to do. */
static void feed(abatch *a, sentry *e, rg_detect_state *s)
{
    const rg_detect_conf *dc = &g.cfg->detect;
    a->np = 0;
    for (size_t i = 0; i < a->n; i++) {
        rg_detect_hit hits[HITS_MAX];
        size_t n = rg_detect_feed(dc, s, &e[a->idx[i]].ev, hits, HITS_MAX);
        for (size_t j = 0; j < n; j++) {
            rg_detect_action act = hits[j].action;
            if (hits[j].configurable && !hits[j].cooling) {
                if (a->action == ACTION_UNKNOWN)
                    a->action = rg_detect_store_account_action(g.ad, a->name);
                if (a->action >= 0)
                    act = (rg_detect_action)a->action;
                else if (a->action < -1)
                    act = RG_DETECT_ALERT;      /* account gone, or the store failed */
            }
            if (act != RG_DETECT_ALERT)
                rg_detect_acted(dc, s, hits[j].ts_ms);
            a->p = rg_realloc(a->p, (a->np + 1) * sizeof *a->p);
            a->p[a->np].hit = hits[j];
            a->p[a->np].act = act;
            a->np++;
        }
    }
}

/* Do what a detection says, and tell about it. */
static void act(const abatch *a, const pending *p)
{
    const rg_detect_conf *dc = &g.cfg->detect;
    const rg_detect_hit *h = &p->hit;
    rg_detect_action done = p->act;
    const char *sig = rg_detect_signal_name(h->signal);
    int r = 1;

    if (p->act == RG_DETECT_SUSPEND) {
        r = rg_detect_store_suspend(g.ad, a->name);
    } else if (p->act == RG_DETECT_THROTTLE) {
        int64_t until = (int64_t)((h->ts_ms + dc->throttle_for_ms + 999) / 1000);
        r = rg_detect_store_throttle(g.ad, a->name, &dc->throttle, until);
    }
    if (r < 0) {
        rg_error("error: account %s: detection.%s: %s %s failed: %s", a->name, sig,
                 rg_detect_action_name(p->act), a->name, rg_admin_error(g.ad));
        done = RG_DETECT_ALERT;
    }
    if (rg_detect_store_event(g.ad, g.cfg, a->name, h, done) < 0)
        rg_error("error: account %s: detection.%s: event not recorded: %s", a->name, sig,
                 rg_admin_error(g.ad));
    g.detections++;
    rg_log(done == RG_DETECT_ALERT ? LOG_WARNING : LOG_ERR,
           "%s: account=%s detection.%s login=%s client=%s country=%s current=%" PRIu64
           " baseline=%.1f threshold=%.0f countries=%s ips=%s refused=%" PRIu64 "/%" PRIu64
           "%s", rg_detect_action_name(done), a->name, sig, h->login[0] ? h->login : "-",
           h->client[0] ? h->client : "-", h->country[0] ? h->country : "-", h->current,
           h->baseline, h->threshold, h->countries[0] ? h->countries : "-",
           h->ips[0] ? h->ips : "-", h->refused, h->total, h->cooling ? " (cooling down)" : "");
}

/*
 * Process the entries of one XREADGROUP / XAUTOCLAIM reply (an array of
 * [id, [field, value...]]) and XACK them.  0, or -1 when the store failed
 * (the entries stay pending and are read again).
 */
static int process(const redisReply *list)
{
    size_t n = list->elements;
    if (n == 0)
        return 0;
    sentry *e = rg_calloc(n, sizeof *e);
    abatch *accts = NULL;
    size_t nacct = 0, ne = 0;
    int ret = 0;

    for (size_t i = 0; i < n; i++) {
        const redisReply *it = list->element[i];
        if (it->type != REDIS_REPLY_ARRAY || it->elements != 2 ||
            it->element[0]->type != REDIS_REPLY_STRING)
            continue;
        sentry *x = &e[ne];
        x->id = it->element[0]->str;
        x->fields = it->element[1];
        if (x->fields->type != REDIS_REPLY_ARRAY) {
            /* deleted (trimmed) while pending: nothing to feed, only to ack */
            ne++;
            continue;
        }
        const char *ts = field(x->fields, "ts");
        x->ev.ts_ms = ts[0] ? strtoull(ts, NULL, 10) : strtoull(x->id, NULL, 10);
        x->ev.type = field(x->fields, "type");
        x->ev.stage = field(x->fields, "stage");
        x->ev.verdict = field(x->fields, "verdict");
        x->ev.reason = field(x->fields, "reason");
        x->ev.login = field(x->fields, "login");
        x->ev.client = field(x->fields, "client");
        x->ev.country = field(x->fields, "country");
        if (x->ev.country[0] == '\0' && x->ev.login[0] && x->ev.client[0] && g.geo &&
            g.geo->country(g.geo, x->ev.client, x->country) == 1)
            x->ev.country = x->country;
        g.events++;
        const char *name = field(x->fields, "account");
        if (name[0]) {
            size_t k = 0;
            while (k < nacct && strcmp(accts[k].name, name) != 0)
                k++;
            if (k == nacct) {
                accts = rg_realloc(accts, (nacct + 1) * sizeof *accts);
                memset(&accts[nacct], 0, sizeof *accts);
                accts[nacct].name = rg_strdup(name);
                accts[nacct].action = ACTION_UNKNOWN;
                nacct++;
            }
            accts[k].idx = rg_realloc(accts[k].idx, (accts[k].n + 1) * sizeof *accts[k].idx);
            accts[k].idx[accts[k].n++] = ne;
        }
        ne++;
    }

    /* Read (what the cache does not have), feed, write; the accounts whose
     * write lost are read again and fed again. */
    char **names = rg_calloc(nacct + 1, sizeof *names), **rnames = rg_calloc(nacct + 1, sizeof *rnames);
    rg_detect_state *st = rg_calloc(nacct + 1, sizeof *st), *orig = rg_calloc(nacct + 1, sizeof *orig);
    rg_detect_state *rst = rg_calloc(nacct + 1, sizeof *rst);
    uint64_t *ver = rg_calloc(nacct + 1, sizeof *ver), *rver = rg_calloc(nacct + 1, sizeof *rver);
    bool *conflict = rg_calloc(nacct + 1, sizeof *conflict), *newbase = rg_calloc(nacct + 1, 1);
    size_t *which = rg_calloc(nacct + 1, sizeof *which), *rj = rg_calloc(nacct + 1, sizeof *rj);
    size_t todo = nacct;
    for (size_t k = 0; k < nacct; k++)
        which[k] = k;
    for (int tries = 0; todo > 0 && tries < SAVE_TRIES; tries++) {
        size_t nread = 0;
        for (size_t j = 0; j < todo; j++) {
            names[j] = accts[which[j]].name;
            centry *c = tries == 0 ? cache_get(names[j]) : NULL;
            if (c && c->version != UINT64_MAX) {
                st[j] = c->st;
                ver[j] = c->version;
            } else {
                rnames[nread] = names[j];
                rj[nread++] = j;
            }
        }
        if (nread && rg_detect_store_load(g.ad, rnames, nread, rst, rver) < 0) {
            ret = -1;
            break;
        }
        for (size_t r = 0; r < nread; r++) {
            st[rj[r]] = rst[r];
            ver[rj[r]] = rver[r];
        }
        for (size_t j = 0; j < todo; j++) {
            orig[j] = st[j];
            feed(&accts[which[j]], e, &st[j]);
            newbase[j] = !rg_detect_same_baseline(&orig[j], &st[j]);
        }
        if (rg_detect_store_save(g.ad, names, todo, st, newbase, ver, conflict) < 0) {
            ret = -1;
            break;
        }
        size_t left = 0;
        for (size_t j = 0; j < todo; j++) {
            abatch *a = &accts[which[j]];
            if (conflict[j]) {
                cache_drop(a->name);
                which[left++] = which[j];
                continue;
            }
            cache_put(a->name, &st[j], ver[j] + 1);
            for (size_t q = 0; q < a->np; q++)
                act(a, &a->p[q]);
            a->np = 0;
        }
        if (left)
            rg_debug("%zu account states changed under us; feeding them again", left);
        todo = left;
    }
    if (ret == 0 && todo > 0)
        rg_warn("warning: %zu account states kept changing; their events of this batch are "
                "skipped", todo);

    if (ret == 0 && ne > 0 && g.cfg->detect.acknowledge) {
        const char **av = rg_calloc(3 + ne, sizeof *av);
        av[0] = "XACK";
        av[1] = RG_KEY_EVENTS;
        av[2] = RG_DETECT_GROUP;
        for (size_t i = 0; i < ne; i++)
            av[3 + i] = e[i].id;
        redisReply *r = command((int)(3 + ne), av);
        free(av);
        if (r)
            freeReplyObject(r);
        else
            ret = -1;
    }
    if (ret < 0 && g.ad)
        store_lost(ctx()->errstr[0] ? ctx()->errstr : rg_admin_error(g.ad));

    for (size_t k = 0; k < nacct; k++) {
        free(accts[k].name);
        free(accts[k].idx);
        free(accts[k].p);
    }
    free(accts);
    free(names);
    free(rnames);
    free(st);
    free(orig);
    free(rst);
    free(ver);
    free(rver);
    free(conflict);
    free(newbase);
    free(which);
    free(rj);
    free(e);
    return ret;
}

/* Take over entries a dead detector left pending for longer than claim_idle. */
static void autoclaim(void)
{
    if (mono_ms() < g.next_autoclaim || !g.cfg->detect.acknowledge)
        return;
    char idle[32], count[16];
    snprintf(idle, sizeof idle, "%" PRIu64, g.cfg->detect.claim_idle_ms);
    snprintf(count, sizeof count, "%u", g.cfg->detect.batch);
    const char *av[] = { "XAUTOCLAIM", RG_KEY_EVENTS, RG_DETECT_GROUP, g.consumer, idle,
                         g.autoclaim_from, "COUNT", count };
    redisReply *r = command(8, av);
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        if (r->element[1]->type == REDIS_REPLY_ARRAY && r->element[1]->elements > 0) {
            rg_info("took over %zu events another detector left", r->element[1]->elements);
            process(r->element[1]);
        }
        snprintf(g.autoclaim_from, sizeof g.autoclaim_from, "%s", r->element[0]->str);
        if (strcmp(g.autoclaim_from, "0-0") != 0) {
            freeReplyObject(r);
            return;             /* more to look at: again at the next turn */
        }
    }
    freeReplyObject(r);
    g.next_autoclaim = mono_ms() + g.cfg->detect.claim_idle_ms / 2;
}

/* Read and process one batch.  Returns the number of entries read. */
static size_t read_batch(void)
{
    size_t got = 0;
    char count[16];
    snprintf(count, sizeof count, "%u", g.cfg->detect.batch);
    /* acknowledge = no: NOACK, the entries never enter the pending list */
    const char *av[] = { "XREADGROUP", "GROUP", RG_DETECT_GROUP, g.consumer, "COUNT", count,
                         "BLOCK", BLOCK_MS, "NOACK", "STREAMS", RG_KEY_EVENTS, ">" };
    if (g.cfg->detect.acknowledge)
        memmove(&av[8], &av[9], 3 * sizeof av[0]);
    redisReply *r = redisCommandArgv(ctx(), g.cfg->detect.acknowledge ? 11 : 12, av, NULL);
    if (r == NULL) {
        store_lost(ctx()->errstr);
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strstr(r->str, "NOGROUP"))
            g.group_ok = false;     /* the stream was deleted: create again */
        else
            rg_error("error: XREADGROUP: %s", r->str);
        freeReplyObject(r);
        return 0;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        got = r->element[0]->element[1]->elements;
        process(r->element[0]->element[1]);
    }
    freeReplyObject(r);
    return got;
}

/* --- start ------------------------------------------------------------------------------ */

static int open_geoip(const rg_config *cfg, rg_geoip **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->geoip_db == NULL)
        return 0;
    char why[512];
    if ((*out = rg_geoip_open_mmdb(cfg->geoip_db, why, sizeof why)) == NULL) {
        snprintf(err, errlen, "geoip_db %s: %s", cfg->geoip_db, why);
        return -1;
    }
    return 0;
}

static void reload(void)
{
    char err[1024];
    rg_info("SIGHUP: reloading %s", g.config_path);
    rg_config *cfg = rg_config_load(g.config_path, err, sizeof err);
    rg_geoip *geo = NULL;
    if (cfg == NULL || open_geoip(cfg, &geo, err, sizeof err) < 0) {
        rg_error("error: reload: %s; keeping the old configuration", err);
        rg_config_free(cfg);
        return;
    }
    if (strcmp(cfg->store_text, g.cfg->store_text) != 0)
        rg_admin_close(&g.ad);
    if (g.geo)
        g.geo->free(g.geo);
    g.geo = geo;
    rg_config_free(g.cfg);
    g.cfg = cfg;
    if (!g.debug)
        rg_log_set_level(cfg->log_level);
}

int main(int argc, char **argv)
{
    const char *config_path = RG_DEFAULT_CONFIG;
    int foreground = 0, check_only = 0, opt;
    char err[1024], abs_path[PATH_MAX];

    while ((opt = getopt(argc, argv, "c:fdtVh")) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'f': foreground = 1; break;
        case 'd': g.debug = 1; break;
        case 't': check_only = 1; break;
        case 'V': printf(IDENT " %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    g.config_path = rg_strdup(realpath(config_path, abs_path) ? abs_path : config_path);
    if ((g.cfg = rg_config_load(g.config_path, err, sizeof err)) == NULL) {
        fprintf(stderr, IDENT ": %s\n", err);
        free(g.config_path);
        return 1;
    }
    if (open_geoip(g.cfg, &g.geo, err, sizeof err) < 0) {
        fprintf(stderr, IDENT ": %s: %s\n", g.config_path, err);
        rg_config_free(g.cfg);
        free(g.config_path);
        return 1;
    }
    if (check_only) {
        printf(IDENT ": %s: configuration OK%s\n", g.config_path,
               g.cfg->detect.line ? "" : " (no detect block: the defaults apply)");
        if (g.geo)
            g.geo->free(g.geo);
        rg_config_free(g.cfg);
        free(g.config_path);
        return 0;
    }

    rg_log_open(IDENT, g.cfg->log, g.debug ? LOG_DEBUG : g.cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    if (!foreground && rg_daemonize(g.cfg->log == RG_LOG_STDERR, err, sizeof err) < 0)
        rg_fatal("%s", err);
    if (g.cfg->detect.pidfile && rg_write_pidfile(g.cfg->detect.pidfile, err, sizeof err) < 0)
        rg_fatal("%s", err);
    if (rg_drop_privileges(g.cfg->detect.user, "detect.user", err, sizeof err) < 0)
        rg_fatal("%s", err);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    snprintf(g.consumer, sizeof g.consumer, "%s:%ld", g.cfg->node, (long)getpid());
    snprintf(g.autoclaim_from, sizeof g.autoclaim_from, "0-0");
    rg_info("starting: store %s, consumer %s of group %s, k %.1f floor %" PRIu64
            " action %s, countries_per_hour %u ips_per_hour %u%s", g.cfg->store_text, g.consumer,
            RG_DETECT_GROUP, g.cfg->detect.k, g.cfg->detect.floor,
            rg_detect_action_name(g.cfg->detect.action), g.cfg->detect.countries_per_hour,
            g.cfg->detect.ips_per_hour, g.geo ? "" : ", no geoip_db");

    while (!g.stop) {
        if (g.hup) {
            g.hup = 0;
            reload();
        }
        if (!store_up()) {
            usleep(100 * 1000);
            continue;
        }
        if (ensure_group() < 0)
            continue;
        autoclaim();
        /* A batch that was not full: the detector keeps up.  Waiting a moment
         * lets the next batch gather more events, so that the per-batch work
         * (one read, one write, one XACK) is shared by more of them; a
         * detection comes at most GATHER_MS later. */
        if (g.ad && read_batch() < g.cfg->detect.batch && !g.stop && !g.hup)
            usleep(GATHER_MS * 1000);
    }
    rg_info("stopping: %lu events read, %lu detections", g.events, g.detections);
    rg_admin_close(&g.ad);
    cache_clear();
    if (g.geo)
        g.geo->free(g.geo);
    if (g.cfg->detect.pidfile)
        unlink(g.cfg->detect.pidfile);
    rg_config_free(g.cfg);
    free(g.config_path);
    return 0;
}
