/*
 * filter.c - relayguard-milter's milter callbacks (milter/proto.h): translate the MTA's
 * events into rg_engine_check() calls and the verdicts into SMTP replies,
 * then decorate accepted mail: remove inbound copies of relayguard's own
 * headers, add the account's headers (headers.h) and DKIM-sign (dkim.h).
 *
 *   RCPT   RG_STAGE_RCPT   identity ({auth_authen}, client), sender domain,
 *                          networks, countries, SIZE= (the MAIL checks, as
 *                          relayguard-policyd does them), suppression,
 *                          limits (reservation under MSGID)
 *   EOH    RG_STAGE_HEADER header From (two From headers are refused)
 *   EOM    RG_STAGE_EOM    real size, charge once (queue id {i})
 *
 * Postfix's non_smtpd_milters (sendmail/pickup) may not refuse a recipient:
 * there a RCPT refusal is returned at end of headers, and Postfix bounces
 * the message.  Postfix hides from milters the "Received: ... (Postfix,
 * from userid N)" header it adds to such mail, so the unix user comes from
 * the X-Relayguard-Local header that relayguard-sendmail(8) adds (its value
 * goes to the engine, which verifies it: localsub.h).  Headers come after
 * the recipients, so for such mail the RCPT checks of every recipient run
 * at end of headers.  The same holds for unauthenticated mail from the
 * local_smtp_clients (Sendmail's MSP relays local mail over SMTP).  Every inbound X-Relayguard-Local header is removed
 * (with all X-Relayguard-* headers) before the message is queued.
 *
 * State: a connection (conn) is the rgm_setpriv data; its current message
 * (msg) lives inside it.  Nothing per message is static: the server (server.c) runs
 * callbacks of different connections on different threads.  Every message
 * ends in msg_end(), whether by end of message, abort, a new MAIL or close.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "dkim.h"
#include "engine.h"
#include "filter.h"
#include "geoip.h"
#include "headers.h"
#include "localsub.h"
#include "log.h"
#include "match.h"
#include "store.h"
#include "util.h"

#define MAX_SIGNATURES 8

/* ------------------------------------------------------------ generations */

typedef struct gen {
    rg_config *cfg;
    rg_store *store;
    rg_geoip *geo;
    rg_engine *engine;
    rg_dkim_keys *keys;
    int refs;                   /* under gen_lock */
} gen;

static pthread_mutex_t gen_lock = PTHREAD_MUTEX_INITIALIZER;
static gen *gen_current;
static unsigned long long conn_counter;     /* atomic */

static void gen_free(gen *g)
{
    /* the store first: the engine's account loads run on it */
    g->store->free(g->store);
    rg_engine_free(g->engine);
    if (g->geo)
        g->geo->free(g->geo);
    rg_dkim_keys_unref(g->keys);
    rg_config_free(g->cfg);
    free(g);
}

static gen *gen_get(void)
{
    pthread_mutex_lock(&gen_lock);
    gen *g = gen_current;
    if (g)
        g->refs++;
    pthread_mutex_unlock(&gen_lock);
    return g;
}

static void gen_put(gen *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&gen_lock);
    int left = --g->refs;
    pthread_mutex_unlock(&gen_lock);
    if (left == 0)
        gen_free(g);
}

int rg_milter_gen_install(rg_config *cfg, char *err, size_t errlen)
{
    char why[1024];
    gen *g = rg_calloc(1, sizeof *g);
    g->cfg = cfg;
    g->refs = 1;
    if ((g->keys = rg_dkim_keys_load(cfg, why, sizeof why)) == NULL) {
        snprintf(err, errlen, "%s", why);
        rg_config_free(cfg);
        free(g);
        return -1;
    }
    if (cfg->geoip_db && (g->geo = rg_geoip_open_mmdb(cfg->geoip_db, why, sizeof why)) == NULL) {
        snprintf(err, errlen, "geoip_db %s: %s", cfg->geoip_db, why);
        rg_dkim_keys_unref(g->keys);
        rg_config_free(cfg);
        free(g);
        return -1;
    }
    g->store = rg_store_redis_pool(cfg, cfg->milter.store_connections);
    g->engine = rg_engine_new(cfg, g->store, rg_clock_system(), g->geo, why, sizeof why);
    if (g->engine == NULL) {
        snprintf(err, errlen, "%s", why);
        g->store->free(g->store);
        if (g->geo)
            g->geo->free(g->geo);
        rg_dkim_keys_unref(g->keys);
        rg_config_free(cfg);
        free(g);
        return -1;
    }
    rg_info("%zu DKIM key%s loaded", rg_dkim_keys_count(g->keys),
            rg_dkim_keys_count(g->keys) == 1 ? "" : "s");
    pthread_mutex_lock(&gen_lock);
    gen *old = gen_current;
    gen_current = g;
    pthread_mutex_unlock(&gen_lock);
    gen_put(old);
    return 0;
}

/* Sessions between connect and the end of close (atomic). */
static unsigned live_sessions;

void rg_milter_gen_shutdown(void)
{
    /* rgm_server_stop returns on SIGTERM while worker threads may still be closing
     * their sessions: let them finish (at most 5 s) before the engine goes. */
    for (int i = 0; i < 500 && __atomic_load_n(&live_sessions, __ATOMIC_ACQUIRE) > 0; i++)
        usleep(10000);
    if (__atomic_load_n(&live_sessions, __ATOMIC_ACQUIRE) > 0)
        rg_warn("warning: stopping with %u sessions still open",
                __atomic_load_n(&live_sessions, __ATOMIC_ACQUIRE));
    pthread_mutex_lock(&gen_lock);
    gen *g = gen_current;
    gen_current = NULL;
    pthread_mutex_unlock(&gen_lock);
    gen_put(g);
}

/* -------------------------------------------------------------- the state */

typedef struct header {
    char *name;                 /* one allocation: "name\0value\0" */
    char *value;                /* inside name's allocation */
} header;

typedef struct msg {
    gen *g;                     /* the generation the message started with */
    char msg_id[64];            /* "m-CONN-N": unique per message on this node */
    char qid[64];
    char login[RG_NAME_MAX];
    char sender[RG_ADDR_MAX];
    char account[RG_NAME_MAX];  /* "" until the engine ties the message to one */
    int ours;                   /* 1: the engine tied it to an account; 0: dunno
                                   (not ours); -1: not asked yet */
    uint64_t size_declared;
    unsigned nrcpt;
    header *hdrs;
    size_t nhdrs, caphdrs;
    size_t nfrom;
    uint64_t size;              /* header and body bytes, as the MTA counts them roughly */
    rg_dkim_signer *signer;
    rg_added_header added[RG_HEADERS_MAX];
    int nadded;
    int deferred;               /* nonsmtp: a RCPT refusal waits in refusal */
    rg_verdict refusal;
    char **rp_rcpts;            /* SMTP: accepted recipients, for a managed return path */
    size_t n_rp_rcpts;
    int local;                  /* local submission: non-SMTP, or an unauthenticated
                                   local_smtp_clients client (Sendmail's MSP) */
    char *local_token;          /* local: the first X-Relayguard-Local value, or NULL */
    char **rcpts;               /* local: recipients, checked at end of headers */
    size_t nrcpts;
    int rcpts_checked;          /* local: rcpt_checks_at_eoh ran */
} msg;

typedef struct conn {
    unsigned long long id;
    unsigned nmsg;
    char client_addr[64];
    char client_name[256];
    int nonsmtp;                /* Postfix non_smtpd_milters: sendmail/pickup, QMQP */
    unsigned long nr;           /* SMFIP_NR_* the MTA granted: steps without a reply */
    int chgfrom;                /* the MTA granted SMFIF_CHGFROM (managed return path) */
    msg *m;
} conn;

static void msg_end(conn *c)
{
    msg *m = c->m;
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nhdrs; i++)
        free(m->hdrs[i].name);
    free(m->hdrs);
    for (size_t i = 0; i < m->nrcpts; i++)
        free(m->rcpts[i]);
    free(m->rcpts);
    free(m->local_token);
    for (size_t i = 0; i < m->n_rp_rcpts; i++)
        free(m->rp_rcpts[i]);
    free(m->rp_rcpts);
    rg_dkim_signer_free(m->signer);
    rg_headers_free(m->added, m->nadded);
    gen_put(m->g);
    free(m);
    c->m = NULL;
}

static void copy_macro(rgm_ctx *ctx, const char *name, char *dst, size_t len)
{
    const char *v = rgm_getsymval(ctx, name);
    if (v && v[0])
        rg_strlcpy(dst, v, len);
}

/* ------------------------------------------------------------- verdicts */

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
static rg_verdict decide(msg *m, const rg_request *req)
{
    answer a;
    memset(&a, 0, sizeof a);
    rg_engine_check(m->g->engine, req, on_verdict, &a);
    if (!a.done)
        rg_panic("engine did not answer synchronously");
    return a.v;
}

/* SMTP reply for a refusal; text without CR/LF, '%' doubled (as the reply code API expects). */
static rgm_status refuse(rgm_ctx *ctx, const rg_verdict *v)
{
    char code[8], text[RG_TEXT_MAX * 2];
    size_t o = 0;
    for (const char *p = v->text; *p && o + 3 < sizeof text; p++) {
        if (*p == '\r' || *p == '\n')
            text[o++] = ' ';
        else if (*p == '%') {
            text[o++] = '%';
            text[o++] = '%';
        } else
            text[o++] = *p;
    }
    text[o] = '\0';
    int temp = v->action == RG_TEMPFAIL;
    int c = v->code;
    if (temp && (c < 400 || c > 499))
        c = 451;
    if (!temp && (c < 500 || c > 599))
        c = 550;
    snprintf(code, sizeof code, "%d", c);
    const char *dsn = v->dsn[0] ? v->dsn : (temp ? "4.7.1" : "5.7.1");
    if (rgm_setreply(ctx, code, dsn, text) != RGM_SUCCESS)
        rg_warn("cannot set the reply '%s %s %s'", code, dsn, text);
    return temp ? RGM_TEMPFAIL : RGM_REJECT;
}

/* Fill the parts of a request every stage shares. */
static void base_request(const conn *c, const msg *m, rg_stage stage, rg_request *r)
{
    memset(r, 0, sizeof *r);
    r->stage = stage;
    r->msg_id = m->msg_id;
    r->queue_id = m->qid;
    r->sasl_username = m->login;
    r->client_addr = c->client_addr;
    r->client_name = c->client_name;
    r->sender = m->sender;
    /* local submission: the engine identifies it by its token */
    if (m->local)
        r->local_token = m->local_token ? m->local_token : "";
}

/* ------------------------------------------------------------ callbacks */

/*
 * The protocol steps each message costs are most of the milter's CPU
 * (every packet is a wake-up and a reply a write), so ask the MTA for as few as the checks need:
 *  - no HELO, DATA or unknown commands;
 *  - no reply to connect, MAIL, each header, end of headers and each body
 *    chunk (SMFIP_NR_*): only RCPT and end of message answer.  A MAIL that
 *    cannot be served is refused at RCPT, where its message state is
 *    missing; a refusal at end of headers (header From) is given at end of
 *    message, which is when the client hears it anyway;
 *  - only the macros that are read.  (Postfix sends a stage's macro packet
 *    even for a command it then skips, and the end-of-header list before
 *    every header: those packets cannot be saved, only kept small.  The
 *    queue id {i} comes with MAIL from Sendmail, from DATA on with Postfix.)
 * The flags granted are kept in the connection's state, which is therefore
 * made at negotiation.
 */
#define RG_NR_FLAGS (SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY)

/* The connection's state, made by the first callback (negotiation, or
 * connect with an MTA that does not negotiate); freed in cb_close. */
static conn *conn_of(rgm_ctx *ctx)
{
    conn *c = rgm_getpriv(ctx);
    if (c == NULL) {
        c = rg_calloc(1, sizeof *c);
        __atomic_add_fetch(&live_sessions, 1, __ATOMIC_ACQ_REL);
        c->id = __atomic_add_fetch(&conn_counter, 1, __ATOMIC_RELAXED);
        rgm_setpriv(ctx, c);
    }
    return c;
}

static rgm_status cb_negotiate(rgm_ctx *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
    *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_SETSYMLIST | SMFIF_CHGFROM);
    conn_of(ctx)->chgfrom = (*pf0 & SMFIF_CHGFROM) != 0;
    *pf1 = f1 & (SMFIP_NOUNKNOWN | SMFIP_NOHELO | SMFIP_NODATA | RG_NR_FLAGS);
    conn_of(ctx)->nr = *pf1 & RG_NR_FLAGS;
    *pf2 = 0;
    *pf3 = 0;
    if (f0 & SMFIF_SETSYMLIST) {
        /* the macros relayguard needs, so the admin does not have to list them */
        rgm_setsymlist(ctx, SMFIM_CONNECT, "{client_addr} {client_port} {daemon_port}");
        rgm_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen} {i}");
        rgm_setsymlist(ctx, SMFIM_ENVRCPT, "{i}");
        rgm_setsymlist(ctx, SMFIM_DATA, "{i}");
        rgm_setsymlist(ctx, SMFIM_EOH, "{i}");
        rgm_setsymlist(ctx, SMFIM_EOM, "{i}");
    }
    return RGM_CONTINUE;
}

/* RGM_CONTINUE, or no reply at all where the MTA agreed to that. */
static rgm_status go_on(const conn *c, unsigned long nr_flag)
{
    return c && (c->nr & nr_flag) ? RGM_NOREPLY : RGM_CONTINUE;
}

/* A step that cannot go on: tempfail, or (no reply allowed) nothing now and
 * a tempfail at the next step that replies, which finds no message state. */
static rgm_status cannot_go_on(const conn *c, unsigned long nr_flag)
{
    return c && (c->nr & nr_flag) ? RGM_NOREPLY : RGM_TEMPFAIL;
}

static rgm_status cb_connect(rgm_ctx *ctx, char *hostname, struct sockaddr *sa)
{
    conn *c = conn_of(ctx);
    if (hostname)
        rg_strlcpy(c->client_name, hostname, sizeof c->client_name);
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)sa)->sin_addr, c->client_addr,
                  sizeof c->client_addr);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)sa)->sin6_addr, c->client_addr,
                  sizeof c->client_addr);
    else
        copy_macro(ctx, "{client_addr}", c->client_addr, sizeof c->client_addr);
    /* Postfix emulates SMTP for mail that did not come through smtpd
     * (sendmail/pickup, QMQP) and then sends port 0; such a session must
     * not refuse a recipient ("can't reject recipient in non-smtpd(8)
     * submission": Postfix retries the message forever), so its RCPT
     * refusals are given at end of headers instead. */
    const char *cport = rgm_getsymval(ctx, "{client_port}");
    const char *dport = rgm_getsymval(ctx, "{daemon_port}");
    c->nonsmtp = (cport && strcmp(cport, "0") == 0) || (dport && strcmp(dport, "0") == 0);
    return go_on(c, SMFIP_NR_CONN);
}

/* SIZE=n among the ESMTP parameters of MAIL FROM, 0 if absent. */
static uint64_t esmtp_size(char **argv)
{
    for (int i = 1; argv && argv[i]; i++) {
        if (strncasecmp(argv[i], "SIZE=", 5) == 0) {
            char *end;
            unsigned long long n = strtoull(argv[i] + 5, &end, 10);
            if (*end == '\0')
                return n;
        }
    }
    return 0;
}

/* Keep the message's first refusal; it is given at end of message. */
static void defer(msg *m, const rg_verdict *v)
{
    if (!m->deferred) {
        m->refusal = *v;
        m->deferred = 1;
    }
}

static rgm_status cb_envfrom(rgm_ctx *ctx, char **argv)
{
    conn *c = rgm_getpriv(ctx);
    if (c == NULL)
        return cannot_go_on(c, SMFIP_NR_MAIL);
    msg_end(c);                 /* a previous message that never ended */
    gen *g = gen_get();
    if (g == NULL)
        return cannot_go_on(c, SMFIP_NR_MAIL);
    msg *m = c->m = rg_calloc(1, sizeof *m);
    m->g = g;
    c->nmsg++;
    snprintf(m->msg_id, sizeof m->msg_id, "m-%llu-%u", c->id, c->nmsg);
    copy_macro(ctx, "{i}", m->qid, sizeof m->qid);
    copy_macro(ctx, "{auth_authen}", m->login, sizeof m->login);
    const char *from = (argv && argv[0]) ? argv[0] : "";
    rg_strlcpy(m->sender, from, sizeof m->sender);
    m->size_declared = esmtp_size(argv);
    m->local = c->nonsmtp ||
               (m->login[0] == '\0' && rg_localsub_smtp_client(&g->cfg->local, c->client_addr));
    /* The engine is first asked at RCPT, where it runs every MAIL check
     * too (account, sender domain, networks, countries, SIZE=): one Redis
     * round trip less per message, and envelope refusals come at the same
     * stage as from relayguard-policyd. */
    m->ours = -1;
    return go_on(c, SMFIP_NR_MAIL);
}

/* Append a copy of s to the list *v of *n strings. */
static void strv_push(char ***v, size_t *n, const char *s)
{
    *v = rg_realloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = rg_strdup(s);
}

/*
 * The RCPT checks of one recipient, at RCPT or (local submission) at end
 * of headers: -1 with v set when the engine refuses it; else 0, the
 * recipient counted and m->ours, m->account set by the first answer (not
 * relayguard's mail: counted without asking).
 */
static int rcpt_check(const conn *c, msg *m, const char *rcpt, rg_verdict *v)
{
    if (m->ours == 0) {
        m->nrcpt++;             /* not relayguard's mail (dunno at the first RCPT) */
        return 0;
    }
    rg_request r;
    base_request(c, m, RG_STAGE_RCPT, &r);
    r.recipient = rcpt;
    r.size = m->size_declared;
    *v = decide(m, &r);
    if (v->action == RG_REJECT || v->action == RG_TEMPFAIL)
        return -1;
    m->ours = v->action == RG_ACCEPT;
    rg_strlcpy(m->account, v->account, sizeof m->account);
    m->nrcpt++;
    return 0;
}

static rgm_status cb_envrcpt(rgm_ctx *ctx, char **argv)
{
    conn *c = rgm_getpriv(ctx);
    msg *m = c ? c->m : NULL;
    if (m == NULL)
        return RGM_TEMPFAIL;
    if (m->qid[0] == '\0')
        copy_macro(ctx, "{i}", m->qid, sizeof m->qid);
    const char *rcpt = (argv && argv[0]) ? argv[0] : "";
    if (m->local) {
        /* the submitter is known from a header: checked at end of headers */
        strv_push(&m->rcpts, &m->nrcpts, rcpt);
        return RGM_CONTINUE;
    }
    rg_verdict v;
    if (rcpt_check(c, m, rcpt, &v) < 0)
        return refuse(ctx, &v);
    if (m->ours == 1)           /* listed in a managed return path's record */
        strv_push(&m->rp_rcpts, &m->n_rp_rcpts, rcpt);
    return RGM_CONTINUE;
}

static rgm_status cb_header(rgm_ctx *ctx, char *name, char *value)
{
    conn *c = rgm_getpriv(ctx);
    msg *m = c ? c->m : NULL;
    if (m == NULL)
        return cannot_go_on(c, SMFIP_NR_HDR);
    if (name == NULL)
        name = "";
    if (value == NULL)
        value = "";
    if (m->nhdrs == m->caphdrs) {
        m->caphdrs = m->caphdrs ? 2 * m->caphdrs : 32;
        m->hdrs = rg_realloc(m->hdrs, m->caphdrs * sizeof *m->hdrs);
    }
    size_t nl = strlen(name), vl = strlen(value);
    char *p = rg_malloc(nl + vl + 2);
    memcpy(p, name, nl + 1);
    memcpy(p + nl + 1, value, vl + 1);
    m->hdrs[m->nhdrs].name = p;
    m->hdrs[m->nhdrs].value = p + nl + 1;
    m->nhdrs++;
    m->size += nl + vl + 4;
    if (strcasecmp(name, "From") == 0)
        m->nfrom++;
    if (m->local_token == NULL && strcasecmp(name, RG_LOCALSUB_HEADER) == 0)
        m->local_token = rg_strdup(value);
    return go_on(c, SMFIP_NR_HDR);
}

/* The From header values joined, so that two From headers read as two
 * addresses and the engine refuses them like any From with several. */
static char *from_values(const msg *m)
{
    size_t len = 1;
    for (size_t i = 0; i < m->nhdrs; i++)
        if (strcasecmp(m->hdrs[i].name, "From") == 0)
            len += strlen(m->hdrs[i].value) + 2;
    char *s = rg_malloc(len);
    s[0] = '\0';
    for (size_t i = 0; i < m->nhdrs; i++) {
        if (strcasecmp(m->hdrs[i].name, "From") != 0)
            continue;
        if (s[0])
            rg_strlcat(s, ", ", len);
        rg_strlcat(s, m->hdrs[i].value, len);
    }
    return s;
}

/* Decoration plan for an accepted message, made with the account in hand. */
typedef struct plan {
    msg *m;
    const char *from_domain;
    char err[256];
    int failed;
} plan;

static void plan_with_account(void *arg, const rg_account *a)
{
    plan *p = arg;
    msg *m = p->m;
    if (a == NULL)
        return;
    int n = rg_headers_for_account(a, m->login, m->g->cfg, m->added, p->err, sizeof p->err);
    if (n < 0) {
        p->failed = 1;
        return;
    }
    m->nadded = n;
    /* only mail of an account allowed for the domain is signed */
    if (p->from_domain && rg_account_allows_domain(a, p->from_domain))
        m->signer = rg_dkim_signer_new(m->g->keys, m->g->cfg, p->from_domain, time(NULL));
    for (int i = 0; m->signer && i < m->nadded; i++)
        rg_dkim_sign_also(m->signer, m->added[i].name);
}

/* Local submission: the RCPT checks of every recipient, now that the token
 * header is known; a refusal waits for end of message (Postfix bounces a
 * non-SMTP message; Sendmail's MSP hears it at end of data and bounces). */
static void rcpt_checks_at_eoh(const conn *c, msg *m)
{
    if (m->rcpts_checked)
        return;
    m->rcpts_checked = 1;
    for (size_t i = 0; i < m->nrcpts && !m->deferred; i++) {
        rg_verdict v;
        if (rcpt_check(c, m, m->rcpts[i], &v) < 0)
            defer(m, &v);
    }
}

/*
 * End of headers: the header From check and the decoration plan.  Its
 * verdict is given at end of message (SMFIP_NR_EOH: the MTA does not wait
 * here; the client sees the reply to DATA at the end either way).
 */
static rgm_status cb_eoh(rgm_ctx *ctx)
{
    conn *c = rgm_getpriv(ctx);
    msg *m = c ? c->m : NULL;
    if (m == NULL)
        return cannot_go_on(c, SMFIP_NR_EOH);
    if (m->qid[0] == '\0')
        copy_macro(ctx, "{i}", m->qid, sizeof m->qid);
    if (m->local)
        rcpt_checks_at_eoh(c, m);
    if (m->deferred || m->ours != 1)
        return go_on(c, SMFIP_NR_EOH);
    char *from = from_values(m);
    rg_request r;
    base_request(c, m, RG_STAGE_HEADER, &r);
    r.header_from = from;
    r.recipient_count = m->nrcpt;
    rg_verdict v = decide(m, &r);
    if (v.action == RG_REJECT || v.action == RG_TEMPFAIL) {
        free(from);
        defer(m, &v);
        return go_on(c, SMFIP_NR_EOH);
    }
    char addr[RG_ADDR_MAX];
    plan p = { .m = m };
    if (rg_header_from_addr(from, addr, sizeof addr) == 1)
        p.from_domain = rg_addr_domain(addr);
    free(from);
    rg_engine_with_account(m->g->engine, m->account, plan_with_account, &p);
    if (p.failed) {
        rg_error("%s: %s", m->qid[0] ? m->qid : "NOQUEUE", p.err);
        rg_verdict cfg_err = { .action = RG_TEMPFAIL, .code = 451, .dsn = "4.3.5",
                               .text = "relayguard: configuration error, try again later" };
        defer(m, &cfg_err);
    }
    return go_on(c, SMFIP_NR_EOH);
}

static rgm_status cb_body(rgm_ctx *ctx, unsigned char *buf, size_t len)
{
    conn *c = rgm_getpriv(ctx);
    msg *m = c ? c->m : NULL;
    if (m == NULL)
        return cannot_go_on(c, SMFIP_NR_BODY);
    m->size += len;
    if (m->signer)
        rg_dkim_body(m->signer, buf, len);
    return go_on(c, SMFIP_NR_BODY);
}


/* Remove inbound copies of relayguard's own headers (from the bottom, so
 * the indexes of the ones still to go do not move). */
static int strip_own_headers(rgm_ctx *ctx, msg *m, char *keep)
{
    for (size_t i = m->nhdrs; i-- > 0;) {
        keep[i] = 1;
        if (!rg_headers_is_own(m->hdrs[i].name, m->added, m->nadded))
            continue;
        int idx = 0;
        for (size_t j = 0; j <= i; j++)
            if (strcasecmp(m->hdrs[j].name, m->hdrs[i].name) == 0)
                idx++;
        if (rgm_chgheader(ctx, m->hdrs[i].name, idx, NULL) != RGM_SUCCESS)
            return -1;
        keep[i] = 0;
    }
    return 0;
}

static rgm_status cb_eom(rgm_ctx *ctx)
{
    conn *c = rgm_getpriv(ctx);
    msg *m = c ? c->m : NULL;
    rgm_status rc = RGM_CONTINUE;
    if (m == NULL)
        return RGM_TEMPFAIL;
    copy_macro(ctx, "{i}", m->qid, sizeof m->qid);
    if (m->local)
        rcpt_checks_at_eoh(c, m);       /* in case end of headers never came */
    char *keep = rg_calloc(m->nhdrs + 1, 1);
    if (m->deferred) {
        /* refused at end of headers, or (non-SMTP) at RCPT */
        rc = refuse(ctx, &m->refusal);
        goto done;
    }
    if (m->ours != 1) {
        /* not relayguard's mail: only make sure nobody forges our headers */
        if (strip_own_headers(ctx, m, keep) < 0)
            rc = RGM_TEMPFAIL;
        goto done;
    }
    rg_request r;
    base_request(c, m, RG_STAGE_EOM, &r);
    r.recipient_count = m->nrcpt;
    r.size = m->size;
    /* managed return path: every recipient (local submission, non-SMTP or
     * from a local_smtp_clients address such as Sendmail's MSP: all were
     * kept in rcpts and checked together at end of headers) */
    r.can_change_sender = c->chgfrom;
    r.recipients = (const char *const *)(m->local ? m->rcpts : m->rp_rcpts);
    r.n_recipients = (unsigned)(m->local ? m->nrcpts : m->n_rp_rcpts);
    rg_verdict v = decide(m, &r);
    if (v.action == RG_REJECT || v.action == RG_TEMPFAIL) {
        rc = refuse(ctx, &v);
        goto done;
    }
    if (v.return_path[0]) {
        /* the engine wrote the token's record before answering */
        char rp[RG_ADDR_MAX + 3];
        snprintf(rp, sizeof rp, "<%s>", v.return_path);
        if (rgm_chgfrom(ctx, rp, NULL) != RGM_SUCCESS)
            goto failed;
    }
    if (strip_own_headers(ctx, m, keep) < 0)
        goto failed;
    /* the account's headers at the top, in order */
    for (int i = m->nadded; i-- > 0;)
        if (rgm_insheader(ctx, 0, m->added[i].name, m->added[i].value) != RGM_SUCCESS)
            goto failed;
    if (m->signer) {
        size_t n = 0;
        rg_dkim_header *h = rg_calloc(m->nhdrs + (size_t)m->nadded + 1, sizeof *h);
        for (int i = 0; i < m->nadded; i++)
            h[n++] = (rg_dkim_header){ m->added[i].name, m->added[i].value };
        for (size_t i = 0; i < m->nhdrs; i++)
            if (keep[i])
                h[n++] = (rg_dkim_header){ m->hdrs[i].name, m->hdrs[i].value };
        char *sig[MAX_SIGNATURES], err[256];
        int ns = rg_dkim_sign(m->signer, h, n, sig, MAX_SIGNATURES, err, sizeof err);
        free(h);
        if (ns < 0) {
            rg_error("%s: DKIM: %s", m->qid[0] ? m->qid : "NOQUEUE", err);
            goto failed;
        }
        int bad = 0;
        for (int i = ns; i-- > 0;) {
            if (!bad && rgm_insheader(ctx, 0, "DKIM-Signature", sig[i]) != RGM_SUCCESS)
                bad = 1;
            free(sig[i]);
        }
        if (bad)
            goto failed;
        rg_debug("%s: signed (%d signature%s)", m->qid[0] ? m->qid : "NOQUEUE", ns,
                 ns == 1 ? "" : "s");
    }
    goto done;
failed:
    /* never accept a message half decorated: the client tries again */
    rgm_setreply(ctx, "451", "4.3.0", "relayguard: cannot sign the message, try again later");
    rc = RGM_TEMPFAIL;
done:
    free(keep);
    msg_end(c);
    return rc;
}

static rgm_status cb_abort(rgm_ctx *ctx)
{
    conn *c = rgm_getpriv(ctx);
    if (c)
        msg_end(c);
    return RGM_CONTINUE;
}

static rgm_status cb_close(rgm_ctx *ctx)
{
    conn *c = rgm_getpriv(ctx);
    if (c) {
        msg_end(c);
        free(c);
        rgm_setpriv(ctx, NULL);
        __atomic_sub_fetch(&live_sessions, 1, __ATOMIC_ACQ_REL);
    }
    return RGM_CONTINUE;
}

const rgm_desc rg_milter_desc = {
    .name = "relayguard",
    .flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGFROM,
    .connect = cb_connect,
    .helo = NULL,
    .envfrom = cb_envfrom,
    .envrcpt = cb_envrcpt,
    .header = cb_header,
    .eoh = cb_eoh,
    .body = cb_body,
    .eom = cb_eom,
    .abort = cb_abort,
    .close = cb_close,
    .unknown = NULL,
    .data = NULL,
    .negotiate = cb_negotiate,
};
