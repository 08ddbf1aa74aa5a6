/*
 * test_verp - return-path tokens (policy/verp.c): round trip, tampering,
 * forgery, key ids, rotation with a grace, expiry, the 64-octet local part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "unit.h"
#include "verp.h"

#define DAY 86400
#define NOW ((int64_t)1795000000)        /* 2026-11-18 */

static rg_bounce_key keys_current[] = {
    { "k2", (unsigned char *)"second secret, 32 bytes long....", 32, 0, 1 },
    { "k1", (unsigned char *)"first secret, also long enough..", 32, NOW - 2 * DAY, 2 },
};

static rg_bounce_conf
conf(rg_bounce_key *keys, size_t n)
{
    rg_bounce_conf c;
    memset(&c, 0, sizeof c);
    c.domain = (char *)"bounce.example.com";
    c.keys = keys;
    c.n_keys = n;
    c.token_ttl_ms = 14ull * DAY * 1000;
    return c;
}

static const unsigned char ID[RG_VERP_ID_BYTES] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

static void
test_round_trip(void **state)
{
    rg_bounce_conf c = conf(keys_current, 2);
    char tok[RG_VERP_TOKEN_MAX + 1], addr[128], back[64];
    rg_verp_token t;
    rg_verp_purpose p;
    (void)state;

    assert_int_equal(rg_verp_mint(&c, RG_VERP_BOUNCES, ID, NOW, tok, sizeof tok), 0);
    CHECK_HAS("mint", tok, "k2-");                     /* the first key not retired signs */
    assert_int_equal(strlen(tok), 3 + RG_VERP_BODY_LEN);
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, tok, NOW, &t), RG_VERP_OK);
    CHECK_STR("kid", t.key_id, "k2");
    assert_memory_equal(t.id, ID, sizeof ID);
    assert_true(t.minted <= NOW && t.minted > NOW - 3600);
    char idt[RG_VERP_ID_TEXT + 1];
    rg_verp_id_text(ID, idt);
    CHECK_STR("id text", t.id_text, idt);

    /* any case: some MTAs change the case of a local part */
    char upper[sizeof tok];
    for (size_t i = 0; i <= strlen(tok); i++)
        upper[i] = (char)(tok[i] >= 'a' && tok[i] <= 'z' ? tok[i] - 32 : tok[i]);
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, upper, NOW, NULL), RG_VERP_OK);

    /* the address, and back; its local part fits in 64 octets for both purposes */
    for (int pu = RG_VERP_BOUNCES; pu <= RG_VERP_UNSUBSCRIBE; pu++) {
        rg_bounce_key k8 = { "abcdefgh", (unsigned char *)"0123456789abcdef", 16, 0, 1 };
        rg_bounce_conf c8 = conf(&k8, 1);
        char t8[RG_VERP_TOKEN_MAX + 1];
        assert_int_equal(rg_verp_mint(&c8, (rg_verp_purpose)pu, ID, NOW, t8, sizeof t8), 0);
        assert_int_equal(rg_verp_address(&c8, (rg_verp_purpose)pu, t8, addr, sizeof addr), 0);
        assert_true(strchr(addr, '@') - addr <= 64);
        assert_int_equal(rg_verp_split_address(&c8, addr, &p, back, sizeof back), 1);
        assert_int_equal(p, pu);
        CHECK_STR("split", back, t8);
    }
    /* another domain is not ours */
    assert_int_equal(rg_verp_split_address(&c, "bounces+k2-abc@other.example", &p, back,
                                           sizeof back), 0);
    assert_int_equal(rg_verp_split_address(&c, "<Bounces+x@BOUNCE.example.com>", &p, back,
                                           sizeof back), 1);
}

/* A template domain: "bounces.%d" follows the sender's domain. */
static void
test_template_domain(void **state)
{
    rg_bounce_conf c = conf(keys_current, 2);
    char tok[RG_VERP_TOKEN_MAX + 1], addr[300], back[64], dom[256];
    rg_verp_purpose p;
    (void)state;

    c.domain = (char *)"bounces.%d";
    assert_true(rg_verp_domain_is_template(&c));
    assert_int_equal(rg_verp_mint(&c, RG_VERP_BOUNCES, ID, NOW, tok, sizeof tok), 0);
    assert_int_equal(rg_verp_domain_for(&c, "a@Shop.Example.COM", dom, sizeof dom), 0);
    CHECK_STR("domain for", dom, "bounces.shop.example.com");
    assert_int_equal(rg_verp_address_for(&c, RG_VERP_BOUNCES, tok, "a@shop.test", addr,
                                         sizeof addr), 0);
    CHECK_HAS("address", addr, "@bounces.shop.test");
    assert_int_equal(rg_verp_split_address(&c, addr, &p, back, sizeof back), 1);
    CHECK_STR("split", back, tok);
    /* without a sender (or one without a domain) there is no address */
    assert_int_equal(rg_verp_address(&c, RG_VERP_BOUNCES, tok, addr, sizeof addr), -1);
    assert_int_equal(rg_verp_address_for(&c, RG_VERP_BOUNCES, tok, "nodomain", addr,
                                         sizeof addr), -1);
    /* which domains the template makes */
    static const struct { const char *dom; bool ours; } cases[] = {
        { "bounces.example.com", true },
        { "BOUNCES.x.y.z", true },
        { "bounces.", false },
        { "bounces..example.com", false },
        { "bounce.example.com", false },
        { "xbounces.example.com", false },
        { "example.com", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_INT(cases[i].dom, rg_verp_domain_matches(&c, cases[i].dom, strlen(cases[i].dom)),
                  cases[i].ours);
    /* a fixed domain matches itself only */
    c.domain = (char *)"bounce.example.com";
    assert_false(rg_verp_domain_is_template(&c));
    assert_true(rg_verp_domain_matches(&c, "Bounce.Example.com", 18));
    assert_false(rg_verp_domain_matches(&c, "x.bounce.example.com", 20));
    assert_int_equal(rg_verp_domain_for(&c, NULL, dom, sizeof dom), 0);
    CHECK_STR("fixed", dom, "bounce.example.com");
}

static void
test_tampered_and_forged(void **state)
{
    rg_bounce_conf c = conf(keys_current, 2);
    char tok[RG_VERP_TOKEN_MAX + 1], bad[RG_VERP_TOKEN_MAX + 1];
    (void)state;

    assert_int_equal(rg_verp_mint(&c, RG_VERP_BOUNCES, ID, NOW, tok, sizeof tok), 0);
    /* every single changed character of the body is refused */
    for (size_t i = 3; i < strlen(tok) - 1; i++) {
        strcpy(bad, tok);
        bad[i] = bad[i] == 'a' ? 'b' : 'a';
        rg_verp_status s = rg_verp_verify(&c, RG_VERP_BOUNCES, bad, NOW, NULL);
        if (s != RG_VERP_BAD_MAC && s != RG_VERP_MALFORMED)
            fail_msg("changed char %zu: status %s", i, rg_verp_status_name(s));
    }
    /* a bounce token is not an unsubscribe token */
    assert_int_equal(rg_verp_verify(&c, RG_VERP_UNSUBSCRIBE, tok, NOW, NULL), RG_VERP_BAD_MAC);

    /* forged: the same key id with a secret the attacker guessed */
    rg_bounce_key guess = { "k2", (unsigned char *)"not the secret, but 32 bytes....", 32, 0, 1 };
    rg_bounce_conf cg = conf(&guess, 1);
    assert_int_equal(rg_verp_mint(&cg, RG_VERP_BOUNCES, ID, NOW, bad, sizeof bad), 0);
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, bad, NOW, NULL), RG_VERP_BAD_MAC);

    /* a key id nobody configured */
    rg_bounce_key other = { "zz", (unsigned char *)"0123456789abcdef", 16, 0, 1 };
    rg_bounce_conf co = conf(&other, 1);
    assert_int_equal(rg_verp_mint(&co, RG_VERP_BOUNCES, ID, NOW, bad, sizeof bad), 0);
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, bad, NOW, NULL), RG_VERP_UNKNOWN_KEY);

    /* the wrong key id on a genuine body */
    strcpy(bad, tok);
    bad[1] = '1';                                   /* k2- -> k1- */
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, bad, NOW, NULL), RG_VERP_BAD_MAC);

    static const char *const malformed[] = {
        "", "-", "k2", "k2-", "nodash", "k2-tooshort", "toolongid-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "k2-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",    /* not base32 */
        "k2-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",    /* padding bits set */
        "k_-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        rg_verp_status s = rg_verp_verify(&c, RG_VERP_BOUNCES, malformed[i], NOW, NULL);
        if (s != RG_VERP_MALFORMED)
            fail_msg("'%s': status %s, want malformed", malformed[i], rg_verp_status_name(s));
    }
}

static void
test_rotation_and_expiry(void **state)
{
    char tok[RG_VERP_TOKEN_MAX + 1];
    (void)state;

    /* Before the rotation k1 was the signing key. */
    rg_bounce_key before[] = { { "k1", keys_current[1].secret, 32, 0, 1 } };
    rg_bounce_conf cb = conf(before, 1);
    assert_int_equal(rg_verp_mint(&cb, RG_VERP_BOUNCES, ID, NOW - 3 * DAY, tok, sizeof tok), 0);

    /* After it (k1 retired 2 days ago), k1's token is still accepted: its grace. */
    rg_bounce_conf c = conf(keys_current, 2);
    rg_verp_token t;
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, tok, NOW, &t), RG_VERP_OK);
    CHECK_STR("old kid", t.key_id, "k1");
    /* ... until it expires, token_ttl after it was minted */
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, tok, NOW + 10 * DAY, NULL), RG_VERP_OK);
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, tok, NOW + 12 * DAY, NULL),
                     RG_VERP_EXPIRED);

    /* A token k1 minted after its retirement (a leaked old key) is refused. */
    assert_int_equal(rg_verp_mint(&cb, RG_VERP_BOUNCES, ID, NOW - DAY, tok, sizeof tok), 0);
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, tok, NOW, NULL), RG_VERP_KEY_RETIRED);

    /* Once k1 is removed from the config its tokens are unknown. */
    rg_bounce_conf only2 = conf(keys_current, 1);
    assert_int_equal(rg_verp_verify(&only2, RG_VERP_BOUNCES, tok, NOW, NULL),
                     RG_VERP_UNKNOWN_KEY);

    /* Expiry and clocks: a fresh token, then 15 days later; one from the future. */
    assert_int_equal(rg_verp_mint(&c, RG_VERP_BOUNCES, ID, NOW, tok, sizeof tok), 0);
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, tok, NOW + 15 * DAY, NULL),
                     RG_VERP_EXPIRED);
    assert_int_equal(rg_verp_verify(&c, RG_VERP_BOUNCES, tok, NOW - 2 * 3600 - 1, NULL),
                     RG_VERP_FUTURE);

    /* No key that may sign: nothing is minted. */
    rg_bounce_conf retired_only = conf(keys_current + 1, 1);
    assert_int_equal(rg_verp_mint(&retired_only, RG_VERP_BOUNCES, ID, NOW, tok, sizeof tok), -1);
}

static void
test_ids_are_random(void **state)
{
    unsigned char a[RG_VERP_ID_BYTES], b[RG_VERP_ID_BYTES];
    (void)state;
    assert_int_equal(rg_verp_new_id(a), 0);
    assert_int_equal(rg_verp_new_id(b), 0);
    assert_memory_not_equal(a, b, sizeof a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_tampered_and_forged),
        cmocka_unit_test(test_template_domain),
        cmocka_unit_test(test_rotation_and_expiry),
        cmocka_unit_test(test_ids_are_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
