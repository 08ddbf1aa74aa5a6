/*
 * daemon.c - the start-up of every relayguard daemon (relayguard-policyd,
 * -milter, -detectd, -webhookd): the command line, the log, detaching,
 * pidfile, dropping root, signals, listening sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

int rg_daemon_args_parse(int argc, char **argv, const char *ident, int with_listen,
                         void (*usage)(FILE *), rg_daemon_args *a)
{
    const char *config_path = RG_DEFAULT_CONFIG;
    char abs_path[PATH_MAX];
    int opt;

    memset(a, 0, sizeof *a);
    while ((opt = getopt(argc, argv, with_listen ? "c:fdl:tVh" : "c:fdtVh")) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'f': a->foreground = 1; break;
        case 'd': a->debug = 1; break;
        case 'l': a->listen = optarg; break;
        case 't': a->check_only = 1; break;
        case 'V': printf("%s %s\n", ident, PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    a->config_path = rg_strdup(realpath(config_path, abs_path) ? abs_path : config_path);
    return -1;
}

void rg_daemon_log_open(const char *ident, const rg_daemon_args *a, const rg_config *cfg)
{
    rg_log_open(ident, a->check_only ? RG_LOG_STDERR : cfg->log,
                a->debug ? LOG_DEBUG : cfg->log_level);
}

void rg_daemon_enter(const rg_daemon_args *a, int log_stderr, const char *pidfile,
                     const char *user, const char *setting)
{
    char err[256];

    signal(SIGPIPE, SIG_IGN);
    if (!a->foreground && rg_daemonize(log_stderr, err, sizeof err) < 0)
        rg_fatal("%s", err);
    if (pidfile && rg_write_pidfile(pidfile, err, sizeof err) < 0)
        rg_fatal("%s", err);
    if (rg_drop_privileges(user, setting, err, sizeof err) < 0)
        rg_fatal("%s", err);
}

void rg_daemon_signals(void (*handler)(int), int restart)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

int rg_daemonize(int keep_stderr, char *err, size_t errlen)
{
    pid_t pid;
    int fd;

    if ((pid = fork()) < 0) {
        rg_seterr(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0)
        _exit(0);
    if (setsid() < 0) {
        rg_seterr(err, errlen, "setsid: %s", strerror(errno));
        return -1;
    }
    if ((pid = fork()) < 0) {   /* never a session leader: no controlling tty again */
        rg_seterr(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0) {
        rg_seterr(err, errlen, "chdir /: %s", strerror(errno));
        return -1;
    }
    if ((fd = open("/dev/null", O_RDWR)) < 0) {
        rg_seterr(err, errlen, "/dev/null: %s", strerror(errno));
        return -1;
    }
    dup2(fd, 0);
    dup2(fd, 1);
    if (!keep_stderr)
        dup2(fd, 2);
    if (fd > 2)
        close(fd);
    return 0;
}

int rg_write_pidfile(const char *path, char *err, size_t errlen)
{
    char buf[32];
    int fd, n;

    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        rg_seterr(err, errlen, "pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (write(fd, buf, (size_t)n) != n || close(fd) < 0) {
        rg_seterr(err, errlen, "pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int rg_drop_privileges(const char *user, const char *setting, char *err, size_t errlen)
{
    struct passwd *pw;

    if (user == NULL || *user == '\0')
        return 0;
    pw = getpwnam(user);
    if (getuid() != 0 && geteuid() != 0) {
        if (pw == NULL || pw->pw_uid != geteuid())
            rg_warn("warning: not root: staying uid %ld instead of user %s", (long)geteuid(), user);
        return 0;
    }
    if (pw == NULL) {
        rg_seterr(err, errlen, "%s %s: no such user; refusing to run as root", setting, user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        rg_seterr(err, errlen, "cannot become user %s: %s", user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        rg_seterr(err, errlen, "could still regain root after becoming %s", user);
        return -1;
    }
    rg_debug("running as user %s (uid %ld)", user, (long)pw->pw_uid);
    return 0;
}

/* ---- listening socket ---------------------------------------------------- */

static int listen_unix(const char *path, int bind_it, char **unix_path, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat st;
    char cwd[4096];
    int fd;

    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (*path == '\0' || strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "unix socket path '%s' is empty or too long", path);
        return -1;
    }
    if (!bind_it)
        return 0;
    memcpy(sun.sun_path, path, strlen(path) + 1);

    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", path);
            return -1;
        }
        /* a socket that answers belongs to a running server */
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0) {
            int live = connect(fd, (struct sockaddr *) &sun, sizeof sun) == 0;
            close(fd);
            if (live) {
                snprintf(err, errlen, "%s: another server is listening there", path);
                return -1;
            }
        }
        if (unlink(path) < 0) {
            snprintf(err, errlen, "remove stale socket %s: %s", path, strerror(errno));
            return -1;
        }
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *) &sun, sizeof sun) < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (chmod(path, 0666) < 0) {
        snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    if (listen(fd, 1024) < 0) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    /* absolute, so it can be removed after chdir("/") */
    if (path[0] != '/' && getcwd(cwd, sizeof cwd)) {
        size_t n = strlen(cwd) + strlen(path) + 2;
        *unix_path = rg_malloc(n);
        snprintf(*unix_path, n, "%s/%s", cwd, path);
    } else {
        *unix_path = rg_strdup(path);
    }
    return fd;
}

static int listen_inet(const char *hostport, int bind_it, char *err, size_t errlen)
{
    char host[256];
    const char *port, *colon, *spec = hostport;
    struct addrinfo hints, *res = NULL;
    int fd, rc, one = 1;
    size_t hlen;

    if (hostport[0] == '[') {
        const char *close_br = strchr(hostport, ']');
        if (close_br == NULL || close_br[1] != ':') {
            snprintf(err, errlen, "bad listen address 'inet:%s': expected inet:[IPV6]:PORT", hostport);
            return -1;
        }
        hlen = (size_t) (close_br - hostport - 1);
        colon = close_br + 1;
        hostport++;
    } else {
        if ((colon = strrchr(hostport, ':')) == NULL) {
            snprintf(err, errlen, "bad listen address 'inet:%s': expected inet:HOST:PORT", hostport);
            return -1;
        }
        hlen = (size_t) (colon - hostport);
    }
    port = colon + 1;
    if (hlen >= sizeof host || *port == '\0' || strspn(port, "0123456789") != strlen(port) ||
        atoi(port) < 1 || atoi(port) > 65535) {
        snprintf(err, errlen, "bad listen address 'inet:%s': bad host or port", spec);
        return -1;
    }
    memcpy(host, hostport, hlen);
    host[hlen] = '\0';

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (!bind_it)
        hints.ai_flags |= AI_NUMERICHOST;   /* -t: no DNS; names are checked when binding */
    rc = getaddrinfo(hlen == 0 || strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
    if (rc != 0) {
        if (!bind_it && rc == EAI_NONAME)
            return 0;
        snprintf(err, errlen, "listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    if (!bind_it) {
        freeaddrinfo(res);
        return 0;
    }
    fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "bind/listen %s:%s: %s", host, port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

int rg_listen_open(const char *spec, int bind_it, char **unix_path, int *is_inet,
                   char *err, size_t errlen)
{
    *unix_path = NULL;
    *is_inet = 0;
    if (spec == NULL || *spec == '\0') {
        snprintf(err, errlen, "no listen address");
        return -1;
    }
    if (strncmp(spec, "unix:", 5) == 0)
        return listen_unix(spec + 5, bind_it, unix_path, err, errlen);
    *is_inet = 1;
    if (strncmp(spec, "inet:", 5) == 0)
        return listen_inet(spec + 5, bind_it, err, errlen);
    snprintf(err, errlen, "bad listen address '%s': expected inet:HOST:PORT or unix:PATH", spec);
    return -1;
}
