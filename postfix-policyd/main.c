/*
 * relayguard-policyd - Postfix SMTP access policy delegation server.
 *
 * Binds the listen socket, daemonizes, drops to policyd.user, then runs the
 * server on one libevent loop.  SIGHUP reloads the configuration and the
 * accounts; SIGTERM and SIGINT drain and exit.  See relayguard-policyd(8).
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "engine.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "util.h"

#define IDENT "relayguard-policyd"

static struct {
    char *config_path;          /* absolute after startup, for SIGHUP */
    const char *listen_override;
    int debug;
    rg_server *server;
    struct event_base *base;
} g;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " IDENT " [-fdtVh] [-c FILE] [-l LISTEN]\n"
        "  -c FILE    configuration (default " RG_DEFAULT_CONFIG ")\n"
        "  -f         stay in the foreground\n"
        "  -d         debug logging\n"
        "  -l LISTEN  listen here instead of policyd.listen\n"
        "             (inet:HOST:PORT, inet:[IPV6]:PORT or unix:PATH)\n"
        "  -t         check the configuration and exit\n"
        "  -V         print the version and exit\n"
        "  -h         this help\n");
}

/* Load the configuration and apply -l.  NULL with a message in err. */
static rg_config *load_config(char *err, size_t errlen)
{
    rg_config *cfg = rg_config_load(g.config_path, err, errlen);

    if (cfg && g.listen_override) {
        free(cfg->policyd.listen);
        cfg->policyd.listen = rg_strdup(g.listen_override);
    }
    return cfg;
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    rg_gen *cur = rg_server_gen(g.server), *gen;
    const rg_config *old = rg_gen_config(cur);
    rg_config *cfg;
    char err[1024];

    rg_info("SIGHUP: reloading %s", g.config_path);
    if ((cfg = load_config(err, sizeof err)) == NULL) {
        rg_error("error: reload: %s; keeping the old configuration", err);
        rg_engine_refresh_accounts(rg_gen_engine(cur));
        return;
    }
    if (strcmp(cfg->policyd.listen, old->policyd.listen) != 0)
        rg_warn("warning: reload: policyd.listen changed to %s: takes a restart, still on %s",
                cfg->policyd.listen, old->policyd.listen);
    if ((cfg->policyd.user == NULL) != (old->policyd.user == NULL) ||
        (cfg->policyd.user && strcmp(cfg->policyd.user, old->policyd.user) != 0))
        rg_warn("warning: reload: policyd.user changed: takes a restart");
    if ((gen = rg_gen_new(cfg, g.base, err, sizeof err)) == NULL) {
        rg_error("error: reload: %s; keeping the old configuration", err);
        rg_engine_refresh_accounts(rg_gen_engine(cur));
        return;
    }
    if (!g.debug)
        rg_log_set_level(rg_gen_config(gen)->log_level);
    rg_info("reload: %s read, loading the accounts", g.config_path);
    rg_server_reload(g.server, gen);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    rg_info("%s: draining and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rg_server_drain(g.server, RG_POLICYD_DRAIN_MS);
}

int main(int argc, char **argv)
{
    int fd, is_inet, metrics_fd = -1, st;
    char err[1024], *unix_path = NULL, *listen_spec, *pidfile = NULL;
    rg_daemon_args a;
    rg_config *cfg;
    rg_gen *gen;
    struct event *sig_hup, *sig_term, *sig_int;
    rg_metrics_server *metrics = NULL;

    if ((st = rg_daemon_args_parse(argc, argv, IDENT, 1, usage, &a)) >= 0)
        return st;
    g.config_path = a.config_path;
    g.listen_override = a.listen;
    g.debug = a.debug;

    if ((cfg = load_config(err, sizeof err)) == NULL) {
        fprintf(stderr, IDENT ": %s\n", err);
        return 1;
    }
    if (a.check_only) {
        int rc = rg_listen_open(cfg->policyd.listen, 0, &unix_path, &is_inet, err, sizeof err);
        if (rc < 0)
            fprintf(stderr, IDENT ": %s: policyd.listen: %s\n", g.config_path, err);
        else
            printf(IDENT ": %s: configuration OK\n", g.config_path);
        rg_config_free(cfg);
        free(g.config_path);
        return rc < 0 ? 1 : 0;
    }

    rg_daemon_log_open(IDENT, &a, cfg);
    rg_metrics_init(IDENT, cfg->metrics_accounts);

    listen_spec = rg_strdup(cfg->policyd.listen);
    if ((fd = rg_listen_open(listen_spec, 1, &unix_path, &is_inet, err, sizeof err)) < 0) {
        if (cfg->log != RG_LOG_STDERR)
            fprintf(stderr, IDENT ": %s\n", err);
        rg_fatal("%s", err);
    }
    if (cfg->policyd.metrics) {
        /* bound now, while root; served after the fork (threads do not survive it) */
        if ((metrics_fd = rg_metrics_bind(cfg->policyd.metrics, err, sizeof err)) < 0) {
            if (cfg->log != RG_LOG_STDERR)
                fprintf(stderr, IDENT ": policyd.metrics: %s\n", err);
            rg_fatal("policyd.metrics: %s", err);
        }
    }
    if (cfg->policyd.pidfile)
        pidfile = rg_strdup(cfg->policyd.pidfile);
    rg_daemon_enter(&a, cfg->log == RG_LOG_STDERR, pidfile, cfg->policyd.user, "policyd.user");

    if ((g.base = event_base_new()) == NULL)
        rg_fatal("event_base_new failed");
    if ((gen = rg_gen_new(cfg, g.base, err, sizeof err)) == NULL)
        rg_fatal("%s", err);
    g.server = rg_server_new(g.base, fd, unix_path, is_inet, gen);
    if (metrics_fd >= 0) {
        if ((metrics = rg_metrics_serve(metrics_fd, err, sizeof err)) == NULL)
            rg_fatal("policyd.metrics: %s", err);
        rg_info("metrics on %s", cfg->policyd.metrics);
    }

    sig_hup = evsignal_new(g.base, SIGHUP, on_hup, NULL);
    sig_term = evsignal_new(g.base, SIGTERM, on_term, NULL);
    sig_int = evsignal_new(g.base, SIGINT, on_term, NULL);
    if (!sig_hup || !sig_term || !sig_int || evsignal_add(sig_hup, NULL) < 0 ||
        evsignal_add(sig_term, NULL) < 0 || evsignal_add(sig_int, NULL) < 0)
        rg_fatal("cannot set up signal handling");

    rg_info("listening on %s (pid %ld)", listen_spec, (long) getpid());
    if (event_base_dispatch(g.base) < 0)
        rg_error("error: event loop failed");

    rg_metrics_server_stop(metrics);
    rg_server_free(g.server);
    event_free(sig_hup);
    event_free(sig_term);
    event_free(sig_int);
    event_base_free(g.base);
    if (pidfile && unlink(pidfile) < 0 && errno != ENOENT)
        rg_warn("warning: remove pidfile %s: %s", pidfile, strerror(errno));
    rg_info("stopped");
    free(pidfile);
    free(listen_spec);
    free(g.config_path);
    return 0;
}
