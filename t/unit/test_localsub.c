/*
 * test_localsub - X-Relayguard-Local tokens (policy/localsub.c): mint and
 * verify round trip, every field altered, forgery with another key, age
 * and clock skew, malformed values, folding, the key file and settings.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "localsub.h"
#include "unit.h"

#define NOW ((int64_t)1795000000)      /* 2026-11-18 */
#define HOUR_MS (3600ull * 1000)
#define NONCE "0123456789abcdef0123456789abcdef"

static rg_localsub_key key_a, key_b;

static void set_key(rg_localsub_key *k, const char *s)
{
    memset(k, 0, sizeof *k);
    k->len = strlen(s);
    memcpy(k->bytes, s, k->len);
}

static void mint(const char *login, int64_t t, char *out)
{
    char err[256];
    int rc = rg_localsub_mint(&key_a, 1001, login, t, NONCE, out, RG_LOCALSUB_TOKEN_MAX, err,
                              sizeof err);
    if (rc != 0)
        fail_msg("mint %s: %s", login, err);
}

static void test_round_trip(void **state)
{
    (void)state;
    char tok[RG_LOCALSUB_TOKEN_MAX];
    rg_localsub_id id;
    mint("www-alice", NOW, tok);
    /* the signature as Python's hmac module computes it (a known answer) */
    CHECK_STR("known answer", tok, "v=1; u=1001; l=www-alice; t=1795000000; n=" NONCE
              "; s=1a3286ad52263446547c995f199f8e75d4252adc05b9006b60a22f18e18ed0fd");
    CHECK_INT("round trip", rg_localsub_verify(&key_a, tok, NOW, HOUR_MS, &id), RG_LOCALSUB_OK);
    CHECK_INT("uid", id.uid, 1001);
    CHECK_STR("login", id.login, "www-alice");
    CHECK_INT("time", id.time, NOW);
    CHECK_STR("nonce", id.nonce, NONCE);

    /* fresh nonces differ */
    char t1[RG_LOCALSUB_TOKEN_MAX], t2[RG_LOCALSUB_TOKEN_MAX], err[256];
    assert_int_equal(rg_localsub_mint(&key_a, 7, "bob", NOW, NULL, t1, sizeof t1, err, sizeof err), 0);
    assert_int_equal(rg_localsub_mint(&key_a, 7, "bob", NOW, NULL, t2, sizeof t2, err, sizeof err), 0);
    assert_string_not_equal(t1, t2);
    CHECK_INT("random nonce", rg_localsub_verify(&key_a, t1, NOW, HOUR_MS, &id), RG_LOCALSUB_OK);
}

/* One token, then each case edits it (or the key, or the time) and says what verify must say. */
static void test_verify_table(void **state)
{
    (void)state;
    char good[RG_LOCALSUB_TOKEN_MAX];
    mint("www-alice", NOW, good);
    const char *sig = strstr(good, "; s=") + 4;
    char flipped[2 * RG_LOCALSUB_TOKEN_MAX];
    snprintf(flipped, sizeof flipped, "%.*s%c%s", (int)(sig - good), good,
             sig[0] == '0' ? '1' : '0', sig + 1);
    char other_login[2 * RG_LOCALSUB_TOKEN_MAX], other_uid[2 * RG_LOCALSUB_TOKEN_MAX],
         other_time[2 * RG_LOCALSUB_TOKEN_MAX], folded[2 * RG_LOCALSUB_TOKEN_MAX],
         upper[2 * RG_LOCALSUB_TOKEN_MAX], trailing[2 * RG_LOCALSUB_TOKEN_MAX],
         lead0[2 * RG_LOCALSUB_TOKEN_MAX];
    snprintf(other_login, sizeof other_login, "v=1; u=1001; l=www-bob; t=1795000000; n=%s; s=%s",
             NONCE, sig);
    snprintf(other_uid, sizeof other_uid, "v=1; u=0; l=www-alice; t=1795000000; n=%s; s=%s",
             NONCE, sig);
    snprintf(other_time, sizeof other_time, "v=1; u=1001; l=www-alice; t=1795009999; n=%s; s=%s",
             NONCE, sig);
    snprintf(folded, sizeof folded, "v=1; u=1001; l=www-alice;\r\n\tt=1795000000; n=%s;\r\n s=%s",
             NONCE, sig);
    snprintf(upper, sizeof upper, "V=1; u=1001; l=www-alice; t=1795000000; n=%s; s=%s", NONCE, sig);
    snprintf(trailing, sizeof trailing, "%s; x=1", good);
    snprintf(lead0, sizeof lead0, "v=1; u=01001; l=www-alice; t=1795000000; n=%s; s=%s", NONCE, sig);

    const struct {
        const char *label;
        const char *value;
        const rg_localsub_key *key;
        int64_t now;
        rg_localsub_status want;
    } cases[] = {
        { "as minted", good, &key_a, NOW, RG_LOCALSUB_OK },
        { "folded between fields", folded, &key_a, NOW, RG_LOCALSUB_OK },
        { "59 minutes later", good, &key_a, NOW + 59 * 60, RG_LOCALSUB_OK },
        { "exactly max age", good, &key_a, NOW + 3600, RG_LOCALSUB_OK },
        { "one second too old", good, &key_a, NOW + 3601, RG_LOCALSUB_EXPIRED },
        { "a day old", good, &key_a, NOW + 86400, RG_LOCALSUB_EXPIRED },
        { "4 minutes ahead (skew)", good, &key_a, NOW - 240, RG_LOCALSUB_OK },
        { "10 minutes ahead", good, &key_a, NOW - 600, RG_LOCALSUB_FUTURE },
        { "another key", good, &key_b, NOW, RG_LOCALSUB_BAD_SIGNATURE },
        { "no key", good, NULL, NOW, RG_LOCALSUB_BAD_SIGNATURE },
        { "signature altered", flipped, &key_a, NOW, RG_LOCALSUB_BAD_SIGNATURE },
        { "another user's login", other_login, &key_a, NOW, RG_LOCALSUB_BAD_SIGNATURE },
        { "uid 0 claimed", other_uid, &key_a, NOW, RG_LOCALSUB_BAD_SIGNATURE },
        { "time moved", other_time, &key_a, NOW, RG_LOCALSUB_BAD_SIGNATURE },
        { "empty", "", &key_a, NOW, RG_LOCALSUB_MALFORMED },
        { "garbage", "forged", &key_a, NOW, RG_LOCALSUB_MALFORMED },
        { "version 2", "v=2; u=1; l=a; t=1; n=" NONCE "; s=00", &key_a, NOW, RG_LOCALSUB_MALFORMED },
        { "upper-case field name", upper, &key_a, NOW, RG_LOCALSUB_MALFORMED },
        { "extra field", trailing, &key_a, NOW, RG_LOCALSUB_MALFORMED },
        { "leading zero in uid", lead0, &key_a, NOW, RG_LOCALSUB_MALFORMED },
        { "short signature", "v=1; u=1; l=a; t=1; n=" NONCE "; s=abcd", &key_a, NOW,
          RG_LOCALSUB_MALFORMED },
        { "short nonce", "v=1; u=1; l=a; t=1; n=abcd; s=" NONCE NONCE, &key_a, NOW,
          RG_LOCALSUB_MALFORMED },
        { "login with a blank", "v=1; u=1; l=a b; t=1; n=" NONCE "; s=" NONCE NONCE, &key_a, NOW,
          RG_LOCALSUB_MALFORMED },
        { "negative time", "v=1; u=1; l=a; t=-5; n=" NONCE "; s=" NONCE NONCE, &key_a, NOW,
          RG_LOCALSUB_MALFORMED },
        { "uid above 32 bits", "v=1; u=4294967296; l=a; t=1; n=" NONCE "; s=" NONCE NONCE, &key_a,
          NOW, RG_LOCALSUB_MALFORMED },
    };
    rg_localsub_key none;
    memset(&none, 0, sizeof none);
    for (size_t i = 0; i < NELEM(cases); i++) {
        rg_localsub_id id;
        rg_localsub_status st = rg_localsub_verify(cases[i].key ? cases[i].key : &none,
                                                   cases[i].value, cases[i].now, HOUR_MS, &id);
        if (st != cases[i].want)
            fail_msg("case '%s': %s, want %s", cases[i].label, rg_localsub_status_text(st),
                     rg_localsub_status_text(cases[i].want));
    }
    CHECK_INT("NULL value", rg_localsub_verify(&key_a, NULL, NOW, HOUR_MS, &(rg_localsub_id){ 0 }),
              RG_LOCALSUB_MALFORMED);
}

static void test_mint_refuses(void **state)
{
    (void)state;
    const struct {
        const char *label, *login, *nonce;
    } cases[] = {
        { "empty login", "", NULL },
        { "blank in login", "a b", NULL },
        { "semicolon in login", "a;s=x", NULL },
        { "leading dash", "-a", NULL },
        { "65 characters", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL },
        { "bad nonce", "alice", "xyz" },
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        char out[RG_LOCALSUB_TOKEN_MAX], err[256] = "";
        int rc = rg_localsub_mint(&key_a, 1, cases[i].login, NOW, cases[i].nonce, out, sizeof out,
                                  err, sizeof err);
        CHECK_INT(cases[i].label, rc, -1);
        if (err[0] == '\0')
            fail_msg("case '%s': no message", cases[i].label);
    }
    char small[40], err[256];
    CHECK_INT("buffer too small", rg_localsub_mint(&key_a, 1, "a", NOW, NONCE, small, sizeof small,
                                                  err, sizeof err), -1);
    CHECK_INT("64 characters", rg_localsub_login_valid(
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 1);
    CHECK_INT("machine account", rg_localsub_login_valid("host$"), 1);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_key_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_localsub.XXXXXX", path[128], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/key", dir);
    rg_localsub_key k;

    const struct {
        const char *label, *text;
        mode_t mode;
        int want;
        const char *msg;
    } cases[] = {
        { "hex key with newline", "00112233445566778899aabbccddeeff\n", 0640, 0, NULL },
        { "group readable is fine", "0123456789abcdef", 0640, 0, NULL },
        { "readable by others", "0123456789abcdef0123", 0644, -1, "readable or writable by others" },
        { "writable by others", "0123456789abcdef0123", 0602, -1, "by others" },
        { "15 bytes", "0123456789abcde\n", 0600, -1, "16 to 4096 bytes" },
        { "empty", "", 0600, -1, "16 to 4096 bytes" },
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        write_file(path, cases[i].text, cases[i].mode);
        err[0] = '\0';
        int rc = rg_localsub_key_load(path, &k, err, sizeof err);
        CHECK_INT(cases[i].label, rc, cases[i].want);
        if (cases[i].msg)
            CHECK_HAS(cases[i].label, err, cases[i].msg);
        if (rc == 0)
            CHECK_INT(cases[i].label, k.len, strcspn(cases[i].text, "\n"));
        unlink(path);
    }
    /* a key of 5000 bytes */
    char *big = malloc(5001);
    memset(big, 'k', 5000);
    big[5000] = '\0';
    write_file(path, big, 0600);
    free(big);
    CHECK_INT("5000 bytes", rg_localsub_key_load(path, &k, err, sizeof err), -1);
    CHECK_HAS("5000 bytes", err, "16 to 4096 bytes");
    unlink(path);
    CHECK_INT("missing file", rg_localsub_key_load(path, &k, err, sizeof err), -1);
    CHECK_HAS("missing file", err, path);
    CHECK_INT("a directory", rg_localsub_key_load(dir, &k, err, sizeof err), -1);
    CHECK_HAS("a directory", err, "not a regular file");

    /* a loaded key verifies what the same bytes minted */
    write_file(path, "the same secret bytes, 32 long..\n", 0640);
    assert_int_equal(rg_localsub_key_load(path, &k, err, sizeof err), 0);
    rg_localsub_key same;
    set_key(&same, "the same secret bytes, 32 long..");
    char tok[RG_LOCALSUB_TOKEN_MAX];
    assert_int_equal(rg_localsub_mint(&same, 5, "carol", NOW, NULL, tok, sizeof tok, err, sizeof err), 0);
    rg_localsub_id id;
    CHECK_INT("file key verifies", rg_localsub_verify(&k, tok, NOW, HOUR_MS, &id), RG_LOCALSUB_OK);
    rg_localsub_key_clear(&k);
    CHECK_INT("cleared key", k.len, 0);
    unlink(path);
    rmdir(dir);
}

static void test_settings(void **state)
{
    (void)state;
    const struct {
        const char *label, *key, *value;
        int want;
        const char *msg;
    } cases[] = {
        { "key path", "local_key", "/etc/relayguard/local.key", 1, NULL },
        { "relative key path", "local_key", "local.key", -1, "f:3: local_key must be an absolute path" },
        { "optional", "local_submission", "optional", 1, NULL },
        { "required", "local_submission", "required", 1, NULL },
        { "bad mode", "local_submission", "always", -1, "f:3: bad local_submission 'always'" },
        { "max age 1h", "local_max_age", "1h", 1, NULL },
        { "max age 30s", "local_max_age", "30s", -1, "1m to 7d" },
        { "max age 8d", "local_max_age", "8d", -1, "1m to 7d" },
        { "sendmail", "local_sendmail", "/usr/sbin/sendmail -C /etc/postfix-out", 1, NULL },
        { "relative sendmail", "local_sendmail", "sendmail", -1, "absolute path" },
        { "not ours", "local_user", "x", 0, NULL },
        { "not ours at all", "store", "redis://", 0, NULL },
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        rg_localsub_conf c;
        char err[256] = "";
        rg_localsub_conf_init(&c);
        int rc = rg_localsub_conf_apply(&c, cases[i].key, cases[i].value, "f", 3, err, sizeof err);
        CHECK_INT(cases[i].label, rc, cases[i].want);
        if (cases[i].msg)
            CHECK_HAS(cases[i].label, err, cases[i].msg);
        rg_localsub_conf_clear(&c);
    }
    rg_localsub_conf c;
    char err[256];
    rg_localsub_conf_init(&c);
    CHECK_INT("default max age", c.max_age_ms, HOUR_MS);
    CHECK_INT("default mode", c.required, 0);
    CHECK_STR("default sendmail", c.sendmail[0], "/usr/sbin/sendmail");
    assert_int_equal(rg_localsub_conf_apply(&c, "local_sendmail", "/usr/sbin/sendmail -C /x", "f",
                                            1, err, sizeof err), 1);
    CHECK_STR("sendmail word 1", c.sendmail[1], "-C");
    CHECK_STR("sendmail word 2", c.sendmail[2], "/x");
    assert_int_equal(rg_localsub_conf_apply(&c, "local_submission", "required", "f", 1, err,
                                            sizeof err), 1);
    CHECK_INT("required", c.required, 1);
    rg_localsub_conf_clear(&c);
}

int main(void)
{
    set_key(&key_a, "key A: thirty-two bytes, at least");
    set_key(&key_b, "key B: thirty-two bytes, at least");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_verify_table),
        cmocka_unit_test(test_mint_refuses),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
