/*
 * metrics.h - what a relayguard daemon counts, and the Prometheus endpoint
 * that shows it.
 *
 * One set of counters per process, safe from any thread (the milter calls
 * from its worker threads, the endpoint reads from its own).  The engine
 * counts every verdict it hands out (rg_metrics_decision, from one place:
 * engine.c finish), the Redis store its errors and reconnects, the DKIM
 * signer its signatures.  Counting costs a mutex and a few adds; a process
 * that never starts the endpoint pays nothing else.
 *
 * Exposed as Prometheus text format 0.0.4 on GET /metrics:
 *   relayguard_decisions_total{verdict,reason}          counter
 *   relayguard_account_decisions_total{account,verdict} counter; at most
 *        metrics_accounts distinct accounts, the rest under account="_other"
 *   relayguard_decision_seconds                         histogram, from the
 *        adapter's call to the verdict (includes the Redis round trip)
 *   relayguard_store_errors_total, relayguard_store_reconnects_total
 *   relayguard_dkim_signatures_total{algorithm}
 *   relayguard_start_time_seconds, relayguard_build_info{version,daemon}
 */
#ifndef RG_METRICS_H
#define RG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "rg.h"

/* Name the process ("relayguard-policyd") and bound the account label
 * (0: the default, 100).  Call once at start; counting works without it. */
void rg_metrics_init(const char *daemon, unsigned max_accounts);

/* Count one verdict that took seconds from request to verdict. */
void rg_metrics_decision(const rg_verdict *v, double seconds);
void rg_metrics_store_error(void);
void rg_metrics_store_reconnect(void);
/* alg: "rsa-sha256" or "ed25519-sha256" */
void rg_metrics_dkim_signature(const char *alg);

/* The text exposition, malloc'd, NUL-terminated; *len without the NUL.
 * Never NULL. */
char *rg_metrics_render(size_t *len);

/* Seconds on a monotonic clock, for latencies. */
double rg_metrics_now(void);

typedef struct rg_metrics_server rg_metrics_server;

/*
 * Serve GET /metrics on fd, a listening socket opened with rg_listen_open
 * (so that it is bound before the daemon drops root), from a thread of
 * libmicrohttpd's own.  Takes fd.  NULL with a message in err.
 */
rg_metrics_server *rg_metrics_serve(int fd, char *err, size_t errlen);

/* Bind the endpoint's listening socket, spec in Postfix notation
 * (inet:HOST:PORT), before the daemon forks and drops root.  The fd, or -1
 * with a message in err. */
int rg_metrics_bind(const char *spec, char *err, size_t errlen);
void rg_metrics_server_stop(rg_metrics_server *s);    /* NULL is fine */

#endif
