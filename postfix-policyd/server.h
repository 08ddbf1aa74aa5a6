/*
 * server.h - relayguard-policyd's connections on one libevent loop.
 *
 * The server accepts Postfix's policy clients, reads one request at a time
 * per connection, asks the engine and writes the reply.  What it decides
 * with (config, store, GeoIP, engine) is a "generation": SIGHUP builds a new
 * one and the old one is freed once its last pending decision is answered.
 */
#ifndef RG_POLICYD_SERVER_H
#define RG_POLICYD_SERVER_H

#include <stddef.h>

#include "config.h"
#include "engine.h"

struct event_base;

/* Drain at most this long on SIGTERM before exiting anyway. */
#define RG_POLICYD_DRAIN_MS 5000

typedef struct rg_gen rg_gen;

/*
 * A generation built from cfg: the async Redis store on base, the GeoIP
 * database if cfg names one, and an engine (which starts loading the
 * accounts).  Takes cfg in every case (frees it on failure).  NULL with a
 * message in err.
 */
rg_gen *rg_gen_new(rg_config *cfg, struct event_base *base, char *err, size_t errlen);
const rg_config *rg_gen_config(const rg_gen *g);
rg_engine *rg_gen_engine(rg_gen *g);

typedef struct rg_server rg_server;

/* A server on base accepting on listen_fd; takes listen_fd, unix_path
 * (may be NULL) and gen.  Never NULL. */
rg_server *rg_server_new(struct event_base *base, int listen_fd, char *unix_path,
                         int is_inet, rg_gen *gen);

/* The generation new requests go to (borrowed). */
rg_gen *rg_server_gen(rg_server *s);

/* Wait this long for a reloaded engine's accounts. */
#define RG_POLICYD_RELOAD_MS 5000

/*
 * Switch to gen (takes it) once its engine has loaded the accounts; until
 * then the old generation keeps deciding, and if the accounts do not load
 * within RG_POLICYD_RELOAD_MS, gen is dropped and the old one stays.  An
 * old generation is freed when its last pending decision is answered.
 */
void rg_server_reload(rg_server *s, rg_gen *gen);

/*
 * Stop accepting and close idle connections; connections waiting for a
 * decision get their reply first.  Breaks the event loop when none is left,
 * or after timeout_ms.
 */
void rg_server_drain(rg_server *s, unsigned timeout_ms);

/* Close everything, free every generation, remove the unix socket. */
void rg_server_free(rg_server *s);

#endif
