/*
 * log.c - log lines to syslog (facility mail) or stderr.
 *
 * Thread-safe: each line is formatted into a local buffer and written with a
 * single write() (stderr) or syslog() call, so lines of different threads
 * never interleave.  The settings are written once at start-up
 * (rg_log_open) and read afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOG_LINE_MAX 4096

static char log_ident[64] = "relayguard";
static rg_log_target log_target = RG_LOG_STDERR;
static volatile int log_level = LOG_INFO;

int
rg_log_enabled(int prio)
{
    return prio <= log_level;
}

/* Start logging as ident to target; messages above level are dropped. */
void
rg_log_open(const char *ident, rg_log_target target, int level)
{
    if (rg_strlcpy(log_ident, ident ? ident : "relayguard", sizeof log_ident) >= sizeof log_ident)
        log_ident[sizeof log_ident - 1] = '\0';     /* a long ident is cut, not refused */
    log_target = target;
    log_level = level;
    if (target == RG_LOG_SYSLOG)
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
rg_log_set_level(int level)
{
    log_level = level;
}

/* "debug", "info", "notice", "warning" ("warn"), "error" ("err") -> LOG_*; -1 if unknown. */
int
rg_log_level_parse(const char *s)
{
    static const struct { const char *name; int level; } levels[] = {
        { "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "notice", LOG_NOTICE },
        { "warning", LOG_WARNING }, { "warn", LOG_WARNING },
        { "error", LOG_ERR }, { "err", LOG_ERR },
    };

    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strcasecmp(s, levels[i].name) == 0)
            return levels[i].level;
    return -1;
}

/* Write the whole of buf to fd, retrying on EINTR and short writes. */
static void
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}

/* Log one line; a line too long for the buffer is cut and ends in "...". */
void
rg_vlog(int prio, const char *fmt, va_list ap)
{
    char msg[LOG_LINE_MAX];
    char line[LOG_LINE_MAX + 128];
    int saved_errno = errno;
    int n;

    if (prio > log_level)
        return;
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0) {
        errno = saved_errno;
        return;
    }
    if ((size_t)n >= sizeof msg)
        memcpy(msg + sizeof msg - 4, "...", 4);

    if (log_target == RG_LOG_SYSLOG) {
        syslog(prio, "%s", msg);
        errno = saved_errno;
        return;
    }

    struct timespec ts;
    struct tm tm;
    char stamp[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        stamp[0] = '\0';
    n = snprintf(line, sizeof line, "%s.%03ldZ %s[%ld]: %s\n", stamp,
                 (long)(ts.tv_nsec / 1000000), log_ident, (long)getpid(), msg);
    if (n < 0) {
        errno = saved_errno;
        return;
    }
    if ((size_t)n >= sizeof line) {     /* cannot happen with these sizes; keep the newline */
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    write_all(STDERR_FILENO, line, (size_t)n);
    errno = saved_errno;
}

void
rg_log(int prio, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rg_vlog(prio, fmt, ap);
    va_end(ap);
}

/* A caller bug: log at LOG_CRIT (always shown) and abort. */
void
rg_panic(const char *fmt, ...)
{
    char msg[LOG_LINE_MAX];
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
        rg_strlcpy(msg, fmt, sizeof msg);
    va_end(ap);
    if (log_level < LOG_CRIT)
        log_level = LOG_CRIT;
    rg_log(LOG_CRIT, "panic: %s", msg);
    abort();
}

void
rg_fatal(const char *fmt, ...)
{
    va_list ap;
    char msg[1024];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rg_error("fatal: %s", msg);
    exit(1);
}
