/*
 * keys.c - bucket ids for the Redis key schema (keys.h).
 */
#include <stdio.h>

#include "keys.h"

/*
 * "a:ACCOUNT:LIMIT" (account given) or "g:LIMIT" (global limit), then
 * ":d:DOMAIN" for scope domain or ":ip:ADDRESS" for scope ip.  A missing
 * domain or address counts as "".  0, or -1 if it does not fit in out.
 */
int
rg_bucket_id(const rg_limit *l, const char *account, const char *domain,
             const char *ip, char *out, size_t outlen)
{
    const char *sep = "", *what = "";
    int n;

    if (outlen == 0)
        return -1;
    if (l->scope == RG_SCOPE_DOMAIN) {
        sep = ":d:";
        what = domain ? domain : "";
    } else if (l->scope == RG_SCOPE_IP) {
        sep = ":ip:";
        what = ip ? ip : "";
    }
    if (account != NULL)
        n = snprintf(out, outlen, "a:%s:%s%s%s", account, l->name, sep, what);
    else
        n = snprintf(out, outlen, "g:%s%s%s", l->name, sep, what);
    if (n < 0 || (size_t)n >= outlen) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}
