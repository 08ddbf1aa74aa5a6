/*
 * server.c - relayguard-milter's connections: a fixed pool of worker
 * threads, each with its own epoll set.  Every worker waits on the
 * listening socket too (EPOLLEXCLUSIVE: one of them wakes per new
 * connection) and keeps what it accepts, so a connection never changes
 * thread and needs no lock.  A callback that waits (a Redis round trip,
 * an RSA signature) holds up only the connections of its own worker;
 * the workers are as many as the Redis connections of the store pool, so
 * none waits for a free one.
 *
 * Per readable connection: one read() for everything the MTA has sent,
 * every complete packet run (proto.c), one write() for the replies.  On
 * TCP, when a read produced no reply (macro, header and body packets with
 * SMFIP_NR_*), the ACK is sent at once (TCP_QUICKACK): the MTA writes its
 * next packet only once the previous one is acknowledged (Nagle), and the
 * kernel would delay that ACK up to 40 ms hoping for a reply to carry it.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "util.h"

#define MAX_EVENTS 64
#define MAX_WORKERS 64
#define MAX_SPARE 32            /* closed connections a worker keeps for new ones */

typedef struct worker worker;

typedef struct conn {
    rgm_ctx *ctx;
    int fd;
    int tcp;
    int writing;                /* EPOLLOUT: output waits, input paused */
    time_t last;                /* last activity (monotonic seconds) */
    worker *w;
    struct conn *prev, *next;
} conn;

struct worker {
    pthread_t tid;
    int ep;
    conn *conns;
    unsigned nconns;
    /* Closed connections with their buffers, for the next ones: with one
     * message per SMTP session (the usual case) a connection per message,
     * whose 20 KiB of buffers cost a malloc and a free each otherwise. */
    conn *spare[MAX_SPARE];
    unsigned nspare;
};

static struct {
    const rgm_desc *desc;
    int listen_fd;
    int tcp;
    int stop_fd;                /* eventfd: readable once stopping */
    unsigned timeout_s;
    int nworkers;
    worker workers[MAX_WORKERS];
} srv = { .listen_fd = -1, .stop_fd = -1 };

static char listen_tag, stop_tag;       /* epoll data of the two special fds */

static time_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec;
}

/* ---------------------------------------------------------- listening */

int rgm_listen(const char *spec, char *err, size_t errlen)
{
    int fd = -1;
    if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
        const char *path = strchr(spec, ':') + 1;
        struct sockaddr_un un;
        memset(&un, 0, sizeof un);
        un.sun_family = AF_UNIX;
        if (path[0] == '\0' || strlen(path) >= sizeof un.sun_path) {
            snprintf(err, errlen, "%s: bad socket path", spec);
            return -1;
        }
        memcpy(un.sun_path, path, strlen(path) + 1);
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
            bind(fd, (struct sockaddr *)&un, sizeof un) < 0 || listen(fd, SOMAXCONN) < 0) {
            snprintf(err, errlen, "%s: %s", spec, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        srv.tcp = 0;
        return fd;
    }
    int family;
    const char *rest;
    if (strncmp(spec, "inet:", 5) == 0) {
        family = AF_INET;
        rest = spec + 5;
    } else if (strncmp(spec, "inet6:", 6) == 0) {
        family = AF_INET6;
        rest = spec + 6;
    } else {
        snprintf(err, errlen, "%s: not inet:PORT@HOST, inet6:PORT@HOST or unix:PATH", spec);
        return -1;
    }
    char port[32], host[256];
    const char *at = strchr(rest, '@');
    size_t pl = at ? (size_t)(at - rest) : strlen(rest);
    if (pl == 0 || pl >= sizeof port || (at && strlen(at + 1) >= sizeof host)) {
        snprintf(err, errlen, "%s: bad port or host", spec);
        return -1;
    }
    memcpy(port, rest, pl);
    port[pl] = '\0';
    if (at)
        rg_strlcpy(host, at + 1, sizeof host);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(at && host[0] ? host : NULL, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", spec, gai_strerror(rc));
        return -1;
    }
    int one = 1;
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "%s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    /* Linux hands TCP_NODELAY down to accepted sockets: replies are never
     * held back by Nagle */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        rg_warn("warning: %s: cannot set TCP_NODELAY: %s", spec, strerror(errno));
    srv.tcp = 1;
    return fd;
}

/* -------------------------------------------------------- connections */

static void conn_close(conn *c)
{
    worker *w = c->w;
    int keep = w->nspare < MAX_SPARE;
    if (keep)
        rgm_ctx_end(c->ctx);    /* abort and close callbacks; the memory stays */
    else
        rgm_ctx_free(c->ctx);   /* abort and close callbacks */
    close(c->fd);               /* leaves the epoll set too (never dup'ed) */
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    if (keep)
        w->spare[w->nspare++] = c;
    else
        free(c);
}

static void conn_watch(conn *c, int writing)
{
    struct epoll_event ev = { .events = writing ? EPOLLOUT : EPOLLIN, .data.ptr = c };
    if (c->writing != writing && epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->writing = writing;
}

/* Write what is queued; 0 (all written or the rest waits for EPOLLOUT) or -1. */
static int conn_flush(conn *c)
{
    size_t len;
    const unsigned char *p = rgm_ctx_output(c->ctx, &len);
    while (len > 0) {
        ssize_t w = write(c->fd, p, len);
        if (w > 0) {
            rgm_ctx_sent(c->ctx, (size_t)w);
            p = rgm_ctx_output(c->ctx, &len);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_watch(c, 1);
            return 0;
        }
        rg_warn("warning: milter connection: write: %s; closing it", strerror(errno));
        return -1;
    }
    conn_watch(c, 0);
    return 0;
}

static void conn_readable(conn *c)
{
    for (;;) {
        size_t room;
        unsigned char *p = rgm_ctx_inbuf(c->ctx, &room);
        ssize_t r = read(c->fd, p, room);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0) {
            rg_warn("warning: milter connection: read: %s; closing it", strerror(errno));
            conn_close(c);
            return;
        }
        if (r == 0) {
            (void)rgm_ctx_eof(c->ctx);  /* logs a packet cut short */
            conn_close(c);
            return;
        }
        c->last = now_s();
        rgm_io io = rgm_ctx_input(c->ctx, (size_t)r);
        if (io == RGM_IO_ERROR) {
            conn_close(c);
            return;
        }
        size_t pending;
        rgm_ctx_output(c->ctx, &pending);
        if (pending == 0 && c->tcp && io == RGM_IO_MORE) {
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
        }
        if (conn_flush(c) < 0 || io == RGM_IO_QUIT) {
            conn_close(c);
            return;
        }
        rgm_ctx_trim(c->ctx);
        if (c->writing || (size_t)r < room)
            return;             /* drained (epoll says when there is more) */
    }
}

/* One connection per wake-up: the listening socket is level-triggered, so
 * a second waiting connection wakes a worker again (and trying for it here
 * would cost a failed accept per connection). */
static void accept_one(worker *w)
{
    for (int i = 0; i < 1; i++) {
        int fd = accept4(srv.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED)
                return;
            rg_warn("warning: accept: %s", strerror(errno));
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
                usleep(100000);         /* let connections end */
            return;
        }
        conn *c;
        if (w->nspare > 0) {
            c = w->spare[--w->nspare];
            rgm_ctx *ctx = c->ctx;
            memset(c, 0, sizeof *c);
            c->ctx = ctx;
            rgm_ctx_reuse(ctx, fd, srv.tcp ? "inet" : "unix");
        } else {
            c = rg_calloc(1, sizeof *c);
            c->ctx = rgm_ctx_new(srv.desc, fd, srv.tcp ? "inet" : "unix");
        }
        c->fd = fd;
        c->tcp = srv.tcp;
        c->w = w;
        c->last = now_s();
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            rg_warn("warning: epoll_ctl: %s", strerror(errno));
            rgm_ctx_free(c->ctx);
            close(fd);
            free(c);
            continue;
        }
        c->next = w->conns;
        if (w->conns)
            w->conns->prev = c;
        w->conns = c;
        w->nconns++;
        /* not read at once: the MTA's option negotiation is there already
         * only half the time (strace: a failed read per two connections
         * to save one epoll_wait) */
    }
}

static void expire(worker *w)
{
    time_t now = now_s();
    for (conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if ((unsigned)(now - c->last) > srv.timeout_s) {
            rg_warn("warning: milter connection idle for %u s: closing it", srv.timeout_s);
            conn_close(c);
        }
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    time_t checked = now_s();
    for (;;) {
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, 1000);
        if (n < 0 && errno != EINTR) {
            rg_error("epoll_wait: %s", strerror(errno));
            break;
        }
        int stop = 0;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &listen_tag)
                accept_one(w);
            else if (p == &stop_tag)
                stop = 1;
            else {
                conn *c = p;
                if (evs[i].events & EPOLLOUT) {
                    if (conn_flush(c) < 0)
                        conn_close(c);
                    else if (!c->writing)
                        conn_readable(c);       /* input paused meanwhile */
                } else
                    conn_readable(c);
            }
        }
        if (stop)
            break;
        if (now_s() != checked) {
            checked = now_s();
            expire(w);
        }
    }
    while (w->conns)
        conn_close(w->conns);
    while (w->nspare > 0) {
        conn *c = w->spare[--w->nspare];
        rgm_ctx_free(c->ctx);   /* its session ended in conn_close */
        free(c);
    }
    return NULL;
}

int rgm_server_start(const rgm_desc *desc, int fd, int nworkers, unsigned timeout_ms,
                     char *err, size_t errlen)
{
    srv.desc = desc;
    srv.listen_fd = fd;
    srv.timeout_s = timeout_ms / 1000 ? timeout_ms / 1000 : 1;
    if (nworkers < 1)
        nworkers = 1;
    if (nworkers > MAX_WORKERS)
        nworkers = MAX_WORKERS;
    if ((srv.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -1;
    }
    /* the workers take no signal: main's sigwait gets them all */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < nworkers; i++) {
        worker *w = &srv.workers[i];
        struct epoll_event lev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &listen_tag };
        struct epoll_event sev = { .events = EPOLLIN, .data.ptr = &stop_tag };
        if ((w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
            epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &lev) < 0 ||
            epoll_ctl(w->ep, EPOLL_CTL_ADD, srv.stop_fd, &sev) < 0 ||
            (errno = pthread_create(&w->tid, NULL, worker_main, w)) != 0) {
            snprintf(err, errlen, "worker %d: %s", i, strerror(errno));
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            srv.nworkers = i;
            rgm_server_stop();
            return -1;
        }
        srv.nworkers = i + 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

void rgm_server_stop(void)
{
    if (srv.stop_fd >= 0) {
        uint64_t one = 1;
        if (write(srv.stop_fd, &one, sizeof one) < 0)
            rg_warn("warning: cannot stop the workers: %s", strerror(errno));
    }
    for (int i = 0; i < srv.nworkers; i++) {
        pthread_join(srv.workers[i].tid, NULL);
        close(srv.workers[i].ep);
    }
    srv.nworkers = 0;
    if (srv.stop_fd >= 0)
        close(srv.stop_fd);
    srv.stop_fd = -1;
    if (srv.listen_fd >= 0)
        close(srv.listen_fd);
    srv.listen_fd = -1;
}
