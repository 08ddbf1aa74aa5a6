/*
 * test_match - sender domains, address normalisation, header From, networks.
 */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "keys.h"
#include "rg.h"
#include "match.h"
#include "unit.h"

static void
test_domain_match(void **state)
{
    static const struct { const char *label, *pattern, *domain; bool match; } cases[] = {
        { "exact",                 "example.com",  "example.com",     true },
        { "exact other",           "example.com",  "example.org",     false },
        { "exact no subdomain",    "example.com",  "a.example.com",   false },
        { "case pattern",          "Example.COM",  "example.com",     true },
        { "case domain",           "example.com",  "EXAMPLE.com",     true },
        { "dot subdomain",         ".example.com", "a.example.com",   true },
        { "dot deep subdomain",    ".example.com", "a.b.example.com", true },
        { "dot not the parent",    ".example.com", "example.com",     false },
        { "dot suffix not label",  ".example.com", "badexample.com",  false },
        { "suffix not label",      "example.com",  "badexample.com",  false },
        { "star",                  "*",            "anything.test",   true },
        { "star empty",            "*",            "",                true },
        { "empty pattern",         "",             "",                false },
        { "lone dot",              ".",            "a.",              false },
        { "empty domain",          "example.com",  "",                false },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++)
        CHECK_INT(cases[i].label, rg_domain_match(cases[i].pattern, cases[i].domain),
                  cases[i].match);

    char *list[] = { "a.test", ".b.test", NULL };
    CHECK_INT("any first", rg_domain_match_any(list, "a.test"), true);
    CHECK_INT("any second", rg_domain_match_any(list, "x.b.test"), true);
    CHECK_INT("any none", rg_domain_match_any(list, "b.test"), false);
    char *empty[] = { NULL };
    CHECK_INT("any empty list", rg_domain_match_any(empty, "a.test"), false);
}

static void
test_addr_normalize(void **state)
{
    static const struct { const char *label, *in; int rc; const char *out; } cases[] = {
        { "plain",               "a@example.com",          0, "a@example.com" },
        { "angle",               "<a@example.com>",        0, "a@example.com" },
        { "blanks and angle",    "  < a@example.com >  ",  0, "a@example.com" },
        { "lower case",          "Alice.B@Example.COM",    0, "alice.b@example.com" },
        { "plus tag",            "a+tag@example.com",      0, "a+tag@example.com" },
        { "null sender",         "",                       0, "" },
        { "null sender angle",   "<>",                     0, "" },
        { "quoted local",        "\"john doe\"@example.com", 0, "\"john doe\"@example.com" },
        { "quoted with @",       "\"a@b\"@example.com",    0, "\"a@b\"@example.com" },
        { "quoted escape",       "\"a\\\"b\"@example.com", 0, "\"a\\\"b\"@example.com" },
        { "address literal",     "a@[192.0.2.1]",          0, "a@[192.0.2.1]" },
        { "trailing root dot",   "a@example.com.",         0, "a@example.com" },
        { "utf-8 domain",        "a@b\xc3\xbc" "cher.de",  0, "a@b\xc3\xbc" "cher.de" },
        { "no at",               "alice",                  -1, "" },
        { "empty domain",        "a@",                     -1, "" },
        { "empty local",         "@example.com",           -1, "" },
        { "two ats",             "a@b@example.com",        -1, "" },
        { "blank inside",        "a b@example.com",        -1, "" },
        { "control byte",        "a\x01@example.com",      -1, "" },
        { "newline",             "a@example.com\nX",       -1, "" },
        { "DEL",                 "a\x7f@example.com",      -1, "" },
        { "unclosed angle",      "<a@example.com",         -1, "" },
        { "unopened angle",      "a@example.com>",         -1, "" },
        { "empty label",         "a@example..com",         -1, "" },
        { "leading dot domain",  "a@.example.com",         -1, "" },
        { "comma in domain",     "a@exa,mple.com",         -1, "" },
        { "unterminated quote",  "\"abc@example.com",      -1, "" },
        { "empty quoted",        "\"\"@example.com",       -1, "" },
        { "source route",        "<@relay.test:a@example.com>", -1, "" },
    };
    char out[RG_ADDR_MAX];
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        CHECK_INT(cases[i].label, rg_addr_normalize(cases[i].in, out, sizeof out), cases[i].rc);
        if (cases[i].rc == 0)
            CHECK_STR(cases[i].label, out, cases[i].out);
    }

    /* length limits: 254 bytes pass, 255 fail, and so does a short out buffer */
    char addr[300];
    memset(addr, 'a', sizeof addr);
    memcpy(addr + 254 - 12, "@example.com", 13);
    CHECK_INT("254 bytes", rg_addr_normalize(addr, out, sizeof out), 0);
    memset(addr, 'a', sizeof addr);
    memcpy(addr + 255 - 12, "@example.com", 13);
    CHECK_INT("255 bytes", rg_addr_normalize(addr, out, sizeof out), -1);
    char small[8];
    CHECK_INT("small out", rg_addr_normalize("abc@example.com", small, sizeof small), -1);

    CHECK_STR("domain", rg_addr_domain("a@example.com"), "example.com");
    CHECK_STR("domain quoted @", rg_addr_domain("\"a@b\"@example.com"), "example.com");
    CHECK_STR("domain none", rg_addr_domain(""), "");
}

static void
test_header_from(void **state)
{
    static const struct { const char *label, *in; int rc; const char *out; } cases[] = {
        { "bare",                "a@example.com",                        1, "a@example.com" },
        { "name angle",          "Alice <Alice@Example.com>",            1, "alice@example.com" },
        { "quoted name comma",   "\"Doe, John\" <j@example.com>",        1, "j@example.com" },
        { "quoted name angle",   "\"a@evil.test\" <j@example.com>",      1, "j@example.com" },
        { "comment after",       "\"x, y\" <a@b.example> (comment)",     1, "a@b.example" },
        { "comment inside",      "a@example.com (Alice, the boss)",      1, "a@example.com" },
        { "nested comment",      "(a (b) c) a@example.com",              1, "a@example.com" },
        { "rfc 2047 name",       "=?UTF-8?B?Sm9zw6k=?= <jose@example.com>", 1, "jose@example.com" },
        { "rfc 2047 q name",     "=?iso-8859-1?q?J=F6rg?= <j@example.com>", 1, "j@example.com" },
        { "folded",              "Alice\r\n <a@example.com>",            1, "a@example.com" },
        { "angle only",          "<a@example.com>",                      1, "a@example.com" },
        { "quoted local",        "\"john doe\"@example.com",             1, "\"john doe\"@example.com" },
        { "trailing comma",      "a@example.com,",                       1, "a@example.com" },
        { "group of one",        "team: a@example.com;",                 1, "a@example.com" },
        { "empty",               "",                                     0, "" },
        { "blanks",              "   ",                                  0, "" },
        { "empty group",         "undisclosed-recipients:;",             0, "" },
        { "empty angle",         "<>",                                   0, "" },
        { "two addresses",       "a@example.com, b@example.com",         -1, "" },
        { "two angles",          "A <a@example.com>, B <b@example.com>", -1, "" },
        { "group of two",        "team: a@example.com, b@example.com;",  -1, "" },
        { "two angles one name", "x <a@example.com> <b@example.com>",    -1, "" },
        { "name only",           "Alice",                                -1, "" },
        { "unclosed angle",      "Alice <a@example.com",                 -1, "" },
        { "unclosed quote",      "\"Alice <a@example.com>",              -1, "" },
        { "unclosed comment",    "a@example.com (x",                     -1, "" },
        { "stray semicolon",     "a@example.com;",                       -1, "" },
        { "unclosed group",      "team: a@example.com",                  -1, "" },
        { "bad address",         "Alice <not-an-address>",               -1, "" },
    };
    char out[RG_ADDR_MAX];
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        CHECK_INT(cases[i].label, rg_header_from_addr(cases[i].in, out, sizeof out), cases[i].rc);
        if (cases[i].rc == 1)
            CHECK_STR(cases[i].label, out, cases[i].out);
    }
}

static void
test_cidr(void **state)
{
    static const struct { const char *label, *net, *ip; bool in; } cases[] = {
        { "v4 inside",             "192.0.2.0/24",   "192.0.2.77",        true },
        { "v4 outside",            "192.0.2.0/24",   "192.0.3.1",         false },
        { "v4 host bits masked",   "192.0.2.5/24",   "192.0.2.200",       true },
        { "v4 /25 edge in",        "192.0.2.0/25",   "192.0.2.127",       true },
        { "v4 /25 edge out",       "192.0.2.0/25",   "192.0.2.128",       false },
        { "v4 /31",                "10.0.0.2/31",    "10.0.0.3",          true },
        { "v4 /31 out",            "10.0.0.2/31",    "10.0.0.4",          false },
        { "v4 /32 bare",           "10.1.2.3",       "10.1.2.3",          true },
        { "v4 /32 other",          "10.1.2.3/32",    "10.1.2.4",          false },
        { "v4 /0",                 "0.0.0.0/0",      "203.0.113.9",       true },
        { "v4 /0 not v6",          "0.0.0.0/0",      "2001:db8::1",       false },
        { "v4 /1 edge",            "128.0.0.0/1",    "127.255.255.255",   false },
        { "v6 inside",             "2001:db8::/32",  "2001:db8:ffff::1",  true },
        { "v6 outside",            "2001:db8::/32",  "2001:db9::1",       false },
        { "v6 /127 in",            "2001:db8::/127", "2001:db8::1",       true },
        { "v6 /127 out",           "2001:db8::/127", "2001:db8::2",       false },
        { "v6 /128",               "::1",            "::1",               true },
        { "v6 /0",                 "::/0",           "fe80::1",           true },
        { "v6 /0 not v4",          "::/0",           "192.0.2.1",         false },
        { "v6 /65 edge",           "2001:db8:0:0:8000::/65", "2001:db8::7fff:0:0:1", false },
        { "mapped ip as v4",       "192.0.2.0/24",   "::ffff:192.0.2.9",  true },
        { "mapped ip upper",       "192.0.2.0/24",   "::FFFF:192.0.2.9",  true },
        { "mapped net as v4",      "::ffff:192.0.2.0/120", "192.0.2.4",   true },
        { "mapped not v6 net",     "::/1",           "::ffff:192.0.2.9",  false },
        { "bracketed v6 ip",       "2001:db8::/32",  "[2001:db8::5]",     true },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        rg_cidr net, ip;
        if (rg_cidr_parse(cases[i].net, &net) != 0)
            fail_msg("case '%s': network '%s' does not parse", cases[i].label, cases[i].net);
        if (rg_ip_parse(cases[i].ip, &ip) != 0)
            fail_msg("case '%s': address '%s' does not parse", cases[i].label, cases[i].ip);
        CHECK_INT(cases[i].label, rg_cidr_contains(&net, &ip), cases[i].in);
    }

    static const struct { const char *label, *in; } bad[] = {
        { "empty", "" }, { "v4 prefix 33", "192.0.2.0/33" }, { "v6 prefix 129", "::/129" },
        { "no prefix", "192.0.2.0/" }, { "no address", "/24" }, { "sign", "192.0.2.0/+8" },
        { "letters", "10.0.0.0/x" }, { "octet", "256.0.0.0/8" }, { "name", "example.com" },
        { "long prefix", "10.0.0.0/0008" }, { "zone", "fe80::1%eth0" },
    };
    for (size_t i = 0; i < NELEM(bad); i++) {
        rg_cidr c;
        CHECK_INT(bad[i].label, rg_cidr_parse(bad[i].in, &c), -1);
    }
    rg_cidr c;
    CHECK_INT("ip with prefix", rg_ip_parse("10.0.0.0/8", &c), -1);
    CHECK_INT("ip empty", rg_ip_parse("", &c), -1);

    /* parse results themselves */
    assert_int_equal(rg_cidr_parse("::ffff:10.0.0.0/104", &c), 0);
    CHECK_INT("mapped family", c.family, AF_INET);
    CHECK_INT("mapped prefix", c.prefix, 8);
    assert_int_equal(rg_cidr_parse("2001:db8::1/32", &c), 0);
    CHECK_INT("v6 family", c.family, AF_INET6);
    CHECK_INT("v6 masked", c.addr[15], 0);
}

static void
test_bucket_id(void **state)
{
    rg_limit l;
    char err[256], out[256];
    (void)state;

    assert_int_equal(rg_limit_parse("100/1h", RG_SCOPE_ACCOUNT, &l, err, sizeof err), 0);
    assert_int_equal(rg_bucket_id(&l, "alice", NULL, NULL, out, sizeof out), 0);
    CHECK_STR("account", out, "a:alice:rate-100-1h-msg");
    assert_int_equal(rg_limit_parse("100/1h scope=domain", RG_SCOPE_ACCOUNT, &l, err, sizeof err), 0);
    assert_int_equal(rg_bucket_id(&l, "alice", "example.com", "192.0.2.1", out, sizeof out), 0);
    CHECK_STR("account domain", out, "a:alice:rate-100-1h-msg:d:example.com");
    assert_int_equal(rg_limit_parse("quota 5/1d scope=ip name=ipq", RG_SCOPE_GLOBAL, &l, err,
                                    sizeof err), 0);
    assert_int_equal(rg_bucket_id(&l, NULL, "example.com", "2001:db8::1", out, sizeof out), 0);
    CHECK_STR("global ip", out, "g:ipq:ip:2001:db8::1");
    assert_int_equal(rg_limit_parse("5/1s", RG_SCOPE_GLOBAL, &l, err, sizeof err), 0);
    assert_int_equal(rg_bucket_id(&l, NULL, NULL, NULL, out, sizeof out), 0);
    CHECK_STR("global", out, "g:rate-5-1s-msg");
    CHECK_INT("too small", rg_bucket_id(&l, NULL, NULL, NULL, out, 5), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_match),
        cmocka_unit_test(test_addr_normalize),
        cmocka_unit_test(test_header_from),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_bucket_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
