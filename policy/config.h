/*
 * config.h - relayguard.conf, the one file every component reads (-c FILE).
 *
 *   store            = redis://[user:pass@]host:port/db | redis+unix:///path?db=N
 *   store_timeout    = 250ms          time budget of one decision (Redis round trip)
 *   on_store_error   = tempfail       tempfail (451 4.3.0) | accept (fail open, logged)
 *   node             = NAME           this MTA node in events; default: the host name
 *   geoip_db         = PATH.mmdb      needed only when an account lists countries
 *   events_max       = 100000         length cap of the events stream
 *   reservation_ttl  = 10m            how long an RCPT reservation waits for end of data
 *   log              = syslog         syslog (facility mail) | stderr
 *   log_level        = info           debug | info | warning | error
 *   limit            = SPEC           global limits (scope global, domain or ip), repeatable
 *
 *   policyd {
 *       listen          = inet:127.0.0.1:10040 | unix:/run/relayguard/policyd.sock
 *       user            = relayguard   drop to this user after binding
 *       max_connections = 10000
 *       idle_timeout    = 300s         Postfix's own default is 300s
 *       pidfile         = PATH
 *   }
 *
 *   milter {
 *       listen            = unix:/run/relayguard/milter.sock | inet:8891@127.0.0.1
 *       user              = relayguard   drop to this user after binding
 *       pidfile           = PATH
 *       store_connections = 8            Redis connections shared by the milter threads
 *       header_secret     = TEXT         key of "account_header = NAME hmac" (account.h)
 *       timeout           = 300s         MTA connection timeout (smfi_settimeout)
 *   }
 *
 *   dkim {
 *       key          = DOMAIN SELECTOR PATH   one line per key; the algorithm
 *                                             (rsa-sha256, ed25519-sha256) comes
 *                                             from the key; two keys of a domain
 *                                             give two signatures
 *       sign_headers = from, to, subject, ...  headers signed when present
 *       oversign     = from                   signed once more than present
 *   }
 *
 * Unknown keys and bad values are errors that name the file and line.
 */
#ifndef RG_CONFIG_H
#define RG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limit.h"

#define RG_DEFAULT_CONFIG "/etc/relayguard/relayguard.conf"

typedef enum { RG_ON_ERROR_TEMPFAIL = 0, RG_ON_ERROR_ACCEPT } rg_on_error;
typedef enum { RG_LOG_SYSLOG = 0, RG_LOG_STDERR } rg_log_target;

typedef struct rg_store_url {
    bool unix_socket;
    char host[256];        /* host, or socket path when unix_socket */
    int port;
    int db;
    char user[128];
    char password[256];
} rg_store_url;

/* One "key = DOMAIN SELECTOR PATH" line of the dkim block. */
typedef struct rg_dkim_key_conf {
    char *domain;               /* lower case */
    char *selector;
    char *path;
    int line;                   /* in cfg->file, for messages */
} rg_dkim_key_conf;

typedef struct rg_config {
    char *file;
    rg_store_url store;
    char store_text[512];       /* as written, password masked, for messages */
    uint64_t store_timeout_ms;
    rg_on_error on_store_error;
    char node[128];
    char *geoip_db;             /* NULL if not set */
    uint64_t events_max;
    uint64_t reservation_ttl_ms;
    rg_log_target log;
    int log_level;              /* syslog priority: LOG_DEBUG .. LOG_ERR */
    rg_limit *limits;           /* global limits */
    size_t n_limits;

    struct {
        char *listen;           /* default inet:127.0.0.1:10040 */
        char *user;             /* NULL: do not change user */
        unsigned max_connections;
        uint64_t idle_timeout_ms;
        char *pidfile;
    } policyd;

    struct {
        char *listen;           /* default unix:/run/relayguard/milter.sock */
        char *user;
        char *pidfile;
        unsigned store_connections;     /* default 8 */
        char *header_secret;    /* NULL: "hmac" account headers are refused at load */
        uint64_t timeout_ms;    /* default 300 s */
    } milter;

    struct {
        rg_dkim_key_conf *keys;
        size_t n_keys;
        char **sign_headers;    /* NULL-terminated, lower case, never NULL */
        char **oversign;        /* NULL-terminated, lower case, never NULL */
    } dkim;
} rg_config;

/* Headers signed by default (when present), NULL-terminated. */
extern const char *const rg_dkim_default_sign_headers[];

/* Defaults for everything (no file read). Never NULL. */
rg_config *rg_config_new_default(void);

/* Read and check a file.  NULL with "FILE:LINE: message" in err. */
rg_config *rg_config_load(const char *path, char *err, size_t errlen);

void rg_config_free(rg_config *c);

/* Parse a store URL.  0, or -1 with a message. */
int rg_store_url_parse(const char *text, rg_store_url *out, char *err, size_t errlen);

#endif
