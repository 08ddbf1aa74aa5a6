/*
 * module.c - relayguard inside Exim's ACLs and smtp transport: translate
 * ${dlfunc} arguments into rg_engine_check() calls and verdicts back into
 * a yield an ACL acts on.  No decision is made here (see policy/).
 *
 *   rg_mail      MAIL   RG_STAGE_MAIL   identity, sender domain, networks,
 *                                       countries, SIZE=; starts a message
 *   rg_rcpt      RCPT   RG_STAGE_RCPT   the MAIL checks, suppression,
 *                                       limits (reservation under the message)
 *   rg_data      DATA   RG_STAGE_HEADER header From, then RG_STAGE_EOM: real
 *                                       size, charge once ($message_exim_id)
 *                                       for Exim's count of recipients
 *   rg_not_smtp  local  RCPT for every recipient, then HEADER and EOM, as
 *                       the unix user that called Exim (PHP's mail())
 *   rg_dkim_*    transport: the domain, selectors and key files Exim signs
 *                with, only for an account allowed to send for the domain
 *
 * Exim forks a process per SMTP connection (and runs one per local
 * submission or delivery), and each call runs in one of them, single
 * threaded.  So each process keeps one instance (config, engine, blocking
 * Redis store, DKIM keys) made on its first call and reused by every later
 * one.  A process forked from one that had an instance keeps it (the
 * configuration and the accounts) but opens its own Redis connection
 * (proc_store); rg_preload makes the Exim daemon hold one for all its
 * children.  Without it, a connection process reads only the account its
 * requests need (the login's, or those with client networks:
 * rg_engine_new_lazy), not every account.  The store's time budget
 * (store_timeout) bounds every call; a
 * store error is the engine's on_store_error verdict.
 *
 * A message is keyed for its reservation by an id made here: the pid, the
 * time of the process's first call (so a reused pid is a new id) and a
 * count of messages in this process.  rg_mail starts a message, rg_data
 * and rg_not_smtp end it; the queue id ($message_exim_id) marks the charge.
 *
 * Exim's processes are single-threaded, so the yield and the scratch
 * buffers are static, as in Postfix's daemons.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "dkim.h"
#include "engine.h"
#include "geoip.h"
#include "log.h"
#include "match.h"
#include "rgexim.h"
#include "store.h"
#include "util.h"

#define IDENT "relayguard-exim"
#define HEADER_MAX 8192          /* a From header value, unfolded */
#define SCRIPT_MAX 1024          /* X-PHP-Originating-Script */
#define MAX_KEYS 16              /* keys (selectors) of one domain */

/* ------------------------------------------------------------ arguments */

typedef enum { A_CONF, A_NAME, A_ADDR, A_IP, A_NUM, A_ID, A_HEADER, A_SCRIPT, A_DOMAIN } arg_kind;

typedef struct fnspec {
    const char *name;
    int min, max;               /* argument counts */
    const char *usage;
    arg_kind kinds[9];
    const char *labels[9];
} fnspec;

static const fnspec specs[RGX_N] = {
    [RGX_MAIL] = { "rg_mail", 5, 5, "CONFIG LOGIN CLIENT SENDER SIZE",
        { A_CONF, A_NAME, A_IP, A_ADDR, A_NUM },
        { "CONFIG", "LOGIN", "CLIENT", "SENDER", "SIZE" } },
    [RGX_RCPT] = { "rg_rcpt", 6, 6, "CONFIG LOGIN CLIENT SENDER RECIPIENT SIZE",
        { A_CONF, A_NAME, A_IP, A_ADDR, A_ADDR, A_NUM },
        { "CONFIG", "LOGIN", "CLIENT", "SENDER", "RECIPIENT", "SIZE" } },
    [RGX_DATA] = { "rg_data", 7, 7, "CONFIG LOGIN CLIENT SENDER QUEUE_ID SIZE FROM",
        { A_CONF, A_NAME, A_IP, A_ADDR, A_ID, A_NUM, A_HEADER },
        { "CONFIG", "LOGIN", "CLIENT", "SENDER", "QUEUE_ID", "SIZE", "FROM" } },
    [RGX_NOT_SMTP] = { "rg_not_smtp", 6, 6, "CONFIG USER SENDER QUEUE_ID SIZE FROM",
        { A_CONF, A_NAME, A_ADDR, A_ID, A_NUM, A_HEADER },
        { "CONFIG", "USER", "SENDER", "QUEUE_ID", "SIZE", "FROM" } },
    [RGX_DKIM_DOMAIN] = { "rg_dkim_domain", 3, 3, "CONFIG ACCOUNT FROM",
        { A_CONF, A_NAME, A_HEADER },
        { "CONFIG", "ACCOUNT", "FROM" } },
    [RGX_DKIM_SELECTOR] = { "rg_dkim_selector", 3, 3, "CONFIG ACCOUNT DOMAIN",
        { A_CONF, A_NAME, A_DOMAIN },
        { "CONFIG", "ACCOUNT", "DOMAIN" } },
    [RGX_DKIM_KEY] = { "rg_dkim_key", 4, 4, "CONFIG ACCOUNT DOMAIN SELECTOR",
        { A_CONF, A_NAME, A_DOMAIN, A_NAME },
        { "CONFIG", "ACCOUNT", "DOMAIN", "SELECTOR" } },
    [RGX_PRELOAD] = { "rg_preload", 2, 2, "CONFIG MAX_PER_HOST",
        { A_CONF, A_NUM },
        { "CONFIG", "MAX_PER_HOST" } },
};

static size_t kind_max(arg_kind k)
{
    switch (k) {
    case A_CONF: return PATH_MAX - 1;
    case A_NAME: return RG_NAME_MAX - 1;
    case A_ADDR: return RG_ADDR_MAX - 1;
    case A_IP: return 63;
    case A_NUM: return 20;
    case A_ID: return 63;
    case A_HEADER: return HEADER_MAX;
    case A_SCRIPT: return SCRIPT_MAX;
    case A_DOMAIN: return 255;
    }
    return 0;
}

/* Valid UTF-8 without control bytes; a header may hold folding (CR, LF, TAB). */
static int text_ok(const char *s, int folding)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left > 0) {
        if (*p < 0x20 || *p == 0x7f) {
            if (!(folding && (*p == '\r' || *p == '\n' || *p == '\t')))
                return 0;
            p++, left--;
            continue;
        }
        size_t n = rg_utf8_len(p, left);
        if (n == 0)
            return 0;
        p += n;
        left -= n;
    }
    return 1;
}

/* "" and "-1" (Exim's "unknown") are 0; else decimal digits. */
static int parse_num(const char *s, uint64_t *out)
{
    *out = 0;
    if (s[0] == '\0' || strcmp(s, "-1") == 0)
        return 0;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* ------------------------------------------------------------- the yield */

static char yield[RG_TEXT_MAX * 2 + RG_NAME_MAX + 256];

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(yield, sizeof yield, "relayguard: ");
    vsnprintf(yield + n, sizeof yield - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int give(const char *s)
{
    if (rg_strlcpy(yield, s, sizeof yield) >= sizeof yield)
        return fail("value too long for the yield");
    return 0;
}

/* ${extract}-able: key=value, the reply quoted with \" and \\ escaped. */
static int give_verdict(const rg_verdict *v)
{
    const char *action = "dunno";
    switch (v->action) {
    case RG_ACCEPT: action = "accept"; break;
    case RG_DUNNO: action = "dunno"; break;
    case RG_TEMPFAIL: action = "defer"; break;
    case RG_REJECT: action = "deny"; break;
    }
    /* account is quoted: ${extract} would take the next pair for an empty value */
    size_t o = (size_t)snprintf(yield, sizeof yield, "action=%s reason=%s account=\"%s\"", action,
                                v->reason[0] ? v->reason : "ok", v->account);
    if (v->return_path[0] && o < sizeof yield)   /* managed return path: record written */
        o += (size_t)snprintf(yield + o, sizeof yield - o, " return_path=\"%s\"", v->return_path);
    if (o >= sizeof yield)
        o = sizeof yield - 1;
    if (v->action != RG_TEMPFAIL && v->action != RG_REJECT)
        return 0;
    int temp = v->action == RG_TEMPFAIL;
    int c = v->code;
    if (temp && (c < 400 || c > 499))
        c = 451;
    if (!temp && (c < 500 || c > 599))
        c = 550;
    const char *dsn = v->dsn[0] ? v->dsn : (temp ? "4.7.1" : "5.7.1");
    o += (size_t)snprintf(yield + o, sizeof yield - o, " reply=\"%d %s ", c, dsn);
    for (const char *p = v->text; *p && o + 4 < sizeof yield; p++) {
        if (*p == '"' || *p == '\\')
            yield[o++] = '\\';
        yield[o++] = (*p == '\r' || *p == '\n') ? ' ' : *p;
    }
    yield[o++] = '"';
    yield[o] = '\0';
    return 0;
}

/* ---------------------------------------------------- the process instance */

/*
 * The store of an instance: a blocking Redis store that belongs to one
 * process.  After a fork the child drops its copy of the parent's
 * connection (closing an inherited socket leaves the parent's untouched)
 * and connects anew on first use, while the engine keeps the accounts it
 * inherited.  So a child of the Exim daemon that preloaded relayguard
 * (rg_preload) pays neither the configuration nor the accounts.
 */
typedef struct proc_store {
    rg_store base;
    const rg_config *cfg;
    rg_store *inner;
    pid_t pid;
} proc_store;

static rg_store *proc_inner(rg_store *st)
{
    proc_store *s = (proc_store *)st;
    pid_t pid = getpid();
    if (s->pid != pid) {
        s->inner->free(s->inner);
        s->inner = rg_store_redis_sync(s->cfg);
        s->pid = pid;
    }
    return s->inner;
}

static void proc_decide(rg_store *st, int argc, const char **argv, rg_store_cb *cb, void *arg)
{
    rg_store *in = proc_inner(st);
    in->decide(in, argc, argv, cb, arg);
}

static void proc_decide_record(rg_store *st, const rg_store_record *rec, int argc,
                               const char **argv, rg_store_cb *cb, void *arg)
{
    rg_store *in = proc_inner(st);
    in->decide_record(in, rec, argc, argv, cb, arg);
}

static void proc_load_accounts(rg_store *st, rg_accounts_cb *cb, void *arg)
{
    rg_store *in = proc_inner(st);
    in->load_accounts(in, cb, arg);
}

static void proc_load_some(rg_store *st, rg_account_lookup kind, const char *key,
                           rg_accounts_cb *cb, void *arg)
{
    rg_store *in = proc_inner(st);
    in->load_some(in, kind, key, cb, arg);
}

static void proc_free(rg_store *st)
{
    proc_store *s = (proc_store *)st;
    s->inner->free(s->inner);
    free(s);
}

static rg_store *proc_store_new(const rg_config *cfg)
{
    proc_store *s = rg_calloc(1, sizeof *s);
    s->base.decide = proc_decide;
    s->base.decide_record = proc_decide_record;
    s->base.load_accounts = proc_load_accounts;
    s->base.free = proc_free;
    s->inner = rg_store_redis_sync(cfg);
    if (s->inner->load_some)
        s->base.load_some = proc_load_some;
    s->cfg = cfg;
    s->pid = getpid();
    return &s->base;
}

typedef struct inst {
    char *conf_path;
    rg_config *cfg;
    rg_geoip *geo;
    rg_store *store;            /* a proc_store */
    rg_engine *engine;
    rg_dkim_keys *keys;         /* on the first DKIM call */
    uint64_t refreshed_ms;      /* rg_preload: last account load (monotonic) */
    int all_accounts;           /* engine holds every account (rg_preload), else
                                   only what each request needs (lazy) */
} inst;

static inst *cur;

/* The message in flight in this process. */
static struct {
    pid_t pid;
    char boot[24];              /* when this process started numbering, µs, hex */
    unsigned long long seq;
    char id[64];
    int open;
} msg;

static void inst_free(inst *in)
{
    if (in == NULL)
        return;
    /* the store first: the engine's account loads run on it */
    in->store->free(in->store);
    rg_engine_free(in->engine);
    if (in->geo)
        in->geo->free(in->geo);
    rg_dkim_keys_unref(in->keys);
    rg_config_free(in->cfg);
    free(in->conf_path);
    free(in);
}

/* The instance for conf_path, made on first use in this process or
 * inherited from the process it was forked from.  all_accounts: the daemon
 * (rg_preload) reads every account for its children; a connection process
 * on its own reads only the account its requests need
 * (rg_engine_new_lazy).  NULL with the yield set to the error. */
static inst *inst_get(const char *conf_path, int all_accounts)
{
    const char *path = conf_path[0] ? conf_path : RG_DEFAULT_CONFIG;
    pid_t pid = getpid();
    if (msg.pid != pid && cur && cur->all_accounts && !all_accounts) {
        /* a connection process forked from the daemon (rg_preload): it
         * keeps the accounts it inherited, and when they change it looks
         * up only what its requests need instead of reading them all */
        rg_engine_go_lazy(cur->engine);
    }
    if (msg.pid != pid) {
        /* a new process numbers its own messages */
        struct timeval tv;
        gettimeofday(&tv, NULL);
        memset(&msg, 0, sizeof msg);
        msg.pid = pid;
        snprintf(msg.boot, sizeof msg.boot, "%llx",
                 (unsigned long long)tv.tv_sec * 1000000ULL + (unsigned long long)tv.tv_usec);
    }
    if (cur && strcmp(cur->conf_path, path) == 0 && (cur->all_accounts || !all_accounts))
        return cur;
    inst_free(cur);             /* another relayguard.conf: start afresh */
    cur = NULL;

    char err[1024];
    rg_config *cfg = rg_config_load(path, err, sizeof err);
    if (cfg == NULL) {
        fail("%s", err);
        return NULL;
    }
    rg_log_open(IDENT, cfg->log, cfg->log_level);
    inst *in = rg_calloc(1, sizeof *in);
    in->conf_path = rg_strdup(path);
    in->cfg = cfg;
    if (cfg->geoip_db && (in->geo = rg_geoip_open_mmdb(cfg->geoip_db, err, sizeof err)) == NULL) {
        fail("geoip_db %s: %s", cfg->geoip_db, err);
        rg_config_free(cfg);
        free(in->conf_path);
        free(in);
        return NULL;
    }
    in->store = proc_store_new(cfg);
    /* all: loads the accounts now; lazy: each request looks up its own.
     * If Redis is down, every check tempfails (on_store_error) and the
     * engine tries again */
    in->all_accounts = all_accounts;
    in->engine = all_accounts
        ? rg_engine_new(cfg, in->store, rg_clock_system(), in->geo, err, sizeof err)
        : rg_engine_new_lazy(cfg, in->store, rg_clock_system(), in->geo, err, sizeof err);
    if (in->engine == NULL) {
        fail("%s", err);
        in->store->free(in->store);
        if (in->geo)
            in->geo->free(in->geo);
        rg_config_free(cfg);
        free(in->conf_path);
        free(in);
        return NULL;
    }
    in->refreshed_ms = rg_monotonic_ms();
    cur = in;
    return in;
}

static void msg_begin(void)
{
    msg.seq++;
    snprintf(msg.id, sizeof msg.id, "x%ld.%s.%llu", (long)msg.pid, msg.boot, msg.seq);
    msg.open = 1;
}

/* --------------------------------------------------------------- checks */

typedef struct answer {
    int done;
    rg_verdict v;
} answer;

static void on_verdict(void *arg, const rg_verdict *v)
{
    answer *a = arg;
    a->v = *v;
    a->done = 1;
}

/* Ask the engine; the blocking store answers before rg_engine_check returns. */
static rg_verdict decide(inst *in, const rg_request *r)
{
    answer a;
    memset(&a, 0, sizeof a);
    rg_engine_check(in->engine, r, on_verdict, &a);
    if (!a.done) {
        /* cannot happen with the blocking store; never accept on it */
        memset(&a.v, 0, sizeof a.v);
        a.v.action = RG_TEMPFAIL;
        a.v.code = 451;
        rg_strlcpy(a.v.dsn, "4.3.0", sizeof a.v.dsn);
        rg_strlcpy(a.v.reason, "store_error", sizeof a.v.reason);
        rg_strlcpy(a.v.text, "relayguard: no answer from the policy engine", sizeof a.v.text);
    }
    return a.v;
}

static int refused(const rg_verdict *v)
{
    return v->action == RG_REJECT || v->action == RG_TEMPFAIL;
}

/* Folding of a header value becomes blanks. */
static void unfold(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < len; p++)
        out[o++] = (*p == '\r' || *p == '\n' || *p == '\t') ? ' ' : *p;
    out[o] = '\0';
}

/* The local user: a uid ($originator_uid) is looked up; a name is taken as is;
 * a uid without a passwd entry stays a number, which an account may list. */
static void local_user(const char *arg, char *out, size_t len)
{
    uint64_t uid;
    if (arg[0] && arg[0] != '-' && parse_num(arg, &uid) == 0 && uid <= UINT32_MAX) {
        struct passwd pw, *res = NULL;
        char buf[4096];
        if (getpwuid_r((uid_t)uid, &pw, buf, sizeof buf, &res) == 0 && res && res->pw_name)
            rg_strlcpy(out, res->pw_name, len);
        else
            rg_strlcpy(out, arg, len);
        return;
    }
    rg_strlcpy(out, arg, len);
}

static int smtp_call(inst *in, rgx_fn fn, char **argv, const rgx_msg *m, const char *script)
{
    uint64_t size = 0;
    rg_request r;
    memset(&r, 0, sizeof r);
    r.sasl_username = argv[1];
    r.client_addr = argv[2];
    r.sender = argv[3];
    if (fn == RGX_MAIL) {
        parse_num(argv[4], &size);
        msg_begin();
        r.stage = RG_STAGE_MAIL;
        r.msg_id = msg.id;
        r.size = size;
        rg_verdict v = decide(in, &r);
        return give_verdict(&v);
    }
    if (fn == RGX_RCPT) {
        parse_num(argv[5], &size);
        if (!msg.open)
            msg_begin();
        r.stage = RG_STAGE_RCPT;
        r.msg_id = msg.id;
        r.recipient = argv[4];
        r.size = size;
        rg_verdict v = decide(in, &r);
        return give_verdict(&v);
    }
    /* RGX_DATA */
    if (!msg.open)
        msg_begin();
    static char from[HEADER_MAX + 1];
    parse_num(argv[5], &size);
    unfold(argv[6], from, sizeof from);
    r.msg_id = msg.id;
    r.queue_id = argv[4];
    r.header_from = from;
    r.script = script;
    r.stage = RG_STAGE_HEADER;
    rg_verdict v = decide(in, &r);
    if (!refused(&v) && v.action != RG_DUNNO) {
        r.stage = RG_STAGE_EOM;
        r.recipient_count = m->nrcpts > UINT32_MAX ? UINT32_MAX : (unsigned)m->nrcpts;
        r.size = size;
        /* managed return path: the transport's return_path applies it */
        r.can_change_sender = true;
        r.recipients = m->rcpts;
        r.n_recipients = r.recipient_count;
        v = decide(in, &r);
    }
    msg.open = 0;
    return give_verdict(&v);
}

static int not_smtp_call(inst *in, char **argv, const rgx_msg *m, const char *script)
{
    char user[RG_NAME_MAX];
    static char from[HEADER_MAX + 1];
    uint64_t size = 0;
    local_user(argv[1], user, sizeof user);
    parse_num(argv[4], &size);
    unfold(argv[5], from, sizeof from);
    if (m->nrcpts == 0)
        return fail("rg_not_smtp: the message has no recipients (use it in acl_not_smtp)");
    msg_begin();
    rg_request r;
    memset(&r, 0, sizeof r);
    r.msg_id = msg.id;
    r.queue_id = argv[3];
    r.local_user = user;
    r.client_addr = "";
    r.sender = argv[2];
    r.script = script;
    r.header_from = from;
    r.size = size;
    rg_verdict v;
    memset(&v, 0, sizeof v);
    /* Every recipient as at RCPT (suppression, the reservation), then the
     * header From, then the charge: the SMTP path's stages in one call. */
    r.stage = RG_STAGE_RCPT;
    unsigned accepted = 0;
    for (size_t i = 0; i < m->nrcpts; i++) {
        r.recipient = m->rcpts[i];
        v = decide(in, &r);
        if (refused(&v) || v.action == RG_DUNNO)
            break;
        accepted++;
    }
    r.recipient = NULL;
    if (!refused(&v) && v.action != RG_DUNNO) {
        r.stage = RG_STAGE_HEADER;
        v = decide(in, &r);
    }
    if (!refused(&v) && v.action != RG_DUNNO) {
        r.stage = RG_STAGE_EOM;
        r.recipient_count = accepted;
        r.can_change_sender = true;     /* the transport's return_path applies it */
        r.recipients = m->rcpts;
        r.n_recipients = accepted;
        v = decide(in, &r);
    }
    msg.open = 0;
    return give_verdict(&v);
}

/* ----------------------------------------------------------------- DKIM */

typedef struct dkim_q {
    inst *in;
    const char *domain;
    size_t idx[MAX_KEYS];
    size_t n;
} dkim_q;

static void dkim_lookup(void *arg, const rg_account *a)
{
    dkim_q *q = arg;
    q->n = rg_dkim_keys_for(q->in->keys, a, q->domain, q->idx, MAX_KEYS);
}

static int dkim_call(inst *in, rgx_fn fn, char **argv)
{
    char err[1024];
    if (in->keys == NULL && (in->keys = rg_dkim_keys_load(in->cfg, err, sizeof err)) == NULL)
        return fail("%s", err);
    const char *account = argv[1];
    char domain[256] = "";
    if (fn == RGX_DKIM_DOMAIN) {
        char from[HEADER_MAX + 1], addr[RG_ADDR_MAX];
        unfold(argv[2], from, sizeof from);
        if (rg_header_from_addr(from, addr, sizeof addr) != 1)
            return give("");            /* no single From address: no signature */
        rg_strlcpy(domain, rg_addr_domain(addr), sizeof domain);
    } else {
        rg_strlcpy(domain, argv[2], sizeof domain);
        rg_lower(domain);
    }
    if (account[0] == '\0' || domain[0] == '\0')
        return give("");
    dkim_q q = { .in = in, .domain = domain, .n = 0 };
    rg_engine_with_account(in->engine, account, dkim_lookup, &q);
    if (q.n == 0)
        return give("");
    if (fn == RGX_DKIM_DOMAIN)
        return give(domain);
    if (fn == RGX_DKIM_SELECTOR) {
        /* Exim's list: "sel1 : sel2" signs with each (dual RSA + Ed25519) */
        char list[1024] = "";
        for (size_t i = 0; i < q.n; i++) {
            const char *d, *sel, *alg;
            int bits;
            rg_dkim_key_info(in->keys, q.idx[i], &d, &sel, &alg, &bits);
            if ((i && rg_strlcat(list, " : ", sizeof list) >= sizeof list) ||
                rg_strlcat(list, sel, sizeof list) >= sizeof list)
                return fail("rg_dkim_selector: too many selectors for %s", domain);
        }
        return give(list);
    }
    for (size_t i = 0; i < q.n; i++) {
        const char *d, *sel, *alg;
        int bits;
        rg_dkim_key_info(in->keys, q.idx[i], &d, &sel, &alg, &bits);
        if (strcmp(sel, argv[3]) == 0)
            return give(in->cfg->dkim.keys[q.idx[i]].path);
    }
    return give("");
}

/* ------------------------------------------------------------- preload */

#define PRELOAD_REFRESH_MS 2000

typedef struct gen_probe {
    int ok;
    long long gen;
} gen_probe;

static void on_gen_probe(void *arg, rg_accounts *set, long long gen, const char *err)
{
    gen_probe *p = arg;
    (void)err;
    if (set) {
        p->ok = 1;
        p->gen = gen;
        rg_accounts_free(set);
    }
}

/*
 * In the Exim daemon, which expands smtp_accept_max_per_host before it
 * forks for a connection: make the instance there (once), so that every
 * connection process inherits the module, the configuration and the
 * accounts, and every PRELOAD_REFRESH_MS check the accounts generation and
 * reload them when it moved, so that they stay fresh for the children (a
 * child that sees a newer generation in a reply looks up the account it
 * needs for itself: rg_engine_go_lazy).  Yields MAX_PER_HOST,
 * the option's real value, unchanged.  A failure here is only logged: the
 * children report it again, and a daemon must never refuse connections
 * because of it.
 */
/*
 * After the daemon read the accounts: hand the free chunks back to glibc's
 * bins now.  Reading 2,000 accounts frees tens of thousands of small
 * chunks (hiredis replies); left in the fast bins, the first large malloc
 * of every connection process consolidated them, writing to every page of
 * the inherited heap: about 8 ms of copy-on-write faults per connection.
 */
static void preload_tidy(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static int preload_call(char **argv)
{
    inst *before = cur;
    int loaded = 0;
    inst *in = inst_get(argv[0], 1);
    if (in == NULL) {
        static uint64_t warned_ms;
        uint64_t now = rg_monotonic_ms();
        if (warned_ms == 0 || now - warned_ms > 60000) {
            rg_error("rg_preload: %s", yield);
            warned_ms = now;
        }
    } else if (rg_monotonic_ms() - in->refreshed_ms >= PRELOAD_REFRESH_MS) {
        /* one small round trip for the generation; every account again
         * only when it moved (2,000 accounts are about 30 ms to read) */
        in->refreshed_ms = rg_monotonic_ms();
        gen_probe p = { 0, 0 };
        if (in->store->load_some)
            in->store->load_some(in->store, RG_LOOKUP_NAME, "", on_gen_probe, &p);
        if (!p.ok || p.gen != rg_engine_generation(in->engine)) {
            rg_engine_refresh_accounts(in->engine);
            loaded = 1;
        }
    }
    if (in != NULL && (in != before || loaded))
        preload_tidy();
    return give(argv[1]);
}

/* ---------------------------------------------------------------- entry */

int rgx_call(rgx_fn fn, int argc, char **argv, const rgx_msg *m, const char **out)
{
    static const rgx_msg none = { NULL, 0, NULL };
    if (m == NULL)
        m = &none;
    *out = yield;
    yield[0] = '\0';
    if ((int)fn < 0 || fn >= RGX_N)
        return fail("unknown function");
    const fnspec *s = &specs[fn];
    if (argc < s->min || argc > s->max || argv == NULL) {
        if (s->min == s->max)
            return fail("%s: %d argument%s given, %d expected: %s", s->name, argc,
                        argc == 1 ? "" : "s", s->min, s->usage);
        return fail("%s: %d argument%s given, %d or %d expected: %s", s->name, argc,
                    argc == 1 ? "" : "s", s->min, s->max, s->usage);
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        arg_kind k = s->kinds[i];
        uint64_t n;
        if (a == NULL)
            return fail("%s: argument %d (%s) is missing", s->name, i + 1, s->labels[i]);
        size_t len = strlen(a);
        if (len > kind_max(k))
            return fail("%s: argument %d (%s) is %zu bytes long, at most %zu allowed", s->name,
                        i + 1, s->labels[i], len, kind_max(k));
        if (!text_ok(a, k == A_HEADER))
            return fail("%s: argument %d (%s) is not valid UTF-8 text (or holds control bytes)",
                        s->name, i + 1, s->labels[i]);
        if (k == A_NUM && parse_num(a, &n) < 0)
            return fail("%s: argument %d (%s) is not a number: '%.40s'", s->name, i + 1,
                        s->labels[i], a);
    }
    /* required values */
    if (fn == RGX_RCPT && argv[4][0] == '\0')
        return fail("rg_rcpt: argument 5 (RECIPIENT) is empty");
    if ((fn == RGX_DATA && argv[4][0] == '\0') || (fn == RGX_NOT_SMTP && argv[3][0] == '\0'))
        return fail("%s: argument %d (QUEUE_ID) is empty (pass $message_exim_id)", s->name,
                    fn == RGX_DATA ? 5 : 4);
    if (fn == RGX_NOT_SMTP && argv[1][0] == '\0')
        return fail("rg_not_smtp: argument 2 (USER) is empty (pass $originator_uid)");
    if (fn == RGX_DKIM_KEY && argv[3][0] == '\0')
        return fail("rg_dkim_key: argument 4 (SELECTOR) is empty (pass $dkim_selector)");

    /* the script header is taken as text when it is clean, else dropped */
    static char script[SCRIPT_MAX + 1];
    script[0] = '\0';
    if (m->script && strlen(m->script) <= SCRIPT_MAX && text_ok(m->script, 1))
        unfold(m->script, script, sizeof script);

    if (fn == RGX_PRELOAD)
        return preload_call(argv);
    inst *in = inst_get(argv[0], 0);
    if (in == NULL)
        return -1;
    switch (fn) {
    case RGX_MAIL:
    case RGX_RCPT:
    case RGX_DATA:
        return smtp_call(in, fn, argv, m, script);
    case RGX_NOT_SMTP:
        return not_smtp_call(in, argv, m, script);
    default:
        return dkim_call(in, fn, argv);
    }
}
