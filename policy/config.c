/*
 * config.c - load and check relayguard.conf (keys and defaults in config.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conf.h"
#include "config.h"
#include "limit.h"
#include "log.h"
#include "util.h"

#define DEFAULT_STORE "redis://127.0.0.1:6379/0"

static int
hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode %XX escapes of s[0..len) into out.  0, or -1 (bad escape, %00, too long). */
static int
pct_decode(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hex_value((unsigned char)s[i + 1]), lo = hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Parse a whole decimal number in [lo, hi] from s[0..len).  0 or -1. */
static int
parse_int_range(const char *s, size_t len, long lo, long hi, int *out)
{
    long v = 0;

    if (len == 0 || len > 9)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* A whole unsigned decimal number (digits only, no overflow).  0 or -1. */
static int
parse_count(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/*
 * Parse a store URL: redis://[[user:]pass@]host[:port][/db] (host may be
 * [v6]; port 6379 and db 0 by default) or redis+unix://[[user:]pass@]/path[?db=N].
 * User and password may be %-encoded.  0, or -1 with a message in err.
 */
int
rg_store_url_parse(const char *text, rg_store_url *out, char *err, size_t errlen)
{
    rg_store_url u;
    const char *p, *at, *end;

    memset(&u, 0, sizeof u);
    u.port = 6379;
    if (text == NULL)
        text = "";
    if (strncmp(text, "redis+unix://", 13) == 0) {
        u.unix_socket = true;
        p = text + 13;
    } else if (strncmp(text, "redis://", 8) == 0) {
        p = text + 8;
    } else if (strncmp(text, "rediss://", 9) == 0) {
        rg_seterr(err, errlen, "TLS (rediss://) is not supported; use redis:// or redis+unix://");
        return -1;
    } else {
        rg_seterr(err, errlen, "expected redis://host:port/db or redis+unix:///path?db=N");
        return -1;
    }

    /* user:password@ - the last '@' ends it, since a password may hold one */
    at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        int rc;
        if (colon != NULL) {
            rc = pct_decode(p, (size_t)(colon - p), u.user, sizeof u.user);
            if (rc == 0)
                rc = pct_decode(colon + 1, (size_t)(at - colon - 1), u.password,
                                sizeof u.password);
        } else {
            rc = pct_decode(p, (size_t)(at - p), u.password, sizeof u.password);
        }
        if (rc < 0) {
            rg_seterr(err, errlen, "bad user or password (too long or bad %%-escape)");
            return -1;
        }
        p = at + 1;
    }

    if (u.unix_socket) {
        if (*p != '/') {
            rg_seterr(err, errlen, "the socket path must be absolute: redis+unix:///path");
            return -1;
        }
        end = strchr(p, '?');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (plen >= sizeof u.host) {
            rg_seterr(err, errlen, "socket path too long");
            return -1;
        }
        memcpy(u.host, p, plen);
        u.host[plen] = '\0';
        u.port = 0;
        if (end != NULL) {
            if (strncmp(end, "?db=", 4) != 0 ||
                parse_int_range(end + 4, strlen(end + 4), 0, 1000000, &u.db) < 0) {
                rg_seterr(err, errlen, "bad '%s': the only parameter is ?db=N", end);
                return -1;
            }
        }
        *out = u;
        return 0;
    }

    /* host */
    const char *h = p;
    size_t hlen;
    if (*p == '[') {
        end = strchr(p, ']');
        if (end == NULL) {
            rg_seterr(err, errlen, "missing ']' after IPv6 address");
            return -1;
        }
        h = p + 1;
        hlen = (size_t)(end - h);
        p = end + 1;
    } else {
        hlen = strcspn(p, ":/?");
        p += hlen;
    }
    if (hlen == 0) {
        rg_seterr(err, errlen, "missing host");
        return -1;
    }
    if (hlen >= sizeof u.host) {
        rg_seterr(err, errlen, "host name too long");
        return -1;
    }
    for (size_t i = 0; i < hlen; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == ':')) {
            rg_seterr(err, errlen, "bad character in host '%.*s'", (int)hlen, h);
            return -1;
        }
    }
    memcpy(u.host, h, hlen);
    u.host[hlen] = '\0';

    if (*p == ':') {
        p++;
        size_t n = strcspn(p, "/?");
        if (parse_int_range(p, n, 1, 65535, &u.port) < 0) {
            rg_seterr(err, errlen, "bad port '%.*s' (1 to 65535)", (int)n, p);
            return -1;
        }
        p += n;
    }
    if (*p == '/') {
        p++;
        if (*p != '\0' && parse_int_range(p, strlen(p), 0, 1000000, &u.db) < 0) {
            rg_seterr(err, errlen, "bad database number '%s'", p);
            return -1;
        }
        p += strlen(p);
    }
    if (*p != '\0') {
        rg_seterr(err, errlen, "unexpected '%s' after the host", p);
        return -1;
    }
    *out = u;
    return 0;
}

/* text with the password of its user info replaced by "***", into out. */
static void
mask_store_text(const char *text, char *out, size_t outlen)
{
    const char *scheme_end = strstr(text, "://");
    const char *at = strrchr(text, '@');

    if (scheme_end == NULL || at == NULL || at < scheme_end) {
        if (rg_strlcpy(out, text, outlen) >= outlen)
            out[0] = '\0';
        return;
    }
    const char *ui = scheme_end + 3;
    const char *colon = memchr(ui, ':', (size_t)(at - ui));
    const char *pw = colon ? colon + 1 : ui;
    int n = snprintf(out, outlen, "%.*s***%s", (int)(pw - text), text, at);
    if (n < 0 || (size_t)n >= outlen)
        out[0] = '\0';
}

const char *const rg_dkim_default_sign_headers[] = {
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "in-reply-to", "references", "list-id", "list-help",
    "list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post",
    "list-owner", "list-archive", "feedback-id", NULL
};

static char **
strv_copy(const char *const *v)
{
    size_t n = 0;
    while (v[n])
        n++;
    char **out = rg_calloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = rg_strdup(v[i]);
    return out;
}

/* Limit names relayguard keeps for its own buckets, and who uses them. */
static const struct {
    const char *name, *user;
} reserved_limit_names[] = {
    { RG_LIMIT_NAME_THROTTLE, "relayguard-detectd's throttle action (detect block, throttle =)" },
};

int
rg_limit_name_check(const rg_limit *l, const char *file, int line, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof reserved_limit_names / sizeof reserved_limit_names[0]; i++) {
        if (strcmp(l->name, reserved_limit_names[i].name) == 0) {
            if (file != NULL)
                rg_seterr(err, errlen, "%s:%d: the limit name '%s' is reserved for %s; give "
                          "this limit another name=", file, line, l->name,
                          reserved_limit_names[i].user);
            else                /* not from a file: relayguard account add|set --limit */
                rg_seterr(err, errlen, "the limit name '%s' is reserved for %s; give this "
                          "limit another name=", l->name, reserved_limit_names[i].user);
            return -1;
        }
    }
    return 0;
}

/* Defaults for everything (no file read).  Never NULL; free with rg_config_free. */
rg_config *
rg_config_new_default(void)
{
    rg_config *c = rg_calloc(1, sizeof *c);
    char err[256];

    if (rg_store_url_parse(DEFAULT_STORE, &c->store, err, sizeof err) < 0)
        rg_panic("default store URL: %s", err);
    rg_strlcpy(c->store_text, DEFAULT_STORE, sizeof c->store_text);
    c->store_timeout_ms = 250;
    c->on_store_error = RG_ON_ERROR_TEMPFAIL;
    if (gethostname(c->node, sizeof c->node) < 0 || c->node[0] == '\0' ||
        memchr(c->node, '\0', sizeof c->node) == NULL)
        rg_strlcpy(c->node, "localhost", sizeof c->node);
    c->events_max = 100000;
    c->metrics_accounts = 100;
    c->reservation_ttl_ms = 10 * 60 * 1000;
    c->log = RG_LOG_SYSLOG;
    c->log_level = LOG_INFO;
    c->policyd.listen = rg_strdup("inet:127.0.0.1:10040");
    c->policyd.max_connections = 10000;
    c->policyd.idle_timeout_ms = 300 * 1000;
    c->milter.listen = rg_strdup("unix:/run/relayguard/milter.sock");
    c->milter.store_connections = 8;
    c->milter.timeout_ms = 300 * 1000;
    c->webhooks.urls = rg_strv_split("");
    c->webhooks.events = rg_strv_split("");
    c->webhooks.timeout_ms = 10 * 1000;
    c->webhooks.connect_timeout_ms = 5 * 1000;
    c->webhooks.concurrency = 32;
    c->webhooks.batch_max = 100;
    c->webhooks.retry_initial_ms = 10 * 1000;
    c->webhooks.retry_max_ms = 3600 * 1000;
    c->webhooks.retry_for_ms = 24 * 3600 * 1000;
    c->webhooks.claim_idle_ms = 5 * 1000;
    c->dkim.sign_headers = strv_copy(rg_dkim_default_sign_headers);
    c->dkim.oversign = rg_strv_split("from");
    c->bounce.token_ttl_ms = 14ull * 24 * 3600 * 1000;
    c->bounce.soft_count = 3;
    c->bounce.soft_window_ms = 7ull * 24 * 3600 * 1000;
    c->bounce.sendmail = rg_strv_split("/usr/sbin/sendmail");
    c->detect.k = 5;
    c->detect.floor = 100;
    c->detect.alpha = 0.3;
    c->detect.action = RG_DETECT_ALERT;
    if (rg_limit_parse("rate 10/1h name=" RG_LIMIT_NAME_THROTTLE, RG_SCOPE_ACCOUNT, &c->detect.throttle,
                       err, sizeof err) < 0)
        rg_panic("default throttle: %s", err);
    c->detect.throttle_for_ms = 3600 * 1000;
    c->detect.cooldown_ms = 6 * 3600 * 1000;
    c->detect.countries_per_hour = 3;
    c->detect.ips_per_hour = 20;
    c->detect.refused_ratio = 0.2;
    c->detect.refused_window_ms = 3600 * 1000;
    c->detect.refused_min = 100;
    c->detect.batch = 2000;
    c->detect.claim_idle_ms = 60 * 1000;
    c->detect.acknowledge = true;
    c->detect.max_delay_ms = 1000;
    c->detect.bounce_rate = 0.05;
    c->detect.complaint_rate = 0.001;
    c->detect.reputation_window_ms = 24ull * 3600 * 1000;
    c->detect.reputation_min = 1000;
    c->detect.reputation_action[0] = RG_DETECT_THROTTLE;
    c->detect.n_reputation_action = 1;
    rg_localsub_conf_init(&c->local);
    return c;
}

/* Free everything; NULL is fine. */
void
rg_config_free(rg_config *c)
{
    if (c == NULL)
        return;
    free(c->file);
    free(c->geoip_db);
    free(c->limits);
    free(c->policyd.listen);
    free(c->policyd.user);
    free(c->policyd.pidfile);
    free(c->policyd.metrics);
    free(c->milter.metrics);
    free(c->milter.listen);
    free(c->milter.user);
    free(c->milter.pidfile);
    free(c->milter.header_secret);
    rg_strv_free(c->webhooks.urls);
    rg_strv_free(c->webhooks.events);
    free(c->webhooks.secret);
    free(c->webhooks.user);
    free(c->webhooks.pidfile);
    for (size_t i = 0; i < c->dkim.n_keys; i++) {
        free(c->dkim.keys[i].domain);
        free(c->dkim.keys[i].selector);
        free(c->dkim.keys[i].path);
    }
    free(c->dkim.keys);
    rg_strv_free(c->dkim.sign_headers);
    rg_strv_free(c->dkim.oversign);
    free(c->bounce.domain);
    for (size_t i = 0; i < c->bounce.n_keys; i++) {
        if (c->bounce.keys[i].secret != NULL)
            OPENSSL_cleanse(c->bounce.keys[i].secret, c->bounce.keys[i].secret_len);
        free(c->bounce.keys[i].secret);
    }
    free(c->bounce.keys);
    rg_strv_free(c->bounce.sendmail);
    free(c->detect.user);
    free(c->detect.pidfile);
    rg_localsub_conf_clear(&c->local);
    free(c);
}

/* A node name: 1..127 of [A-Za-z0-9._-]. */
static bool
node_valid(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return n >= 1 && n < 128;
}

/* "inet:HOST:PORT" (HOST may be [v6]) or "unix:/path".  NULL if fine, else why not. */
static const char *
listen_problem(const char *s)
{
    if (strncmp(s, "unix:", 5) == 0)
        return s[5] == '/' ? NULL : "a unix socket path must be absolute";
    if (strncmp(s, "inet:", 5) != 0)
        return "expected inet:HOST:PORT or unix:/path";
    const char *colon = strrchr(s + 5, ':');
    int port;
    if (colon == NULL || colon == s + 5)
        return "expected inet:HOST:PORT";
    if (parse_int_range(colon + 1, strlen(colon + 1), 1, 65535, &port) < 0)
        return "bad port (1 to 65535)";
    return NULL;
}

/* Replace *slot with a copy of v. */
static void
set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = rg_strdup(v);
}

/* Apply one top-level item.  0, or -1 with "FILE:LINE: message" in err. */
static int
apply_top(rg_config *c, const rg_conf_item *it, char *err, size_t errlen)
{
    const char *k = it->key, *v = it->value;
    const char *file = c->file;
    char why[256];

    if (strcmp(k, "store") == 0) {
        if (rg_store_url_parse(v, &c->store, why, sizeof why) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad store URL: %s", file, it->line, why);
            return -1;
        }
        mask_store_text(v, c->store_text, sizeof c->store_text);
    } else if (strcmp(k, "store_timeout") == 0) {
        if (rg_duration_parse(v, &c->store_timeout_ms) < 0 || c->store_timeout_ms == 0) {
            rg_seterr(err, errlen, "%s:%d: bad store_timeout '%s' (e.g. 250ms, 1s)", file,
                    it->line, v);
            return -1;
        }
    } else if (strcmp(k, "on_store_error") == 0) {
        if (strcmp(v, "tempfail") == 0)
            c->on_store_error = RG_ON_ERROR_TEMPFAIL;
        else if (strcmp(v, "accept") == 0)
            c->on_store_error = RG_ON_ERROR_ACCEPT;
        else {
            rg_seterr(err, errlen, "%s:%d: bad on_store_error '%s' (tempfail or accept)", file,
                    it->line, v);
            return -1;
        }
    } else if (strcmp(k, "node") == 0) {
        if (!node_valid(v)) {
            rg_seterr(err, errlen, "%s:%d: bad node '%s' (1 to 127 of A-Z a-z 0-9 . - _)", file,
                    it->line, v);
            return -1;
        }
        rg_strlcpy(c->node, v, sizeof c->node);     /* fits: checked above */
    } else if (strcmp(k, "geoip_db") == 0) {
        set_str(&c->geoip_db, v);
    } else if (strcmp(k, "metrics_accounts") == 0) {
        int n;
        if (parse_int_range(v, strlen(v), 1, 100000, &n) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad metrics_accounts '%s' (1 to 100000)", file,
                      it->line, v);
            return -1;
        }
        c->metrics_accounts = (unsigned)n;
    } else if (strcmp(k, "events_max") == 0) {
        uint64_t n;
        if (parse_count(v, &n) < 0 || n == 0) {
            rg_seterr(err, errlen, "%s:%d: bad events_max '%s' (a positive number)", file,
                    it->line, v);
            return -1;
        }
        c->events_max = n;
    } else if (strcmp(k, "reservation_ttl") == 0) {
        if (rg_duration_parse(v, &c->reservation_ttl_ms) < 0 || c->reservation_ttl_ms == 0) {
            rg_seterr(err, errlen, "%s:%d: bad reservation_ttl '%s' (e.g. 10m)", file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "log") == 0) {
        if (strcmp(v, "syslog") == 0)
            c->log = RG_LOG_SYSLOG;
        else if (strcmp(v, "stderr") == 0)
            c->log = RG_LOG_STDERR;
        else {
            rg_seterr(err, errlen, "%s:%d: bad log '%s' (syslog or stderr)", file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "log_level") == 0) {
        int lv = rg_log_level_parse(v);
        if (lv < 0) {
            rg_seterr(err, errlen, "%s:%d: bad log_level '%s' (debug, info, warning or error)",
                    file, it->line, v);
            return -1;
        }
        c->log_level = lv;
    } else if (strcmp(k, "limit") == 0) {
        rg_limit l;
        if (rg_limit_parse(v, RG_SCOPE_GLOBAL, &l, why, sizeof why) < 0) {
            rg_seterr(err, errlen, "%s:%d: %s", file, it->line, why);
            return -1;
        }
        if (l.scope == RG_SCOPE_ACCOUNT) {
            rg_seterr(err, errlen, "%s:%d: scope=account needs an account; at the top level "
                    "a limit is scope=global, domain or ip", file, it->line);
            return -1;
        }
        if (rg_limit_name_check(&l, file, it->line, err, errlen) < 0)
            return -1;
        for (size_t i = 0; i < c->n_limits; i++) {
            if (strcmp(c->limits[i].name, l.name) == 0 && c->limits[i].scope == l.scope) {
                rg_seterr(err, errlen, "%s:%d: a limit named '%s' with this scope exists already",
                        file, it->line, l.name);
                return -1;
            }
        }
        c->limits = rg_realloc(c->limits, (c->n_limits + 1) * sizeof *c->limits);
        c->limits[c->n_limits++] = l;
    } else if (strncmp(k, "local_", 6) == 0) {
        /* local submission (localsub.h) */
        int r = rg_localsub_conf_apply(&c->local, k, v, file, it->line, err, errlen);
        if (r == 0)
            rg_seterr(err, errlen, "%s:%d: unknown key '%s'", file, it->line, k);
        if (r <= 0)
            return -1;
    } else {
        rg_seterr(err, errlen, "%s:%d: unknown key '%s'", file, it->line, k);
        return -1;
    }
    return 0;
}

/* Apply one item of the policyd block.  0, or -1 with "FILE:LINE: message" in err. */
static int
apply_policyd(rg_config *c, const rg_conf_item *it, char *err, size_t errlen)
{
    const char *k = it->key, *v = it->value;
    const char *file = c->file;

    if (strcmp(k, "listen") == 0) {
        const char *why = listen_problem(v);
        if (why != NULL) {
            rg_seterr(err, errlen, "%s:%d: bad listen '%s': %s", file, it->line, v, why);
            return -1;
        }
        set_str(&c->policyd.listen, v);
    } else if (strcmp(k, "metrics") == 0) {
        const char *why = listen_problem(v);
        if (why != NULL) {
            rg_seterr(err, errlen, "%s:%d: bad metrics '%s': %s", file, it->line, v, why);
            return -1;
        }
        set_str(&c->policyd.metrics, v);
    } else if (strcmp(k, "user") == 0) {
        set_str(&c->policyd.user, v);
    } else if (strcmp(k, "max_connections") == 0) {
        int n;
        if (parse_int_range(v, strlen(v), 1, 1000000, &n) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad max_connections '%s' (1 to 1000000)", file,
                    it->line, v);
            return -1;
        }
        c->policyd.max_connections = (unsigned)n;
    } else if (strcmp(k, "idle_timeout") == 0) {
        if (rg_duration_parse(v, &c->policyd.idle_timeout_ms) < 0 ||
            c->policyd.idle_timeout_ms == 0) {
            rg_seterr(err, errlen, "%s:%d: bad idle_timeout '%s' (e.g. 300s)", file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "pidfile") == 0) {
        if (v[0] != '/') {
            rg_seterr(err, errlen, "%s:%d: pidfile must be an absolute path", file, it->line);
            return -1;
        }
        set_str(&c->policyd.pidfile, v);
    } else {
        rg_seterr(err, errlen, "%s:%d: unknown key '%s' in block 'policyd'", file, it->line, k);
        return -1;
    }
    return 0;
}

/* "unix:/path", "local:/path", "inet:PORT@HOST", "inet6:PORT@HOST" (libmilter's
 * notation).  NULL if fine, else why not. */
static const char *
milter_listen_problem(const char *s)
{
    if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0)
        return strchr(s, ':')[1] == '/' ? NULL : "a unix socket path must be absolute";
    const char *p;
    if (strncmp(s, "inet:", 5) == 0)
        p = s + 5;
    else if (strncmp(s, "inet6:", 6) == 0)
        p = s + 6;
    else
        return "expected inet:PORT@HOST, inet6:PORT@HOST or unix:/path";
    const char *at = strchr(p, '@');
    int port;
    if (parse_int_range(p, at ? (size_t)(at - p) : strlen(p), 1, 65535, &port) < 0)
        return "bad port (1 to 65535)";
    return NULL;
}

/* Apply one item of the milter block.  0, or -1 with "FILE:LINE: message" in err. */
static int
apply_milter(rg_config *c, const rg_conf_item *it, char *err, size_t errlen)
{
    const char *k = it->key, *v = it->value;
    const char *file = c->file;

    if (strcmp(k, "listen") == 0) {
        const char *why = milter_listen_problem(v);
        if (why != NULL) {
            rg_seterr(err, errlen, "%s:%d: bad listen '%s': %s", file, it->line, v, why);
            return -1;
        }
        set_str(&c->milter.listen, v);
    } else if (strcmp(k, "metrics") == 0) {
        const char *why = listen_problem(v);
        if (why != NULL) {
            rg_seterr(err, errlen, "%s:%d: bad metrics '%s': %s", file, it->line, v, why);
            return -1;
        }
        set_str(&c->milter.metrics, v);
    } else if (strcmp(k, "user") == 0) {
        set_str(&c->milter.user, v);
    } else if (strcmp(k, "pidfile") == 0) {
        if (v[0] != '/') {
            rg_seterr(err, errlen, "%s:%d: pidfile must be an absolute path", file, it->line);
            return -1;
        }
        set_str(&c->milter.pidfile, v);
    } else if (strcmp(k, "store_connections") == 0) {
        int n;
        if (parse_int_range(v, strlen(v), 1, 256, &n) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad store_connections '%s' (1 to 256)", file,
                    it->line, v);
            return -1;
        }
        c->milter.store_connections = (unsigned)n;
    } else if (strcmp(k, "header_secret") == 0) {
        if (strlen(v) < 16) {
            rg_seterr(err, errlen, "%s:%d: header_secret is too short (16 characters at least)",
                    file, it->line);
            return -1;
        }
        set_str(&c->milter.header_secret, v);
    } else if (strcmp(k, "timeout") == 0) {
        if (rg_duration_parse(v, &c->milter.timeout_ms) < 0 || c->milter.timeout_ms < 1000) {
            rg_seterr(err, errlen, "%s:%d: bad timeout '%s' (e.g. 300s)", file, it->line, v);
            return -1;
        }
    } else {
        rg_seterr(err, errlen, "%s:%d: unknown key '%s' in block 'milter'", file, it->line, k);
        return -1;
    }
    return 0;
}

/* A header name list "from, to" in lower case.  NULL with why on a bad name. */
static char **
header_list(const char *v, const char **why)
{
    char **l = rg_strv_split(v);
    for (char **p = l; *p; p++) {
        for (char *q = *p; *q; q++) {
            unsigned char ch = (unsigned char)*q;
            if (ch <= 32 || ch >= 127 || ch == ':') {
                *why = "a header name is printable ASCII without ':'";
                rg_strv_free(l);
                return NULL;
            }
        }
        rg_lower(*p);
    }
    return l;
}

/* Apply one item of the dkim block.  0, or -1 with "FILE:LINE: message" in err. */
static int
apply_dkim(rg_config *c, const rg_conf_item *it, char *err, size_t errlen)
{
    const char *k = it->key, *v = it->value;
    const char *file = c->file;
    const char *why = NULL;

    if (strcmp(k, "key") == 0) {
        char **w = rg_strv_split(v);
        if (rg_strv_len(w) != 3 || w[2][0] != '/') {
            rg_strv_free(w);
            rg_seterr(err, errlen, "%s:%d: bad key '%s' (DOMAIN SELECTOR /ABSOLUTE/PATH)", file,
                    it->line, v);
            return -1;
        }
        rg_lower(w[0]);
        for (size_t i = 0; i < c->dkim.n_keys; i++) {
            if (strcmp(c->dkim.keys[i].domain, w[0]) == 0 &&
                strcmp(c->dkim.keys[i].selector, w[1]) == 0) {
                rg_seterr(err, errlen, "%s:%d: key %s %s is already given at line %d", file,
                        it->line, w[0], w[1], c->dkim.keys[i].line);
                rg_strv_free(w);
                return -1;
            }
        }
        c->dkim.keys = rg_realloc(c->dkim.keys, (c->dkim.n_keys + 1) * sizeof *c->dkim.keys);
        rg_dkim_key_conf *kc = &c->dkim.keys[c->dkim.n_keys++];
        kc->domain = w[0];
        kc->selector = w[1];
        kc->path = w[2];
        kc->line = it->line;
        free(w);
    } else if (strcmp(k, "sign_headers") == 0 || strcmp(k, "oversign") == 0) {
        char **l = header_list(v, &why);
        if (l == NULL) {
            rg_seterr(err, errlen, "%s:%d: bad %s: %s", file, it->line, k, why);
            return -1;
        }
        char ***slot = k[0] == 's' ? &c->dkim.sign_headers : &c->dkim.oversign;
        rg_strv_free(*slot);
        *slot = l;
    } else {
        rg_seterr(err, errlen, "%s:%d: unknown key '%s' in block 'dkim'", file, it->line, k);
        return -1;
    }
    return 0;
}

/* Read a bounce key file (at most 4 KiB, not readable by group or others)
 * into a new buffer, without a trailing newline.  NULL with why. */
static unsigned char *
read_secret_file(const char *path, size_t *len, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_NOCTTY);
    struct stat st;
    unsigned char buf[4097];
    ssize_t n;

    if (fd < 0) {
        rg_seterr(why, whylen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rg_seterr(why, whylen, "%s is not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_mode & 077) {
        rg_seterr(why, whylen, "%s is readable by group or others (chmod 600 it)", path);
        close(fd);
        return NULL;
    }
    n = read(fd, buf, sizeof buf);
    int saved = errno;
    close(fd);
    if (n < 0) {
        rg_seterr(why, whylen, "cannot read %s: %s", path, strerror(saved));
        return NULL;
    }
    if (n > 4096) {
        rg_seterr(why, whylen, "%s is over 4 KiB", path);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    unsigned char *out = rg_malloc((size_t)n + 1);
    memcpy(out, buf, (size_t)n);
    OPENSSL_cleanse(buf, sizeof buf);
    *len = (size_t)n;
    return out;
}

/* "YYYY-MM-DD" to Unix seconds at 00:00 UTC.  0, or -1. */
static int
parse_day(const char *s, int64_t *out)
{
    int y, m, d;
    struct tm tm;

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
        parse_int_range(s, 4, 1970, 9999, &y) < 0 || parse_int_range(s + 5, 2, 1, 12, &m) < 0 ||
        parse_int_range(s + 8, 2, 1, 31, &d) < 0)
        return -1;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d)
        return -1;
    *out = (int64_t)t;
    return 0;
}

/* A bounce key id: 1 to 8 of [a-z0-9]. */
static bool
bounce_key_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 8)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

/* Apply one item of the bounce block.  0, or -1 with "FILE:LINE: message" in err. */
static int
apply_bounce(rg_config *c, const rg_conf_item *it, char *err, size_t errlen)
{
    const char *k = it->key, *v = it->value;
    const char *file = c->file;
    rg_bounce_conf *b = &c->bounce;
    char why[512];

    if (strcmp(k, "domain") == 0) {
        char d[256];
        /* a fixed name, or a template "LABELS.%d" (%d: the sender's domain; verp.h) */
        const char *pc = strstr(v, "%d");
        size_t plen = pc ? (size_t)(pc - v) : strlen(v);
        if (rg_strlcpy(d, v, sizeof d) >= sizeof d || (pc == NULL && strchr(d, '.') == NULL) ||
            (pc != NULL && (pc[2] != '\0' || plen < 2 || v[plen - 1] != '.')) ||
            strspn(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
            plen || d[0] == '.' || d[0] == '-') {
            rg_seterr(err, errlen, "%s:%d: bad domain '%s' (a DNS name like bounce.example.com, "
                    "or a template like bounces.%%d)", file, it->line, v);
            return -1;
        }
        set_str(&b->domain, rg_lower(d));
    } else if (strcmp(k, "bounces") == 0) {
        if (strcmp(v, "managed") == 0 || strcmp(v, "off") == 0) {
            b->managed = v[0] == 'm';
        } else {
            rg_seterr(err, errlen, "%s:%d: bad bounces '%s' (managed or off)", file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "key") == 0) {
        /* split at blanks only: an inline secret may hold any other character */
        char **w = rg_calloc(4, sizeof *w);
        size_t nw = 0;
        for (const char *p = v; *p;) {
            while (*p == ' ' || *p == '\t')
                p++;
            size_t n = strcspn(p, " \t");
            if (n == 0)
                break;
            if (nw == 3) {
                nw = 4;
                break;
            }
            w[nw++] = rg_strndup(p, n);
            p += n;
        }
        rg_bounce_key key;
        memset(&key, 0, sizeof key);
        key.line = it->line;
        const char *problem = NULL;
        if (nw < 2 || nw > 3)
            problem = "expected ID SECRET|/PATH [retired=YYYY-MM-DD]";
        else if (!bounce_key_id_valid(w[0]))
            problem = "the key ID is 1 to 8 of a-z 0-9";
        else if (nw == 3 && (strncmp(w[2], "retired=", 8) != 0 ||
                             parse_day(w[2] + 8, &key.retired) < 0))
            problem = "expected retired=YYYY-MM-DD after the secret";
        for (size_t i = 0; problem == NULL && i < b->n_keys; i++)
            if (strcmp(b->keys[i].id, w[0]) == 0) {
                snprintf(why, sizeof why, "key %s is already given at line %d", w[0],
                         b->keys[i].line);
                problem = why;
            }
        if (problem == NULL) {
            rg_strlcpy(key.id, w[0], sizeof key.id);    /* fits: checked above */
            if (w[1][0] == '/') {
                key.secret = read_secret_file(w[1], &key.secret_len, why, sizeof why);
                if (key.secret == NULL)
                    problem = why;
            } else {
                key.secret_len = strlen(w[1]);
                key.secret = (unsigned char *)rg_strdup(w[1]);
            }
            if (problem == NULL && key.secret_len < 16) {
                problem = "the secret is too short (16 bytes at least; "
                          "e.g. openssl rand -hex 32 > FILE)";
                OPENSSL_cleanse(key.secret, key.secret_len);
                free(key.secret);
            }
        }
        for (size_t i = 0; i < nw && i < 3; i++) {
            if (i == 1)
                OPENSSL_cleanse(w[i], strlen(w[i]));
            free(w[i]);
        }
        free(w);
        if (problem != NULL) {
            rg_seterr(err, errlen, "%s:%d: bad key: %s", file, it->line, problem);
            return -1;
        }
        b->keys = rg_realloc(b->keys, (b->n_keys + 1) * sizeof *b->keys);
        b->keys[b->n_keys++] = key;
    } else if (strcmp(k, "token_ttl") == 0) {
        if (rg_duration_parse(v, &b->token_ttl_ms) < 0 || b->token_ttl_ms < 3600 * 1000) {
            rg_seterr(err, errlen, "%s:%d: bad token_ttl '%s' (1h at least, e.g. 14d)", file,
                    it->line, v);
            return -1;
        }
    } else if (strcmp(k, "suppress") == 0) {
        if (strcmp(v, "account") == 0)
            b->suppress_global = false;
        else if (strcmp(v, "global") == 0)
            b->suppress_global = true;
        else {
            rg_seterr(err, errlen, "%s:%d: bad suppress '%s' (account or global)", file,
                    it->line, v);
            return -1;
        }
    } else if (strcmp(k, "soft_bounces") == 0) {
        const char *slash = strchr(v, '/');
        int n;
        if (strcmp(v, "0") == 0) {
            b->soft_count = 0;
        } else if (slash == NULL || parse_int_range(v, (size_t)(slash - v), 1, 1000, &n) < 0 ||
                   rg_duration_parse(slash + 1, &b->soft_window_ms) < 0 ||
                   b->soft_window_ms == 0) {
            rg_seterr(err, errlen, "%s:%d: bad soft_bounces '%s' (N/PERIOD like 3/7d, or 0)",
                    file, it->line, v);
            return -1;
        } else {
            b->soft_count = (unsigned)n;
        }
    } else if (strcmp(k, "forward") == 0) {
        if (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0) {
            b->forward = v[0] == 'y';
        } else {
            rg_seterr(err, errlen, "%s:%d: bad forward '%s' (yes or no)", file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "sendmail") == 0) {
        if (v[0] != '/') {
            rg_seterr(err, errlen, "%s:%d: sendmail must start with an absolute path "
                    "(e.g. /usr/sbin/sendmail)", file, it->line);
            return -1;
        }
        rg_strv_free(b->sendmail);
        b->sendmail = rg_strv_split(v);
    } else {
        rg_seterr(err, errlen, "%s:%d: unknown key '%s' in block 'bounce'", file, it->line, k);
        return -1;
    }
    return 0;
}

/* An http:// or https:// URL of printable ASCII without blanks, at most 2000 bytes. */
bool
rg_webhook_url_valid(const char *s)
{
    size_t n = 0;

    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
        return false;
    for (; s[n]; n++)
        if ((unsigned char)s[n] <= 32 || (unsigned char)s[n] >= 127)
            return false;
    return n > 8 && n <= 2000 && s[strcspn(s, ":") + 3] != '/';
}

/* An event type pattern list: [a-z0-9._*-]+ each.  0 or -1. */
int
rg_event_patterns_parse(const char *v, char ***out)
{
    char **l = rg_strv_split(v);
    for (char **p = l; *p; p++) {
        rg_lower(*p);
        if (strspn(*p, "abcdefghijklmnopqrstuvwxyz0123456789._*-") != strlen(*p)) {
            rg_strv_free(l);
            return -1;
        }
    }
    *out = l;
    return 0;
}

/* Apply one item of the webhooks block.  0, or -1 with "FILE:LINE: message" in err. */
static int
apply_webhooks(rg_config *c, const rg_conf_item *it, char *err, size_t errlen)
{
    const char *k = it->key, *v = it->value;
    const char *file = c->file;
    rg_webhooks_conf *w = &c->webhooks;
    static const struct {
        const char *key;
        size_t off;
        uint64_t min;
    } durations[] = {
        { "timeout", offsetof(rg_webhooks_conf, timeout_ms), 100 },
        { "connect_timeout", offsetof(rg_webhooks_conf, connect_timeout_ms), 100 },
        { "retry_initial", offsetof(rg_webhooks_conf, retry_initial_ms), 100 },
        { "retry_max", offsetof(rg_webhooks_conf, retry_max_ms), 100 },
        { "retry_for", offsetof(rg_webhooks_conf, retry_for_ms), 1000 },
        { "claim_idle", offsetof(rg_webhooks_conf, claim_idle_ms), 1000 },
    };

    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        if (strcmp(k, durations[i].key) != 0)
            continue;
        uint64_t *slot = (uint64_t *)((char *)w + durations[i].off);
        if (rg_duration_parse(v, slot) < 0 || *slot < durations[i].min) {
            rg_seterr(err, errlen, "%s:%d: bad %s '%s' (a duration of %s at least, e.g. 30s)",
                    file, it->line, k, v, durations[i].min >= 1000 ? "1s" : "100ms");
            return -1;
        }
        return 0;
    }
    if (strcmp(k, "url") == 0) {
        if (!rg_webhook_url_valid(v)) {
            rg_seterr(err, errlen, "%s:%d: bad url '%s' (http://HOST/PATH or https://HOST/PATH, "
                    "without blanks)", file, it->line, v);
            return -1;
        }
        size_t n = rg_strv_len(w->urls);
        w->urls = rg_realloc(w->urls, (n + 2) * sizeof *w->urls);
        w->urls[n] = rg_strdup(v);
        w->urls[n + 1] = NULL;
    } else if (strcmp(k, "events") == 0) {
        char **l;
        if (rg_event_patterns_parse(v, &l) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad events '%s' (event types or patterns such as "
                    "decision.reject, decision.*, detection)", file, it->line, v);
            return -1;
        }
        rg_strv_free(w->events);
        w->events = l;
    } else if (strcmp(k, "secret") == 0) {
        if (strlen(v) < 16) {
            rg_seterr(err, errlen, "%s:%d: secret is too short (16 characters at least)",
                    file, it->line);
            return -1;
        }
        set_str(&w->secret, v);
    } else if (strcmp(k, "concurrency") == 0 || strcmp(k, "batch_max") == 0) {
        int n;
        if (parse_int_range(v, strlen(v), 1, 1000, &n) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad %s '%s' (1 to 1000)", file, it->line, k, v);
            return -1;
        }
        *(k[0] == 'c' ? &w->concurrency : &w->batch_max) = (unsigned)n;
    } else if (strcmp(k, "user") == 0) {
        set_str(&w->user, v);
    } else if (strcmp(k, "pidfile") == 0) {
        if (v[0] != '/') {
            rg_seterr(err, errlen, "%s:%d: pidfile must be an absolute path", file, it->line);
            return -1;
        }
        set_str(&w->pidfile, v);
    } else {
        rg_seterr(err, errlen, "%s:%d: unknown key '%s' in block 'webhooks'", file, it->line, k);
        return -1;
    }
    return 0;
}

int
rg_detect_action_parse(const char *s, rg_detect_action *out)
{
    static const char *const names[] = { "alert", "throttle", "suspend" };
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (rg_detect_action)i;
            return 0;
        }
    }
    return -1;
}

const char *
rg_detect_action_name(rg_detect_action a)
{
    return a == RG_DETECT_SUSPEND ? "suspend" : a == RG_DETECT_THROTTLE ? "throttle" : "alert";
}

/* A decimal number in [lo, hi] (strtod, the whole text).  0 or -1. */
static int
parse_real(const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(d >= lo && d <= hi))
        return -1;
    *out = d;
    return 0;
}

int
rg_rate_parse(const char *s, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno != 0 || end == s || !isfinite(d))
        return -1;
    if (*end == '%') {
        d /= 100;
        end++;
    }
    if (*end != '\0' || !(d > 0 && d <= 1))
        return -1;
    *out = d;
    return 0;
}

/* Apply one item of the detect block.  0, or -1 with "FILE:LINE: message" in err. */
static int
apply_detect(rg_config *c, const rg_conf_item *it, char *err, size_t errlen)
{
    const char *k = it->key, *v = it->value;
    const char *file = c->file;
    rg_detect_conf *d = &c->detect;
    static const struct {
        const char *key;
        size_t off;
        uint64_t min;
    } durations[] = {
        { "throttle_for", offsetof(rg_detect_conf, throttle_for_ms), 1000 },
        { "cooldown", offsetof(rg_detect_conf, cooldown_ms), 0 },
        { "refused_window", offsetof(rg_detect_conf, refused_window_ms), 60 * 1000 },
        { "claim_idle", offsetof(rg_detect_conf, claim_idle_ms), 1000 },
        { "reputation_window", offsetof(rg_detect_conf, reputation_window_ms), 3600 * 1000 },
    };

    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        if (strcmp(k, durations[i].key) != 0)
            continue;
        uint64_t *slot = (uint64_t *)((char *)d + durations[i].off);
        if (rg_duration_parse(v, slot) < 0 || *slot < durations[i].min) {
            rg_seterr(err, errlen, "%s:%d: bad %s '%s' (a duration of %s at least, e.g. 1h)",
                    file, it->line, k, v, durations[i].min >= 3600000 ? "1h" :
                    durations[i].min >= 60000 ? "1m" :
                    durations[i].min ? "1s" : "0s");
            return -1;
        }
        return 0;
    }
    if (strcmp(k, "k") == 0) {
        if (parse_real(v, 1.0, 1000.0, &d->k) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad k '%s' (a number from 1 to 1000, e.g. 5)",
                    file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "alpha") == 0) {
        if (parse_real(v, 0.01, 1.0, &d->alpha) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad alpha '%s' (a number from 0.01 to 1, e.g. 0.3)",
                    file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "refused_ratio") == 0) {
        if (parse_real(v, 0.01, 1.0, &d->refused_ratio) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad refused_ratio '%s' (a number from 0.01 to 1, "
                    "e.g. 0.2)", file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "floor") == 0 || strcmp(k, "refused_min") == 0) {
        uint64_t n;
        if (parse_count(v, &n) < 0 || n < 1 || n > 1000000000) {
            rg_seterr(err, errlen, "%s:%d: bad %s '%s' (a count from 1, e.g. 100)",
                    file, it->line, k, v);
            return -1;
        }
        *(k[0] == 'f' ? &d->floor : &d->refused_min) = n;
    } else if (strcmp(k, "action") == 0) {
        if (rg_detect_action_parse(v, &d->action) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad action '%s' (alert, throttle or suspend)",
                    file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "throttle") == 0) {
        char why[256];
        rg_limit l;
        if (rg_limit_parse(v, RG_SCOPE_ACCOUNT, &l, why, sizeof why) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad throttle: %s", file, it->line, why);
            return -1;
        }
        if (l.scope != RG_SCOPE_ACCOUNT) {
            rg_seterr(err, errlen, "%s:%d: bad throttle '%s' (the scope is the account)",
                    file, it->line, v);
            return -1;
        }
        /* its own bucket, whatever the account's other limits */
        rg_strlcpy(l.name, RG_LIMIT_NAME_THROTTLE, sizeof l.name);
        d->throttle = l;
    } else if (strcmp(k, "countries_per_hour") == 0 || strcmp(k, "ips_per_hour") == 0 ||
               strcmp(k, "batch") == 0) {
        int n;
        long lo = 2, hi = k[0] == 'c' ? 16 : 60;
        if (k[0] == 'b')
            lo = 1, hi = 10000;
        if (parse_int_range(v, strlen(v), lo, hi, &n) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad %s '%s' (%ld to %ld)", file, it->line, k, v, lo, hi);
            return -1;
        }
        *(k[0] == 'c' ? &d->countries_per_hour : k[0] == 'i' ? &d->ips_per_hour : &d->batch) =
            (unsigned)n;
    } else if (strcmp(k, "bounce_rate") == 0 || strcmp(k, "complaint_rate") == 0) {
        if (rg_rate_parse(v, k[0] == 'b' ? &d->bounce_rate : &d->complaint_rate) < 0) {
            rg_seterr(err, errlen, "%s:%d: bad %s '%s' (a percentage above 0, at most 100%%, "
                    "e.g. %s)", file, it->line, k, v, k[0] == 'b' ? "5%" : "0.1%");
            return -1;
        }
    } else if (strcmp(k, "reputation_min") == 0) {
        uint64_t n;
        if (parse_count(v, &n) < 0 || n < 1 || n > 1000000000) {
            rg_seterr(err, errlen, "%s:%d: bad %s '%s' (a count from 1, e.g. 1000)",
                    file, it->line, k, v);
            return -1;
        }
        d->reputation_min = n;
    } else if (strcmp(k, "reputation_action") == 0) {
        char **w = rg_strv_split(v);
        size_t n = 0;
        int bad = 0;
        for (; w[n]; n++)
            if (n >= 2 || rg_detect_action_parse(w[n], &d->reputation_action[n]) < 0)
                bad = 1;
        rg_strv_free(w);
        if (bad || n == 0) {
            rg_seterr(err, errlen, "%s:%d: bad reputation_action '%s' (alert, throttle or "
                    "suspend, or two of them in turn: throttle, suspend)", file, it->line, v);
            return -1;
        }
        d->n_reputation_action = (unsigned)n;
    } else if (strcmp(k, "max_delay") == 0) {
        if (rg_duration_parse(v, &d->max_delay_ms) < 0 || d->max_delay_ms < 10 ||
            d->max_delay_ms > 600 * 1000) {
            rg_seterr(err, errlen, "%s:%d: bad max_delay '%s' (a duration from 10ms to 10m, "
                    "e.g. 1s)", file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "acknowledge") == 0) {
        if (strcmp(v, "yes") == 0) {
            d->acknowledge = true;
        } else if (strcmp(v, "no") == 0) {
            d->acknowledge = false;
        } else {
            rg_seterr(err, errlen, "%s:%d: bad acknowledge '%s' (yes or no)", file, it->line, v);
            return -1;
        }
    } else if (strcmp(k, "user") == 0) {
        set_str(&d->user, v);
    } else if (strcmp(k, "pidfile") == 0) {
        if (v[0] != '/') {
            rg_seterr(err, errlen, "%s:%d: pidfile must be an absolute path", file, it->line);
            return -1;
        }
        set_str(&d->pidfile, v);
    } else {
        rg_seterr(err, errlen, "%s:%d: unknown key '%s' in block 'detect'", file, it->line, k);
        return -1;
    }
    return 0;
}

/* Keys that may be given once only; "limit" (and the dkim "key") repeat. */
static int
check_repeats(const rg_config *c, const rg_conf_block *b, char *err, size_t errlen)
{
    for (size_t i = 0; i < b->nitems; i++) {
        if (strcmp(b->items[i].key, "limit") == 0 || strcmp(b->items[i].key, "key") == 0)
            continue;
        if (strcmp(b->type, "webhooks") == 0 && strcmp(b->items[i].key, "url") == 0)
            continue;       /* several global webhook URLs */
        for (size_t j = 0; j < i; j++) {
            if (strcmp(b->items[i].key, b->items[j].key) == 0) {
                rg_seterr(err, errlen, "%s:%d: '%s' is already set at line %d", c->file,
                        b->items[i].line, b->items[i].key, b->items[j].line);
                return -1;
            }
        }
        if (b->items[i].value[0] == '\0') {
            rg_seterr(err, errlen, "%s:%d: missing value for '%s'", c->file, b->items[i].line,
                    b->items[i].key);
            return -1;
        }
    }
    return 0;
}

/* Read and check a file.  A new config, or NULL with "FILE:LINE: message" in err. */
rg_config *
rg_config_load(const char *path, char *err, size_t errlen)
{
    rg_conf *conf = rg_conf_parse_file(path, err, errlen);
    rg_config *c;
    int policyd_line = 0, milter_line = 0, dkim_line = 0;

    if (conf == NULL)
        return NULL;
    c = rg_config_new_default();
    c->file = rg_strdup(path);

    for (size_t bi = 0; bi < conf->nblocks; bi++) {
        const rg_conf_block *b = &conf->blocks[bi];
        int (*apply)(rg_config *, const rg_conf_item *, char *, size_t);

        if (bi == 0) {
            apply = apply_top;
        } else if (strcmp(b->type, "policyd") == 0) {
            if (b->name[0] != '\0') {
                rg_seterr(err, errlen, "%s:%d: block 'policyd' takes no name", path, b->line);
                goto fail;
            }
            if (policyd_line != 0) {
                rg_seterr(err, errlen, "%s:%d: second 'policyd' block (the first is at line %d)",
                        path, b->line, policyd_line);
                goto fail;
            }
            policyd_line = b->line;
            apply = apply_policyd;
        } else if (strcmp(b->type, "milter") == 0 || strcmp(b->type, "dkim") == 0) {
            int *seen = b->type[0] == 'm' ? &milter_line : &dkim_line;
            if (b->name[0] != '\0') {
                rg_seterr(err, errlen, "%s:%d: block '%s' takes no name", path, b->line, b->type);
                goto fail;
            }
            if (*seen != 0) {
                rg_seterr(err, errlen, "%s:%d: second '%s' block (the first is at line %d)",
                        path, b->line, b->type, *seen);
                goto fail;
            }
            *seen = b->line;
            apply = b->type[0] == 'm' ? apply_milter : apply_dkim;
        } else if (strcmp(b->type, "bounce") == 0) {
            if (b->name[0] != '\0') {
                rg_seterr(err, errlen, "%s:%d: block 'bounce' takes no name", path, b->line);
                goto fail;
            }
            if (c->bounce.line != 0) {
                rg_seterr(err, errlen, "%s:%d: second 'bounce' block (the first is at line %d)",
                        path, b->line, c->bounce.line);
                goto fail;
            }
            c->bounce.line = b->line;
            apply = apply_bounce;
        } else if (strcmp(b->type, "webhooks") == 0) {
            if (b->name[0] != '\0') {
                rg_seterr(err, errlen, "%s:%d: block 'webhooks' takes no name", path, b->line);
                goto fail;
            }
            if (c->webhooks.line != 0) {
                rg_seterr(err, errlen, "%s:%d: second 'webhooks' block (the first is at line %d)",
                        path, b->line, c->webhooks.line);
                goto fail;
            }
            c->webhooks.line = b->line;
            apply = apply_webhooks;
        } else if (strcmp(b->type, "detect") == 0) {
            if (b->name[0] != '\0') {
                rg_seterr(err, errlen, "%s:%d: block 'detect' takes no name", path, b->line);
                goto fail;
            }
            if (c->detect.line != 0) {
                rg_seterr(err, errlen, "%s:%d: second 'detect' block (the first is at line %d)",
                        path, b->line, c->detect.line);
                goto fail;
            }
            c->detect.line = b->line;
            apply = apply_detect;
        } else if (strcmp(b->type, "account") == 0) {
            rg_seterr(err, errlen, "%s:%d: 'account' blocks do not belong in relayguard.conf; "
                    "put them in an accounts file and load it with 'relayguard load FILE'",
                    path, b->line);
            goto fail;
        } else {
            rg_seterr(err, errlen, "%s:%d: unknown block '%s'", path, b->line, b->type);
            goto fail;
        }
        if (check_repeats(c, b, err, errlen) < 0)
            goto fail;
        for (size_t i = 0; i < b->nitems; i++)
            if (apply(c, &b->items[i], err, errlen) < 0)
                goto fail;
    }
    if (c->bounce.line != 0) {
        bool signer = false;
        for (size_t i = 0; i < c->bounce.n_keys; i++)
            signer = signer || c->bounce.keys[i].retired == 0;
        if (c->bounce.domain == NULL || !signer) {
            rg_seterr(err, errlen, "%s:%d: block 'bounce' needs a domain and a key that is "
                    "not retired", path, c->bounce.line);
            goto fail;
        }
    }
    if (c->webhooks.line != 0 && c->webhooks.secret == NULL) {
        rg_seterr(err, errlen, "%s:%d: block 'webhooks' needs a secret (the HMAC key that "
                "signs every POST)", path, c->webhooks.line);
        goto fail;
    }
    rg_conf_free(conf);
    return c;

fail:
    rg_conf_free(conf);
    rg_config_free(c);
    return NULL;
}
