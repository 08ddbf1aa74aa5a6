/*
 * engine.c - the decision engine (see engine.h for the contract and
 * docs/architecture.md for the flow).
 *
 * A decision has two halves.  The static half runs here, in memory, on the
 * node's cached copy of the accounts: identity, sender domain, header From,
 * networks, countries, size.  The shared half runs in Redis as one atomic
 * script (decide.lua): suspension, suppression, limits, reservation or
 * charge, event and stats.  A static refusal still goes through the script
 * (op "log") so that every refusal is an event.
 *
 * The account cache is a refcounted snapshot: a decision keeps the snapshot
 * it started with until its callback has run, so a reload in the middle
 * never pulls an account from under it.  Thread-safe: the milter calls in
 * from many threads.
 */
#include "config.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "keys.h"
#include "localsub.h"
#include "log.h"
#include "metrics.h"
#include "util.h"
#include "verp.h"

#define LOAD_RETRY_MS 500       /* at most one account load attempt per this */

typedef struct snapshot {
    rg_accounts *set;
    long long gen;
    unsigned refs;
} snapshot;

struct rg_engine {
    const rg_config *cfg;
    rg_store *store;
    rg_clock *clock;
    rg_geoip *geo;
    pthread_mutex_t lock;
    snapshot *snap;             /* NULL until the first load */
    int loading;
    uint64_t last_load_ms;      /* monotonic */
    unsigned pending;
    bool lkey_ok;               /* local_key read: tokens can be verified */
    char lkey_err[320];         /* why not, for the log */
    rg_localsub_key lkey;       /* local_key (localsub.h) */
    /* rg_engine_new_lazy: the snapshot holds the accounts of one lookup */
    bool lazy;
    bool lazy_stale;            /* a reply saw a newer generation: look up again */
    char lazy_key[RG_ADDR_MAX + 4];     /* "l:LOGIN", "u:USER", "n:NAME", "c:" */
};

typedef struct decision {
    rg_engine *e;
    snapshot *snap;
    const rg_account *acct;
    rg_verdict_cb *cb;
    void *arg;
    rg_stage stage;
    const rg_limit **limits;
    size_t n_limits;
    size_t n_acct_limits;       /* limits[0 .. n_acct_limits) are the account's */
    unsigned char *owned;       /* after run_script: owned[i] = limits[i] is the account's */
    uint64_t t0;
    double started;             /* rg_metrics_now(), for the latency histogram */
    rg_verdict v;               /* static verdict for op "log" */
    int logged_only;            /* op "log": v is final whatever the script says */
    char qid[64], login[RG_NAME_MAX], client[64], country[3];
    char sender[RG_ADDR_MAX], rcpt[RG_ADDR_MAX];
    char script[RG_TEXT_MAX];   /* rg_request.script, "" if none */
    unsigned nrcpt;
    uint64_t size;
    char return_path[RG_ADDR_MAX];  /* EOM, managed bounces: given on accept, its record
                                       being written with the script */
} decision;

/* ------------------------------------------------------------ snapshots */

static snapshot *snap_get(rg_engine *e)
{
    pthread_mutex_lock(&e->lock);
    snapshot *s = e->snap;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&e->lock);
    return s;
}

static void snap_put(rg_engine *e, snapshot *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    unsigned left = --s->refs;
    pthread_mutex_unlock(&e->lock);
    if (left == 0) {
        rg_accounts_free(s->set);
        free(s);
    }
}

void rg_engine_set_accounts(rg_engine *e, rg_accounts *accounts, long long gen)
{
    snapshot *s = rg_calloc(1, sizeof *s);
    s->set = accounts;
    s->gen = gen;
    s->refs = 1;                /* the engine's own reference */
    pthread_mutex_lock(&e->lock);
    snapshot *old = e->snap;
    e->snap = s;
    pthread_mutex_unlock(&e->lock);
    snap_put(e, old);
}

static void on_accounts(void *arg, rg_accounts *set, long long gen, const char *err)
{
    rg_engine *e = arg;
    pthread_mutex_lock(&e->lock);
    e->loading = 0;
    pthread_mutex_unlock(&e->lock);
    if (set == NULL) {
        rg_warn("cannot load accounts: %s", err ? err : "unknown error");
        return;
    }
    rg_info("loaded %zu accounts (generation %lld)", rg_accounts_count(set), gen);
    rg_engine_set_accounts(e, set, gen);
}

/* Start a load unless one runs or one was tried very recently. */
static void maybe_load(rg_engine *e, int force)
{
    uint64_t now = rg_monotonic_ms();
    pthread_mutex_lock(&e->lock);
    if (e->lazy) {
        /* lazy: the next request that needs accounts looks them up again */
        e->lazy_stale = true;
        pthread_mutex_unlock(&e->lock);
        return;
    }
    if (e->loading || (!force && now - e->last_load_ms < LOAD_RETRY_MS)) {
        pthread_mutex_unlock(&e->lock);
        return;
    }
    e->loading = 1;
    e->last_load_ms = now;
    pthread_mutex_unlock(&e->lock);
    e->store->load_accounts(e->store, on_accounts, e);
}

/*
 * A reply carried the accounts generation gen.  Newer than the accounts in
 * use: load now (unless a load runs; its reply or the next one tells if it
 * was new enough), not after LOAD_RETRY_MS, so a change takes effect on the
 * next decision.  Different but not newer (Redis restored or flushed): load,
 * at most once per LOAD_RETRY_MS.
 */
static void gen_seen(rg_engine *e, long long gen)
{
    pthread_mutex_lock(&e->lock);
    long long have = e->snap ? e->snap->gen : -1;
    pthread_mutex_unlock(&e->lock);
    if (gen > have)
        maybe_load(e, 1);
    else if (gen != have)
        maybe_load(e, 0);
}

void rg_engine_refresh_accounts(rg_engine *e)
{
    maybe_load(e, 1);
}

int rg_engine_ready(const rg_engine *e)
{
    rg_engine *m = (rg_engine *)e;
    pthread_mutex_lock(&m->lock);
    int ready = m->snap != NULL;
    pthread_mutex_unlock(&m->lock);
    return ready;
}

/* ------------------------------------------------------- lazy lookups */

typedef struct lazy_ctx {
    rg_engine *e;
    const char *key;
} lazy_ctx;

static void on_lazy_accounts(void *arg, rg_accounts *set, long long gen, const char *err)
{
    lazy_ctx *c = arg;
    rg_engine *e = c->e;
    if (set == NULL) {
        /* Never decide on another lookup's accounts: without these, the
         * request gets the store-error verdict and the next one retries. */
        rg_warn("cannot look up accounts (%s): %s", c->key, err ? err : "unknown error");
        pthread_mutex_lock(&e->lock);
        snapshot *old = e->snap;
        e->snap = NULL;
        e->lazy_key[0] = '\0';
        pthread_mutex_unlock(&e->lock);
        snap_put(e, old);
        return;
    }
    rg_info("looked up %zu account(s) for %s (generation %lld)", rg_accounts_count(set), c->key,
             gen);
    rg_engine_set_accounts(e, set, gen);
    pthread_mutex_lock(&e->lock);
    /* "-" (a key too long to keep) is never a hit: kept as "" */
    rg_strlcpy(e->lazy_key, strcmp(c->key, "-") == 0 ? "" : c->key, sizeof e->lazy_key);
    e->lazy_stale = false;
    pthread_mutex_unlock(&e->lock);
}

/* Make the snapshot hold the accounts of (kind, key), unless it already
 * does for the current generation.  The store is blocking: done on return. */
static void lazy_fetch(rg_engine *e, rg_account_lookup kind, const char *key)
{
    char want[sizeof e->lazy_key];
    if ((size_t)snprintf(want, sizeof want, "%c:%s", rg_lookup_tag(kind), key) >= sizeof want) {
        rg_strlcpy(want, "-", sizeof want);     /* absurd length: look up, never cache */
    }
    pthread_mutex_lock(&e->lock);
    /* "*": every account, from before rg_engine_go_lazy */
    int have = e->snap && !e->lazy_stale &&
               (strcmp(e->lazy_key, want) == 0 || strcmp(e->lazy_key, "*") == 0);
    pthread_mutex_unlock(&e->lock);
    if (have)
        return;
    lazy_ctx c = { e, want };
    e->store->load_some(e->store, kind, key, on_lazy_accounts, &c);
}

/* The lookup identify() needs for req (its order: login, unix user, local
 * token, client address).  A local token names its login only once
 * verified, so it falls back to reading every account, for good. */
static void lazy_prepare(rg_engine *e, const rg_request *req)
{
    if (req->sasl_username && req->sasl_username[0]) {
        lazy_fetch(e, RG_LOOKUP_LOGIN, req->sasl_username);
    } else if (req->local_user && req->local_user[0]) {
        lazy_fetch(e, RG_LOOKUP_LOCAL_USER, req->local_user);
    } else if (req->local_token && req->local_token[0]) {
        pthread_mutex_lock(&e->lock);
        e->lazy = false;
        pthread_mutex_unlock(&e->lock);
        maybe_load(e, 1);
    } else {
        lazy_fetch(e, RG_LOOKUP_CLIENTS, "");
    }
}

void rg_engine_go_lazy(rg_engine *e)
{
    pthread_mutex_lock(&e->lock);
    if (!e->lazy && e->store->load_some != NULL) {
        e->lazy = true;
        e->lazy_stale = false;
        rg_strlcpy(e->lazy_key, e->snap ? "*" : "", sizeof e->lazy_key);
    }
    pthread_mutex_unlock(&e->lock);
}

long long rg_engine_generation(const rg_engine *e)
{
    rg_engine *m = (rg_engine *)e;
    pthread_mutex_lock(&m->lock);
    long long gen = m->snap ? m->snap->gen : -1;
    pthread_mutex_unlock(&m->lock);
    return gen;
}

static int lazy_on(rg_engine *e)
{
    pthread_mutex_lock(&e->lock);
    int on = e->lazy;
    pthread_mutex_unlock(&e->lock);
    return on;
}

void rg_engine_with_account(rg_engine *e, const char *name,
                            void (*fn)(void *arg, const rg_account *a), void *arg)
{
    if (name && name[0] && lazy_on(e)) {
        snapshot *cur = snap_get(e);
        int have = cur && rg_accounts_by_name(cur->set, name) != NULL;
        snap_put(e, cur);
        pthread_mutex_lock(&e->lock);
        have = have && !e->lazy_stale;
        pthread_mutex_unlock(&e->lock);
        if (!have)
            lazy_fetch(e, RG_LOOKUP_NAME, name);
    }
    snapshot *s = snap_get(e);
    fn(arg, (s && name) ? rg_accounts_by_name(s->set, name) : NULL);
    snap_put(e, s);
}

unsigned rg_engine_pending(const rg_engine *e)
{
    rg_engine *m = (rg_engine *)e;
    pthread_mutex_lock(&m->lock);
    unsigned n = m->pending;
    pthread_mutex_unlock(&m->lock);
    return n;
}

static rg_engine *engine_make(const rg_config *cfg, rg_store *store, rg_clock *clock,
                              rg_geoip *geo, bool lazy, char *err, size_t errlen);

rg_engine *rg_engine_new(const rg_config *cfg, rg_store *store, rg_clock *clock,
                         rg_geoip *geo, char *err, size_t errlen)
{
    return engine_make(cfg, store, clock, geo, false, err, errlen);
}

rg_engine *rg_engine_new_lazy(const rg_config *cfg, rg_store *store, rg_clock *clock,
                              rg_geoip *geo, char *err, size_t errlen)
{
    bool lazy = store != NULL && store->load_some != NULL;
    return engine_make(cfg, store, clock, geo, lazy, err, errlen);
}

static rg_engine *engine_make(const rg_config *cfg, rg_store *store, rg_clock *clock,
                              rg_geoip *geo, bool lazy, char *err, size_t errlen)
{
    if (cfg == NULL || store == NULL || clock == NULL) {
        snprintf(err, errlen, "engine: missing config, store or clock");
        return NULL;
    }
    rg_engine *e = rg_calloc(1, sizeof *e);
    e->cfg = cfg;
    e->store = store;
    e->clock = clock;
    e->geo = geo;
    pthread_mutex_init(&e->lock, NULL);
    /* A key that cannot be read is not fatal: only local submission
     * depends on it, and the Exim module or relayguard-policyd (started per
     * message, as other users) never need it.  Each token that cannot be
     * verified says why in its own log line. */
    if (cfg->local.key_path == NULL) {
        rg_strlcpy(e->lkey_err, "no local_key in the configuration", sizeof e->lkey_err);
    } else if (rg_localsub_key_load(cfg->local.key_path, &e->lkey, e->lkey_err,
                                    sizeof e->lkey_err) == 0) {
        e->lkey_ok = true;
    } else {
        rg_debug("%s; %s headers cannot be verified", e->lkey_err, RG_LOCALSUB_HEADER);
    }
    e->lazy = lazy;             /* lazy: nothing read before the first request */
    maybe_load(e, 1);
    return e;
}

void rg_engine_free(rg_engine *e)
{
    if (e == NULL)
        return;
    if (e->pending)
        rg_warn("engine freed with %u decisions pending", e->pending);
    snapshot *s = e->snap;
    e->snap = NULL;
    snap_put(e, s);
    pthread_mutex_destroy(&e->lock);
    rg_localsub_key_clear(&e->lkey);
    free(e);
}

/* ------------------------------------------------------------- verdicts */

static void set_verdict(rg_verdict *v, rg_action action, int code, const char *dsn,
                        const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void set_verdict(rg_verdict *v, rg_action action, int code, const char *dsn,
                        const char *reason, const char *fmt, ...)
{
    v->action = action;
    v->code = code;
    rg_strlcpy(v->dsn, dsn, sizeof v->dsn);
    rg_strlcpy(v->reason, reason, sizeof v->reason);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->text, sizeof v->text, fmt, ap);
    va_end(ap);
}

static void set_store_error(const rg_engine *e, rg_verdict *v, const char *why)
{
    if (e->cfg->on_store_error == RG_ON_ERROR_ACCEPT) {
        set_verdict(v, RG_ACCEPT, 250, "2.0.0", "store_error",
                    "accepted without checks: policy store unavailable (%s)", why);
    } else {
        set_verdict(v, RG_TEMPFAIL, 451, "4.3.0", "store_error",
                    "relayguard: policy store unavailable, try again later");
    }
}

/* "100/1h" for a limit. */
static void limit_rate_text(const rg_limit *l, char *buf, size_t len)
{
    if (l->kind == RG_LIMIT_QUOTA) {
        static const char *unit[] = { "h", "d", "mo" };
        snprintf(buf, len, "%" PRIu64 "/%u%s", l->count, l->win_mult, unit[l->win_unit]);
        return;
    }
    uint64_t p = l->period_ms;
    if (p % 86400000 == 0)
        snprintf(buf, len, "%" PRIu64 "/%" PRIu64 "d", l->count, p / 86400000);
    else if (p % 3600000 == 0)
        snprintf(buf, len, "%" PRIu64 "/%" PRIu64 "h", l->count, p / 3600000);
    else if (p % 60000 == 0)
        snprintf(buf, len, "%" PRIu64 "/%" PRIu64 "m", l->count, p / 60000);
    else
        snprintf(buf, len, "%" PRIu64 "/%" PRIu64 "s", l->count, p / 1000);
}

static void limit_verdict(const decision *d, size_t i, uint64_t retry_ms, rg_verdict *v)
{
    const rg_limit *l = d->limits[i];
    char rate[64], owner[RG_ADDR_MAX + 32], wait[64];
    limit_rate_text(l, rate, sizeof rate);
    const char *kind = l->kind == RG_LIMIT_RATE ? "rate limit" : "quota";
    /* a relayguard.conf limit belongs to the relay, not to the account */
    const char *acct = d->acct && d->owned[i] ? d->acct->name : "";
    switch (l->scope) {
    case RG_SCOPE_DOMAIN:
        snprintf(owner, sizeof owner, "sender domain %s%s%s", rg_addr_domain(d->sender),
                 acct[0] ? " of account " : "", acct);
        break;
    case RG_SCOPE_IP:
        snprintf(owner, sizeof owner, "client %s%s%s", d->client,
                 acct[0] ? " of account " : "", acct);
        break;
    case RG_SCOPE_GLOBAL:
        snprintf(owner, sizeof owner, "this relay");
        break;
    default:
        snprintf(owner, sizeof owner, "account %s", acct);
    }
    const char *reason = l->kind == RG_LIMIT_RATE ? "rate_limit" : "quota";
    if (l->hard) {
        set_verdict(v, RG_REJECT, 550, "5.7.1", reason, "%s %s (%s) of %s reached",
                    kind, l->name, rate, owner);
    } else {
        rg_duration_format(retry_ms, wait, sizeof wait);
        set_verdict(v, RG_TEMPFAIL, 451, "4.7.1", reason,
                    "%s %s (%s) of %s reached, try again in %s", kind, l->name, rate, owner, wait);
    }
    v->retry_after_ms = retry_ms;
}

/* ------------------------------------------------------------- finishing */

/* Stage as Postfix writes it in its log lines ("RCPT", "END-OF-MESSAGE"). */
static const char *stage_log_name(rg_stage s)
{
    switch (s) {
    case RG_STAGE_CONNECT: return "CONNECT";
    case RG_STAGE_MAIL: return "MAIL";
    case RG_STAGE_RCPT: return "RCPT";
    case RG_STAGE_HEADER: return "END-OF-HEADERS";
    case RG_STAGE_EOM: return "END-OF-MESSAGE";
    }
    return "?";
}

static void log_decision(const decision *d, const rg_verdict *v)
{
    int prio = (v->action == RG_ACCEPT || v->action == RG_DUNNO) ? LOG_INFO : LOG_NOTICE;
    if (strcmp(v->reason, "store_error") == 0)
        prio = LOG_WARNING;
    if (!rg_log_enabled(prio))
        return;
    char extra[RG_ADDR_MAX * 2 + 256];
    int n = snprintf(extra, sizeof extra, "account=%s", d->acct ? d->acct->name : "-");
    if (d->login[0] && n > 0 && (size_t)n < sizeof extra)
        n += snprintf(extra + n, sizeof extra - (size_t)n, " login=%s", d->login);
    if (n > 0 && (size_t)n < sizeof extra)
        n += snprintf(extra + n, sizeof extra - (size_t)n, " from=<%s>", d->sender);
    if (d->rcpt[0] && n > 0 && (size_t)n < sizeof extra)
        n += snprintf(extra + n, sizeof extra - (size_t)n, " to=<%s>", d->rcpt);
    if (d->nrcpt && n > 0 && (size_t)n < sizeof extra)
        n += snprintf(extra + n, sizeof extra - (size_t)n, " nrcpt=%u", d->nrcpt);
    if (d->size && n > 0 && (size_t)n < sizeof extra)
        n += snprintf(extra + n, sizeof extra - (size_t)n, " size=%" PRIu64, d->size);
    if (v->return_path[0] && n > 0 && (size_t)n < sizeof extra)
        snprintf(extra + n, sizeof extra - (size_t)n, " return_path=<%s>", v->return_path);
    const char *qid = d->qid[0] ? d->qid : "NOQUEUE";
    const char *client = d->client[0] ? d->client : "local";
    if (v->action == RG_ACCEPT || v->action == RG_DUNNO) {
        if (strcmp(v->reason, "store_error") == 0)
            rg_log(prio, "%s: accept: %s from %s: %s; %s", qid, stage_log_name(d->stage), client,
                   v->text, extra);
        else
            rg_log(prio, "%s: %s: %s from %s; %s", qid, rg_action_name(v->action),
                   stage_log_name(d->stage), client, extra);
    } else {
        rg_log(prio, "%s: %s: %s from %s: %d %s %s; %s", qid, rg_action_name(v->action),
               stage_log_name(d->stage), client, v->code, v->dsn, v->text, extra);
    }
}

static void finish(decision *d, rg_verdict *v)
{
    rg_engine *e = d->e;
    if (d->acct)
        rg_strlcpy(v->account, d->acct->name, sizeof v->account);
    log_decision(d, v);
    rg_metrics_decision(v, rg_metrics_now() - d->started);
    d->cb(d->arg, v);
    snap_put(e, d->snap);
    free(d->limits);
    free(d->owned);
    free(d);
    pthread_mutex_lock(&e->lock);
    e->pending--;
    pthread_mutex_unlock(&e->lock);
}

static void on_script(void *arg, const rg_store_reply *r)
{
    decision *d = arg;
    rg_engine *e = d->e;
    rg_verdict v;
    memset(&v, 0, sizeof v);

    if (r->status != 0) {
        rg_metrics_store_error();
        if (d->logged_only) {
            /* The refusal stands; only its event is lost. */
            rg_warn("event not recorded: %s", r->err);
            v = d->v;
        } else {
            rg_warn("%s: store error: %s", d->qid[0] ? d->qid : "NOQUEUE", r->err);
            set_store_error(e, &v, r->err);
        }
        finish(d, &v);
        return;
    }
    if (d->snap)
        gen_seen(e, r->gen);    /* accounts changed somewhere: refresh */

    if (d->logged_only) {
        v = d->v;
    } else if (strcmp(r->outcome, "ok") == 0 || strcmp(r->outcome, "dup") == 0) {
        set_verdict(&v, RG_ACCEPT, 250, "2.0.0", "ok", "%s", "ok");
        /* the record went ahead of the script in the same round trip: written */
        rg_strlcpy(v.return_path, d->return_path, sizeof v.return_path);
    } else if (strcmp(r->outcome, "suspended") == 0) {
        set_verdict(&v, RG_REJECT, 550, "5.7.1", "suspended", "account %s is suspended",
                    d->acct->name);
    } else if (strcmp(r->outcome, "suppressed") == 0) {
        char date[32] = "?";
        time_t since = (time_t)strtoll(r->arg[2], NULL, 10);
        struct tm tm;
        if (since > 0 && gmtime_r(&since, &tm))
            strftime(date, sizeof date, "%Y-%m-%d", &tm);
        set_verdict(&v, RG_REJECT, 550, "5.7.1", "suppressed", "<%s>: suppressed (%s since %s)",
                    d->rcpt, r->arg[1], date);
    } else if (strcmp(r->outcome, "limit") == 0) {
        long idx = strtol(r->arg[0], NULL, 10);
        uint64_t retry = strtoull(r->arg[1], NULL, 10);
        if (idx < 1 || (size_t)idx > d->n_limits) {
            set_store_error(e, &v, "bad limit index from script");
        } else {
            limit_verdict(d, (size_t)idx - 1, retry, &v);
        }
    } else {
        char why[64];
        snprintf(why, sizeof why, "unknown outcome '%.20s'", r->outcome);
        set_store_error(e, &v, why);
    }
    finish(d, &v);
}

/* -------------------------------------------------------------- checks */

/* Static checks for MAIL and later stages.  Returns 1 and fills v on refusal. */
static int check_sender(rg_engine *e, decision *d, const rg_request *req, rg_verdict *v)
{
    const rg_account *a = d->acct;
    char addr[RG_ADDR_MAX];
    if (rg_addr_normalize(req->sender ? req->sender : "", addr, sizeof addr) < 0) {
        set_verdict(v, RG_REJECT, 553, "5.1.7", "sender_domain",
                    "bad sender address syntax for account %s", a->name);
        return 1;
    }
    if (addr[0] == '\0') {
        set_verdict(v, RG_REJECT, 553, "5.7.1", "sender_domain",
                    "the null sender <> is not allowed for account %s", a->name);
        return 1;
    }
    const char *dom = rg_addr_domain(addr);
    if (!rg_account_allows_domain(a, dom)) {
        set_verdict(v, RG_REJECT, 553, "5.7.1", "sender_domain",
                    "<%s>: sender domain %s is not allowed for account %s", addr, dom, a->name);
        return 1;
    }
    if (d->client[0]) {
        rg_cidr ip;
        if (a->n_networks > 0) {
            if (rg_ip_parse(d->client, &ip) < 0 || !rg_account_allows_network(a, &ip)) {
                set_verdict(v, RG_REJECT, 550, "5.7.1", "network",
                            "client address %s is not allowed for account %s", d->client, a->name);
                return 1;
            }
        }
        if (a->countries[0]) {
            if (e->geo == NULL) {
                set_verdict(v, RG_TEMPFAIL, 451, "4.3.0", "geoip_error",
                            "relayguard: country check unavailable (no geoip_db), try again later");
                return 1;
            }
            if (d->country[0] == '\0') {
                set_verdict(v, RG_REJECT, 550, "5.7.1", "country",
                            "client address %s has no known country; account %s sends only from listed countries",
                            d->client, a->name);
                return 1;
            }
            if (!rg_account_allows_country(a, d->country)) {
                set_verdict(v, RG_REJECT, 550, "5.7.1", "country",
                            "client country %s (%s) is not allowed for account %s", d->country,
                            d->client, a->name);
                return 1;
            }
        }
    }
    if (a->max_size && req->size > a->max_size) {
        set_verdict(v, RG_REJECT, 552, "5.3.4", "size",
                    "message size %" PRIu64 " exceeds the limit of %" PRIu64 " bytes for account %s",
                    req->size, a->max_size, a->name);
        return 1;
    }
    return 0;
}

static int check_header_from(decision *d, const rg_request *req, rg_verdict *v)
{
    char addr[RG_ADDR_MAX];
    int n = rg_header_from_addr(req->header_from ? req->header_from : "", addr, sizeof addr);
    if (n == 0) {
        set_verdict(v, RG_REJECT, 550, "5.7.1", "header_from", "message has no From header address");
        return 1;
    }
    if (n < 0) {
        set_verdict(v, RG_REJECT, 550, "5.7.1", "header_from",
                    "message From header has several or unreadable addresses");
        return 1;
    }
    const char *dom = rg_addr_domain(addr);
    if (!rg_account_allows_domain(d->acct, dom)) {
        set_verdict(v, RG_REJECT, 550, "5.7.1", "header_from",
                    "header From domain %s is not allowed for account %s", dom, d->acct->name);
        return 1;
    }
    return 0;
}

/*
 * The unix login of a local submission from its X-Relayguard-Local token
 * (localsub.h).  1 with login set: a valid token; 0: no token, or one that
 * is not valid (logged with the queue id, and ignored); -1: no key to
 * verify with.  Logged at every stage but the last, where it was already.
 */
static int local_token_login(const decision *d, const char *token, char *login, size_t len)
{
    const rg_engine *e = d->e;
    const char *qid = d->qid[0] ? d->qid : "NOQUEUE";
    int say = d->stage != RG_STAGE_EOM;
    rg_localsub_id id;

    if (token[0] == '\0')
        return 0;
    if (!e->lkey_ok) {
        if (say)
            rg_warn("%s: cannot verify the %s header: %s", qid, RG_LOCALSUB_HEADER, e->lkey_err);
        return -1;
    }
    int64_t now = (int64_t)(e->clock->now_ms(e->clock) / 1000);
    rg_localsub_status st = rg_localsub_verify(&e->lkey, token, now, e->cfg->local.max_age_ms, &id);
    if (st != RG_LOCALSUB_OK) {
        if (say)
            rg_log(LOG_NOTICE, "%s: ignoring the %s header: %s (uid=%lu login=%s)", qid,
                      RG_LOCALSUB_HEADER, rg_localsub_status_text(st), id.uid,
                      id.login[0] ? id.login : "-");
        return 0;
    }
    rg_strlcpy(login, id.login, len);
    return 1;
}

/* Identify the account.  Returns the account, or NULL with v set
 * (RG_DUNNO for an unauthenticated client that no account claims). */
static const rg_account *identify(const snapshot *s, decision *d, const rg_request *req, rg_verdict *v)
{
    const rg_account *a;
    char token_login[RG_LOCALSUB_LOGIN_MAX + 1];
    if (req->local_token && !(req->sasl_username && req->sasl_username[0]) &&
        !(req->local_user && req->local_user[0])) {
        int r = local_token_login(d, req->local_token, token_login, sizeof token_login);
        if (r == 1) {
            a = rg_accounts_by_local_user(s->set, token_login);
            if (a == NULL)
                a = rg_accounts_by_name(s->set, "default");
            if (a == NULL)
                set_verdict(v, RG_REJECT, 550, "5.7.1", "unknown_account",
                            "local user %s has no relay account", token_login);
            return a;
        }
        if (d->e->cfg->local.required) {
            if (r < 0)
                set_verdict(v, RG_TEMPFAIL, 451, "4.3.5", "local_token",
                            "relayguard: local submission cannot be verified, try again later");
            else
                set_verdict(v, RG_REJECT, 550, "5.7.1", "local_token",
                            "local submission without a valid %s header "
                            "(submit through relayguard-sendmail)", RG_LOCALSUB_HEADER);
            return NULL;
        }
        /* optional: identified like any client without a token */
    }
    if (req->sasl_username && req->sasl_username[0]) {
        a = rg_accounts_by_login(s->set, req->sasl_username);
        if (a == NULL)
            a = rg_accounts_by_name(s->set, "default");
        if (a == NULL)
            set_verdict(v, RG_REJECT, 550, "5.7.1", "unknown_account",
                        "login %s has no relay account", d->login);
        return a;
    }
    if (req->local_user && req->local_user[0]) {
        a = rg_accounts_by_local_user(s->set, req->local_user);
        if (a == NULL)
            a = rg_accounts_by_name(s->set, "default");
        if (a == NULL)
            set_verdict(v, RG_REJECT, 550, "5.7.1", "unknown_account",
                        "local user %s has no relay account", req->local_user);
        return a;
    }
    rg_cidr ip;
    if (d->client[0] && rg_ip_parse(d->client, &ip) == 0) {
        a = rg_accounts_by_client(s->set, &ip);
        if (a)
            return a;
    }
    set_verdict(v, RG_DUNNO, 250, "2.0.0", "no_account", "%s", "no account for this client");
    return NULL;
}

/* ------------------------------------------------------------- the call */

/* Script arguments live here while the call is built. */
typedef struct argbuf {
    const char **argv;
    int argc;
    char (*num)[48];
    int nnum;
} argbuf;

static const char *num(argbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *num(argbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->num[b->nnum], sizeof b->num[0], fmt, ap);
    va_end(ap);
    return b->num[b->nnum++];
}

static void run_script(rg_engine *e, decision *d, const char *op, const rg_request *req,
                       const rg_store_record *rec)
{
    uint64_t now = e->clock->now_ms(e->clock);
    size_t nl = d->logged_only ? 0 : d->n_limits;
    argbuf b;
    b.argc = 0;
    b.nnum = 0;
    /* on the stack for the usual few limits: no malloc per decision */
    enum { NL_STACK = 4 };
    const char *argv_s[21 + 2 * NL_STACK + 4];
    char num_s[10][48], bucket_s[NL_STACK + 1][512], def_s[NL_STACK + 1][160];
    int small = nl <= NL_STACK;
    b.argv = small ? argv_s : rg_calloc(21 + 2 * nl + 4, sizeof *b.argv);
    b.num = num_s;
    char (*bucket)[512] = small ? bucket_s : rg_calloc(nl + 1, sizeof *bucket);
    char (*def)[160] = small ? def_s : rg_calloc(nl + 1, sizeof *def);
    char msgkey[RG_NAME_MAX * 2 + 2] = "";
    if (req->msg_id && req->msg_id[0])
        snprintf(msgkey, sizeof msgkey, "%s:%s", e->cfg->node, req->msg_id);
    char hour[16];
    time_t t = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(hour, sizeof hour, "%Y%m%d%H", &tm);

    const char *acct = d->acct ? d->acct->name : "";
    const rg_verdict *v = &d->v;
    /* the layout is decide.lua's header */
    b.argv[b.argc++] = op;
    b.argv[b.argc++] = num(&b, "%" PRIu64, now);
    b.argv[b.argc++] = e->cfg->node;
    b.argv[b.argc++] = msgkey;
    b.argv[b.argc++] = d->qid;
    b.argv[b.argc++] = acct;
    b.argv[b.argc++] = d->login;
    b.argv[b.argc++] = d->client;
    b.argv[b.argc++] = d->country;
    b.argv[b.argc++] = d->sender;
    b.argv[b.argc++] = d->rcpt;
    b.argv[b.argc++] = num(&b, "%u", d->nrcpt);
    b.argv[b.argc++] = num(&b, "%" PRIu64, d->size);
    b.argv[b.argc++] = rg_stage_name(d->stage);
    b.argv[b.argc++] = num(&b, "%" PRIu64, e->cfg->events_max);
    b.argv[b.argc++] = num(&b, "%" PRIu64, e->cfg->reservation_ttl_ms);
    b.argv[b.argc++] = hour;
    b.argv[b.argc++] = d->script;       /* the originating script, for the event ("" if none) */
    /* Suspension as this snapshot has it; the script reads the account's
     * field only when the snapshot's generation is not the current one. */
    b.argv[b.argc++] = num(&b, "%lld", d->snap ? d->snap->gen : -1LL);
    b.argv[b.argc++] = d->acct && d->acct->suspended ? "1" : "0";

    size_t used = 0;
    const char *dom = rg_addr_domain(d->sender);
    for (size_t i = 0; i < nl; i++) {
        const rg_limit *l = d->limits[i];
        /* an account's limit lives under the account, a relayguard.conf one
         * under "g", whatever its scope */
        const char *owner = i < d->n_acct_limits ? acct : NULL;
        if (rg_bucket_id(l, owner, dom, d->client, bucket[used], sizeof bucket[0]) < 0)
            continue;   /* an id that cannot be built (absurd lengths) is skipped */
        if (l->scope == RG_SCOPE_IP && d->client[0] == '\0')
            continue;   /* local submission has no client address */
        d->limits[used] = l;
        d->owned[used] = owner != NULL;
        used++;
    }
    d->n_limits = used;
    b.argv[b.argc++] = num(&b, "%zu", used);
    for (size_t i = 0; i < used; i++) {
        const rg_limit *l = d->limits[i];
        uint64_t T = 0, tau = 0, wend = 0, wstart = 0;
        char win[32] = "-";
        if (l->kind == RG_LIMIT_RATE) {
            T = l->period_ms * 1000 / l->count;
            tau = (l->burst ? l->burst : l->count) * T;
        } else {
            rg_window_bounds(l, now, &wstart, &wend, win, sizeof win);
        }
        /* one string per limit: the script parses each distinct one once a batch */
        snprintf(def[i], sizeof def[0], "%c %c %" PRIu64 " %" PRIu64 " %" PRIu64 " %s %" PRIu64 " %c",
                 l->kind == RG_LIMIT_RATE ? 'r' : 'q', l->unit == RG_UNIT_RCPT ? 'r' : 'm',
                 l->count, T, tau, win, wend, l->hard ? '1' : '0');
        b.argv[b.argc++] = bucket[i];
        b.argv[b.argc++] = def[i];
    }
    if (d->logged_only) {
        /* op log: the engine's own verdict, for the event */
        b.argv[b.argc++] = rg_action_name(v->action);
        b.argv[b.argc++] = num(&b, "%d", v->code);
        b.argv[b.argc++] = v->reason;
        b.argv[b.argc++] = v->text;
    }
    /* The managed return path's token id (its record rg:v:ID) for the
     * end-of-message event, after everything decide.lua reads (the script
     * steps over a decision's arguments by their count, so it is ignored
     * until the script puts it in the event).  rec is never given with
     * op "log", so this uses a slot of the four kept for it. */
    if (rec && !d->logged_only)
        b.argv[b.argc++] = rec->key + strlen(RG_KEY_VERP);
    /* The store copies the arguments before it returns (or calls back). */
    if (rec)
        e->store->decide_record(e->store, rec, b.argc, b.argv, on_script, d);
    else
        e->store->decide(e->store, b.argc, b.argv, on_script, d);
    if (!small) {
        free(b.argv);
        free(bucket);
        free(def);
    }
}

/* ------------------------------------------------ managed return path */

/*
 * At end of message, for an account with managed bounces (verp.h), when the
 * adapter can change the envelope sender: mint bounces+TOKEN@DOMAIN into
 * d->return_path and fill mr with its record rg:v:ID (verp.h
 * rg_verp_record: account, original sender, every recipient, minted; alive
 * while run_script runs), which the store writes in the same
 * round trip as the decision script.  0 with mr filled, or -1: leave the
 * envelope sender alone (not managed, null sender, no recipients, already
 * one of ours, or minting failed - logged).
 */
static int managed_return_path(rg_engine *e, decision *d, const rg_request *req, rg_verp_record *mr)
{
    const rg_bounce_conf *bc = &e->cfg->bounce;
    rg_verp_purpose pu;
    char tok[RG_VERP_TOKEN_MAX + 1];

    if (!req->can_change_sender || d->acct == NULL || bc->domain == NULL ||
        !rg_account_bounces_managed(d->acct, bc->managed) || d->sender[0] == '\0' ||
        req->recipients == NULL || req->n_recipients == 0)
        return -1;
    if (rg_verp_split_address(bc, d->sender, &pu, tok, sizeof tok))
        return -1;              /* already a return path of ours (mail passing twice) */
    if (e->store->decide_record == NULL) {
        rg_warn("%s: managed return path needs a blocking store; envelope sender kept",
                d->qid[0] ? d->qid : "NOQUEUE");
        return -1;
    }
    unsigned char id[RG_VERP_ID_BYTES];
    char idt[RG_VERP_ID_TEXT + 1];
    int64_t now = (int64_t)(e->clock->now_ms(e->clock) / 1000);
    if (rg_verp_new_id(id) < 0 ||
        rg_verp_mint(bc, RG_VERP_BOUNCES, id, now, tok, sizeof tok) < 0 ||
        rg_verp_address_for(bc, RG_VERP_BOUNCES, tok, d->sender, d->return_path,
                            sizeof d->return_path) < 0) {
        rg_error("%s: cannot mint a return path for <%s> (account %s); envelope sender kept",
                 d->qid[0] ? d->qid : "NOQUEUE", d->sender, d->acct->name);
        d->return_path[0] = '\0';
        return -1;
    }
    rg_verp_id_text(id, idt);
    /* the recipients normalised (as the CLI's bounce token has them), or
     * made printable when they do not parse */
    char (*norm)[RG_ADDR_MAX] = rg_calloc(req->n_recipients, sizeof *norm);
    const char **rs = rg_calloc(req->n_recipients, sizeof *rs);
    for (unsigned i = 0; i < req->n_recipients; i++) {
        const char *r = req->recipients[i] ? req->recipients[i] : "";
        if (rg_addr_normalize(r, norm[i], sizeof norm[i]) < 0)
            rg_text_sanitize(r, norm[i], sizeof norm[i]);
        rs[i] = norm[i];
    }
    rg_verp_record_init(mr, idt, d->acct->name, d->sender, rs, req->n_recipients, now,
                        bc->token_ttl_ms);
    free(rs);
    free(norm);
    return 0;
}

static void copy_clean(char *dst, size_t len, const char *src)
{
    rg_text_sanitize(src ? src : "", dst, len);
}

void rg_engine_check(rg_engine *e, const rg_request *req, rg_verdict_cb *cb, void *arg)
{
    decision *d = rg_calloc(1, sizeof *d);
    d->e = e;
    d->cb = cb;
    d->arg = arg;
    d->stage = req->stage;
    d->t0 = rg_monotonic_ms();
    d->started = rg_metrics_now();
    copy_clean(d->qid, sizeof d->qid, req->queue_id);
    copy_clean(d->login, sizeof d->login, req->sasl_username);
    copy_clean(d->client, sizeof d->client, req->client_addr);
    if (rg_addr_normalize(req->sender ? req->sender : "", d->sender, sizeof d->sender) < 0)
        copy_clean(d->sender, sizeof d->sender, req->sender);
    if (req->recipient && rg_addr_normalize(req->recipient, d->rcpt, sizeof d->rcpt) < 0)
        copy_clean(d->rcpt, sizeof d->rcpt, req->recipient);
    d->nrcpt = req->recipient_count;
    d->size = req->size;
    copy_clean(d->script, sizeof d->script, req->script);
    pthread_mutex_lock(&e->lock);
    e->pending++;
    pthread_mutex_unlock(&e->lock);

    rg_verdict v;
    memset(&v, 0, sizeof v);
    if (req->stage == RG_STAGE_CONNECT) {
        set_verdict(&v, RG_DUNNO, 250, "2.0.0", "ok", "%s", "nothing to check at connect");
        finish(d, &v);
        return;
    }
    if (lazy_on(e))
        lazy_prepare(e, req);
    d->snap = snap_get(e);
    if (d->snap == NULL) {
        maybe_load(e, 0);
        rg_warn("accounts not loaded yet");
        set_store_error(e, &v, "accounts not loaded yet");
        finish(d, &v);
        return;
    }
    d->acct = identify(d->snap, d, req, &v);
    if (d->acct == NULL && v.action == RG_DUNNO) {
        finish(d, &v);
        return;
    }
    if (e->geo && d->client[0]) {
        char cc[3];
        if (e->geo->country(e->geo, d->client, cc) == 1)
            rg_strlcpy(d->country, cc, sizeof d->country);
    }
    int refused = d->acct == NULL;      /* unknown login: v is set */
    if (!refused && req->stage != RG_STAGE_EOM)
        refused = check_sender(e, d, req, &v);
    if (!refused && req->stage == RG_STAGE_HEADER)
        refused = check_header_from(d, req, &v);
    if (!refused && req->stage == RG_STAGE_EOM && d->acct->max_size && req->size > d->acct->max_size) {
        set_verdict(&v, RG_REJECT, 552, "5.3.4", "size",
                    "message size %" PRIu64 " exceeds the limit of %" PRIu64 " bytes for account %s",
                    req->size, d->acct->max_size, d->acct->name);
        refused = 1;
    }
    if (refused) {
        d->v = v;
        d->logged_only = 1;
        run_script(e, d, "log", req, NULL);
        return;
    }
    if (req->stage == RG_STAGE_HEADER) {
        /* Header From is fine; limits were checked at RCPT and are charged at EOM. */
        set_verdict(&v, RG_ACCEPT, 250, "2.0.0", "ok", "%s", "ok");
        finish(d, &v);
        return;
    }
    /* The account's limits, then the global ones from relayguard.conf. */
    size_t n = d->acct->n_limits + e->cfg->n_limits + 1;
    d->limits = rg_calloc(n + 1, sizeof *d->limits);
    d->owned = rg_calloc(n + 1, 1);
    for (size_t i = 0; i < d->acct->n_limits; i++)
        d->limits[d->n_limits++] = &d->acct->limits[i];
    /* a detection's throttle (detect.h): one more account limit while it lasts */
    const rg_limit *thr = rg_account_throttle(d->acct, e->clock->now_ms(e->clock));
    if (thr)
        d->limits[d->n_limits++] = thr;
    d->n_acct_limits = d->n_limits;
    for (size_t i = 0; i < e->cfg->n_limits; i++)
        d->limits[d->n_limits++] = &e->cfg->limits[i];
    const char *op = req->stage == RG_STAGE_RCPT ? "rcpt" : req->stage == RG_STAGE_EOM ? "eom" : "check";
    rg_verp_record mr;
    int with_record = req->stage == RG_STAGE_EOM && managed_return_path(e, d, req, &mr) == 0;
    run_script(e, d, op, req, with_record ? &mr.rec : NULL);
    if (with_record)
        rg_verp_record_free(&mr);
}
