/*
 * test_lazy.c - rg_engine_new_lazy against a real Redis (started by
 * lazy.sh, port in $REDIS_PORT): an engine that reads only the accounts a
 * request needs must decide exactly as one that read them all, see an
 * account changed behind it, and never decide on another lookup's
 * accounts.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "account.h"
#include "clock.h"
#include "config.h"
#include "engine.h"
#include "fixture.h"
#include "keys.h"
#include "store.h"

static const char *accounts_text =
    "account alice {\n"
    "  logins = alice@relay.test, Alice.Two\n"
    "  domains = example.com\n"
    "}\n"
    "account www {\n"
    "  local_users = www-data\n"
    "  domains = www.test\n"
    "}\n"
    "account net {\n"
    "  client_networks = 192.0.2.0/24\n"
    "  domains = net.test\n"
    "}\n"
    "account net2 {\n"
    "  client_networks = 192.0.2.128/25\n"
    "  domains = net2.test\n"
    "}\n"
    "account default {\n"
    "  domains = default.test\n"
    "}\n";

/* Write an account as the admin commands do: its hash, the name in
 * rg:accts, and a new generation. */
static void put_account(fixture *f, const rg_account *a)
{
    const char *keys[64];
    char *vals[64];
    size_t n = rg_account_to_fields(a, keys, vals, 64);
    fx_redis_ok(f, "DEL %s%s", RG_KEY_ACCOUNT, a->name);
    for (size_t i = 0; i < n; i++) {
        fx_redis_ok(f, "HSET %s%s %s %s", RG_KEY_ACCOUNT, a->name, keys[i], vals[i]);
        free(vals[i]);
    }
    fx_redis_ok(f, "SADD %s %s", RG_KEY_ACCOUNTS, a->name);
    fx_redis_ok(f, "INCR %s", RG_KEY_ACCOUNT_GEN);
}

static void put_accounts(fixture *f, const char *text)
{
    char err[512];
    rg_conf *c = rg_conf_parse_string("accounts", text, err, sizeof err);
    if (c == NULL)
        fail_msg("%s", err);
    for (size_t i = 1; i < c->nblocks; i++) {
        rg_account *a = rg_account_from_block(c, &c->blocks[i], err, sizeof err);
        if (a == NULL)
            fail_msg("%s", err);
        put_account(f, a);
        rg_account_free(a);
    }
    rg_conf_free(c);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char url[64], err[512];
    fx_redis_url(url, sizeof url);
    f->cfg = rg_config_new_default();
    assert_int_equal(rg_store_url_parse(url, &f->cfg->store, err, sizeof err), 0);
    f->cfg->store_timeout_ms = 1000;
    snprintf(f->cfg->node, sizeof f->cfg->node, "t1");
    fx_connect(f);
    fx_redis_ok(f, "FLUSHALL");
    put_accounts(f, accounts_text);
    f->store = rg_store_redis_sync(f->cfg);
    assert_non_null(f->store->load_some);
    f->e = rg_engine_new_lazy(f->cfg, f->store, rg_clock_system(), NULL, err, sizeof err);
    assert_non_null(f->e);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static rg_verdict mail(fixture *f, const char *login, const char *user, const char *client,
                       const char *sender)
{
    rg_request req = { .stage = RG_STAGE_MAIL, .msg_id = "m1", .queue_id = "",
                       .sasl_username = login, .local_user = user, .client_addr = client,
                       .sender = sender };
    return fx_check(f, &req);
}

static void expect(rg_verdict v, rg_action action, const char *account, const char *reason)
{
    if (v.action != action || strcmp(v.account, account) != 0 || strcmp(v.reason, reason) != 0)
        fail_msg("got action %d account '%s' reason '%s' (%s), want %d '%s' '%s'", v.action,
                 v.account, v.reason, v.text, action, account, reason);
}

/* The lookups identify as the whole set would: login (any case, the name
 * counts), unix user, "default" for an unknown login, client networks with
 * the longest prefix, and no account for a client of none. */
static void test_identify_like_full(void **state)
{
    fixture *f = *state;
    expect(mail(f, "alice@relay.test", NULL, "198.51.100.1", "a@example.com"), RG_ACCEPT, "alice", "ok");
    expect(mail(f, "ALICE.two", NULL, "198.51.100.1", "a@example.com"), RG_ACCEPT, "alice", "ok");
    expect(mail(f, "alice", NULL, "198.51.100.1", "a@example.com"), RG_ACCEPT, "alice", "ok");
    expect(mail(f, "alice@relay.test", NULL, "198.51.100.1", "a@www.test"), RG_REJECT, "alice",
           "sender_domain");
    expect(mail(f, "nobody@relay.test", NULL, "198.51.100.1", "a@default.test"), RG_ACCEPT,
           "default", "ok");
    expect(mail(f, NULL, "www-data", "", "a@www.test"), RG_ACCEPT, "www", "ok");
    expect(mail(f, NULL, "other-user", "", "a@default.test"), RG_ACCEPT, "default", "ok");
    expect(mail(f, NULL, NULL, "192.0.2.9", "a@net.test"), RG_ACCEPT, "net", "ok");
    expect(mail(f, NULL, NULL, "192.0.2.200", "a@net2.test"), RG_ACCEPT, "net2", "ok");
    expect(mail(f, NULL, NULL, "198.51.100.1", "a@net.test"), RG_DUNNO, "", "no_account");
    /* back to a login after a client lookup: looked up again, not confused */
    expect(mail(f, "alice@relay.test", NULL, "192.0.2.9", "a@example.com"), RG_ACCEPT, "alice", "ok");
}

/* Without "default", an unknown login is refused as with every account read. */
static void test_unknown_without_default(void **state)
{
    fixture *f = *state;
    fx_redis_ok(f, "SREM %s default", RG_KEY_ACCOUNTS);
    fx_redis_ok(f, "INCR %s", RG_KEY_ACCOUNT_GEN);
    expect(mail(f, "nobody@relay.test", NULL, "198.51.100.1", "a@default.test"), RG_REJECT, "",
           "unknown_account");
}

/* A changed account is seen: the reply of the decision after the change
 * carries the new generation, and the next decision looks up again. */
static void test_generation(void **state)
{
    fixture *f = *state;
    expect(mail(f, "alice@relay.test", NULL, "198.51.100.1", "a@example.com"), RG_ACCEPT, "alice", "ok");
    put_accounts(f, "account alice {\n  logins = alice@relay.test\n  domains = other.test\n}\n");
    (void)mail(f, "alice@relay.test", NULL, "198.51.100.1", "a@example.com");
    expect(mail(f, "alice@relay.test", NULL, "198.51.100.1", "a@example.com"), RG_REJECT, "alice",
           "sender_domain");
    /* a login moved to another account */
    put_accounts(f, "account bob {\n  logins = Alice.Two\n  domains = bob.test\n}\n"
                    "account alice {\n  logins = alice@relay.test\n  domains = other.test\n}\n");
    (void)mail(f, "alice.two", NULL, "198.51.100.1", "a@bob.test");
    expect(mail(f, "alice.two", NULL, "198.51.100.1", "a@bob.test"), RG_ACCEPT, "bob", "ok");
}

/* rg_engine_with_account finds an account by name (the DKIM calls). */
static void name_cb(void *arg, const rg_account *a)
{
    *(const char **)arg = a ? a->name : "(none)";
}

static void test_by_name(void **state)
{
    fixture *f = *state;
    const char *got = NULL;
    rg_engine_with_account(f->e, "www", name_cb, &got);
    assert_string_equal(got, "www");
    rg_engine_with_account(f->e, "nosuch", name_cb, &got);
    assert_string_equal(got, "(none)");
}

/* Redis gone: a store-error verdict, never a decision on the accounts of
 * an earlier lookup. */
static void test_store_down(void **state)
{
    fixture *f = *state;
    char err[512];
    expect(mail(f, "alice@relay.test", NULL, "198.51.100.1", "a@example.com"), RG_ACCEPT, "alice", "ok");
    /* a second engine on a store that cannot connect */
    rg_config *cfg = rg_config_new_default();
    assert_int_equal(rg_store_url_parse("redis://127.0.0.1:1/0", &cfg->store, err, sizeof err), 0);
    cfg->store_timeout_ms = 200;
    rg_store *st = rg_store_redis_sync(cfg);
    rg_engine *e = rg_engine_new_lazy(cfg, st, rg_clock_system(), NULL, err, sizeof err);
    assert_non_null(e);
    rg_request req = { .stage = RG_STAGE_MAIL, .msg_id = "m1", .queue_id = "",
                       .sasl_username = "alice@relay.test", .client_addr = "198.51.100.1",
                       .sender = "a@example.com" };
    fixture g = { .e = e };
    rg_verdict v = fx_check(&g, &req);
    assert_int_equal(v.action, RG_TEMPFAIL);
    assert_string_equal(v.reason, "store_error");
    st->free(st);
    rg_engine_free(e);
    rg_config_free(cfg);
}

/* The script's SHA-1, computed at build time, is the one Redis keys it
 * by (else every EVALSHA would be a NOSCRIPT and an EVAL of the source). */
static void test_script_sha1(void **state)
{
    fixture *f = *state;
    unsigned char md[SHA_DIGEST_LENGTH];
    char hex[41];
    SHA1((const unsigned char *)rg_decide_lua, strlen(rg_decide_lua), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    assert_string_equal(rg_decide_lua_sha1, hex);
    redisReply *rep = redisCommand(f->r, "SCRIPT LOAD %s", rg_decide_lua);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, rg_decide_lua_sha1);
    freeReplyObject(rep);
    /* the blocking store's account scripts run by EVALSHA too */
    rep = redisCommand(f->r, "SCRIPT LOAD %s", rg_accounts_lua);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, rg_accounts_lua_sha1);
    freeReplyObject(rep);
    rep = redisCommand(f->r, "SCRIPT LOAD %s", rg_lookup_lua);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, rg_lookup_lua_sha1);
    freeReplyObject(rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identify_like_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_without_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_sha1, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
