/*
 * test_account - accounts from blocks and hash fields, the round trip
 * between them, the allow checks and the indexes of a set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "account.h"
#include "unit.h"

static const char *alice_text =
    "account alice {\n"
    "    logins          = alice@relay.test, Alice-Login   # SASL logins\n"
    "    local_users     = www-alice\n"
    "    client_networks = 203.0.113.0/24, 2001:db8:1::/48\n"
    "    domains         = Example.com, .example.org\n"
    "    networks        = 192.0.2.0/24, 2001:db8::/32\n"
    "    countries       = us, DE\n"
    "    limit           = rate 100/1h burst=20\n"
    "    limit           = quota 500/1d per=rcpt hard\n"
    "    limit           = 10/1m scope=domain\n"
    "    max_size        = 10M\n"
    "    suspended       = no\n"
    "}\n";

static rg_account *
account_from_text(const char *text, char *err, size_t errlen)
{
    rg_conf *c = rg_conf_parse_string("a.conf", text, err, errlen);
    rg_account *a;

    if (c == NULL)
        return NULL;
    a = c->nblocks > 1 ? rg_account_from_block(c, &c->blocks[1], err, errlen) : NULL;
    rg_conf_free(c);
    return a;
}

static void
check_alice(const char *lb, const rg_account *a)
{
    CHECK_STR(lb, a->name, "alice");
    CHECK_INT(lb, rg_strv_len(a->logins), 2);
    CHECK_STR(lb, a->logins[1], "Alice-Login");
    CHECK_STR(lb, a->local_users[0], "www-alice");
    CHECK_INT(lb, a->n_client_networks, 2);
    CHECK_INT(lb, a->client_networks[1].family, AF_INET6);
    CHECK_INT(lb, a->client_networks[1].prefix, 48);
    CHECK_STR(lb, a->domains[0], "example.com");
    CHECK_STR(lb, a->domains[1], ".example.org");
    CHECK_INT(lb, a->n_networks, 2);
    CHECK_STR(lb, a->countries[0], "US");
    CHECK_STR(lb, a->countries[1], "DE");
    CHECK_INT(lb, a->n_limits, 3);
    CHECK_STR(lb, a->limits[0].name, "rate-100-1h-msg");
    CHECK_U64(lb, a->limits[0].burst, 20);
    CHECK_INT(lb, a->limits[0].scope, RG_SCOPE_ACCOUNT);
    CHECK_INT(lb, a->limits[1].kind, RG_LIMIT_QUOTA);
    CHECK_INT(lb, a->limits[1].hard, true);
    CHECK_INT(lb, a->limits[2].scope, RG_SCOPE_DOMAIN);
    CHECK_U64(lb, a->max_size, 10 * 1048576);
    CHECK_INT(lb, a->suspended, false);
}

static void
test_block_and_round_trip(void **state)
{
    char err[512] = "";
    rg_account *a = account_from_text(alice_text, err, sizeof err);
    (void)state;

    if (a == NULL)
        fail_msg("parse failed: %s", err);
    check_alice("from block", a);

    const char *keys[16];
    char *values[16];
    size_t n = rg_account_to_fields(a, keys, values, 16);
    assert_int_equal(n, 9);
    CHECK_STR("field order", keys[0], "logins");
    CHECK_STR("logins text", values[0], "alice@relay.test,Alice-Login");
    CHECK_STR("client networks text", values[2], "203.0.113.0/24,2001:db8:1::/48");
    CHECK_STR("domains text", values[3], "example.com,.example.org");
    CHECK_STR("countries text", values[5], "US,DE");
    CHECK_STR("limits key", keys[6], "limits");
    CHECK_STR("limits text", values[6],
              "rate 100/1h burst=20 scope=account name=rate-100-1h-msg\n"
              "quota 500/1d per=rcpt hard scope=account name=quota-500-1d-rcpt\n"
              "rate 10/1m scope=domain name=rate-10-1m-msg");
    CHECK_STR("max_size text", values[7], "10485760");
    CHECK_STR("suspended text", values[8], "no");

    rg_account *b = rg_account_from_fields("alice", (char *const *)keys, values, n, err,
                                           sizeof err);
    if (b == NULL)
        fail_msg("from fields failed: %s", err);
    check_alice("from fields", b);

    /* serialising again gives the same text */
    const char *keys2[16];
    char *values2[16];
    size_t n2 = rg_account_to_fields(b, keys2, values2, 16);
    assert_int_equal(n2, n);
    for (size_t i = 0; i < n; i++) {
        CHECK_STR(keys[i], keys2[i], keys[i]);
        CHECK_STR(keys[i], values2[i], values[i]);
        free(values2[i]);
    }
    /* a short array gets the first fields only */
    assert_int_equal(rg_account_to_fields(b, keys2, values2, 3), 3);
    for (size_t i = 0; i < 3; i++)
        free(values2[i]);
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    rg_account_free(a);
    rg_account_free(b);
}

static void
test_from_fields_variants(void **state)
{
    char err[512] = "";
    char *keys[] = { "domains", "limit", "future_field", "suspended" };
    char *values[] = { "a.test", "quota 5/1d", "whatever", "YES" };
    (void)state;

    rg_account *a = rg_account_from_fields("bob", keys, values, 4, err, sizeof err);
    if (a == NULL)
        fail_msg("from fields: %s", err);
    CHECK_INT("single limit key", a->n_limits, 1);
    CHECK_INT("suspended", a->suspended, true);
    CHECK_INT("empty logins", rg_strv_len(a->logins), 0);
    CHECK_INT("max_size default", a->max_size, 0);
    rg_account_free(a);

    char *bk[] = { "countries" };
    char *bv[] = { "USA" };
    assert_null(rg_account_from_fields("bob", bk, bv, 1, err, sizeof err));
    CHECK_HAS("bad field", err, "account 'bob': field 'countries': bad country 'USA'");
    assert_null(rg_account_from_fields("bad name", bk, bv, 0, err, sizeof err));
    CHECK_HAS("bad name", err, "bad account name");
}

static void
test_set_errors(void **state)
{
    static const struct { const char *label, *key, *value, *err; } cases[] = {
        { "unknown key",       "colour",          "blue",          "unknown key 'colour'" },
        { "country 3 letters", "countries",       "USA",           "bad country 'USA'" },
        { "country digits",    "countries",       "D1",            "bad country 'D1'" },
        { "bad network",       "networks",        "10.0.0.0/33",   "bad network '10.0.0.0/33'" },
        { "bad client net",    "client_networks", "x",             "bad network 'x'" },
        { "bad domain",        "domains",         "a.test, exa!mple.com", "bad domain 'exa!mple.com'" },
        { "double dot domain", "domains",         "a..b",          "bad domain 'a..b'" },
        { "bare dot domain",   "domains",         ".",             "bad domain '.'" },
        { "bad limit",         "limit",           "100/1y",        "bad period '1y'" },
        { "global limit",      "limit",           "100/1h scope=global", "scope=global" },
        { "bad max_size",      "max_size",        "10 MB",         "bad max_size" },
        { "bad suspended",     "suspended",       "maybe",         "bad suspended 'maybe'" },
        { "bad login",         "logins",          "a\x01" "b",     "bad login" },
        { "bad limits line",   "limits",          "1/1s\nnope",    "expected N/PERIOD, not 'nope'" },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        rg_account *a = rg_account_new("x");
        char err[256] = "";
        CHECK_INT(cases[i].label, rg_account_set(a, cases[i].key, cases[i].value, err,
                                                 sizeof err), -1);
        CHECK_HAS(cases[i].label, err, cases[i].err);
        rg_account_free(a);
    }

    /* two limits with the same name and scope would share a bucket */
    rg_account *a = rg_account_new("x");
    char err[256];
    assert_int_equal(rg_account_set(a, "limit", "100/1h", err, sizeof err), 0);
    assert_int_equal(rg_account_set(a, "limit", "100/1h hard", err, sizeof err), -1);
    CHECK_HAS("duplicate limit", err, "two limits named 'rate-100-1h-msg'");
    assert_int_equal(rg_account_set(a, "limit", "100/1h scope=ip", err, sizeof err), 0);
    /* "limits" replaces, and a bad one keeps the old ones */
    assert_int_equal(rg_account_set(a, "limits", "1/1s\nbad", err, sizeof err), -1);
    CHECK_INT("kept limits", a->n_limits, 2);
    assert_int_equal(rg_account_set(a, "limits", "1/1s\n\nquota 2/1d\n", err, sizeof err), 0);
    CHECK_INT("replaced limits", a->n_limits, 2);
    CHECK_INT("replaced kind", a->limits[1].kind, RG_LIMIT_QUOTA);
    rg_account_free(a);
}

static void
test_block_errors(void **state)
{
    static const struct { const char *label, *text, *err; } cases[] = {
        { "bad value line",  "account a {\n  domains = x.test\n  countries = XYZ\n}\n",
          "a.conf:3: bad country 'XYZ'" },
        { "unknown key",     "account a {\n  colour = red\n}\n", "a.conf:2: unknown key 'colour'" },
        { "repeated key",    "account a {\n domains = a.test\n domains = b.test\n}\n",
          "a.conf:3: 'domains' is already set at line 2" },
        { "missing name",    "account {\n}\n", "a.conf:1: missing account name" },
        { "bad name",        "account a/b {\n}\n", "a.conf:1: bad name 'a/b' for block 'account'" },
        { "limits in file",  "account a {\n limits = 1/1s\n}\n", "a.conf:2: use one 'limit = SPEC'" },
        { "global limit",    "account a {\n limit = 5/1s scope=global\n}\n", "a.conf:2: scope=global" },
        { "reserved limit name", "account a {\n limit = 1/1s\n limit = rate 5/1m name=throttle\n}\n",
          "a.conf:3: the limit name 'throttle' is reserved for relayguard-detectd's throttle "
          "action (detect block, throttle =); give this limit another name=" },
        { "wrong block",     "policyd a {\n}\n", "a.conf:1: expected 'account NAME {'" },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        char err[512] = "";
        rg_account *a = account_from_text(cases[i].text, err, sizeof err);
        if (a != NULL) {
            rg_account_free(a);
            fail_msg("case '%s': parsed, want an error", cases[i].label);
        }
        CHECK_HAS(cases[i].label, err, cases[i].err);
    }
}

static void
test_allows(void **state)
{
    char err[512];
    rg_account *a = account_from_text(alice_text, err, sizeof err);
    rg_account *open = rg_account_new("open");
    rg_cidr ip;
    (void)state;

    assert_non_null(a);
    static const struct { const char *label, *domain; bool ok; } dom[] = {
        { "exact", "example.com", true }, { "sub of exact", "a.example.com", false },
        { "dot sub", "a.example.org", true }, { "dot parent", "example.org", false },
        { "other", "example.net", false },
    };
    for (size_t i = 0; i < NELEM(dom); i++)
        CHECK_INT(dom[i].label, rg_account_allows_domain(a, dom[i].domain), dom[i].ok);
    CHECK_INT("no domains allow nothing", rg_account_allows_domain(open, "x.test"), false);

    static const struct { const char *label, *ip; bool ok; } net[] = {
        { "v4 in", "192.0.2.9", true }, { "v4 out", "198.51.100.1", false },
        { "v6 in", "2001:db8::1", true }, { "mapped in", "::ffff:192.0.2.1", true },
    };
    for (size_t i = 0; i < NELEM(net); i++) {
        assert_int_equal(rg_ip_parse(net[i].ip, &ip), 0);
        CHECK_INT(net[i].label, rg_account_allows_network(a, &ip), net[i].ok);
    }
    assert_int_equal(rg_ip_parse("198.51.100.1", &ip), 0);
    CHECK_INT("no networks allow all", rg_account_allows_network(open, &ip), true);

    CHECK_INT("country listed", rg_account_allows_country(a, "DE"), true);
    CHECK_INT("country lower", rg_account_allows_country(a, "us"), true);
    CHECK_INT("country other", rg_account_allows_country(a, "FR"), false);
    CHECK_INT("country unknown", rg_account_allows_country(a, ""), false);
    CHECK_INT("no countries allow all", rg_account_allows_country(open, "FR"), true);
    CHECK_INT("no countries allow unknown", rg_account_allows_country(open, NULL), true);
    rg_account_free(a);
    rg_account_free(open);
}

static rg_account *
make(const char *name, const char *logins, const char *users, const char *clients)
{
    rg_account *a = rg_account_new(name);
    char err[256];

    if (logins)
        assert_int_equal(rg_account_set(a, "logins", logins, err, sizeof err), 0);
    if (users)
        assert_int_equal(rg_account_set(a, "local_users", users, err, sizeof err), 0);
    if (clients)
        assert_int_equal(rg_account_set(a, "client_networks", clients, err, sizeof err), 0);
    return a;
}

static void
test_index(void **state)
{
    rg_accounts *s = rg_accounts_new();
    char err[256];
    rg_cidr ip;
    (void)state;

    assert_int_equal(rg_accounts_add(s, make("alice", "alice@relay.test", "www-alice",
                                             "10.0.0.0/8"), err, sizeof err), 0);
    assert_int_equal(rg_accounts_add(s, make("bob", "Bob@Relay.Test", "bob",
                                             "10.1.0.0/16, 2001:db8::/32"), err, sizeof err), 0);
    assert_int_equal(rg_accounts_add(s, make("carol", NULL, NULL, "10.1.2.0/24"), err,
                                     sizeof err), 0);
    assert_int_equal(rg_accounts_add(s, make("default", NULL, NULL, NULL), err, sizeof err), 0);
    CHECK_INT("count", rg_accounts_count(s), 4);
    CHECK_STR("at 1", rg_accounts_at(s, 1)->name, "bob");
    assert_null(rg_accounts_at(s, 4));

    static const struct { const char *label, *login, *want; } logins[] = {
        { "listed login",        "alice@relay.test", "alice" },
        { "login upper case",    "ALICE@relay.TEST", "alice" },
        { "name is a login",     "alice",            "alice" },
        { "name other case",     "Carol",            "carol" },
        { "mixed case listed",   "bob@relay.test",   "bob" },
        { "unknown",             "mallory",          NULL },
        { "empty",               "",                 NULL },
    };
    for (size_t i = 0; i < NELEM(logins); i++) {
        const rg_account *a = rg_accounts_by_login(s, logins[i].login);
        if (logins[i].want == NULL)
            assert_null(a);
        else if (a == NULL)
            fail_msg("case '%s': not found", logins[i].label);
        else
            CHECK_STR(logins[i].label, a->name, logins[i].want);
    }
    CHECK_STR("by name", rg_accounts_by_name(s, "bob")->name, "bob");
    assert_null(rg_accounts_by_name(s, "Bob"));
    CHECK_STR("local user", rg_accounts_by_local_user(s, "www-alice")->name, "alice");
    assert_null(rg_accounts_by_local_user(s, "WWW-alice"));

    static const struct { const char *label, *ip, *want; } clients[] = {
        { "only /8",         "10.200.0.1",   "alice" },
        { "longer /16 wins", "10.1.9.9",     "bob" },
        { "longest /24",     "10.1.2.3",     "carol" },
        { "mapped",          "::ffff:10.1.2.3", "carol" },
        { "v6",              "2001:db8::5",  "bob" },
        { "none",            "192.0.2.1",    NULL },
    };
    for (size_t i = 0; i < NELEM(clients); i++) {
        assert_int_equal(rg_ip_parse(clients[i].ip, &ip), 0);
        const rg_account *a = rg_accounts_by_client(s, &ip);
        if (clients[i].want == NULL)
            assert_null(a);
        else if (a == NULL)
            fail_msg("case '%s': not found", clients[i].label);
        else
            CHECK_STR(clients[i].label, a->name, clients[i].want);
    }

    /* conflicts name both accounts and leave the set unchanged */
    assert_int_equal(rg_accounts_add(s, make("alice", NULL, NULL, NULL), err, sizeof err), -1);
    CHECK_HAS("duplicate name", err, "duplicate account 'alice'");
    assert_int_equal(rg_accounts_add(s, make("dave", "ALICE@relay.test", NULL, NULL), err,
                                     sizeof err), -1);
    CHECK_HAS("login twice", err, "login 'alice@relay.test' is claimed by accounts 'alice' and 'dave'");
    assert_int_equal(rg_accounts_add(s, make("dave", "Carol", NULL, NULL), err, sizeof err), -1);
    CHECK_HAS("login is a name", err, "claimed by accounts 'carol' and 'dave'");
    assert_int_equal(rg_accounts_add(s, make("Alice", NULL, NULL, NULL), err, sizeof err), -1);
    CHECK_HAS("name is a login", err, "login 'alice' is claimed by accounts 'alice' and 'Alice'");
    assert_int_equal(rg_accounts_add(s, make("dave", NULL, "bob", NULL), err, sizeof err), -1);
    CHECK_HAS("local user twice", err, "local user 'bob' is claimed by accounts 'bob' and 'dave'");
    assert_int_equal(rg_accounts_add(s, make("dave", NULL, NULL, "10.1.2.0/24"), err,
                                     sizeof err), -1);
    CHECK_HAS("client net twice", err, "client network 10.1.2.0/24 is claimed by accounts 'carol' and 'dave'");
    CHECK_INT("unchanged", rg_accounts_count(s), 4);
    assert_null(rg_accounts_by_name(s, "dave"));
    rg_accounts_free(s);
}

/* 100,000 accounts: building and looking up stay fast (hash indexes). */
static void
test_index_large(void **state)
{
    rg_accounts *s = rg_accounts_new();
    char err[256], name[64], login[64];
    (void)state;

    for (int i = 0; i < 100000; i++) {
        snprintf(name, sizeof name, "acct%d", i);
        snprintf(login, sizeof login, "User%d@Example.test", i);
        rg_account *a = rg_account_new(name);
        assert_int_equal(rg_account_set(a, "logins", login, err, sizeof err), 0);
        if (rg_accounts_add(s, a, err, sizeof err) != 0)
            fail_msg("add %d: %s", i, err);
    }
    for (int i = 0; i < 100000; i += 7) {
        snprintf(login, sizeof login, "user%d@example.TEST", i);
        snprintf(name, sizeof name, "acct%d", i);
        const rg_account *a = rg_accounts_by_login(s, login);
        assert_non_null(a);
        CHECK_STR(login, a->name, name);
    }
    rg_accounts_free(s);
}

static void
test_load_file(void **state)
{
    static const struct { const char *label, *text, *err; } cases[] = {
        { "ok", "# accounts\naccount alice {\n domains = a.test\n}\n\naccount bob {\n"
          " logins = b@x.test\n domains = *\n}\n", NULL },
        { "top-level key", "\nstore = redis://x\n", "F:2: 'store' outside an account block" },
        { "other block", "account a {\n}\npolicyd {\n}\n", "F:3: unknown block 'policyd'" },
        { "login twice", "account a {\n logins = x\n}\naccount b {\n logins = X\n}\n",
          "F:4: login 'x' is claimed by accounts 'a' and 'b'" },
        { "bad value", "account a {\n max_size = big\n}\n", "F:2: bad max_size 'big'" },
        { "syntax", "account a {\n", "F:1: unterminated block 'account' opened at line 1" },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        char path[] = "/tmp/rg-test-accounts-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, cases[i].text, strlen(cases[i].text)),
                         (ssize_t)strlen(cases[i].text));
        close(fd);
        char raw[512] = "", err[512] = "";
        rg_accounts *s = rg_accounts_load_file(path, raw, sizeof raw);
        unlink(path);
        if (strncmp(raw, path, strlen(path)) == 0)
            snprintf(err, sizeof err, "F%s", raw + strlen(path));
        if (cases[i].err == NULL) {
            if (s == NULL)
                fail_msg("case '%s': %s", cases[i].label, raw);
            CHECK_INT(cases[i].label, rg_accounts_count(s), 2);
            CHECK_STR(cases[i].label, rg_accounts_by_login(s, "B@X.test")->name, "bob");
            rg_accounts_free(s);
        } else {
            if (s != NULL) {
                rg_accounts_free(s);
                fail_msg("case '%s': loaded, want an error", cases[i].label);
            }
            CHECK_HAS(cases[i].label, err, cases[i].err);
        }
    }
}

static void
test_name_valid(void **state)
{
    static const struct { const char *label, *name; bool ok; } cases[] = {
        { "plain", "alice", true }, { "login-like", "a.b+c@d-e_f", true },
        { "empty", "", false }, { "blank", "a b", false }, { "colon", "a:b", false },
        { "64 chars", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true },
        { "65 chars", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++)
        CHECK_INT(cases[i].label, rg_account_name_valid(cases[i].name), cases[i].ok);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_and_round_trip),
        cmocka_unit_test(test_from_fields_variants),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_block_errors),
        cmocka_unit_test(test_allows),
        cmocka_unit_test(test_index),
        cmocka_unit_test(test_index_large),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_name_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
