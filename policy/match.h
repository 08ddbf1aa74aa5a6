/*
 * match.h - addresses, domains and networks.
 */
#ifndef RG_MATCH_H
#define RG_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Normalise an address: strip surrounding <> and blanks, lowercase it.
 * Returns 0, or -1 when it does not look like local@domain (or is too long).
 * An empty input (the null sender) gives "" and returns 0.
 */
int rg_addr_normalize(const char *in, char *out, size_t outlen);

/* Domain part of a normalised address ("" if none).  Points into addr. */
const char *rg_addr_domain(const char *addr);

/*
 * Does domain (lowercase) match pattern?  "example.com" matches exactly;
 * ".example.com" matches every subdomain (a.example.com, a.b.example.com) but
 * not example.com itself; "*" matches everything.
 */
bool rg_domain_match(const char *pattern, const char *domain);

/* Does domain match any pattern of a NULL-terminated list? */
bool rg_domain_match_any(char *const *patterns, const char *domain);

/*
 * Extract the address from a From: header value: 'Name <a@b>', 'a@b',
 * '"x, y" <a@b> (comment)', RFC 2047 display names.  Writes the normalised
 * address.  Returns 1 for one address, 0 for none found, -1 for several
 * addresses or garbage.
 */
int rg_header_from_addr(const char *value, char *out, size_t outlen);

/* A network: IPv4 or IPv6 prefix. */
typedef struct rg_cidr {
    int family;           /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
} rg_cidr;

/* Parse "192.0.2.0/24", "2001:db8::/32", or a bare address (full prefix). 0 / -1. */
int rg_cidr_parse(const char *s, rg_cidr *out);

/* Parse an address (v4, v6, or v4-mapped v6 which is matched as v4). 0 / -1. */
int rg_ip_parse(const char *s, rg_cidr *out);

/* Is ip (from rg_ip_parse) inside net? */
bool rg_cidr_contains(const rg_cidr *net, const rg_cidr *ip);

#endif
