/*
 * headers.h - header policy (feature 8): the headers relayguard adds to a
 * message of an account, and which inbound headers are relayguard's own
 * (removed, so a client can never forge them).
 *
 *   Feedback-ID             account feedback_id
 *   List-Unsubscribe        account list_unsubscribe
 *   List-Unsubscribe-Post   "List-Unsubscribe=One-Click" for bulk accounts (RFC 8058)
 *   ACCOUNT_HEADER          the login (or account name), or its HMAC-SHA256
 *                           keyed with the milter header_secret
 *
 * The milter adds them before signing, so the DKIM signature covers them.
 */
#ifndef RG_HEADERS_H
#define RG_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include "account.h"
#include "config.h"

#define RG_HEADERS_MAX 4
#define RG_OWN_HEADER_PREFIX "X-Relayguard-"

typedef struct rg_added_header {
    char name[80];
    char *value;            /* new string */
} rg_added_header;

/*
 * The headers for a message of account a sent by login ("" for none).
 * Fills out[0..RG_HEADERS_MAX) and returns the count; free the values with
 * rg_headers_free.  -1 with err when the account wants an HMAC header and
 * the config has no header_secret (nothing filled).
 */
int rg_headers_for_account(const rg_account *a, const char *login, const rg_config *cfg,
                           rg_added_header *out, char *err, size_t errlen);
void rg_headers_free(rg_added_header *h, int n);

/* Is an inbound header relayguard's own: the X-Relayguard- prefix, or one
 * of the names about to be added? */
bool rg_headers_is_own(const char *name, const rg_added_header *added, int n);

#endif
