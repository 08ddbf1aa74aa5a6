/*
 * whq.h - the webhook queues in Redis, shared by relayguard-webhookd and
 * `relayguard webhooks`.  Keys: policy/keys.h; the design (consumer group,
 * per-destination-and-account queues, leases, retries, dead letters):
 * docs/architecture.md, "Webhooks".
 *
 * Every change of queue state is one Lua script, so two processes never
 * see a half-made change.  Times inside the scripts come from Redis TIME:
 * the nodes' clocks do not matter.
 *
 * One rg_whq is one blocking Redis connection; not thread-safe.  Calls
 * return -1 on a store error with the reason in rg_whq_error().
 */
#ifndef RG_WHQ_H
#define RG_WHQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "config.h"

typedef struct rg_whq rg_whq;

enum rg_whq_script {
    RG_WHQ_ROUTE,       /* XACK stream entries and append them to their queues */
    RG_WHQ_CLAIM,       /* lease ready queues, return their head events */
    RG_WHQ_DONE,        /* a 2xx: drop the delivered head, release the lease */
    RG_WHQ_FAIL,        /* a failure: back off, or dead-letter after retry_for */
    RG_WHQ_RETRY,       /* dead letters back into their queues */
    RG_WHQ_LOST,        /* count stream entries trimmed before they were routed */
    RG_WHQ_ROUTER,      /* take or keep the router role */
    RG_WHQ_GROUP,       /* create the consumer group */
    RG_WHQ_ACCOUNTS,    /* every account hash, in one round trip */
    RG_WHQ_DROP,        /* delete dead letters */
    RG_WHQ_STATUS,      /* queue totals */
    RG_WHQ_NSCRIPTS
};

/*
 * Connect to cfg->store with timeouts of max(store_timeout, 2 s); AUTH and
 * SELECT as configured.  NULL with the reason in err.
 */
rg_whq *rg_whq_connect(const rg_config *cfg, char *err, size_t errlen);
/* Close and free; leaves *qp NULL.  NULL is fine. */
void rg_whq_close(rg_whq **qp);
/* The last error ("" if none). */
const char *rg_whq_error(const rg_whq *q);

/*
 * One command (lens NULL: C strings).  An error reply counts as an error.
 * The reply is the caller's (freeReplyObject); NULL on error.
 */
redisReply *rg_whq_command(rg_whq *q, int argc, const char **argv, const size_t *lens);
/* Run one of the scripts (EVALSHA, EVAL when Redis lost its script cache). */
redisReply *rg_whq_script(rg_whq *q, enum rg_whq_script s, int argc, const char **argv,
                          const size_t *lens);

/* --- dead letters (relayguard webhooks) ------------------------------------- */

typedef struct rg_wh_dead {
    const char *id;
    const char *queue, *url, *account, *error, *event;
    long attempts;
    int64_t since_ms, died_ms;
} rg_wh_dead;

/* Every dead letter, oldest first.  cb returns non-zero to stop.  Count or -1. */
typedef int rg_wh_dead_cb(void *arg, const rg_wh_dead *d);
long rg_whq_dead_list(rg_whq *q, rg_wh_dead_cb *cb, void *arg);

/* Put dead letter id (NULL: all of them) back at the end of its queue, to be
 * sent now.  Returns how many were put back (0: no such id), or -1. */
long rg_whq_dead_retry(rg_whq *q, const char *id);

/* Delete dead letter id (NULL: all of them).  Count deleted, or -1. */
long rg_whq_dead_drop(rg_whq *q, const char *id);

/* Queue totals and the counters of rg:wh:stat. */
typedef struct rg_wh_status {
    long long queues, queued, leased, waiting_retry, dead;
    long long routed, delivered, retried, died, lost;
} rg_wh_status;
int rg_whq_status(rg_whq *q, rg_wh_status *out);

/* --- signature ------------------------------------------------------------------ */

#define RG_WH_SIGNATURE_MAX 128

/*
 * The whole header line "X-Relayguard-Signature: t=TS,v1=HEX" into out
 * (RG_WH_SIGNATURE_MAX bytes): HEX is the lower-case hex HMAC-SHA256,
 * keyed with secret, of TS "." body.  0, or -1 (OpenSSL failed, out too
 * small).
 */
int rg_wh_signature(const char *secret, long ts, const char *body, size_t len, char *out,
                    size_t outlen);

/* --- events as JSON ------------------------------------------------------------ */

/*
 * One stream entry as a JSON object (a new string): "id", "type" (keys.h),
 * "time" (ISO 8601 UTC from ts), then every field; ts, nrcpt, size and a
 * detection's baseline, threshold, current, refused, total and ratio as
 * numbers when they hold one.  type gets the event's type.
 */
char *rg_wh_event_json(const char *id, char *const *keys, char *const *values, size_t n,
                       char *type, size_t typelen);

/* Append s as a JSON string literal (invalid UTF-8 becomes U+FFFD). */
typedef struct rg_buf {
    char *s;
    size_t len, cap;
} rg_buf;
void rg_buf_add(rg_buf *b, const char *s, size_t n);
void rg_buf_adds(rg_buf *b, const char *s);
void rg_buf_json_str(rg_buf *b, const char *s);

#endif
