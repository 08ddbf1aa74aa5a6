/*
 * store.h - where shared state lives, behind a small table of functions
 * (in the manner of OpenSMTPD's table backends), so the engine never sees
 * Redis and unit tests can put a fake behind it.
 *
 * The real store is Redis (store_redis.c).  It comes in two flavours with
 * one interface: asynchronous on a libevent base (relayguard-policyd's event
 * loop), and blocking with timeouts (milter threads, Exim processes, CLI).
 * Either way the result arrives through the callback; a blocking store calls
 * it before returning.
 */
#ifndef RG_STORE_H
#define RG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "account.h"
#include "config.h"

/* Outcome of the decision script (decide.lua); see docs/architecture.md. */
typedef struct rg_store_reply {
    int status;               /* 0: the script ran; -1: store error (err says why) */
    char err[256];
    long long gen;            /* accounts generation seen by the script */
    char outcome[16];         /* "ok" "suspended" "suppressed" "limit" "logged" "dup" */
    char arg[4][256];         /* outcome details, see decide.lua */
} rg_store_reply;

typedef void rg_store_cb(void *arg, const rg_store_reply *r);
/* accounts: a new set the callee owns, or NULL with err set. */
typedef void rg_accounts_cb(void *arg, rg_accounts *accounts, long long gen, const char *err);

typedef struct rg_store rg_store;
struct rg_store {
    /* Run the decision script with argv (argc strings, copied before return). */
    void (*decide)(rg_store *s, int argc, const char **argv, rg_store_cb *cb, void *arg);
    /* Read every account and the generation. */
    void (*load_accounts)(rg_store *s, rg_accounts_cb *cb, void *arg);
    void (*free)(rg_store *s);
};

struct event_base;

/* Blocking Redis store; connects lazily, reconnects with backoff.  Never NULL. */
rg_store *rg_store_redis_sync(const rg_config *cfg);
/*
 * n blocking Redis connections behind one store, for many threads (the
 * milter): a call takes a free connection, or waits for the next one that
 * frees.  n = 1 is the same as rg_store_redis_sync.  Never NULL.
 */
rg_store *rg_store_redis_pool(const rg_config *cfg, unsigned n);
/* Asynchronous Redis store on a libevent base.  Never NULL. */
rg_store *rg_store_redis_async(const rg_config *cfg, struct event_base *base);

/* The Lua source of the decision script (generated from decide.lua). */
extern const char rg_decide_lua[];

#endif
