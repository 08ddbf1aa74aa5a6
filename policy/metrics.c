/*
 * metrics.c - the process's counters and their Prometheus endpoint
 * (libmicrohttpd).  See metrics.h for the names.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

#define MAX_REASONS   128       /* distinct verdict+reason pairs; more count as reason "other" */
#define DEFAULT_ACCOUNTS 100
#define OTHER_ACCOUNT "_other"

/* Upper bounds of the latency histogram's buckets, in seconds (+Inf last). */
static const double bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };
#define NBOUNDS (sizeof bounds / sizeof bounds[0])

typedef struct reason_count {
    rg_action action;
    char reason[32];
    uint64_t n;
} reason_count;

typedef struct account_count {
    char *name;                 /* NULL: free slot */
    uint64_t n[4];              /* by rg_action */
} account_count;

static struct {
    pthread_mutex_t lock;
    char daemon[64];
    unsigned max_accounts;
    time_t start;
    reason_count reasons[MAX_REASONS];
    size_t nreasons;
    uint64_t other_reason[4];   /* by rg_action, past MAX_REASONS pairs */
    account_count *accounts;    /* open addressing, cap slots */
    size_t cap, naccounts;
    uint64_t other_account[4];
    uint64_t buckets[NBOUNDS + 1];
    double latency_sum;
    uint64_t latency_count;
    uint64_t store_errors, store_reconnects;
    uint64_t dkim_rsa, dkim_ed25519;
} M = { .lock = PTHREAD_MUTEX_INITIALIZER, .daemon = "relayguard" };

void rg_metrics_init(const char *daemon, unsigned max_accounts)
{
    pthread_mutex_lock(&M.lock);
    if (daemon)
        rg_strlcpy(M.daemon, daemon, sizeof M.daemon);
    M.max_accounts = max_accounts ? max_accounts : DEFAULT_ACCOUNTS;
    M.start = time(NULL);
    pthread_mutex_unlock(&M.lock);
}

double rg_metrics_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The account's counters, NULL when the table is full (caller holds the lock). */
static uint64_t *account_slot(const char *name)
{
    if (M.max_accounts == 0)
        M.max_accounts = DEFAULT_ACCOUNTS;
    if (M.accounts == NULL) {
        /* at most half full: a power of two above twice the bound */
        M.cap = 16;
        while (M.cap < 2 * (size_t)M.max_accounts)
            M.cap *= 2;
        M.accounts = rg_calloc(M.cap, sizeof *M.accounts);
    }
    size_t i = (size_t)fnv1a(name) & (M.cap - 1);
    for (;; i = (i + 1) & (M.cap - 1)) {
        account_count *a = &M.accounts[i];
        if (a->name == NULL) {
            if (M.naccounts >= M.max_accounts)
                return NULL;
            a->name = rg_strdup(name);
            M.naccounts++;
            return a->n;
        }
        if (strcmp(a->name, name) == 0)
            return a->n;
    }
}

void rg_metrics_decision(const rg_verdict *v, double seconds)
{
    unsigned act = (unsigned)v->action < 4 ? (unsigned)v->action : RG_DUNNO;
    pthread_mutex_lock(&M.lock);
    const char *reason = v->reason[0] ? v->reason : "none";
    reason_count *r = NULL;
    for (size_t i = 0; i < M.nreasons; i++)
        if (M.reasons[i].action == (rg_action)act && strcmp(M.reasons[i].reason, reason) == 0) {
            r = &M.reasons[i];
            break;
        }
    if (r == NULL && M.nreasons < MAX_REASONS) {
        r = &M.reasons[M.nreasons++];
        r->action = (rg_action)act;
        rg_strlcpy(r->reason, reason, sizeof r->reason);
    }
    if (r)
        r->n++;
    else
        M.other_reason[act]++;
    if (v->account[0]) {
        uint64_t *n = account_slot(v->account);
        (n ? n : M.other_account)[act]++;
    }
    if (!(seconds >= 0))
        seconds = 0;
    size_t b = 0;
    while (b < NBOUNDS && seconds > bounds[b])
        b++;
    M.buckets[b]++;
    M.latency_sum += seconds;
    M.latency_count++;
    pthread_mutex_unlock(&M.lock);
}

void rg_metrics_store_error(void)
{
    pthread_mutex_lock(&M.lock);
    M.store_errors++;
    pthread_mutex_unlock(&M.lock);
}

void rg_metrics_store_reconnect(void)
{
    pthread_mutex_lock(&M.lock);
    M.store_reconnects++;
    pthread_mutex_unlock(&M.lock);
}

void rg_metrics_dkim_signature(const char *alg)
{
    pthread_mutex_lock(&M.lock);
    if (alg && strncmp(alg, "ed25519", 7) == 0)
        M.dkim_ed25519++;
    else
        M.dkim_rsa++;
    pthread_mutex_unlock(&M.lock);
}

/* ------------------------------------------------------------- rendering */

typedef struct outbuf {
    char *p;
    size_t len, cap;
} outbuf;

static void out(outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(outbuf *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = (o->cap + (size_t)n + 1) * 2;
        o->p = rg_realloc(o->p, o->cap);
    }
}

/* A label value with \ " and newline escaped (text format 0.0.4). */
static void out_label(outbuf *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            out(o, "\\%c", *s);
        else if (*s == '\n')
            out(o, "\\n");
        else
            out(o, "%c", *s);
    }
}

char *rg_metrics_render(size_t *len)
{
    static const char *const verdicts[4] = { "dunno", "accept", "tempfail", "reject" };
    outbuf o = { rg_malloc(4096), 0, 4096 };
    o.p[0] = '\0';
    pthread_mutex_lock(&M.lock);

    out(&o, "# HELP relayguard_build_info The daemon and relayguard's version.\n"
            "# TYPE relayguard_build_info gauge\n"
            "relayguard_build_info{daemon=\"");
    out_label(&o, M.daemon);
    out(&o, "\",version=\"%s\"} 1\n", PACKAGE_VERSION);
    out(&o, "# HELP relayguard_start_time_seconds When the daemon started (Unix time).\n"
            "# TYPE relayguard_start_time_seconds gauge\n"
            "relayguard_start_time_seconds %lld\n", (long long)M.start);

    out(&o, "# HELP relayguard_decisions_total Verdicts handed out, by verdict and reason.\n"
            "# TYPE relayguard_decisions_total counter\n");
    for (size_t i = 0; i < M.nreasons; i++) {
        const reason_count *r = &M.reasons[i];
        out(&o, "relayguard_decisions_total{verdict=\"%s\",reason=\"", verdicts[r->action]);
        out_label(&o, r->reason);
        out(&o, "\"} %llu\n", (unsigned long long)r->n);
    }
    for (int k = 0; k < 4; k++)
        if (M.other_reason[k])
            out(&o, "relayguard_decisions_total{verdict=\"%s\",reason=\"other\"} %llu\n", verdicts[k],
                (unsigned long long)M.other_reason[k]);

    out(&o, "# HELP relayguard_account_decisions_total Verdicts by account (at most %u accounts, "
            "the rest as \"" OTHER_ACCOUNT "\").\n"
            "# TYPE relayguard_account_decisions_total counter\n",
        M.max_accounts ? M.max_accounts : DEFAULT_ACCOUNTS);
    for (size_t i = 0; i < M.cap; i++) {
        const account_count *a = &M.accounts[i];
        if (a->name == NULL)
            continue;
        for (int k = 0; k < 4; k++) {
            if (a->n[k] == 0)
                continue;
            out(&o, "relayguard_account_decisions_total{account=\"");
            out_label(&o, a->name);
            out(&o, "\",verdict=\"%s\"} %llu\n", verdicts[k], (unsigned long long)a->n[k]);
        }
    }
    for (int k = 0; k < 4; k++)
        if (M.other_account[k])
            out(&o, "relayguard_account_decisions_total{account=\"" OTHER_ACCOUNT "\",verdict=\"%s\"} %llu\n",
                verdicts[k], (unsigned long long)M.other_account[k]);

    out(&o, "# HELP relayguard_decision_seconds Time from the MTA's question to the verdict.\n"
            "# TYPE relayguard_decision_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; b < NBOUNDS; b++) {
        cum += M.buckets[b];
        out(&o, "relayguard_decision_seconds_bucket{le=\"%g\"} %llu\n", bounds[b], (unsigned long long)cum);
    }
    cum += M.buckets[NBOUNDS];
    out(&o, "relayguard_decision_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    out(&o, "relayguard_decision_seconds_sum %.6f\n", M.latency_sum);
    out(&o, "relayguard_decision_seconds_count %llu\n", (unsigned long long)M.latency_count);

    out(&o, "# HELP relayguard_store_errors_total Redis calls that failed or timed out.\n"
            "# TYPE relayguard_store_errors_total counter\n"
            "relayguard_store_errors_total %llu\n"
            "# HELP relayguard_store_reconnects_total Connections to Redis made again after a loss.\n"
            "# TYPE relayguard_store_reconnects_total counter\n"
            "relayguard_store_reconnects_total %llu\n",
        (unsigned long long)M.store_errors, (unsigned long long)M.store_reconnects);
    out(&o, "# HELP relayguard_dkim_signatures_total DKIM signatures made, by algorithm.\n"
            "# TYPE relayguard_dkim_signatures_total counter\n"
            "relayguard_dkim_signatures_total{algorithm=\"rsa-sha256\"} %llu\n"
            "relayguard_dkim_signatures_total{algorithm=\"ed25519-sha256\"} %llu\n",
        (unsigned long long)M.dkim_rsa, (unsigned long long)M.dkim_ed25519);
    pthread_mutex_unlock(&M.lock);
    *len = o.len;
    return o.p;
}
