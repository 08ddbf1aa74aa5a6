/*
 * filter.h - relayguard-milter's callbacks and the configuration
 * generation they use.
 *
 * A generation is everything a reload replaces at once: the configuration,
 * the Redis connection pool, the engine and the DKIM keys.  A message holds
 * the generation it started with until it ends, so SIGHUP never pulls a key
 * or an account from under a message in flight.
 */
#ifndef RG_MILTER_FILTER_H
#define RG_MILTER_FILTER_H

#include "proto.h"

#include "config.h"

/* The filter: callbacks for proto.c. */
extern const rgm_desc rg_milter_desc;

/* Build a generation from cfg (taking it) and make it current.
 * 0, or -1 with err (cfg freed, the current generation stays). */
int rg_milter_gen_install(rg_config *cfg, char *err, size_t errlen);

/* Drop the current generation (at exit). */
void rg_milter_gen_shutdown(void);

#endif
