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

/*
 * A hash written in the same round trip as a decision (the managed return
 * path's record rg:v:ID, verp.h): DEL, HSET key FIELD VALUE ..., PEXPIRE
 * key ttl_ms, inside MULTI/EXEC so it never lives without its expiry.
 */
typedef struct rg_store_record {
    const char *key;
    const char *const *fields;  /* nfields FIELD, VALUE pairs: 2 * nfields strings */
    int nfields;
    uint64_t ttl_ms;
} rg_store_record;

/* Append rec's MULTI, DEL, HSET, PEXPIRE, EXEC to c's pipeline (hiredis
 * redisAppendCommandArgv): five replies to read, EXEC's the last
 * (store_redis.c; the blocking store and relayguard's admin calls). */
struct redisContext;
void rg_store_record_append(struct redisContext *c, const rg_store_record *rec);

/* Which accounts load_some reads (rg_engine_new_lazy). */
typedef enum rg_account_lookup {
    RG_LOOKUP_LOGIN,            /* the account claiming a SASL login, and "default" */
    RG_LOOKUP_LOCAL_USER,       /* the account listing a unix user, and "default" */
    RG_LOOKUP_NAME,             /* the account of that name */
    RG_LOOKUP_CLIENTS           /* every account with client_networks */
} rg_account_lookup;

/* A lookup kind's one letter: rg_lookup_lua's ARGV[1] (l, u, n, c), and
 * the engine's note of which lookup its snapshot holds. */
static inline char rg_lookup_tag(rg_account_lookup kind)
{
    return "lunc"[kind];
}

typedef struct rg_store rg_store;
struct rg_store {
    /* Run the decision script with argv (argc strings, copied before return). */
    void (*decide)(rg_store *s, int argc, const char **argv, rg_store_cb *cb, void *arg);
    /* Read every account and the generation. */
    void (*load_accounts)(rg_store *s, rg_accounts_cb *cb, void *arg);
    void (*free)(rg_store *s);
    /*
     * decide, with rec written ahead of the script in the same pipeline (one
     * round trip).  The reply is the script's; status is -1 when the record
     * was not written, whatever the script did.  NULL in a store that cannot
     * (the async one: relayguard-policyd never changes the envelope sender).
     */
    void (*decide_record)(rg_store *s, const rg_store_record *rec, int argc, const char **argv,
                          rg_store_cb *cb, void *arg);
    /*
     * Read only the accounts one kind of request needs (key: the login,
     * unix user or name; "" for RG_LOOKUP_CLIENTS), and the generation, so
     * that identifying against the (maybe empty) set gives what the whole
     * set would.  Same callback as load_accounts.  NULL in a store that
     * cannot (then read every account).
     */
    void (*load_some)(rg_store *s, rg_account_lookup kind, const char *key,
                      rg_accounts_cb *cb, void *arg);
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

/* The account scripts of the blocking store (whole table; one lookup) and
 * their SHA-1s in hex, for EVALSHA (store_redis.c). */
extern const char rg_accounts_lua[], rg_accounts_lua_sha1[];
extern const char rg_lookup_lua[], rg_lookup_lua_sha1[];

/* The Lua source of the decision script (generated from decide.lua). */
extern const char rg_decide_lua[];
/* Its SHA-1 in hex, computed when it is compiled in: a process that only
 * runs EVALSHA need not start OpenSSL for it (about 1 ms in OpenSSL 3). */
extern const char rg_decide_lua_sha1[];
/* The same script as the function library relayguard_SHA16 (FUNCTION
 * LOAD), and the name of its function, rg_decide_SHA16, for FCALL. */
extern const char rg_decide_lib[], rg_decide_fn[];

#endif
