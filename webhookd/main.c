/*
 * relayguard-webhookd - sends relayguard's events to HTTP endpoints.
 *
 * One loop, one Redis connection, one libcurl multi handle:
 *   route   (the one process holding rg:wh:router) read the events stream
 *           as a member of the consumer group "webhookd" (XREADGROUP; on
 *           taking the role over, XAUTOCLAIM what the previous router left
 *           pending), turn each event into JSON and append it to the queue
 *           of every destination that wants its type (the global URLs, the
 *           account's own URL), XACKing it in the same script; one router
 *           keeps each account's events in stream order;
 *   claim   lease ready queues (whq.c), one process per queue at a time,
 *           so an account's events reach a URL in order and once;
 *   send    POST their head events as one JSON array per destination,
 *           signed, many POSTs in flight over reused connections;
 *   record  2xx: drop the events from the queue; anything else: back off
 *           exponentially, and after retry_for move them to the dead
 *           letters (`relayguard webhooks retry`).
 * SIGHUP reloads the configuration; SIGTERM and SIGINT finish the POSTs in
 * flight and exit.  See relayguard-webhookd(8) and docs/architecture.md.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "account.h"
#include "config.h"
#include "daemon.h"
#include "keys.h"
#include "log.h"
#include "util.h"
#include "whq.h"

#define IDENT "relayguard-webhookd"
#define POLL_MS 100                 /* idle: how often ready queues and retries are looked at */
#define READ_COUNT "500"            /* stream entries per XREADGROUP */
#define LOST_CHECK_MS 10000
#define GEN_CHECK_MS 1000
#define RESPONSE_KEEP 160           /* bytes of a response body kept for the log */

/* One queue's part of a POST. */
typedef struct seg {
    char *queue;
    char *token;
    size_t n;
    long attempts;
    bool recorded;
} seg;

/* One POST: the head events of one or more queues of one destination. */
typedef struct post {
    struct post *next;
    CURL *h;
    struct curl_slist *hdrs;
    rg_buf body;
    char *url;
    char dest[17];
    char scope[72];                 /* the account of an account URL, "" for a global one */
    seg *segs;
    size_t nsegs, nevents;
    uint64_t started_ms;
    char errbuf[CURL_ERROR_SIZE];
    char resp[RESPONSE_KEEP];
    size_t resplen;
    bool ok;
    char why[300];
} post;

static struct {
    char *config_path;
    int debug;
    rg_config *cfg;
    rg_accounts *accounts;
    char acct_gen[32];
    rg_whq *q;
    CURLM *multi;
    char consumer[200];
    volatile sig_atomic_t stop, hup;
    post *building;                 /* filled by one claim, started together */
    post *sending;                  /* in flight */
    post *finished;                 /* answered, outcome not yet recorded (Redis down) */
    size_t inflight;
    uint64_t next_claim, next_lost, next_gen, next_connect, backoff_ms;
    bool router;                    /* this process routes the stream (rg:wh:router) */
    bool taking_over;               /* ... and first routes what was left pending */
    bool behind;                    /* the last XREADGROUP returned a full page */
    char autoclaim_from[64];
    bool group_ok;
} g;

static uint64_t now_ms(void)
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

/* --- Redis ------------------------------------------------------------------ */

/* A store call failed: log once, drop the connection, reconnect later with backoff. */
static void store_lost(void)
{
    rg_error("error: %s; reconnecting", rg_whq_error(g.q));
    rg_whq_close(&g.q);
    g.router = false;       /* after reconnecting: routes pending entries first again */
    g.backoff_ms = g.backoff_ms ? (g.backoff_ms * 2 > 2000 ? 2000 : g.backoff_ms * 2) : 100;
    g.next_connect = now_ms() + g.backoff_ms;
}

static bool store_up(void)
{
    char err[1024];

    if (g.q)
        return true;
    if (now_ms() < g.next_connect)
        return false;
    if ((g.q = rg_whq_connect(g.cfg, err, sizeof err)) == NULL) {
        rg_error("error: %s", err);
        g.backoff_ms = g.backoff_ms ? (g.backoff_ms * 2 > 2000 ? 2000 : g.backoff_ms * 2) : 100;
        g.next_connect = now_ms() + g.backoff_ms;
        return false;
    }
    if (g.backoff_ms)
        rg_info("store %s: connected again", g.cfg->store_text);
    g.backoff_ms = 0;
    g.group_ok = false;
    g.acct_gen[0] = '\0';       /* reload the accounts */
    g.next_gen = 0;
    return true;
}

/* The consumer group, created at the stream's end ("$") when missing. */
static int ensure_group(void)
{
    if (g.group_ok)
        return 0;
    redisReply *r = rg_whq_script(g.q, RG_WHQ_GROUP, 1, (const char *[]){ RG_WH_GROUP }, NULL);
    if (r == NULL && (g.q == NULL || strstr(rg_whq_error(g.q), "BUSYGROUP") == NULL)) {
        if (g.q)
            rg_error("error: %s", rg_whq_error(g.q));
        return -1;
    }
    if (r) {
        rg_info("created the consumer group %s of %s", RG_WH_GROUP, RG_KEY_EVENTS);
        freeReplyObject(r);
    }
    g.group_ok = true;
    return 0;
}

/* Reload the accounts when rg:acct:gen changed.  0, or -1 on a store error. */
static int refresh_accounts(void)
{
    redisReply *r = rg_whq_command(g.q, 2, (const char *[]){ "GET", RG_KEY_ACCOUNT_GEN }, NULL);
    if (r == NULL)
        return g.q ? 0 : -1;
    char gen[32];
    snprintf(gen, sizeof gen, "%s", r->type == REDIS_REPLY_STRING ? r->str : "0");
    freeReplyObject(r);
    if (g.accounts && strcmp(gen, g.acct_gen) == 0)
        return 0;

    redisReply *all = rg_whq_script(g.q, RG_WHQ_ACCOUNTS, 0, NULL, NULL);
    if (all == NULL) {
        if (g.q == NULL)
            return -1;
        rg_error("error: loading the accounts: %s", rg_whq_error(g.q));
        return 0;
    }
    if (all->type == REDIS_REPLY_ARRAY && all->elements > 0 && all->element[0]->type == REDIS_REPLY_STRING)
        snprintf(gen, sizeof gen, "%s", all->element[0]->str);     /* read with the accounts */
    rg_accounts *set = rg_accounts_new();
    for (size_t i = 1; all->type == REDIS_REPLY_ARRAY && i < all->elements; i++) {
        const redisReply *e = all->element[i];
        char err[512];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const char *name = e->element[0]->str;
        const redisReply *h = e->element[1];
        size_t n = h->type == REDIS_REPLY_ARRAY ? h->elements / 2 : 0;
        char **k = rg_calloc(n + 1, sizeof *k), **v = rg_calloc(n + 1, sizeof *v);
        for (size_t j = 0; j < n; j++) {
            k[j] = h->element[2 * j]->str;
            v[j] = h->element[2 * j + 1]->str;
        }
        rg_account *a = rg_account_from_fields(name, k, v, n, err, sizeof err);
        free(k);
        free(v);
        if (a == NULL) {
            rg_warn("warning: %s; its events go to the global URLs only", err);
            continue;
        }
        if (rg_accounts_add(set, a, err, sizeof err) < 0)
            rg_warn("warning: account %s: %s", name, err);
    }
    freeReplyObject(all);
    rg_accounts_free(g.accounts);
    g.accounts = set;
    snprintf(g.acct_gen, sizeof g.acct_gen, "%s", gen);
    rg_debug("accounts loaded (generation %s, %zu accounts)", gen, rg_accounts_count(set));
    return 0;
}

/* --- routing ----------------------------------------------------------------- */

/* DEST: 16 hex digits of SHA-256(account "\n" url). */
static void dest_id(const char *account, const char *url, char out[17])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();

    if (c == NULL || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(c, account, strlen(account)) || !EVP_DigestUpdate(c, "\n", 1) ||
        !EVP_DigestUpdate(c, url, strlen(url)) || !EVP_DigestFinal_ex(c, md, &mdlen))
        rg_panic("SHA-256 failed");
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The argument list of one ROUTE call. */
typedef struct route_args {
    const char **av;
    size_t *lens;
    size_t n, cap;
    char **owned;               /* strings to free afterwards */
    size_t nowned;
    struct dest { char id[17]; const char *url, *account; } *dests;
    size_t ndests;
} route_args;

static void ra_push(route_args *ra, const char *s, size_t len)
{
    if (ra->n == ra->cap) {
        ra->cap = ra->cap ? ra->cap * 2 : 256;
        ra->av = rg_realloc(ra->av, ra->cap * sizeof *ra->av);
        ra->lens = rg_realloc(ra->lens, ra->cap * sizeof *ra->lens);
    }
    ra->av[ra->n] = s;
    ra->lens[ra->n++] = len;
}

static const char *ra_own(route_args *ra, char *s)
{
    ra->owned = rg_realloc(ra->owned, (ra->nowned + 1) * sizeof *ra->owned);
    ra->owned[ra->nowned++] = s;
    return s;
}

static void ra_free(route_args *ra)
{
    for (size_t i = 0; i < ra->nowned; i++)
        free(ra->owned[i]);
    free(ra->owned);
    free(ra->dests);
    free(ra->av);
    free(ra->lens);
}

/* Queue name DEST:ACCOUNT for a destination; registers the destination. */
static const char *queue_for(route_args *ra, const char *account_scope, const char *url,
                             const char *event_account)
{
    char id[17];
    size_t i;

    dest_id(account_scope, url, id);
    for (i = 0; i < ra->ndests; i++)
        if (strcmp(ra->dests[i].id, id) == 0)
            break;
    if (i == ra->ndests) {
        ra->dests = rg_realloc(ra->dests, (i + 1) * sizeof *ra->dests);
        memcpy(ra->dests[i].id, id, sizeof id);
        ra->dests[i].url = url;
        ra->dests[i].account = account_scope;
        ra->ndests++;
    }
    size_t len = 16 + 1 + strlen(event_account) + 1;
    char *q = rg_malloc(len);
    snprintf(q, len, "%s:%s", id, event_account);
    return ra_own(ra, q);
}

/*
 * Route stream entries (an array of [id, [field, value, ...]]) with one
 * ROUTE script call.  Returns the number of entries acknowledged, or -1 on
 * a store error (the entries stay pending and are claimed again later).
 */
static long route_entries(const redisReply *entries)
{
    route_args ra = { 0 };
    const rg_webhooks_conf *w = &g.cfg->webhooks;
    /* the entry part is built first (it fills the destinations), then the
     * header with the destinations goes in front */
    route_args body = { 0 };
    size_t nentries = 0;

    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const char *id = e->element[0]->str;
        const redisReply *f = e->element[1];
        size_t nf = f->type == REDIS_REPLY_ARRAY ? f->elements / 2 : 0;
        char **k = rg_calloc(nf + 1, sizeof *k), **v = rg_calloc(nf + 1, sizeof *v);
        const char *account = "";
        for (size_t j = 0; j < nf; j++) {
            k[j] = f->element[2 * j]->str;
            v[j] = f->element[2 * j + 1]->str;
            if (strcmp(k[j], "account") == 0)
                account = v[j];
        }
        char type[128];
        char *json = rg_wh_event_json(id, k, v, nf, type, sizeof type);
        free(k);
        free(v);

        const char *qs[64];
        size_t nq = 0;
        for (char **u = w->urls; *u && nq < 63; u++)
            if (rg_event_type_matches(w->events, type))
                qs[nq++] = queue_for(&body, "", *u, account);
        const rg_account *a = account[0] && g.accounts ? rg_accounts_by_name(g.accounts, account) : NULL;
        if (a && a->webhook_url && rg_event_type_matches(a->webhook_events, type))
            qs[nq++] = queue_for(&body, a->name, a->webhook_url, account);

        char num[24];
        snprintf(num, sizeof num, "%zu", nq);
        ra_push(&body, ra_own(&body, rg_strdup(id)), strlen(id));
        ra_push(&body, ra_own(&body, json), strlen(json));
        ra_push(&body, ra_own(&body, rg_strdup(num)), strlen(num));
        for (size_t j = 0; j < nq; j++)
            ra_push(&body, qs[j], strlen(qs[j]));
        nentries++;
        rg_debug("route %s %s (account %s) to %zu destination%s", id, type,
                 account[0] ? account : "-", nq, nq == 1 ? "" : "s");
    }
    if (nentries == 0) {
        ra_free(&body);
        return 0;
    }
    char nd[24], ne[24];
    snprintf(nd, sizeof nd, "%zu", body.ndests);
    snprintf(ne, sizeof ne, "%zu", nentries);
    ra_push(&ra, g.consumer, strlen(g.consumer));
    ra_push(&ra, RG_WH_GROUP, strlen(RG_WH_GROUP));
    ra_push(&ra, nd, strlen(nd));
    for (size_t i = 0; i < body.ndests; i++) {
        ra_push(&ra, body.dests[i].id, 16);
        ra_push(&ra, body.dests[i].url, strlen(body.dests[i].url));
        ra_push(&ra, body.dests[i].account, strlen(body.dests[i].account));
    }
    ra_push(&ra, ne, strlen(ne));
    for (size_t i = 0; i < body.n; i++)
        ra_push(&ra, body.av[i], body.lens[i]);

    redisReply *r = rg_whq_script(g.q, RG_WHQ_ROUTE, (int)ra.n, ra.av, ra.lens);
    ra_free(&ra);
    ra_free(&body);
    if (r == NULL)
        return -1;
    long routed = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? (long)r->element[0]->integer : 0;
    freeReplyObject(r);
    if (routed < 0) {
        /* another process became the router meanwhile: it takes these
         * entries over from our pending list */
        rg_warn("warning: no longer the router; %zu stream entries left to the new one", nentries);
        g.router = false;
        return 0;
    }
    return routed;
}

/* Read new stream entries (waiting up to block_ms) and route them.  Count or -1. */
static long route_new(int block_ms)
{
    char block[24];
    snprintf(block, sizeof block, "%d", block_ms);
    const char *av[] = { "XREADGROUP", "GROUP", RG_WH_GROUP, g.consumer, "COUNT", READ_COUNT,
                         "BLOCK", block, "STREAMS", RG_KEY_EVENTS, ">" };
    int ac = 11;
    if (block_ms <= 0) {        /* no BLOCK: answer at once */
        av[6] = "STREAMS";
        av[7] = RG_KEY_EVENTS;
        av[8] = ">";
        ac = 9;
    }
    redisReply *r = rg_whq_command(g.q, ac, av, NULL);
    if (r == NULL) {
        if (g.q == NULL)
            return -1;
        if (strstr(rg_whq_error(g.q), "NOGROUP"))
            g.group_ok = false;     /* the stream or the group was deleted: create it again */
        else
            rg_error("error: %s", rg_whq_error(g.q));
        return 0;
    }
    long n = 0;
    g.behind = false;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        const redisReply *s = r->element[0];
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2 && s->element[1]->type == REDIS_REPLY_ARRAY) {
            g.behind = s->element[1]->elements >= (size_t)atoi(READ_COUNT);
            n = route_entries(s->element[1]);
        }
    }
    freeReplyObject(r);
    return n;
}

/*
 * A new router first routes every entry the group has pending (read by an
 * earlier router that died or lost the role before routing it), oldest
 * first, one page per call; then it reads new entries.  Count or -1.
 */
static long autoclaim(void)
{
    const char *from = g.autoclaim_from[0] ? g.autoclaim_from : "0-0";
    const char *av[] = { "XAUTOCLAIM", RG_KEY_EVENTS, RG_WH_GROUP, g.consumer, "0", from,
                         "COUNT", READ_COUNT };
    long n = 0;
    redisReply *r = rg_whq_command(g.q, 8, av, NULL);
    if (r == NULL) {
        if (g.q == NULL)
            return -1;
        rg_error("error: %s", rg_whq_error(g.q));
        return 0;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        const char *next = r->element[0]->type == REDIS_REPLY_STRING ? r->element[0]->str : "0-0";
        if (r->element[1]->type == REDIS_REPLY_ARRAY && r->element[1]->elements > 0) {
            n = route_entries(r->element[1]);
            if (n > 0)
                rg_info("routed %ld event%s an earlier router had left pending", n, n == 1 ? "" : "s");
        }
        if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY && r->element[2]->elements > 0) {
            size_t lost = r->element[2]->elements;
            char num[24];
            snprintf(num, sizeof num, "%zu", lost);
            rg_error("error: %zu pending event%s had been trimmed from %s (events_max) before "
                     "they were routed: lost for webhooks", lost, lost == 1 ? "" : "s", RG_KEY_EVENTS);
            redisReply *x = rg_whq_command(g.q, 4, (const char *[]){ "HINCRBY", RG_KEY_WH_STAT, "lost", num }, NULL);
            if (x)
                freeReplyObject(x);
        }
        snprintf(g.autoclaim_from, sizeof g.autoclaim_from, "%s", next);
        if (strcmp(next, "0-0") == 0)
            g.taking_over = false;
    }
    freeReplyObject(r);
    return n;
}

/* Take, keep or lose the router role.  0, or -1 on a store error. */
static int router_role(void)
{
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)g.cfg->webhooks.claim_idle_ms);
    redisReply *r = rg_whq_script(g.q, RG_WHQ_ROUTER, 2, (const char *[]){ g.consumer, ttl }, NULL);
    if (r == NULL)
        return g.q ? 0 : -1;
    long long res = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    if (res > 0 && !g.router) {
        rg_info("routing the events stream (this process is the router now)");
        g.router = true;
        g.taking_over = true;
        g.autoclaim_from[0] = '\0';
        g.next_lost = 0;
    } else if (res == 0 && g.router) {
        rg_warn("warning: another process routes the events stream now");
        g.router = false;
    }
    return 0;
}

/* Say when the capped stream dropped entries before this group read them. */
static int check_lost(void)
{
    redisReply *r = rg_whq_script(g.q, RG_WHQ_LOST, 1, (const char *[]){ RG_WH_GROUP }, NULL);
    if (r == NULL)
        return g.q ? 0 : -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->integer != 0) {
        long long n = r->element[0]->integer;
        char count[32];
        snprintf(count, sizeof count, "%lld", n);
        rg_error("error: %s event%s (after %s, before %s) were trimmed from %s (events_max) "
                 "before webhookd read them: lost for webhooks; raise events_max or keep "
                 "webhookd running", count, n == 1 ? "" : "s",
                 r->element[1]->str, r->element[2]->str[0] ? r->element[2]->str : "the end", RG_KEY_EVENTS);
    }
    freeReplyObject(r);
    return 0;
}

/* --- sending ----------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    post *p = arg;
    size_t n = size * nmemb, room = sizeof p->resp - 1 - p->resplen;
    if (room > 0) {
        size_t k = n < room ? n : room;
        memcpy(p->resp + p->resplen, data, k);
        p->resplen += k;
        p->resp[p->resplen] = '\0';
    }
    return n;
}

static const char *secret_for(const char *scope)
{
    if (scope[0] && g.accounts) {
        const rg_account *a = rg_accounts_by_name(g.accounts, scope);
        if (a && a->webhook_secret)
            return a->webhook_secret;
    }
    return g.cfg->webhooks.secret;
}

static void post_free(post *p)
{
    if (p->h) {
        curl_multi_remove_handle(g.multi, p->h);
        curl_easy_cleanup(p->h);
    }
    curl_slist_free_all(p->hdrs);
    free(p->body.s);
    free(p->url);
    for (size_t i = 0; i < p->nsegs; i++) {
        free(p->segs[i].queue);
        free(p->segs[i].token);
    }
    free(p->segs);
    free(p);
}

/* Start a built POST: body "[...]", headers, signature, into the multi handle. */
static void post_start(post *p)
{
    const rg_webhooks_conf *w = &g.cfg->webhooks;
    char sig[RG_WH_SIGNATURE_MAX], hdr[64];

    rg_buf_add(&p->body, "]", 1);
    if (rg_wh_signature(secret_for(p->scope), (long)time(NULL), p->body.s, p->body.len, sig,
                        sizeof sig) < 0)
        rg_panic("HMAC-SHA256 failed");
    p->hdrs = curl_slist_append(p->hdrs, "Content-Type: application/json");
    p->hdrs = curl_slist_append(p->hdrs, "Expect:");   /* no 100-continue round trip */
    p->hdrs = curl_slist_append(p->hdrs, sig);
    snprintf(hdr, sizeof hdr, "X-Relayguard-Events: %zu", p->nevents);
    p->hdrs = curl_slist_append(p->hdrs, hdr);

    p->h = curl_easy_init();
    if (p->h == NULL || p->hdrs == NULL)
        rg_panic("libcurl: out of memory");
    curl_easy_setopt(p->h, CURLOPT_URL, p->url);
    curl_easy_setopt(p->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(p->h, CURLOPT_POST, 1L);
    curl_easy_setopt(p->h, CURLOPT_POSTFIELDS, p->body.s);
    curl_easy_setopt(p->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->body.len);
    curl_easy_setopt(p->h, CURLOPT_HTTPHEADER, p->hdrs);
    curl_easy_setopt(p->h, CURLOPT_USERAGENT, IDENT "/" PACKAGE_VERSION);
    curl_easy_setopt(p->h, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(p->h, CURLOPT_CONNECTTIMEOUT_MS, (long)w->connect_timeout_ms);
    curl_easy_setopt(p->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(p->h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(p->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(p->h, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(p->h, CURLOPT_ERRORBUFFER, p->errbuf);
    curl_easy_setopt(p->h, CURLOPT_PRIVATE, p);
    p->started_ms = now_ms();
    if (curl_multi_add_handle(g.multi, p->h) != CURLM_OK)
        rg_panic("curl_multi_add_handle failed");
    p->next = g.sending;
    g.sending = p;
    g.inflight++;
}

/* Lease ready queues and start their POSTs.  Queues -1 on a store error. */
static long claim(void)
{
    const rg_webhooks_conf *w = &g.cfg->webhooks;
    size_t room = w->concurrency > g.inflight ? w->concurrency - g.inflight : 0;
    char lease[24], maxq[24], maxe[24];

    if (room == 0)
        return 0;
    snprintf(lease, sizeof lease, "%llu", (unsigned long long)(2 * w->timeout_ms + 5000));
    snprintf(maxq, sizeof maxq, "%zu", room);      /* a queue never needs two POSTs */
    snprintf(maxe, sizeof maxe, "%u", w->batch_max);
    redisReply *r = rg_whq_script(g.q, RG_WHQ_CLAIM, 4,
                                  (const char *[]){ g.consumer, lease, maxq, maxe }, NULL);
    if (r == NULL)
        return -1;
    long nq = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 7)
            continue;
        const char *queue = e->element[0]->str, *url = e->element[2]->str;
        const char *scope = e->element[3]->str;
        const redisReply *items = e->element[6];
        nq++;
        /* join a POST of this destination with room, else open one */
        post *p;
        for (p = g.building; p; p = p->next)
            if (strncmp(p->dest, queue, 16) == 0 && p->nevents + items->elements <= w->batch_max)
                break;
        if (p == NULL) {
            p = rg_calloc(1, sizeof *p);
            memcpy(p->dest, queue, 16);
            p->url = rg_strdup(url);
            snprintf(p->scope, sizeof p->scope, "%s", scope);
            rg_buf_add(&p->body, "[", 1);
            p->next = g.building;
            g.building = p;
        }
        p->segs = rg_realloc(p->segs, (p->nsegs + 1) * sizeof *p->segs);
        p->segs[p->nsegs++] = (seg){ .queue = rg_strdup(queue), .token = rg_strdup(e->element[1]->str),
                                     .n = items->elements,
                                     .attempts = strtol(e->element[4]->str, NULL, 10) };
        for (size_t j = 0; j < items->elements; j++) {
            if (p->nevents++ > 0)
                rg_buf_add(&p->body, ",", 1);
            rg_buf_add(&p->body, items->element[j]->str, items->element[j]->len);
        }
    }
    freeReplyObject(r);
    while (g.building) {
        post *p = g.building;
        g.building = p->next;
        p->next = NULL;
        if (p->url[0] == '\0') {        /* cannot happen: destinations are written with their queues */
            snprintf(p->why, sizeof p->why, "unknown destination %s", p->dest);
            p->next = g.finished;
            g.finished = p;
            continue;
        }
        post_start(p);
    }
    return nq;
}

/* The wait before the next attempt after `attempts` earlier failures:
 * retry_initial doubled each time up to retry_max, +-20 % so that many
 * queues of one receiver do not come back at the same moment. */
static uint64_t backoff(long attempts)
{
    const rg_webhooks_conf *w = &g.cfg->webhooks;
    uint64_t wait = w->retry_initial_ms;
    for (long i = 0; i < attempts && wait < w->retry_max_ms; i++)
        wait *= 2;
    if (wait > w->retry_max_ms)
        wait = w->retry_max_ms;
    return wait * (80 + (uint64_t)(random() % 41)) / 100;
}

/* Record a finished POST's outcome in Redis.  0, or -1 (store error: keep it). */
static int record(post *p)
{
    for (size_t i = 0; i < p->nsegs; i++) {
        seg *s = &p->segs[i];
        if (s->recorded)
            continue;
        char n[24], wait[24], rfor[24];
        redisReply *r;
        snprintf(n, sizeof n, "%zu", s->n);
        uint64_t wms = backoff(s->attempts);
        if (p->ok) {
            r = rg_whq_script(g.q, RG_WHQ_DONE, 3, (const char *[]){ s->queue, s->token, n }, NULL);
        } else {
            snprintf(wait, sizeof wait, "%llu", (unsigned long long)wms);
            snprintf(rfor, sizeof rfor, "%llu", (unsigned long long)g.cfg->webhooks.retry_for_ms);
            r = rg_whq_script(g.q, RG_WHQ_FAIL, 6,
                              (const char *[]){ s->queue, s->token, n, p->why, wait, rfor }, NULL);
        }
        if (r == NULL)
            return -1;
        long long res = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        s->recorded = true;
        if (res == 0)
            rg_warn("warning: %s: queue %s: the lease ran out before the answer was recorded; "
                    "these %zu events may be sent again", p->url, s->queue, s->n);
        else if (!p->ok && res == 2)
            rg_error("error: %s: queue %s: %zu event%s moved to the dead letters after %ld "
                     "attempts: %s", p->url, s->queue, s->n, s->n == 1 ? "" : "s",
                     s->attempts + 1, p->why);
        else if (!p->ok)
            rg_warn("warning: %s: queue %s: deferred %zu event%s: %s (attempt %ld, next in %llu ms)",
                    p->url, s->queue, s->n, s->n == 1 ? "" : "s", p->why, s->attempts + 1,
                    (unsigned long long)wms);
    }
    return 0;
}

/* Collect finished transfers into g.finished with their outcome. */
static size_t collect(void)
{
    CURLMsg *m;
    int left;
    size_t n = 0;

    while ((m = curl_multi_info_read(g.multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        post *p = NULL;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&p);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (m->data.result != CURLE_OK) {
            snprintf(p->why, sizeof p->why, "%s", p->errbuf[0] ? p->errbuf : curl_easy_strerror(m->data.result));
        } else if (status >= 200 && status < 300) {
            p->ok = true;
        } else {
            char clean[RESPONSE_KEEP];
            p->resp[strcspn(p->resp, "\r\n")] = '\0';     /* the first line of the answer */
            rg_text_sanitize(p->resp, clean, sizeof clean);
            snprintf(p->why, sizeof p->why, "HTTP %ld%s%s", status, clean[0] ? ": " : "", clean);
        }
        if (p->ok)
            rg_info("%s: delivered %zu event%s, status=%ld, %llu ms", p->url, p->nevents,
                    p->nevents == 1 ? "" : "s", status,
                    (unsigned long long)(now_ms() - p->started_ms));
        curl_multi_remove_handle(g.multi, p->h);
        curl_easy_cleanup(p->h);
        p->h = NULL;
        g.inflight--;
        for (post **pp = &g.sending; *pp; pp = &(*pp)->next)
            if (*pp == p) {
                *pp = p->next;
                break;
            }
        p->next = g.finished;
        g.finished = p;
        n++;
    }
    return n;
}

/* Record every finished POST.  -1 when the store failed (they are kept). */
static int record_finished(void)
{
    while (g.finished) {
        post *p = g.finished;
        if (record(p) < 0)
            return -1;
        g.finished = p->next;
        post_free(p);
    }
    return 0;
}

/* --- configuration ------------------------------------------------------------ */

static rg_config *load_config(char *err, size_t errlen)
{
    rg_config *cfg = rg_config_load(g.config_path, err, errlen);
    if (cfg && cfg->webhooks.line == 0) {
        rg_seterr(err, errlen, "%s: no 'webhooks' block: nothing to do (see relayguard-webhookd(8))",
                  g.config_path);
        rg_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static void reload(void)
{
    char err[1024];
    rg_config *cfg;

    rg_info("SIGHUP: reloading %s", g.config_path);
    if ((cfg = load_config(err, sizeof err)) == NULL) {
        rg_error("error: reload: %s; keeping the old configuration", err);
        return;
    }
    if (strcmp(cfg->store_text, g.cfg->store_text) != 0)
        rg_whq_close(&g.q);     /* connect to the new store */
    rg_config_free(g.cfg);
    g.cfg = cfg;
    if (!g.debug)
        rg_log_set_level(cfg->log_level);
    curl_multi_setopt(g.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->webhooks.concurrency);
    g.acct_gen[0] = '\0';
    g.next_gen = 0;
}

/* --- main loop ---------------------------------------------------------------- */

static void run(void)
{
    uint64_t drain_until = 0;
    bool busy = true;

    for (;;) {
        uint64_t now = now_ms();
        if (g.hup) {
            g.hup = 0;
            reload();
        }
        if (g.stop && drain_until == 0) {
            rg_info("stopping: finishing %zu POST%s in flight", g.inflight, g.inflight == 1 ? "" : "s");
            drain_until = now + g.cfg->webhooks.timeout_ms + 5000;
        }
        if (g.stop && ((g.inflight == 0 && g.finished == NULL) || now > drain_until))
            break;

        bool worked = false, blocked = false;
        if (store_up()) {
            if (g.finished && record_finished() < 0) {
                store_lost();
                continue;
            }
            if (!g.stop && ensure_group() < 0 && g.q == NULL) {
                store_lost();
                continue;
            }
            if (!g.stop && g.q && now >= g.next_gen) {
                g.next_gen = now + GEN_CHECK_MS;
                if (refresh_accounts() < 0) {
                    store_lost();
                    continue;
                }
            }
            if (!g.stop && g.q && g.group_ok) {
                if (router_role() < 0) {
                    store_lost();
                    continue;
                }
            }
            if (!g.stop && g.q && g.group_ok && g.router) {
                long n;
                /* before reading: entries the capped stream dropped unread show
                 * only while the group is behind them (a full page last time) */
                if (!g.taking_over && (now >= g.next_lost || g.behind)) {
                    g.next_lost = now + LOST_CHECK_MS;
                    if (check_lost() < 0) {
                        store_lost();
                        continue;
                    }
                }
                if (g.taking_over) {
                    /* first what earlier routers read and did not route, in order */
                    n = autoclaim();
                } else {
                    /* block in Redis only when there is nothing else to wait for */
                    int block = !busy && g.inflight == 0 ? POLL_MS : 0;
                    n = route_new(block);
                    blocked = block > 0;
                }
                if (n < 0) {
                    store_lost();
                    continue;
                }
                worked |= n > 0;
            }
            if (!g.stop && g.q && g.group_ok) {
                if (g.q && (worked || busy || now_ms() >= g.next_claim)) {
                    long c = claim();
                    if (c < 0) {
                        store_lost();
                        continue;
                    }
                    worked |= c > 0;
                    g.next_claim = now_ms() + POLL_MS;
                }
            }
        }
        int running = 0;
        curl_multi_perform(g.multi, &running);
        worked |= collect() > 0;
        busy = worked;
        if (!worked && !blocked) {
            int wait = g.inflight > 0 ? 20 : POLL_MS;
            curl_multi_poll(g.multi, NULL, 0, wait, NULL);
        }
    }
    if (g.inflight > 0)
        rg_warn("warning: stopped with %zu POST%s unanswered; their events are sent again when "
                "the lease ends", g.inflight, g.inflight == 1 ? "" : "s");
}

/* On a clean stop, leave the group without pending entries of ours. */
static void leave_group(void)
{
    if (g.q == NULL)
        return;
    if (g.router) {     /* hand the role over at once rather than after claim_idle */
        redisReply *x = rg_whq_script(g.q, RG_WHQ_ROUTER, 2, (const char *[]){ g.consumer, "0" }, NULL);
        if (x)
            freeReplyObject(x);
        if (g.q == NULL)
            return;
    }
    const char *av[] = { "XPENDING", RG_KEY_EVENTS, RG_WH_GROUP, "-", "+", "1", g.consumer };
    redisReply *r = rg_whq_command(g.q, 7, av, NULL);
    if (r == NULL)
        return;
    bool none = r->type == REDIS_REPLY_ARRAY && r->elements == 0;
    freeReplyObject(r);
    if (!none)
        return;
    r = rg_whq_command(g.q, 5, (const char *[]){ "XGROUP", "DELCONSUMER", RG_KEY_EVENTS, RG_WH_GROUP,
                                                 g.consumer }, NULL);
    if (r)
        freeReplyObject(r);
}

int main(int argc, char **argv)
{
    char err[1024], *pidfile = NULL;
    rg_daemon_args a;
    int rc;

    if ((rc = rg_daemon_args_parse(argc, argv, IDENT, 0, usage, &a)) >= 0)
        return rc;
    g.config_path = a.config_path;
    g.debug = a.debug;
    if ((g.cfg = load_config(err, sizeof err)) == NULL) {
        fprintf(stderr, IDENT ": %s\n", err);
        free(g.config_path);
        return 1;
    }
    if (a.check_only) {
        printf(IDENT ": %s: configuration OK\n", g.config_path);
        rg_config_free(g.cfg);
        free(g.config_path);
        return 0;
    }

    rg_daemon_log_open(IDENT, &a, g.cfg);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        rg_fatal("libcurl: global initialisation failed");
    if (g.cfg->webhooks.pidfile)
        pidfile = rg_strdup(g.cfg->webhooks.pidfile);
    rg_daemon_enter(&a, g.cfg->log == RG_LOG_STDERR, pidfile, g.cfg->webhooks.user,
                    "webhooks.user");
    rg_daemon_signals(on_signal, 1);

    snprintf(g.consumer, sizeof g.consumer, "%s-%ld", g.cfg->node, (long)getpid());
    srandom((unsigned)(getpid() ^ time(NULL)));
    if ((g.multi = curl_multi_init()) == NULL)
        rg_fatal("libcurl: out of memory");
    curl_multi_setopt(g.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)g.cfg->webhooks.concurrency);

    rg_info("starting as consumer %s of %s, %zu global URL%s", g.consumer, RG_KEY_EVENTS,
            rg_strv_len(g.cfg->webhooks.urls), rg_strv_len(g.cfg->webhooks.urls) == 1 ? "" : "s");
    run();
    if (store_up()) {
        if (g.finished)
            record_finished();
        leave_group();
    }
    while (g.finished || g.sending) {
        post **l = g.finished ? &g.finished : &g.sending;
        post *p = *l;
        *l = p->next;
        post_free(p);
    }

    rg_whq_close(&g.q);
    curl_multi_cleanup(g.multi);
    curl_global_cleanup();
    rg_accounts_free(g.accounts);
    rg_config_free(g.cfg);
    if (pidfile && unlink(pidfile) < 0 && errno != ENOENT)
        rg_warn("warning: remove pidfile %s: %s", pidfile, strerror(errno));
    rg_info("stopped");
    free(pidfile);
    free(g.config_path);
    return 0;
}
