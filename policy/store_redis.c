/*
 * store_redis.c - the Redis store behind store.h.
 *
 * Two flavours with one interface:
 *  - async: a hiredis async context on the caller's libevent base.  Every
 *    call gets its own timer (hiredis 0.14 has no async timeouts), so a slow
 *    or vanished Redis turns into an error after store_timeout, never into a
 *    stuck client.  Many calls are in flight on one connection at once, which
 *    pipelines them for free.  Reconnects with backoff (100 ms doubling to
 *    500 ms, so service returns well within 2 s of Redis coming back).
 *  - sync: a blocking context with connect and command timeouts, guarded by
 *    a mutex, for the CLI, milter threads and Exim processes.
 *
 * The decision script runs as a function, with FCALL (decide.lua's
 * header: its set-up is made once, not once per batch).  The async store
 * loads its library with FUNCTION LOAD REPLACE on every (re)connect; the
 * sync one (short-lived processes) never sends it up front.  A reply that
 * the function is missing (a new Redis, FUNCTION FLUSH behind our back) is
 * answered by loading the library and running the same call once with
 * EVAL.  A Redis that refuses FUNCTION LOAD or FCALL (an ACL user without
 * them) gets EVALSHA from then on, with SCRIPT LOAD, and the same EVAL on
 * NOSCRIPT.  The sync store's account scripts (rg_accounts_lua,
 * rg_lookup_lua) always run with EVALSHA.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

/* Returns the whole account table in one round trip: {gen, name, {f, v, ..}, ...}.
 * The SHA-1s below each script are what EVALSHA names them by (sha1sum of
 * the text; t/engine/test_lazy.c checks them against Redis's SCRIPT LOAD).
 * A stale one would only cost a NOSCRIPT and an EVAL per call. */
const char rg_accounts_lua[] =
    "local out = {redis.call('GET', 'rg:acct:gen') or '0'}\n"
    "for _, n in ipairs(redis.call('SMEMBERS', 'rg:accts')) do\n"
    "  out[#out + 1] = n\n"
    "  out[#out + 1] = redis.call('HGETALL', 'rg:acct:' .. n)\n"
    "end\n"
    "return out\n";
const char rg_accounts_lua_sha1[] = "26715454652796e65bbea2386657df42f9b2fade";

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 500

/*
 * The accounts one request needs (store.h load_some), in the same reply
 * shape.  ARGV: kind (l login, u unix user, n name, c client networks), key.
 * Finding the account of a login without reading every account needs an
 * index; rg:acct:ix (keys.h) is one, kept by this script rather than by
 * the writers: it is rebuilt, in the same atomic call, whenever rg:acct:gen
 * moved past the generation it was built for, so it can never be stale and
 * costs one pass over the accounts per change, not per reader.  As when
 * every account is read, the first account (in SMEMBERS order) to claim a
 * login or unix user wins and a later one claiming any of them is left out.
 */
const char rg_lookup_lua[] =
    "local gen = redis.call('GET', 'rg:acct:gen') or '0'\n"
    "local ix = 'rg:acct:ix'\n"
    "if redis.call('HGET', ix, '_gen') ~= gen then\n"
    "  local map, clients = {}, {}\n"
    "  for _, n in ipairs(redis.call('SMEMBERS', 'rg:accts')) do\n"
    "    local f = redis.call('HMGET', 'rg:acct:' .. n, 'logins', 'local_users', 'client_networks')\n"
    "    local keys = {['l:' .. string.lower(n)] = true}\n"
    "    for w in string.gmatch(f[1] or '', '[^,%s]+') do keys['l:' .. string.lower(w)] = true end\n"
    "    for w in string.gmatch(f[2] or '', '[^,%s]+') do keys['u:' .. w] = true end\n"
    "    local taken = false\n"
    "    for k in pairs(keys) do if map[k] then taken = true end end\n"
    "    if not taken then\n"
    "      for k in pairs(keys) do map[k] = n end\n"
    "      if f[3] and string.find(f[3], '[^,%s]') then clients[#clients + 1] = n end\n"
    "    end\n"
    "  end\n"
    "  redis.call('DEL', ix)\n"
    "  local b = {'_gen', gen, 'c', table.concat(clients, ',')}\n"
    "  for k, n in pairs(map) do\n"
    "    b[#b + 1] = k\n"
    "    b[#b + 1] = n\n"
    "    if #b >= 1000 then redis.call('HSET', ix, unpack(b)) b = {} end\n"
    "  end\n"
    "  if #b > 0 then redis.call('HSET', ix, unpack(b)) end\n"
    "end\n"
    "local out = {gen}\n"
    "local function add(n)\n"
    "  if n and n ~= '' and redis.call('SISMEMBER', 'rg:accts', n) == 1 then\n"
    "    out[#out + 1] = n\n"
    "    out[#out + 1] = redis.call('HGETALL', 'rg:acct:' .. n)\n"
    "  end\n"
    "end\n"
    "local kind, key = ARGV[1], ARGV[2]\n"
    "if kind == 'l' or kind == 'u' then\n"
    "  local n = redis.call('HGET', ix, kind .. ':' .. (kind == 'l' and string.lower(key) or key))\n"
    "  add(n)\n"
    "  if n ~= 'default' then add('default') end\n"
    "elseif kind == 'n' then\n"
    "  add(key)\n"
    "else\n"
    "  for n in string.gmatch(redis.call('HGET', ix, 'c') or '', '[^,]+') do add(n) end\n"
    "end\n"
    "return out\n";
const char rg_lookup_lua_sha1[] = "f7d7cc775354d208cf7a597ea4d2873499d6bb20";

typedef struct store_common {
    rg_store base;
    rg_store_url url;
    uint64_t timeout_ms;
    char sha[41];               /* SHA1 of rg_decide_lua, hex */
    int functions;              /* 1: FCALL rg_decide_fn; 0: EVALSHA sha (refused) */
} store_common;

static void common_init(store_common *c, const rg_config *cfg)
{
    c->url = cfg->store;
    c->timeout_ms = cfg->store_timeout_ms ? cfg->store_timeout_ms : 250;
    /* computed at build time (policy/local.mk): starting OpenSSL for it
     * cost every Exim connection process about 1 ms */
    rg_strlcpy(c->sha, rg_decide_lua_sha1, sizeof c->sha);
    c->functions = 1;
}

/* argv[0..1] of a decision: FCALL and the function, or EVALSHA and the
 * script's SHA-1. */
static void set_decide_cmd(const store_common *c, const char **argv, size_t *len)
{
    argv[0] = c->functions ? "FCALL" : "EVALSHA";
    argv[1] = c->functions ? rg_decide_fn : c->sha;
    len[0] = strlen(argv[0]);
    len[1] = strlen(argv[1]);
}

static int reply_error_is(const redisReply *rep, const char *prefix)
{
    return rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, prefix, strlen(prefix)) == 0;
}

/* What a decision's reply calls for: 0 nothing (a result, or an error of
 * the script's own); 1 the script or function is missing (a new Redis, or
 * a flush): run it once with EVAL, loading the function too; 2 FCALL is
 * refused (an ACL user without it, or no such command): EVALSHA from now
 * on, and this call with EVAL. */
static int decide_retry_kind(const store_common *c, const redisReply *rep, const char *cmd)
{
    if (rep == NULL || rep->type != REDIS_REPLY_ERROR)
        return 0;
    if (reply_error_is(rep, "NOSCRIPT") || strstr(rep->str, "Function not found"))
        return 1;
    if (c->functions && strcmp(cmd, "FCALL") == 0 &&
        (reply_error_is(rep, "NOPERM") || reply_error_is(rep, "ERR unknown command")))
        return 2;
    return 0;
}

/* FUNCTION LOAD refused (ACL, or a Redis without functions): decisions run
 * with EVALSHA from now on. */
static void functions_refused(store_common *c, const char *why)
{
    if (c->functions)
        rg_warn("Redis refused FUNCTION LOAD (%s): decisions run with EVALSHA", why);
    c->functions = 0;
}

static void reply_error(rg_store_reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_error(rg_store_reply *r, const char *fmt, ...)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

/* Turn the script's array reply into an rg_store_reply. */
static void parse_decide_reply(const redisReply *rep, rg_store_reply *r)
{
    memset(r, 0, sizeof *r);
    if (rep == NULL) {
        reply_error(r, "no reply from Redis");
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        reply_error(r, "Redis error: %s", rep->str);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
        reply_error(r, "unexpected reply from the decision script");
        return;
    }
    r->gen = rep->element[0]->type == REDIS_REPLY_INTEGER ? rep->element[0]->integer : 0;
    for (size_t i = 1; i < rep->elements && i < 6; i++) {
        const redisReply *e = rep->element[i];
        char *dst = (i == 1) ? r->outcome : r->arg[i - 2];
        size_t len = (i == 1) ? sizeof r->outcome : sizeof r->arg[0];
        if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
            rg_strlcpy(dst, e->str, len);
        else if (e->type == REDIS_REPLY_INTEGER)
            snprintf(dst, len, "%lld", e->integer);
    }
    r->status = 0;
}

/* Build the account set from the load script's reply. */
static rg_accounts *parse_accounts(const redisReply *rep, long long *gen, char *err, size_t errlen)
{
    if (rep == NULL) {
        snprintf(err, errlen, "no reply from Redis");
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis error: %s", rep->str);
        return NULL;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || rep->elements % 2 != 1) {
        snprintf(err, errlen, "unexpected reply loading accounts");
        return NULL;
    }
    const redisReply *g = rep->element[0];
    *gen = (g->type == REDIS_REPLY_STRING) ? strtoll(g->str, NULL, 10) : 0;
    rg_accounts *set = rg_accounts_new();
    for (size_t i = 1; i + 1 < rep->elements; i += 2) {
        const redisReply *name = rep->element[i], *fields = rep->element[i + 1];
        if (name->type != REDIS_REPLY_STRING || fields->type != REDIS_REPLY_ARRAY)
            continue;
        size_t n = fields->elements / 2;
        char **keys = rg_calloc(n + 1, sizeof *keys);
        char **vals = rg_calloc(n + 1, sizeof *vals);
        for (size_t j = 0; j < n; j++) {
            const redisReply *k = fields->element[2 * j], *v = fields->element[2 * j + 1];
            keys[j] = k->type == REDIS_REPLY_STRING ? k->str : "";
            vals[j] = v->type == REDIS_REPLY_STRING ? v->str : "";
        }
        char aerr[256];
        rg_account *a = rg_account_from_fields(name->str, keys, vals, n, aerr, sizeof aerr);
        free(keys);
        free(vals);
        if (a == NULL) {
            /* One broken account must not take the others down. */
            rg_error("account %s in Redis is invalid, ignored: %s", name->str, aerr);
            continue;
        }
        if (rg_accounts_add(set, a, aerr, sizeof aerr) < 0)
            rg_error("account %s ignored: %s", name->str, aerr);
    }
    return set;
}

/*
 * decide.lua's arguments: ARGV[1] the number of decisions n, ARGV[2] one
 * blob with, for each decision, its argument count and then its arguments,
 * every one a NUL-terminated string.  The script splits the blob with
 * struct.unpack (in C): each value passed as an ARGV of its own costs Redis
 * about 1,000 instructions (parse, object, Lua string, free), a field of
 * the blob a third of that, and hiredis formats 5 arguments per batch
 * instead of 27 per decision.  The arguments are C strings, so none holds
 * a NUL.
 */

/* Bytes encode_decision() writes for argc, argv (lengths into len). */
static size_t decision_size(int argc, const char **argv, size_t *len)
{
    size_t total = 12;          /* the count, "%d" and its NUL */
    for (int i = 0; i < argc; i++) {
        len[i] = argv[i] ? strlen(argv[i]) : 0;
        total += len[i] + 1;
    }
    return total;
}

/* Write a decision's part of the blob at p; returns its end.  p has room
 * for decision_size() bytes. */
static char *encode_decision(char *p, int argc, const char **argv, const size_t *len)
{
    char digits[12];
    int nd = 0;
    unsigned v = (unsigned)argc;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (nd)
        *p++ = digits[--nd];
    *p++ = '\0';
    for (int i = 0; i < argc; i++) {
        if (len[i])
            memcpy(p, argv[i], len[i]);
        p += len[i];
        *p++ = '\0';
    }
    return p;
}

/* ---------------------------------------------------------------- async */

/*
 * Decisions that arrive in one turn of the event loop go to Redis as one
 * FCALL (decide.lua takes a batch), flushed at the end of that turn: the
 * cost of entering Lua is shared, and nothing waits for a batch to fill.
 * At most INFLIGHT_MAX batches are in flight on the connection: one that
 * Redis runs and more queued behind it, so Redis never idles between them.
 * Decisions arriving meanwhile gather into the next batch, sent when a
 * reply comes back.  Eight, not two: with two, at 50 connections Redis
 * idled a third of the time while the replies of one batch went out and
 * the next requests came in (26,000-28,500 decisions/s); with four
 * 27,300-29,700, with eight 29,600-30,000 and 35,000-42,300 at 500
 * connections; with 32 the batches at 500 connections got too small
 * (31,700-37,700).  bench/run-policy.sh, 2026-11-25.  So batches grow with the load by themselves: a batch
 * costs Redis a fixed ~30,000 instructions besides its decisions as a
 * function (~170,000 with EVALSHA; bench/run-script.sh with BATCH=1
 * against BATCH=16), which small batches pay over and over when the load
 * is high; at low load nothing waits.
 */
#define BATCH_MAX 128
#define INFLIGHT_MAX 8

typedef struct async_store async_store;

typedef struct async_call {
    async_store *s;
    rg_store_cb *cb;            /* decision call */
    rg_accounts_cb *acb;        /* account load */
    void *arg;
    struct event *timer;        /* &timer_ev once set up */
    struct event timer_ev;      /* in the call: no allocation of its own */
    int done;                   /* callback delivered (reply or timeout) */
    size_t enclen;              /* a decision: its part of the blob, */
    char enc[];                 /* in the same allocation as the call */
} async_call;

/* One EVALSHA in flight: its calls, and its arguments for an EVAL retry. */
typedef struct async_batch {
    async_store *s;
    async_call *calls[BATCH_MAX];
    unsigned n;
    int retried;                /* NOSCRIPT answered with EVAL once */
    const char *argv[5];        /* FCALL fn 0 n blob (or EVALSHA sha ...) */
    size_t argvlen[5];
    char count[12];
    char *blob;
} async_batch;

struct async_store {
    store_common c;
    struct event_base *base;
    redisAsyncContext *ac;
    int connected;
    struct event *reconnect;
    int connected_once;         /* a later connect is a reconnect (metrics) */
    struct event *flush;        /* sends the batch being gathered */
    async_call *gather[BATCH_MAX];
    unsigned ngather;
    unsigned inflight;          /* batches sent, reply not yet in */
    uint64_t backoff_ms;
    uint64_t last_reply_ms;     /* monotonic */
    int closing;
    /* store_timeout as a libevent common timeout: every call's timer has
     * the same duration, so adding one is a list append, not a heap insert */
    const struct timeval *call_tv;
};

static void async_connect(async_store *s);

static void call_free(async_call *k)
{
    if (k->timer)
        event_del(k->timer);
    free(k);
}

/* Deliver an outcome once; later replies of a timed-out call are dropped. */
static void call_deliver(async_call *k, const redisReply *rep, const char *errtext)
{
    if (k->done)
        return;
    k->done = 1;
    if (k->timer)
        evtimer_del(k->timer);
    if (k->cb) {
        rg_store_reply r;
        if (errtext)
            reply_error(&r, "%s", errtext);
        else
            parse_decide_reply(rep, &r);
        k->cb(k->arg, &r);
    } else if (k->acb) {
        char err[256] = "";
        long long gen = 0;
        rg_accounts *set = errtext ? NULL : parse_accounts(rep, &gen, err, sizeof err);
        if (errtext)
            rg_strlcpy(err, errtext, sizeof err);
        k->acb(k->arg, set, gen, set ? NULL : err);
    }
}

static void schedule_reconnect(async_store *s)
{
    if (s->closing || evtimer_pending(s->reconnect, NULL))
        return;
    struct timeval tv = { (time_t)(s->backoff_ms / 1000), (suseconds_t)((s->backoff_ms % 1000) * 1000) };
    evtimer_add(s->reconnect, &tv);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    async_store *s = ac->data;
    if (status != REDIS_OK) {
        rg_warn("Redis %s: connect failed: %s", s->c.url.host, ac->errstr);
        s->ac = NULL;           /* hiredis frees the context after this */
        s->connected = 0;
        schedule_reconnect(s);
        return;
    }
    s->connected = 1;
    if (s->connected_once)
        rg_metrics_store_reconnect();
    s->connected_once = 1;
    s->backoff_ms = BACKOFF_MIN_MS;
    s->last_reply_ms = rg_monotonic_ms();
    if (s->c.url.unix_socket)
        rg_info("connected to Redis at %s", s->c.url.host);
    else
        rg_info("connected to Redis at %s:%d", s->c.url.host, s->c.url.port);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    async_store *s = ac->data;
    if (status != REDIS_OK)
        rg_warn("Redis connection lost: %s", ac->errstr);
    s->ac = NULL;
    s->connected = 0;
    schedule_reconnect(s);
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    async_connect(arg);
}

/* Replies to AUTH/SELECT/SCRIPT LOAD: only errors matter. */
static void on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    const redisReply *rep = r;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        rg_error("Redis setup command failed: %s", rep->str);
}

static void on_function_load(redisAsyncContext *ac, void *r, void *priv)
{
    async_store *s = priv;
    const redisReply *rep = r;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        functions_refused(&s->c, rep->str);
        redisAsyncCommand(ac, on_setup_reply, NULL, "SCRIPT LOAD %s", rg_decide_lua);
    }
}

/* Queue the decision script's loading on ac: its function library, or the
 * script (once FUNCTION LOAD was refused). */
static void load_decide(async_store *s, redisAsyncContext *ac)
{
    if (s->c.functions)
        redisAsyncCommand(ac, on_function_load, s, "FUNCTION LOAD REPLACE %s", rg_decide_lib);
    else
        redisAsyncCommand(ac, on_setup_reply, NULL, "SCRIPT LOAD %s", rg_decide_lua);
}

static void async_connect(async_store *s)
{
    if (s->ac || s->closing)
        return;
    redisAsyncContext *ac = s->c.url.unix_socket ? redisAsyncConnectUnix(s->c.url.host)
                                                 : redisAsyncConnect(s->c.url.host, s->c.url.port);
    if (ac == NULL || ac->err) {
        rg_warn("Redis %s: %s", s->c.url.host, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    redisLibeventAttach(ac, s->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->ac = ac;
    /* Queued before any decision, so they run first on this connection. */
    if (s->c.url.password[0]) {
        if (s->c.url.user[0])
            redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s %s", s->c.url.user, s->c.url.password);
        else
            redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", s->c.url.password);
    }
    if (s->c.url.db)
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", s->c.url.db);
    load_decide(s, ac);
}

static void on_call_timeout(evutil_socket_t fd, short what, void *arg)
{
    async_call *k = arg;
    async_store *s = k->s;
    call_deliver(k, NULL, "Redis did not answer within store_timeout");
    /* A Redis that answers nothing for long (stopped, wedged network) is
     * dropped, so waiting calls fail now and reconnecting can start. */
    uint64_t quiet = rg_monotonic_ms() - s->last_reply_ms;
    uint64_t limit = s->c.timeout_ms * 4 > 2000 ? s->c.timeout_ms * 4 : 2000;
    if (s->ac && quiet > limit) {
        rg_warn("Redis silent for %llu ms, reconnecting", (unsigned long long)quiet);
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        s->connected = 0;
        redisAsyncFree(ac);     /* pending callbacks get NULL replies */
    }
}

static void batch_free(async_batch *b)
{
    for (unsigned i = 0; i < b->n; i++)
        call_free(b->calls[i]);
    free(b->blob);
    free(b);
}

static void on_batch_reply(redisAsyncContext *ac, void *r, void *priv)
{
    async_batch *b = priv;
    async_store *s = b->s;
    redisReply *rep = r;
    if (rep)
        s->last_reply_ms = rg_monotonic_ms();
    int retry = b->retried || !s->ac ? 0 : decide_retry_kind(&s->c, rep, b->argv[0]);
    if (retry) {
        /* The function or script is missing (flushed), or FCALL is
         * refused: load what is missing (it runs first on this connection)
         * and run this batch with the full script once. */
        if (retry == 2)
            functions_refused(&s->c, rep->str);
        else if (s->c.functions)
            load_decide(s, s->ac);
        b->retried = 1;
        b->argv[0] = "EVAL";
        b->argv[1] = rg_decide_lua;
        b->argvlen[0] = 4;
        b->argvlen[1] = strlen(rg_decide_lua);
        if (redisAsyncCommandArgv(s->ac, on_batch_reply, b, 5, b->argv, b->argvlen) == REDIS_OK)
            return;
    }
    for (unsigned i = 0; i < b->n; i++) {
        if (rep == NULL)
            call_deliver(b->calls[i], NULL, "Redis connection lost");
        else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == b->n)
            call_deliver(b->calls[i], rep->element[i], NULL);
        else
            call_deliver(b->calls[i], rep, NULL);  /* an error reply: the same for all */
    }
    batch_free(b);
    s->inflight--;
    /* what gathered while this batch was out goes at the end of this loop turn */
    if (s->ngather > 0 && !s->closing)
        event_active(s->flush, EV_WRITE, 0);
}

/* Send the gathered decisions as one EVALSHA (unless INFLIGHT_MAX batches
 * are out and the batch is not full: it is sent when a reply comes in). */
static void flush_batch(async_store *s)
{
    unsigned n = s->ngather;
    if (n == 0)
        return;
    if (s->inflight >= INFLIGHT_MAX && n < BATCH_MAX && s->ac && !s->closing)
        return;
    s->ngather = 0;
    async_batch *b = rg_malloc(sizeof *b);
    b->s = s;
    b->n = n;
    b->retried = 0;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        b->calls[i] = s->gather[i];
        total += b->calls[i]->enclen;
    }
    b->blob = rg_malloc(total ? total : 1);
    char *p = b->blob;
    for (unsigned i = 0; i < n; i++) {
        memcpy(p, b->calls[i]->enc, b->calls[i]->enclen);
        p += b->calls[i]->enclen;
    }
    set_decide_cmd(&s->c, b->argv, b->argvlen);
    b->argv[2] = "0";
    b->argvlen[2] = 1;
    b->argvlen[3] = (size_t)snprintf(b->count, sizeof b->count, "%u", n);
    b->argv[3] = b->count;
    b->argv[4] = b->blob;
    b->argvlen[4] = total;
    if (s->ac && redisAsyncCommandArgv(s->ac, on_batch_reply, b, 5, b->argv, b->argvlen) == REDIS_OK) {
        s->inflight++;
        return;
    }
    for (unsigned i = 0; i < n; i++)
        call_deliver(b->calls[i], NULL, s->ac ? "Redis command could not be queued" : "Redis not connected");
    batch_free(b);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    flush_batch(arg);
}

/* A call with extra bytes after it (a decision's blob part); its timer runs. */
static async_call *call_new(async_store *s, void *arg, size_t extra)
{
    async_call *k = rg_malloc(sizeof *k + extra);
    memset(k, 0, sizeof *k);
    k->s = s;
    k->arg = arg;
    if (evtimer_assign(&k->timer_ev, s->base, on_call_timeout, k) < 0)
        rg_panic("evtimer_assign failed");
    k->timer = &k->timer_ev;
    evtimer_add(k->timer, s->call_tv);
    return k;
}

static void async_decide(rg_store *st, int argc, const char **argv, rg_store_cb *cb, void *arg)
{
    async_store *s = (async_store *)st;
    if (!s->ac) {               /* while connecting, hiredis queues the call */
        rg_store_reply r;
        reply_error(&r, "%s", "Redis not connected");
        if (!evtimer_pending(s->reconnect, NULL))
            async_connect(s);
        cb(arg, &r);
        return;
    }
    /* the arguments, encoded at once into the call's own allocation (one
     * malloc per decision; the batch copies the parts into its blob) */
    size_t lens[64] = { 0 }, *len = argc <= 64 ? lens : rg_calloc((size_t)argc, sizeof *len);
    size_t size = decision_size(argc, argv, len);
    async_call *k = call_new(s, arg, size);
    k->cb = cb;
    k->enclen = (size_t)(encode_decision(k->enc, argc, argv, len) - k->enc);
    if (len != lens)
        free(len);
    s->gather[s->ngather++] = k;
    if (s->ngather == BATCH_MAX)
        flush_batch(s);
    else if (s->ngather == 1)
        event_active(s->flush, EV_WRITE, 0);   /* runs at the end of this loop turn */
}

/* An account load is a command of its own, never batched. */
static void on_load_reply(redisAsyncContext *ac, void *r, void *priv)
{
    async_call *k = priv;
    redisReply *rep = r;
    if (rep)
        k->s->last_reply_ms = rg_monotonic_ms();
    call_deliver(k, rep, rep ? NULL : "Redis connection lost");
    call_free(k);
}

static void async_load_accounts(rg_store *st, rg_accounts_cb *cb, void *arg)
{
    async_store *s = (async_store *)st;
    if (!s->ac) {
        if (!evtimer_pending(s->reconnect, NULL))
            async_connect(s);
        cb(arg, NULL, 0, "Redis not connected");
        return;
    }
    async_call *k = call_new(s, arg, 0);
    k->acb = cb;
    /* Loading many accounts may take longer than one decision's budget. */
    struct timeval tv = { 5, 0 };
    evtimer_add(k->timer, &tv);
    if (redisAsyncCommand(s->ac, on_load_reply, k, "EVAL %s 0", rg_accounts_lua) != REDIS_OK) {
        call_deliver(k, NULL, "Redis command could not be queued");
        call_free(k);
    }
}

static void async_free(rg_store *st)
{
    async_store *s = (async_store *)st;
    s->closing = 1;
    flush_batch(s);             /* queued in hiredis, then failed by the free below */
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac);     /* pending callbacks run with NULL replies */
    }
    event_free(s->flush);
    event_free(s->reconnect);
    free(s);
}

rg_store *rg_store_redis_async(const rg_config *cfg, struct event_base *base)
{
    async_store *s = rg_calloc(1, sizeof *s);
    common_init(&s->c, cfg);
    s->c.base.decide = async_decide;
    s->c.base.load_accounts = async_load_accounts;
    s->c.base.free = async_free;
    s->base = base;
    s->backoff_ms = BACKOFF_MIN_MS;
    s->reconnect = evtimer_new(base, on_reconnect_timer, s);
    s->flush = event_new(base, -1, 0, on_flush, s);
    struct timeval tv = { (time_t)(s->c.timeout_ms / 1000), (suseconds_t)((s->c.timeout_ms % 1000) * 1000) };
    s->call_tv = event_base_init_common_timeout(base, &tv);
    if (s->call_tv == NULL)
        rg_panic("event_base_init_common_timeout failed");
    async_connect(s);
    return &s->c.base;
}

/* ----------------------------------------------------------------- sync */

typedef struct sync_store {
    store_common c;
    pthread_mutex_t lock;
    redisContext *ctx;
    uint64_t next_try_ms;       /* monotonic: no reconnect before this */
    uint64_t backoff_ms;
    int connected_once;         /* a later connect is a reconnect (metrics) */
} sync_store;

static struct timeval ms_tv(uint64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    return tv;
}

/* Check a setup reply; frees it.  0 ok, -1 error (msg in err). */
static int setup_ok(redisReply *rep, redisContext *ctx, char *err, size_t errlen)
{
    int ok = rep && rep->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(err, errlen, "%s", rep ? rep->str : ctx->errstr);
    if (rep)
        freeReplyObject(rep);
    return ok ? 0 : -1;
}

/* Connected context or NULL with err.  Caller holds the lock. */
static redisContext *sync_ctx(sync_store *s, char *err, size_t errlen)
{
    if (s->ctx)
        return s->ctx;
    uint64_t now = rg_monotonic_ms();
    if (now < s->next_try_ms) {
        snprintf(err, errlen, "Redis unavailable (retrying in %llu ms)",
                 (unsigned long long)(s->next_try_ms - now));
        return NULL;
    }
    struct timeval tv = ms_tv(s->c.timeout_ms);
    redisContext *ctx = s->c.url.unix_socket ? redisConnectUnixWithTimeout(s->c.url.host, tv)
                                             : redisConnectWithTimeout(s->c.url.host, s->c.url.port, tv);
    if (ctx == NULL || ctx->err) {
        snprintf(err, errlen, "Redis connect: %s", ctx ? ctx->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(ctx, tv);
    if (s->c.url.password[0]) {
        redisReply *rep = s->c.url.user[0]
            ? redisCommand(ctx, "AUTH %s %s", s->c.url.user, s->c.url.password)
            : redisCommand(ctx, "AUTH %s", s->c.url.password);
        if (setup_ok(rep, ctx, err, errlen) < 0)
            goto fail;
    }
    if (s->c.url.db && setup_ok(redisCommand(ctx, "SELECT %d", s->c.url.db), ctx, err, errlen) < 0)
        goto fail;
    /* No SCRIPT LOAD here: a blocking store often lives for one Exim
     * connection or one CLI command, and sending all of decide.lua on
     * every connect cost more than the decisions.  EVALSHA finds the script
     * Redis already holds; on NOSCRIPT (a new or flushed Redis) the caller
     * runs the call once with EVAL, which caches it for everyone. */
    s->ctx = ctx;
    s->backoff_ms = BACKOFF_MIN_MS;
    if (s->connected_once)
        rg_metrics_store_reconnect();
    s->connected_once = 1;
    return ctx;
fail:
    if (ctx)
        redisFree(ctx);
    s->next_try_ms = now + s->backoff_ms;
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
    return NULL;
}

/* After an I/O error the context is useless: drop it. Caller holds the lock. */
static void sync_drop(sync_store *s)
{
    if (s->ctx && s->ctx->err) {
        redisFree(s->ctx);
        s->ctx = NULL;
    }
}

/*
 * Run a script with EVALSHA: argv[0] and argv[1] are set here, the script's
 * arguments follow.  A NOSCRIPT reply (a new Redis, SCRIPT FLUSH behind our
 * back) is answered by the same call once more with EVAL, which also puts
 * the script in Redis's cache.  len: the arguments' lengths (argv[0..1]'s
 * are set here too).  The reply, or NULL on an I/O error (ctx->errstr).
 * Caller holds the lock.
 */
static redisReply *noscript_retry(redisContext *ctx, redisReply *rep, const char *script,
                                  int argc, const char **argv, size_t *len)
{
    if (reply_error_is(rep, "NOSCRIPT")) {
        freeReplyObject(rep);
        argv[0] = "EVAL";
        len[0] = 4;
        argv[1] = script;
        len[1] = strlen(script);
        rep = redisCommandArgv(ctx, argc, argv, len);
    }
    return rep;
}

static void set_evalsha(const char *sha, const char **argv, size_t *len)
{
    argv[0] = "EVALSHA";
    len[0] = 7;
    argv[1] = sha;
    len[1] = strlen(sha);
}

static redisReply *sync_evalsha(redisContext *ctx, const char *sha, const char *script,
                                int argc, const char **argv, size_t *len)
{
    set_evalsha(sha, argv, len);
    return noscript_retry(ctx, redisCommandArgv(ctx, argc, argv, len), script, argc, argv, len);
}

/* rep, the reply to a decision sent as argv (5 arguments, argv[0..1] from
 * set_decide_cmd), or what replaces it: when the function or script was
 * missing, the library is loaded (if functions are on) and the call run
 * once with EVAL; when FCALL was refused, EVALSHA from now on and this
 * call with EVAL.  Caller holds the lock. */
static redisReply *decide_retry(store_common *c, redisContext *ctx, redisReply *rep,
                                const char **argv, size_t *len)
{
    int kind = decide_retry_kind(c, rep, argv[0]);
    if (kind == 0)
        return rep;
    if (kind == 2) {
        functions_refused(c, rep->str);
    } else if (c->functions) {
        redisReply *l = redisCommand(ctx, "FUNCTION LOAD REPLACE %s", rg_decide_lib);
        if (l && l->type == REDIS_REPLY_ERROR)
            functions_refused(c, l->str);
        if (l)
            freeReplyObject(l);
    }
    freeReplyObject(rep);
    argv[0] = "EVAL";
    len[0] = 4;
    argv[1] = rg_decide_lua;
    len[1] = strlen(rg_decide_lua);
    return redisCommandArgv(ctx, 5, argv, len);
}

/* One decision as decide.lua's arguments (a batch of one): what
 * sync_decide and sync_decide_record send after "FCALL fn" (or "EVALSHA
 * sha"). */
typedef struct sync_args {
    const char *argv[5];        /* FCALL fn 0 1 blob (or EVALSHA sha ...) */
    size_t len[5];
    char *blob;
} sync_args;

static void sync_args_init(sync_args *a, int argc, const char **argv)
{
    size_t lens[64] = { 0 }, *len = argc <= 64 ? lens : rg_calloc((size_t)argc, sizeof *len);
    a->blob = rg_malloc(decision_size(argc, argv, len));
    a->argv[2] = "0";
    a->len[2] = 1;
    a->argv[3] = "1";
    a->len[3] = 1;
    a->argv[4] = a->blob;
    a->len[4] = (size_t)(encode_decision(a->blob, argc, argv, len) - a->blob);
    if (len != lens)
        free(len);
}

/* The decision's outcome from the script's reply (NULL: I/O error). */
static void sync_args_reply(redisContext *ctx, const redisReply *rep, rg_store_reply *r)
{
    if (rep == NULL)
        reply_error(r, "Redis: %s", ctx->errstr);
    else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1)
        parse_decide_reply(rep->element[0], r);
    else
        parse_decide_reply(rep, r);     /* an error reply */
}

static void sync_decide(rg_store *st, int argc, const char **argv, rg_store_cb *cb, void *arg)
{
    sync_store *s = (sync_store *)st;
    rg_store_reply r;
    char err[256];
    sync_args a;
    sync_args_init(&a, argc, argv);

    pthread_mutex_lock(&s->lock);
    redisContext *ctx = sync_ctx(s, err, sizeof err);
    if (ctx == NULL) {
        reply_error(&r, "%s", err);
    } else {
        set_decide_cmd(&s->c, a.argv, a.len);
        redisReply *rep = redisCommandArgv(ctx, 5, a.argv, a.len);
        if (rep)
            rep = decide_retry(&s->c, ctx, rep, a.argv, a.len);
        sync_args_reply(ctx, rep, &r);
        if (rep)
            freeReplyObject(rep);
        sync_drop(s);
    }
    pthread_mutex_unlock(&s->lock);
    free(a.blob);
    cb(arg, &r);
}

void rg_store_record_append(struct redisContext *c, const rg_store_record *rec)
{
    char ttl[24];
    int nh = 2 + 2 * rec->nfields;
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)rec->ttl_ms);
    const char **hset = rg_calloc((size_t)nh, sizeof *hset);
    hset[0] = "HSET";
    hset[1] = rec->key;
    for (int i = 0; i < 2 * rec->nfields; i++)
        hset[2 + i] = rec->fields[i] ? rec->fields[i] : "";
    const char *multi[] = { "MULTI" }, *exec[] = { "EXEC" };
    const char *del[] = { "DEL", rec->key }, *exp[] = { "PEXPIRE", rec->key, ttl };
    redisAppendCommandArgv(c, 1, multi, NULL);
    redisAppendCommandArgv(c, 2, del, NULL);
    redisAppendCommandArgv(c, nh, hset, NULL);
    redisAppendCommandArgv(c, 3, exp, NULL);
    redisAppendCommandArgv(c, 1, exec, NULL);
    free(hset);
}

/*
 * decide with a record written first, in one pipeline (store.h):
 * MULTI, DEL, HSET, PEXPIRE, EXEC, then the same EVALSHA as sync_decide.
 */
static void sync_decide_record(rg_store *st, const rg_store_record *rec, int argc,
                               const char **argv, rg_store_cb *cb, void *arg)
{
    sync_store *s = (sync_store *)st;
    rg_store_reply r;
    char err[256];
    sync_args a;
    sync_args_init(&a, argc, argv);
    set_decide_cmd(&s->c, a.argv, a.len);

    pthread_mutex_lock(&s->lock);
    redisContext *ctx = sync_ctx(s, err, sizeof err);
    if (ctx == NULL) {
        pthread_mutex_unlock(&s->lock);
        reply_error(&r, "%s", err);
        goto out;
    }
    rg_store_record_append(ctx, rec);
    redisAppendCommandArgv(ctx, 5, a.argv, a.len);
    /* read all six replies even after a failure, so the connection stays in step */
    char werr[200] = "";
    redisReply *rep = NULL;
    int io = 0;
    for (int i = 0; i < 6 && !io; i++) {
        void *v = NULL;
        if (redisGetReply(ctx, &v) != REDIS_OK || v == NULL) {
            io = 1;
            break;
        }
        redisReply *x = v;
        if (i < 5 && werr[0] == '\0') {
            if (x->type == REDIS_REPLY_ERROR)
                snprintf(werr, sizeof werr, "record %s: %s", rec->key, x->str);
            else if (i == 4 && (x->type != REDIS_REPLY_ARRAY || x->elements != 3))
                snprintf(werr, sizeof werr, "record %s: transaction aborted", rec->key);
        }
        if (i < 5)
            freeReplyObject(x);
        else
            rep = x;
    }
    if (!io)
        rep = decide_retry(&s->c, ctx, rep, a.argv, a.len);
    sync_args_reply(ctx, io ? NULL : rep, &r);
    if (r.status == 0 && werr[0])
        reply_error(&r, "%s", werr);
    if (rep)
        freeReplyObject(rep);
    sync_drop(s);
    pthread_mutex_unlock(&s->lock);
out:
    free(a.blob);
    cb(arg, &r);
}

/* Run an account script (rg_accounts_lua, rg_lookup_lua) with EVALSHA and
 * hand the parsed set to cb: the one round trip of load_accounts and
 * load_some.  argv[0..1] are set here; argv[2] is "0", then the script's
 * arguments. */
static void sync_eval_accounts(sync_store *s, const char *sha, const char *script,
                               int argc, const char **argv, rg_accounts_cb *cb, void *arg)
{
    char err[256] = "";
    long long gen = 0;
    rg_accounts *set = NULL;
    size_t len[8];
    for (int i = 2; i < argc; i++)
        len[i] = strlen(argv[i]);
    pthread_mutex_lock(&s->lock);
    redisContext *ctx = sync_ctx(s, err, sizeof err);
    if (ctx) {
        redisReply *rep = sync_evalsha(ctx, sha, script, argc, argv, len);
        if (rep == NULL)
            snprintf(err, sizeof err, "Redis: %s", ctx->errstr);
        else
            set = parse_accounts(rep, &gen, err, sizeof err);
        if (rep)
            freeReplyObject(rep);
        sync_drop(s);
    }
    pthread_mutex_unlock(&s->lock);
    cb(arg, set, gen, set ? NULL : err);
}

static void sync_load_accounts(rg_store *st, rg_accounts_cb *cb, void *arg)
{
    const char *argv[] = { NULL, NULL, "0" };
    sync_eval_accounts((sync_store *)st, rg_accounts_lua_sha1, rg_accounts_lua, 3, argv, cb, arg);
}

/* load_some (store.h): the accounts of one login, unix user, name, or
 * every account with client networks, in one round trip. */
static void sync_load_some(rg_store *st, rg_account_lookup kind, const char *key,
                           rg_accounts_cb *cb, void *arg)
{
    char k[2] = { rg_lookup_tag(kind), '\0' };
    const char *argv[] = { NULL, NULL, "0", k, key ? key : "" };
    sync_eval_accounts((sync_store *)st, rg_lookup_lua_sha1, rg_lookup_lua, 5, argv, cb, arg);
}

static void sync_free(rg_store *st)
{
    sync_store *s = (sync_store *)st;
    if (s->ctx)
        redisFree(s->ctx);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

rg_store *rg_store_redis_sync(const rg_config *cfg)
{
    sync_store *s = rg_calloc(1, sizeof *s);
    common_init(&s->c, cfg);
    s->c.base.decide = sync_decide;
    s->c.base.decide_record = sync_decide_record;
    s->c.base.load_accounts = sync_load_accounts;
    s->c.base.load_some = sync_load_some;
    s->c.base.free = sync_free;
    s->backoff_ms = BACKOFF_MIN_MS;
    pthread_mutex_init(&s->lock, NULL);
    return &s->c.base;
}

/* ----------------------------------------------------------------- pool */

/* n sync stores; a call picks one that is free (trylock round the ring from a
 * rotating start), else blocks on the one it started at. */
typedef struct pool_store {
    rg_store base;
    rg_store **conns;
    unsigned n;
    unsigned next;              /* atomic: where the next call starts looking */
} pool_store;

static rg_store *pool_pick(pool_store *p)
{
    unsigned start = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED) % p->n;
    for (unsigned i = 0; i < p->n; i++) {
        sync_store *s = (sync_store *)p->conns[(start + i) % p->n];
        if (pthread_mutex_trylock(&s->lock) == 0) {
            pthread_mutex_unlock(&s->lock);
            return &s->c.base;
        }
    }
    return p->conns[start];
}

static void pool_decide(rg_store *st, int argc, const char **argv, rg_store_cb *cb, void *arg)
{
    rg_store *s = pool_pick((pool_store *)st);
    s->decide(s, argc, argv, cb, arg);
}

static void pool_decide_record(rg_store *st, const rg_store_record *rec, int argc,
                               const char **argv, rg_store_cb *cb, void *arg)
{
    rg_store *s = pool_pick((pool_store *)st);
    s->decide_record(s, rec, argc, argv, cb, arg);
}

static void pool_load_accounts(rg_store *st, rg_accounts_cb *cb, void *arg)
{
    rg_store *s = pool_pick((pool_store *)st);
    s->load_accounts(s, cb, arg);
}

static void pool_free(rg_store *st)
{
    pool_store *p = (pool_store *)st;
    for (unsigned i = 0; i < p->n; i++)
        p->conns[i]->free(p->conns[i]);
    free(p->conns);
    free(p);
}

rg_store *rg_store_redis_pool(const rg_config *cfg, unsigned n)
{
    if (n <= 1)
        return rg_store_redis_sync(cfg);
    pool_store *p = rg_calloc(1, sizeof *p);
    p->base.decide = pool_decide;
    p->base.decide_record = pool_decide_record;
    p->base.load_accounts = pool_load_accounts;
    p->base.free = pool_free;
    p->n = n;
    p->conns = rg_calloc(n, sizeof *p->conns);
    for (unsigned i = 0; i < n; i++)
        p->conns[i] = rg_store_redis_sync(cfg);
    return &p->base;
}
