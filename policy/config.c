/*
 * config.c - load and check relayguard.conf (keys and defaults in config.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

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
    c->reservation_ttl_ms = 10 * 60 * 1000;
    c->log = RG_LOG_SYSLOG;
    c->log_level = LOG_INFO;
    c->policyd.listen = rg_strdup("inet:127.0.0.1:10040");
    c->policyd.max_connections = 10000;
    c->policyd.idle_timeout_ms = 300 * 1000;
    c->milter.listen = rg_strdup("unix:/run/relayguard/milter.sock");
    c->milter.store_connections = 8;
    c->milter.timeout_ms = 300 * 1000;
    c->dkim.sign_headers = strv_copy(rg_dkim_default_sign_headers);
    c->dkim.oversign = rg_strv_split("from");
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
    free(c->milter.listen);
    free(c->milter.user);
    free(c->milter.pidfile);
    free(c->milter.header_secret);
    for (size_t i = 0; i < c->dkim.n_keys; i++) {
        free(c->dkim.keys[i].domain);
        free(c->dkim.keys[i].selector);
        free(c->dkim.keys[i].path);
    }
    free(c->dkim.keys);
    rg_strv_free(c->dkim.sign_headers);
    rg_strv_free(c->dkim.oversign);
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
        for (size_t i = 0; i < c->n_limits; i++) {
            if (strcmp(c->limits[i].name, l.name) == 0 && c->limits[i].scope == l.scope) {
                rg_seterr(err, errlen, "%s:%d: a limit named '%s' with this scope exists already",
                        file, it->line, l.name);
                return -1;
            }
        }
        c->limits = rg_realloc(c->limits, (c->n_limits + 1) * sizeof *c->limits);
        c->limits[c->n_limits++] = l;
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

/* Keys that may be given once only; "limit" (and the dkim "key") repeat. */
static int
check_repeats(const rg_config *c, const rg_conf_block *b, char *err, size_t errlen)
{
    for (size_t i = 0; i < b->nitems; i++) {
        if (strcmp(b->items[i].key, "limit") == 0 || strcmp(b->items[i].key, "key") == 0)
            continue;
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
    rg_conf_free(conf);
    return c;

fail:
    rg_conf_free(conf);
    rg_config_free(c);
    return NULL;
}
