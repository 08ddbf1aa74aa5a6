/*
 * fixture.h - the engine test fixture shared by the cmocka programs that
 * run the engine against a real Redis (t/engine/test_engine.c,
 * t/engine/test_lazy.c, t/bounce/test_verp_eom.c): a configuration, a
 * synchronous Redis store, a test clock, an engine with a set of accounts,
 * and a direct hiredis connection to the same Redis ($REDIS_PORT) for
 * checking what the engine wrote.
 */
#ifndef RG_T_ENGINE_FIXTURE_H
#define RG_T_ENGINE_FIXTURE_H

#include <stdint.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "config.h"
#include "engine.h"
#include "store.h"

typedef struct fixture {
    rg_config *cfg;
    rg_store *store;
    rg_test_clock clock;
    rg_engine *e;
    redisContext *r;
} fixture;

/* A fixture on cfg (which it takes and frees): the clock at now_ms, a
 * synchronous store, the connection to $REDIS_PORT, and an engine with the
 * accounts in accounts_text (config syntax).  Fails the test on any error;
 * free with fx_free(). */
fixture *fx_new(rg_config *cfg, uint64_t now_ms, const char *accounts_text);

/* The connection only (f->r): for fixtures that build their own engine. */
void fx_connect(fixture *f);

/* Frees the store first (it answers pending calls), then the engine, the
 * configuration, the connection and f itself.  Any member may be NULL. */
void fx_free(fixture *f);

/* One engine check on the synchronous store (which answers at once): the
 * verdict; fails the test if the callback did not run. */
rg_verdict fx_check(fixture *f, rg_request *req);

/* A Redis command that must not fail. */
void fx_redis_ok(fixture *f, const char *fmt, ...);

/* A Redis command's integer (or number string) reply; 0 for nil, -1 for
 * any other reply. */
long long fx_redis_int(fixture *f, const char *fmt, ...);

/* "redis://127.0.0.1:$REDIS_PORT/0" into url. */
void fx_redis_url(char *url, size_t len);

#endif
