/*
 * geoip.h - country of an address, behind a small interface so tests can
 * inject their own.  The real one reads a MaxMind .mmdb with libmaxminddb.
 */
#ifndef RG_GEOIP_H
#define RG_GEOIP_H

#include <stddef.h>

typedef struct rg_geoip rg_geoip;

struct rg_geoip {
    /* Write the ISO 3166 alpha-2 code (upper case) of ip into cc[3].
     * Returns 1 found, 0 not in the database, -1 error. */
    int (*country)(rg_geoip *g, const char *ip, char cc[3]);
    void (*free)(rg_geoip *g);
};

/* Open a .mmdb file.  NULL with a message in err. */
rg_geoip *rg_geoip_open_mmdb(const char *path, char *err, size_t errlen);

#endif
