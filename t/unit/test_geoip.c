/*
 * test_geoip - the libmaxminddb lookup on a real .mmdb that make-mmdb.pl
 * writes into a temporary file (Perl MaxMind::DB::Writer, Debian package
 * libmaxmind-db-writer-perl; the test is skipped when that is missing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "geoip.h"
#include "unit.h"

static char mmdb_path[] = "/tmp/rg-test-geoip-XXXXXX";
static int have_db;

/* The directory of this source file: $top_srcdir/t/unit, else from __FILE__. */
static void
script_path(char *buf, size_t len)
{
    const char *top = getenv("top_srcdir");

    if (top != NULL && top[0] != '\0') {
        snprintf(buf, len, "%s/t/unit/make-mmdb.pl", top);
        return;
    }
    const char *slash = strrchr(__FILE__, '/');
    snprintf(buf, len, "%.*s/make-mmdb.pl", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".");
}

static int
setup(void **state)
{
    char script[1024], cmd[2048];
    int fd;
    (void)state;

    if (system("perl -MMaxMind::DB::Writer::Tree -e 1 2>/dev/null") != 0) {
        /* A developer without the Perl writer skips; CI must have it. */
        if (getenv("CI") != NULL && getenv("CI")[0] != '\0') {
            fprintf(stderr, "MaxMind::DB::Writer missing under CI\n");
            return -1;
        }
        return 0;                       /* have_db stays 0: tests skip */
    }
    fd = mkstemp(mmdb_path);
    if (fd < 0)
        return -1;
    close(fd);
    script_path(script, sizeof script);
    if (snprintf(cmd, sizeof cmd, "perl '%s' '%s'", script, mmdb_path) >= (int)sizeof cmd)
        return -1;
    if (system(cmd) != 0) {
        fprintf(stderr, "# %s failed\n", cmd);
        return -1;
    }
    have_db = 1;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    if (have_db)
        unlink(mmdb_path);
    return 0;
}

static void
test_lookup(void **state)
{
    static const struct { const char *label, *ip; int rc; const char *cc; } cases[] = {
        { "v4 country",                 "192.0.2.55",        1, "US" },
        { "v4 first address",           "192.0.2.0",         1, "US" },
        { "v4 last address",            "192.0.2.255",       1, "US" },
        { "v4 mapped in v6",            "::ffff:192.0.2.9",  1, "US" },
        { "registered country only",    "198.51.100.7",      1, "DE" },
        { "country without iso_code",   "203.0.113.1",       0, "" },
        { "v6 country",                 "2001:db8:1::1",     1, "FR" },
        { "v6 outside",                 "2001:db9::1",       0, "" },
        { "v4 not in database",         "10.1.2.3",          0, "" },
        { "v4 just outside",            "192.0.3.0",         0, "" },
        { "empty",                      "",                  0, "" },
        { "not an address",             "not-an-ip",         -1, "" },
    };
    char err[512] = "";
    (void)state;

    if (!have_db)
        skip();
    rg_geoip *g = rg_geoip_open_mmdb(mmdb_path, err, sizeof err);
    if (g == NULL)
        fail_msg("open: %s", err);
    for (size_t i = 0; i < NELEM(cases); i++) {
        char cc[3] = "?";
        CHECK_INT(cases[i].label, g->country(g, cases[i].ip, cc), cases[i].rc);
        if (cases[i].rc == 1)
            CHECK_STR(cases[i].label, cc, cases[i].cc);
    }
    g->free(g);
}

static void
test_open_errors(void **state)
{
    char err[512] = "";
    (void)state;

    assert_null(rg_geoip_open_mmdb("/nonexistent/GeoLite2-Country.mmdb", err, sizeof err));
    CHECK_HAS("missing file", err, "/nonexistent/GeoLite2-Country.mmdb: ");

    char path[] = "/tmp/rg-test-notmmdb-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a database\n", 15), 15);
    close(fd);
    assert_null(rg_geoip_open_mmdb(path, err, sizeof err));
    CHECK_HAS("not a database", err, path);
    unlink(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
