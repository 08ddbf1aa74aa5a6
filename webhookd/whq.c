/*
 * whq.c - the webhook queues in Redis (whq.h): connection, the Lua scripts
 * that move events through the queues, dead letters, events as JSON.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "keys.h"
#include "util.h"
#include "whq.h"

#define MIN_TIMEOUT_MS 2000

/*
 * The scripts.  Queue names are DEST:ACCOUNT (keys.h).  Only the lease
 * holder of a queue removes events from its head; routing and retries
 * append at its tail, so a delivery in flight always knows which events it
 * carries.
 */
#define LUA_NOW \
    "local t = redis.call('TIME')\n" \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

static const char *const scripts[RG_WHQ_NSCRIPTS] = {
    /* ROUTE  ARGV: router token, group, ndest, {dest, url, account}*, nentries,
     * {id, payload, nq, queue*}*
     * Only the router (rg:wh:router holds its token) routes, so entries are
     * queued in stream order.  An entry is queued only if this call
     * acknowledged it: a router that took over entries another one had
     * read (XAUTOCLAIM) and that one, should it wake up, cannot both queue
     * them.  Returns {entries, queued}, or {-1, 0} when not the router. */
    [RG_WHQ_ROUTE] = LUA_NOW
    "if redis.call('GET', 'rg:wh:router') ~= ARGV[1] then return {-1, 0} end\n"
    "local group = ARGV[2]\n"
    "local i = 3\n"
    "local nd = tonumber(ARGV[i]); i = i + 1\n"
    "for _ = 1, nd do\n"
    "  redis.call('HSET', 'rg:wh:d:' .. ARGV[i], 'url', ARGV[i + 1], 'account', ARGV[i + 2])\n"
    "  i = i + 3\n"
    "end\n"
    "local ne = tonumber(ARGV[i]); i = i + 1\n"
    "local routed, queued = 0, 0\n"
    "for _ = 1, ne do\n"
    "  local id, payload, nq = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])\n"
    "  i = i + 3\n"
    "  if redis.call('XACK', 'rg:events', group, id) == 1 then\n"
    "    routed = routed + 1\n"
    "    for k = 0, nq - 1 do\n"
    "      local q = ARGV[i + k]\n"
    "      redis.call('RPUSH', 'rg:wh:q:' .. q, payload)\n"
    "      if not redis.call('ZSCORE', 'rg:wh:lease', q) then\n"
    "        redis.call('ZADD', 'rg:wh:ready', 'NX', now, q)\n"
    "      end\n"
    "      queued = queued + 1\n"
    "    end\n"
    "  end\n"
    "  i = i + nq\n"
    "end\n"
    "if routed > 0 then redis.call('HINCRBY', 'rg:wh:stat', 'routed', routed) end\n"
    "return {routed, queued}\n",

    /* CLAIM  ARGV: token prefix, lease_ms, max queues, max events per queue
     * Expired leases (a process died) go back to ready first.  Returns
     * {queue, token, url, account, attempts, since, {events}} per queue. */
    [RG_WHQ_CLAIM] = LUA_NOW
    "local prefix, lease, maxq, maxe = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])\n"
    "for _, q in ipairs(redis.call('ZRANGEBYSCORE', 'rg:wh:lease', '-inf', now, 'LIMIT', 0, 100)) do\n"
    "  redis.call('ZREM', 'rg:wh:lease', q)\n"
    "  redis.call('HDEL', 'rg:wh:owner', q)\n"
    "  redis.call('ZADD', 'rg:wh:ready', now, q)\n"
    "end\n"
    "local out = {}\n"
    "for n, q in ipairs(redis.call('ZRANGEBYSCORE', 'rg:wh:ready', '-inf', now, 'LIMIT', 0, maxq)) do\n"
    "  redis.call('ZREM', 'rg:wh:ready', q)\n"
    "  local items = redis.call('LRANGE', 'rg:wh:q:' .. q, 0, maxe - 1)\n"
    "  if #items > 0 then\n"
    "    local token = prefix .. ':' .. now .. ':' .. n\n"
    "    redis.call('ZADD', 'rg:wh:lease', now + lease, q)\n"
    "    redis.call('HSET', 'rg:wh:owner', q, token)\n"
    "    local dest = string.match(q, '^([^:]*)')\n"
    "    local d = redis.call('HMGET', 'rg:wh:d:' .. dest, 'url', 'account')\n"
    "    local st = redis.call('HMGET', 'rg:wh:t:' .. q, 'attempts', 'since')\n"
    "    out[#out + 1] = {q, token, d[1] or '', d[2] or '', st[1] or '0', st[2] or '0', items}\n"
    "  else\n"
    "    redis.call('DEL', 'rg:wh:t:' .. q)\n"
    "  end\n"
    "end\n"
    "return out\n",

    /* DONE  ARGV: queue, token, n.  0 when the lease was lost (another
     * process may be sending these events again), else 1. */
    [RG_WHQ_DONE] = LUA_NOW
    "local q, token, n = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "if redis.call('HGET', 'rg:wh:owner', q) ~= token then return 0 end\n"
    "redis.call('LTRIM', 'rg:wh:q:' .. q, n, -1)\n"
    "redis.call('DEL', 'rg:wh:t:' .. q)\n"
    "redis.call('ZREM', 'rg:wh:lease', q)\n"
    "redis.call('HDEL', 'rg:wh:owner', q)\n"
    "if redis.call('LLEN', 'rg:wh:q:' .. q) > 0 then redis.call('ZADD', 'rg:wh:ready', now, q) end\n"
    "redis.call('HINCRBY', 'rg:wh:stat', 'delivered', n)\n"
    "return 1\n",

    /* FAIL  ARGV: queue, token, n, error, wait_ms, retry_for_ms.  0 lease
     * lost, 1 retried later, 2 the n head events went to the dead letters. */
    [RG_WHQ_FAIL] = LUA_NOW
    "local q, token, n, err = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]\n"
    "local wait, retry_for = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "if redis.call('HGET', 'rg:wh:owner', q) ~= token then return 0 end\n"
    "local tk = 'rg:wh:t:' .. q\n"
    "local a = redis.call('HINCRBY', tk, 'attempts', 1)\n"
    "local since = tonumber(redis.call('HGET', tk, 'since') or '')\n"
    "if not since then since = now; redis.call('HSET', tk, 'since', now) end\n"
    "redis.call('ZREM', 'rg:wh:lease', q)\n"
    "redis.call('HDEL', 'rg:wh:owner', q)\n"
    "if now - since >= retry_for then\n"
    "  local items = redis.call('LRANGE', 'rg:wh:q:' .. q, 0, n - 1)\n"
    "  redis.call('LTRIM', 'rg:wh:q:' .. q, n, -1)\n"
    "  local dest = string.match(q, '^([^:]*)')\n"
    "  local url = redis.call('HGET', 'rg:wh:d:' .. dest, 'url') or ''\n"
    "  local acct = string.sub(q, #dest + 2)\n"
    "  for _, ev in ipairs(items) do\n"
    "    local id = redis.call('INCR', 'rg:wh:dead:seq')\n"
    "    redis.call('HSET', 'rg:wh:dl:' .. id, 'queue', q, 'url', url, 'account', acct,\n"
    "      'attempts', a, 'since', since, 'died', now, 'error', err, 'event', ev)\n"
    "    redis.call('ZADD', 'rg:wh:dead', now, id)\n"
    "  end\n"
    "  redis.call('DEL', tk)\n"
    "  redis.call('HINCRBY', 'rg:wh:stat', 'dead', #items)\n"
    "  if redis.call('LLEN', 'rg:wh:q:' .. q) > 0 then redis.call('ZADD', 'rg:wh:ready', now, q) end\n"
    "  return 2\n"
    "end\n"
    "redis.call('HSET', tk, 'next', now + wait, 'error', err)\n"
    "redis.call('ZADD', 'rg:wh:ready', now + wait, q)\n"
    "redis.call('HINCRBY', 'rg:wh:stat', 'retried', n)\n"
    "return 1\n",

    /* RETRY  ARGV: dead-letter ids, or "*" (the 1000 oldest).  Each goes to
     * the end of its queue and the queue is sent now.  Returns the count. */
    [RG_WHQ_RETRY] = LUA_NOW
    "local ids = ARGV\n"
    "if ARGV[1] == '*' then ids = redis.call('ZRANGE', 'rg:wh:dead', 0, 999) end\n"
    "local n = 0\n"
    "for _, id in ipairs(ids) do\n"
    "  local r = redis.call('HMGET', 'rg:wh:dl:' .. id, 'queue', 'event')\n"
    "  if r[1] and r[2] then\n"
    "    redis.call('RPUSH', 'rg:wh:q:' .. r[1], r[2])\n"
    "    if not redis.call('ZSCORE', 'rg:wh:lease', r[1]) then\n"
    "      redis.call('ZADD', 'rg:wh:ready', now, r[1])\n"
    "    end\n"
    "    n = n + 1\n"
    "  end\n"
    "  redis.call('DEL', 'rg:wh:dl:' .. id)\n"
    "  redis.call('ZREM', 'rg:wh:dead', id)\n"
    "end\n"
    "return n\n",

    /* LOST  ARGV: group.  Entries trimmed from the capped stream (MAXLEN)
     * before the group read them.  The group is created with ENTRIESREAD
     * (GROUP script), so entries-read counts what it read since then, and
     * entries-added - entries-read - unread entries is everything the group
     * ever lost; unread entries are the whole stream when its first entry
     * is after last-delivered-id (else nothing new can be lost).  The total
     * is kept in rg:wh:stat lost_stream, so a loss is counted once.
     * Returns {newly lost, last-delivered, first entry}. */
    [RG_WHQ_LOST] =
    "if redis.call('EXISTS', 'rg:events') == 0 then return {0} end\n"
    "local function kv(a) local m = {} for i = 1, #a, 2 do m[a[i]] = a[i + 1] end return m end\n"
    "local function lt(a, b)\n"
    "  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"
    "  if not am or not bm then return false end\n"
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"
    "  return am < bm or (am == bm and as < bs)\n"
    "end\n"
    "local s = kv(redis.call('XINFO', 'STREAM', 'rg:events'))\n"
    "local g\n"
    "for _, x in ipairs(redis.call('XINFO', 'GROUPS', 'rg:events')) do\n"
    "  local m = kv(x)\n"
    "  if m['name'] == ARGV[1] then g = m end\n"
    "end\n"
    "if not g then return {0} end\n"
    "local added, read, len = tonumber(s['entries-added']), tonumber(g['entries-read']), tonumber(s['length'])\n"
    "if not added or not read or not len then return {0} end\n"
    "local last, first = g['last-delivered-id'], ''\n"
    "if type(s['first-entry']) == 'table' then first = s['first-entry'][1] end\n"
    "if len > 0 and not lt(last, first) then return {0} end\n"
    "local total = added - read - len\n"
    "local prev = tonumber(redis.call('HGET', 'rg:wh:stat', 'lost_stream') or '0') or 0\n"
    "if total <= prev then return {0} end\n"
    "redis.call('HSET', 'rg:wh:stat', 'lost_stream', total)\n"
    "redis.call('HINCRBY', 'rg:wh:stat', 'lost', total - prev)\n"
    "return {total - prev, last, first}\n",

    /* GROUP  ARGV: group.  Create the consumer group at the stream's end,
     * with entries-read set to the entries added so far (LOST counts from
     * there).  A BUSYGROUP error when it exists. */
    [RG_WHQ_GROUP] =
    "local added = 0\n"
    "if redis.call('EXISTS', 'rg:events') == 1 then\n"
    "  local s = redis.call('XINFO', 'STREAM', 'rg:events')\n"
    "  for i = 1, #s, 2 do if s[i] == 'entries-added' then added = s[i + 1] end end\n"
    "end\n"
    "return redis.call('XGROUP', 'CREATE', 'rg:events', ARGV[1], '$', 'MKSTREAM', 'ENTRIESREAD', added)\n",

    /* ROUTER  ARGV: token, ttl_ms.  1 still the router (lease extended),
     * 2 became the router, 0 another process is.  ttl 0: give the role up. */
    [RG_WHQ_ROUTER] =
    "local cur = redis.call('GET', 'rg:wh:router')\n"
    "if ARGV[2] == '0' then\n"
    "  if cur == ARGV[1] then redis.call('DEL', 'rg:wh:router') end\n"
    "  return 0\n"
    "end\n"
    "if cur == ARGV[1] then redis.call('PEXPIRE', 'rg:wh:router', ARGV[2]) return 1 end\n"
    "if not cur then redis.call('SET', 'rg:wh:router', ARGV[1], 'PX', ARGV[2]) return 2 end\n"
    "return 0\n",

    /* DROP  ARGV: dead-letter ids, or "*" (the 1000 oldest).  Returns the count. */
    [RG_WHQ_DROP] =
    "local ids = ARGV\n"
    "if ARGV[1] == '*' then ids = redis.call('ZRANGE', 'rg:wh:dead', 0, 999) end\n"
    "local n = 0\n"
    "for _, id in ipairs(ids) do\n"
    "  n = n + redis.call('DEL', 'rg:wh:dl:' .. id)\n"
    "  redis.call('ZREM', 'rg:wh:dead', id)\n"
    "end\n"
    "return n\n",

    /* ACCOUNTS  {gen, {name, {field, value, ...}}, ...} */
    [RG_WHQ_ACCOUNTS] =
    "local out = {redis.call('GET', 'rg:acct:gen') or '0'}\n"
    "for _, n in ipairs(redis.call('SMEMBERS', 'rg:accts')) do\n"
    "  out[#out + 1] = {n, redis.call('HGETALL', 'rg:acct:' .. n)}\n"
    "end\n"
    "return out\n",

    /* STATUS  {queues, queued, leased, waiting_retry, dead} */
    [RG_WHQ_STATUS] = LUA_NOW
    "local queued, retry = 0, 0\n"
    "local qs = redis.call('ZRANGE', 'rg:wh:ready', 0, -1, 'WITHSCORES')\n"
    "for i = 1, #qs, 2 do\n"
    "  queued = queued + redis.call('LLEN', 'rg:wh:q:' .. qs[i])\n"
    "  if tonumber(qs[i + 1]) > now then retry = retry + 1 end\n"
    "end\n"
    "local leased = redis.call('ZRANGE', 'rg:wh:lease', 0, -1)\n"
    "for _, q in ipairs(leased) do queued = queued + redis.call('LLEN', 'rg:wh:q:' .. q) end\n"
    "return {#qs / 2 + #leased, queued, #leased, retry, redis.call('ZCARD', 'rg:wh:dead')}\n",
};

struct rg_whq {
    redisContext *c;
    char sha[RG_WHQ_NSCRIPTS][41];
    char err[512];
};

static void set_err(rg_whq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(rg_whq *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->err, sizeof q->err, fmt, ap);
    va_end(ap);
}

const char *rg_whq_error(const rg_whq *q)
{
    return q ? q->err : "";
}

redisReply *rg_whq_command(rg_whq *q, int argc, const char **argv, const size_t *lens)
{
    if (q->c == NULL) {
        set_err(q, "store: not connected");
        return NULL;
    }
    redisReply *r = redisCommandArgv(q->c, argc, argv, lens);
    if (r == NULL) {
        set_err(q, "store: %s", q->c->errstr[0] ? q->c->errstr : "connection lost");
        redisFree(q->c);            /* a blocking context is unusable after an I/O error */
        q->c = NULL;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        set_err(q, "store: %s: %s", argv[0], r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

rg_whq *rg_whq_connect(const rg_config *cfg, char *err, size_t errlen)
{
    uint64_t ms = cfg->store_timeout_ms < MIN_TIMEOUT_MS ? MIN_TIMEOUT_MS : cfg->store_timeout_ms;
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    rg_whq *q = rg_calloc(1, sizeof *q);
    redisReply *r;

    q->c = cfg->store.unix_socket ? redisConnectUnixWithTimeout(cfg->store.host, tv)
                                  : redisConnectWithTimeout(cfg->store.host, cfg->store.port, tv);
    if (q->c == NULL || q->c->err) {
        rg_seterr(err, errlen, "store %s: %s", cfg->store_text, q->c ? q->c->errstr : "out of memory");
        rg_whq_close(&q);
        return NULL;
    }
    redisSetTimeout(q->c, tv);
    if (cfg->store.password[0]) {
        const char *av[] = { "AUTH", cfg->store.user, cfg->store.password };
        r = cfg->store.user[0] ? rg_whq_command(q, 3, av, NULL)
                               : rg_whq_command(q, 2, (const char *[]){ "AUTH", cfg->store.password }, NULL);
        if (r == NULL)
            goto fail;
        freeReplyObject(r);
    }
    if (cfg->store.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", cfg->store.db);
        if ((r = rg_whq_command(q, 2, (const char *[]){ "SELECT", db }, NULL)) == NULL)
            goto fail;
        freeReplyObject(r);
    }
    return q;

fail:
    rg_seterr(err, errlen, "%s: %s", cfg->store_text, q->err);
    rg_whq_close(&q);
    return NULL;
}

void rg_whq_close(rg_whq **qp)
{
    if (*qp == NULL)
        return;
    if ((*qp)->c)
        redisFree((*qp)->c);
    free(*qp);
    *qp = NULL;
}

redisReply *rg_whq_script(rg_whq *q, enum rg_whq_script s, int argc, const char **argv,
                          const size_t *lens)
{
    int n = argc + 3;
    const char **av = rg_calloc((size_t)n, sizeof *av);
    size_t *al = rg_calloc((size_t)n, sizeof *al);
    redisReply *r = NULL;

    if (q->sha[s][0] == '\0') {
        r = rg_whq_command(q, 3, (const char *[]){ "SCRIPT", "LOAD", scripts[s] }, NULL);
        if (r == NULL)
            goto out;
        if (r->type == REDIS_REPLY_STRING && r->len == 40)
            memcpy(q->sha[s], r->str, 41);
        freeReplyObject(r);
        r = NULL;
    }
    for (int pass = 0; pass < 2; pass++) {
        av[0] = pass == 0 ? "EVALSHA" : "EVAL";
        av[1] = pass == 0 ? q->sha[s] : scripts[s];
        av[2] = "0";
        al[0] = strlen(av[0]);
        al[1] = strlen(av[1]);
        al[2] = 1;
        for (int i = 0; i < argc; i++) {
            av[3 + i] = argv[i];
            al[3 + i] = lens ? lens[i] : strlen(argv[i]);
        }
        if (q->c == NULL) {
            set_err(q, "store: not connected");
            break;
        }
        r = redisCommandArgv(q->c, n, av, al);
        if (r == NULL) {
            set_err(q, "store: %s", q->c->errstr[0] ? q->c->errstr : "connection lost");
            redisFree(q->c);
            q->c = NULL;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR && pass == 0 && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(r);     /* a restarted or flushed Redis: send the source once */
            r = NULL;
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            set_err(q, "store: script: %s", r->str);
            freeReplyObject(r);
            r = NULL;
        }
        break;
    }
out:
    free(av);
    free(al);
    return r;
}

/* --- dead letters ---------------------------------------------------------- */

static const char *hget(const redisReply *h, const char *k)
{
    for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, k) == 0 &&
            h->element[i + 1]->type == REDIS_REPLY_STRING)
            return h->element[i + 1]->str;
    return "";
}

long rg_whq_dead_list(rg_whq *q, rg_wh_dead_cb *cb, void *arg)
{
    long count = 0;

    /* pages of 500 by rank (oldest first), one pipelined HGETALL per id */
    for (long off = 0;; off += 500) {
        char a[24], b[24];
        snprintf(a, sizeof a, "%ld", off);
        snprintf(b, sizeof b, "%ld", off + 499);
        redisReply *ids = rg_whq_command(q, 4, (const char *[]){ "ZRANGE", RG_KEY_WH_DEAD, a, b },
                                         NULL);
        if (ids == NULL)
            return -1;
        size_t n = ids->type == REDIS_REPLY_ARRAY ? ids->elements : 0;
        for (size_t i = 0; i < n; i++) {
            char key[64];
            snprintf(key, sizeof key, RG_KEY_WH_DEADLETTER "%s", ids->element[i]->str);
            redisAppendCommandArgv(q->c, 2, (const char *[]){ "HGETALL", key }, NULL);
        }
        bool stop = false;
        for (size_t i = 0; i < n; i++) {
            redisReply *h = NULL;
            if (redisGetReply(q->c, (void **)&h) != REDIS_OK || h == NULL) {
                set_err(q, "store: %s", q->c->errstr[0] ? q->c->errstr : "connection lost");
                freeReplyObject(ids);
                redisFree(q->c);
                q->c = NULL;
                return -1;
            }
            if (!stop && h->type == REDIS_REPLY_ARRAY && h->elements > 0) {
                rg_wh_dead d = {
                    .id = ids->element[i]->str,
                    .queue = hget(h, "queue"), .url = hget(h, "url"), .account = hget(h, "account"),
                    .error = hget(h, "error"), .event = hget(h, "event"),
                    .attempts = strtol(hget(h, "attempts"), NULL, 10),
                    .since_ms = strtoll(hget(h, "since"), NULL, 10),
                    .died_ms = strtoll(hget(h, "died"), NULL, 10),
                };
                count++;
                stop = cb(arg, &d) != 0;
            }
            freeReplyObject(h);
        }
        freeReplyObject(ids);
        if (n < 500 || stop)
            return count;
    }
}

static long dead_move(rg_whq *q, enum rg_whq_script script, const char *id)
{
    long total = 0;

    for (;;) {
        redisReply *r = rg_whq_script(q, script, 1, (const char *[]){ id ? id : "*" }, NULL);
        if (r == NULL)
            return -1;
        long n = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : 0;
        freeReplyObject(r);
        total += n;
        if (id != NULL)
            return total;
        /* "*" takes the 1000 oldest per call and always removes the ids it
         * looked at, so the loop ends when the list is empty */
        redisReply *c = rg_whq_command(q, 2, (const char *[]){ "ZCARD", RG_KEY_WH_DEAD }, NULL);
        if (c == NULL)
            return -1;
        long left = (long)c->integer;
        freeReplyObject(c);
        if (left == 0)
            return total;
    }
}

long rg_whq_dead_retry(rg_whq *q, const char *id)
{
    return dead_move(q, RG_WHQ_RETRY, id);
}

long rg_whq_dead_drop(rg_whq *q, const char *id)
{
    return dead_move(q, RG_WHQ_DROP, id);
}

int rg_whq_status(rg_whq *q, rg_wh_status *out)
{
    memset(out, 0, sizeof *out);
    redisReply *r = rg_whq_script(q, RG_WHQ_STATUS, 0, NULL, NULL);
    if (r == NULL)
        return -1;
    long long *v[] = { &out->queues, &out->queued, &out->leased, &out->waiting_retry, &out->dead };
    for (size_t i = 0; i < 5 && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        *v[i] = r->element[i]->integer;
    freeReplyObject(r);
    r = rg_whq_command(q, 2, (const char *[]){ "HGETALL", RG_KEY_WH_STAT }, NULL);
    if (r == NULL)
        return -1;
    out->routed = strtoll(hget(r, "routed"), NULL, 10);
    out->delivered = strtoll(hget(r, "delivered"), NULL, 10);
    out->retried = strtoll(hget(r, "retried"), NULL, 10);
    out->died = strtoll(hget(r, "dead"), NULL, 10);
    out->lost = strtoll(hget(r, "lost"), NULL, 10);
    freeReplyObject(r);
    return 0;
}

/* --- signature ------------------------------------------------------------------ */

int rg_wh_signature(const char *secret, long ts, const char *body, size_t len, char *out,
                    size_t outlen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char t[24];
    int ok;
    snprintf(t, sizeof t, "%ld", ts);
    /* one HMAC over TS "." body without copying the body: EVP_MAC */
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()
    };
    size_t n = 0;
    ok = c && EVP_MAC_init(c, (const unsigned char *)secret, strlen(secret), params) &&
         EVP_MAC_update(c, (const unsigned char *)t, strlen(t)) &&
         EVP_MAC_update(c, (const unsigned char *)".", 1) &&
         EVP_MAC_update(c, (const unsigned char *)body, len) &&
         EVP_MAC_final(c, mac, &n, sizeof mac);
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    maclen = (unsigned int)n;
    if (!ok)
        return -1;
    int w = snprintf(out, outlen, "X-Relayguard-Signature: t=%s,v1=", t);
    if (w < 0 || (size_t)w + 2 * maclen + 1 > outlen)
        return -1;
    for (unsigned int i = 0; i < maclen; i++)
        snprintf(out + w + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

/* --- JSON ---------------------------------------------------------------------- */

void rg_buf_add(rg_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = rg_realloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void rg_buf_adds(rg_buf *b, const char *s)
{
    rg_buf_add(b, s, strlen(s));
}

void rg_buf_json_str(rg_buf *b, const char *s)
{
    rg_buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        if (*p == '"' || *p == '\\') {
            char e[2] = { '\\', (char)*p++ };
            rg_buf_add(b, e, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *p++);
            rg_buf_add(b, e, 6);
        } else {
            size_t n = rg_utf8_len(p, strlen((const char *)p));
            if (n == 0) {
                rg_buf_adds(b, "\\ufffd");
                p++;
            } else {
                rg_buf_add(b, (const char *)p, n);
                p += n;
            }
        }
    }
    rg_buf_add(b, "\"", 1);
}

static bool all_digits(const char *s)
{
    return s[0] != '\0' && strspn(s, "0123456789") == strlen(s) && strlen(s) < 19;
}

/* A JSON number as the event writers format them: digits, an optional
 * fraction (detections' baseline and ratio). */
static bool number_text(const char *s)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 18)
        return false;
    if (s[n] == '.') {
        size_t f = strspn(s + n + 1, "0123456789");
        return f > 0 && f < 18 && s[n + 1 + f] == '\0';
    }
    return s[n] == '\0';
}

/* Fields sent as JSON numbers when they hold one; every other field is a string. */
static bool numeric_field(const char *k)
{
    static const char *const names[] = { "ts", "nrcpt", "size", "baseline", "threshold",
                                         "current", "refused", "total", "ratio" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(k, names[i]) == 0)
            return true;
    return false;
}

char *rg_wh_event_json(const char *id, char *const *keys, char *const *values, size_t n,
                       char *type, size_t typelen)
{
    const char *tfield = NULL, *verdict = NULL, *ts = NULL;
    rg_buf b = { 0 };
    char when[40] = "";

    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i], "type") == 0)
            tfield = values[i];
        else if (strcmp(keys[i], "verdict") == 0)
            verdict = values[i];
        else if (strcmp(keys[i], "ts") == 0)
            ts = values[i];
    }
    rg_event_type(tfield, verdict, type, typelen);
    if (ts && all_digits(ts)) {
        unsigned long long ms = strtoull(ts, NULL, 10);
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        if (gmtime_r(&t, &tm)) {
            char d[32];
            strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf(when, sizeof when, "%s.%03lluZ", d, ms % 1000);
        }
    }
    rg_buf_adds(&b, "{\"id\":");
    rg_buf_json_str(&b, id);
    rg_buf_adds(&b, ",\"type\":");
    rg_buf_json_str(&b, type);
    if (when[0]) {
        rg_buf_adds(&b, ",\"time\":");
        rg_buf_json_str(&b, when);
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i], "type") == 0 || strcmp(keys[i], "id") == 0 || strcmp(keys[i], "time") == 0)
            continue;
        rg_buf_add(&b, ",", 1);
        rg_buf_json_str(&b, keys[i]);
        rg_buf_add(&b, ":", 1);
        if (numeric_field(keys[i]) && number_text(values[i]))
            rg_buf_adds(&b, values[i]);
        else
            rg_buf_json_str(&b, values[i]);
    }
    rg_buf_add(&b, "}", 1);
    return b.s;
}
