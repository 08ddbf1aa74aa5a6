/*
 * daemon.h - what every relayguard daemon does at start: detach, write its
 * pidfile, give up root.  Each returns 0, or -1 with the reason in err; the
 * daemon decides to die (at start a failure is fatal).
 */
#ifndef RG_DAEMON_H
#define RG_DAEMON_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

/*
 * Start-up, in the order the daemons take it:
 *
 *   rg_daemon_args a;
 *   if ((rc = rg_daemon_args_parse(argc, argv, IDENT, 1, usage, &a)) >= 0)
 *       return rc;
 *   cfg = rg_config_load(a.config_path, ...);   -t: check and exit here
 *   rg_daemon_log_open(IDENT, &a, cfg);
 *   ... bind the sockets (as root) ...
 *   rg_daemon_enter(&a, cfg->log == RG_LOG_STDERR, pidfile, user, "milter.user");
 *   rg_daemon_signals(on_signal, 1);            or the daemon's own way
 */

/* The command line every relayguard daemon takes. */
typedef struct rg_daemon_args {
    char *config_path;  /* -c FILE (default RG_DEFAULT_CONFIG), absolute when the file
                           exists, so that SIGHUP finds it after chdir("/"); the caller
                           frees it */
    const char *listen; /* -l LISTEN (only when the daemon takes it), else NULL */
    int foreground;     /* -f */
    int debug;          /* -d */
    int check_only;     /* -t */
} rg_daemon_args;

/*
 * Parse -c FILE, -f, -d, -t, -V, -h, and -l LISTEN when with_listen.
 * Returns -1 to go on with a filled in; else the exit status for main:
 * 0 after -V (the version printed) or -h (usage to stdout), 2 after a
 * usage error (usage to stderr).
 */
int rg_daemon_args_parse(int argc, char **argv, const char *ident, int with_listen,
                         void (*usage)(FILE *), rg_daemon_args *a);

/* The log as the configuration says (stderr for -t, LOG_DEBUG for -d). */
void rg_daemon_log_open(const char *ident, const rg_daemon_args *a, const rg_config *cfg);

/*
 * Into service, once the configuration is read and the sockets are bound
 * (still as root): ignore SIGPIPE, detach unless -f (stderr kept when
 * log_stderr: the log goes there), write pidfile (NULL: none), become user
 * (setting names its key in messages, "milter.user").  A failure is fatal
 * (rg_fatal).
 */
void rg_daemon_enter(const rg_daemon_args *a, int log_stderr, const char *pidfile,
                     const char *user, const char *setting);

/* SIGHUP, SIGTERM and SIGINT to handler (which sets flags for the main
 * loop); restart: SA_RESTART, else a blocking call returns EINTR. */
void rg_daemon_signals(void (*handler)(int), int restart);

/* Fork twice, new session, chdir /, stdio to /dev/null (stderr kept when
 * keep_stderr).  Only the grandchild returns. */
int rg_daemonize(int keep_stderr, char *err, size_t errlen);

/* Write the pid, mode 0644. */
int rg_write_pidfile(const char *path, char *err, size_t errlen);

/*
 * Become user (when root).  setting names the config key for messages
 * ("policyd.user").  NULL or "" does nothing.  Refuses to stay root when the
 * user is unknown; when not root, logs a warning and stays who it is.
 */
int rg_drop_privileges(const char *user, const char *setting, char *err, size_t errlen);

/*
 * Open a listening socket in Postfix notation: "inet:HOST:PORT",
 * "inet:[IPV6]:PORT" or "unix:PATH".  A stale unix socket is removed (a live
 * one is an error) and the new one made mode 0666 so Postfix can connect.
 * Returns the non-blocking fd, or -1 with a message in err.  *unix_path gets
 * a new string with the absolute socket path (to remove at exit), else NULL.
 * With bind_it 0 only the syntax is checked (for -t) and 0 is returned.
 */
int rg_listen_open(const char *spec, int bind_it, char **unix_path, int *is_inet,
                   char *err, size_t errlen);

#endif
