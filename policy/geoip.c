/*
 * geoip.c - country of an address from a MaxMind .mmdb (libmaxminddb),
 * behind the rg_geoip interface.  MMDB_s is read-only after open, so
 * lookups are safe from several threads.
 */
#include <errno.h>
#include <maxminddb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geoip.h"
#include "util.h"

typedef struct mmdb_geoip {
    rg_geoip base;          /* first: the interface */
    MMDB_s db;
} mmdb_geoip;

/* Copy a two-letter code of entry at path into cc.  1 found, 0 absent. */
static int
get_code(MMDB_entry_s *entry, const char *top, char cc[3])
{
    MMDB_entry_data_s data;

    if (MMDB_get_value(entry, &data, top, "iso_code", NULL) != MMDB_SUCCESS ||
        !data.has_data || data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size != 2)
        return 0;
    for (int i = 0; i < 2; i++) {
        char c = data.utf8_string[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c < 'A' || c > 'Z')
            return 0;
        cc[i] = c;
    }
    cc[2] = '\0';
    return 1;
}

/* "country"/"iso_code", else "registered_country"/"iso_code".
 * 1 found, 0 not in the database, -1 error (bad address, corrupt file). */
static int
mmdb_country(rg_geoip *g, const char *ip, char cc[3])
{
    mmdb_geoip *m = (mmdb_geoip *)g;
    int gai_error = 0, mmdb_error = MMDB_SUCCESS;
    MMDB_lookup_result_s r;

    cc[0] = '\0';
    if (ip == NULL || ip[0] == '\0')
        return 0;
    r = MMDB_lookup_string(&m->db, ip, &gai_error, &mmdb_error);
    if (gai_error != 0 || mmdb_error != MMDB_SUCCESS)
        return -1;
    if (!r.found_entry)
        return 0;
    if (get_code(&r.entry, "country", cc) || get_code(&r.entry, "registered_country", cc))
        return 1;
    return 0;
}

static void
mmdb_free(rg_geoip *g)
{
    mmdb_geoip *m = (mmdb_geoip *)g;

    if (m == NULL)
        return;
    MMDB_close(&m->db);
    free(m);
}

/* Open a .mmdb file (mapped into memory).  Free with g->free(g).
 * NULL with "PATH: reason" in err. */
rg_geoip *
rg_geoip_open_mmdb(const char *path, char *err, size_t errlen)
{
    mmdb_geoip *m = rg_calloc(1, sizeof *m);
    int rc = MMDB_open(path, MMDB_MODE_MMAP, &m->db);

    if (rc != MMDB_SUCCESS) {
        if (rc == MMDB_IO_ERROR && errno != 0)
            snprintf(err, errlen, "%s: %s (%s)", path, MMDB_strerror(rc), strerror(errno));
        else
            snprintf(err, errlen, "%s: %s", path, MMDB_strerror(rc));
        free(m);
        return NULL;
    }
    m->base.country = mmdb_country;
    m->base.free = mmdb_free;
    return &m->base;
}
