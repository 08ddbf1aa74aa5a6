/*
 * relayguard-detectd - notices compromised accounts from the events stream.
 *
 * One loop, one blocking Redis connection, a round at a time:
 *   read    XREADGROUP as a member of the consumer group "detectd" (XAUTOCLAIM
 *           first for what a dead detector left pending), batches back to
 *           back while they come full (at most ROUND_READS), each under a
 *           lease of its own;
 *   feed    group the round's events by account, read those accounts'
 *           detection states in one pipelined round trip (rg:dt:ACCOUNT),
 *           feed each event to the pure logic (policy/detect.c);
 *   save    write the states back in one EVAL, each only if no other
 *           detector wrote it meanwhile (else read it again and feed again);
 *   act     for each detection: suspend or throttle the account (the same
 *           transaction as `relayguard account set`; rg:abatch:gen is bumped so
 *           every node's engine sees it at its next decision) and XADD the
 *           detection event with its evidence;
 *   ack     drop the round's leases (XACK what XAUTOCLAIM took over);
 *   pause   when the detector kept up, until max_delay after the round's
 *           start: the per-round work (state reads and writes, the leases)
 *           is shared by about max_delay's worth of events, and no event
 *           waits much longer than max_delay to be read.
 * Detection runs off the stream, so a decision costs Redis nothing more
 * (docs/architecture.md "Detection" has the measurement).  SIGHUP reloads
 * the configuration (and ends a pause); SIGTERM and SIGINT finish the round
 * and exit.
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
#define ROUND_READS 8               /* batches read into one round at most */
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
    bool thr_ok;                /* thr is the account's as of g.acct_gen */
    rg_detect_account thr;
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
    bool redo;                  /* the last batch failed: its lease is read again */
    uint64_t read_seq;          /* reads made (the lease carries the number) */
    uint64_t pending;           /* the group's pending count at the last read (UINT64_MAX:
                                   not known), for XAUTOCLAIM */
    uint64_t acct_gen;          /* rg:acct:gen of the cached thresholds */
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

/* Remember st as version of name (a copy), with the account's thresholds. */
static void cache_put(const char *name, const rg_detect_state *st, uint64_t version,
                      const rg_detect_account *thr)
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
    c->thr = *thr;
    c->thr_ok = true;
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

/* --- reading replies into an arena -------------------------------------------------- */

/*
 * A batch read is thousands of entries of some twenty fields each; hiredis's
 * default reply objects cost a malloc and a free per field, which perf showed
 * as 60 % of detectd's CPU.  Batch replies are therefore built with hiredis's
 * own reader hooks (redisReplyObjectFunctions) into nodes carved from an
 * arena that is reset per batch: no allocation per field.
 */
typedef struct rnode {
    int type;                   /* REDIS_REPLY_* */
    bool fields;                /* an array: the fields of a stream entry (entry_fields_array) */
    size_t len;                 /* string length or number of elements */
    char *str;
    struct rnode **elem;
    long long integer;
} rnode;

#define ARENA_BLOCK (1u << 20)

static struct {
    char **blocks;
    size_t *sizes;
    size_t nblocks, cur, used;
} arena;

static void *arena_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    while (arena.cur < arena.nblocks && arena.used + n > arena.sizes[arena.cur]) {
        arena.cur++;
        arena.used = 0;
    }
    if (arena.cur == arena.nblocks) {
        size_t sz = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        arena.blocks = rg_realloc(arena.blocks, (arena.nblocks + 1) * sizeof *arena.blocks);
        arena.sizes = rg_realloc(arena.sizes, (arena.nblocks + 1) * sizeof *arena.sizes);
        arena.blocks[arena.nblocks] = rg_malloc(sz);
        arena.sizes[arena.nblocks++] = sz;
        arena.used = 0;
    }
    void *p = arena.blocks[arena.cur] + arena.used;
    arena.used += n;
    return p;
}

static void arena_reset(void)
{
    arena.cur = arena.used = 0;
}

static void arena_free(void)
{
    for (size_t i = 0; i < arena.nblocks; i++)
        free(arena.blocks[i]);
    free(arena.blocks);
    free(arena.sizes);
    memset(&arena, 0, sizeof arena);
}

static void *node_attach(const redisReadTask *task, rnode *n)
{
    n->type = task->type;
    if (task->parent)
        ((rnode *)task->parent->obj)->elem[task->idx] = n;
    return n;
}

/*
 * Most of an entry's bytes are fields detection does not read (sender,
 * recipient, detail ...).  Their names and values are not copied: they all
 * point to one shared node of type nil, which entry_fields() skips; the names
 * it reads are shared nodes too.  So a round of thousands of entries keeps
 * about a kilobyte each, and the reader copies a third of the bytes.
 */
#define KEY_NODE(s) { .type = REDIS_REPLY_STRING, .len = sizeof(s) - 1, .str = (char *)(s) }
static rnode key_nodes[] = {
    KEY_NODE("ts"), KEY_NODE("type"), KEY_NODE("stage"), KEY_NODE("verdict"), KEY_NODE("reason"),
    KEY_NODE("login"), KEY_NODE("client"), KEY_NODE("country"), KEY_NODE("account"),
};
#define NWANTED (sizeof key_nodes / sizeof key_nodes[0])
static rnode skip_node = { .type = REDIS_REPLY_NIL };

static void *node_shared(const redisReadTask *task, rnode *n)
{
    ((rnode *)task->parent->obj)->elem[task->idx] = n;
    return n;
}

/* Is the array being read a stream entry's fields?  [id, [field, value,
 * ...]]: it is the second of a pair that starts with a string. */
static bool entry_fields_array(const redisReadTask *task)
{
    const redisReadTask *p = task->parent;
    if (p == NULL || task->idx != 1 || p->obj == NULL)
        return false;
    const rnode *pair = p->obj;
    return pair->type == REDIS_REPLY_ARRAY && pair->len == 2 && pair->elem[0] != NULL &&
           (pair->elem[0]->type == REDIS_REPLY_STRING || pair->elem[0]->type == REDIS_REPLY_STATUS);
}

static void *node_string(const redisReadTask *task, char *str, size_t len)
{
    const rnode *fa = task->parent ? task->parent->obj : NULL;
    if (fa && fa->fields) {
        if (task->idx % 2 == 0) {
            /* the wanted names are 2 to 7 bytes and start with one of "acilrstv" */
            if (len >= 2 && len <= 7 && strchr("acilrstv", str[0]) != NULL)
                for (size_t i = 0; i < NWANTED; i++)
                    if (len == key_nodes[i].len && str[0] == key_nodes[i].str[0] &&
                        memcmp(str, key_nodes[i].str, len) == 0)
                        return node_shared(task, &key_nodes[i]);
            return node_shared(task, &skip_node);
        }
        if (fa->elem[task->idx - 1] == &skip_node)
            return node_shared(task, &skip_node);
    }
    rnode *n = arena_alloc(sizeof *n + len + 1);
    memset(n, 0, sizeof *n);
    n->str = (char *)(n + 1);
    memcpy(n->str, str, len);
    n->str[len] = '\0';
    n->len = len;
    return node_attach(task, n);
}

#if HIREDIS_MAJOR >= 1
static void *node_array(const redisReadTask *task, size_t elements)
#else
static void *node_array(const redisReadTask *task, int elements)
#endif
{
    size_t ne = elements > 0 ? (size_t)elements : 0;
    rnode *n = arena_alloc(sizeof *n + ne * sizeof(rnode *));
    /* (the reader sets every element before the reply is used; a reply
     * that fails half way is dropped whole) */
    memset(n, 0, sizeof *n);
    n->elem = (rnode **)(n + 1);
    n->len = ne;
    n->fields = entry_fields_array(task);
    return node_attach(task, n);
}

static void *node_integer(const redisReadTask *task, long long v)
{
    rnode *n = arena_alloc(sizeof *n);
    memset(n, 0, sizeof *n);
    n->integer = v;
    return node_attach(task, n);
}

static void *node_nil(const redisReadTask *task)
{
    rnode *n = arena_alloc(sizeof *n);
    memset(n, 0, sizeof *n);
    return node_attach(task, n);
}

static void node_free(void *p)
{
    (void)p;                    /* the arena goes as a whole */
}

static redisReplyObjectFunctions arena_fns = {
    .createString = node_string,
    .createArray = node_array,
    .createInteger = node_integer,
    .createNil = node_nil,
    .freeObject = node_free,
};

/*
 * The next reply, built in the arena; NULL when the connection failed
 * (logged, dropped).  Valid until arena_reset().
 */
static rnode *arena_reply(void)
{
    redisContext *c = ctx();
    redisReplyObjectFunctions *old = c->reader->fn;
    void *v = NULL;
    c->reader->fn = &arena_fns;
    int rc = redisGetReply(c, &v);
    if (rc != REDIS_OK)
        c->reader->reply = NULL;    /* a partial reply lives in the arena, not in malloc */
    c->reader->fn = old;
    if (rc != REDIS_OK || v == NULL) {
        store_lost(c->errstr[0] ? c->errstr : "no reply");
        return NULL;
    }
    return v;
}

static bool is_str(const rnode *n)
{
    return n && (n->type == REDIS_REPLY_STRING || n->type == REDIS_REPLY_STATUS);
}

/* --- a batch ---------------------------------------------------------------------- */

typedef struct sentry {
    const char *id;
    const rnode *fields;        /* flat field/value array; NULL when the entry is gone */
    const char *account;
    int acct;                   /* index in the batch's accounts, -1 for none */
    rg_detect_event ev;
    char country[3];            /* looked up here when the event has none */
} sentry;

typedef struct pending {
    rg_detect_hit hit;
    rg_detect_action act;       /* what to do */
} pending;

typedef struct abatch {
    const char *name;
    size_t *idx;                /* entries of this account, in stream order */
    size_t n;
    int action;                 /* detect_action: ACTION_UNKNOWN until read, then as
                                   rg_detect_store_account_action says */
    rg_detect_account thr;      /* the account's own reputation thresholds */
    pending *p;
    size_t np;
} abatch;

#define IS_KEY(k, lit) ((k)->len == sizeof(lit) - 1 && memcmp((k)->str, lit, sizeof(lit) - 1) == 0)

/* The fields detection reads, in one pass over the entry (keys.h). */
static void entry_fields(sentry *x)
{
    const rnode *f = x->fields;
    const char *ts = "";
    x->ev.type = x->ev.stage = x->ev.verdict = x->ev.reason = "";
    x->ev.login = x->ev.client = x->ev.country = x->account = "";
    for (size_t i = 0; i + 1 < f->len; i += 2) {
        const rnode *k = f->elem[i], *v = f->elem[i + 1];
        if (!is_str(k) || !is_str(v))
            continue;
        switch (k->str[0]) {
        case 't':
            if (IS_KEY(k, "ts")) ts = v->str;
            else if (IS_KEY(k, "type")) x->ev.type = v->str;
            break;
        case 's':
            if (IS_KEY(k, "stage")) x->ev.stage = v->str;
            break;
        case 'v':
            if (IS_KEY(k, "verdict")) x->ev.verdict = v->str;
            break;
        case 'r':
            if (IS_KEY(k, "reason")) x->ev.reason = v->str;
            break;
        case 'l':
            if (IS_KEY(k, "login")) x->ev.login = v->str;
            break;
        case 'c':
            if (IS_KEY(k, "client")) x->ev.client = v->str;
            else if (IS_KEY(k, "country")) x->ev.country = v->str;
            break;
        case 'a':
            if (IS_KEY(k, "account")) x->account = v->str;
            break;
        default:
            break;
        }
    }
    x->ev.ts_ms = ts[0] ? strtoull(ts, NULL, 10) : strtoull(x->id, NULL, 10);
}

/* Feed an account's events to its state; collect what to do. */
static void feed(abatch *a, sentry *e, rg_detect_state *s)
{
    const rg_detect_conf *dc = &g.cfg->detect;
    a->np = 0;
    for (size_t i = 0; i < a->n; i++) {
        rg_detect_hit hits[HITS_MAX];
        size_t n = rg_detect_feed_account(dc, &a->thr, s, &e[a->idx[i]].ev, hits, HITS_MAX);
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
    if (h->signal == RG_SIG_BOUNCE_RATE || h->signal == RG_SIG_COMPLAINT_RATE) {
        rg_log(done == RG_DETECT_ALERT ? LOG_WARNING : LOG_ERR,
               "%s: account=%s detection.%s count=%" PRIu64 " volume=%" PRIu64 " rate=%.4f%%"
               " threshold=%.4f%% window=%" PRIu64 "s%s", rg_detect_action_name(done), a->name,
               sig, h->count, h->volume, h->rate * 100, h->rate_threshold * 100,
               h->window_ms / 1000, h->cooling ? " (cooling down)" : "");
        return;
    }
    rg_log(done == RG_DETECT_ALERT ? LOG_WARNING : LOG_ERR,
           "%s: account=%s detection.%s login=%s client=%s country=%s current=%" PRIu64
           " baseline=%.1f threshold=%.0f countries=%s ips=%s refused=%" PRIu64 "/%" PRIu64
           "%s", rg_detect_action_name(done), a->name, sig, h->login[0] ? h->login : "-",
           h->client[0] ? h->client : "-", h->country[0] ? h->country : "-", h->current,
           h->baseline, h->threshold, h->countries[0] ? h->countries : "-",
           h->ips[0] ? h->ips : "-", h->refused, h->total, h->cooling ? " (cooling down)" : "");
}

/* The group of a batch's entries by account: FNV-1a into an open table. */
static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/*
 * The accounts' own reputation thresholds (account fields bounce_rate and
 * complaint_rate): kept with the cached state and read again when the
 * account generation (rg:acct:gen, bumped by every account change) moved.
 * One GET per batch, and an HMGET per account that is not cached, pipelined.
 * 0 / -1.
 */
static int load_thresholds(abatch *accts, size_t nacct)
{
    redisContext *c = ctx();
    const char *gav[] = { "GET", RG_KEY_ACCOUNT_GEN };
    redisAppendCommandArgv(c, 2, gav, NULL);
    redisReply *gr = NULL;
    if (redisGetReply(c, (void **)&gr) != REDIS_OK || gr == NULL)
        return -1;
    uint64_t gen = gr->type == REDIS_REPLY_STRING ? strtoull(gr->str, NULL, 10) : 0;
    freeReplyObject(gr);
    if (gen != g.acct_gen) {
        for (size_t i = 0; i < g.ncache; i++)
            g.centries[i]->thr_ok = false;
        g.acct_gen = gen;
    }
    size_t nq = 0;
    for (size_t k = 0; k < nacct; k++) {
        centry *ce = cache_get(accts[k].name);
        if (ce && ce->thr_ok) {
            accts[k].thr = ce->thr;
            continue;
        }
        char key[256];
        snprintf(key, sizeof key, "%s%s", RG_KEY_ACCOUNT, accts[k].name);
        const char *av[] = { "HMGET", key, "bounce_rate", "complaint_rate" };
        redisAppendCommandArgv(c, 4, av, NULL);
        accts[k].action = ACTION_UNKNOWN - 1;  /* marks "asked" until the reply */
        nq++;
    }
    int ret = 0;
    for (size_t k = 0; k < nacct && nq > 0; k++) {
        if (accts[k].action != ACTION_UNKNOWN - 1)
            continue;
        accts[k].action = ACTION_UNKNOWN;
        nq--;
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL)
            return -1;
        memset(&accts[k].thr, 0, sizeof accts[k].thr);
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
            if (r->element[0]->type == REDIS_REPLY_STRING &&
                rg_rate_parse(r->element[0]->str, &accts[k].thr.bounce_rate) < 0)
                accts[k].thr.bounce_rate = 0;
            if (r->element[1]->type == REDIS_REPLY_STRING &&
                rg_rate_parse(r->element[1]->str, &accts[k].thr.complaint_rate) < 0)
                accts[k].thr.complaint_rate = 0;
        } else {
            ret = -1;
        }
        freeReplyObject(r);
    }
    return ret;
}

/*
 * Process n entries (id, fields) read from the stream.  With ack, they were
 * claimed from the pending list (XAUTOCLAIM) and are XACKed afterwards.
 * 0, or -1 when the store failed (the caller reads them again later).
 */
static int process(sentry *e, size_t n, bool ack)
{
    if (n == 0)
        return 0;
    int ret = 0;

    /* group by account (an open-addressing table of the batch's accounts) */
    size_t tsize = 64;
    while (tsize < 2 * n)
        tsize *= 2;
    int *table = rg_malloc(tsize * sizeof *table);
    for (size_t i = 0; i < tsize; i++)
        table[i] = -1;
    abatch *accts = NULL;
    size_t nacct = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        sentry *x = &e[i];
        x->acct = -1;
        if (x->fields == NULL)
            continue;           /* deleted (trimmed) while pending: nothing to feed */
        entry_fields(x);
        if (x->ev.country[0] == '\0' && x->ev.login[0] && x->ev.client[0] && g.geo &&
            g.geo->country(g.geo, x->ev.client, x->country) == 1)
            x->ev.country = x->country;
        g.events++;
        if (x->account[0] == '\0')
            continue;
        size_t h = name_hash(x->account) & (tsize - 1);
        while (table[h] >= 0 && strcmp(accts[table[h]].name, x->account) != 0)
            h = (h + 1) & (tsize - 1);
        if (table[h] < 0) {
            if (nacct == cap) {
                cap = cap ? cap * 2 : 16;
                accts = rg_realloc(accts, cap * sizeof *accts);
            }
            memset(&accts[nacct], 0, sizeof *accts);
            accts[nacct].name = x->account;
            accts[nacct].action = ACTION_UNKNOWN;
            table[h] = (int)nacct++;
        }
        x->acct = table[h];
        accts[x->acct].n++;
    }
    free(table);
    size_t *idx = rg_malloc((n + 1) * sizeof *idx);
    size_t off = 0;
    for (size_t k = 0; k < nacct; k++) {
        accts[k].idx = idx + off;
        off += accts[k].n;
        accts[k].n = 0;
    }
    for (size_t i = 0; i < n; i++)
        if (e[i].acct >= 0) {
            abatch *a = &accts[e[i].acct];
            a->idx[a->n++] = i;
        }

    if (nacct > 0 && load_thresholds(accts, nacct) < 0)
        ret = -1;

    /* Read (what the cache does not have), feed, write; the accounts whose
     * write lost are read again and fed again. */
    char **names = rg_calloc(nacct + 1, sizeof *names), **rnames = rg_calloc(nacct + 1, sizeof *rnames);
    rg_detect_state *st = rg_calloc(nacct + 1, sizeof *st), *orig = rg_calloc(nacct + 1, sizeof *orig);
    rg_detect_state *rst = rg_calloc(nacct + 1, sizeof *rst);
    uint64_t *ver = rg_calloc(nacct + 1, sizeof *ver), *rver = rg_calloc(nacct + 1, sizeof *rver);
    bool *conflict = rg_calloc(nacct + 1, sizeof *conflict), *newbase = rg_calloc(nacct + 1, 1);
    size_t *which = rg_calloc(nacct + 1, sizeof *which), *rj = rg_calloc(nacct + 1, sizeof *rj);
    size_t todo = ret == 0 ? nacct : 0;
    for (size_t k = 0; k < nacct; k++)
        which[k] = k;
    for (int tries = 0; todo > 0 && tries < SAVE_TRIES; tries++) {
        size_t nread = 0;
        for (size_t j = 0; j < todo; j++) {
            names[j] = (char *)accts[which[j]].name;
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
        if (rg_detect_store_save(g.ad, names, todo, st, orig, newbase, ver, conflict) < 0) {
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
            cache_put(a->name, &st[j], ver[j] + 1, &a->thr);
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

    if (ret == 0 && ack) {
        const char **av = rg_calloc(3 + n, sizeof *av);
        av[0] = "XACK";
        av[1] = RG_KEY_EVENTS;
        av[2] = RG_DETECT_GROUP;
        for (size_t i = 0; i < n; i++)
            av[3 + i] = e[i].id;
        redisReply *r = command((int)(3 + n), av);
        free(av);
        if (r)
            freeReplyObject(r);
        else
            ret = -1;
    }
    if (ret < 0 && g.ad)
        store_lost(ctx()->errstr[0] ? ctx()->errstr : rg_admin_error(g.ad));

    for (size_t k = 0; k < nacct; k++)
        free(accts[k].p);
    free(accts);
    free(idx);
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
    return ret;
}

/* Append the entries of a reply's [[id, [field, value...]], ...] list to
 * *e (n used of cap; grown as needed). */
static void collect(const rnode *list, sentry **e, size_t *n, size_t *cap)
{
    if (list == NULL || list->type != REDIS_REPLY_ARRAY)
        return;
    if (*n + list->len > *cap) {
        *cap = *n + list->len > 2 * *cap ? *n + list->len : 2 * *cap;
        *e = rg_realloc(*e, *cap * sizeof **e);
    }
    for (size_t i = 0; i < list->len; i++) {
        const rnode *it = list->elem[i];
        if (it == NULL || it->type != REDIS_REPLY_ARRAY || it->len != 2 || !is_str(it->elem[0]))
            continue;
        sentry *x = &(*e)[(*n)++];
        memset(x, 0, sizeof *x);
        x->id = it->elem[0]->str;
        x->fields = it->elem[1] && it->elem[1]->type == REDIS_REPLY_ARRAY ? it->elem[1] : NULL;
    }
}

/* The entries of a reply's list, processed on their own.  0 / -1. */
static int process_list(const rnode *list, bool ack)
{
    sentry *e = NULL;
    size_t n = 0, cap = 0;
    collect(list, &e, &n, &cap);
    int r = process(e, n, ack);
    free(e);
    return r;
}

/* --- leases: at-least-once without a pending list ------------------------------------- */

/*
 * With acknowledge = yes, a batch is read with NOACK (no pending list, no
 * XACK: a third of the detector's Redis time) inside one MULTI with two
 * calls of this script around it: before the read it notes the group's
 * last-delivered-id as the read's lease in rg:detect:leases, after it the
 * new one and the time, so that the lease names exactly the entries the
 * read handed out, (START, END].  A round's reads have a field each: the
 * consumer's name for the first, NAME/2 ... for the next ones (lease_field);
 * once the round is processed they are deleted together.  A lease older than claim_idle
 * belongs to a detector that died with its batch: another takes it over
 * (LEASE_TAKE, atomically, so only one does) and reads the range again with
 * XRANGE.  KEYS: stream, leases.  ARGV: group, consumer, "begin" | "end",
 * the read's number (so that a detector that lost the reply can tell
 * whether the transaction ran: its lease then carries that number).
 * Returns the group's pending count, so that XAUTOCLAIM runs only when
 * something pends.
 */
static const char lease_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local last, pending\n"
    "for _, gr in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
    "  local name, id, pel\n"
    "  for i = 1, #gr, 2 do\n"
    "    if gr[i] == 'name' then name = gr[i + 1]\n"
    "    elseif gr[i] == 'last-delivered-id' then id = gr[i + 1]\n"
    "    elseif gr[i] == 'pending' then pel = gr[i + 1] end\n"
    "  end\n"
    "  if name == ARGV[1] then last, pending = id, pel end\n"
    "end\n"
    "if not last then return redis.error_reply('NOGROUP no consumer group ' .. ARGV[1]) end\n"
    "if ARGV[3] == 'begin' then\n"
    "  redis.call('HSET', KEYS[2], ARGV[2], last)\n"
    "  return pending\n"
    "end\n"
    "local start = redis.call('HGET', KEYS[2], ARGV[2])\n"
    "if not start or start == last then\n"
    "  redis.call('HDEL', KEYS[2], ARGV[2])\n"
    "else\n"
    "  local t = redis.call('TIME')\n"
    "  redis.call('HSET', KEYS[2], ARGV[2], start .. ' ' .. last .. ' ' .. (t[1] * 1000 + math.floor(t[2] / 1000)) .. ' ' .. ARGV[4])\n"
    "end\n"
    "return pending\n";

/* Take over a lease if it is still what was seen.  KEYS: leases.  ARGV: its
 * consumer, the value seen, the new holder, its new value. */
static const char lease_take_lua[] =
    "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end\n"
    "redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])\n"
    "return 1\n";

/* Read (START, END] of the stream again and process it.  0 / -1. */
static int process_range(const char *start, const char *end)
{
    char from[80];
    snprintf(from, sizeof from, "(%s", start);
    const char *av[] = { "XRANGE", RG_KEY_EVENTS, from, end };
    redisAppendCommandArgv(ctx(), 4, av, NULL);
    arena_reset();
    rnode *r = arena_reply();
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_ERROR) {
        rg_error("error: XRANGE %s %s: %s", from, end, r->str);
        return -1;
    }
    return process_list(r, false);
}

/* "START END MS SEQ" of a lease.  0 / -1 (a lease still being written, or damaged). */
static int lease_parse(const char *v, char *start, char *end, size_t len, uint64_t *ms,
                       uint64_t *seq)
{
    char a[80], b[80];
    unsigned long long t, n = 0;
    if (sscanf(v, "%79s %79s %llu %llu", a, b, &t, &n) < 3 || strlen(a) >= len || strlen(b) >= len)
        return -1;
    strcpy(start, a);
    strcpy(end, b);
    *ms = t;
    *seq = n;
    return 0;
}

/* The lease field of a round's read k (from 0): the consumer's name, then NAME/2, NAME/3 ... */
static void lease_field(unsigned k, char *buf, size_t len)
{
    if (k == 0)
        snprintf(buf, len, "%s", g.consumer);
    else
        snprintf(buf, len, "%s/%u", g.consumer, k + 1);
}

/* Is a lease field one of this detector's reads? */
static bool lease_mine(const char *who)
{
    size_t n = strlen(g.consumer);
    return strncmp(who, g.consumer, n) == 0 && (who[n] == '\0' || who[n] == '/');
}

/* Delete the lease fields of a round's first n reads.  0 / -1. */
static int leases_drop(unsigned n)
{
    const char *av[2 + ROUND_READS];
    char f[ROUND_READS][sizeof g.consumer + 16];
    av[0] = "HDEL";
    av[1] = RG_KEY_DETECT_LEASE;
    for (unsigned k = 0; k < n && k < ROUND_READS; k++) {
        lease_field(k, f[k], sizeof f[k]);
        av[2 + k] = f[k];
    }
    redisReply *r = command(2 + (int)(n < ROUND_READS ? n : ROUND_READS), av);
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}

/*
 * After a failed round: the leases of its reads are still there (a read
 * whose transaction did not run has none); read their ranges again, in the
 * order they were read, and drop them.  0 / -1.
 */
static int redo_own_leases(void)
{
    const char *av[] = { "HGETALL", RG_KEY_DETECT_LEASE };
    redisReply *r = command(2, av);
    if (r == NULL)
        return -1;
    struct { char start[80], end[80]; uint64_t seq; } got[ROUND_READS];
    unsigned n = 0, k;
    int ret = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const char *who = r->element[i]->str, *val = r->element[i + 1]->str;
        uint64_t ms;
        if (who == NULL || val == NULL || !lease_mine(who) || n == ROUND_READS)
            continue;
        if (lease_parse(val, got[n].start, got[n].end, sizeof got[n].start, &ms, &got[n].seq) == 0)
            n++;
    }
    freeReplyObject(r);
    for (unsigned done = 0; done < n && ret == 0; done++) {
        unsigned first = 0;
        for (k = 1; k < n; k++)
            if (got[k].seq < got[first].seq)
                first = k;
        rg_info("reading the batch (%s, %s] again", got[first].start, got[first].end);
        ret = process_range(got[first].start, got[first].end);
        got[first].seq = UINT64_MAX;
    }
    if (ret == 0)
        ret = leases_drop(ROUND_READS);
    return ret;
}

/* Leases of dead detectors (older than claim_idle): take over and process them. */
static void take_over_leases(void)
{
    redisContext *c = ctx();
    const char *av1[] = { "TIME" }, *av2[] = { "HGETALL", RG_KEY_DETECT_LEASE };
    redisAppendCommandArgv(c, 1, av1, NULL);
    redisAppendCommandArgv(c, 2, av2, NULL);
    redisReply *t = NULL, *l = NULL;
    if (redisGetReply(c, (void **)&t) != REDIS_OK || redisGetReply(c, (void **)&l) != REDIS_OK) {
        if (t)
            freeReplyObject(t);
        store_lost(c->errstr);
        return;
    }
    uint64_t now = 0;
    if (t->type == REDIS_REPLY_ARRAY && t->elements == 2 && t->element[0]->type == REDIS_REPLY_STRING)
        now = strtoull(t->element[0]->str, NULL, 10) * 1000 +
              strtoull(t->element[1]->str, NULL, 10) / 1000;
    char mine[sizeof g.consumer + 8];
    snprintf(mine, sizeof mine, "%s+", g.consumer);
    for (size_t i = 0; l->type == REDIS_REPLY_ARRAY && i + 1 < l->elements && g.ad; i += 2) {
        const char *who = l->element[i]->str, *val = l->element[i + 1]->str;
        char start[80], end[80], nv[256];
        uint64_t ms, seq;
        if (lease_mine(who) ||
            lease_parse(val, start, end, sizeof start, &ms, &seq) < 0 ||
            ms + g.cfg->detect.claim_idle_ms > now)
            continue;
        snprintf(nv, sizeof nv, "%s %s %" PRIu64 " 0", start, end, now);
        const char *av[] = { "EVAL", lease_take_lua, "1", RG_KEY_DETECT_LEASE, who, val, mine, nv };
        redisReply *r = command(8, av);
        if (r == NULL)
            break;
        bool took = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
        if (!took)
            continue;           /* another detector was quicker */
        rg_info("took over the batch (%s, %s] that %s left", start, end, who);
        if (process_range(start, end) < 0)
            break;              /* our "+" lease stays: taken over again later */
        const char *dv[] = { "HDEL", RG_KEY_DETECT_LEASE, mine };
        redisReply *d = command(3, dv);
        if (d)
            freeReplyObject(d);
    }
    freeReplyObject(t);
    freeReplyObject(l);
}

/*
 * Entries a detector of an older version left in the group's pending list
 * (it read without NOACK), and leases of dead detectors: taken over after
 * claim_idle.  Runs every claim_idle / 2; XAUTOCLAIM only when the last
 * read saw something pending (or could not tell).
 */
static void autoclaim(void)
{
    if (mono_ms() < g.next_autoclaim || !g.cfg->detect.acknowledge)
        return;
    take_over_leases();
    if (g.ad == NULL)
        return;
    if (g.pending == 0) {
        /* the last read's transaction saw an empty pending list */
        snprintf(g.autoclaim_from, sizeof g.autoclaim_from, "0-0");
        g.next_autoclaim = mono_ms() + g.cfg->detect.claim_idle_ms / 2;
        return;
    }
    char idle[32], count[16];
    snprintf(idle, sizeof idle, "%" PRIu64, g.cfg->detect.claim_idle_ms);
    snprintf(count, sizeof count, "%u", g.cfg->detect.batch);
    const char *av[] = { "XAUTOCLAIM", RG_KEY_EVENTS, RG_DETECT_GROUP, g.consumer, idle,
                         g.autoclaim_from, "COUNT", count };
    redisAppendCommandArgv(ctx(), 8, av, NULL);
    arena_reset();
    rnode *r = arena_reply();
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->len >= 2 && is_str(r->elem[0])) {
        if (r->elem[1] && r->elem[1]->type == REDIS_REPLY_ARRAY && r->elem[1]->len > 0) {
            rg_info("took over %zu pending events another detector left", r->elem[1]->len);
            process_list(r->elem[1], true);
        }
        snprintf(g.autoclaim_from, sizeof g.autoclaim_from, "%s", r->elem[0]->str);
        if (strcmp(g.autoclaim_from, "0-0") != 0)
            return;             /* more to look at: again at the next turn */
    } else if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOGROUP") == NULL) {
        rg_error("error: XAUTOCLAIM: %s", r->str);
    }
    g.next_autoclaim = mono_ms() + g.cfg->detect.claim_idle_ms / 2;
}

/* The round being read: its entries (in the arena), in stream order. */
static struct {
    sentry *e;
    size_t n, cap;
    unsigned reads;             /* reads made (lease fields 0 .. reads - 1) */
} rd;

/*
 * Read one batch into the round, under the lease of the round's read k.
 * Returns the number of entries read, or -1 when the read failed (g.redo
 * set when the reply was lost: whether its transaction ran, the lease
 * tells).  With acknowledge = yes: MULTI, lease begin, XREADGROUP NOACK,
 * lease end, EXEC (one round trip); with no: XREADGROUP NOACK alone.  No
 * BLOCK: a detector that keeps up pauses between rounds (max_delay).
 */
static long read_batch(unsigned k)
{
    redisContext *c = ctx();
    char count[16], seq[24], field[sizeof g.consumer + 16];
    bool lease = g.cfg->detect.acknowledge;
    snprintf(count, sizeof count, "%u", g.cfg->detect.batch);
    snprintf(seq, sizeof seq, "%" PRIu64, ++g.read_seq);
    lease_field(k, field, sizeof field);
    const char *rav[] = { "XREADGROUP", "GROUP", RG_DETECT_GROUP, g.consumer, "COUNT", count,
                          "NOACK", "STREAMS", RG_KEY_EVENTS, ">" };
    const char *mav[] = { "MULTI" }, *eav[] = { "EXEC" };
    const char *lb[] = { "EVAL", lease_lua, "2", RG_KEY_EVENTS, RG_KEY_DETECT_LEASE,
                         RG_DETECT_GROUP, field, "begin", seq };
    const char *le[] = { "EVAL", lease_lua, "2", RG_KEY_EVENTS, RG_KEY_DETECT_LEASE,
                         RG_DETECT_GROUP, field, "end", seq };
    if (lease) {
        redisAppendCommandArgv(c, 1, mav, NULL);
        redisAppendCommandArgv(c, 9, lb, NULL);
    }
    redisAppendCommandArgv(c, 10, rav, NULL);
    if (lease) {
        redisAppendCommandArgv(c, 9, le, NULL);
        redisAppendCommandArgv(c, 1, eav, NULL);
    }
    rnode *r = NULL;
    for (int i = 0; i < (lease ? 5 : 1); i++) {
        if ((r = arena_reply()) == NULL) {
            /* the reply is lost: whether EXEC ran, the lease tells */
            g.redo = lease;
            return -1;
        }
    }
    /* the read's reply: EXEC's second element, or the reply itself */
    const char *why = NULL;
    if (r->type == REDIS_REPLY_ERROR)
        why = r->str;
    else if (lease && (r->type != REDIS_REPLY_ARRAY || r->len != 3))
        why = "EXEC: no transaction reply";
    else if (lease)
        for (size_t i = 0; i < 3 && why == NULL; i++)
            if (r->elem[i]->type == REDIS_REPLY_ERROR)
                why = r->elem[i]->str;
    if (why) {
        if (strstr(why, "NOGROUP"))
            g.group_ok = false;     /* the stream was deleted: create again */
        else
            rg_error("error: XREADGROUP: %s", why);
        return -1;
    }
    if (lease) {
        const rnode *p = r->elem[2];
        g.pending = p->type == REDIS_REPLY_INTEGER ? (uint64_t)p->integer : UINT64_MAX;
        r = r->elem[1];
    }
    size_t got = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->len == 1 && r->elem[0]->type == REDIS_REPLY_ARRAY &&
        r->elem[0]->len == 2 && r->elem[0]->elem[1]->type == REDIS_REPLY_ARRAY) {
        got = r->elem[0]->elem[1]->len;
        collect(r->elem[0]->elem[1], &rd.e, &rd.n, &rd.cap);
    }
    return (long)got;
}

/*
 * One round: batches are read back to back while they come full (a
 * backlog), at most ROUND_READS of them and for at most max_delay, then
 * processed together, so that the accounts' states are read and written
 * once per round rather than once per batch.  Returns true when the last
 * read was full (more is waiting: no pause).  A round that fails after its
 * reads keeps its leases and sets g.redo: it is read again (redo_own_leases),
 * or by another detector if this one dies.
 */
static bool run_round(void)
{
    uint64_t t0 = mono_ms(), max_delay = g.cfg->detect.max_delay_ms;
    bool lease = g.cfg->detect.acknowledge, full = false;
    long got = 0;
    arena_reset();
    rd.n = 0;
    rd.reads = 0;
    while (rd.reads < ROUND_READS && !g.stop) {
        got = read_batch(rd.reads++);
        full = got >= (long)g.cfg->detect.batch;
        if (!full || mono_ms() - t0 >= max_delay)
            break;
    }
    if (got < 0 && g.ad == NULL) {
        /* the connection failed: the leases of the reads made stay ours */
        if (lease && rd.n > 0)
            g.redo = true;
        return false;
    }
    if (rd.n > 0) {
        if (process(rd.e, rd.n, false) < 0) {
            g.redo = lease;     /* the leases stay ours: read again */
            return false;
        }
        rg_debug("round: %zu events in %u reads, %" PRIu64 " ms", rd.n, rd.reads, mono_ms() - t0);
        if (lease && leases_drop(rd.reads) < 0)
            g.redo = true;      /* processed; read again: at least once */
    }
    return full && got > 0;
}

/* Wait ms milliseconds, or until a signal comes (SIGTERM, SIGHUP). */
static void pause_ms(uint64_t ms)
{
    struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
    if (!g.stop && !g.hup)
        nanosleep(&ts, NULL);
}

/* A clean exit: the last round was done, its leases went (a failed one's stay). */
static void lease_drop(void)
{
    if (g.ad == NULL || !g.cfg->detect.acknowledge || g.redo)
        return;
    leases_drop(ROUND_READS);
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
    char err[1024];
    rg_daemon_args a;
    int rc;

    if ((rc = rg_daemon_args_parse(argc, argv, IDENT, 0, usage, &a)) >= 0)
        return rc;
    g.config_path = a.config_path;
    g.debug = a.debug;
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
    if (a.check_only) {
        printf(IDENT ": %s: configuration OK%s\n", g.config_path,
               g.cfg->detect.line ? "" : " (no detect block: the defaults apply)");
        if (g.geo)
            g.geo->free(g.geo);
        rg_config_free(g.cfg);
        free(g.config_path);
        return 0;
    }

    rg_daemon_log_open(IDENT, &a, g.cfg);
    rg_daemon_enter(&a, g.cfg->log == RG_LOG_STDERR, g.cfg->detect.pidfile, g.cfg->detect.user,
                    "detect.user");
    rg_daemon_signals(on_signal, 0);    /* no SA_RESTART: a blocking call returns on a signal */

    snprintf(g.consumer, sizeof g.consumer, "%s:%ld", g.cfg->node, (long)getpid());
    snprintf(g.autoclaim_from, sizeof g.autoclaim_from, "0-0");
    g.pending = UINT64_MAX;
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
        if (g.redo) {
            if (redo_own_leases() < 0) {
                usleep(100 * 1000);
                continue;
            }
            g.redo = false;
        }
        autoclaim();
        /* A round whose last read was not full: the detector keeps up.
         * Pausing until max_delay after the round's start lets the next
         * round gather more events, so that the per-round work (state reads
         * and writes, leases) is shared by more of them; an event waits at
         * most about max_delay to be read. */
        uint64_t t0 = mono_ms();
        if (g.ad && !run_round() && g.ad && !g.stop && !g.hup) {
            uint64_t spent = mono_ms() - t0;
            if (spent < g.cfg->detect.max_delay_ms)
                pause_ms(g.cfg->detect.max_delay_ms - spent);
        }
    }
    rg_info("stopping: %lu events read, %lu detections", g.events, g.detections);
    lease_drop();
    rg_admin_close(&g.ad);
    arena_free();
    free(rd.e);
    cache_clear();
    if (g.geo)
        g.geo->free(g.geo);
    if (g.cfg->detect.pidfile)
        unlink(g.cfg->detect.pidfile);
    rg_config_free(g.cfg);
    free(g.config_path);
    return 0;
}
