/*
 * log.h - one log line per event, in the MTA's style:
 *   relayguard-policyd[1234]: 4F1A2B3C: reject: account=alice ...
 * to syslog (facility mail) or to stderr with a timestamp.
 */
#ifndef RG_LOG_H
#define RG_LOG_H

#include <stdarg.h>
#include <syslog.h>

#include "config.h"

/* ident: program name; level: LOG_DEBUG .. LOG_ERR. */
void rg_log_open(const char *ident, rg_log_target target, int level);
void rg_log_set_level(int level);
int rg_log_level_parse(const char *s);      /* -1 if unknown */

/* Would a message of this priority be written?  (To skip building it.) */
int rg_log_enabled(int prio);

void rg_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rg_vlog(int prio, const char *fmt, va_list ap);

#define rg_debug(...) rg_log(LOG_DEBUG, __VA_ARGS__)
#define rg_info(...)  rg_log(LOG_INFO, __VA_ARGS__)
#define rg_warn(...)  rg_log(LOG_WARNING, __VA_ARGS__)
#define rg_error(...) rg_log(LOG_ERR, __VA_ARGS__)

/* A fatal start-up error: log "fatal: ..." and exit(1). */
void rg_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A caller bug: log and abort (Postfix msg_panic). */
void rg_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
