/*
 * match.c - e-mail addresses, sender domains, header From, networks.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "match.h"
#include "util.h"

#define ADDR_LEN_MAX 254        /* RFC 5321 path limit without the <> */

static int
is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Characters that may not appear unquoted in a local part. */
static int
is_special(int c)
{
    return c == '<' || c == '>' || c == '(' || c == ')' || c == '[' || c == ']' ||
           c == ',' || c == ';' || c == ':' || c == '\\' || c == '"' || c == '@' ||
           is_blank(c);
}

/* Is d (len bytes) a usable domain: labels of [A-Za-z0-9_-] or UTF-8, or [literal]? */
static int
domain_ok(const char *d, size_t len)
{
    if (len == 0)
        return 0;
    if (d[0] == '[')
        return len > 2 && d[len - 1] == ']' && memchr(d + 1, '[', len - 2) == NULL &&
               memchr(d + 1, ']', len - 2) == NULL;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_' || c >= 0x80) {
            label++;
        } else {
            return 0;
        }
    }
    return label > 0;
}

/*
 * Normalise: strip surrounding blanks and <>, lowercase.  0, or -1 when it is
 * not local@domain, holds control bytes, or is over 254 bytes (or does not
 * fit in out).  "" and "<>" (the null sender) give "" and 0.
 */
int
rg_addr_normalize(const char *in, char *out, size_t outlen)
{
    const char *s = in, *e;
    size_t len;

    if (outlen == 0)
        return -1;
    out[0] = '\0';
    if (in == NULL)
        return -1;
    e = s + strlen(s);
    while (s < e && is_blank((unsigned char)*s))
        s++;
    while (e > s && is_blank((unsigned char)e[-1]))
        e--;
    if (s < e && *s == '<') {
        if (e[-1] != '>' || e - s < 2)
            return -1;
        s++, e--;
        while (s < e && is_blank((unsigned char)*s))
            s++;
        while (e > s && is_blank((unsigned char)e[-1]))
            e--;
    }
    len = (size_t)(e - s);
    if (len == 0)
        return 0;
    if (len > ADDR_LEN_MAX || len + 1 > outlen)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return -1;
    }

    /* local part: a quoted string or an unquoted run without specials */
    const char *p = s;
    if (*p == '"') {
        p++;
        while (p < e && *p != '"') {
            if (*p == '\\') {
                if (p + 1 >= e)
                    return -1;
                p++;
            }
            p++;
        }
        if (p >= e)
            return -1;
        p++;
        if (p - s == 2)
            return -1;          /* "" as local part */
    } else {
        while (p < e && *p != '@') {
            if (is_special((unsigned char)*p))
                return -1;
            p++;
        }
        if (p == s)
            return -1;
    }
    if (p >= e || *p != '@')
        return -1;
    const char *d = p + 1;
    size_t dlen = (size_t)(e - d);
    if (dlen > 1 && d[dlen - 1] == '.' && d[0] != '[')
        dlen--;                  /* a trailing root dot */
    if (!domain_ok(d, dlen))
        return -1;

    size_t n = (size_t)(d - s) + dlen;
    memcpy(out, s, n);
    out[n] = '\0';
    rg_lower(out);
    return 0;
}

/* Domain part of a normalised address ("" if none).  Points into addr. */
const char *
rg_addr_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at ? at + 1 : addr + strlen(addr);
}

/* Exact, ".suffix" for strict subdomains, or "*"; case-insensitive. */
bool
rg_domain_match(const char *pattern, const char *domain)
{
    size_t pl, dl;

    if (pattern == NULL || domain == NULL)
        return false;
    if (strcmp(pattern, "*") == 0)
        return true;
    if (pattern[0] == '.') {
        pl = strlen(pattern);
        dl = strlen(domain);
        return pl > 1 && dl > pl && strcasecmp(domain + dl - pl, pattern) == 0;
    }
    return pattern[0] != '\0' && strcasecmp(pattern, domain) == 0;
}

bool
rg_domain_match_any(char *const *patterns, const char *domain)
{
    if (patterns == NULL)
        return false;
    for (; *patterns; patterns++)
        if (rg_domain_match(*patterns, domain))
            return true;
    return false;
}

/* One mailbox being collected by rg_header_from_addr. */
typedef struct from_elem {
    char spec[1024];        /* text outside <>, without comments and blanks */
    size_t nspec;
    char angle[1024];       /* text inside <> */
    size_t nangle;
    int angles;             /* how many <...> were seen */
} from_elem;

/* Append c to the element's current buffer.  0, or -1 when full. */
static int
elem_put(from_elem *el, bool in_angle, char c)
{
    char *buf = in_angle ? el->angle : el->spec;
    size_t *n = in_angle ? &el->nangle : &el->nspec;

    if (*n + 1 >= sizeof el->spec)
        return -1;
    buf[(*n)++] = c;
    buf[*n] = '\0';
    return 0;
}

/* Close an element: 1 if it held an address (normalised into out), 0 if it
 * was empty, -1 if it was garbage.  Resets el. */
static int
elem_finish(from_elem *el, char *out, size_t outlen)
{
    int rc = 0;

    if (el->angles > 1)
        rc = -1;
    else if (el->angles == 1)
        rc = rg_addr_normalize(el->angle, out, outlen) < 0 ? -1 : out[0] ? 1 : 0;
    else if (el->nspec > 0)
        rc = rg_addr_normalize(el->spec, out, outlen) < 0 || out[0] == '\0' ? -1 : 1;
    memset(el, 0, sizeof *el);
    return rc;
}

/*
 * The one address of a From: header value.  Handles display names (also
 * RFC 2047 ones), quoted strings, nested (comments), <angle addresses>,
 * folding and group syntax.  Returns 1 with the normalised address in out,
 * 0 if there is none, -1 for several addresses or garbage.
 */
int
rg_header_from_addr(const char *value, char *out, size_t outlen)
{
    from_elem el;
    char addr[1024];
    bool in_angle = false, in_group = false;
    int found = 0, rc;
    const char *p = value;

    if (outlen > 0)
        out[0] = '\0';
    if (value == NULL)
        return 0;
    memset(&el, 0, sizeof el);

    for (; *p; p++) {
        char c = *p;

        switch (c) {
        case '(': {                             /* comment, may nest; dropped */
            int depth = 0;
            for (; *p; p++) {
                if (*p == '\\' && p[1])
                    p++;
                else if (*p == '(')
                    depth++;
                else if (*p == ')' && --depth == 0)
                    break;
            }
            if (*p == '\0')
                return -1;
            break;
        }
        case '"':                               /* quoted string, kept with its quotes */
            if (elem_put(&el, in_angle, c) < 0)
                return -1;
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1]) {
                    if (elem_put(&el, in_angle, *p++) < 0)
                        return -1;
                }
                if (elem_put(&el, in_angle, *p) < 0)
                    return -1;
            }
            if (*p == '\0' || elem_put(&el, in_angle, '"') < 0)
                return -1;
            break;
        case '[':                               /* domain literal */
            for (; *p && *p != ']'; p++)
                if (elem_put(&el, in_angle, *p) < 0)
                    return -1;
            if (*p == '\0' || elem_put(&el, in_angle, ']') < 0)
                return -1;
            break;
        case '<':
            if (in_angle)
                return -1;
            in_angle = true;
            el.angles++;
            el.nangle = 0;
            el.angle[0] = '\0';
            break;
        case '>':
            if (!in_angle)
                return -1;
            in_angle = false;
            break;
        case ' ': case '\t': case '\r': case '\n':
            break;                              /* folding and blanks between tokens */
        case ',':
        case ';':
            if (in_angle)
                return -1;
            if (c == ';' && !in_group)
                return -1;
            if (c == ';')
                in_group = false;
            rc = elem_finish(&el, addr, sizeof addr);
            if (rc < 0)
                return -1;
            if (rc == 1) {
                if (++found > 1)
                    return -1;
                if (rg_strlcpy(out, addr, outlen) >= outlen)
                    return -1;
            }
            break;
        case ':':
            if (in_angle)
                return -1;                      /* source routes are not taken */
            if (in_group || el.angles > 0)
                return -1;
            in_group = true;                    /* "name: a@b, c@d;" - the name goes */
            memset(&el, 0, sizeof el);
            break;
        default:
            if (elem_put(&el, in_angle, c) < 0)
                return -1;
            break;
        }
    }
    if (in_angle || in_group)
        return -1;
    rc = elem_finish(&el, addr, sizeof addr);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        if (++found > 1)
            return -1;
        if (rg_strlcpy(out, addr, outlen) >= outlen)
            return -1;
    }
    return found;
}

/* Keep the first prefix bits of addr (len bytes), zero the rest. */
static void
mask_bits(uint8_t *addr, size_t len, unsigned prefix)
{
    for (size_t i = 0; i < len; i++) {
        unsigned bits = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * (unsigned)i : 0;
        addr[i] &= (uint8_t)(0xff00u >> bits);
    }
}

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Parse an address into out with a full prefix; ::ffff:a.b.c.d becomes IPv4;
 * "[...]" brackets are allowed around IPv6.  0 / -1. */
int
rg_ip_parse(const char *s, rg_cidr *out)
{
    char buf[64];
    size_t len;

    if (s == NULL)
        return -1;
    len = strlen(s);
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';

    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        if (memcmp(out->addr, v4mapped, sizeof v4mapped) == 0) {
            memmove(out->addr, out->addr + 12, 4);
            memset(out->addr + 4, 0, 12);
            out->family = AF_INET;
            out->prefix = 32;
        } else {
            out->family = AF_INET6;
            out->prefix = 128;
        }
        return 0;
    }
    return -1;
}

/*
 * Parse "192.0.2.0/24", "2001:db8::/32" or a bare address.  Host bits after
 * the prefix are cleared; ::ffff:a.b.c.d/N (N >= 96) becomes an IPv4
 * network.  0 / -1.
 */
int
rg_cidr_parse(const char *s, rg_cidr *out)
{
    char buf[64];
    const char *slash;
    unsigned prefix = 0;
    rg_cidr c;
    size_t alen;

    if (s == NULL)
        return -1;
    slash = strchr(s, '/');
    if (slash == NULL)
        return rg_ip_parse(s, out);
    alen = (size_t)(slash - s);
    if (alen == 0 || alen >= sizeof buf)
        return -1;
    memcpy(buf, s, alen);
    buf[alen] = '\0';

    const char *d = slash + 1;
    if (*d == '\0' || strlen(d) > 3)
        return -1;
    for (; *d; d++) {
        if (*d < '0' || *d > '9')
            return -1;
        prefix = prefix * 10 + (unsigned)(*d - '0');
    }

    memset(&c, 0, sizeof c);
    if (inet_pton(AF_INET, buf, c.addr) == 1) {
        if (prefix > 32)
            return -1;
        c.family = AF_INET;
    } else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
        if (prefix > 128)
            return -1;
        c.family = AF_INET6;
        if (prefix >= 96 && memcmp(c.addr, v4mapped, sizeof v4mapped) == 0) {
            memmove(c.addr, c.addr + 12, 4);
            memset(c.addr + 4, 0, 12);
            c.family = AF_INET;
            prefix -= 96;
        }
    } else {
        return -1;
    }
    c.prefix = prefix;
    mask_bits(c.addr, sizeof c.addr, prefix);
    *out = c;
    return 0;
}

/* Is ip inside net?  Families must match (mapped addresses are IPv4 already). */
bool
rg_cidr_contains(const rg_cidr *net, const rg_cidr *ip)
{
    unsigned full, rest;

    if (net == NULL || ip == NULL || net->family != ip->family)
        return false;
    if (net->prefix > (net->family == AF_INET ? 32u : 128u))
        return false;
    full = net->prefix / 8;
    rest = net->prefix % 8;
    if (memcmp(net->addr, ip->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t m = (uint8_t)(0xff00u >> rest);
    return (net->addr[full] & m) == (ip->addr[full] & m);
}
