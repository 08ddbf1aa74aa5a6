/*
 * policy-load - load generator for the Postfix SMTP access policy delegation
 * protocol (http://www.postfix.org/SMTPD_POLICY_README.html).
 *
 * N persistent connections, each with one request in flight at a time (as
 * Postfix's smtpd does): send a complete RCPT-stage request, wait for the
 * "action=...\n\n" reply, send the next.  After a warm-up, completions are
 * counted for D seconds (or until M requests); the report gives decisions/s,
 * latency percentiles from a log-linear histogram (~1.6 % resolution), and a
 * count of each reply action.
 *
 * --idle opens N connections, sends K requests on each (default 1, so the
 * server has set the connection up completely), prints "READY" and holds them
 * open for D seconds or until SIGINT/SIGTERM, for memory measurements.
 *
 * Targets are loopback only (127.0.0.0/8, ::1) or a unix socket.  Run time,
 * request and connection counts are bounded.
 *
 * Templates (--login, --sender, --rcpt, --hit-rcpt) take "%u", replaced by an
 * index: the account index for --login/--sender, the pool index for
 * recipients.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/event.h>

#define MAX_CONNS      20000
#define MAX_DURATION   3600.0
#define MAX_REQUESTS   1000000000ULL
#define RBUF_SIZE      4096
#define WBUF_SIZE      4096
#define MAX_ACTIONS    32
#define MAX_SECONDS    3700

/* ---------------------------------------------------------------- time */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------- histogram (µs) */

/* Values below 128 µs exactly; above, 64 sub-buckets per power of two. */
#define H_LINEAR  128
#define H_SUB     64
#define H_OCTAVES 40
#define H_BUCKETS (H_LINEAR + H_OCTAVES * H_SUB)

typedef struct hist {
    uint64_t b[H_BUCKETS];
    uint64_t n, max, sum;
} hist;

static unsigned ilog2_u64(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v);
}

static size_t h_index(uint64_t v)
{
    if (v < H_LINEAR)
        return (size_t)v;
    unsigned e = ilog2_u64(v);                 /* >= 7 */
    if (e >= 7 + H_OCTAVES)
        return H_BUCKETS - 1;
    uint64_t sub = (v >> (e - 6)) & (H_SUB - 1);
    return H_LINEAR + (size_t)(e - 7) * H_SUB + (size_t)sub;
}

/* Lowest value of a bucket. */
static uint64_t h_value(size_t i)
{
    if (i < H_LINEAR)
        return i;
    size_t k = i - H_LINEAR;
    unsigned e = (unsigned)(k / H_SUB) + 7;
    uint64_t sub = k % H_SUB;
    return ((uint64_t)1 << e) + (sub << (e - 6));
}

static void h_add(hist *h, uint64_t v)
{
    h->b[h_index(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static uint64_t h_pct(const hist *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)h->n + 0.5);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < H_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = h_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ------------------------------------------------------------ templates */

typedef struct tmpl {
    char *parts[8];     /* text between "%u" markers */
    size_t lens[8];
    int n;              /* number of parts; n - 1 markers */
} tmpl;

static int tmpl_compile(tmpl *t, const char *s)
{
    memset(t, 0, sizeof *t);
    const char *p = s;
    for (;;) {
        const char *m = strstr(p, "%u");
        size_t len = m ? (size_t)(m - p) : strlen(p);
        if (t->n == 8)
            return -1;
        t->parts[t->n] = strndup(p, len);
        t->lens[t->n] = len;
        t->n++;
        if (!m)
            break;
        p = m + 2;
    }
    return 0;
}

/* Append the expansion to out; returns the new position or NULL on overflow. */
static char *tmpl_put(const tmpl *t, unsigned idx, char *out, const char *end)
{
    char num[16];
    int nl = snprintf(num, sizeof num, "%u", idx);
    for (int i = 0; i < t->n; i++) {
        if (i > 0) {
            if (end - out < nl)
                return NULL;
            memcpy(out, num, (size_t)nl);
            out += nl;
        }
        if ((size_t)(end - out) < t->lens[i])
            return NULL;
        memcpy(out, t->parts[i], t->lens[i]);
        out += t->lens[i];
    }
    return out;
}

/* ------------------------------------------------------------- options */

static struct {
    char target[512];
    unsigned conns;
    double duration;       /* measured seconds */
    double warmup;
    uint64_t max_requests; /* measured; 0 = no count limit */
    double timeout;        /* per request */
    double connect_timeout;
    unsigned connect_burst;
    bool idle;
    unsigned idle_requests;
    unsigned accounts;
    unsigned rcpt_pool;
    unsigned rcpts_per_msg;
    bool eom;
    double rate;           /* open loop: requests/s offered, 0 = closed loop */
    unsigned hit_pool;
    double hit_pct;
    tmpl login, sender, rcpt, hit_rcpt;
    char client[64];
    char state[32];
    uint64_t seed;
    bool quiet;
    bool show_request;
} opt;

/* ------------------------------------------------------------- state */

enum cstate { C_FREE, C_CONNECTING, C_READY, C_WAITING, C_HELD };

typedef struct conn {
    int fd;
    unsigned id;
    enum cstate st;
    struct event *rev;      /* EV_READ | EV_PERSIST */
    struct event *wev;      /* connect completion / pending write */
    uint64_t t_sent;
    uint64_t t_connect;
    uint64_t nsent;
    unsigned msg_rcpt;      /* recipients already sent in this message */
    unsigned msg_no;
    unsigned acct;
    bool eom_sent;
    char queue_id[16];
    size_t rlen;
    size_t wlen, woff;
    char rbuf[RBUF_SIZE];
    char wbuf[WBUF_SIZE];
} conn;

enum phase { P_CONNECT, P_WARMUP, P_MEASURE, P_DRAIN, P_IDLE_SETUP, P_HOLD, P_DONE };

typedef struct action_count {
    char name[32];
    uint64_t n;
    char sample[160];
} action_count;

static struct {
    struct event_base *base;
    struct sockaddr_storage sa;
    socklen_t salen;
    conn *c;
    unsigned n_connected;
    unsigned n_inflight;      /* connects in progress */
    unsigned next_to_connect;
    enum phase phase;
    uint64_t t_phase_start;
    uint64_t t_measure_start, t_measure_end, t_end;
    uint64_t measured;
    uint64_t warm_done;
    hist h;
    action_count actions[MAX_ACTIONS];
    size_t n_actions;
    uint64_t other_actions;
    uint64_t errors_closed, errors_timeout, errors_proto, errors_connect, reconnects;
    uint64_t outstanding;      /* requests sent, no reply yet */
    uint64_t per_sec[MAX_SECONDS];
    uint64_t rng;
    uint64_t msg_counter;
    unsigned pid_tag;
    bool stop;
    int exit_code;
    struct rusage ru0;
    uint64_t idle_replies;
    uint64_t t_rate0, sched, max_backlog;
    conn **free_stack;
    unsigned n_free;
    struct event *pacer;
} g;

static uint64_t rnd(void)
{
    /* xorshift64* */
    uint64_t x = g.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    g.rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static unsigned rnd_below(unsigned n)
{
    return n ? (unsigned)((rnd() >> 32) % n) : 0;
}

static void die(const char *msg)
{
    fprintf(stderr, "policy-load: %s\n", msg);
    exit(2);
}

static void die_errno(const char *msg)
{
    fprintf(stderr, "policy-load: %s: %s\n", msg, strerror(errno));
    exit(2);
}

/* ------------------------------------------------------- target parsing */

static void parse_target(const char *t)
{
    memset(&g.sa, 0, sizeof g.sa);
    if (strncmp(t, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&g.sa;
        const char *path = t + 5;
        if (strlen(path) >= sizeof un->sun_path)
            die("unix socket path too long");
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, path);
        g.salen = sizeof *un;
        return;
    }
    if (strncmp(t, "inet:", 5) == 0)
        t += 5;
    char host[256];
    const char *colon = strrchr(t, ':');
    if (!colon)
        die("target must be inet:HOST:PORT or unix:PATH");
    size_t hl = (size_t)(colon - t);
    if (hl == 0 || hl >= sizeof host)
        die("bad host in target");
    memcpy(host, t, hl);
    host[hl] = 0;
    if (host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    char *endp;
    long port = strtol(colon + 1, &endp, 10);
    if (*endp || port <= 0 || port > 65535)
        die("bad port in target");
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *in4 = (struct sockaddr_in *)&g.sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&g.sa;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        if ((ntohl(in4->sin_addr.s_addr) >> 24) != 127)
            die("only loopback targets (127.0.0.0/8, ::1, unix:) are allowed");
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        g.salen = sizeof *in4;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            die("only loopback targets (127.0.0.0/8, ::1, unix:) are allowed");
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        g.salen = sizeof *in6;
    } else {
        die("target host must be a numeric loopback address");
    }
}

/* ------------------------------------------------------------ requests */

static char *put(char *p, const char *end, const char *s, size_t n)
{
    if (!p || (size_t)(end - p) < n)
        return NULL;
    memcpy(p, s, n);
    return p + n;
}

#define PUTS(lit) do { p = put(p, end, lit, sizeof(lit) - 1); if (!p) return -1; } while (0)
#define PUTN(s, n) do { p = put(p, end, s, n); if (!p) return -1; } while (0)
#define PUTT(t, i) do { p = tmpl_put(&(t), (i), p, end); if (!p) return -1; } while (0)

static int build_request(conn *c)
{
    char *p = c->wbuf;
    const char *end = c->wbuf + WBUF_SIZE;
    char tmp[128];
    int n;

    bool done = opt.eom ? c->eom_sent : c->msg_rcpt >= opt.rcpts_per_msg;
    if (c->msg_no == 0 || done) {
        c->msg_rcpt = 0;
        c->eom_sent = false;
        c->msg_no = (unsigned)++g.msg_counter;
        c->queue_id[0] = 0;
        c->acct = rnd_below(opt.accounts);     /* one account and sender per message */
    }
    /* with --eom, the message ends with an END-OF-MESSAGE request */
    bool eom = opt.eom && c->msg_rcpt >= opt.rcpts_per_msg;
    unsigned acct = c->acct;

    PUTS("request=smtpd_access_policy\nprotocol_state=");
    if (eom)
        PUTS("END-OF-MESSAGE");
    else
        PUTN(opt.state, strlen(opt.state));
    PUTS("\nprotocol_name=ESMTP\nhelo_name=client.example.org\nqueue_id=");
    PUTN(c->queue_id, strlen(c->queue_id));
    PUTS("\nsender=");
    PUTT(opt.sender, acct);
    PUTS("\nrecipient=");
    if (eom)
        ;   /* empty at END-OF-MESSAGE */
    else if (opt.hit_pool && (double)rnd_below(1000000) < opt.hit_pct * 10000.0)
        PUTT(opt.hit_rcpt, rnd_below(opt.hit_pool));
    else
        PUTT(opt.rcpt, rnd_below(opt.rcpt_pool));
    n = snprintf(tmp, sizeof tmp, "\nrecipient_count=%u\nclient_address=", c->msg_rcpt);
    PUTN(tmp, (size_t)n);
    PUTN(opt.client, strlen(opt.client));
    PUTS("\nclient_name=client.example.org\nreverse_client_name=client.example.org\n");
    n = snprintf(tmp, sizeof tmp, "instance=%x.%x.%x.0\n", g.pid_tag, c->id, c->msg_no);
    PUTN(tmp, (size_t)n);
    PUTS("sasl_method=PLAIN\nsasl_username=");
    PUTT(opt.login, acct);
    PUTS("\nsasl_sender=\nsize=4096\nccert_subject=\nccert_issuer=\nccert_fingerprint=\n"
         "ccert_pubkey_fingerprint=\nencryption_protocol=TLSv1.3\n"
         "encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\n"
         "etrn_domain=\nstress=\n");
    n = snprintf(tmp, sizeof tmp, "client_port=%u\n", 40000u + c->id % 20000u);
    PUTN(tmp, (size_t)n);
    PUTS("server_address=127.0.0.1\nserver_port=587\npolicy_context=\n"
         "compatibility_level=3.6\nmail_version=3.7.11\n\n");
    c->wlen = (size_t)(p - c->wbuf);
    c->woff = 0;
    if (eom) {
        c->eom_sent = true;
        return 0;
    }
    c->msg_rcpt++;
    if (c->msg_rcpt == 1) {
        /* Postfix opens the queue file after the first accepted RCPT */
        snprintf(c->queue_id, sizeof c->queue_id, "%05X%05X",
                 (unsigned)(rnd() & 0xFFFFF), c->msg_no & 0xFFFFF);
    }
    return 0;
}

/* ------------------------------------------------------------ conns */

static void conn_start_connect(conn *c);
static void on_retry(evutil_socket_t fd, short what, void *arg);
static void conn_send(conn *c);
static void load_next(conn *c);
static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void maybe_finish(void);

static void conn_close(conn *c)
{
    if (c->rev) {
        event_free(c->rev);
        c->rev = NULL;
    }
    if (c->wev) {
        event_free(c->wev);
        c->wev = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->st == C_WAITING && g.outstanding)
        g.outstanding--;
    if (c->st == C_READY && g.free_stack) {
        for (unsigned i = 0; i < g.n_free; i++) {
            if (g.free_stack[i] == c) {
                g.free_stack[i] = g.free_stack[--g.n_free];
                break;
            }
        }
    }
    if (c->st != C_FREE && c->st != C_CONNECTING && g.n_connected)
        g.n_connected--;
    if (c->st == C_CONNECTING && g.n_inflight)
        g.n_inflight--;
    c->st = C_FREE;
    c->rlen = 0;
}

/* A broken connection during the run: reconnect (counted). */
static void conn_fail(conn *c)
{
    conn_close(c);
    if (g.phase == P_CONNECT || g.phase == P_WARMUP || g.phase == P_MEASURE ||
        g.phase == P_HOLD || g.phase == P_IDLE_SETUP) {
        /* reconnect after a pause, so that a server closing every
         * connection does not turn this into a connect storm */
        g.reconnects++;
        if (g.reconnects > 100000)
            die("more than 100000 reconnects: the server keeps closing connections");
        struct timeval retry = { 0, 10000 };
        event_base_once(g.base, -1, EV_TIMEOUT, on_retry, c, &retry);
    }
}

static void start_pending_connects(void)
{
    while (g.next_to_connect < opt.conns && g.n_inflight < opt.connect_burst) {
        conn_start_connect(&g.c[g.next_to_connect]);
        g.next_to_connect++;
    }
}

static void on_connected(conn *c)
{
    event_free(c->wev);
    c->wev = NULL;
    g.n_inflight--;
    g.n_connected++;
    c->st = C_READY;
    c->rev = event_new(g.base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    if (!c->rev)
        die("event_new");
    event_add(c->rev, NULL);
    if (g.phase == P_CONNECT) {
        start_pending_connects();
        if (g.n_connected == opt.conns) {
            uint64_t t = now_ns();
            if (!opt.quiet)
                fprintf(stderr, "policy-load: %u connections up in %.3f s\n", opt.conns,
                        (double)(t - g.t_phase_start) / 1e9);
            g.t_phase_start = t;
            if (opt.idle) {
                g.phase = P_IDLE_SETUP;
                for (unsigned i = 0; i < opt.conns; i++)
                    if (opt.idle_requests)
                        conn_send(&g.c[i]);
                if (!opt.idle_requests)
                    maybe_finish();
            } else {
                g.phase = P_WARMUP;
                g.t_rate0 = t;
                for (unsigned i = 0; i < opt.conns; i++)
                    load_next(&g.c[i]);
            }
        }
    } else if (g.phase == P_WARMUP || g.phase == P_MEASURE || g.phase == P_IDLE_SETUP ||
               g.phase == P_HOLD) {
        /* a reconnect during the run */
        if (g.phase == P_HOLD)
            c->st = C_HELD;
        else if (g.phase == P_IDLE_SETUP && c->nsent < opt.idle_requests)
            conn_send(c);
        else if (g.phase != P_IDLE_SETUP)
            load_next(c);
    }
}

static void on_connect_event(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    if (what & EV_TIMEOUT) {
        g.errors_connect++;
        conn_close(c);
        conn_start_connect(c);
        return;
    }
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        err = errno;
    if (err) {
        if (g.phase == P_CONNECT && err == ECONNREFUSED) {
            errno = err;
            die_errno("connect");
        }
        g.errors_connect++;
        if (!opt.quiet && g.errors_connect <= 5)
            fprintf(stderr, "policy-load: connect: %s\n", strerror(err));
        conn_close(c);
        if (g.errors_connect > 1000 + 10ULL * opt.conns)
            die("too many connect errors");
        conn_start_connect(c);
        return;
    }
    on_connected(c);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    conn *c = arg;
    if (c->st == C_FREE && g.phase != P_DRAIN && g.phase != P_DONE)
        conn_start_connect(c);
}

static void conn_start_connect(conn *c)
{
    int fd = socket(g.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die_errno("socket");
    if (g.sa.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->fd = fd;
    c->st = C_CONNECTING;
    c->rlen = 0;
    c->t_connect = now_ns();
    g.n_inflight++;
    int r = connect(fd, (struct sockaddr *)&g.sa, g.salen);
    if (r < 0 && errno != EINPROGRESS) {
        /* unix sockets fail at once: EAGAIN (backlog full), ECONNREFUSED, ENOENT */
        if (g.phase == P_CONNECT && (errno == ECONNREFUSED || errno == ENOENT))
            die_errno("connect");
        g.errors_connect++;
        if (!opt.quiet && g.errors_connect <= 5)
            fprintf(stderr, "policy-load: connect: %s\n", strerror(errno));
        if (g.errors_connect > 1000 + 10ULL * opt.conns)
            die("too many connect errors");
        conn_close(c);
        struct timeval retry = { 0, 20000 };
        event_base_once(g.base, -1, EV_TIMEOUT, on_retry, c, &retry);
        return;
    }
    c->wev = event_new(g.base, fd, EV_WRITE, on_connect_event, c);
    if (!c->wev)
        die("event_new");
    struct timeval tv = { (time_t)opt.connect_timeout,
                          (suseconds_t)((opt.connect_timeout - (double)(time_t)opt.connect_timeout) * 1e6) };
    event_add(c->wev, &tv);
}

static void conn_flush(conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->wev) {
                    c->wev = event_new(g.base, c->fd, EV_WRITE, on_write, c);
                    if (!c->wev)
                        die("event_new");
                }
                event_add(c->wev, NULL);
                return;
            }
            g.errors_closed++;
            conn_fail(c);
            return;
        }
        c->woff += (size_t)w;
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    conn_flush(arg);
}

static void conn_send_at(conn *c, uint64_t t_sent);

static void conn_send(conn *c)
{
    conn_send_at(c, 0);
}

/*
 * Open loop (--rate): connections that are free wait on a stack; the pacer
 * sends request k at t0 + k / rate on a free connection, and its latency is
 * counted from that intended time, so that a stalled server is not hidden
 * by requests that were simply not sent (coordinated omission).
 */
static void pace(uint64_t t)
{
    if (g.phase != P_WARMUP && g.phase != P_MEASURE)
        return;
    /* request k is due at t0 + k / rate */
    uint64_t due = (uint64_t)((double)(t - g.t_rate0) * opt.rate / 1e9) + 1;
    while (g.sched < due && g.n_free > 0) {
        conn *c = g.free_stack[--g.n_free];
        uint64_t at = g.t_rate0 + (uint64_t)((double)g.sched * 1e9 / opt.rate);
        g.sched++;
        conn_send_at(c, at);
    }
    if (due > g.sched && due - g.sched > g.max_backlog)
        g.max_backlog = due - g.sched;
    if (g.n_free > 0) {
        /* wake up when the next one is due (replies also call pace) */
        uint64_t next = g.t_rate0 + (uint64_t)((double)g.sched * 1e9 / opt.rate);
        uint64_t wait = next > t ? next - t : 0;
        struct timeval tv = { (time_t)(wait / 1000000000ULL),
                              (suseconds_t)((wait % 1000000000ULL) / 1000) };
        event_add(g.pacer, &tv);
    }
}

/* The next request of a connection during the run. */
static void load_next(conn *c)
{
    if (opt.rate <= 0) {
        conn_send(c);
        return;
    }
    c->st = C_READY;
    g.free_stack[g.n_free++] = c;
    pace(now_ns());
}

static void on_pacer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what; (void)arg;
    pace(now_ns());
}

static void conn_send_at(conn *c, uint64_t t_sent)
{
    if (build_request(c) < 0)
        die("request does not fit the buffer (templates too long?)");
    if (opt.show_request && g.msg_counter == 1 && c->msg_rcpt == 1)
        fwrite(c->wbuf, 1, c->wlen, stderr);
    c->st = C_WAITING;
    c->nsent++;
    g.outstanding++;
    c->t_sent = t_sent ? t_sent : now_ns();
    conn_flush(c);
}

static void count_action(const char *reply, size_t len)
{
    /* first line starting with action= */
    const char *p = reply, *end = reply + len;
    const char *act = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        if ((size_t)(nl - p) >= 7 && strncasecmp(p, "action=", 7) == 0) {
            act = p + 7;
            end = nl;
            break;
        }
        p = nl + 1;
    }
    if (!act) {
        g.errors_proto++;
        return;
    }
    char name[32];
    size_t i = 0;
    while (act + i < end && i < sizeof name - 1 && act[i] != ' ' && act[i] != '\t') {
        char ch = act[i];
        name[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
        i++;
    }
    name[i] = 0;
    for (size_t k = 0; k < g.n_actions; k++) {
        if (strcmp(g.actions[k].name, name) == 0) {
            g.actions[k].n++;
            return;
        }
    }
    if (g.n_actions < MAX_ACTIONS) {
        action_count *a = &g.actions[g.n_actions++];
        strcpy(a->name, name);
        a->n = 1;
        size_t sl = (size_t)(end - act);
        if (sl >= sizeof a->sample)
            sl = sizeof a->sample - 1;
        memcpy(a->sample, act, sl);
        a->sample[sl] = 0;
        return;
    }
    g.other_actions++;
}

static void enter_measure(uint64_t t)
{
    g.phase = P_MEASURE;
    g.t_measure_start = t;
    getrusage(RUSAGE_SELF, &g.ru0);
}

static void end_measure(uint64_t t)
{
    g.phase = P_DRAIN;
    g.t_measure_end = t;
    maybe_finish();
}

static void on_reply(conn *c, uint64_t t, const char *reply, size_t len)
{
    g.outstanding--;
    c->st = C_READY;

    if (g.phase == P_WARMUP) {
        g.warm_done++;
        if (t - g.t_phase_start >= (uint64_t)(opt.warmup * 1e9))
            enter_measure(t);
    }
    if (g.phase == P_MEASURE) {
        /* every reply that arrives inside the window counts */
        uint64_t us = (t - c->t_sent) / 1000;
        h_add(&g.h, us);
        count_action(reply, len);
        g.measured++;
        uint64_t sec = (t - g.t_measure_start) / 1000000000ULL;
        if (sec < MAX_SECONDS)
            g.per_sec[sec]++;
        if ((opt.max_requests && g.measured >= opt.max_requests) ||
            t - g.t_measure_start >= (uint64_t)(opt.duration * 1e9)) {
            end_measure(t);
            return;
        }
    }
    if (g.phase == P_IDLE_SETUP) {
        if (g.idle_replies == 0 && !opt.quiet)
            fprintf(stderr, "policy-load: first reply: %.*s", (int)len, reply);
        g.idle_replies++;
        count_action(reply, len);
        if (c->nsent < opt.idle_requests) {
            conn_send(c);
        } else {
            c->st = C_HELD;
            maybe_finish();
        }
        return;
    }
    if (g.phase == P_WARMUP || g.phase == P_MEASURE)
        load_next(c);
    else
        maybe_finish();
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    conn *c = arg;
    for (;;) {
        if (c->rlen >= RBUF_SIZE) {
            g.errors_proto++;
            conn_fail(c);
            return;
        }
        ssize_t r = recv(fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            g.errors_closed++;
            conn_fail(c);
            return;
        }
        if (r == 0) {
            /* closed by the server */
            if (c->st == C_WAITING || c->rlen)
                g.errors_closed++;
            conn_fail(c);
            return;
        }
        size_t old = c->rlen;
        c->rlen += (size_t)r;
        /* look for the blank line, starting just before the new data */
        size_t from = old > 0 ? old - 1 : 0;
        char *e = NULL;
        for (size_t i = from; i + 1 < c->rlen; i++) {
            if (c->rbuf[i] == '\n' && c->rbuf[i + 1] == '\n') {
                e = c->rbuf + i;
                break;
            }
        }
        if (!e) {
            if ((size_t)r < RBUF_SIZE - old)
                return;          /* short read: wait for more */
            continue;
        }
        size_t replylen = (size_t)(e - c->rbuf) + 2;
        if (c->st != C_WAITING || replylen != c->rlen) {
            /* unsolicited data, or more than one reply */
            g.errors_proto++;
            conn_fail(c);
            return;
        }
        uint64_t t = now_ns();
        c->rlen = 0;
        on_reply(c, t, c->rbuf, replylen);
        return;
    }
}

/* ------------------------------------------------------------ control */

static void maybe_finish(void)
{
    if (g.phase == P_DRAIN && g.outstanding == 0) {
        g.phase = P_DONE;
        event_base_loopbreak(g.base);
    }
    if (g.phase == P_IDLE_SETUP) {
        bool all = true;
        for (unsigned i = 0; i < opt.conns && all; i++)
            if (g.c[i].st != C_HELD && !(opt.idle_requests == 0 && g.c[i].st == C_READY))
                all = false;
        if (all) {
            g.phase = P_HOLD;
            g.t_phase_start = now_ns();
            printf("READY conns=%u pid=%d\n", opt.conns, (int)getpid());
            fflush(stdout);
        }
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what; (void)arg;
    uint64_t t = now_ns();
    if (g.stop) {
        if (g.phase == P_MEASURE) {
            end_measure(t);
        } else if (g.phase != P_DRAIN) {
            g.phase = P_DONE;
            event_base_loopbreak(g.base);
            return;
        }
    }
    switch (g.phase) {
    case P_CONNECT:
        if (t - g.t_phase_start > (uint64_t)((opt.connect_timeout * 3 + 10) * 1e9)) {
            fprintf(stderr, "policy-load: only %u of %u connections up after %.0f s\n",
                    g.n_connected, opt.conns, (double)(t - g.t_phase_start) / 1e9);
            g.exit_code = 2;
            g.phase = P_DONE;
            event_base_loopbreak(g.base);
        }
        break;
    case P_WARMUP:
        if (t - g.t_phase_start >= (uint64_t)(opt.warmup * 1e9))
            enter_measure(t);
        break;
    case P_MEASURE:
        if (t - g.t_measure_start >= (uint64_t)(opt.duration * 1e9))
            end_measure(t);
        break;
    case P_DRAIN:
        if (t - g.t_measure_end > (uint64_t)(opt.timeout * 1e9) + 1000000000ULL) {
            g.phase = P_DONE;
            event_base_loopbreak(g.base);
        }
        break;
    case P_IDLE_SETUP:
        if (t - g.t_phase_start > (uint64_t)(opt.timeout * 1e9) + 5000000000ULL) {
            fprintf(stderr, "policy-load: idle setup did not complete\n");
            g.exit_code = 2;
            g.phase = P_DONE;
            event_base_loopbreak(g.base);
        }
        break;
    case P_HOLD:
        if (t - g.t_phase_start >= (uint64_t)(opt.duration * 1e9)) {
            g.phase = P_DONE;
            event_base_loopbreak(g.base);
        }
        break;
    default:
        break;
    }
    /* request timeouts */
    if (g.phase == P_WARMUP || g.phase == P_MEASURE || g.phase == P_DRAIN ||
        g.phase == P_IDLE_SETUP) {
        uint64_t lim = (uint64_t)(opt.timeout * 1e9);
        for (unsigned i = 0; i < opt.conns; i++) {
            conn *c = &g.c[i];
            if (c->st == C_WAITING && t - c->t_sent > lim) {
                g.errors_timeout++;
                conn_fail(c);
            }
        }
        if (g.phase == P_DRAIN)
            maybe_finish();
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig; (void)what; (void)arg;
    g.stop = true;
}

/* ------------------------------------------------------------- report */

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void report(void)
{
    double secs = (double)(g.t_measure_end - g.t_measure_start) / 1e9;
    double rate = secs > 0 ? (double)g.measured / secs : 0;
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = tv_s(ru1.ru_utime) - tv_s(g.ru0.ru_utime) + tv_s(ru1.ru_stime) - tv_s(g.ru0.ru_stime);

    uint64_t smin = UINT64_MAX, smax = 0;
    uint64_t full = (uint64_t)secs;
    for (uint64_t s = 0; s < full && s < MAX_SECONDS; s++) {
        if (g.per_sec[s] < smin)
            smin = g.per_sec[s];
        if (g.per_sec[s] > smax)
            smax = g.per_sec[s];
    }
    if (smin == UINT64_MAX)
        smin = 0;

    uint64_t p50 = h_pct(&g.h, 50), p90 = h_pct(&g.h, 90), p99 = h_pct(&g.h, 99),
             p999 = h_pct(&g.h, 99.9);
    double mean = g.h.n ? (double)g.h.sum / (double)g.h.n : 0;

    if (!opt.quiet) {
        printf("target        %s\n", opt.target);
        printf("connections   %u\n", opt.conns);
        printf("measured      %" PRIu64 " requests in %.3f s (after %.1f s warm-up, %" PRIu64 " requests)\n",
               g.measured, secs, opt.warmup, g.warm_done);
        printf("decisions/s   %.0f  (per-second min %" PRIu64 ", max %" PRIu64 ")\n", rate, smin, smax);
        printf("latency µs    p50 %" PRIu64 "  p90 %" PRIu64 "  p99 %" PRIu64 "  p99.9 %" PRIu64
               "  max %" PRIu64 "  mean %.0f\n", p50, p90, p99, p999, g.h.max, mean);
        if (opt.rate > 0)
            printf("open loop     offered %.0f/s, largest backlog %" PRIu64 " requests waiting for a free connection\n",
                   opt.rate, g.max_backlog);
        printf("generator CPU %.2f s (%.0f%% of one core)\n", cpu, secs > 0 ? 100 * cpu / secs : 0);
        printf("errors        closed %" PRIu64 ", timeout %" PRIu64 ", protocol %" PRIu64
               ", connect %" PRIu64 ", reconnects %" PRIu64 "\n",
               g.errors_closed, g.errors_timeout, g.errors_proto, g.errors_connect, g.reconnects);
        for (size_t k = 0; k < g.n_actions; k++)
            printf("action        %-16s %10" PRIu64 "   e.g. %s\n", g.actions[k].name,
                   g.actions[k].n, g.actions[k].sample);
        if (g.other_actions)
            printf("action        (other)          %10" PRIu64 "\n", g.other_actions);
    }
    printf("RESULT conns=%u warm=%" PRIu64 " requests=%" PRIu64 " seconds=%.3f rate=%.0f p50=%" PRIu64 " p90=%" PRIu64
           " p99=%" PRIu64 " p999=%" PRIu64 " max=%" PRIu64 " mean=%.0f errors=%" PRIu64
           " reconnects=%" PRIu64 " gen_cpu=%.2f offered=%.0f backlog=%" PRIu64 " actions=",
           opt.conns, g.warm_done, g.measured, secs, rate, p50, p90, p99, p999, g.h.max, mean,
           g.errors_closed + g.errors_timeout + g.errors_proto, g.reconnects, cpu, opt.rate,
           g.max_backlog);
    for (size_t k = 0; k < g.n_actions; k++)
        printf("%s%s:%" PRIu64, k ? "," : "", g.actions[k].name, g.actions[k].n);
    if (g.n_actions == 0)
        printf("none");
    printf("\n");
    fflush(stdout);
}

/* ------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
"usage: policy-load [options] TARGET\n"
"  TARGET                inet:127.0.0.1:PORT | 127.0.0.1:PORT | [::1]:PORT | unix:/path\n"
"  -c, --connections N   concurrent persistent connections (1..%d, default 50)\n"
"  -d, --duration S      measured seconds (default 10; with --idle: hold time)\n"
"  -w, --warmup S        warm-up seconds before measuring (default 2)\n"
"  -n, --requests M      stop after M measured requests (default: no limit)\n"
"  -t, --timeout S       per-request timeout (default 10)\n"
"      --connect-timeout S  per connect attempt (default 5)\n"
"      --connect-burst N connect attempts in flight at once (default 64)\n"
"      --idle            open N connections, send --idle-requests on each, print\n"
"                        READY, hold them for -d seconds or until SIGINT/SIGTERM\n"
"      --idle-requests K requests per connection before holding (default 1)\n"
"  -a, --accounts N      account pool size (default 100)\n"
"      --login TMPL      sasl_username template (default bench%%u@relay.test)\n"
"      --sender TMPL     sender template, same index (default news@bench%%u.example.com)\n"
"      --rcpt TMPL       recipient template (default user%%u@example.net)\n"
"      --rcpt-pool N     recipient pool size (default 1000000)\n"
"      --rcpts-per-msg N recipients per message (instance), default 1\n"
"  -r, --rate R          open loop: offer R requests/s in total, evenly paced,\n"
"                        latency counted from each request's intended send time\n"
"      --eom             end each message with an END-OF-MESSAGE request\n"
"                        (recipient_count = its recipients); counted like the rest\n"
"      --hit-rcpt TMPL   a second recipient template (e.g. suppressed addresses)\n"
"      --hit-pool N      its pool size\n"
"      --hit-pct P       percent of recipients drawn from it (default 0)\n"
"      --client ADDR     client_address (default 192.0.2.10)\n"
"      --state STATE     protocol_state (default RCPT)\n"
"      --seed N          random seed (default from time)\n"
"      --show-request    print the first request to stderr\n"
"  -q, --quiet           only the RESULT line\n"
"Templates replace %%u by the index.\n", MAX_CONNS);
}

static double parse_double(const char *s, const char *what, double lo, double hi)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || *e || v < lo || v > hi) {
        fprintf(stderr, "policy-load: bad %s '%s' (%g..%g)\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

static uint64_t parse_u64(const char *s, const char *what, uint64_t lo, uint64_t hi)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || *e || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "policy-load: bad %s '%s' (%" PRIu64 "..%" PRIu64 ")\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

enum {
    O_IDLE = 256, O_IDLE_REQ, O_LOGIN, O_SENDER, O_RCPT, O_RCPT_POOL, O_RPM, O_HIT_RCPT,
    O_HIT_POOL, O_HIT_PCT, O_CLIENT, O_STATE, O_SEED, O_SHOW, O_CTIMEOUT, O_CBURST, O_EOM
};

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "connections", required_argument, NULL, 'c' },
        { "duration", required_argument, NULL, 'd' },
        { "warmup", required_argument, NULL, 'w' },
        { "requests", required_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, 't' },
        { "connect-timeout", required_argument, NULL, O_CTIMEOUT },
        { "connect-burst", required_argument, NULL, O_CBURST },
        { "idle", no_argument, NULL, O_IDLE },
        { "idle-requests", required_argument, NULL, O_IDLE_REQ },
        { "accounts", required_argument, NULL, 'a' },
        { "login", required_argument, NULL, O_LOGIN },
        { "sender", required_argument, NULL, O_SENDER },
        { "rcpt", required_argument, NULL, O_RCPT },
        { "rcpt-pool", required_argument, NULL, O_RCPT_POOL },
        { "rcpts-per-msg", required_argument, NULL, O_RPM },
        { "eom", no_argument, NULL, O_EOM },
        { "rate", required_argument, NULL, 'r' },
        { "hit-rcpt", required_argument, NULL, O_HIT_RCPT },
        { "hit-pool", required_argument, NULL, O_HIT_POOL },
        { "hit-pct", required_argument, NULL, O_HIT_PCT },
        { "client", required_argument, NULL, O_CLIENT },
        { "state", required_argument, NULL, O_STATE },
        { "seed", required_argument, NULL, O_SEED },
        { "show-request", no_argument, NULL, O_SHOW },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *login = "bench%u@relay.test", *sender = "news@bench%u.example.com",
               *rcpt = "user%u@example.net", *hit = "suppressed%u@example.net";

    opt.conns = 50;
    opt.duration = 10;
    opt.warmup = 2;
    opt.timeout = 10;
    opt.connect_timeout = 5;
    opt.connect_burst = 64;
    opt.idle_requests = 1;
    opt.accounts = 100;
    opt.rcpt_pool = 1000000;
    opt.rcpts_per_msg = 1;
    strcpy(opt.client, "192.0.2.10");
    strcpy(opt.state, "RCPT");
    opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    int ch;
    while ((ch = getopt_long(argc, argv, "c:d:w:n:t:a:r:qh", lo, NULL)) != -1) {
        switch (ch) {
        case 'c': opt.conns = (unsigned)parse_u64(optarg, "connections", 1, MAX_CONNS); break;
        case 'd': opt.duration = parse_double(optarg, "duration", 0.1, MAX_DURATION); break;
        case 'w': opt.warmup = parse_double(optarg, "warmup", 0, 600); break;
        case 'n': opt.max_requests = parse_u64(optarg, "requests", 1, MAX_REQUESTS); break;
        case 't': opt.timeout = parse_double(optarg, "timeout", 0.01, 600); break;
        case O_CTIMEOUT: opt.connect_timeout = parse_double(optarg, "connect timeout", 0.01, 120); break;
        case O_CBURST: opt.connect_burst = (unsigned)parse_u64(optarg, "connect burst", 1, MAX_CONNS); break;
        case O_IDLE: opt.idle = true; break;
        case O_IDLE_REQ: opt.idle_requests = (unsigned)parse_u64(optarg, "idle requests", 0, 1000); break;
        case 'a': opt.accounts = (unsigned)parse_u64(optarg, "accounts", 1, 100000000); break;
        case O_LOGIN: login = optarg; break;
        case O_SENDER: sender = optarg; break;
        case O_RCPT: rcpt = optarg; break;
        case O_RCPT_POOL: opt.rcpt_pool = (unsigned)parse_u64(optarg, "rcpt pool", 1, 1000000000); break;
        case O_RPM: opt.rcpts_per_msg = (unsigned)parse_u64(optarg, "rcpts per msg", 1, 1000); break;
        case O_EOM: opt.eom = true; break;
        case 'r': opt.rate = parse_double(optarg, "rate", 1, 10000000); break;
        case O_HIT_RCPT: hit = optarg; break;
        case O_HIT_POOL: opt.hit_pool = (unsigned)parse_u64(optarg, "hit pool", 0, 1000000000); break;
        case O_HIT_PCT: opt.hit_pct = parse_double(optarg, "hit pct", 0, 100); break;
        case O_CLIENT:
            if (strlen(optarg) >= sizeof opt.client)
                die("--client too long");
            strcpy(opt.client, optarg);
            break;
        case O_STATE:
            if (strlen(optarg) >= sizeof opt.state)
                die("--state too long");
            strcpy(opt.state, optarg);
            break;
        case O_SEED: opt.seed = parse_u64(optarg, "seed", 1, UINT64_MAX); break;
        case O_SHOW: opt.show_request = true; break;
        case 'q': opt.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    if (strlen(argv[optind]) >= sizeof opt.target)
        die("target too long");
    strcpy(opt.target, argv[optind]);
    parse_target(opt.target);
    if (tmpl_compile(&opt.login, login) || tmpl_compile(&opt.sender, sender) ||
        tmpl_compile(&opt.rcpt, rcpt) || tmpl_compile(&opt.hit_rcpt, hit))
        die("too many %u in a template");
    if (opt.hit_pct > 0 && opt.hit_pool == 0)
        die("--hit-pct needs --hit-pool");

    g.rng = opt.seed ? opt.seed : 88172645463325252ULL;
    g.pid_tag = (unsigned)getpid() ^ (unsigned)time(NULL);

    /* file descriptors: one per connection plus a few */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 64) {
        rl.rlim_cur = (rlim_t)opt.conns + 64;
        if (rl.rlim_max < rl.rlim_cur)
            rl.rlim_max = rl.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            die_errno("cannot raise the open file limit for the connections");
    }
    signal(SIGPIPE, SIG_IGN);

    /* precise timers (timerfd, one more syscall per loop): only the
     * open-loop pacer needs better than 1 ms */
    struct event_config *ecfg = event_config_new();
    if (!ecfg)
        die("event_config_new");
    if (opt.rate > 0)
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    g.base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    if (!g.base)
        die("event_base_new");
    g.c = calloc(opt.conns, sizeof *g.c);
    if (!g.c)
        die("out of memory");
    for (unsigned i = 0; i < opt.conns; i++) {
        g.c[i].fd = -1;
        g.c[i].id = i;
    }
    struct event *sigint = evsignal_new(g.base, SIGINT, on_signal, NULL);
    struct event *sigterm = evsignal_new(g.base, SIGTERM, on_signal, NULL);
    struct event *tick = event_new(g.base, -1, EV_PERSIST, on_tick, NULL);
    struct event *pacer = NULL;
    if (opt.rate > 0) {
        g.free_stack = calloc(opt.conns, sizeof *g.free_stack);
        if (!g.free_stack)
            die("out of memory");
        pacer = event_new(g.base, -1, 0, on_pacer, NULL);
        if (!pacer)
            die("event_new");
        g.pacer = pacer;
    }
    struct timeval tv = { 0, 50000 };
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    event_add(tick, &tv);

    g.phase = P_CONNECT;
    g.t_phase_start = now_ns();
    start_pending_connects();
    event_base_dispatch(g.base);

    int rc = g.exit_code;
    if (!opt.idle && rc == 0) {
        if (g.t_measure_start == 0) {
            fprintf(stderr, "policy-load: interrupted before measuring\n");
            rc = 1;
        } else {
            if (g.t_measure_end == 0)
                g.t_measure_end = now_ns();
            report();
            if (g.measured == 0)
                rc = 1;
        }
    } else if (opt.idle && rc == 0) {
        uint64_t errs = g.errors_closed + g.errors_timeout + g.errors_proto;
        printf("IDLE conns=%u replies=%" PRIu64 " errors=%" PRIu64 " reconnects=%" PRIu64 "\n",
               opt.conns, g.idle_replies, errs, g.reconnects);
        for (size_t k = 0; k < g.n_actions; k++)
            printf("action        %-16s %10" PRIu64 "   e.g. %s\n", g.actions[k].name,
                   g.actions[k].n, g.actions[k].sample);
    }

    for (unsigned i = 0; i < opt.conns; i++)
        conn_close(&g.c[i]);
    free(g.c);
    event_free(sigint);
    event_free(sigterm);
    event_free(tick);
    if (pacer)
        event_free(pacer);
    free(g.free_stack);
    event_base_free(g.base);
    return rc;
}
