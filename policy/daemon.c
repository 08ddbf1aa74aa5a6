/*
 * daemon.c - detaching, pidfile, dropping root: shared by relayguard-policyd
 * and relayguard-milter.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

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
