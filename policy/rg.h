/*
 * rg.h - types shared by the relayguard engine and every adapter.
 *
 * The engine (policy/) is the only place a decision is made.  An adapter
 * (postfix-policyd/, milter/, exim-dlfunc/, cli/) fills an rg_request from its
 * MTA's world, calls rg_engine_check() and turns the rg_verdict it gets back
 * into its MTA's reply.
 */
#ifndef RG_H
#define RG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RG_NAME_MAX   128   /* account names, logins, node names */
#define RG_ADDR_MAX   512   /* e-mail addresses (RFC 5321 path is 256; leave room) */
#define RG_TEXT_MAX   512   /* reply text */

/* What the MTA should do. */
typedef enum rg_action {
    RG_DUNNO = 0,   /* no opinion: not ours to decide (Postfix DUNNO) */
    RG_ACCEPT,      /* checked and allowed */
    RG_TEMPFAIL,    /* 4xx: try again later */
    RG_REJECT       /* 5xx: refused for good */
} rg_action;

/* Where in the SMTP transaction the check happens. */
typedef enum rg_stage {
    RG_STAGE_CONNECT = 0,
    RG_STAGE_MAIL,      /* MAIL FROM: identity, sender domain, networks, size (SIZE=) */
    RG_STAGE_RCPT,      /* RCPT TO: all of MAIL plus suppression and the limit reservation */
    RG_STAGE_HEADER,    /* end of headers: header From alignment (milter, Exim DATA ACL) */
    RG_STAGE_EOM        /* end of message: size, charge with the real recipient count */
} rg_stage;

const char *rg_stage_name(rg_stage s);
const char *rg_action_name(rg_action a);

/*
 * A verdict.  code/dsn/text are set for RG_TEMPFAIL and RG_REJECT and are what
 * every adapter puts in its SMTP reply, e.g. 550 5.7.1 "<text>".
 * reason is a short machine tag that also goes into the event:
 *   "ok", "no_account", "unknown_account", "suspended", "sender_domain",
 *   "header_from", "network", "country", "suppressed", "rate_limit",
 *   "quota", "size", "store_error", "bad_request".
 */
typedef struct rg_verdict {
    rg_action action;
    int code;                   /* 250 for accept/dunno, 451, 550, 553, 552 */
    char dsn[8];                /* "4.7.1" */
    char reason[32];
    char text[RG_TEXT_MAX];     /* without code and dsn */
    char account[RG_NAME_MAX];  /* account the message was tied to, "" if none */
    uint64_t retry_after_ms;    /* soft limits: time until the bucket frees */
    char return_path[RG_ADDR_MAX];  /* EOM accept of an account with managed bounces, when
                                   the request said can_change_sender: the new envelope
                                   sender bounces+TOKEN@DOMAIN (without <>), whose record
                                   is written; "" = leave the envelope sender alone */
} rg_verdict;

/*
 * One question to the engine.  Strings may be NULL or "" when unknown.
 * The engine copies what it needs before rg_engine_check() returns, so the
 * caller may free the request then, even if the callback comes later.
 */
typedef struct rg_request {
    rg_stage stage;
    const char *msg_id;          /* unique per message on this node: Postfix policy "instance",
                                    milter/Exim: their own; keys the reservation */
    const char *queue_id;        /* MTA queue id, for logs, events and the charged-once marker */
    const char *sasl_username;   /* SMTP AUTH login */
    const char *local_user;      /* unix login of a locally submitted message */
    const char *client_addr;     /* IPv4 or IPv6 text; "" for local submission */
    const char *client_name;
    const char *helo;
    const char *sender;          /* envelope sender, without <>; "" is the null sender */
    const char *recipient;       /* RCPT stage: this recipient */
    const char *header_from;     /* HEADER/EOM stage: the From: header value (raw) */
    unsigned recipient_count;    /* EOM stage: accepted recipients; 0 if unknown */
    uint64_t size;               /* MAIL (SIZE=) or EOM (real size); 0 if unknown */
    const char *script;          /* the script that sent it (PHP's X-PHP-Originating-Script),
                                    for the event; NULL or "" when unknown */
    /* EOM stage, managed return path (verp.h): an adapter that can change the
     * envelope sender (milter smfi_chgfrom, Exim's transport return_path) sets
     * can_change_sender and lists every accepted recipient; the engine then
     * answers an accepted message of a managed account with
     * rg_verdict.return_path. */
    bool can_change_sender;
    const char *const *recipients;  /* n_recipients envelope recipients, without <> */
    unsigned n_recipients;
    const char *local_token;     /* local submission without a unix user from the MTA
                                    (Postfix non_smtpd_milters, Sendmail's MSP from a
                                    local_smtp_clients address): the X-Relayguard-Local
                                    header value, "" when the message has none (localsub.h);
                                    NULL: not a local submission */
} rg_request;

/* Write "551 5.7.1 text" style summaries, for logs.  Returns buf. */
char *rg_verdict_format(const rg_verdict *v, char *buf, size_t len);

#endif
