/*
 * test_verp_eom.c - the managed return path at end of message (engine.c,
 * verp.c), against a real Redis (started by verp-engine.sh, port in
 * $REDIS_PORT): an accepted message of a managed account gets
 * bounces+TOKEN@DOMAIN and its record rg:v:ID (account, sender, every
 * recipient, TTL token_ttl) in the same round trip as the decision; a
 * refused message, an unmanaged account, an adapter that cannot change the
 * sender, the null sender get none; a store error, or a record that cannot
 * be written while the script runs, follows on_store_error and never
 * yields a return path.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "account.h"
#include "clock.h"
#include "config.h"
#include "engine.h"
#include "fixture.h"
#include "keys.h"
#include "store.h"
#include "verp.h"

#define NOW_MS 1795000000000ull         /* 2026-11-18 */

static const char *accounts_text =
    "account shop {\n"                  /* managed by the bounce block's default */
    "  logins = shop\n"
    "  domains = shop.test, Example.COM\n"
    "}\n"
    "account own {\n"                   /* its own bounces = managed */
    "  logins = own\n"
    "  domains = own.test\n"
    "  bounces = managed\n"
    "}\n"
    "account plain {\n"                 /* opted out */
    "  logins = plain\n"
    "  domains = plain.test\n"
    "  bounces = off\n"
    "}\n"
    "account small {\n"
    "  logins = small\n"
    "  domains = small.test\n"
    "  max_size = 100\n"
    "}\n"
    "account once {\n"
    "  logins = once\n"
    "  domains = once.test\n"
    "  limit = quota 1/1d\n"
    "}\n";

static int seq;

/* HGET into out ("" when absent). */
static void redis_hget(redisContext *r, const char *key, const char *field, char *out, size_t len)
{
    redisReply *rep = redisCommand(r, "HGET %s %s", key, field);
    assert_non_null(rep);
    snprintf(out, len, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
}

/* A config with a bounce block: domain, managed default, store URL. */
static rg_config *load_conf(const char *store_url, const char *domain, const char *managed,
                            const char *on_error)
{
    char path[] = "/tmp/rg-verp-eom-XXXXXX", err[512];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "store = %s\nstore_timeout = 1s\nnode = t1\non_store_error = %s\nlog = stderr\n"
               "log_level = error\n"
               "bounce {\n  domain = %s\n  bounces = %s\n"
               "  key = k1 0123456789abcdef0123456789abcdef\n  token_ttl = 3d\n}\n",
            store_url, on_error, domain, managed);
    fclose(f);
    rg_config *c = rg_config_load(path, err, sizeof err);
    unlink(path);
    if (c == NULL)
        fail_msg("%s", err);
    return c;
}

static fixture *make(const char *store_url, const char *domain, const char *managed,
                     const char *on_error)
{
    return fx_new(load_conf(store_url, domain, managed, on_error), NOW_MS, accounts_text);
}

static char url[64];

static int setup(void **state)
{
    fixture *f = make(url, "bounce.test", "managed", "tempfail");
    fx_redis_ok(f, "FLUSHALL");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* RCPT for each recipient, then EOM with them (when the RCPTs pass). */
static rg_verdict send_msg(fixture *f, const char *login, const char *sender,
                           const char *const *rcpts, unsigned n, bool chgfrom, uint64_t size)
{
    char id[32], qid[32];
    snprintf(id, sizeof id, "m%d", ++seq);
    snprintf(qid, sizeof qid, "Q%d", seq);
    rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = id, .queue_id = qid,
                       .sasl_username = login, .client_addr = "192.0.2.10", .sender = sender };
    for (unsigned i = 0; i < n; i++) {
        req.recipient = rcpts[i];
        rg_verdict v = fx_check(f, &req);
        if (v.action != RG_ACCEPT)
            return v;
        assert_string_equal(v.return_path, "");         /* only at end of message */
    }
    req.stage = RG_STAGE_EOM;
    req.recipient = NULL;
    req.recipient_count = n;
    req.recipients = rcpts;
    req.n_recipients = n;
    req.can_change_sender = chgfrom;
    req.size = size;
    return fx_check(f, &req);
}

static long long verp_records(fixture *f)
{
    redisReply *rep = redisCommand(f->r, "KEYS %s*", RG_KEY_VERP);
    assert_non_null(rep);
    long long n = (long long)rep->elements;
    freeReplyObject(rep);
    return n;
}

/* The token of a return path, verified; its record key into key. */
static void token_of(fixture *f, const char *rp, const char *domain, char *key, size_t len)
{
    char want[128], tok[RG_VERP_TOKEN_MAX + 16];
    rg_verp_purpose p;
    rg_verp_token t;
    snprintf(want, sizeof want, "@%s", domain);
    assert_int_equal(strncmp(rp, "bounces+k1-", 11), 0);
    assert_non_null(strstr(rp, want));
    assert_int_equal(strlen(strstr(rp, want)), strlen(want));
    assert_int_equal(rg_verp_split_address(&f->cfg->bounce, rp, &p, tok, sizeof tok), 1);
    assert_int_equal(p, RG_VERP_BOUNCES);
    assert_int_equal(rg_verp_verify(&f->cfg->bounce, RG_VERP_BOUNCES, tok,
                                    (int64_t)(NOW_MS / 1000), &t), RG_VERP_OK);
    snprintf(key, len, "%s%s", RG_KEY_VERP, t.id_text);
}

static void test_minted_with_record(void **state)
{
    fixture *f = *state;
    const char *rcpts[] = { "<Alice@Example.NET>", "bob@example.org", "carol@example.net" };
    rg_verdict v = send_msg(f, "shop", "billing@shop.test", rcpts, 3, true, 1000);
    assert_int_equal(v.action, RG_ACCEPT);
    char key[64], val[512];
    token_of(f, v.return_path, "bounce.test", key, sizeof key);
    redis_hget(f->r, key, "a", val, sizeof val);
    assert_string_equal(val, "shop");
    redis_hget(f->r, key, "s", val, sizeof val);
    assert_string_equal(val, "billing@shop.test");
    redis_hget(f->r, key, "r", val, sizeof val);     /* every recipient, normalised */
    assert_string_equal(val, "alice@example.net\nbob@example.org\ncarol@example.net");
    redis_hget(f->r, key, "t", val, sizeof val);
    assert_int_equal(strtoll(val, NULL, 10), (long long)(NOW_MS / 1000));
    long long ttl = fx_redis_int(f, "PTTL %s", key);
    assert_true(ttl > 3 * 86400000LL - 60000 && ttl <= 3 * 86400000LL);
    assert_int_equal(verp_records(f), 1);
    /* charged like any message: the return path changes nothing else */
    assert_string_equal(v.reason, "ok");

    /* each message its own token */
    rg_verdict w = send_msg(f, "own", "news@own.test", rcpts, 1, true, 1000);
    assert_int_equal(w.action, RG_ACCEPT);
    assert_string_not_equal(w.return_path, "");
    assert_string_not_equal(w.return_path, v.return_path);
    assert_int_equal(verp_records(f), 2);
}

static void test_not_minted(void **state)
{
    fixture *f = *state;
    const char *rcpts[] = { "x@example.net" };
    /* bounces = off */
    rg_verdict v = send_msg(f, "plain", "a@plain.test", rcpts, 1, true, 1000);
    assert_int_equal(v.action, RG_ACCEPT);
    assert_string_equal(v.return_path, "");
    /* an adapter that cannot change the envelope sender (relayguard-policyd) */
    v = send_msg(f, "shop", "a@shop.test", rcpts, 1, false, 1000);
    assert_int_equal(v.action, RG_ACCEPT);
    assert_string_equal(v.return_path, "");
    /* no recipient list */
    v = send_msg(f, "shop", "a@shop.test", rcpts, 0, true, 1000);
    assert_string_equal(v.return_path, "");
    /* refused at end of message (size): no token */
    v = send_msg(f, "small", "a@small.test", rcpts, 1, true, 5000);
    assert_int_equal(v.action, RG_REJECT);
    assert_int_equal(v.code, 552);
    assert_string_equal(v.return_path, "");
    /* the sender is already one of our return paths: kept */
    const char *ours = "bounces+k1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@bounce.test";
    rg_request req = { .stage = RG_STAGE_EOM, .msg_id = "x1", .queue_id = "QX1",
                       .sasl_username = "shop", .client_addr = "192.0.2.10", .sender = ours,
                       .recipients = rcpts, .n_recipients = 1, .recipient_count = 1,
                       .can_change_sender = true, .size = 10 };
    assert_string_equal(fx_check(f, &req).return_path, "");
    assert_int_equal(verp_records(f), 0);

    /* refused by the script at end of message (quota used, no reservation):
     * accepted first, then refused, and the refusal carries no return path */
    rg_request eom = { .stage = RG_STAGE_EOM, .msg_id = "q1", .queue_id = "QQ1",
                       .sasl_username = "once", .client_addr = "192.0.2.10",
                       .sender = "a@once.test", .recipients = rcpts, .n_recipients = 1,
                       .recipient_count = 1, .can_change_sender = true, .size = 10 };
    v = fx_check(f, &eom);
    assert_int_equal(v.action, RG_ACCEPT);
    assert_string_not_equal(v.return_path, "");
    eom.msg_id = "q2";
    eom.queue_id = "QQ2";
    v = fx_check(f, &eom);
    assert_int_equal(v.action, RG_TEMPFAIL);
    assert_string_equal(v.reason, "quota");
    assert_string_equal(v.return_path, "");
}

static void test_default_off(void **state)
{
    (void)state;
    fixture *f = make(url, "bounce.test", "off", "tempfail");
    const char *rcpts[] = { "x@example.net" };
    rg_verdict v = send_msg(f, "shop", "a@shop.test", rcpts, 1, true, 1000);
    assert_int_equal(v.action, RG_ACCEPT);
    assert_string_equal(v.return_path, "");          /* the block's default: off */
    v = send_msg(f, "own", "a@own.test", rcpts, 1, true, 1000);
    assert_string_not_equal(v.return_path, "");      /* the account's own: managed */
    fx_free(f);
}

static void test_template_domain(void **state)
{
    (void)state;
    fixture *f = make(url, "bounces.%d", "managed", "tempfail");
    const char *rcpts[] = { "x@example.net" };
    rg_verdict v = send_msg(f, "shop", "Billing@Example.COM", rcpts, 1, true, 1000);
    assert_int_equal(v.action, RG_ACCEPT);
    char key[64], val[256];
    token_of(f, v.return_path, "bounces.example.com", key, sizeof key);
    redis_hget(f->r, key, "s", val, sizeof val);
    assert_string_equal(val, "billing@example.com");
    v = send_msg(f, "shop", "a@shop.test", rcpts, 1, true, 1000);
    token_of(f, v.return_path, "bounces.shop.test", key, sizeof key);
    fx_free(f);
}

static void test_store_error(void **state)
{
    (void)state;
    const char *rcpts[] = { "x@example.net" };
    /* Redis down: on_store_error decides, never a return path */
    fixture *f = make("redis://127.0.0.1:1/0", "bounce.test", "managed", "tempfail");
    rg_verdict v = send_msg(f, "shop", "a@shop.test", rcpts, 1, true, 1000);
    assert_int_equal(v.action, RG_TEMPFAIL);
    assert_string_equal(v.reason, "store_error");
    assert_string_equal(v.return_path, "");
    fx_free(f);
    f = make("redis://127.0.0.1:1/0", "bounce.test", "managed", "accept");
    rg_request eom = { .stage = RG_STAGE_EOM, .msg_id = "d1", .queue_id = "QD1",
                       .sasl_username = "shop", .client_addr = "192.0.2.10",
                       .sender = "a@shop.test", .recipients = rcpts, .n_recipients = 1,
                       .recipient_count = 1, .can_change_sender = true, .size = 10 };
    v = fx_check(f, &eom);
    assert_int_equal(v.action, RG_ACCEPT);
    assert_string_equal(v.reason, "store_error");
    assert_string_equal(v.return_path, "");
    fx_free(f);
}

/* The script runs but the record cannot be written (a Redis user without
 * HSET): a store error, and no return path without its record. */
static void test_record_not_written(void **state)
{
    fixture *f = *state;
    fx_redis_ok(f, "ACL SETUSER nohset on >pw ~* &* +@all -hset");
    char u[96];
    snprintf(u, sizeof u, "redis://nohset:pw@127.0.0.1:%s/0", getenv("REDIS_PORT"));
    const char *rcpts[] = { "x@example.net" };
    fixture *g = make(u, "bounce.test", "managed", "tempfail");
    rg_verdict v = send_msg(g, "shop", "a@shop.test", rcpts, 1, true, 1000);
    assert_int_equal(v.action, RG_TEMPFAIL);
    assert_string_equal(v.reason, "store_error");
    assert_string_equal(v.return_path, "");
    fx_free(g);
    g = make(u, "bounce.test", "managed", "accept");
    v = send_msg(g, "shop", "a@shop.test", rcpts, 1, true, 1000);
    assert_int_equal(v.action, RG_ACCEPT);
    assert_string_equal(v.reason, "store_error");
    assert_string_equal(v.return_path, "");
    fx_free(g);
    assert_int_equal(verp_records(f), 0);
    /* the same user without a managed account decides normally */
    g = make(u, "bounce.test", "off", "tempfail");
    v = send_msg(g, "shop", "a@shop.test", rcpts, 1, true, 1000);
    assert_int_equal(v.action, RG_ACCEPT);
    assert_string_equal(v.reason, "ok");
    fx_free(g);
    fx_redis_ok(f, "ACL DELUSER nohset");
}

int main(void)
{
    if (getenv("REDIS_PORT") == NULL) {
        fprintf(stderr, "REDIS_PORT not set: run through t/bounce/verp-engine.sh\n");
        return 1;
    }
    fx_redis_url(url, sizeof url);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_minted_with_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_minted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_not_written, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
