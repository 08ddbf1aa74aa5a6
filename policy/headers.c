/*
 * headers.c - the headers relayguard adds for an account (headers.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "headers.h"
#include "rg.h"
#include "log.h"
#include "util.h"

static void
add(rg_added_header *out, int *n, const char *name, const char *value)
{
    rg_strlcpy(out[*n].name, name, sizeof out[*n].name);
    out[*n].value = rg_strdup(value);
    (*n)++;
}

int
rg_headers_for_account(const rg_account *a, const char *login, const rg_config *cfg,
                       rg_added_header *out, char *err, size_t errlen)
{
    int n = 0;

    if (a->account_header && a->account_header_hmac && cfg->milter.header_secret == NULL) {
        snprintf(err, errlen, "account %s: account_header %s hmac needs header_secret in the "
                 "milter block of relayguard.conf", a->name, a->account_header);
        return -1;
    }
    if (a->feedback_id)
        add(out, &n, "Feedback-ID", a->feedback_id);
    if (a->list_unsubscribe) {
        add(out, &n, "List-Unsubscribe", a->list_unsubscribe);
        if (a->bulk)
            add(out, &n, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
    }
    if (a->account_header) {
        const char *who = (login && login[0]) ? login : a->name;
        if (a->account_header_hmac) {
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned int mdlen = 0;
            char hex[2 * EVP_MAX_MD_SIZE + 1];
            const char *key = cfg->milter.header_secret;
            if (HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)who,
                     strlen(who), md, &mdlen) == NULL)
                rg_panic("HMAC-SHA256 failed");
            for (unsigned i = 0; i < mdlen; i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
            add(out, &n, a->account_header, hex);
        } else {
            char clean[RG_NAME_MAX];
            rg_text_sanitize(who, clean, sizeof clean);
            add(out, &n, a->account_header, clean);
        }
    }
    return n;
}

void
rg_headers_free(rg_added_header *h, int n)
{
    for (int i = 0; i < n; i++) {
        free(h[i].value);
        h[i].value = NULL;
    }
}

bool
rg_headers_is_own(const char *name, const rg_added_header *added, int n)
{
    if (strncasecmp(name, RG_OWN_HEADER_PREFIX, strlen(RG_OWN_HEADER_PREFIX)) == 0)
        return true;
    for (int i = 0; i < n; i++)
        if (strcasecmp(name, added[i].name) == 0)
            return true;
    return false;
}
