/*
 * lmtp.c - "relayguard bounce --lmtp SPEC": the bounce loop as a resident
 * LMTP server (RFC 2033).  The MTA delivers mail for the bounce domain to
 * it (Postfix's lmtp transport, Exim's lmtp transport) instead of starting
 * one "relayguard bounce" process per bounce: the process start (GLib,
 * GMime, OpenSSL, the config: about 4 ms of CPU) is paid once, and a bounce
 * costs its parse and its Redis writes.
 *
 * Every message runs the pipe command's code path (cli/bounce.c,
 * rg_bounce_loop_run) once per accepted recipient, and each recipient gets
 * its own reply after the final dot, as LMTP wants:
 *   250 2.0.0  recorded (suppressed, counted, or consumed with a log line
 *              and an event, exactly where the pipe command exits 0)
 *   451 4.3.0  not recorded now (Redis unreachable, forwarding failed):
 *              the MTA keeps the bounce and retries, so none is lost
 *   552 5.3.4  larger than --size-limit; 550 5.6.0 an empty message:
 *              what can never be processed
 * Nothing is answered 250 before it is written: a client that goes away
 * before the replies, or a server stopped mid-message, leaves the message
 * with the MTA.
 *
 * Why the protocol is hand-written: there is no well-kept C library for the
 * server side of LMTP (or SMTP) to link; the MTAs each carry their own
 * (Postfix smtpd, Dovecot's lib-smtp inside Dovecot), and none is packaged
 * as a library.  What a final delivery agent must speak is small - LHLO,
 * MAIL, RCPT, DATA, RSET, NOOP, QUIT with PIPELINING, ENHANCEDSTATUSCODES,
 * 8BITMIME and SIZE - and libevent's bufferevents do the I/O, buffering and
 * timeouts.
 *
 * One thread, one libevent loop, any number of connections.  A message is
 * handled at its final dot, synchronously: the parse is CPU work (about
 * 50 us) and the store calls are a few round trips to Redis, bounded by
 * store_timeout; while Redis hangs every client waits that long at most.
 *
 * Limits: a command line of CMD_LINE_MAX bytes (longer: 500 5.5.2, and the
 * line is skipped); data lines of any length (taken in pieces), the message
 * bounded by --size-limit (the rest read and dropped, then 552); RCPT_MAX
 * recipients; a NUL byte in a command is refused, bytes of any value in a
 * message are the parser's business (it never fails on them); an idle
 * client is dropped after IDLE_SECS, one that only errs after ERRORS_MAX.
 *
 * SIGHUP reloads relayguard.conf (the store, the bounce keys, the log
 * level; the listen address and user take a restart); SIGTERM and SIGINT
 * stop accepting, finish the transactions under way and stop (at most
 * DRAIN_SECS; an unfinished transaction got no 250, so the MTA retries).
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "bounce_loop.h"
#include "daemon.h"
#include "log.h"
#include "util.h"
#include "verp.h"

#define IDENT          "relayguard-bounce"
#define CMD_LINE_MAX   2048       /* RFC 5321 4.5.3.1.4 says 512; parameters make lines longer */
#define DATA_PIECE     65536      /* a longer data line is taken in pieces of this */
#define RCPT_MAX       1000       /* recipients of one transaction */
#define OUT_MAX        (256u << 10) /* replies queued for a client that does not read: stop reading */
#define ERRORS_MAX     20         /* bad commands before the client is dropped */
#define IDLE_SECS      300
#define DRAIN_SECS     30
#define REPLY_TEXT_MAX 400        /* of a reply's free text (a reply line is 512 at most) */

typedef enum cstate {
    ST_CMD,                     /* reading commands */
    ST_SKIP,                    /* dropping the rest of a command line that was too long */
    ST_DATA,                    /* reading the message */
    ST_CLOSING                  /* the last reply is being written; then freed */
} cstate;

typedef struct server server;
typedef struct lconn lconn;

struct lconn {
    server *srv;
    lconn *prev, *next;
    struct bufferevent *bev;
    char peer[80];              /* "unix", "127.0.0.1:2424", "[::1]:2424" */
    cstate st;
    bool lhlo;                  /* LHLO seen */
    bool mail;                  /* a transaction is open (MAIL accepted) */
    bool too_big;               /* the message passed the size limit: dropped */
    bool bol;                   /* in DATA: at the start of a line */
    bool out_full;              /* reading paused until the replies are written */
    char from[RG_ADDR_MAX];
    char **rcpt;                /* accepted recipients, as given */
    size_t nrcpt, rcpt_cap;
    char *msg;                  /* the message, dot-unstuffed, LF line ends */
    size_t mlen, mcap;
    size_t got;                 /* bytes of DATA received (also past the limit) */
    unsigned errors;
};

struct server {
    struct event_base *base;
    struct evconnlistener *lis;
    struct event *accept_pause;
    struct event *drain_timer;
    struct event *sig_hup, *sig_term, *sig_int;
    const rg_lmtp_opts *o;
    char *conf_path;
    rg_config *cfg;
    rg_admin *ad;               /* the store connection, kept across messages */
    bool is_inet;
    bool draining;
    lconn *conns;
    unsigned nconns;
    char host[256];
    unsigned long n_msgs, n_rcpt_ok, n_rcpt_retry;
};

static void on_read(struct bufferevent *bev, void *arg);

/* ---- connections --------------------------------------------------------- */

static void
txn_reset(lconn *c)
{
    for (size_t i = 0; i < c->nrcpt; i++)
        free(c->rcpt[i]);
    c->nrcpt = 0;
    c->mail = false;
    c->from[0] = '\0';
    c->mlen = 0;
    c->got = 0;
    c->too_big = false;
    if (c->mcap > (1u << 20)) {    /* a large message's buffer is not kept */
        free(c->msg);
        c->msg = NULL;
        c->mcap = 0;
    }
}

static void
conn_free(lconn *c)
{
    server *s = c->srv;

    txn_reset(c);
    free(c->rcpt);
    free(c->msg);
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    free(c);
    if (s->draining && s->nconns == 0)
        event_base_loopbreak(s->base);
}

static void __attribute__((format(printf, 2, 3)))
reply(lconn *c, const char *fmt, ...)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
}

/* After a last reply: write it, then free the connection (on_write); nothing
 * more is read.  Never frees now, so the caller may still look at c->st. */
static void
conn_close_after_write(lconn *c)
{
    c->st = ST_CLOSING;
    bufferevent_disable(c->bev, EV_READ);
}

/* Printable text for a reply line: no control bytes, at most REPLY_TEXT_MAX. */
static const char *
reply_text(const char *s, char *buf, size_t len)
{
    size_t k = 0;
    if (len > REPLY_TEXT_MAX)
        len = REPLY_TEXT_MAX;
    for (; *s && k + 1 < len; s++)
        buf[k++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
    buf[k] = '\0';
    return buf;
}

/* ---- the message --------------------------------------------------------- */

static void
msg_append(lconn *c, const char *p, size_t n)
{
    c->got += n;
    if (c->too_big || n == 0)
        return;
    if (c->mlen + n > c->srv->o->size_limit) {
        c->too_big = true;
        return;
    }
    c->msg = rg_grow(c->msg, &c->mcap, c->mlen + n, 1, 16384);
    memcpy(c->msg + c->mlen, p, n);
    c->mlen += n;
}

/* The final dot: handle the message for each recipient, one reply each. */
static void
end_of_data(lconn *c)
{
    server *s = c->srv;
    char text[REPLY_TEXT_MAX + 1], clean[REPLY_TEXT_MAX + 1];

    s->n_msgs++;
    if (c->too_big || c->mlen == 0) {
        for (size_t i = 0; i < c->nrcpt; i++) {
            if (c->too_big)
                reply(c, "552 5.3.4 <%s> message too big (%zu bytes; the limit is %zu)",
                      c->rcpt[i], c->got, s->o->size_limit);
            else
                reply(c, "550 5.6.0 <%s> empty message: nothing to read", c->rcpt[i]);
        }
        rg_warn("lmtp: %s: from=<%s> nrcpt=%zu size=%zu: refused: %s", c->peer, c->from,
                c->nrcpt, c->got, c->too_big ? "message too big" : "empty message");
        txn_reset(c);
        return;
    }
    rg_bounce_loop_msg m;
    rg_bounce_loop_msg_init(&m, c->msg, c->mlen);
    bool store_down = false;
    for (size_t i = 0; i < c->nrcpt; i++) {
        bool fresh = s->ad == NULL;
        rg_bounce_loop_result r = RG_BOUNCE_LOOP_RETRY;
        if (!store_down) {
            r = rg_bounce_loop_run(s->cfg, &s->ad, &m, c->rcpt[i], NULL, text, sizeof text);
            /* A kept connection that failed may only have gone stale (Redis
             * restarted): one more try on a new one.  A retry is harmless: a
             * suppression is written once, a soft bounce counted once. */
            if (r == RG_BOUNCE_LOOP_RETRY && !fresh && s->ad == NULL)
                r = rg_bounce_loop_run(s->cfg, &s->ad, &m, c->rcpt[i], NULL, text, sizeof text);
            /* the store failed on a fresh connection too: the other
             * recipients are not tried (each would wait for the timeout) */
            store_down = r == RG_BOUNCE_LOOP_RETRY && s->ad == NULL;
        }
        reply_text(text, clean, sizeof clean);
        if (r == RG_BOUNCE_LOOP_DONE) {
            s->n_rcpt_ok++;
            reply(c, "250 2.0.0 <%s> %s", c->rcpt[i], clean);
        } else {
            s->n_rcpt_retry++;
            reply(c, "451 4.3.0 <%s> not recorded, try again later: %s", c->rcpt[i], clean);
        }
        rg_info("lmtp: %s: from=<%s> to=<%s> nrcpt=%zu size=%zu status=%s (%s)", c->peer,
                c->from, c->rcpt[i], c->nrcpt, c->mlen,
                r == RG_BOUNCE_LOOP_DONE ? "done" : "deferred", clean);
    }
    rg_bounce_loop_msg_clear(&m);
    txn_reset(c);
}

/*
 * Take DATA from in: whole lines, or a piece of a line longer than
 * DATA_PIECE.  false when more input is needed.
 */
static bool
data_step(lconn *c, struct evbuffer *in)
{
    size_t eol_len = 0;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
    size_t len;
    bool whole = p.pos >= 0;

    if (whole) {
        len = (size_t)p.pos;
    } else {
        len = evbuffer_get_length(in);
        if (len < DATA_PIECE)
            return false;
        len = DATA_PIECE;
    }
    char *line = (char *)evbuffer_pullup(in, (ev_ssize_t)len);
    if (len > 0 && line == NULL)
        return false;
    if (whole && c->bol && len == 1 && line[0] == '.') {
        evbuffer_drain(in, len + eol_len);
        c->st = ST_CMD;
        end_of_data(c);
        return true;
    }
    size_t skip = c->bol && len > 0 && line[0] == '.' ? 1 : 0;   /* dot-stuffing */
    if (len > skip)
        msg_append(c, line + skip, len - skip);
    if (whole)
        msg_append(c, "\n", 1);       /* LF line ends, as the pipe command reads them */
    evbuffer_drain(in, len + (whole ? eol_len : 0));
    c->bol = whole;
    return true;
}

/* ---- commands ------------------------------------------------------------ */

/* The <address> after "FROM:" / "TO:" into out; p then points past it.  0, or -1. */
static int
path_arg(const char **pp, char *out, size_t outlen)
{
    const char *p = *pp;
    while (*p == ' ')
        p++;
    if (*p != '<')
        return -1;
    const char *e = strchr(p, '>');
    if (e == NULL || (size_t)(e - p - 1) >= outlen)
        return -1;
    memcpy(out, p + 1, (size_t)(e - p - 1));
    out[e - p - 1] = '\0';
    for (const char *q = out; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == '<')
            return -1;
    *pp = e + 1;
    return 0;
}

static bool
bad_command(lconn *c)
{
    if (++c->errors < ERRORS_MAX)
        return false;
    rg_warn("lmtp: %s: too many errors; disconnecting", c->peer);
    reply(c, "421 4.7.0 %s too many errors, closing", c->srv->host);
    conn_close_after_write(c);
    return true;
}

static void
cmd_mail(lconn *c, const char *arg)
{
    char addr[RG_ADDR_MAX];
    const char *p = arg;

    if (!c->lhlo) {
        reply(c, "503 5.5.1 send LHLO first");
        return;
    }
    if (c->mail) {
        reply(c, "503 5.5.1 nested MAIL command");
        return;
    }
    if (strncasecmp(p, "FROM:", 5) != 0 || (p += 5, path_arg(&p, addr, sizeof addr)) < 0) {
        reply(c, "501 5.1.7 bad sender address syntax");
        return;
    }
    while (*p == ' ')
        p++;
    while (*p) {
        const char *sp = strchr(p, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        if (n > 5 && strncasecmp(p, "SIZE=", 5) == 0) {
            char *end;
            unsigned long long v = strtoull(p + 5, &end, 10);
            if (end != p + n) {
                reply(c, "501 5.5.4 bad SIZE parameter");
                return;
            }
            if (v > c->srv->o->size_limit) {
                reply(c, "552 5.3.4 message too big (the limit is %zu bytes)",
                      c->srv->o->size_limit);
                return;
            }
        } else if (!(n == strlen("BODY=7BIT") && strncasecmp(p, "BODY=7BIT", n) == 0) &&
                   !(n == strlen("BODY=8BITMIME") && strncasecmp(p, "BODY=8BITMIME", n) == 0)) {
            reply(c, "555 5.5.4 unsupported MAIL parameter %.*s", (int)(n > 64 ? 64 : n), p);
            return;
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    rg_strlcpy(c->from, addr, sizeof c->from);
    c->mail = true;
    reply(c, "250 2.1.0 OK");
}

static void
cmd_rcpt(lconn *c, const char *arg)
{
    char addr[RG_ADDR_MAX];
    const char *p = arg;

    if (!c->mail) {
        reply(c, "503 5.5.1 need MAIL command");
        return;
    }
    if (strncasecmp(p, "TO:", 3) != 0 || (p += 3, path_arg(&p, addr, sizeof addr)) < 0 ||
        strchr(addr, '@') == NULL) {
        reply(c, "501 5.1.3 bad recipient address syntax");
        return;
    }
    while (*p == ' ')
        p++;
    if (*p != '\0') {
        reply(c, "555 5.5.4 unsupported RCPT parameter");
        return;
    }
    /* A token without its "bounces+" or "unsubscribe+": an MTA that took the
     * prefix off (Exim without rcpt_include_affixes).  Consumed as "no
     * token" it would be lost; deferred, it waits for the configuration fix. */
    const char *at = strrchr(addr, '@');
    char full[RG_ADDR_MAX + 16], tok[RG_VERP_TOKEN_MAX + 16];
    rg_verp_purpose pu;
    if (!rg_verp_split_address(&c->srv->cfg->bounce, addr, &pu, tok, sizeof tok) &&
        rg_verp_domain_matches(&c->srv->cfg->bounce, at + 1, strlen(at + 1)) &&
        (size_t)snprintf(full, sizeof full, "bounces+%s", addr) < sizeof full &&
        rg_verp_split_address(&c->srv->cfg->bounce, full, &pu, tok, sizeof tok) &&
        rg_verp_verify(&c->srv->cfg->bounce, pu, tok, (int64_t)time(NULL), NULL) !=
            RG_VERP_MALFORMED) {
        rg_warn("lmtp: %s: RCPT TO:<%s> is a token without its bounces+ or unsubscribe+ "
                "prefix: the MTA strips it (Exim: set rcpt_include_affixes on the lmtp "
                "transport); deferred", c->peer, addr);
        reply(c, "451 4.3.5 <%s> a token without its bounces+ prefix: the MTA's configuration "
              "strips it", addr);
        return;
    }
    if (c->nrcpt >= RCPT_MAX) {
        reply(c, "452 4.5.3 too many recipients");
        return;
    }
    c->rcpt = rg_grow(c->rcpt, &c->rcpt_cap, c->nrcpt + 1, sizeof *c->rcpt, 8);
    c->rcpt[c->nrcpt++] = rg_strdup(addr);
    reply(c, "250 2.1.5 OK");
}

static void
command(lconn *c, char *line)
{
    server *s = c->srv;
    char *arg = line;
    while (*arg && *arg != ' ')
        arg++;
    size_t vlen = (size_t)(arg - line);
    while (*arg == ' ')
        arg++;
#define IS(v) (vlen == sizeof(v) - 1 && strncasecmp(line, v, vlen) == 0)

    if (IS("LHLO")) {
        if (*arg == '\0') {
            reply(c, "501 5.5.4 LHLO needs a host name");
            bad_command(c);
            return;
        }
        txn_reset(c);
        c->lhlo = true;
        reply(c, "250-%s", s->host);
        reply(c, "250-PIPELINING");
        reply(c, "250-SIZE %zu", s->o->size_limit);
        reply(c, "250-ENHANCEDSTATUSCODES");
        reply(c, "250 8BITMIME");
    } else if (IS("MAIL")) {
        cmd_mail(c, arg);
    } else if (IS("RCPT")) {
        cmd_rcpt(c, arg);
    } else if (IS("DATA")) {
        if (*arg != '\0')
            reply(c, "501 5.5.4 DATA takes no argument");
        else if (!c->mail)
            reply(c, "503 5.5.1 need MAIL command");
        else if (c->nrcpt == 0)
            reply(c, "503 5.5.1 need RCPT command");
        else {
            c->st = ST_DATA;
            c->bol = true;
            c->mlen = c->got = 0;
            c->too_big = false;
            reply(c, "354 End data with <CR><LF>.<CR><LF>");
        }
    } else if (IS("RSET")) {
        txn_reset(c);
        reply(c, "250 2.0.0 OK");
    } else if (IS("NOOP")) {
        reply(c, "250 2.0.0 OK");
    } else if (IS("QUIT")) {
        reply(c, "221 2.0.0 %s closing", s->host);
        conn_close_after_write(c);
    } else if (IS("HELO") || IS("EHLO")) {
        reply(c, "500 5.5.1 this is LMTP: say LHLO");
        bad_command(c);
    } else if (IS("VRFY") || IS("EXPN") || IS("ETRN") || IS("BDAT") || IS("HELP") ||
               IS("STARTTLS") || IS("AUTH")) {
        reply(c, "502 5.5.1 this server takes LHLO, MAIL, RCPT, DATA, RSET, NOOP and QUIT only");
        bad_command(c);
    } else {
        reply(c, "500 5.5.2 command not recognized");
        bad_command(c);
    }
#undef IS
}

static void
line_too_long(lconn *c)
{
    rg_warn("lmtp: %s: command line longer than %d bytes", c->peer, CMD_LINE_MAX);
    reply(c, "500 5.5.2 line too long (the limit is %d bytes)", CMD_LINE_MAX);
    bad_command(c);
}

/* One command line from in.  false when more input is needed. */
static bool
cmd_step(lconn *c, struct evbuffer *in)
{
    size_t eol_len = 0;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);

    if (p.pos < 0) {
        size_t have = evbuffer_get_length(in);
        if (have > CMD_LINE_MAX) {           /* no end in sight: drop it as it comes */
            evbuffer_drain(in, have);
            if (c->st != ST_SKIP) {
                c->st = ST_SKIP;
                line_too_long(c);
            }
        }
        return false;
    }
    size_t len = (size_t)p.pos;
    if (c->st == ST_SKIP) {                  /* the end of the line that was too long */
        evbuffer_drain(in, len + eol_len);
        c->st = ST_CMD;
        return true;
    }
    if (len > CMD_LINE_MAX) {
        evbuffer_drain(in, len + eol_len);
        line_too_long(c);
        return true;
    }
    char line[CMD_LINE_MAX + 1];
    evbuffer_remove(in, line, len);
    evbuffer_drain(in, eol_len);
    line[len] = '\0';
    if (memchr(line, '\0', len) != NULL) {
        reply(c, "500 5.5.2 NUL byte in command");
        bad_command(c);
        return true;
    }
    command(c, line);
    return true;
}

/* ---- events -------------------------------------------------------------- */

/* After a command or a message: a draining server says goodbye between transactions. */
static void
drain_check(lconn *c)
{
    if (c->srv->draining && c->st == ST_CMD && !c->mail) {
        reply(c, "421 4.3.2 %s shutting down", c->srv->host);
        conn_close_after_write(c);
    }
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    lconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);

    while (c->st != ST_CLOSING) {
        if (evbuffer_get_length(out) > OUT_MAX) {   /* a client that sends and never reads */
            c->out_full = true;
            bufferevent_disable(bev, EV_READ);
            return;
        }
        bool more = c->st == ST_DATA ? data_step(c, in) : cmd_step(c, in);
        if (c->st == ST_CLOSING)
            return;                 /* freed once written */
        if (!more)
            break;
    }
    drain_check(c);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
    lconn *c = arg;

    if (c->st == ST_CLOSING) {
        conn_free(c);
        return;
    }
    if (c->out_full) {
        c->out_full = false;
        bufferevent_enable(bev, EV_READ);
        on_read(bev, c);             /* what came meanwhile is already buffered */
    }
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
    lconn *c = arg;
    (void)bev;

    if (what & BEV_EVENT_TIMEOUT) {
        if (c->st != ST_CLOSING) {
            rg_warn("lmtp: %s: timeout after %s", c->peer, c->st == ST_DATA ? "DATA" : "a command");
            reply(c, "421 4.4.2 %s timeout, closing", c->srv->host);
            conn_close_after_write(c);
            struct timeval tv = { 10, 0 };   /* for the 421 to be read */
            bufferevent_set_timeouts(c->bev, NULL, &tv);
            bufferevent_enable(c->bev, EV_WRITE);
            return;
        }
    } else if (c->st == ST_DATA) {
        rg_warn("lmtp: %s: lost connection after DATA (%zu bytes of a message from <%s> to "
                "%zu recipients): nothing recorded, the client keeps it", c->peer, c->got,
                c->from, c->nrcpt);
    } else if (c->mail) {
        rg_info("lmtp: %s: lost connection in a transaction (from <%s>)", c->peer, c->from);
    } else if ((what & BEV_EVENT_ERROR) && c->st != ST_CLOSING) {
        rg_info("lmtp: %s: connection error: %s", c->peer, strerror(EVUTIL_SOCKET_ERROR()));
    } else {
        rg_debug("lmtp: %s: disconnect", c->peer);
    }
    conn_free(c);
}

static void
on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
          void *arg)
{
    server *s = arg;
    (void)lis;
    (void)salen;

    lconn *c = rg_calloc(1, sizeof *c);
    c->srv = s;
    c->st = ST_CMD;
    if (sa != NULL && sa->sa_family == AF_INET) {
        char h[INET6_ADDRSTRLEN];
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &in->sin_addr, h, sizeof h);
        snprintf(c->peer, sizeof c->peer, "%s:%u", h, ntohs(in->sin_port));
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        char h[INET6_ADDRSTRLEN];
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, h, sizeof h);
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", h, ntohs(in6->sin6_port));
    } else {
        snprintf(c->peer, sizeof c->peer, "unix");
    }
    if (s->is_inet) {
        int one = 1;   /* replies are small: never wait for a delayed ACK */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        rg_error("lmtp: %s: cannot set up the connection", c->peer);
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    struct timeval idle = { IDLE_SECS, 0 };
    bufferevent_set_timeouts(c->bev, &idle, &idle);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    rg_debug("lmtp: connect from %s", c->peer);
    reply(c, "220 %s LMTP " IDENT " ready", s->host);
}

static void
on_accept_error(struct evconnlistener *lis, void *arg)
{
    server *s = arg;
    int e = EVUTIL_SOCKET_ERROR();

    /* out of descriptors or memory: pause a second rather than spin */
    rg_error("lmtp: accept: %s; pausing for a second", strerror(e));
    evconnlistener_disable(lis);
    struct timeval tv = { 1, 0 };
    evtimer_add(s->accept_pause, &tv);
}

static void
on_accept_pause(evutil_socket_t fd, short what, void *arg)
{
    server *s = arg;
    (void)fd;
    (void)what;
    if (!s->draining)
        evconnlistener_enable(s->lis);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
    server *s = arg;
    char err[1024];
    (void)sig;
    (void)what;

    rg_info("SIGHUP: reloading %s", s->conf_path);
    rg_config *cfg = rg_config_load(s->conf_path, err, sizeof err);
    if (cfg == NULL) {
        rg_error("error: reload: %s; keeping the old configuration", err);
        return;
    }
    if (cfg->bounce.line == 0) {
        rg_error("error: reload: %s has no bounce block; keeping the old configuration",
                 s->conf_path);
        rg_config_free(cfg);
        return;
    }
    /* no message is being handled now (one thread): swap, and reconnect
     * to the store on the next message, which may be another one now */
    rg_admin_close(&s->ad);
    rg_config_free(s->cfg);
    s->cfg = cfg;
    if (!s->o->debug)
        rg_log_set_level(cfg->log_level);
    rg_info("reload: %s read", s->conf_path);
}

static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    server *s = arg;
    (void)fd;
    (void)what;
    rg_warn("warning: %u connections still open after %d s; stopping (their unfinished "
            "transactions got no reply: the clients keep those messages)", s->nconns, DRAIN_SECS);
    event_base_loopbreak(s->base);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
    server *s = arg;
    (void)what;

    if (s->draining)
        return;
    rg_info("%s: draining and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    s->draining = true;
    evconnlistener_disable(s->lis);
    if (s->nconns == 0) {
        event_base_loopbreak(s->base);
        return;
    }
    struct timeval tv = { DRAIN_SECS, 0 };
    evtimer_add(s->drain_timer, &tv);
    for (lconn *c = s->conns, *next; c != NULL; c = next) {
        next = c->next;
        drain_check(c);              /* may free c */
    }
}

/* ---- the server ---------------------------------------------------------- */

int
rg_bounce_lmtp(const rg_lmtp_opts *o)
{
    server s;
    char err[1024], abs_path[PATH_MAX], *unix_path = NULL;
    int is_inet = 0, fd, rc = 0;

    memset(&s, 0, sizeof s);
    s.o = o;
    s.conf_path = rg_strdup(realpath(o->conf_path, abs_path) ? abs_path : o->conf_path);
    if ((s.cfg = rg_config_load(s.conf_path, err, sizeof err)) == NULL) {
        fprintf(stderr, IDENT ": %s\n", err);
        free(s.conf_path);
        return EX_CONFIG;
    }
    if (s.cfg->bounce.line == 0) {
        fprintf(stderr, IDENT ": %s has no bounce block (see relayguard.conf(5))\n", s.conf_path);
        rg_config_free(s.cfg);
        free(s.conf_path);
        return EX_CONFIG;
    }
    rg_log_open(IDENT, s.cfg->log, o->debug ? LOG_DEBUG : s.cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    if (gethostname(s.host, sizeof s.host) < 0 || s.host[0] == '\0')
        snprintf(s.host, sizeof s.host, "localhost");
    s.host[sizeof s.host - 1] = '\0';

    if ((fd = rg_listen_open(o->listen, 1, &unix_path, &is_inet, err, sizeof err)) < 0) {
        if (s.cfg->log != RG_LOG_STDERR)
            fprintf(stderr, IDENT ": --lmtp %s: %s\n", o->listen, err);
        rg_error("fatal: --lmtp %s: %s", o->listen, err);
        rg_config_free(s.cfg);
        free(s.conf_path);
        return EX_UNAVAILABLE;
    }
    s.is_inet = is_inet != 0;
    if (o->pidfile && rg_write_pidfile(o->pidfile, err, sizeof err) < 0)
        rg_fatal("%s", err);
    if (rg_drop_privileges(o->user, "--user", err, sizeof err) < 0)
        rg_fatal("%s", err);

    if ((s.base = event_base_new()) == NULL)
        rg_fatal("event_base_new failed");
    s.lis = evconnlistener_new(s.base, on_accept, &s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                               0, fd);
    s.accept_pause = evtimer_new(s.base, on_accept_pause, &s);
    s.drain_timer = evtimer_new(s.base, on_drain_timeout, &s);
    s.sig_hup = evsignal_new(s.base, SIGHUP, on_hup, &s);
    s.sig_term = evsignal_new(s.base, SIGTERM, on_term, &s);
    s.sig_int = evsignal_new(s.base, SIGINT, on_term, &s);
    if (s.lis == NULL || s.accept_pause == NULL || s.drain_timer == NULL || s.sig_hup == NULL ||
        s.sig_term == NULL || s.sig_int == NULL || evsignal_add(s.sig_hup, NULL) < 0 ||
        evsignal_add(s.sig_term, NULL) < 0 || evsignal_add(s.sig_int, NULL) < 0)
        rg_fatal("cannot set up the event loop");
    evconnlistener_set_error_cb(s.lis, on_accept_error);

    rg_info("LMTP on %s (pid %ld), message size limit %zu bytes", o->listen, (long)getpid(),
            o->size_limit);
    if (event_base_dispatch(s.base) < 0) {
        rg_error("error: event loop failed");
        rc = EX_SOFTWARE;
    }

    while (s.conns != NULL)
        conn_free(s.conns);
    evconnlistener_free(s.lis);
    event_free(s.accept_pause);
    event_free(s.drain_timer);
    event_free(s.sig_hup);
    event_free(s.sig_term);
    event_free(s.sig_int);
    event_base_free(s.base);
    if (unix_path != NULL && unlink(unix_path) < 0 && errno != ENOENT)
        rg_warn("warning: remove %s: %s", unix_path, strerror(errno));
    if (o->pidfile && unlink(o->pidfile) < 0 && errno != ENOENT)
        rg_warn("warning: remove pidfile %s: %s", o->pidfile, strerror(errno));
    rg_info("stopped: %lu messages, %lu recipients recorded, %lu deferred", s.n_msgs,
            s.n_rcpt_ok, s.n_rcpt_retry);
    rg_admin_close(&s.ad);
    rg_config_free(s.cfg);
    free(unix_path);
    free(s.conf_path);
    return rc;
}
