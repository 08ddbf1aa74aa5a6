/*
 * localsub.h - who submitted a local message: the X-Relayguard-Local token.
 *
 * relayguard-sendmail(8), a setgid wrapper around sendmail, adds to every
 * message it submits one header
 *
 *   X-Relayguard-Local: v=1; u=UID; l=LOGIN; t=UNIXTIME; n=NONCE; s=HMAC
 *
 * where UID and LOGIN are the submitter's real uid and its passwd name,
 * NONCE 16 random bytes in hex and HMAC the HMAC-SHA256 (hex) of
 * "v=1; u=UID; l=LOGIN; t=UNIXTIME; n=NONCE" under the local key, a file
 * only root and group relayguard can read.  The engine verifies the token
 * (signature, age) and ties the message to the account whose local_users
 * list LOGIN.  The milter passes the header's value and removes every copy
 * of the header before the message is queued.
 *
 * The settings are top-level keys of relayguard.conf, read here so that
 * relayguard-sendmail (which must not read the rest: its key files are not
 * its business) and the full config loader apply the same rules:
 *
 *   local_key        = /etc/relayguard/local.key   (no default: no tokens)
 *   local_submission = optional | required          (default optional)
 *   local_max_age    = 1h                           (1m .. 7d)
 *   local_sendmail   = /usr/sbin/sendmail           (command and arguments)
 *   local_smtp_clients = 127.0.0.1, ::1             (none by default)
 *
 * local_smtp_clients names the SMTP clients whose unauthenticated mail is
 * local submission relayed over SMTP (Sendmail's MSP, submit.cf, hands
 * local mail to the MTA on [127.0.0.1]): the milter identifies their mail
 * by its token as it does Postfix's non-SMTP mail.
 */
#ifndef RG_LOCALSUB_H
#define RG_LOCALSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "match.h"

#define RG_LOCALSUB_HEADER  "X-Relayguard-Local"
#define RG_LOCALSUB_KEY_MIN 16          /* bytes */
#define RG_LOCALSUB_KEY_MAX 4096
#define RG_LOCALSUB_LOGIN_MAX 64
#define RG_LOCALSUB_TOKEN_MAX 256       /* a header value, with room */
#define RG_LOCALSUB_SKEW_S 300          /* a token may come this far from the future */

typedef struct rg_localsub_conf {
    char *key_path;             /* NULL: no key, tokens are not verified */
    bool required;              /* local_submission = required */
    uint64_t max_age_ms;        /* default 1 h */
    char **sendmail;            /* command and arguments, NULL-terminated, never NULL
                                   once rg_localsub_conf_init ran */
    rg_cidr *smtp_clients;      /* local_smtp_clients */
    size_t n_smtp_clients;
} rg_localsub_conf;

/* Is an unauthenticated SMTP client at addr (text) a local submission
 * relay (local_smtp_clients)?  false for "" and unreadable addresses. */
bool rg_localsub_smtp_client(const rg_localsub_conf *c, const char *addr);

/* Defaults.  Free with rg_localsub_conf_clear. */
void rg_localsub_conf_init(rg_localsub_conf *c);
void rg_localsub_conf_clear(rg_localsub_conf *c);

/*
 * Apply one top-level "key = value" if key is one of the local_* keys.
 * 1 when applied, 0 when key is not ours, -1 with "FILE:LINE: message".
 */
int rg_localsub_conf_apply(rg_localsub_conf *c, const char *key, const char *value,
                           const char *file, int line, char *err, size_t errlen);

typedef struct rg_localsub_key {
    unsigned char bytes[RG_LOCALSUB_KEY_MAX];
    size_t len;
} rg_localsub_key;

/*
 * Read the key file: a regular file of 16 to 4096 bytes (trailing newlines
 * are not part of the key), not readable or writable by others.  0, or -1
 * with a message naming the file.
 */
int rg_localsub_key_load(const char *path, rg_localsub_key *k, char *err, size_t errlen);
/* Wipe the key. */
void rg_localsub_key_clear(rg_localsub_key *k);

/* What a verified token says. */
typedef struct rg_localsub_id {
    unsigned long uid;
    char login[RG_LOCALSUB_LOGIN_MAX + 1];
    int64_t time;               /* Unix seconds */
    char nonce[33];
} rg_localsub_id;

/* A login the token can carry: 1 to 64 of [A-Za-z0-9._@$+-], not starting with '-'. */
bool rg_localsub_login_valid(const char *login);

/*
 * Make a header value for uid/login at time now into out (at least
 * RG_LOCALSUB_TOKEN_MAX bytes).  nonce: 32 hex digits, or NULL for fresh
 * random ones (OpenSSL RAND_bytes).  0, or -1 with a message (bad login,
 * no randomness, out too small).
 */
int rg_localsub_mint(const rg_localsub_key *k, unsigned long uid, const char *login,
                     int64_t now, const char *nonce, char *out, size_t outlen,
                     char *err, size_t errlen);

typedef enum rg_localsub_status {
    RG_LOCALSUB_OK = 0,
    RG_LOCALSUB_MALFORMED,      /* not v=1; u=; l=; t=; n=; s= as minted */
    RG_LOCALSUB_BAD_SIGNATURE,  /* forged, altered, or another key */
    RG_LOCALSUB_EXPIRED,        /* older than max_age */
    RG_LOCALSUB_FUTURE          /* more than RG_LOCALSUB_SKEW_S ahead */
} rg_localsub_status;

/*
 * Check a header value (folding whitespace allowed between fields) at time
 * now (Unix seconds).  On RG_LOCALSUB_OK id is filled; on the others id
 * holds what could be read (for the log line), maybe nothing.
 */
rg_localsub_status rg_localsub_verify(const rg_localsub_key *k, const char *value, int64_t now,
                                      uint64_t max_age_ms, rg_localsub_id *id);

/* "ok", "malformed", "bad signature", "expired", "from the future". */
const char *rg_localsub_status_text(rg_localsub_status s);

#endif
