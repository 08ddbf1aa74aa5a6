/*
 * engine.h - the decision engine: the only place relayguard decides.
 *
 * One rg_engine per process (or per reload).  Adapters call
 * rg_engine_check() at each stage; the engine identifies the account, applies
 * the static checks (sender domain, header From, networks, countries, size)
 * in memory, then runs one atomic Redis script that checks suspension,
 * suppression and limits, reserves (RCPT) or charges (EOM), writes the event
 * and the stats counters.  Every decision is logged in one line.
 *
 * Check once, charge once: at RCPT the script reserves capacity in every
 * bucket the message touches (rg:h:* holds keyed by the message); at EOM it
 * releases the holds and charges the real count once, marks the message
 * charged (also under its queue id, so a second adapter on the same message
 * does not charge again).  A refused or aborted message is never charged:
 * its holds expire after reservation_ttl.
 */
#ifndef RG_ENGINE_H
#define RG_ENGINE_H

#include "account.h"
#include "clock.h"
#include "config.h"
#include "geoip.h"
#include "rg.h"
#include "store.h"

typedef struct rg_engine rg_engine;

/* The verdict; v is valid only during the call. */
typedef void rg_verdict_cb(void *arg, const rg_verdict *v);

/*
 * A new engine.  Borrows cfg, store, clock and geo (they must outlive it;
 * geo may be NULL when no account lists countries).  Starts loading the
 * accounts from the store.  NULL with a message in err.
 */
rg_engine *rg_engine_new(const rg_config *cfg, rg_store *store, rg_clock *clock,
                         rg_geoip *geo, char *err, size_t errlen);

/*
 * An engine that reads only the accounts each request needs (the store's
 * load_some: the account of a login or unix user and "default", or the
 * accounts with client networks), for a process that lives for one
 * connection or one command: an Exim connection without rg_preload, the
 * CLI.  Reading 2,000 accounts costs such a process about 30 ms; one
 * account, one small round trip.  The last lookup is kept while requests
 * ask for the same one; a reply that shows a newer accounts generation
 * makes the next request look up again, as the full engine reloads.  A
 * request with only a local token reads every account from then on.  Needs
 * a blocking store; with a store without load_some it is rg_engine_new.
 */
rg_engine *rg_engine_new_lazy(const rg_config *cfg, rg_store *store, rg_clock *clock,
                              rg_geoip *geo, char *err, size_t errlen);
/*
 * Turn an engine that read every account into a lazy one (as above),
 * keeping what it holds until a reply shows a newer generation: for a
 * process forked from one that loaded them all (the Exim daemon's
 * rg_preload), which then never reads them all again itself.
 */
void rg_engine_go_lazy(rg_engine *e);
/* The accounts generation the engine holds (-1 before the first load). */
long long rg_engine_generation(const rg_engine *e);
void rg_engine_free(rg_engine *e);

/*
 * Decide.  cb is called exactly once, maybe before this returns (static
 * verdicts, blocking store), maybe later from the event loop.  Never fails:
 * a store error becomes the on_store_error verdict.
 */
void rg_engine_check(rg_engine *e, const rg_request *req, rg_verdict_cb *cb, void *arg);

/* Ask the store for the accounts again (after SIGHUP, or when the script
 * reports a newer generation; the engine does the latter by itself). */
void rg_engine_refresh_accounts(rg_engine *e);

/* Replace the account set (takes ownership); used by refresh and by tests. */
void rg_engine_set_accounts(rg_engine *e, rg_accounts *accounts, long long gen);

/* Have accounts been loaded at least once? */
int rg_engine_ready(const rg_engine *e);

/*
 * Call fn with the account named name from the current snapshot (NULL when
 * there is none), holding the snapshot until fn returns; fn must not keep
 * the pointer.  For adapters that decorate a message after the verdict
 * (the milter's header policy and DKIM signing).
 */
void rg_engine_with_account(rg_engine *e, const char *name,
                            void (*fn)(void *arg, const rg_account *a), void *arg);

/* Decisions waiting for the store (for draining on SIGTERM). */
unsigned rg_engine_pending(const rg_engine *e);

#endif
