/*
 * server.c - relayguard-policyd's connections: accept, read, frame, ask the
 * engine, reply.  Single-threaded on one libevent base.
 *
 * Memory: an idle connection is one struct conn (no buffers).  Input is
 * read into one shared scratch buffer and parsed there; only bytes left
 * over (a partial or pipelined request) are copied into the connection's
 * own buffer, which goes away once it is empty again.
 *
 * One request at a time: while a decision or a reply is outstanding nothing
 * is read.  The read event stays registered, though, and is only removed
 * when a client actually sends during the wait (Postfix never does), which
 * saves two epoll_ctl() calls per request.
 *
 * Lifetime: a decision may be answered inside rg_engine_check() or later.
 * A connection that closes while its decision is pending is only marked
 * closed; the verdict callback frees it.  Code on the stack that holds a
 * connection counts itself in busy, so nothing frees it under its feet.
 */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "engine.h"
#include "geoip.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "store.h"
#include "util.h"

#define SCRATCH_SIZE    (RG_PROTO_REQUEST_MAX + 1)  /* one read(); a request that fills it is too long */
#define ACCEPT_BURST    64                          /* accepts per wakeup, for fairness */

/* ---- generations ------------------------------------------------------ */

struct rg_gen {
    rg_config *cfg;
    rg_store *store;
    rg_geoip *geo;
    rg_engine *engine;
    unsigned refs;          /* 1 while current, +1 per pending decision */
    rg_gen *next;           /* on the server's retired list */
};

/* The store goes first: freeing it answers its pending calls (with an
 * error), and those answers land in the engine, which must still exist. */
static void gen_free(rg_gen *g)
{
    if (g == NULL)
        return;
    if (g->store)
        g->store->free(g->store);
    if (g->engine)
        rg_engine_free(g->engine);
    if (g->geo)
        g->geo->free(g->geo);
    if (g->cfg)
        rg_config_free(g->cfg);
    free(g);
}

rg_gen *rg_gen_new(rg_config *cfg, struct event_base *base, char *err, size_t errlen)
{
    rg_gen *g = rg_calloc(1, sizeof *g);
    char why[512];

    g->cfg = cfg;
    g->refs = 1;
    if (cfg->geoip_db) {
        if ((g->geo = rg_geoip_open_mmdb(cfg->geoip_db, why, sizeof why)) == NULL) {
            snprintf(err, errlen, "geoip_db %s: %s", cfg->geoip_db, why);
            gen_free(g);
            return NULL;
        }
    }
    g->store = rg_store_redis_async(cfg, base);
    g->engine = rg_engine_new(cfg, g->store, rg_clock_system(), g->geo, why, sizeof why);
    if (g->engine == NULL) {
        snprintf(err, errlen, "engine: %s", why);
        gen_free(g);
        return NULL;
    }
    return g;
}

const rg_config *rg_gen_config(const rg_gen *g) { return g->cfg; }
rg_engine *rg_gen_engine(rg_gen *g) { return g->engine; }

/* ---- connections ------------------------------------------------------- */

typedef struct conn conn;
struct conn {
    rg_server *srv;
    conn *prev, *next;          /* every conn not yet freed, open or closed */
    int fd;
    struct event rev;           /* read, persistent, with the idle timeout */
    struct event *wev;          /* write, only while a reply waits for room */
    char *in;                   /* bytes not yet handled (NULL when none) */
    size_t in_len, in_cap;
    rg_proto_scan scan;         /* of the request at the start of in */
    char *out;                  /* unsent rest of a reply */
    size_t out_len, out_off;
    rg_gen *gen;                /* generation of the pending decision */
    union {                     /* the client, for log lines */
        struct in_addr v4;
        struct in6_addr v6;
    } peer;
    uint16_t peer_port;
    uint8_t peer_family;        /* AF_INET, AF_INET6, else a unix socket */
    unsigned busy;              /* stack frames using this conn */
    unsigned pending : 1;       /* waiting for a verdict */
    unsigned in_check : 1;      /* inside rg_engine_check() */
    unsigned closed : 1;        /* fd closed; free when not busy and not pending */
    unsigned reading : 1;       /* rev is added */
    unsigned resume : 1;        /* rev activated to handle buffered input */
};

struct rg_server {
    struct event_base *base;
    int listen_fd;
    int is_inet;
    char *unix_path;
    struct event *lev;          /* accept */
    struct event *accept_pause; /* re-enables accept after EMFILE */
    struct event *reaper;       /* frees idle retired generations */
    struct event *drain_timer;
    rg_gen *gen;                /* current */
    rg_gen *staged;             /* reloaded, waiting for its accounts */
    struct event *stage_timer;
    uint64_t stage_deadline;    /* monotonic ms */
    rg_gen *retired;
    conn *conns;
    unsigned nconns;            /* open */
    unsigned npending;          /* decisions in flight, open or closed conns */
    const struct timeval *idle_tv;  /* common timeout, NULL: none */
    int draining;
    time_t last_full_warning;
    unsigned full_refused;
    char *scratch;
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_stage(evutil_socket_t fd, short what, void *arg);

/* "127.0.0.1:5345", "[::1]:5345" or "unix" for log lines. */
static const char *conn_peer(const conn *c, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (c->peer_family == AF_INET) {
        inet_ntop(AF_INET, &c->peer.v4, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, c->peer_port);
    } else if (c->peer_family == AF_INET6) {
        inet_ntop(AF_INET6, &c->peer.v6, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, c->peer_port);
    } else {
        snprintf(buf, len, "unix");
    }
    return buf;
}

static void server_check_drained(rg_server *s)
{
    if (s->draining && s->nconns == 0 && s->npending == 0)
        event_base_loopbreak(s->base);
}

static void gen_unref(rg_server *s, rg_gen *g)
{
    if (--g->refs == 0)
        event_active(s->reaper, EV_TIMEOUT, 1);  /* not from inside the engine's callback */
}

/* Close the socket now; the struct goes in conn_release(). */
static void conn_close(conn *c)
{
    rg_server *s = c->srv;

    if (c->closed)
        return;
    c->closed = 1;
    event_del(&c->rev);
    if (c->wev) {
        event_free(c->wev);
        c->wev = NULL;
    }
    close(c->fd);
    c->fd = -1;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    s->nconns--;
}

static void conn_free(conn *c)
{
    rg_server *s = c->srv;

    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

/* Free a closed connection once nothing refers to it any more. */
static void conn_release(conn *c)
{
    rg_server *s = c->srv;

    if (c->closed && c->busy == 0 && !c->pending) {
        conn_free(c);
        server_check_drained(s);
    }
}

/* Drop a connection for bad input, with the reason in the log. */
static void conn_drop(conn *c, const char *why)
{
    char peer[64];

    rg_warn("warning: %s: %s, dropping connection", conn_peer(c, peer, sizeof peer), why);
    conn_close(c);
}

/* Listen for input (with the idle timeout) unless already listening. */
static void conn_want_read(conn *c)
{
    if (!c->reading && !c->closed) {
        event_add(&c->rev, c->srv->idle_tv);
        c->reading = 1;
    }
}

static void conn_stop_read(conn *c)
{
    if (c->reading) {
        event_del(&c->rev);
        c->reading = 0;
    }
}

/* Handle buffered input from the event loop rather than from a callback. */
static void conn_schedule_input(conn *c)
{
    if (c->closed)
        return;
    if (c->in_len > 0) {
        c->resume = 1;
        event_active(&c->rev, EV_READ, 1);
    } else {
        conn_want_read(c);
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    ssize_t n;

    n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        char peer[64];
        rg_debug("%s: write: %s", conn_peer(c, peer, sizeof peer), n < 0 ? strerror(errno) : "closed");
        conn_close(c);
        conn_release(c);
        return;
    }
    c->out_off += (size_t) n;
    if (c->out_off < c->out_len)
        return;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    event_free(c->wev);
    c->wev = NULL;
    if (c->srv->draining) {
        conn_close(c);
        conn_release(c);
        return;
    }
    conn_schedule_input(c);
}

/* Send a reply; what does not fit now waits for EV_WRITE.  0, or -1 if the
 * connection was closed. */
static int conn_send(conn *c, const char *data, size_t len)
{
    ssize_t n;

    n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            char peer[64];
            rg_debug("%s: write: %s", conn_peer(c, peer, sizeof peer), strerror(errno));
            conn_close(c);
            return -1;
        }
        n = 0;
    }
    if ((size_t) n == len)
        return 0;
    c->out_len = len - (size_t) n;
    c->out_off = 0;
    c->out = rg_malloc(c->out_len);
    memcpy(c->out, data + n, c->out_len);
    c->wev = event_new(c->srv->base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (c->wev == NULL)
        rg_panic("event_new failed");
    event_add(c->wev, NULL);
    return 0;
}

/* The engine's answer; may come inside rg_engine_check() or later. */
static void on_verdict(void *arg, const rg_verdict *v)
{
    conn *c = arg;
    rg_server *s = c->srv;
    char reply[RG_PROTO_REPLY_MAX];
    size_t n;

    if (!c->pending)
        rg_panic("relayguard-policyd: verdict for a connection without a pending request");
    c->pending = 0;
    s->npending--;
    gen_unref(s, c->gen);
    c->gen = NULL;

    if (c->closed) {            /* the client went away meanwhile */
        conn_release(c);
        return;
    }
    n = rg_proto_reply(v, reply, sizeof reply);
    if (n == 0)
        rg_panic("relayguard-policyd: reply buffer too small");
    if (conn_send(c, reply, n) < 0) {
        conn_release(c);
        return;
    }
    if (c->in_check)            /* the input loop on the stack goes on */
        return;
    if (c->out_len > 0)         /* on_write goes on */
        return;
    if (s->draining) {
        conn_close(c);
        conn_release(c);
        return;
    }
    conn_schedule_input(c);
}

/* One complete request of len bytes at buf (parsed in place). */
static void conn_request(conn *c, char *buf, size_t len)
{
    rg_server *s = c->srv;
    rg_proto_request pr;

    rg_proto_parse(buf, len, &pr);
    switch (pr.kind) {
    case RG_PROTO_DUNNO:
        conn_send(c, RG_PROTO_REPLY_DUNNO, sizeof RG_PROTO_REPLY_DUNNO - 1);
        return;
    case RG_PROTO_BAD_REQUEST: {
        char peer[64], what[80];
        if (pr.request)
            rg_text_sanitize(pr.request, what, sizeof what);
        else
            snprintf(what, sizeof what, "(missing)");
        rg_warn("warning: %s: bad request: request=%s", conn_peer(c, peer, sizeof peer), what);
        conn_send(c, RG_PROTO_REPLY_BAD, sizeof RG_PROTO_REPLY_BAD - 1);
        return;
    }
    case RG_PROTO_ASK:
        break;
    }
    c->pending = 1;
    s->npending++;
    c->gen = s->gen;
    c->gen->refs++;
    c->in_check = 1;
    rg_engine_check(c->gen->engine, &pr.req, on_verdict, c);
    c->in_check = 0;
}

/*
 * Handle complete requests in buf[0..len) while no decision or reply is
 * outstanding.  Returns the bytes consumed; the connection may be closed.
 */
static size_t conn_consume(conn *c, char *buf, size_t len)
{
    size_t off = 0, reqlen = 0;
    char err[128];

    while (!c->closed && !c->pending && c->out_len == 0 && !c->srv->draining && off < len) {
        switch (rg_proto_scan_input(&c->scan, buf + off, len - off, &reqlen, err, sizeof err)) {
        case RG_PROTO_MORE:
            return off;         /* a partial request: the caller keeps it */
        case RG_PROTO_BAD:
            conn_drop(c, err);
            return len;
        case RG_PROTO_DONE:
            memset(&c->scan, 0, sizeof c->scan);
            conn_request(c, buf + off, reqlen);
            off += reqlen;
            break;
        }
    }
    return off;
}

/* Keep buf[from..len) as the connection's pending input. */
static void conn_keep(conn *c, const char *buf, size_t from, size_t len)
{
    size_t n = len - from;

    if (c->closed)
        return;
    if (buf == c->in) {
        if (n == 0) {
            free(c->in);
            c->in = NULL;
            c->in_len = c->in_cap = 0;
        } else if (from > 0) {
            memmove(c->in, c->in + from, n);
            c->in_len = n;
        }
        return;
    }
    if (n == 0)
        return;
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 1024;
        while (cap < c->in_len + n)
            cap *= 2;
        c->in = rg_realloc(c->in, cap);
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, buf + from, n);
    c->in_len += n;
}

/* Handle what is buffered plus scratch[0..nread) (0 when resuming). */
static void conn_input(conn *c, size_t nread)
{
    rg_server *s = c->srv;
    size_t used;

    if (c->in_len == 0) {
        /* the common case: parse straight from the scratch buffer */
        used = conn_consume(c, s->scratch, nread);
        conn_keep(c, s->scratch, used, nread);
    } else {
        conn_keep(c, s->scratch, 0, nread);
        used = conn_consume(c, c->in, c->in_len);
        conn_keep(c, c->in, used, c->in_len);
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    rg_server *s = c->srv;
    ssize_t n;

    (void) fd;
    if (what & EV_TIMEOUT) {
        if (!c->pending && c->out_len == 0) {
            char peer[64];
            if (c->in_len > 0)
                rg_warn("warning: %s: timeout in the middle of a request, dropping connection",
                        conn_peer(c, peer, sizeof peer));
            else
                rg_debug("%s: idle timeout, closing connection", conn_peer(c, peer, sizeof peer));
            conn_close(c);
            conn_release(c);
        }
        return;
    }
    if (c->pending || c->out_len > 0) {
        conn_stop_read(c);      /* one request at a time: the rest waits in the socket */
        return;
    }
    c->busy++;
    if (c->resume) {
        c->resume = 0;
        n = 0;
    } else {
        n = recv(c->fd, s->scratch, SCRATCH_SIZE, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            goto out;
        if (n <= 0) {
            char peer[64];
            if (c->in_len > 0 || c->scan.pos > 0)
                rg_warn("warning: %s: connection closed in the middle of a request",
                        conn_peer(c, peer, sizeof peer));
            else
                rg_debug("%s: %s", conn_peer(c, peer, sizeof peer),
                         n < 0 ? strerror(errno) : "disconnect");
            conn_close(c);
            goto out;
        }
    }
    conn_input(c, (size_t) n);
    if (!c->closed) {
        if (c->pending || c->out_len > 0)
            ;                   /* the verdict or on_write goes on */
        else if (s->draining)
            conn_close(c);
        else
            conn_want_read(c);
    }
out:
    c->busy--;
    conn_release(c);
}

static void conn_new(rg_server *s, int fd, const struct sockaddr_storage *ss)
{
    conn *c = rg_calloc(1, sizeof *c);

    c->srv = s;
    c->fd = fd;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *) ss;
        c->peer.v4 = s4->sin_addr;
        c->peer_port = ntohs(s4->sin_port);
        c->peer_family = AF_INET;
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) ss;
        c->peer.v6 = s6->sin6_addr;
        c->peer_port = ntohs(s6->sin6_port);
        c->peer_family = AF_INET6;
    }
    if (event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, on_read, c) < 0)
        rg_panic("event_assign failed");
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    conn_want_read(c);
}

/* ---- accepting ----------------------------------------------------------- */

static void on_accept_pause(evutil_socket_t fd, short what, void *arg)
{
    rg_server *s = arg;

    if (!s->draining && s->listen_fd >= 0)
        event_add(s->lev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    rg_server *s = arg;
    int i, fd, one = 1;
    struct sockaddr_storage ss;
    socklen_t sl;

    for (i = 0; i < ACCEPT_BURST; i++) {
        sl = sizeof ss;
        memset(&ss, 0, sizeof ss);
        fd = accept4(s->listen_fd, (struct sockaddr *) &ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED || errno == EPROTO)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                struct timeval tv = { 0, 100 * 1000 };
                rg_error("error: accept: %s; pausing for 100ms (raise the file descriptor limit "
                         "or lower policyd.max_connections)", strerror(errno));
                event_del(s->lev);
                evtimer_add(s->accept_pause, &tv);
                return;
            }
            rg_error("error: accept: %s", strerror(errno));
            return;
        }
        if (s->nconns >= s->gen->cfg->policyd.max_connections) {
            time_t now = time(NULL);
            if (now != s->last_full_warning) {      /* at most one line a second */
                rg_warn("warning: too many connections (max_connections = %u): refusing "
                        "connections (%u more refused before)",
                        s->gen->cfg->policyd.max_connections, s->full_refused);
                s->last_full_warning = now;
                s->full_refused = 0;
            } else {
                s->full_refused++;
            }
            close(fd);
            continue;
        }
        if (s->is_inet)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_new(s, fd, &ss);
    }
}

/* ---- the server ---------------------------------------------------------- */

/* Free retired generations nobody waits on any more. */
static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    rg_server *s = arg;
    rg_gen **pp = &s->retired, *g;

    while ((g = *pp) != NULL) {
        if (g->refs == 0) {
            *pp = g->next;
            rg_debug("old configuration released");
            gen_free(g);
        } else {
            pp = &g->next;
        }
    }
}

static void server_set_idle(rg_server *s)
{
    uint64_t ms = s->gen->cfg->policyd.idle_timeout_ms;
    struct timeval tv;

    if (ms == 0) {
        s->idle_tv = NULL;
        return;
    }
    tv.tv_sec = (time_t) (ms / 1000);
    tv.tv_usec = (suseconds_t) (ms % 1000) * 1000;
    /* one timeout queue for every connection: O(1) to re-arm */
    s->idle_tv = event_base_init_common_timeout(s->base, &tv);
    if (s->idle_tv == NULL)
        rg_panic("event_base_init_common_timeout failed");
}

static struct event *must(struct event *ev)
{
    if (ev == NULL)
        rg_panic("libevent: out of memory");
    return ev;
}

rg_server *rg_server_new(struct event_base *base, int listen_fd, char *unix_path,
                         int is_inet, rg_gen *gen)
{
    rg_server *s = rg_calloc(1, sizeof *s);

    s->base = base;
    s->listen_fd = listen_fd;
    s->unix_path = unix_path;
    s->is_inet = is_inet;
    s->gen = gen;
    s->scratch = rg_malloc(SCRATCH_SIZE);
    s->lev = must(event_new(base, listen_fd, EV_READ | EV_PERSIST, on_accept, s));
    s->accept_pause = must(evtimer_new(base, on_accept_pause, s));
    s->reaper = must(event_new(base, -1, 0, on_reap, s));
    s->stage_timer = must(evtimer_new(base, on_stage, s));
    s->drain_timer = NULL;
    server_set_idle(s);
    event_add(s->lev, NULL);
    return s;
}

rg_gen *rg_server_gen(rg_server *s)
{
    return s->gen;
}

static void server_swap(rg_server *s, rg_gen *gen)
{
    rg_gen *old = s->gen;

    s->gen = gen;
    old->next = s->retired;
    s->retired = old;
    gen_unref(s, old);
    server_set_idle(s);
}

/* Poll the staged generation until its accounts are loaded. */
static void on_stage(evutil_socket_t fd, short what, void *arg)
{
    rg_server *s = arg;
    struct timeval tv = { 0, 10 * 1000 };
    rg_gen *g = s->staged;

    if (g == NULL)
        return;
    if (rg_engine_ready(g->engine)) {
        s->staged = NULL;
        server_swap(s, g);
        rg_info("reload: the new configuration is in use");
    } else if (rg_monotonic_ms() >= s->stage_deadline) {
        s->staged = NULL;
        gen_free(g);
        rg_error("error: reload: accounts did not load within %u ms; keeping the old configuration",
                 RG_POLICYD_RELOAD_MS);
        rg_engine_refresh_accounts(s->gen->engine);
    } else {
        evtimer_add(s->stage_timer, &tv);
    }
}

void rg_server_reload(rg_server *s, rg_gen *gen)
{
    if (s->staged) {
        rg_warn("warning: reload: a newer reload replaces one still loading accounts");
        gen_free(s->staged);
    }
    s->staged = gen;
    s->stage_deadline = rg_monotonic_ms() + RG_POLICYD_RELOAD_MS;
    on_stage(-1, 0, s);
}

static void close_listener(rg_server *s)
{
    if (s->listen_fd < 0)
        return;
    event_del(s->lev);
    evtimer_del(s->accept_pause);
    close(s->listen_fd);
    s->listen_fd = -1;
    if (s->unix_path && unlink(s->unix_path) < 0 && errno != ENOENT)
        rg_warn("warning: remove %s: %s", s->unix_path, strerror(errno));
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    rg_server *s = arg;

    rg_warn("warning: drain: gave up after %u ms with %u decision(s) pending, %u connection(s) open",
            RG_POLICYD_DRAIN_MS, s->npending, s->nconns);
    event_base_loopbreak(s->base);
}

void rg_server_drain(rg_server *s, unsigned timeout_ms)
{
    conn *c, *next;
    struct timeval tv;

    if (s->draining)
        return;
    s->draining = 1;
    close_listener(s);
    for (c = s->conns; c; c = next) {
        next = c->next;
        if (c->closed)
            continue;
        if (!c->pending && c->out_len == 0) {
            conn_close(c);
            conn_release(c);
        } else {
            conn_stop_read(c);  /* the reply goes out, then it closes */
        }
    }
    rg_info("draining: %u decision(s) pending", s->npending);
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    s->drain_timer = must(evtimer_new(s->base, on_drain_timeout, s));
    evtimer_add(s->drain_timer, &tv);
    server_check_drained(s);
}

void rg_server_free(rg_server *s)
{
    conn *c;
    rg_gen *g;

    if (s == NULL)
        return;
    close_listener(s);
    /* An engine with decisions still pending may answer them as it goes:
     * keep the connections until the engines are gone. */
    gen_free(s->staged);
    gen_free(s->gen);
    while ((g = s->retired) != NULL) {
        s->retired = g->next;
        gen_free(g);
    }
    while ((c = s->conns) != NULL) {
        conn_close(c);
        conn_free(c);
    }
    event_free(s->lev);
    event_free(s->accept_pause);
    event_free(s->reaper);
    event_free(s->stage_timer);
    if (s->drain_timer)
        event_free(s->drain_timer);
    free(s->unix_path);
    free(s->scratch);
    free(s);
}
