/*
 * keys.c - bucket ids for the Redis key schema (keys.h).
 */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

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

/* "decision.VERDICT" unless the event says its own type. */
void
rg_event_type(const char *type_field, const char *verdict, char *out, size_t outlen)
{
    int n;

    if (type_field != NULL && type_field[0] != '\0')
        n = snprintf(out, outlen, "%s", type_field);
    else if (verdict != NULL && verdict[0] != '\0')
        n = snprintf(out, outlen, "decision.%s", verdict);
    else
        n = snprintf(out, outlen, "decision");
    if (n < 0 || (size_t)n >= outlen)
        out[0] = '\0';
}

/* Empty list: all; else fnmatch, or a prefix that ends at a dot of the type. */
bool
rg_event_type_matches(char *const *patterns, const char *type)
{
    if (patterns == NULL || patterns[0] == NULL)
        return true;
    for (char *const *p = patterns; *p; p++) {
        size_t n = strlen(*p);
        if (fnmatch(*p, type, 0) == 0 || (strncmp(*p, type, n) == 0 && type[n] == '.'))
            return true;
    }
    return false;
}
