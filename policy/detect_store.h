/*
 * detect_store.h - the Redis side of detection (keys.h rg:dt:ACCOUNT and the
 * detection events), shared by relayguard-detectd and `relayguard account
 * resume`.  Blocking, on an rg_admin connection.
 *
 * States are read and written in batches: one pipelined round trip reads
 * the states of every account of a batch of events, one EVAL writes them
 * back, each only if its version ("v") is still the one that was read - so
 * several detectors on several nodes never overwrite each other's work; a
 * detector whose write lost reads that account again and feeds its events
 * once more.
 */
#ifndef RG_DETECT_STORE_H
#define RG_DETECT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin.h"
#include "config.h"
#include "detect.h"

/* The states of n accounts and their versions (0 for a new state).  0 / -1. */
int rg_detect_store_load(rg_admin *ad, char *const *accounts, size_t n, rg_detect_state *states,
                         uint64_t *versions);

/*
 * Write the states of n accounts, each only when its stored version is
 * still versions[i]; conflict[i] tells the ones that changed meanwhile (not
 * written).  The baseline is written only where with_baseline[i] (NULL: for
 * every account).  With before (the states as read, of versions[i]; NULL:
 * none), only the fields whose text changed are sent: most of a state stays
 * the same from one round to the next.  0 / -1.
 */
int rg_detect_store_save(rg_admin *ad, char *const *accounts, size_t n,
                         const rg_detect_state *states, const rg_detect_state *before,
                         const bool *with_baseline, const uint64_t *versions, bool *conflict);

/* The account's own detect_action, -1 for the detect block's, -2 when the
 * account is gone, -3 on a store error. */
int rg_detect_store_account_action(rg_admin *ad, const char *account);

/* Suspend (as `relayguard account set NAME --suspend`).  1 done, 0 already, -2 gone, -1. */
int rg_detect_store_suspend(rg_admin *ad, const char *account);

/* Throttle: the account gets limit l until until_s (Unix seconds).  1 / 0 / -2 / -1. */
int rg_detect_store_throttle(rg_admin *ad, const char *account, const rg_limit *l, int64_t until_s);

/*
 * The detection event of a hit (keys.h), with done the action actually
 * taken (alert when nothing was done).  0 / -1.
 */
int rg_detect_store_event(rg_admin *ad, const rg_config *cfg, const char *account,
                          const rg_detect_hit *h, rg_detect_action done);

/*
 * `relayguard account resume NAME`: lift the suspension and any throttle,
 * forget the logins of the hour and start the cool-down.  1 done, -2 no
 * such account, -1 store error.
 */
int rg_detect_store_resume(rg_admin *ad, const rg_config *cfg, const char *account,
                           uint64_t now_ms);

/* "rg:dt:ACCOUNT" into buf.  0, or -1 when it does not fit. */
int rg_detect_key(const char *account, char *buf, size_t len);

#endif
