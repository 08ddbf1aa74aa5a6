/*
 * daemon.h - what every relayguard daemon does at start: detach, write its
 * pidfile, give up root.  Each returns 0, or -1 with the reason in err; the
 * daemon decides to die (at start a failure is fatal).
 */
#ifndef RG_DAEMON_H
#define RG_DAEMON_H

#include <stddef.h>

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
