/*
 * account.c - accounts (account.h): parse from "account NAME { }" blocks and
 * Redis hash fields, serialise back, and the indexed set the engine looks
 * accounts up in.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "account.h"
#include "config.h"
#include "util.h"

#define LOGIN_MAX 127

/* A valid account name: 1..64 of [A-Za-z0-9._@+-]. */
bool
rg_account_name_valid(const char *name)
{
    size_t n = 0;

    if (name == NULL)
        return false;
    for (; name[n]; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '+' || c == '-'))
            return false;
    }
    return n >= 1 && n <= 64;
}

static char **
strv_empty(void)
{
    char **v = rg_malloc(sizeof *v);

    v[0] = NULL;
    return v;
}

/* A new, empty account (no domains: sends for nothing yet).  Never NULL;
 * free with rg_account_free.  The name is not checked here. */
rg_account *
rg_account_new(const char *name)
{
    rg_account *a = rg_calloc(1, sizeof *a);

    a->name = rg_strdup(name);
    a->logins = strv_empty();
    a->local_users = strv_empty();
    a->domains = strv_empty();
    a->countries = strv_empty();
    a->webhook_events = strv_empty();
    a->detect_action = -1;
    a->bounces = -1;
    return a;
}

/* Free an account; NULL is fine. */
void
rg_account_free(rg_account *a)
{
    if (a == NULL)
        return;
    free(a->name);
    rg_strv_free(a->logins);
    rg_strv_free(a->local_users);
    rg_strv_free(a->domains);
    rg_strv_free(a->countries);
    free(a->client_networks);
    free(a->networks);
    free(a->limits);
    free(a->feedback_id);
    free(a->list_unsubscribe);
    free(a->account_header);
    free(a->webhook_url);
    rg_strv_free(a->webhook_events);
    free(a->webhook_secret);
    free(a->throttle);
    free(a);
}

/* A header field body: printable UTF-8 on one line, 1..900 bytes. */
static bool
header_value_valid(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 900 && rg_text_clean(s);
}

/* A header field name: 1..76 of printable ASCII without ':'. */
static bool
header_name_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] <= 32 || (unsigned char)s[n] >= 127 || s[n] == ':')
            return false;
    return n >= 1 && n <= 76;
}

/* Replace *slot with a copy of v, or NULL for "". */
static void
set_opt_str(char **slot, const char *v)
{
    free(*slot);
    *slot = v[0] ? rg_strdup(v) : NULL;
}

/* Logins and local users: printable, no blanks, 1..127 bytes. */
static bool
login_valid(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= LOGIN_MAX && rg_text_clean(s) && strpbrk(s, " \t") == NULL;
}

/* A domain pattern: "*", or an optional leading dot then labels of
 * [a-z0-9_-] (or UTF-8), lower-cased in place. */
static bool
domain_pattern_valid(char *s)
{
    size_t label = 0;

    if (strcmp(s, "*") == 0)
        return true;
    rg_lower(s);
    if (*s == '.')
        s++;
    if (*s == '\0' || strlen(s) > 253)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_' || c >= 0x80) {
            label++;
        } else {
            return false;
        }
    }
    return label > 0;
}

/* Parse a network list into a new array.  0, or -1 naming the bad entry. */
static int
parse_networks(const char *key, const char *value, rg_cidr **out, size_t *nout,
               char *err, size_t errlen)
{
    char **v = rg_strv_split(value);
    size_t n = rg_strv_len(v);
    rg_cidr *nets = n ? rg_calloc(n, sizeof *nets) : NULL;

    for (size_t i = 0; i < n; i++) {
        if (rg_cidr_parse(v[i], &nets[i]) < 0) {
            rg_seterr(err, errlen, "bad network '%s' in '%s'", v[i], key);
            free(nets);
            rg_strv_free(v);
            return -1;
        }
    }
    rg_strv_free(v);
    free(*out);
    *out = nets;
    *nout = n;
    return 0;
}

/* Parse one limit spec and append it (default scope account).  0 or -1. */
static int
add_limit(rg_account *a, const char *spec, char *err, size_t errlen)
{
    rg_limit l;
    char why[256];

    if (rg_limit_parse(spec, RG_SCOPE_ACCOUNT, &l, why, sizeof why) < 0) {
        rg_seterr(err, errlen, "%s", why);
        return -1;
    }
    if (l.scope == RG_SCOPE_GLOBAL) {
        rg_seterr(err, errlen, "scope=global is for relayguard.conf, not inside an account: '%s'",
                spec);
        return -1;
    }
    for (size_t i = 0; i < a->n_limits; i++) {
        if (strcmp(a->limits[i].name, l.name) == 0 && a->limits[i].scope == l.scope) {
            rg_seterr(err, errlen, "two limits named '%s' with the same scope (give one a name=)",
                    l.name);
            return -1;
        }
    }
    a->limits = rg_realloc(a->limits, (a->n_limits + 1) * sizeof *a->limits);
    a->limits[a->n_limits++] = l;
    return 0;
}

static int
parse_bool(const char *s, bool *out)
{
    static const char *yes[] = { "yes", "true", "1", "on" };
    static const char *no[] = { "no", "false", "0", "off" };

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/*
 * Set one key from text: lists replace the old list, "limit" appends one
 * limit, "limits" replaces all limits with its lines.  Returns 0, or -1 with
 * the reason in err (no file/line); the account is unchanged on error.
 */
int
rg_account_set(rg_account *a, const char *key, const char *value, char *err, size_t errlen)
{
    if (value == NULL)
        value = "";

    if (strcmp(key, "logins") == 0 || strcmp(key, "local_users") == 0) {
        bool logins = strcmp(key, "logins") == 0;
        char **v = rg_strv_split(value);
        for (char **p = v; *p; p++) {
            if (!login_valid(*p)) {
                rg_seterr(err, errlen, "bad %s '%s'", logins ? "login" : "local user", *p);
                rg_strv_free(v);
                return -1;
            }
        }
        char ***slot = logins ? &a->logins : &a->local_users;
        rg_strv_free(*slot);
        *slot = v;
    } else if (strcmp(key, "domains") == 0) {
        char **v = rg_strv_split(value);
        for (char **p = v; *p; p++) {
            if (!domain_pattern_valid(*p)) {
                rg_seterr(err, errlen, "bad domain '%s' (example.com, .example.com or *)", *p);
                rg_strv_free(v);
                return -1;
            }
        }
        rg_strv_free(a->domains);
        a->domains = v;
    } else if (strcmp(key, "countries") == 0) {
        char **v = rg_strv_split(value);
        for (char **p = v; *p; p++) {
            char *c = *p;
            if (strlen(c) != 2 || !isalpha((unsigned char)c[0]) || !isalpha((unsigned char)c[1])) {
                rg_seterr(err, errlen, "bad country '%s' (two letters, ISO 3166, e.g. DE)", c);
                rg_strv_free(v);
                return -1;
            }
            c[0] = (char)toupper((unsigned char)c[0]);
            c[1] = (char)toupper((unsigned char)c[1]);
        }
        rg_strv_free(a->countries);
        a->countries = v;
    } else if (strcmp(key, "client_networks") == 0) {
        return parse_networks(key, value, &a->client_networks, &a->n_client_networks,
                              err, errlen);
    } else if (strcmp(key, "networks") == 0) {
        return parse_networks(key, value, &a->networks, &a->n_networks, err, errlen);
    } else if (strcmp(key, "limit") == 0) {
        return add_limit(a, value, err, errlen);
    } else if (strcmp(key, "limits") == 0) {
        rg_limit *old = a->limits;
        size_t nold = a->n_limits;
        char *copy = rg_strdup(value), *save = NULL;

        a->limits = NULL;
        a->n_limits = 0;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            line[strcspn(line, "\r")] = '\0';
            if (line[strspn(line, " \t")] == '\0')
                continue;
            if (add_limit(a, line, err, errlen) < 0) {
                free(a->limits);
                a->limits = old;
                a->n_limits = nold;
                free(copy);
                return -1;
            }
        }
        free(old);
        free(copy);
    } else if (strcmp(key, "max_size") == 0) {
        uint64_t n;
        if (rg_size_parse(value, &n) < 0) {
            rg_seterr(err, errlen, "bad max_size '%s' (e.g. 10M, 512K, 0 for none)", value);
            return -1;
        }
        a->max_size = n;
    } else if (strcmp(key, "suspended") == 0) {
        if (parse_bool(value, &a->suspended) < 0) {
            rg_seterr(err, errlen, "bad suspended '%s' (yes or no)", value);
            return -1;
        }
    } else if (strcmp(key, "feedback_id") == 0 || strcmp(key, "list_unsubscribe") == 0) {
        if (value[0] && !header_value_valid(value)) {
            rg_seterr(err, errlen, "bad %s (printable text on one line, at most 900 bytes)", key);
            return -1;
        }
        if (key[0] == 'l' && value[0] && value[0] != '<') {
            rg_seterr(err, errlen, "bad list_unsubscribe '%s' (<https://...>, <mailto:...>)", value);
            return -1;
        }
        set_opt_str(key[0] == 'f' ? &a->feedback_id : &a->list_unsubscribe, value);
    } else if (strcmp(key, "bulk") == 0) {
        if (parse_bool(value, &a->bulk) < 0) {
            rg_seterr(err, errlen, "bad bulk '%s' (yes or no)", value);
            return -1;
        }
    } else if (strcmp(key, "account_header") == 0) {
        char **w = rg_strv_split(value);
        size_t n = rg_strv_len(w);
        bool ok = n == 0 || ((n == 1 || (n == 2 && strcmp(w[1], "hmac") == 0)) &&
                             header_name_valid(w[0]));
        if (!ok) {
            rg_seterr(err, errlen, "bad account_header '%s' (NAME or NAME hmac)", value);
            rg_strv_free(w);
            return -1;
        }
        set_opt_str(&a->account_header, n ? w[0] : "");
        a->account_header_hmac = n == 2;
        rg_strv_free(w);
    } else if (strcmp(key, "webhook_url") == 0) {
        if (value[0] && !rg_webhook_url_valid(value)) {
            rg_seterr(err, errlen, "bad webhook_url '%s' (http://HOST/PATH or https://HOST/PATH)",
                      value);
            return -1;
        }
        set_opt_str(&a->webhook_url, value);
    } else if (strcmp(key, "webhook_events") == 0) {
        char **l;
        if (rg_event_patterns_parse(value, &l) < 0) {
            rg_seterr(err, errlen, "bad webhook_events '%s' (event types or patterns such as "
                      "decision.reject, detection)", value);
            return -1;
        }
        rg_strv_free(a->webhook_events);
        a->webhook_events = l;
    } else if (strcmp(key, "webhook_secret") == 0) {
        if (value[0] && (strlen(value) < 16 || !rg_text_clean(value))) {
            rg_seterr(err, errlen, "bad webhook_secret (16 printable characters at least)");
            return -1;
        }
        set_opt_str(&a->webhook_secret, value);
    } else if (strcmp(key, "detect_action") == 0) {
        rg_detect_action act;
        if (value[0] == '\0' || strcmp(value, "default") == 0) {
            a->detect_action = -1;
        } else if (rg_detect_action_parse(value, &act) == 0) {
            a->detect_action = (int)act;
        } else {
            rg_seterr(err, errlen, "bad detect_action '%s' (alert, throttle or suspend)", value);
            return -1;
        }
    } else if (strcmp(key, "bounce_rate") == 0 || strcmp(key, "complaint_rate") == 0) {
        double *slot = key[0] == 'b' ? &a->bounce_rate : &a->complaint_rate;
        if (value[0] == '\0' || strcmp(value, "default") == 0) {
            *slot = 0;
        } else if (rg_rate_parse(value, slot) < 0) {
            rg_seterr(err, errlen, "bad %s '%s' (a percentage above 0, at most 100%%, e.g. %s)",
                      key, value, key[0] == 'b' ? "5%" : "0.1%");
            return -1;
        }
    } else if (strcmp(key, "bounces") == 0) {
        if (value[0] == '\0' || strcmp(value, "default") == 0) {
            a->bounces = -1;
        } else if (strcmp(value, "managed") == 0 || strcmp(value, "off") == 0) {
            a->bounces = value[0] == 'm';
        } else {
            rg_seterr(err, errlen, "bad bounces '%s' (managed, off or default)", value);
            return -1;
        }
    } else if (strcmp(key, "throttle") == 0) {
        rg_limit l;
        char why[256];
        if (value[0] == '\0') {
            free(a->throttle);
            a->throttle = NULL;
            return 0;
        }
        if (rg_limit_parse(value, RG_SCOPE_ACCOUNT, &l, why, sizeof why) < 0) {
            rg_seterr(err, errlen, "bad throttle: %s", why);
            return -1;
        }
        if (l.scope != RG_SCOPE_ACCOUNT) {
            rg_seterr(err, errlen, "bad throttle '%s' (the scope is the account)", value);
            return -1;
        }
        if (a->throttle == NULL)
            a->throttle = rg_malloc(sizeof *a->throttle);
        *a->throttle = l;
    } else if (strcmp(key, "throttle_until") == 0) {
        char *end;
        errno = 0;
        long long t = value[0] ? strtoll(value, &end, 10) : 0;
        if (value[0] && (errno != 0 || *end != '\0' || t < 0)) {
            rg_seterr(err, errlen, "bad throttle_until '%s' (Unix seconds)", value);
            return -1;
        }
        a->throttle_until = (int64_t)t;
    } else {
        rg_seterr(err, errlen, "unknown key '%s'", key);
        return -1;
    }
    return 0;
}

/* Build an account from an "account NAME { }" block.  NULL + "FILE:LINE: msg" in err. */
rg_account *
rg_account_from_block(const rg_conf *c, const rg_conf_block *b, char *err, size_t errlen)
{
    rg_account *a;
    char why[384];

    if (strcmp(b->type, "account") != 0) {
        rg_seterr(err, errlen, "%s:%d: expected 'account NAME {', not '%s'", c->file, b->line,
                b->type);
        return NULL;
    }
    if (!rg_account_name_valid(b->name)) {
        rg_seterr(err, errlen, "%s:%d: %s account name '%s' (1 to 64 of A-Z a-z 0-9 . _ @ + -)",
                c->file, b->line, b->name[0] ? "bad" : "missing", b->name);
        return NULL;
    }
    a = rg_account_new(b->name);
    for (size_t i = 0; i < b->nitems; i++) {
        const rg_conf_item *it = &b->items[i];
        if (strcmp(it->key, "limit") != 0) {
            for (size_t j = 0; j < i; j++) {
                if (strcmp(b->items[j].key, it->key) == 0) {
                    rg_seterr(err, errlen, "%s:%d: '%s' is already set at line %d", c->file,
                            it->line, it->key, b->items[j].line);
                    rg_account_free(a);
                    return NULL;
                }
            }
        }
        if (strcmp(it->key, "limits") == 0) {
            rg_seterr(err, errlen, "%s:%d: use one 'limit = SPEC' line per limit", c->file,
                    it->line);
            rg_account_free(a);
            return NULL;
        }
        if (rg_account_set(a, it->key, it->value, why, sizeof why) < 0) {
            rg_seterr(err, errlen, "%s:%d: %s", c->file, it->line, why);
            rg_account_free(a);
            return NULL;
        }
        /* a limit name relayguard keeps for itself (config.h) */
        if (strcmp(it->key, "limit") == 0 &&
            rg_limit_name_check(&a->limits[a->n_limits - 1], c->file, it->line, err, errlen) < 0) {
            rg_account_free(a);
            return NULL;
        }
    }
    return a;
}

/* "a,b,c" as a new string. */
static char *
strv_join(char *const *v)
{
    size_t len = 1;
    char *s, *p;

    for (char *const *q = v; *q; q++)
        len += strlen(*q) + 1;
    s = p = rg_malloc(len);
    *p = '\0';
    for (char *const *q = v; *q; q++) {
        size_t n = strlen(*q);
        if (q != v)
            *p++ = ',';
        memcpy(p, *q, n);
        p += n;
        *p = '\0';
    }
    return s;
}

/* "net/prefix" text into buf (INET6_ADDRSTRLEN + 4 bytes is enough). */
static void
cidr_text(const rg_cidr *c, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];

    if (inet_ntop(c->family, c->addr, a, sizeof a) == NULL)
        a[0] = '\0';
    snprintf(buf, len, "%s/%u", a, c->prefix);
}

/* "192.0.2.0/24,2001:db8::/32" as a new string. */
static char *
cidrs_join(const rg_cidr *nets, size_t n)
{
    char *s = rg_malloc(n * (INET6_ADDRSTRLEN + 5) + 1);
    size_t o = 0;

    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char one[INET6_ADDRSTRLEN + 5];
        cidr_text(&nets[i], one, sizeof one);
        size_t l = strlen(one);
        if (i)
            s[o++] = ',';
        memcpy(s + o, one, l + 1);
        o += l;
    }
    return s;
}

/*
 * Field/value pairs for the Redis hash in this order: logins, local_users,
 * client_networks, domains, networks, countries, limits, max_size,
 * suspended.  Every field is written (empty lists as "").  Up to max pairs;
 * values are new strings the caller frees; returns the count.
 */
size_t
rg_account_to_fields(const rg_account *a, const char **keys, char **values, size_t max)
{
    static const char *names[] = { "logins", "local_users", "client_networks", "domains",
                                   "networks", "countries", "limits", "max_size", "suspended" };
    size_t n = 0;

    for (size_t i = 0; i < sizeof names / sizeof names[0] && n < max; i++) {
        char *v;
        switch (i) {
        case 0: v = strv_join(a->logins); break;
        case 1: v = strv_join(a->local_users); break;
        case 2: v = cidrs_join(a->client_networks, a->n_client_networks); break;
        case 3: v = strv_join(a->domains); break;
        case 4: v = cidrs_join(a->networks, a->n_networks); break;
        case 5: v = strv_join(a->countries); break;
        case 6: {
            v = rg_malloc(a->n_limits * 256 + 1);
            size_t o = 0;
            v[0] = '\0';
            for (size_t j = 0; j < a->n_limits; j++) {
                char one[256];
                rg_limit_format(&a->limits[j], one, sizeof one);
                size_t l = strlen(one);
                if (j)
                    v[o++] = '\n';
                memcpy(v + o, one, l + 1);
                o += l;
            }
            break;
        }
        case 7: {
            char num[24];
            snprintf(num, sizeof num, "%llu", (unsigned long long)a->max_size);
            v = rg_strdup(num);
            break;
        }
        default: v = rg_strdup(a->suspended ? "yes" : "no"); break;
        }
        keys[n] = names[i];
        values[n] = v;
        n++;
    }
    /* header policy: only when set, so accounts without it look as before */
    if (a->feedback_id && n < max) {
        keys[n] = "feedback_id";
        values[n++] = rg_strdup(a->feedback_id);
    }
    if (a->list_unsubscribe && n < max) {
        keys[n] = "list_unsubscribe";
        values[n++] = rg_strdup(a->list_unsubscribe);
    }
    if (a->bulk && n < max) {
        keys[n] = "bulk";
        values[n++] = rg_strdup("yes");
    }
    if (a->account_header && n < max) {
        size_t l = strlen(a->account_header) + 6;
        char *v = rg_malloc(l);
        snprintf(v, l, "%s%s", a->account_header, a->account_header_hmac ? " hmac" : "");
        keys[n] = "account_header";
        values[n++] = v;
    }
    /* webhooks: only when set, like the header policy */
    if (a->webhook_url && n < max) {
        keys[n] = "webhook_url";
        values[n++] = rg_strdup(a->webhook_url);
    }
    if (a->webhook_events[0] && n < max) {
        keys[n] = "webhook_events";
        values[n++] = strv_join(a->webhook_events);
    }
    if (a->webhook_secret && n < max) {
        keys[n] = "webhook_secret";
        values[n++] = rg_strdup(a->webhook_secret);
    }
    /* detection: only when set */
    if (a->detect_action >= 0 && n < max) {
        keys[n] = "detect_action";
        values[n++] = rg_strdup(rg_detect_action_name((rg_detect_action)a->detect_action));
    }
    if (a->throttle && n < max) {
        char spec[256];
        keys[n] = "throttle";
        values[n++] = rg_strdup(rg_limit_format(a->throttle, spec, sizeof spec));
    }
    if (a->bounces >= 0 && n < max) {
        keys[n] = "bounces";
        values[n++] = rg_strdup(a->bounces ? "managed" : "off");
    }
    const struct { const char *key; double rate; } rates[] = {
        { "bounce_rate", a->bounce_rate }, { "complaint_rate", a->complaint_rate },
    };
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        if (rates[i].rate > 0 && n < max) {
            char num[32];
            snprintf(num, sizeof num, "%.6g%%", rates[i].rate * 100);
            keys[n] = rates[i].key;
            values[n++] = rg_strdup(num);
        }
    }
    if (a->throttle_until > 0 && n < max) {
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)a->throttle_until);
        keys[n] = "throttle_until";
        values[n++] = rg_strdup(num);
    }
    return n;
}

/*
 * Build from hash fields.  Fields this version does not know are skipped
 * (newer writers may add some); "limits" and "limit" are both read.
 * NULL + "account 'NAME': field 'KEY': reason" on error.
 */
rg_account *
rg_account_from_fields(const char *name, char *const *keys, char *const *values,
                       size_t n, char *err, size_t errlen)
{
    static const char *known[] = { "logins", "local_users", "client_networks", "domains",
                                   "networks", "countries", "limits", "limit", "max_size",
                                   "suspended", "feedback_id", "list_unsubscribe", "bulk",
                                   "account_header", "webhook_url", "webhook_events",
                                   "webhook_secret", "detect_action", "throttle",
                                   "throttle_until", "bounces", "bounce_rate",
                                   "complaint_rate" };
    rg_account *a;
    char why[384];

    if (!rg_account_name_valid(name)) {
        rg_seterr(err, errlen, "bad account name '%s'", name ? name : "");
        return NULL;
    }
    a = rg_account_new(name);
    for (size_t i = 0; i < n; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            ok |= strcmp(keys[i], known[k]) == 0;
        if (!ok)
            continue;
        if (rg_account_set(a, keys[i], values[i], why, sizeof why) < 0) {
            rg_seterr(err, errlen, "account '%s': field '%s': %s", name, keys[i], why);
            rg_account_free(a);
            return NULL;
        }
    }
    return a;
}

bool
rg_account_bounces_managed(const rg_account *a, bool managed_default)
{
    return a->bounces < 0 ? managed_default : a->bounces == 1;
}

const rg_limit *
rg_account_throttle(const rg_account *a, uint64_t now_ms)
{
    if (a->throttle == NULL || a->throttle_until <= 0 ||
        now_ms >= (uint64_t)a->throttle_until * 1000)
        return NULL;
    return a->throttle;
}

/* Sender domain among the account's patterns (none listed: nothing allowed). */
bool
rg_account_allows_domain(const rg_account *a, const char *domain)
{
    return rg_domain_match_any(a->domains, domain);
}

/* Client inside one of the networks (none listed: any). */
bool
rg_account_allows_network(const rg_account *a, const rg_cidr *ip)
{
    if (a->n_networks == 0)
        return true;
    for (size_t i = 0; i < a->n_networks; i++)
        if (rg_cidr_contains(&a->networks[i], ip))
            return true;
    return false;
}

/* Country among the listed ones (none listed: any; an unknown country, NULL
 * or "", passes only then). */
bool
rg_account_allows_country(const rg_account *a, const char *cc)
{
    if (a->countries[0] == NULL)
        return true;
    if (cc == NULL || cc[0] == '\0')
        return false;
    for (char **p = a->countries; *p; p++)
        if (strcasecmp(*p, cc) == 0)
            return true;
    return false;
}

/* ---- the indexed set ---- */

/* Open-addressing hash map: string key (owned) -> account. */
typedef struct amap_entry {
    char *key;
    rg_account *acct;
} amap_entry;

typedef struct amap {
    amap_entry *e;
    size_t cap;     /* power of two, or 0 */
    size_t n;
} amap;

static uint64_t
hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;       /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static rg_account *
amap_get(const amap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->e[i].key == NULL)
            return NULL;
        if (strcmp(m->e[i].key, key) == 0)
            return m->e[i].acct;
    }
}

/* Insert key (taking ownership of it); the caller checked it is absent. */
static void
amap_put(amap *m, char *key, rg_account *a)
{
    if ((m->n + 1) * 10 > m->cap * 7) {
        amap old = *m;
        m->cap = old.cap ? old.cap * 2 : 64;
        m->e = rg_calloc(m->cap, sizeof *m->e);
        m->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.e[i].key)
                amap_put(m, old.e[i].key, old.e[i].acct);
        free(old.e);
    }
    size_t i = hash_str(key) & (m->cap - 1);
    while (m->e[i].key != NULL)
        i = (i + 1) & (m->cap - 1);
    m->e[i].key = key;
    m->e[i].acct = a;
    m->n++;
}

static void
amap_free(amap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->e[i].key);
    free(m->e);
    memset(m, 0, sizeof *m);
}

typedef struct client_entry {
    rg_cidr net;
    rg_account *acct;
} client_entry;

struct rg_accounts {
    rg_account **v;
    size_t n, cap;
    amap by_name;
    amap by_login;          /* keys lower-cased */
    amap by_local_user;
    client_entry *clients;  /* scanned linearly: few accounts have client networks */
    size_t nclients;
};

rg_accounts *
rg_accounts_new(void)
{
    return rg_calloc(1, sizeof(rg_accounts));
}

/* Free the set and every account in it; NULL is fine. */
void
rg_accounts_free(rg_accounts *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        rg_account_free(s->v[i]);
    free(s->v);
    amap_free(&s->by_name);
    amap_free(&s->by_login);
    amap_free(&s->by_local_user);
    free(s->clients);
    free(s);
}

/* The logins of a, lower-cased, with its name first and duplicates removed.
 * A new list (rg_strv_free). */
static char **
login_keys(const rg_account *a)
{
    size_t n = rg_strv_len(a->logins);
    char **v = rg_malloc((n + 2) * sizeof *v);
    size_t k = 0;

    v[k++] = rg_lower(rg_strdup(a->name));
    for (size_t i = 0; i < n; i++) {
        char *l = rg_lower(rg_strdup(a->logins[i]));
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = strcmp(v[j], l) == 0;
        if (dup)
            free(l);
        else
            v[k++] = l;
    }
    v[k] = NULL;
    return v;
}

static bool
cidr_equal(const rg_cidr *x, const rg_cidr *y)
{
    return x->family == y->family && x->prefix == y->prefix &&
           memcmp(x->addr, y->addr, sizeof x->addr) == 0;
}

/*
 * Add a, taking ownership (a is freed on error too).  Returns 0, or -1 with
 * a message when the name is taken or a login, local user or client network
 * is already claimed by another account; the set is unchanged then.
 */
int
rg_accounts_add(rg_accounts *s, rg_account *a, char *err, size_t errlen)
{
    char **logins = login_keys(a);
    const rg_account *other;

    if (amap_get(&s->by_name, a->name) != NULL) {
        rg_seterr(err, errlen, "duplicate account '%s'", a->name);
        goto fail;
    }
    for (char **p = logins; *p; p++) {
        if ((other = amap_get(&s->by_login, *p)) != NULL) {
            rg_seterr(err, errlen, "login '%s' is claimed by accounts '%s' and '%s'", *p,
                    other->name, a->name);
            goto fail;
        }
    }
    for (char **p = a->local_users; *p; p++) {
        if ((other = amap_get(&s->by_local_user, *p)) != NULL) {
            rg_seterr(err, errlen, "local user '%s' is claimed by accounts '%s' and '%s'", *p,
                    other->name, a->name);
            goto fail;
        }
        for (char **q = a->local_users; q < p; q++) {
            if (strcmp(*q, *p) == 0) {
                rg_seterr(err, errlen, "local user '%s' is listed twice in account '%s'", *p,
                        a->name);
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < a->n_client_networks; i++) {
        for (size_t j = 0; j < s->nclients; j++) {
            if (cidr_equal(&s->clients[j].net, &a->client_networks[i])) {
                char t[INET6_ADDRSTRLEN + 5];
                cidr_text(&a->client_networks[i], t, sizeof t);
                rg_seterr(err, errlen, "client network %s is claimed by accounts '%s' and '%s'",
                        t, s->clients[j].acct->name, a->name);
                goto fail;
            }
        }
    }

    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = rg_realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = a;
    amap_put(&s->by_name, rg_strdup(a->name), a);
    for (char **p = logins; *p; p++) {
        amap_put(&s->by_login, *p, a);      /* takes the string */
        *p = NULL;
    }
    free(logins);
    for (char **p = a->local_users; *p; p++)
        amap_put(&s->by_local_user, rg_strdup(*p), a);
    if (a->n_client_networks > 0) {
        s->clients = rg_realloc(s->clients,
                                (s->nclients + a->n_client_networks) * sizeof *s->clients);
        for (size_t i = 0; i < a->n_client_networks; i++) {
            s->clients[s->nclients].net = a->client_networks[i];
            s->clients[s->nclients].acct = a;
            s->nclients++;
        }
    }
    return 0;

fail:
    rg_strv_free(logins);
    rg_account_free(a);
    return -1;
}

size_t
rg_accounts_count(const rg_accounts *s)
{
    return s->n;
}

/* The i-th account in the order added; NULL past the end. */
const rg_account *
rg_accounts_at(const rg_accounts *s, size_t i)
{
    return i < s->n ? s->v[i] : NULL;
}

/* Exact name, or NULL. */
const rg_account *
rg_accounts_by_name(const rg_accounts *s, const char *name)
{
    return name ? amap_get(&s->by_name, name) : NULL;
}

/* Account claiming this login (its name counts as one), case-insensitive; or NULL. */
const rg_account *
rg_accounts_by_login(const rg_accounts *s, const char *login)
{
    char buf[LOGIN_MAX + 1];

    if (login == NULL || rg_strlcpy(buf, login, sizeof buf) >= sizeof buf)
        return NULL;
    return amap_get(&s->by_login, rg_lower(buf));
}

/* Account listing this unix user (case-sensitive), or NULL. */
const rg_account *
rg_accounts_by_local_user(const rg_accounts *s, const char *user)
{
    return user ? amap_get(&s->by_local_user, user) : NULL;
}

/* Account whose client network holds ip, the longest prefix winning; or NULL.
 * A linear scan over the client networks: few accounts have them. */
const rg_account *
rg_accounts_by_client(const rg_accounts *s, const rg_cidr *ip)
{
    const client_entry *best = NULL;

    if (ip == NULL)
        return NULL;
    for (size_t i = 0; i < s->nclients; i++) {
        const client_entry *c = &s->clients[i];
        if (rg_cidr_contains(&c->net, ip) && (best == NULL || c->net.prefix > best->net.prefix))
            best = c;
    }
    return best ? best->acct : NULL;
}

/* Read every "account NAME { }" block of a file.  NULL + "FILE:LINE: msg" in err. */
rg_accounts *
rg_accounts_load_file(const char *path, char *err, size_t errlen)
{
    rg_conf *c = rg_conf_parse_file(path, err, errlen);
    rg_accounts *s;
    char why[512];

    if (c == NULL)
        return NULL;
    if (c->blocks[0].nitems > 0) {
        rg_seterr(err, errlen, "%s:%d: '%s' outside an account block "
                "(an accounts file holds only 'account NAME { }' blocks)",
                path, c->blocks[0].items[0].line, c->blocks[0].items[0].key);
        rg_conf_free(c);
        return NULL;
    }
    s = rg_accounts_new();
    for (size_t i = 1; i < c->nblocks; i++) {
        const rg_conf_block *b = &c->blocks[i];
        if (strcmp(b->type, "account") != 0) {
            rg_seterr(err, errlen, "%s:%d: unknown block '%s' "
                    "(an accounts file holds only 'account NAME { }' blocks)",
                    path, b->line, b->type);
            goto fail;
        }
        rg_account *a = rg_account_from_block(c, b, err, errlen);
        if (a == NULL)
            goto fail;
        if (rg_accounts_add(s, a, why, sizeof why) < 0) {
            rg_seterr(err, errlen, "%s:%d: %s", path, b->line, why);
            goto fail;
        }
    }
    rg_conf_free(c);
    return s;

fail:
    rg_conf_free(c);
    rg_accounts_free(s);
    return NULL;
}
