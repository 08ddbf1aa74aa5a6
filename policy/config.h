/*
 * config.h - relayguard.conf, the one file every component reads (-c FILE).
 *
 *   store            = redis://[user:pass@]host:port/db | redis+unix:///path?db=N
 *   store_timeout    = 250ms          time budget of one decision (Redis round trip)
 *   on_store_error   = tempfail       tempfail (451 4.3.0) | accept (fail open, logged)
 *   node             = NAME           this MTA node in events; default: the host name
 *   geoip_db         = PATH.mmdb      needed only when an account lists countries
 *   events_max       = 100000         length cap of the events stream
 *   metrics_accounts = 100            accounts with a label of their own in metrics
 *   reservation_ttl  = 10m            how long an RCPT reservation waits for end of data
 *   log              = syslog         syslog (facility mail) | stderr
 *   log_level        = info           debug | info | warning | error
 *   limit            = SPEC           global limits (scope global, domain or ip), repeatable
 *   local_key        = PATH           local submission tokens (localsub.h); none by default
 *   local_submission = optional       optional | required: refuse local mail without a token
 *   local_max_age    = 1h             how old a token may be
 *   local_sendmail   = /usr/sbin/sendmail   what relayguard-sendmail runs
 *
 *   policyd {
 *       listen          = inet:127.0.0.1:10040 | unix:/run/relayguard/policyd.sock
 *       user            = relayguard   drop to this user after binding
 *       max_connections = 10000
 *       idle_timeout    = 300s         Postfix's own default is 300s
 *       pidfile         = PATH
 *       metrics         = inet:127.0.0.1:9187   Prometheus endpoint (GET /metrics); none by default
 *   }
 *
 *   milter {
 *       listen            = unix:/run/relayguard/milter.sock | inet:8891@127.0.0.1
 *       user              = relayguard   drop to this user after binding
 *       pidfile           = PATH
 *       store_connections = 8            Redis connections shared by the milter threads
 *       header_secret     = TEXT         key of "account_header = NAME hmac" (account.h)
 *       timeout           = 300s         an MTA connection idle this long is closed
 *       metrics           = inet:127.0.0.1:9188   Prometheus endpoint; none by default
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
 *   bounce {                          the bounce and complaint loop (verp.h, bounce.h)
 *       domain      = bounce.example.com   return paths are bounces+TOKEN@DOMAIN; or a
 *                                          template "bounces.%d" (%d: the sender's domain)
 *       bounces     = off                  managed | off: the default of accounts without
 *                                          their own "bounces" (account.h): managed rewrites
 *                                          the envelope sender at end of message (milter, Exim)
 *       key         = ID SECRET|/PATH [retired=YYYY-MM-DD]   HMAC keys, repeatable:
 *                                          the first key not retired signs; a retired
 *                                          key verifies tokens minted before that day
 *                                          until they expire (its grace)
 *       token_ttl   = 14d                  how long a token (and its record) lives
 *       suppress    = account              account | global: where hard bounces,
 *                                          complaints and unsubscribes are suppressed
 *       soft_bounces = 3/7d                N soft bounces within M -> suppressed; 0 = never
 *       forward     = no                   yes: pass each bounce and complaint on to the
 *                                          original sender (with the null sender)
 *       sendmail    = /usr/sbin/sendmail   the command that forwards (and its arguments)
 *   }
 *
 *   webhooks {                        relayguard-webhookd (relayguard-webhookd(8))
 *       url             = https://hooks.example.com/relay   global URL (every account's
 *                                          events), repeatable
 *       events          = decision.reject, detection       event types for the global
 *                                          URLs (patterns; default: all)
 *       secret          = TEXT             HMAC-SHA256 key of the signature (required,
 *                                          16 characters at least)
 *       timeout         = 10s              one POST, connect to last byte
 *       connect_timeout = 5s
 *       concurrency     = 32               POSTs in flight per process
 *       batch_max       = 100              events per POST when busy
 *       retry_initial   = 10s              first wait after a failure, doubled each time
 *       retry_max       = 1h               longest wait between two attempts
 *       retry_for       = 24h              then the events go to the dead-letter list
 *       claim_idle      = 5s               a silent router's role (and its unrouted entries)
 *                                          is taken over after this
 *       user            = relayguard
 *       pidfile         = PATH
 *   }
 *
 *   detect {                          compromised-account detection (relayguard-detectd)
 *       k                  = 5        act when an hour runs above max(k x baseline, floor)
 *       floor              = 100      recipients per hour
 *       alpha              = 0.3      EWMA weight of the newest week (per hour of week)
 *       action             = alert    alert | throttle | suspend (per account: detect_action)
 *       throttle           = rate 10/1h   the temporary limit of "throttle"
 *       throttle_for       = 1h
 *       cooldown           = 6h       after an action or a resume: alerts only
 *       countries_per_hour = 3        logins from N countries within an hour suspend
 *       ips_per_hour       = 20       logins from more than M addresses within an hour suspend
 *       refused_ratio      = 0.2      refused recipients / recipients over the window ...
 *       refused_window     = 1h
 *       refused_min        = 100      ... once the window holds this many recipients
 *       batch              = 2000     stream entries per read
 *       max_delay          = 1s       how long an event may wait to be read: reads are
 *                                     gathered into rounds (one state write per round)
 *       claim_idle         = 60s      entries a dead detector left are taken over
 *       acknowledge        = yes      no: read with NOACK (no pending list, no XACK; a
 *                                     detector that dies loses the batch in hand)
 *       bounce_rate        = 5%       hard bounces / recipients accepted over the
 *                                     reputation window (per account: bounce_rate)
 *       complaint_rate     = 0.1%     complaints / recipients accepted (per account:
 *                                     complaint_rate); both fire when passed (above)
 *       reputation_window  = 24h      the sliding window of both rates
 *       reputation_min     = 1000     recipients the window must hold first
 *       reputation_action  = throttle alert | throttle | suspend, or a list: "throttle,
 *                                     suspend" throttles, then suspends when the rate is
 *                                     still passed once the cool-down is over
 *       user               = relayguard
 *       pidfile            = PATH
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
#include "localsub.h"

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

/* One "key = ID SECRET|/PATH [retired=DATE]" line of the bounce block. */
typedef struct rg_bounce_key {
    char id[9];                 /* 1 to 8 of [a-z0-9] */
    unsigned char *secret;      /* the key bytes (file content or inline text) */
    size_t secret_len;          /* 16 bytes at least */
    int64_t retired;            /* Unix seconds (UTC midnight), 0 = not retired */
    int line;
} rg_bounce_key;

/* The bounce block; line 0 when relayguard.conf has none (the loop is off). */
typedef struct rg_bounce_conf {
    char *domain;               /* lower case; NULL without a bounce block */
    rg_bounce_key *keys;
    size_t n_keys;
    uint64_t token_ttl_ms;      /* default 14 days */
    bool suppress_global;       /* suppress = global (default: the account's list) */
    unsigned soft_count;        /* soft_bounces N (default 3; 0 = never) */
    uint64_t soft_window_ms;    /* soft_bounces M (default 7 days) */
    bool forward;               /* forward = yes */
    bool managed;               /* bounces = managed: the default of accounts without
                                   their own "bounces" (default off) */
    char **sendmail;            /* command and arguments, NULL-terminated, never NULL */
    int line;
} rg_bounce_conf;

/* The webhooks block (relayguard-webhookd); line 0 when there is none. */
typedef struct rg_webhooks_conf {
    char **urls;                /* global URLs, NULL-terminated, never NULL */
    char **events;              /* type patterns for the global URLs; never NULL; empty = all */
    char *secret;               /* NULL without a webhooks block */
    uint64_t timeout_ms;        /* default 10 s */
    uint64_t connect_timeout_ms;/* default 5 s */
    unsigned concurrency;       /* default 32 */
    unsigned batch_max;         /* default 100 */
    uint64_t retry_initial_ms;  /* default 10 s */
    uint64_t retry_max_ms;      /* default 1 h */
    uint64_t retry_for_ms;      /* default 24 h */
    uint64_t claim_idle_ms;     /* default 5 s */
    char *user;
    char *pidfile;
    int line;
} rg_webhooks_conf;

/* What a detection does (detect block "action", account field detect_action). */
typedef enum { RG_DETECT_ALERT = 0, RG_DETECT_THROTTLE, RG_DETECT_SUSPEND } rg_detect_action;

/* The detect block (relayguard-detectd; detect.h); line 0 when there is none. */
typedef struct rg_detect_conf {
    double k;                   /* default 5 */
    uint64_t floor;             /* default 100 */
    double alpha;               /* default 0.3 */
    rg_detect_action action;    /* default alert */
    rg_limit throttle;          /* default "rate 10/1h name=throttle" */
    uint64_t throttle_for_ms;   /* default 1 h */
    uint64_t cooldown_ms;       /* default 6 h */
    unsigned countries_per_hour;/* default 3 */
    unsigned ips_per_hour;      /* default 20 */
    double refused_ratio;       /* default 0.2 */
    uint64_t refused_window_ms; /* default 1 h */
    uint64_t refused_min;       /* default 100 */
    unsigned batch;             /* default 2000 */
    uint64_t claim_idle_ms;     /* default 60 s */
    bool acknowledge;           /* default yes */
    uint64_t max_delay_ms;      /* default 1 s (10 ms to 10 min) */
    /* reputation (detect.h): rates over a sliding window, actions in turn */
    double bounce_rate;         /* default 0.05 (a fraction) */
    double complaint_rate;      /* default 0.001 */
    uint64_t reputation_window_ms; /* default 24 h */
    uint64_t reputation_min;    /* default 1000 recipients */
    rg_detect_action reputation_action[2]; /* default throttle (the last one repeats) */
    unsigned n_reputation_action;          /* 1 or 2 */
    char *user;
    char *pidfile;
    int line;
} rg_detect_conf;

/* "alert" | "throttle" | "suspend" into *out.  0, or -1 when unknown. */
int rg_detect_action_parse(const char *s, rg_detect_action *out);
const char *rg_detect_action_name(rg_detect_action a);

/* A rate threshold: "5%", "0.1%" or a fraction "0.05"; above 0, at most 1.
 * 0, or -1 when it does not parse. */
int rg_rate_parse(const char *s, double *out);

typedef struct rg_config {
    char *file;
    rg_store_url store;
    char store_text[512];       /* as written, password masked, for messages */
    uint64_t store_timeout_ms;
    rg_on_error on_store_error;
    char node[128];
    char *geoip_db;             /* NULL if not set */
    uint64_t events_max;
    unsigned metrics_accounts;  /* distinct account labels in metrics, default 100 */
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
        char *metrics;          /* Prometheus endpoint, inet:HOST:PORT; NULL: none */
    } policyd;

    struct {
        char *listen;           /* default unix:/run/relayguard/milter.sock */
        char *user;
        char *pidfile;
        unsigned store_connections;     /* default 8 */
        char *header_secret;    /* NULL: "hmac" account headers are refused at load */
        uint64_t timeout_ms;    /* default 300 s */
        char *metrics;          /* Prometheus endpoint, inet:HOST:PORT; NULL: none */
    } milter;

    struct {
        rg_dkim_key_conf *keys;
        size_t n_keys;
        char **sign_headers;    /* NULL-terminated, lower case, never NULL */
        char **oversign;        /* NULL-terminated, lower case, never NULL */
    } dkim;

    rg_webhooks_conf webhooks;

    rg_bounce_conf bounce;

    rg_detect_conf detect;

    rg_localsub_conf local;     /* local_key, local_submission, local_max_age,
                                   local_sendmail (localsub.h) */
} rg_config;

/* Headers signed by default (when present), NULL-terminated. */
extern const char *const rg_dkim_default_sign_headers[];

/* Defaults for everything (no file read). Never NULL. */
rg_config *rg_config_new_default(void);

/* Read and check a file.  NULL with "FILE:LINE: message" in err. */
rg_config *rg_config_load(const char *path, char *err, size_t errlen);

/* The limit name of the detect block's throttle action: relayguard-detectd
 * gives an account a limit of this name, so its bucket is
 * rg:h:a:ACCOUNT:throttle (keys.h). */
#define RG_LIMIT_NAME_THROTTLE "throttle"

/* Is a limit name one relayguard keeps for its own buckets (a user limit of
 * that name would share their counts)?  0, or -1 with "FILE:LINE: message"
 * in err: for the config parsers (relayguard.conf, accounts files). */
int rg_limit_name_check(const rg_limit *l, const char *file, int line, char *err, size_t errlen);

void rg_config_free(rg_config *c);

/* A webhook URL: http(s)://HOST..., printable, no blanks, at most 2000 bytes. */
bool rg_webhook_url_valid(const char *s);
/* An event type pattern list ("decision.reject, detection*") into a new
 * NULL-terminated lower-case list.  0, or -1 on a bad pattern. */
int rg_event_patterns_parse(const char *v, char ***out);

/* Parse a store URL.  0, or -1 with a message. */
int rg_store_url_parse(const char *text, rg_store_url *out, char *err, size_t errlen);

#endif
