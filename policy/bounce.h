/*
 * bounce.h - what a bounce or complaint says: parse one message (RFC 3464
 * delivery status notifications, RFC 5965 ARF feedback reports, and the
 * common non-standard bounce texts) with GMime, and classify each failed
 * recipient as hard / soft / block / complaint from its enhanced status
 * code (RFC 3463) and diagnostic text.
 *
 * The rules, in one place (bounce.c, rg_bounce_rules[] and status_rule()):
 *   1. an ARF report (multipart/report; report-type=feedback-report) is a
 *      complaint, unless its Feedback-Type is not-spam;
 *   2. a DSN recipient with Action delayed is "delayed", delivered /
 *      relayed / expanded is "none" (not a failure);
 *   3. a status in the fixed table (5.1.1 no such mailbox, 5.2.2 mailbox
 *      full, 5.7.x policy, ...) decides;
 *   4. otherwise the first row of the phrase table that occurs in the
 *      diagnostic text decides (so "550 5.0.0 User unknown" is hard);
 *   5. otherwise the status class: 5.1.x hard, 5.7.x block, other 5.x.x
 *      and every 4.x.x soft; a bare 5xx or 4xx reply code soft; nothing at
 *      all "unknown".
 * When in doubt the answer is soft, never hard: a soft bounce is only
 * counted, a hard one suppresses an address at once.
 *
 * Nothing here touches the store; the bounce command (cli/bounce.c) turns
 * a report into suppression, counters and events.
 */
#ifndef RG_BOUNCE_H
#define RG_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>

#include "rg.h"

#define RG_BOUNCE_RCPT_MAX   32        /* recipients kept per report */
#define RG_BOUNCE_PARSE_MAX  (4u << 20) /* bytes of a message that are parsed */
#define RG_BOUNCE_PART_MAX   (1u << 20) /* bytes of one part that are examined */

typedef enum rg_bounce_class {
    RG_BOUNCE_UNKNOWN = 0,   /* looked like a bounce; no rule applied */
    RG_BOUNCE_NONE,          /* not a failure: delivered/relayed, auto-reply, not-spam */
    RG_BOUNCE_DELAYED,       /* a warning: the MTA is still trying */
    RG_BOUNCE_SOFT,          /* temporary or message-specific: counted */
    RG_BOUNCE_HARD,          /* the address does not exist: suppressed */
    RG_BOUNCE_BLOCK,         /* refused because of the sender (policy, reputation): counted */
    RG_BOUNCE_COMPLAINT      /* the recipient reported the message as spam: suppressed */
} rg_bounce_class;

typedef enum rg_bounce_format {
    RG_BOUNCE_FMT_NONE = 0,  /* neither a report nor a recognised bounce text */
    RG_BOUNCE_FMT_DSN,       /* RFC 3464 multipart/report; report-type=delivery-status */
    RG_BOUNCE_FMT_ARF,       /* RFC 5965 multipart/report; report-type=feedback-report */
    RG_BOUNCE_FMT_TEXT       /* a non-standard bounce, read with the phrase table */
} rg_bounce_format;

typedef struct rg_bounce_rcpt {
    char addr[RG_ADDR_MAX];      /* final recipient, normalised ("" if none was found) */
    char orig[RG_ADDR_MAX];      /* original recipient (DSN Original-Recipient), or "" */
    rg_bounce_class cls;
    char status[16];             /* enhanced status code "5.1.1", or "" */
    char action[16];             /* DSN Action, lower case, or "" */
    char rule[64];               /* which rule decided: "status 5.1.1", "phrase 'user unknown'" */
    char diag[256];              /* diagnostic text, printable, shortened */
} rg_bounce_rcpt;

typedef struct rg_bounce_report {
    rg_bounce_format format;
    rg_bounce_class cls;             /* the gravest class of all recipients */
    rg_bounce_rcpt rcpt[RG_BOUNCE_RCPT_MAX];
    size_t n_rcpt;
    char feedback_type[32];          /* ARF Feedback-Type, lower case */
    char message_id[256];            /* Message-ID of the report itself */
    char orig_message_id[256];       /* Message-ID of the returned / reported message */
    char orig_return_path[RG_ADDR_MAX]; /* Return-Path of the returned / reported message */
    char orig_from[RG_ADDR_MAX];     /* header From of the report (unsubscribe mail: the recipient) */
    bool truncated;                  /* the input was longer than RG_BOUNCE_PARSE_MAX */
} rg_bounce_report;

/*
 * Parse and classify one message (data[0..len), any bytes).  Fills out
 * and returns 0; returns -1 with a reason in err only when data is not a
 * message at all (empty, or no header block GMime can read).  Never
 * crashes on bad input: truncated MIME, huge parts, unknown charsets and
 * binary garbage give format NONE or UNKNOWN rather than an error.
 * Thread-safe after the first call (GMime is initialised once).
 */
int rg_bounce_parse(const char *data, size_t len, rg_bounce_report *out,
                    char *err, size_t errlen);

const char *rg_bounce_class_name(rg_bounce_class c);   /* "hard", "soft", ... */
const char *rg_bounce_format_name(rg_bounce_format f); /* "dsn", "arf", "text", "none" */

/* Classify one status code and diagnostic text by rules 3 to 5 (for tests
 * and for callers with their own parser).  rule gets what decided. */
rg_bounce_class rg_bounce_classify(const char *status, int reply_code, const char *diag,
                                   char *rule, size_t rulelen);

#endif
