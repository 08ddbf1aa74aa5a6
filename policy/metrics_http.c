/*
 * metrics_http.c - the Prometheus endpoint (libmicrohttpd).  Kept out of
 * the engine library, in librgmetricshttp, so that only the daemons that
 * serve metrics load libmicrohttpd and GnuTLS: the Exim module is loaded
 * into every Exim process, and the CLI is run once per bounce.
 */
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

struct rg_metrics_server {
    struct MHD_Daemon *d;
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    rg_warn("warning: metrics endpoint: %s", buf);
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, char *text, size_t len,
                                 const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    (void)cls, (void)version, (void)upload, (void)req_cls;
    if (*upload_size != 0)
        return MHD_NO;          /* no bodies here */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, rg_strdup("only GET\n"), 9,
                         "text/plain; charset=utf-8");
    if (strcmp(url, "/metrics") != 0) {
        static const char msg[] = "not found: the metrics are at /metrics\n";
        return send_text(c, MHD_HTTP_NOT_FOUND, rg_strdup(msg), sizeof msg - 1,
                         "text/plain; charset=utf-8");
    }
    size_t len;
    char *text = rg_metrics_render(&len);
    return send_text(c, MHD_HTTP_OK, text, len, "text/plain; version=0.0.4; charset=utf-8");
}

rg_metrics_server *rg_metrics_serve(int fd, char *err, size_t errlen)
{
    /* A few scrapers at a time, each given 10 s; a thread of MHD's own,
     * started with every signal blocked: signals are the daemon's business
     * (relayguard-milter takes SIGTERM with sigwait in a thread of its own,
     * and a signal delivered to this thread would kill the process). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (d == NULL) {
        rg_seterr(err, errlen, "cannot start the metrics endpoint (libmicrohttpd)");
        close(fd);
        return NULL;
    }
    rg_metrics_server *s = rg_calloc(1, sizeof *s);
    s->d = d;
    return s;
}

void rg_metrics_server_stop(rg_metrics_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}

int rg_metrics_bind(const char *spec, char *err, size_t errlen)
{
    char *path = NULL;
    int is_inet;
    int fd = rg_listen_open(spec, 1, &path, &is_inet, err, errlen);
    free(path);
    return fd;
}
