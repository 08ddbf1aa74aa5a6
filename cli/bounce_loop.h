/*
 * bounce_loop.h - the bounce loop's one code path for a received message, shared
 * by every way a bounce reaches relayguard: the MTA's pipe ("relayguard
 * bounce" with the message on standard input), several files or a maildir
 * in one run, and the resident LMTP server (cli/lmtp.c).
 *
 * A message is read once (rg_bounce_loop_msg_init: digest and parse), then
 * handled for each address it was delivered to (rg_bounce_loop_run): the
 * token checked, its record looked up, and suppression, soft-bounce counts
 * and events written through one rg_admin connection, which the caller
 * keeps across messages.
 */
#ifndef RG_CLI_BOUNCE_LOOP_H
#define RG_CLI_BOUNCE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "admin.h"
#include "bounce.h"
#include "config.h"

typedef enum rg_bounce_loop_result {
    RG_BOUNCE_LOOP_DONE = 0,   /* suppressed, counted, or consumed with a log line and an event */
    RG_BOUNCE_LOOP_RETRY       /* not recorded now (store unreachable, forward failed):
                                  the MTA must keep the message and retry */
} rg_bounce_loop_result;

/* One received message, read for the loop. */
typedef struct rg_bounce_loop_msg {
    const char *data;           /* the caller's bytes, any content */
    size_t len;
    char digest[33];            /* of the message: a soft bounce's member, so a retry counts once */
    rg_bounce_report *rep;      /* the parse; owned */
    int perr;                   /* rg_bounce_parse() result */
    char err[256];              /* its reason when perr < 0 */
    char msgid[256];            /* the report's Message-ID, or "-" */
} rg_bounce_loop_msg;

/* Digest and parse data[0..len) (kept by reference: it must outlive m).
 * Cannot fail; free with rg_bounce_loop_msg_clear(). */
void rg_bounce_loop_msg_init(rg_bounce_loop_msg *m, const char *data, size_t len);
void rg_bounce_loop_msg_clear(rg_bounce_loop_msg *m);

/*
 * Handle m as delivered to rcpt (the envelope recipient; NULL: find it in the
 * delivery headers, as a pipe without --rcpt does).  *ad is the store
 * connection: opened here when NULL, closed (left NULL) after a store error
 * so that the next call opens a fresh one.  What was done is printed to out
 * (one line per recipient the report names; NULL: nothing printed) and, in
 * short, into summary (may be NULL).  Every outcome is logged.
 */
rg_bounce_loop_result rg_bounce_loop_run(const rg_config *cfg, rg_admin **ad,
                                         const rg_bounce_loop_msg *m, const char *rcpt,
                                         FILE *out, char *summary, size_t sumlen);

#define RG_LMTP_SIZE_DEFAULT 10240000    /* Postfix's message_size_limit default */

/* relayguard bounce --lmtp SPEC (cli/lmtp.c): the resident LMTP server.
 * Returns the process exit code. */
typedef struct rg_lmtp_opts {
    const char *conf_path;
    const char *listen;         /* unix:PATH, inet:HOST:PORT */
    const char *user;           /* drop to this user after binding (root only) */
    const char *pidfile;
    size_t size_limit;          /* bytes of a message (SIZE) */
    bool debug;
} rg_lmtp_opts;

int rg_bounce_lmtp(const rg_lmtp_opts *o);

#endif
