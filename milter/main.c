/*
 * relayguard-milter - every relayguard check, the header policy and DKIM
 * signing in one milter, for Postfix and Sendmail.
 *
 * Opens the milter socket, daemonizes, drops to milter.user and starts the
 * workers (server.c; the protocol is proto.c).  The main thread then only
 * waits for signals: SIGHUP reloads the configuration, the DKIM keys and
 * the accounts; SIGTERM and SIGINT stop.  See relayguard-milter(8).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "config.h"
#include "filter.h"
#include "daemon.h"
#include "metrics.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define IDENT "relayguard-milter"

static struct {
    char *config_path;          /* absolute, for SIGHUP */
    const char *listen_override;
    int debug;
} g;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " IDENT " [-fdtVh] [-c FILE] [-l SOCKET]\n"
        "  -c FILE    configuration (default " RG_DEFAULT_CONFIG ")\n"
        "  -f         stay in the foreground\n"
        "  -d         debug logging\n"
        "  -l SOCKET  listen here instead of milter.listen\n"
        "             (inet:PORT@HOST, inet6:PORT@HOST or unix:PATH)\n"
        "  -t         check the configuration and the DKIM keys, then exit\n"
        "  -V         print the version and exit\n"
        "  -h         this help\n");
}

static rg_config *load_config(char *err, size_t errlen)
{
    rg_config *cfg = rg_config_load(g.config_path, err, errlen);
    if (cfg && g.listen_override) {
        free(cfg->milter.listen);
        cfg->milter.listen = rg_strdup(g.listen_override);
    }
    return cfg;
}

/* SIGHUP: a new generation; the old one goes when its last message ends. */
static void reload(void)
{
    char err[1024];
    rg_info("SIGHUP: reloading %s", g.config_path);
    rg_config *cfg = load_config(err, sizeof err);
    if (cfg == NULL) {
        rg_error("error: reload: %s; keeping the old configuration", err);
        return;
    }
    if (!g.debug)
        rg_log_set_level(cfg->log_level);
    if (rg_milter_gen_install(cfg, err, sizeof err) < 0) {
        rg_error("error: reload: %s; keeping the old configuration", err);
        return;
    }
    rg_info("reload: %s read, keys and accounts loaded", g.config_path);
}

int main(int argc, char **argv)
{
    char err[1024];
    rg_daemon_args a;
    int rc;

    if ((rc = rg_daemon_args_parse(argc, argv, IDENT, 1, usage, &a)) >= 0)
        return rc;
    g.config_path = a.config_path;
    g.listen_override = a.listen;
    g.debug = a.debug;

    rg_config *cfg = load_config(err, sizeof err);
    if (cfg == NULL) {
        fprintf(stderr, IDENT ": %s\n", err);
        free(g.config_path);
        return 1;
    }
    rg_daemon_log_open(IDENT, &a, cfg);
    char *listen = rg_strdup(cfg->milter.listen);
    char *user = cfg->milter.user ? rg_strdup(cfg->milter.user) : NULL;
    char *pidfile = cfg->milter.pidfile ? rg_strdup(cfg->milter.pidfile) : NULL;
    unsigned timeout_ms = cfg->milter.timeout_ms;
    int nworkers = (int)cfg->milter.store_connections;
    int log_stderr = cfg->log == RG_LOG_STDERR;
    char *metrics_spec = cfg->milter.metrics ? rg_strdup(cfg->milter.metrics) : NULL;
    int metrics_fd = -1;
    rg_metrics_server *metrics = NULL;
    rg_metrics_init(IDENT, cfg->metrics_accounts);

    if (rg_milter_gen_install(cfg, err, sizeof err) < 0) {
        fprintf(stderr, IDENT ": %s\n", err);
        rg_error("fatal: %s", err);
        free(listen);
        free(user);
        free(pidfile);
        free(metrics_spec);
        free(g.config_path);
        return 1;
    }
    if (a.check_only) {
        printf(IDENT ": %s: configuration OK\n", g.config_path);
        rg_milter_gen_shutdown();
        free(listen);
        free(user);
        free(pidfile);
        free(metrics_spec);
        free(g.config_path);
        return 0;
    }

    if (strncmp(listen, "unix:", 5) == 0 || strncmp(listen, "local:", 6) == 0)
        unlink(strchr(listen, ':') + 1);        /* a stale socket of a previous run */
    int listen_fd = rgm_listen(listen, err, sizeof err);
    if (listen_fd < 0) {
        if (!log_stderr)
            fprintf(stderr, IDENT ": cannot listen on %s\n", err);
        rg_fatal("cannot listen on %s", err);
    }
    if (metrics_spec) {
        /* bound now, while root; served after the fork (threads do not survive it) */
        if ((metrics_fd = rg_metrics_bind(metrics_spec, err, sizeof err)) < 0) {
            if (!log_stderr)
                fprintf(stderr, IDENT ": milter.metrics: %s\n", err);
            rg_fatal("milter.metrics: %s", err);
        }
    }
    rg_daemon_enter(&a, log_stderr, pidfile, user, "milter.user");

    if (metrics_fd >= 0) {
        if ((metrics = rg_metrics_serve(metrics_fd, err, sizeof err)) == NULL)
            rg_fatal("milter.metrics: %s", err);
        rg_info("metrics on %s", metrics_spec);
    }
    /* signals are taken here, by sigwait: the workers block them all */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    /* glibc gives each thread that allocates its own arena (up to 8 per
     * core), and each keeps what its messages freed: one arena per core is
     * enough for the workers and keeps RSS down (200 sessions: 16 MiB
     * instead of 24, bench/run-milter.sh) */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, ncpu > 2 ? (int)ncpu : 2);
    if (rgm_server_start(&rg_milter_desc, listen_fd, nworkers, timeout_ms, err, sizeof err) < 0)
        rg_fatal("cannot start the workers: %s", err);
    rg_info("listening on %s (pid %ld, %d workers)", listen, (long)getpid(), nworkers);
    for (;;) {
        int sig = sigwaitinfo(&sigs, NULL);
        if (sig < 0 && errno == EINTR)
            continue;
        if (sig == SIGHUP) {
            reload();
            continue;
        }
        break;
    }
    rgm_server_stop();          /* every session ends: abort and close run */
    rg_metrics_server_stop(metrics);
    rg_info("stopped");
    rg_milter_gen_shutdown();
    if (pidfile && unlink(pidfile) < 0 && errno != ENOENT)
        rg_warn("warning: remove pidfile %s: %s", pidfile, strerror(errno));
    free(listen);
    free(user);
    free(pidfile);
    free(metrics_spec);
    free(g.config_path);
    return 0;
}
