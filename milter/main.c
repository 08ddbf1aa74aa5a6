/*
 * relayguard-milter - every relayguard check, the header policy and DKIM
 * signing in one libmilter filter, for Postfix and Sendmail.
 *
 * Opens the milter socket (TCP tuned for inet:, see tcp.c), daemonizes, drops
 * to milter.user and hands over to smfi_main().  SIGHUP reloads the
 * configuration, the DKIM keys and the accounts; SIGTERM stops.  See
 * relayguard-milter(8).
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

#include <libmilter/mfapi.h>
#include <openssl/crypto.h>

#include "config.h"
#include "filter.h"
#include "daemon.h"
#include "metrics.h"
#include "log.h"
#include "tcp.h"
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

/* Start-up errors from daemon.c (single-threaded at that point). */
static char derr[256];

static rg_config *load_config(char *err, size_t errlen)
{
    rg_config *cfg = rg_config_load(g.config_path, err, errlen);
    if (cfg && g.listen_override) {
        free(cfg->milter.listen);
        cfg->milter.listen = rg_strdup(g.listen_override);
    }
    return cfg;
}

/*
 * SIGHUP.  libmilter's own signal thread sigwait()s for SIGHUP, SIGTERM and
 * SIGINT and stops the filter on any of them; a second sigwait thread of
 * ours would race it for each signal.  So relayguard-milter provides
 * sigwait() itself (the executable's definition takes precedence over
 * libc's for libmilter too): SIGHUP reloads right there, in libmilter's
 * signal thread, and is never seen by libmilter; every other signal is
 * returned to it as before.
 */
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

int sigwait(const sigset_t *set, int *sig)
{
    for (;;) {
        int s = sigwaitinfo(set, NULL);
        if (s < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (s == SIGHUP && g.config_path) {
            reload();
            /* Free this thread's OpenSSL state (the error queue that loading
             * the DKIM keys made): libmilter's signal thread may still be
             * ending when the process exits, and its state then leaks. */
            OPENSSL_thread_stop();
            continue;
        }
        *sig = s;
        return 0;
    }
}

int main(int argc, char **argv)
{
    const char *config_path = RG_DEFAULT_CONFIG;
    int foreground = 0, check_only = 0, opt;
    char err[1024], abs_path[PATH_MAX];

    rg_milter_tcp_init();
    while ((opt = getopt(argc, argv, "c:fdl:tVh")) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'f': foreground = 1; break;
        case 'd': g.debug = 1; break;
        case 'l': g.listen_override = optarg; break;
        case 't': check_only = 1; break;
        case 'V': printf(IDENT " %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    g.config_path = rg_strdup(realpath(config_path, abs_path) ? abs_path : config_path);

    rg_config *cfg = load_config(err, sizeof err);
    if (cfg == NULL) {
        fprintf(stderr, IDENT ": %s\n", err);
        free(g.config_path);
        return 1;
    }
    rg_log_open(IDENT, check_only ? RG_LOG_STDERR : cfg->log,
                g.debug ? LOG_DEBUG : cfg->log_level);
    char *listen = rg_strdup(cfg->milter.listen);
    char *user = cfg->milter.user ? rg_strdup(cfg->milter.user) : NULL;
    char *pidfile = cfg->milter.pidfile ? rg_strdup(cfg->milter.pidfile) : NULL;
    int timeout_s = (int)(cfg->milter.timeout_ms / 1000);
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
    if (check_only) {
        printf(IDENT ": %s: configuration OK\n", g.config_path);
        rg_milter_gen_shutdown();
        free(listen);
        free(user);
        free(pidfile);
        free(metrics_spec);
        free(g.config_path);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);

    if (smfi_setconn(listen) != MI_SUCCESS || smfi_settimeout(timeout_s) != MI_SUCCESS ||
        smfi_register(rg_milter_desc) != MI_SUCCESS)
        rg_fatal("cannot set up libmilter for %s", listen);
    if (strncmp(listen, "unix:", 5) == 0 || strncmp(listen, "local:", 6) == 0)
        unlink(strchr(listen, ':') + 1);        /* a stale socket of a previous run */
    if (smfi_opensocket(true) != MI_SUCCESS) {
        if (!log_stderr)
            fprintf(stderr, IDENT ": cannot listen on %s\n", listen);
        rg_fatal("cannot listen on %s", listen);
    }
    if (strncmp(listen, "inet", 4) == 0 && rg_milter_tcp_tune_listener() == 0)
        rg_warn("warning: could not set TCP_NODELAY on %s", listen);
    if (metrics_spec) {
        /* bound now, while root; served after the fork (threads do not survive it) */
        if ((metrics_fd = rg_metrics_bind(metrics_spec, err, sizeof err)) < 0) {
            if (!log_stderr)
                fprintf(stderr, IDENT ": milter.metrics: %s\n", err);
            rg_fatal("milter.metrics: %s", err);
        }
    }
    if (!foreground && rg_daemonize(log_stderr, derr, sizeof derr) < 0)
        rg_fatal("%s", derr);
    if (pidfile && rg_write_pidfile(pidfile, derr, sizeof derr) < 0)
        rg_fatal("%s", derr);
    if (rg_drop_privileges(user, "milter.user", derr, sizeof derr) < 0)
        rg_fatal("%s", derr);

    if (metrics_fd >= 0) {
        if ((metrics = rg_metrics_serve(metrics_fd, err, sizeof err)) == NULL)
            rg_fatal("milter.metrics: %s", err);
        rg_info("metrics on %s", metrics_spec);
    }
    rg_info("listening on %s (pid %ld)", listen, (long)getpid());
    int rc = smfi_main();
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
    return rc == MI_SUCCESS ? 0 : 1;
}
