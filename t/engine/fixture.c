/*
 * fixture.c - the engine test fixture (fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "account.h"
#include "fixture.h"

void fx_connect(fixture *f)
{
    const char *port = getenv("REDIS_PORT");
    if (port == NULL)
        fail_msg("REDIS_PORT not set: run the test through its .sh script");
    f->r = redisConnect("127.0.0.1", atoi(port));
    assert_non_null(f->r);
    assert_int_equal(f->r->err, 0);
}

void fx_redis_url(char *url, size_t len)
{
    const char *port = getenv("REDIS_PORT");
    if (port == NULL)
        fail_msg("REDIS_PORT not set: run the test through its .sh script");
    snprintf(url, len, "redis://127.0.0.1:%s/0", port);
}

fixture *fx_new(rg_config *cfg, uint64_t now_ms, const char *accounts_text)
{
    fixture *f = calloc(1, sizeof *f);
    char err[512];
    assert_non_null(f);
    f->cfg = cfg;
    rg_test_clock_init(&f->clock, now_ms);
    f->store = rg_store_redis_sync(f->cfg);
    fx_connect(f);
    f->e = rg_engine_new(f->cfg, f->store, &f->clock.clock, NULL, err, sizeof err);
    assert_non_null(f->e);
    rg_conf *c = rg_conf_parse_string("accounts", accounts_text, err, sizeof err);
    if (c == NULL)
        fail_msg("%s", err);
    rg_accounts *set = rg_accounts_new();
    for (size_t i = 1; i < c->nblocks; i++) {
        rg_account *a = rg_account_from_block(c, &c->blocks[i], err, sizeof err);
        if (a == NULL)
            fail_msg("%s", err);
        assert_int_equal(rg_accounts_add(set, a, err, sizeof err), 0);
    }
    rg_conf_free(c);
    rg_engine_set_accounts(f->e, set, 0);
    return f;
}

void fx_free(fixture *f)
{
    if (f == NULL)
        return;
    if (f->store != NULL)
        f->store->free(f->store);   /* store first: it answers pending calls */
    rg_engine_free(f->e);
    rg_config_free(f->cfg);
    if (f->r != NULL)
        redisFree(f->r);
    free(f);
}

static void capture(void *arg, const rg_verdict *v)
{
    *(rg_verdict *)arg = *v;
}

rg_verdict fx_check(fixture *f, rg_request *req)
{
    rg_verdict v;
    memset(&v, 0xff, sizeof v);
    v.action = (rg_action)99;
    rg_engine_check(f->e, req, capture, &v);    /* sync store: answers at once */
    assert_int_not_equal(v.action, 99);
    return v;
}

void fx_redis_ok(fixture *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(f->r, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    if (rep->type == REDIS_REPLY_ERROR)
        fail_msg("Redis: %s", rep->str);
    freeReplyObject(rep);
}

long long fx_redis_int(fixture *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(f->r, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    long long v = -1;
    if (rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    else if (rep->type == REDIS_REPLY_STRING)
        v = strtoll(rep->str, NULL, 10);
    else if (rep->type == REDIS_REPLY_NIL)
        v = 0;
    freeReplyObject(rep);
    return v;
}
