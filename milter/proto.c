/*
 * proto.c - the milter protocol, filter side, written for relayguard.
 *
 * Why not libmilter: libmilter runs a thread per MTA connection and pays
 * two poll()s and two read()s for every packet, plus a futex hand-off
 * between its threads; a message is about 40 packets (Postfix sends a
 * macro packet before every header).  Under bench/run-milter.sh (20
 * sessions, 4 KiB messages) a libmilter filter that does nothing
 * (bench/null-milter.c) cost 333-460 µs of CPU per message, 90 % of it in
 * the kernel (perf: context switches, poll; strace: 79 poll, 48 read, 26
 * futex and a thread creation per message), against a target of 100 µs
 * per message for the whole of relayguard-milter with Ed25519.  Here a
 * connection is a buffer, not a thread: one read() brings every packet
 * the MTA has pipelined (with SMFIP_NR_* most packets have no reply), the
 * replies of a step go out in one write(), and nothing is allocated per
 * packet once a connection's buffers have grown to the messages it sees.
 * Measurements: BENCHMARKS.md ("relayguard-milter against OpenDKIM").
 *
 * The packets (Sendmail's libmilter/docs and Postfix's milter8.c are the
 * references): a 4-byte length in network order (counting the command
 * byte), a command byte, the data; strings are NUL-terminated.  The
 * codec trusts nothing: a length of 0 or above RGM_MAX_PACKET, a string
 * without its NUL, an unknown command or a peer gone in the middle of a
 * packet are logged and close the connection; the MTA then applies its
 * milter_default_action (tempfail), so no mail is lost.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "util.h"

#define IN_MIN      (16 * 1024)         /* input buffer kept between messages */
#define OUT_MIN     (4 * 1024)
#define REPLY_MAX   1024
#define PROGRESS_WAIT_MS 10000

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf;

/* One stage's macros: the packet's pairs copied, and pointers into them. */
typedef struct macros {
    char *data;
    size_t cap;
    const char **kv;            /* name, value, name, value ... */
    size_t n, kvcap;            /* n pairs */
} macros;

struct rgm_ctx {
    const rgm_desc *desc;
    int fd;
    char peer[80];
    void *priv;
    unsigned long actions;      /* agreed SMFIF_* */
    unsigned long proto;        /* agreed SMFIP_* */
    unsigned long mta_actions;  /* what the MTA offered at negotiation */
    unsigned long mta_proto;
    int negotiated;
    int started;                /* a session exists: close callback owed */
    int in_msg;                 /* MAIL seen, no end of message or abort yet */
    int in_negotiate;
    int in_eom;
    char *symlist[RGM_STAGES];  /* rgm_setsymlist's lists (kept for the next connection) */
    size_t symcap[RGM_STAGES];
    int symset[RGM_STAGES];     /* symlist[s] was set during this negotiation */
    char reply[REPLY_MAX];      /* rgm_setreply, for the next refusal */
    buf in;
    size_t in_pos;              /* start of the first unparsed packet */
    buf out;
    macros mac[RGM_STAGES];
    char **argv;
    size_t argvcap;
    struct sockaddr_storage sa;
    int warned_nr;
};

/* ------------------------------------------------------------- buffers */

static void buf_reserve(buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    b->p = rg_realloc(b->p, cap);
    b->cap = cap;
}

static void out_put(rgm_ctx *c, const void *p, size_t n)
{
    buf_reserve(&c->out, n);
    memcpy(c->out.p + c->out.len, p, n);
    c->out.len += n;
}

static void out_u32(rgm_ctx *c, uint32_t v)
{
    uint32_t n = htonl(v);
    out_put(c, &n, 4);
}

static void out_str(rgm_ctx *c, const char *s)
{
    out_put(c, s, strlen(s) + 1);
}

/* Open a packet: returns where its length goes (patched by out_end). */
static size_t out_begin(rgm_ctx *c, char cmd)
{
    size_t at = c->out.len;
    out_u32(c, 0);
    out_put(c, &cmd, 1);
    return at;
}

static void out_end(rgm_ctx *c, size_t at)
{
    uint32_t n = htonl((uint32_t)(c->out.len - at - 4));
    memcpy(c->out.p + at, &n, 4);
}

static void out_simple(rgm_ctx *c, char cmd)
{
    out_end(c, out_begin(c, cmd));
}

/* ------------------------------------------------------------ the API */

void *rgm_getpriv(rgm_ctx *ctx)
{
    return ctx->priv;
}

void rgm_setpriv(rgm_ctx *ctx, void *priv)
{
    ctx->priv = priv;
}

/* "{i}" and "i" name the same macro (so do "{auth_authen}" and "auth_authen"). */
static int same_macro(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la >= 2 && a[0] == '{' && a[la - 1] == '}') {
        a++;
        la -= 2;
    }
    if (lb >= 2 && b[0] == '{' && b[lb - 1] == '}') {
        b++;
        lb -= 2;
    }
    return la == lb && memcmp(a, b, la) == 0;
}

const char *rgm_getsymval(rgm_ctx *ctx, const char *name)
{
    /* the latest stage first, as libmilter searches */
    for (int s = RGM_STAGES - 1; s >= 0; s--) {
        const macros *m = &ctx->mac[s];
        for (size_t i = 0; i < m->n; i++)
            if (same_macro(m->kv[2 * i], name))
                return m->kv[2 * i + 1];
    }
    return NULL;
}

int rgm_setsymlist(rgm_ctx *ctx, int stage, const char *list)
{
    if (!ctx->in_negotiate || stage < 0 || stage >= RGM_STAGES || list == NULL ||
        !(ctx->actions & SMFIF_SETSYMLIST))
        return RGM_FAILURE;
    size_t n = strlen(list) + 1;
    if (n > ctx->symcap[stage]) {
        ctx->symlist[stage] = rg_realloc(ctx->symlist[stage], n);
        ctx->symcap[stage] = n;
    }
    memcpy(ctx->symlist[stage], list, n);
    ctx->symset[stage] = 1;
    return RGM_SUCCESS;
}

int rgm_setreply(rgm_ctx *ctx, const char *rcode, const char *xcode, const char *text)
{
    if (rcode == NULL || strlen(rcode) != 3 || (rcode[0] != '4' && rcode[0] != '5') ||
        rcode[1] < '0' || rcode[1] > '9' || rcode[2] < '0' || rcode[2] > '9')
        return RGM_FAILURE;
    if (xcode && (xcode[0] != rcode[0] || xcode[1] != '.'))
        return RGM_FAILURE;
    if (text && strpbrk(text, "\r\n"))
        return RGM_FAILURE;
    int n = snprintf(ctx->reply, sizeof ctx->reply, "%s %s %s", rcode,
                     xcode ? xcode : (rcode[0] == '4' ? "4.0.0" : "5.0.0"), text ? text : "");
    if (n < 0 || (size_t)n >= sizeof ctx->reply) {
        ctx->reply[0] = '\0';
        return RGM_FAILURE;
    }
    return RGM_SUCCESS;
}

static int may_change(rgm_ctx *ctx, unsigned long action)
{
    return ctx->in_eom && (ctx->actions & action);
}

static int add_or_ins(rgm_ctx *ctx, char cmd, int idx, const char *name, const char *value)
{
    if (!may_change(ctx, SMFIF_ADDHDRS) || name == NULL || name[0] == '\0' || value == NULL)
        return RGM_FAILURE;
    size_t at = out_begin(ctx, cmd);
    if (cmd == SMFIR_INSHEADER)
        out_u32(ctx, (uint32_t)(idx < 0 ? 0 : idx));
    out_str(ctx, name);
    out_str(ctx, value);
    out_end(ctx, at);
    return RGM_SUCCESS;
}

int rgm_addheader(rgm_ctx *ctx, const char *name, const char *value)
{
    return add_or_ins(ctx, SMFIR_ADDHEADER, 0, name, value);
}

int rgm_insheader(rgm_ctx *ctx, int idx, const char *name, const char *value)
{
    return add_or_ins(ctx, SMFIR_INSHEADER, idx, name, value);
}

int rgm_chgheader(rgm_ctx *ctx, const char *name, int idx, const char *value)
{
    if (!may_change(ctx, SMFIF_CHGHDRS) || name == NULL || name[0] == '\0' || idx < 0)
        return RGM_FAILURE;
    size_t at = out_begin(ctx, SMFIR_CHGHEADER);
    out_u32(ctx, (uint32_t)idx);
    out_str(ctx, name);
    out_str(ctx, value ? value : "");   /* empty: delete */
    out_end(ctx, at);
    return RGM_SUCCESS;
}

int rgm_chgfrom(rgm_ctx *ctx, const char *from, const char *args)
{
    if (!may_change(ctx, SMFIF_CHGFROM) || from == NULL || from[0] == '\0')
        return RGM_FAILURE;
    size_t at = out_begin(ctx, SMFIR_CHGFROM);
    out_str(ctx, from);
    if (args && args[0])
        out_str(ctx, args);
    out_end(ctx, at);
    return RGM_SUCCESS;
}

static int rcpt_change(rgm_ctx *ctx, unsigned long action, char cmd, const char *rcpt,
                       const char *args)
{
    if (!may_change(ctx, action) || rcpt == NULL || rcpt[0] == '\0')
        return RGM_FAILURE;
    size_t at = out_begin(ctx, cmd);
    out_str(ctx, rcpt);
    if (cmd == SMFIR_ADDRCPT_PAR)
        out_str(ctx, args ? args : "");
    out_end(ctx, at);
    return RGM_SUCCESS;
}

int rgm_addrcpt(rgm_ctx *ctx, const char *rcpt)
{
    return rcpt_change(ctx, SMFIF_ADDRCPT, SMFIR_ADDRCPT, rcpt, NULL);
}

int rgm_addrcpt_par(rgm_ctx *ctx, const char *rcpt, const char *args)
{
    return rcpt_change(ctx, SMFIF_ADDRCPT_PAR, SMFIR_ADDRCPT_PAR, rcpt, args);
}

int rgm_delrcpt(rgm_ctx *ctx, const char *rcpt)
{
    return rcpt_change(ctx, SMFIF_DELRCPT, SMFIR_DELRCPT, rcpt, NULL);
}

int rgm_progress(rgm_ctx *ctx)
{
    if (!ctx->in_eom)
        return RGM_FAILURE;
    out_simple(ctx, SMFIR_PROGRESS);
    if (ctx->fd < 0)
        return RGM_SUCCESS;
    /* the MTA waits for it now: write everything queued so far */
    while (ctx->out.len > 0) {
        ssize_t w = write(ctx->fd, ctx->out.p, ctx->out.len);
        if (w > 0) {
            rgm_ctx_sent(ctx, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = { .fd = ctx->fd, .events = POLLOUT };
            if (poll(&p, 1, PROGRESS_WAIT_MS) > 0)
                continue;
        }
        return RGM_FAILURE;
    }
    return RGM_SUCCESS;
}

/* ------------------------------------------------------------- replies */

static const char *status_name(rgm_status st)
{
    static const char *const names[] = { "continue", "reject", "discard", "accept",
                                         "tempfail", "noreply", "skip" };
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "?";
}

/* The reply to a step; none if the MTA granted nr_flag (no reply). */
static void step_reply(rgm_ctx *c, rgm_status st, unsigned long nr_flag)
{
    if (nr_flag && (c->proto & nr_flag)) {
        if (st != RGM_CONTINUE && st != RGM_NOREPLY && !c->warned_nr) {
            rg_warn("warning: milter %s: %s for a step without reply: ignored", c->peer,
                    status_name(st));
            c->warned_nr = 1;
        }
        c->reply[0] = '\0';
        return;
    }
    switch (st) {
    case RGM_REJECT:
    case RGM_TEMPFAIL:
        if (c->reply[0] == (st == RGM_REJECT ? '5' : '4')) {
            size_t at = out_begin(c, SMFIR_REPLYCODE);
            out_str(c, c->reply);
            out_end(c, at);
        } else
            out_simple(c, st == RGM_REJECT ? SMFIR_REJECT : SMFIR_TEMPFAIL);
        break;
    case RGM_ACCEPT:
        out_simple(c, SMFIR_ACCEPT);
        break;
    case RGM_DISCARD:
        out_simple(c, SMFIR_DISCARD);
        break;
    case RGM_SKIP:
        out_simple(c, (c->proto & SMFIP_SKIP) ? SMFIR_SKIP : SMFIR_CONTINUE);
        break;
    case RGM_CONTINUE:
    case RGM_NOREPLY:
    default:
        out_simple(c, SMFIR_CONTINUE);
        break;
    }
    c->reply[0] = '\0';
}

/* ------------------------------------------------------------- packets */

/* The peer's address for a log line (looked up only then). */
static void peer_name(rgm_ctx *c)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return;
    snprintf(c->peer, sizeof c->peer, "%.64s:%.8s", host, port);
}

/* The connection is done for: log in the MTA's style, then close. */
static rgm_io bad(rgm_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static rgm_io bad(rgm_ctx *c, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    peer_name(c);
    rg_warn("warning: milter %s: %s; closing the connection", c->peer, why);
    return RGM_IO_ERROR;
}

/* Split data (size bytes, the last a NUL) into c->argv; the count. */
static size_t split(rgm_ctx *c, char *data, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < size;) {
        if (n + 2 > c->argvcap) {
            c->argvcap = c->argvcap ? 2 * c->argvcap : 16;
            c->argv = rg_realloc(c->argv, c->argvcap * sizeof *c->argv);
        }
        c->argv[n++] = data + i;
        i += strlen(data + i) + 1;
    }
    if (c->argvcap == 0) {
        c->argvcap = 16;
        c->argv = rg_realloc(c->argv, c->argvcap * sizeof *c->argv);
    }
    c->argv[n] = NULL;
    return n;
}

static void clear_macros(rgm_ctx *c, int from)
{
    for (int s = from; s < RGM_STAGES; s++)
        c->mac[s].n = 0;
}

static int stage_of(char cmd)
{
    switch (cmd) {
    case SMFIC_CONNECT: return SMFIM_CONNECT;
    case SMFIC_HELO: return SMFIM_HELO;
    case SMFIC_MAIL: return SMFIM_ENVFROM;
    case SMFIC_RCPT: return SMFIM_ENVRCPT;
    case SMFIC_DATA: return SMFIM_DATA;
    case SMFIC_BODYEOB: return SMFIM_EOM;
    case SMFIC_EOH: return SMFIM_EOH;
    case SMFIC_HEADER: return SMFIM_EOH;    /* Postfix sends the EOH list with headers */
    default: return -1;
    }
}

static rgm_io do_macro(rgm_ctx *c, char *data, size_t size)
{
    if (size < 1)
        return bad(c, "%s packet of %lu bytes", "macro", size);
    int s = stage_of(data[0]);
    if (s < 0)
        return RGM_IO_MORE;     /* macros of a step relayguard never sees */
    if (s == SMFIM_ENVFROM)
        clear_macros(c, SMFIM_ENVRCPT);         /* a new message */
    macros *m = &c->mac[s];
    m->n = 0;
    size--;
    data++;
    if (size == 0)
        return RGM_IO_MORE;
    if (data[size - 1] != '\0')
        return bad(c, "%s packet without its final NUL (%lu bytes)", "macro", size + 1);
    if (size > m->cap) {
        free(m->data);
        m->data = rg_malloc(size);
        m->cap = size;
    }
    memcpy(m->data, data, size);
    size_t n = 0;
    for (size_t i = 0; i < size; i += strlen(m->data + i) + 1) {
        if (n + 1 > m->kvcap) {
            m->kvcap = m->kvcap ? 2 * m->kvcap : 16;
            m->kv = rg_realloc(m->kv, m->kvcap * sizeof *m->kv);
        }
        m->kv[n++] = m->data + i;
    }
    m->n = n / 2;               /* a name without a value is dropped */
    return RGM_IO_MORE;
}

static rgm_io do_optneg(rgm_ctx *c, const unsigned char *data, size_t size)
{
    if (size < MILTER_OPTLEN)
        return bad(c, "%s packet of %lu bytes", "option negotiation", size);
    uint32_t v[3];
    memcpy(v, data, sizeof v);
    unsigned long version = ntohl(v[0]), f0 = ntohl(v[1]), f1 = ntohl(v[2]);
    if (version < 2)
        return bad(c, "%s %lu is too old", "MTA protocol version", version);
    const rgm_desc *d = c->desc;
    unsigned long pf0, pf1, pf2 = 0, pf3 = 0;
    for (int s = 0; s < RGM_STAGES; s++) {
        c->symset[s] = 0;
    }
    c->started = 1;
    if (d->negotiate) {
        c->in_negotiate = 1;
        c->actions = f0;        /* for rgm_setsymlist while deciding */
        pf0 = pf1 = 0;
        rgm_status st = d->negotiate(c, f0, f1, 0, 0, &pf0, &pf1, &pf2, &pf3);
        c->in_negotiate = 0;
        if (st != RGM_CONTINUE)
            return bad(c, "%s the negotiation (%lu)", "the filter refused", (unsigned long)st);
        if ((pf0 & ~f0) != 0)
            return bad(c, "%s 0x%lx", "the filter wants actions the MTA does not offer:",
                       pf0 & ~f0);
        if ((pf1 & ~f1) != 0)
            return bad(c, "%s 0x%lx", "the filter wants protocol steps the MTA does not offer:",
                       pf1 & ~f1);
    } else {
        pf0 = d->flags & f0;
        pf1 = 0;
        if (!d->connect) pf1 |= SMFIP_NOCONNECT;
        if (!d->helo) pf1 |= SMFIP_NOHELO;
        if (!d->envfrom) pf1 |= SMFIP_NOMAIL;
        if (!d->envrcpt) pf1 |= SMFIP_NORCPT;
        if (!d->body) pf1 |= SMFIP_NOBODY;
        if (!d->header) pf1 |= SMFIP_NOHDRS;
        if (!d->eoh) pf1 |= SMFIP_NOEOH;
        if (!d->unknown) pf1 |= SMFIP_NOUNKNOWN;
        if (!d->data) pf1 |= SMFIP_NODATA;
        pf1 &= f1;
    }
    c->actions = pf0;
    c->proto = pf1;
    c->mta_actions = f0;
    c->mta_proto = f1;
    c->negotiated = 1;
    size_t at = out_begin(c, SMFIC_OPTNEG);
    out_u32(c, version < SMFI_PROT_VERSION ? (uint32_t)version : SMFI_PROT_VERSION);
    out_u32(c, (uint32_t)pf0);
    out_u32(c, (uint32_t)pf1);
    for (int s = 0; s < RGM_STAGES; s++) {
        if (c->symset[s] && (pf0 & SMFIF_SETSYMLIST)) {
            out_u32(c, (uint32_t)s);
            out_str(c, c->symlist[s]);
        }
    }
    out_end(c, at);
    return RGM_IO_MORE;
}

static rgm_io do_connect(rgm_ctx *c, char *data, size_t size)
{
    /* host NUL family [port(2) address NUL]: no address for family 'U' */
    char *host = data;
    char *nul = memchr(data, '\0', size);
    size_t hl = nul ? (size_t)(nul - data) + 1 : size;
    if (nul == NULL || hl >= size)
        return bad(c, "%s packet of %lu bytes", "connect", size);
    char family = data[hl];
    struct sockaddr *sa = NULL;
    memset(&c->sa, 0, sizeof c->sa);
    if (family != SMFIA_UNKNOWN) {
        if (size < hl + 1 + 2 + 1 || data[size - 1] != '\0')
            return bad(c, "%s packet of %lu bytes", "connect", size);
        uint16_t port;
        memcpy(&port, data + hl + 1, 2);
        char *addr = data + hl + 3;
        if (strncasecmp(addr, "IPv6:", 5) == 0)
            addr += 5;
        if (family == SMFIA_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&c->sa;
            if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = port;
                sa = (struct sockaddr *)in;
            }
        } else if (family == SMFIA_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&c->sa;
            if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = port;
                sa = (struct sockaddr *)in6;
            }
        } else if (family == SMFIA_UNIX) {
            struct sockaddr_un *un = (struct sockaddr_un *)&c->sa;
            un->sun_family = AF_UNIX;
            rg_strlcpy(un->sun_path, addr, sizeof un->sun_path);
            sa = (struct sockaddr *)un;
        }
    }
    c->started = 1;
    rgm_status st = c->desc->connect ? c->desc->connect(c, host, sa) : RGM_CONTINUE;
    step_reply(c, st, SMFIP_NR_CONN);
    return RGM_IO_MORE;
}

/* End of a message (end of message or abort): its macros go too. */
static void message_done(rgm_ctx *c)
{
    c->in_msg = 0;
    clear_macros(c, SMFIM_ENVFROM);
}

/* The close callback, once per session (QUIT, QUIT_NC or a lost peer). */
static void session_end(rgm_ctx *c)
{
    if (c->in_msg && c->desc->abort)
        c->desc->abort(c);
    c->in_msg = 0;
    if (c->started && c->desc->close)
        c->desc->close(c);
    c->started = 0;
    c->priv = NULL;
    clear_macros(c, SMFIM_CONNECT);
}

/* One packet: cmd and its data (size bytes, inside the input buffer). */
static rgm_io packet(rgm_ctx *c, char cmd, char *data, size_t size)
{
    const rgm_desc *d = c->desc;
    rgm_status st;

    /* commands whose data is one or more strings end with a NUL */
    switch (cmd) {
    case SMFIC_HELO:
    case SMFIC_MAIL:
    case SMFIC_RCPT:
    case SMFIC_HEADER:
    case SMFIC_UNKNOWN:
        if (size == 0 || data[size - 1] != '\0')
            return bad(c, "%s packet without its final NUL (%lu bytes)",
                       cmd == SMFIC_HELO ? "HELO"
                       : cmd == SMFIC_MAIL ? "MAIL" : cmd == SMFIC_RCPT ? "RCPT"
                       : cmd == SMFIC_HEADER ? "header" : "unknown-command", size);
        break;
    default:
        break;
    }

    switch (cmd) {
    case SMFIC_OPTNEG:
        return do_optneg(c, (const unsigned char *)data, size);
    case SMFIC_MACRO:
        return do_macro(c, data, size);
    case SMFIC_CONNECT:
        return do_connect(c, data, size);
    case SMFIC_HELO:
        c->started = 1;
        st = d->helo ? d->helo(c, data) : RGM_CONTINUE;
        step_reply(c, st, SMFIP_NR_HELO);
        return RGM_IO_MORE;
    case SMFIC_MAIL:
        c->started = 1;
        c->in_msg = 1;
        split(c, data, size);
        st = d->envfrom ? d->envfrom(c, c->argv) : RGM_CONTINUE;
        step_reply(c, st, SMFIP_NR_MAIL);
        return RGM_IO_MORE;
    case SMFIC_RCPT:
        split(c, data, size);
        st = d->envrcpt ? d->envrcpt(c, c->argv) : RGM_CONTINUE;
        step_reply(c, st, SMFIP_NR_RCPT);
        return RGM_IO_MORE;
    case SMFIC_DATA:
        st = d->data ? d->data(c) : RGM_CONTINUE;
        step_reply(c, st, SMFIP_NR_DATA);
        return RGM_IO_MORE;
    case SMFIC_UNKNOWN:
        st = d->unknown ? d->unknown(c, data) : RGM_CONTINUE;
        step_reply(c, st, SMFIP_NR_UNKN);
        return RGM_IO_MORE;
    case SMFIC_HEADER: {
        size_t nl = strlen(data) + 1;
        if (nl >= size)
            return bad(c, "%s packet of %lu bytes", "header", size);
        st = d->header ? d->header(c, data, data + nl) : RGM_CONTINUE;
        step_reply(c, st, SMFIP_NR_HDR);
        return RGM_IO_MORE;
    }
    case SMFIC_EOH:
        st = d->eoh ? d->eoh(c) : RGM_CONTINUE;
        step_reply(c, st, SMFIP_NR_EOH);
        return RGM_IO_MORE;
    case SMFIC_BODY:
        st = d->body ? d->body(c, (unsigned char *)data, size) : RGM_CONTINUE;
        step_reply(c, st, SMFIP_NR_BODY);
        return RGM_IO_MORE;
    case SMFIC_BODYEOB:
        if (size > 0 && d->body)
            (void)d->body(c, (unsigned char *)data, size);      /* the last chunk */
        c->in_eom = 1;
        st = d->eom ? d->eom(c) : RGM_CONTINUE;
        c->in_eom = 0;
        step_reply(c, st == RGM_NOREPLY || st == RGM_SKIP ? RGM_CONTINUE : st, 0);
        message_done(c);
        return RGM_IO_MORE;
    case SMFIC_ABORT:
        if (d->abort)
            (void)d->abort(c);  /* no reply */
        message_done(c);
        c->reply[0] = '\0';
        return RGM_IO_MORE;
    case SMFIC_QUIT:
        session_end(c);
        return RGM_IO_QUIT;
    case SMFIC_QUIT_NC:
        /* The MTA keeps the connection for a new SMTP session, with the
         * options agreed: the filter is told them again (its negotiate
         * callback runs, its answer is not sent), so the new session starts
         * from the state a negotiation leaves, as the first one did. */
        session_end(c);
        if (c->negotiated && d->negotiate) {
            unsigned long pf0 = 0, pf1 = 0, pf2 = 0, pf3 = 0;
            c->in_negotiate = 1;
            unsigned long agreed = c->actions;
            c->actions = c->mta_actions;
            (void)d->negotiate(c, c->mta_actions, c->mta_proto, 0, 0, &pf0, &pf1, &pf2, &pf3);
            c->actions = agreed;
            c->in_negotiate = 0;
            c->started = 1;
        }
        return RGM_IO_MORE;
    default:
        return bad(c, "%s 0x%02lx", "unknown command", (unsigned long)(unsigned char)cmd);
    }
}

/* ------------------------------------------------------------- the codec */

rgm_ctx *rgm_ctx_new(const rgm_desc *desc, int fd, const char *peer)
{
    rgm_ctx *c = rg_calloc(1, sizeof *c);
    c->desc = desc;
    c->fd = fd;
    rg_strlcpy(c->peer, peer ? peer : "?", sizeof c->peer);
    buf_reserve(&c->in, IN_MIN);
    buf_reserve(&c->out, OUT_MIN);
    return c;
}

void rgm_ctx_end(rgm_ctx *c)
{
    session_end(c);
    c->fd = -1;
    c->actions = c->proto = c->mta_actions = c->mta_proto = 0;
    c->negotiated = c->in_negotiate = c->in_eom = 0;
    for (int s = 0; s < RGM_STAGES; s++)
        c->symset[s] = 0;
    c->reply[0] = '\0';
    c->in.len = c->in_pos = 0;
    c->out.len = 0;
    c->warned_nr = 0;
    rgm_ctx_trim(c);
}

void rgm_ctx_reuse(rgm_ctx *c, int fd, const char *peer)
{
    c->fd = fd;
    rg_strlcpy(c->peer, peer ? peer : "?", sizeof c->peer);
}

void rgm_ctx_free(rgm_ctx *c)
{
    if (c == NULL)
        return;
    session_end(c);
    for (int s = 0; s < RGM_STAGES; s++) {
        free(c->mac[s].data);
        free(c->mac[s].kv);
        free(c->symlist[s]);
    }
    free(c->argv);
    free(c->in.p);
    free(c->out.p);
    free(c);
}

unsigned char *rgm_ctx_inbuf(rgm_ctx *c, size_t *room)
{
    /* a packet whose length is known gets all the room it needs at once */
    size_t pending = c->in.len - c->in_pos, want = 4096;
    if (pending >= 4) {
        uint32_t n;
        memcpy(&n, c->in.p + c->in_pos, 4);
        n = ntohl(n);
        if (n <= RGM_MAX_PACKET && 4 + (size_t)n > pending)
            want = 4 + (size_t)n - pending;
    }
    if (c->in_pos > 0 && c->in.cap - c->in.len < want) {
        memmove(c->in.p, c->in.p + c->in_pos, pending);
        c->in.len = pending;
        c->in_pos = 0;
    }
    buf_reserve(&c->in, want);
    *room = c->in.cap - c->in.len;
    return c->in.p + c->in.len;
}

rgm_io rgm_ctx_input(rgm_ctx *c, size_t n)
{
    c->in.len += n;
    for (;;) {
        size_t pending = c->in.len - c->in_pos;
        if (pending < 4)
            break;
        uint32_t len;
        memcpy(&len, c->in.p + c->in_pos, 4);
        len = ntohl(len);
        if (len == 0 || len > RGM_MAX_PACKET)
            return bad(c, "packet length %lu out of range (1 to %d)", (unsigned long)len, RGM_MAX_PACKET);
        if (pending < 4 + (size_t)len)
            break;
        char *p = (char *)c->in.p + c->in_pos + 4;
        c->in_pos += 4 + (size_t)len;
        rgm_io r = packet(c, p[0], p + 1, len - 1);
        if (r != RGM_IO_MORE)
            return r;
    }
    if (c->in_pos == c->in.len)
        c->in_pos = c->in.len = 0;
    return RGM_IO_MORE;
}

rgm_io rgm_ctx_eof(rgm_ctx *c)
{
    size_t pending = c->in.len - c->in_pos;
    if (pending > 0)
        return bad(c, "%s (%lu bytes of a packet)", "connection lost in the middle of a packet",
                   pending);
    return RGM_IO_QUIT;
}

const unsigned char *rgm_ctx_output(rgm_ctx *c, size_t *len)
{
    *len = c->out.len;
    return c->out.p;
}

void rgm_ctx_sent(rgm_ctx *c, size_t n)
{
    if (n >= c->out.len) {
        c->out.len = 0;
        return;
    }
    memmove(c->out.p, c->out.p + n, c->out.len - n);
    c->out.len -= n;
}

void rgm_ctx_trim(rgm_ctx *c)
{
    size_t pending = c->in.len - c->in_pos;
    if (c->in_msg)
        return;                 /* body chunks keep coming: keep the room */
    if (c->in.cap > IN_MIN && pending <= IN_MIN) {
        memmove(c->in.p, c->in.p + c->in_pos, pending);
        c->in.len = pending;
        c->in_pos = 0;
        c->in.p = rg_realloc(c->in.p, IN_MIN);
        c->in.cap = IN_MIN;
    }
    if (c->out.cap > OUT_MIN && c->out.len <= OUT_MIN) {
        c->out.p = rg_realloc(c->out.p, OUT_MIN);
        c->out.cap = OUT_MIN;
    }
}

int rgm_ctx_connected(const rgm_ctx *c)
{
    return c->started;
}
