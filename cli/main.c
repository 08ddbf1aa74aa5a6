/*
 * relayguard - the admin command line: accounts, limits, suppression,
 * events, stats, config checks and declarative account sync.
 *
 * It only translates arguments into admin store calls (policy/admin.h) and
 * their results into text or JSON; no policy is decided here.
 *
 * Exit codes: 0 ok, 1 not found / negative answer, 2 usage or config
 * error, 3 store error.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "account.h"
#include "admin.h"
#include "conf.h"
#include "keys.h"
#include "limit.h"
#include "match.h"
#include "util.h"

#include "config.h"      /* policy/config.h: relayguard.conf */
#include "dkim.h"

#ifndef RG_VERSION
#define RG_VERSION "unknown"
#endif

enum { EX_OK = 0, EX_NO = 1, EX_USAGE = 2, EX_STORE = 3 };

#define IMPORT_BATCH 1000     /* suppression rows per round trip */
#define COMMIT_TRIES 10       /* optimistic account transactions before giving up */

/* --- common state and messages ------------------------------------------------ */

typedef struct cli {
    const char *conf_path;
    bool json;
    rg_config *cfg;
    rg_admin *ad;
} cli;

static cli g_cli;   /* single-threaded program: one invocation, one state */

static void cli_cleanup(void)
{
    rg_admin_close(&g_cli.ad);
    if (g_cli.cfg) {
        rg_config_free(g_cli.cfg);
        g_cli.cfg = NULL;
    }
}

static void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx(const char *fmt, ...)
{
    va_list ap;
    fputs("relayguard: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void usage(FILE *f);
int rg_cli_bounce(int argc, char **argv, const char *conf_path, bool json);   /* cli/bounce.c */
int rg_cli_webhooks(const char *conf_path, bool json, int argc, char **argv); /* cli/webhooks.c */
int rg_cli_account_resume(const char *conf_path, int argc, char **argv);      /* cli/detect.c */

/* A usage error: message, a pointer to help, exit 2. */
static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("relayguard: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    usage(stderr);
    cli_cleanup();
    exit(EX_USAGE);
}

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("relayguard: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cli_cleanup();
    exit(code);
}

/* The loaded config; exits 2 when it cannot be read. */
static const rg_config *config(void)
{
    if (g_cli.cfg == NULL) {
        char err[1024];
        g_cli.cfg = rg_config_load(g_cli.conf_path, err, sizeof err);
        if (g_cli.cfg == NULL)
            die(EX_USAGE, "%s", err);
    }
    return g_cli.cfg;
}

/* The store connection; exits 2 (config) or 3 (store) when it cannot be had. */
static rg_admin *store(void)
{
    if (g_cli.ad == NULL) {
        char err[1024];
        g_cli.ad = rg_admin_connect(config(), err, sizeof err);
        if (g_cli.ad == NULL)
            die(EX_STORE, "%s", err);
    }
    return g_cli.ad;
}

static void store_failed(void) __attribute__((noreturn));
static void store_failed(void)
{
    die(EX_STORE, "%s", rg_admin_error(g_cli.ad));
}

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* --- options -------------------------------------------------------------------------- */

typedef struct optdef {
    const char *name;     /* long name without "--" */
    bool has_arg;
} optdef;

#define MAX_OPTS 64
#define MAX_POS  8

typedef struct args {
    const char *opt[MAX_OPTS];
    const char *val[MAX_OPTS];
    size_t nopt;
    const char *pos[MAX_POS];
    size_t npos;
} args;

static const optdef global_opts[] = {
    { "config", true }, { "json", false }, { "help", false }, { NULL, false }
};

static const optdef *find_opt(const optdef *defs, const char *name, size_t len)
{
    for (const optdef *d = defs; d && d->name; d++)
        if (strlen(d->name) == len && strncmp(d->name, name, len) == 0)
            return d;
    return NULL;
}

/*
 * Parse argv[0..argc) against defs (plus the global -c/--config/--json
 * anywhere).  "--opt=value", "--opt value", "--" ends options, "-" is a
 * positional (stdin).  Usage errors exit.
 */
static void parse_args(int argc, char **argv, const optdef *defs, args *a)
{
    bool opts_done = false;
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (opts_done || s[0] != '-' || strcmp(s, "-") == 0) {
            if (a->npos == MAX_POS)
                usage_error("too many arguments");
            a->pos[a->npos++] = s;
            continue;
        }
        if (strcmp(s, "--") == 0) {
            opts_done = true;
            continue;
        }
        if (strcmp(s, "-c") == 0) {
            if (i + 1 >= argc)
                usage_error("-c needs a file");
            g_cli.conf_path = argv[++i];
            continue;
        }
        if (strcmp(s, "-h") == 0) {
            usage(stdout);
            cli_cleanup();
            exit(EX_OK);
        }
        if (s[1] != '-')
            usage_error("unknown option '%s'", s);
        const char *name = s + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const optdef *d = find_opt(defs, name, len);
        const optdef *g = d ? NULL : find_opt(global_opts, name, len);
        if (d == NULL && g == NULL)
            usage_error("unknown option '--%.*s'", (int)len, name);
        const optdef *def = d ? d : g;
        const char *val = NULL;
        if (def->has_arg) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                usage_error("--%s needs a value", def->name);
        } else if (eq) {
            usage_error("--%s takes no value", def->name);
        }
        if (g) {
            if (strcmp(g->name, "config") == 0)
                g_cli.conf_path = val;
            else if (strcmp(g->name, "json") == 0)
                g_cli.json = true;
            else {
                usage(stdout);
                cli_cleanup();
                exit(EX_OK);
            }
            continue;
        }
        if (a->nopt == MAX_OPTS)
            usage_error("too many options");
        a->opt[a->nopt] = def->name;
        a->val[a->nopt++] = val ? val : "";
    }
}

/* Last value of an option, or NULL. */
static const char *opt_get(const args *a, const char *name)
{
    for (size_t i = a->nopt; i-- > 0;)
        if (strcmp(a->opt[i], name) == 0)
            return a->val[i];
    return NULL;
}

static bool opt_has(const args *a, const char *name)
{
    return opt_get(a, name) != NULL;
}

static void want_pos(const args *a, size_t min, size_t max, const char *what)
{
    if (a->npos < min)
        usage_error("%s: missing argument", what);
    if (a->npos > max)
        usage_error("%s: unexpected argument '%s'", what, a->pos[max]);
}

/* --- text helpers ------------------------------------------------------------------ */

/* ISO 8601 UTC "2026-11-24T13:45:01Z". */
static void fmt_iso(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "%" PRId64, t);
}

/* A date at midnight UTC as "2026-11-01", any other time as fmt_iso. */
static void fmt_date(int64_t t, char *buf, size_t len)
{
    if (t % 86400 == 0) {
        time_t tt = (time_t)t;
        struct tm tm;
        if (gmtime_r(&tt, &tm) && strftime(buf, len, "%Y-%m-%d", &tm) > 0)
            return;
    }
    fmt_iso(t, buf, len);
}

/*
 * Parse a time: "2026-11-01" (midnight UTC), "2026-11-01T13:45[:01][Z]",
 * or Unix seconds.  0 / -1.
 */
static int parse_time(const char *s, int64_t *out)
{
    if (*s == '\0')
        return -1;
    if (strspn(s, "0123456789") == strlen(s)) {
        if (strlen(s) > 12)
            return -1;
        *out = strtoll(s, NULL, 10);
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return -1;
    const char *p = s + n;
    if (*p == 'T' || *p == ' ') {
        int m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &m) != 2 || m != 5)
            return -1;
        p += 1 + m;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &sec, &m) != 1 || m != 2)
                return -1;
            p += 1 + m;
        }
        if (*p == 'Z')
            p++;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    struct tm back;
    if (t == (time_t)-1 || gmtime_r(&t, &back) == NULL || back.tm_mday != d)
        return -1;   /* 2026-02-31 */
    *out = t;
    return 0;
}

/* --expires: "never"/"0", a duration with a unit ("30d", "12h"), or parse_time. */
static int parse_expires(const char *s, int64_t now, int64_t *out)
{
    size_t len = strlen(s);
    uint64_t ms;
    if (strcmp(s, "never") == 0 || strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (len > 1 && isalpha((unsigned char)s[len - 1]) && s[len - 1] != 'Z'
        && strchr(s, '-') == NULL) {
        if (rg_duration_parse(s, &ms) < 0 || ms < 1000)
            return -1;
        *out = now + (int64_t)(ms / 1000);
        return 0;
    }
    return parse_time(s, out);
}

/* Write s to f with control bytes shown as '?' (a terminal is no place for them). */
static void put_clean(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, f);
}

/* Length of the valid UTF-8 sequence at s, 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    unsigned min;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    else if ((c & 0xe0) == 0xc0) { n = 2; c &= 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { n = 3; c &= 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { n = 4; c &= 0x07; min = 0x10000; }
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return n;
}

/* A JSON string literal; invalid UTF-8 becomes U+FFFD. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    if (s == NULL)
        s = "";
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p++, f);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\u%04x", *p++);
        } else {
            size_t n = utf8_len(p);
            if (n == 0) {
                fputs("\\ufffd", f);
                p++;
            } else {
                fwrite(p, 1, n, f);
                p += n;
            }
        }
    }
    fputc('"', f);
}

/* ",\n  " between JSON members/elements after the first. */
static void json_sep(FILE *f, bool *first)
{
    if (!*first)
        fputc(',', f);
    *first = false;
}

/* --- account --------------------------------------------------------------------- */

/* CLI option -> account key (account.h file syntax). */
static const struct {
    const char *opt;
    const char *key;
} account_opt_keys[] = {
    { "domains", "domains" },
    { "networks", "networks" },
    { "countries", "countries" },
    { "logins", "logins" },
    { "local-users", "local_users" },
    { "client-networks", "client_networks" },
    { "max-size", "max_size" },
    { "feedback-id", "feedback_id" },
    { "list-unsubscribe", "list_unsubscribe" },
    { "account-header", "account_header" },
    { "webhook-url", "webhook_url" },
    { "webhook-events", "webhook_events" },
    { "webhook-secret", "webhook_secret" },
    { NULL, NULL }
};

static const optdef account_opts[] = {
    { "domains", true }, { "networks", true }, { "countries", true }, { "logins", true },
    { "local-users", true }, { "client-networks", true }, { "limit", true },
    { "no-limits", false }, { "max-size", true }, { "suspend", false }, { "resume", false },
    { "feedback-id", true }, { "list-unsubscribe", true }, { "bulk", false }, { "no-bulk", false },
    { "account-header", true },
    { "webhook-url", true }, { "webhook-events", true }, { "webhook-secret", true },
    { "managed-bounces", false }, { "no-managed-bounces", false },
    { "default-bounces", false },
    { NULL, false }
};

/* Keys whose values are lists (split for JSON). */
static bool is_list_key(const char *k)
{
    static const char *const lists[] = { "logins", "local_users", "client_networks", "domains",
                                         "networks", "countries", NULL };
    for (size_t i = 0; lists[i]; i++)
        if (strcmp(k, lists[i]) == 0)
            return true;
    return false;
}

/*
 * Apply the options of account add/set to a.  Usage errors exit 2 with the
 * option named (the reason text comes from rg_account_set).
 */
static void account_apply(rg_account *a, const args *o)
{
    char err[512];
    for (size_t i = 0; i < o->nopt; i++) {
        const char *key = NULL;
        for (size_t k = 0; account_opt_keys[k].opt; k++)
            if (strcmp(o->opt[i], account_opt_keys[k].opt) == 0)
                key = account_opt_keys[k].key;
        if (strcmp(o->opt[i], "limit") == 0)
            key = "limit";
        else if (strcmp(o->opt[i], "suspend") == 0 || strcmp(o->opt[i], "resume") == 0) {
            if (rg_account_set(a, "suspended", o->opt[i][0] == 's' ? "yes" : "no", err, sizeof err) < 0)
                die(EX_USAGE, "account %s: %s", a->name, err);
            continue;
        } else if (strcmp(o->opt[i], "bulk") == 0 || strcmp(o->opt[i], "no-bulk") == 0) {
            if (rg_account_set(a, "bulk", o->opt[i][0] == 'b' ? "yes" : "no", err, sizeof err) < 0)
                die(EX_USAGE, "account %s: %s", a->name, err);
            continue;
        } else if (strcmp(o->opt[i], "managed-bounces") == 0 ||
                   strcmp(o->opt[i], "no-managed-bounces") == 0 ||
                   strcmp(o->opt[i], "default-bounces") == 0) {
            const char *b = o->opt[i][0] == 'm' ? "managed" : o->opt[i][0] == 'n' ? "off" : "default";
            if (rg_account_set(a, "bounces", b, err, sizeof err) < 0)
                die(EX_USAGE, "account %s: %s", a->name, err);
            continue;
        }
        if (key == NULL)
            continue;
        if (rg_account_set(a, key, o->val[i], err, sizeof err) < 0)
            die(EX_USAGE, "account %s: --%s: %s", a->name, o->opt[i], err);
        /* the same names an accounts file may not use (policy/config.c) */
        if (strcmp(key, "limit") == 0 && a->n_limits > 0 &&
            rg_limit_name_check(&a->limits[a->n_limits - 1], NULL, 0, err, sizeof err) < 0)
            die(EX_USAGE, "account %s: --limit: %s", a->name, err);
    }
}

/* Account from stored fields; exits 3 if the stored hash does not parse. */
static rg_account *account_from_store(const char *name, const rg_fields *f)
{
    char err[512];
    rg_account *a = rg_account_from_fields(name, f->keys, f->values, f->n, err, sizeof err);
    if (a == NULL)
        die(EX_STORE, "account %s: stored data does not parse: %s", name, err);
    return a;
}

static int account_write(const char *verb, const char *name, const args *o)
{
    bool add = strcmp(verb, "add") == 0;
    bool relimit = opt_has(o, "limit") || opt_has(o, "no-limits");
    if (opt_has(o, "suspend") && opt_has(o, "resume"))
        usage_error("account %s: --suspend and --resume together", verb);
    if (opt_has(o, "limit") && opt_has(o, "no-limits"))
        usage_error("account %s: --limit and --no-limits together", verb);
    if (opt_has(o, "bulk") && opt_has(o, "no-bulk"))
        usage_error("account %s: --bulk and --no-bulk together", verb);
    if (opt_has(o, "managed-bounces") + opt_has(o, "no-managed-bounces") +
        opt_has(o, "default-bounces") > 1)
        usage_error("account %s: --managed-bounces, --no-managed-bounces and --default-bounces "
                    "exclude each other", verb);
    if (!rg_account_name_valid(name))
        die(EX_USAGE, "account %s: bad name '%s' (1..64 of A-Z a-z 0-9 . _ @ + -)", verb, name);

    /* Validate everything before touching the store. */
    rg_account *scratch = rg_account_new(name);
    account_apply(scratch, o);
    rg_account_free(scratch);

    rg_admin *ad = store();
    for (int tries = 0; tries < COMMIT_TRIES; tries++) {
        rg_fields old = { 0 };
        if (rg_admin_accounts_begin(ad) < 0)
            store_failed();
        int found = rg_admin_account_fields(ad, name, &old);
        if (found < 0)
            store_failed();
        if (add && found) {
            rg_admin_accounts_abort(ad);
            rg_fields_clear(&old);
            die(EX_NO, "account %s already exists", name);
        }
        if (!add && !found) {
            rg_admin_accounts_abort(ad);
            die(EX_NO, "account %s not found", name);
        }
        rg_account *a;
        if (add) {
            a = rg_account_new(name);
        } else {
            rg_fields base = { 0 };
            for (size_t k = 0; k < old.n; k++)
                if (!relimit || strcmp(old.keys[k], "limits") != 0)
                    rg_fields_add(&base, old.keys[k], old.values[k]);
            a = account_from_store(name, &base);
            rg_fields_clear(&base);
        }
        account_apply(a, o);

        /* set: nothing to write when the result equals what is stored. */
        rg_fields next = { 0 };
        rg_fields_from_account(a, &next);
        bool same = !add && rg_fields_equal(&next, &old);
        rg_fields_clear(&next);
        rg_fields_clear(&old);
        if (same) {
            rg_admin_accounts_abort(ad);
            rg_account_free(a);
            printf("account %s unchanged\n", name);
            return EX_OK;
        }
        const rg_account *put[] = { a };
        int r = rg_admin_accounts_commit(ad, put, 1, NULL, 0);
        rg_account_free(a);
        if (r < 0)
            store_failed();
        if (r == 1) {
            printf("account %s %s\n", name, add ? "added" : "updated");
            return EX_OK;
        }
    }
    die(EX_STORE, "account %s: accounts keep changing under us; try again", name);
}

static void print_account_json(const rg_account *a, const rg_fields *f)
{
    char buf[512];
    printf("{\n  \"name\": ");
    json_str(stdout, a->name);
    for (size_t i = 0; i < f->n; i++) {
        const char *k = f->keys[i];
        if (strcmp(k, "limits") == 0 || strcmp(k, "max_size") == 0 || strcmp(k, "suspended") == 0 ||
            strcmp(k, "bulk") == 0)
            continue;
        printf(",\n  ");
        json_str(stdout, k);
        printf(": ");
        if (is_list_key(k)) {
            char **v = rg_strv_split(f->values[i]);
            bool first = true;
            printf("[");
            for (size_t j = 0; v[j]; j++) {
                json_sep(stdout, &first);
                json_str(stdout, v[j]);
            }
            printf("]");
            rg_strv_free(v);
        } else {
            json_str(stdout, f->values[i]);
        }
    }
    printf(",\n  \"limits\": [");
    for (size_t i = 0; i < a->n_limits; i++) {
        const rg_limit *l = &a->limits[i];
        static const char *const scopes[] = { "account", "domain", "ip", "global" };
        printf("%s\n    {\"name\": ", i ? "," : "");
        json_str(stdout, l->name);
        printf(", \"spec\": ");
        json_str(stdout, rg_limit_format(l, buf, sizeof buf));
        printf(", \"kind\": \"%s\", \"per\": \"%s\", \"scope\": \"%s\", \"count\": %" PRIu64
               ", \"hard\": %s}",
               l->kind == RG_LIMIT_RATE ? "rate" : "quota", l->unit == RG_UNIT_RCPT ? "rcpt" : "msg",
               scopes[l->scope <= RG_SCOPE_GLOBAL ? l->scope : 0], l->count, l->hard ? "true" : "false");
    }
    printf("%s],\n  \"bulk\": %s,\n  \"max_size\": %" PRIu64 ",\n  \"suspended\": %s\n}\n",
           a->n_limits ? "\n  " : "", a->bulk ? "true" : "false", a->max_size,
           a->suspended ? "true" : "false");
}

static int account_show(const char *name)
{
    rg_admin *ad = store();
    rg_fields f = { 0 };
    int found = rg_admin_account_fields(ad, name, &f);
    if (found < 0)
        store_failed();
    if (!found)
        die(EX_NO, "account %s not found", name);
    rg_account *a = account_from_store(name, &f);
    rg_fields canon = { 0 };
    rg_fields_from_account(a, &canon);
    if (g_cli.json) {
        print_account_json(a, &canon);
    } else {
        printf("%-16s %s\n", "name", name);
        for (size_t i = 0; i < canon.n; i++) {
            if (strcmp(canon.keys[i], "limits") == 0) {
                char buf[512];
                if (a->n_limits == 0)
                    printf("%-16s -\n", "limit");
                for (size_t j = 0; j < a->n_limits; j++)
                    printf("%-16s %s\n", "limit", rg_limit_format(&a->limits[j], buf, sizeof buf));
                continue;
            }
            printf("%-16s ", canon.keys[i]);
            put_clean(stdout, canon.values[i][0] ? canon.values[i] : "-");
            putchar('\n');
        }
    }
    rg_fields_clear(&canon);
    rg_fields_clear(&f);
    rg_account_free(a);
    return EX_OK;
}

static int account_list(void)
{
    char **names;
    if (rg_admin_account_names(store(), &names) < 0)
        store_failed();
    if (g_cli.json) {
        bool first = true;
        printf("[");
        for (size_t i = 0; names[i]; i++) {
            json_sep(stdout, &first);
            printf("\n  ");
            json_str(stdout, names[i]);
        }
        printf("%s]\n", first ? "" : "\n");
    } else {
        for (size_t i = 0; names[i]; i++)
            printf("%s\n", names[i]);
    }
    rg_strv_free(names);
    return EX_OK;
}

static int account_del(const char *name)
{
    rg_admin *ad = store();
    for (int tries = 0; tries < COMMIT_TRIES; tries++) {
        rg_fields f = { 0 };
        char **names;
        if (rg_admin_accounts_begin(ad) < 0)
            store_failed();
        int found = rg_admin_account_fields(ad, name, &f);
        rg_fields_clear(&f);
        if (found < 0 || rg_admin_account_names(ad, &names) < 0)
            store_failed();
        for (size_t i = 0; names[i]; i++)
            if (strcmp(names[i], name) == 0)
                found = 1;
        rg_strv_free(names);
        if (!found) {
            rg_admin_accounts_abort(ad);
            die(EX_NO, "account %s not found", name);
        }
        char *del[] = { (char *)name };
        int r = rg_admin_accounts_commit(ad, NULL, 0, del, 1);
        if (r < 0)
            store_failed();
        if (r == 1) {
            printf("account %s deleted\n", name);
            return EX_OK;
        }
    }
    die(EX_STORE, "account %s: accounts keep changing under us; try again", name);
}

static int cmd_account(int argc, char **argv)
{
    args o;
    if (argc < 1)
        usage_error("account: add, set, show, list, del or resume?");
    const char *sub = argv[0];
    if (strcmp(sub, "add") == 0 || strcmp(sub, "set") == 0) {
        parse_args(argc - 1, argv + 1, account_opts, &o);
        want_pos(&o, 1, 1, "account add|set NAME");
        return account_write(sub, o.pos[0], &o);
    }
    parse_args(argc - 1, argv + 1, NULL, &o);
    if (strcmp(sub, "show") == 0) {
        want_pos(&o, 1, 1, "account show NAME");
        return account_show(o.pos[0]);
    }
    if (strcmp(sub, "list") == 0) {
        want_pos(&o, 0, 0, "account list");
        return account_list();
    }
    if (strcmp(sub, "del") == 0) {
        want_pos(&o, 1, 1, "account del NAME");
        return account_del(o.pos[0]);
    }
    if (strcmp(sub, "resume") == 0) {   /* cli/detect.c */
        want_pos(&o, 1, 1, "account resume NAME");
        return rg_cli_account_resume(g_cli.conf_path, 1, (char **)&o.pos[0]);
    }
    usage_error("account: unknown command '%s'", sub);
}

/* --- limit ------------------------------------------------------------------------ */

static const optdef limit_opts[] = {
    { "global", false }, { "limit", true }, { "domain", true }, { "ip", true }, { NULL, false }
};

typedef struct limit_show_ctx {
    bool first;
    uint64_t now_ms;
    int shown;
} limit_show_ctx;

static int limit_show_cb(void *arg, const rg_limit *l, const rg_limit_state *st)
{
    limit_show_ctx *c = arg;
    char spec[512], d1[64], d2[64], when[64];
    static const char *const scopes[] = { "account", "domain", "ip", "global" };
    const char *kind = l->kind == RG_LIMIT_RATE ? "rate" : "quota";
    uint64_t cap = l->kind == RG_LIMIT_RATE ? l->burst : l->count;

    rg_limit_format(l, spec, sizeof spec);
    fmt_iso((int64_t)(st->reset_at_ms / 1000), when, sizeof when);
    c->shown++;
    if (g_cli.json) {
        json_sep(stdout, &c->first);
        printf("\n  {\"bucket\": ");
        json_str(stdout, st->bucket);
        printf(", \"limit\": ");
        json_str(stdout, l->name);
        printf(", \"spec\": ");
        json_str(stdout, spec);
        printf(", \"kind\": \"%s\", \"scope\": \"%s\", \"subject\": ", kind,
               scopes[l->scope <= RG_SCOPE_GLOBAL ? l->scope : 0]);
        if (st->subject[0])
            json_str(stdout, st->subject);
        else
            printf("null");
        printf(", \"capacity\": %" PRIu64 ", \"used\": %" PRIu64 ", \"left\": %" PRIu64
               ", \"holds\": %" PRIu64 ", \"next_ms\": %" PRIu64 ", \"free_ms\": %" PRIu64
               ", \"%s\": \"%s\"",
               cap, st->used, st->left, st->holds, st->next_ms, st->free_ms,
               l->kind == RG_LIMIT_RATE ? "free_at" : "resets_at", when);
        if (l->kind == RG_LIMIT_QUOTA)
            printf(", \"window\": \"%s\"", st->window);
        printf("}");
        return 0;
    }
    printf("%-40s %-5s %6" PRIu64 "/%-6" PRIu64 " left %-6" PRIu64 " holds %-4" PRIu64 " ",
           st->bucket, kind, st->used, cap, st->left, st->holds);
    if (l->kind == RG_LIMIT_RATE) {
        if (st->free_ms == 0)
            printf("free");
        else if (st->left > 0)
            printf("free in %s", rg_duration_format(st->free_ms, d1, sizeof d1));
        else
            printf("next in %s, free in %s", rg_duration_format(st->next_ms, d1, sizeof d1),
                   rg_duration_format(st->free_ms, d2, sizeof d2));
    } else {
        printf("resets %s (in %s)", when, rg_duration_format(st->free_ms, d1, sizeof d1));
    }
    printf("  [%s]\n", spec);
    return 0;
}

/* The limits that limit show/reset act on: the account's or the global ones. */
static rg_account *limit_target(const args *o, const char **account, const rg_limit **limits,
                                size_t *n)
{
    if (opt_has(o, "global")) {
        want_pos(o, 0, 0, "limit --global");
        *account = NULL;
        *limits = config()->limits;
        *n = config()->n_limits;
        return NULL;
    }
    want_pos(o, 1, 1, "limit show|reset ACCOUNT");
    *account = o->pos[0];
    rg_fields f = { 0 };
    int found = rg_admin_account_fields(store(), *account, &f);
    if (found < 0)
        store_failed();
    if (!found)
        die(EX_NO, "account %s not found", *account);
    rg_account *a = account_from_store(*account, &f);
    rg_fields_clear(&f);
    *limits = a->limits;
    *n = a->n_limits;
    return a;
}

/* Does limit l take part, given --limit / --domain / --ip? */
static bool limit_selected(const args *o, const rg_limit *l, const char **subject)
{
    const char *name = opt_get(o, "limit");
    const char *dom = opt_get(o, "domain"), *ip = opt_get(o, "ip");
    if (name && strcmp(name, l->name) != 0)
        return false;
    *subject = NULL;
    if (dom) {
        if (l->scope != RG_SCOPE_DOMAIN)
            return false;
        *subject = dom;
    }
    if (ip) {
        if (l->scope != RG_SCOPE_IP)
            return false;
        *subject = ip;
    }
    return true;
}

static int cmd_limit(int argc, char **argv)
{
    args o;
    if (argc < 1)
        usage_error("limit: show or reset?");
    const char *sub = argv[0];
    bool show = strcmp(sub, "show") == 0;
    if (!show && strcmp(sub, "reset") != 0)
        usage_error("limit: unknown command '%s'", sub);
    parse_args(argc - 1, argv + 1, limit_opts, &o);
    if (opt_has(&o, "domain") && opt_has(&o, "ip"))
        usage_error("limit: --domain and --ip together");

    char dombuf[RG_ADDR_MAX], ipbuf[64];
    if (opt_has(&o, "domain")) {
        rg_strlcpy(dombuf, opt_get(&o, "domain"), sizeof dombuf);
        rg_lower(dombuf);
        for (size_t i = 0; i < o.nopt; i++)
            if (strcmp(o.opt[i], "domain") == 0)
                o.val[i] = dombuf;
    }
    if (opt_has(&o, "ip")) {
        rg_cidr ip;
        if (rg_ip_parse(opt_get(&o, "ip"), &ip) < 0)
            usage_error("limit: bad address '%s'", opt_get(&o, "ip"));
        if (rg_strlcpy(ipbuf, opt_get(&o, "ip"), sizeof ipbuf) >= sizeof ipbuf)
            usage_error("limit: bad address '%s'", opt_get(&o, "ip"));
    }

    const char *account;
    const rg_limit *limits;
    size_t n;
    rg_account *a = limit_target(&o, &account, &limits, &n);
    rg_admin *ad = store();
    int matched = 0;
    long deleted = 0;
    limit_show_ctx ctx = { .first = true, .now_ms = now_ms() };

    if (show && g_cli.json)
        printf("[");
    for (size_t i = 0; i < n; i++) {
        const char *subject;
        if (!limit_selected(&o, &limits[i], &subject))
            continue;
        matched++;
        if (show) {
            long k = rg_admin_limit_states(ad, &limits[i], account, subject, ctx.now_ms,
                                           limit_show_cb, &ctx);
            if (k < 0)
                store_failed();
            if (k == 0 && !g_cli.json) {
                char spec[512];
                printf("%-40s %-5s no buckets in use  [%s]\n",
                       limits[i].scope == RG_SCOPE_DOMAIN ? "(per sender domain)" : "(per client address)",
                       limits[i].kind == RG_LIMIT_RATE ? "rate" : "quota",
                       rg_limit_format(&limits[i], spec, sizeof spec));
                ctx.shown++;
            }
        } else {
            long k = rg_admin_limit_reset(ad, &limits[i], account, subject);
            if (k < 0)
                store_failed();
            deleted += k;
        }
    }
    if (show && g_cli.json)
        printf("%s]\n", ctx.first ? "" : "\n");
    rg_account_free(a);
    if (matched == 0) {
        if (opt_has(&o, "limit") || opt_has(&o, "domain") || opt_has(&o, "ip"))
            die(EX_NO, "no such limit%s%s", account ? " for account " : " in the global limits",
                account ? account : "");
        if (!g_cli.json || !show)
            printf("%s has no limits\n", account ? account : "the config");
        return EX_OK;
    }
    if (!show)
        printf("reset %d limit%s: %ld key%s deleted\n", matched, matched == 1 ? "" : "s", deleted,
               deleted == 1 ? "" : "s");
    else if (!g_cli.json && ctx.shown == 0)
        printf("no buckets in use\n");
    return EX_OK;
}

/* --- suppress --------------------------------------------------------------------- */

static const optdef supp_opts[] = {
    { "account", true }, { "reason", true }, { "expires", true }, { "note", true },
    { NULL, false }
};

/* Normalised address, or usage error. */
static void supp_addr(const char *in, char *out, size_t len)
{
    if (rg_addr_normalize(in, out, len) < 0 || out[0] == '\0')
        usage_error("bad address '%s'", in);
}

/* The --account value, checked (NULL for the global list). */
static const char *supp_account(const args *o)
{
    const char *a = opt_get(o, "account");
    if (a && !rg_account_name_valid(a))
        usage_error("bad account name '%s'", a);
    return a;
}

/* "global" or "account NAME" */
static void print_entry_text(const rg_supp *e, const char *list)
{
    char since[32], exp[32];
    fmt_date(e->since, since, sizeof since);
    if (e->expires)
        fmt_date(e->expires, exp, sizeof exp);
    else
        rg_strlcpy(exp, "never", sizeof exp);
    put_clean(stdout, e->addr);
    printf(" %s since %s, expires %s, %s", e->reason, since, exp, list);
    if (e->note[0]) {
        printf(": ");
        put_clean(stdout, e->note);
    }
    putchar('\n');
}

static void print_entry_json(const rg_supp *e, const char *account)
{
    char since[32], exp[32];
    fmt_iso(e->since, since, sizeof since);
    fmt_iso(e->expires, exp, sizeof exp);
    printf("{\"address\": ");
    json_str(stdout, e->addr);
    printf(", \"list\": ");
    if (account)
        json_str(stdout, account);
    else
        printf("\"global\"");
    printf(", \"reason\": \"%s\", \"since\": \"%s\", \"expires\": ", e->reason, since);
    if (e->expires)
        printf("\"%s\"", exp);
    else
        printf("null");
    printf(", \"note\": ");
    json_str(stdout, e->note);
    printf("}");
}

typedef struct supp_list_ctx {
    bool first;
    int64_t now;
    const char *account;
    FILE *csv;
    size_t n;
} supp_list_ctx;

static int supp_list_cb(void *arg, const rg_supp *e)
{
    supp_list_ctx *c = arg;
    if (rg_supp_expired(e, c->now))
        return 0;
    c->n++;
    if (g_cli.json) {
        json_sep(stdout, &c->first);
        printf("\n  ");
        print_entry_json(e, c->account);
    } else {
        char list[200];
        snprintf(list, sizeof list, "%s", c->account ? c->account : "global");
        print_entry_text(e, list);
    }
    return 0;
}

/* One CSV field, quoted when it must be (RFC 4180). */
static void csv_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL && s[0] != ' ' && (s[0] == '\0' || s[strlen(s) - 1] != ' ')) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int supp_export_cb(void *arg, const rg_supp *e)
{
    supp_list_ctx *c = arg;
    char since[32], exp[32] = "";
    if (rg_supp_expired(e, c->now))
        return 0;
    fmt_date(e->since, since, sizeof since);
    if (e->expires)
        fmt_date(e->expires, exp, sizeof exp);
    csv_field(c->csv, e->addr);
    fprintf(c->csv, ",%s,%s,%s,", e->reason, since, exp);
    csv_field(c->csv, e->note);
    fputc('\n', c->csv);
    c->n++;
    return 0;
}

/* --- CSV reading (RFC 4180, streaming) --- */

typedef struct csv_reader {
    FILE *f;
    char buf[1 << 16];
    size_t pos, len;
    bool eof;
    long line;              /* line of the next byte */
    char *rec;              /* field bytes of the current record, NUL-separated */
    size_t rec_len, rec_cap;
    size_t fstart[16];      /* field offsets into rec */
    size_t nfields;
    bool too_many;
} csv_reader;

static int csv_getc(csv_reader *r)
{
    if (r->pos == r->len) {
        if (r->eof)
            return EOF;
        r->len = fread(r->buf, 1, sizeof r->buf, r->f);
        r->pos = 0;
        if (r->len == 0) {
            r->eof = true;
            return EOF;
        }
    }
    return (unsigned char)r->buf[r->pos++];
}

static int csv_peek(csv_reader *r)
{
    int c = csv_getc(r);
    if (c != EOF)
        r->pos--;
    return c;
}

static void csv_put(csv_reader *r, char c)
{
    if (r->rec_len == r->rec_cap) {
        r->rec_cap = r->rec_cap ? 2 * r->rec_cap : 1024;
        r->rec = rg_realloc(r->rec, r->rec_cap);
    }
    r->rec[r->rec_len++] = c;
}

static void csv_end_field(csv_reader *r)
{
    csv_put(r, '\0');
    if (r->nfields < sizeof r->fstart / sizeof r->fstart[0])
        r->nfields++;
    else
        r->too_many = true;
    if (r->nfields < sizeof r->fstart / sizeof r->fstart[0])
        r->fstart[r->nfields] = r->rec_len;
}

/*
 * Read one record.  Returns 1 (fields in r), 0 at end of input, or -1 for
 * a quoting error (the rest of that line is skipped).  *line gets the line
 * the record starts on.
 */
static int csv_read(csv_reader *r, long *line, const char **why)
{
    int c = csv_getc(r);
    if (c == EOF)
        return 0;
    r->rec_len = 0;
    r->nfields = 0;
    r->fstart[0] = 0;
    r->too_many = false;
    *line = r->line;
    bool quoted = false, was_quoted = false;
    for (;; c = csv_getc(r)) {
        if (quoted) {
            if (c == EOF) {
                *why = "unterminated quoted field";
                return -1;
            }
            if (c == '"') {
                if (csv_peek(r) == '"') {
                    csv_getc(r);
                    csv_put(r, '"');
                } else {
                    quoted = false;
                }
                continue;
            }
            if (c == '\n')
                r->line++;
            csv_put(r, (char)c);
            continue;
        }
        if (c == '"' && !was_quoted && r->rec_len == r->fstart[r->nfields < 16 ? r->nfields : 15]) {
            quoted = was_quoted = true;
            continue;
        }
        if (c == ',') {
            csv_end_field(r);
            was_quoted = false;
            continue;
        }
        if (c == '\r' && csv_peek(r) == '\n')
            continue;
        if (c == '\n' || c == EOF) {
            if (c == '\n')
                r->line++;
            csv_end_field(r);
            return 1;
        }
        if (was_quoted) {
            *why = "text after a closing quote";
            while (c != '\n' && c != EOF)
                c = csv_getc(r);
            if (c == '\n')
                r->line++;
            return -1;
        }
        csv_put(r, (char)c);
    }
}

static const char *csv_field_at(const csv_reader *r, size_t i)
{
    return i < r->nfields ? r->rec + r->fstart[i] : "";
}

/* Trim blanks in place (unquoted padding). */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

enum { COL_ADDRESS, COL_REASON, COL_SINCE, COL_EXPIRES, COL_NOTE, NCOLS };
static const char *const col_names[NCOLS] = { "address", "reason", "since", "expires", "note" };

/* One data row into e.  0, or -1 with the reason in why (buf holds it). */
static int import_row(csv_reader *r, const int *col, size_t ncols, int64_t now, rg_supp *e,
                      char *why, size_t whylen)
{
    const char *v[NCOLS] = { "", "", "", "", "" };
    if (r->too_many || r->nfields > ncols) {
        snprintf(why, whylen, "%zu fields, the header has %zu", r->nfields, ncols);
        return -1;
    }
    for (size_t i = 0; i < r->nfields; i++)
        if (col[i] >= 0)
            v[col[i]] = trim(r->rec + r->fstart[i]);
    memset(e, 0, sizeof *e);
    if (v[COL_ADDRESS][0] == '\0' || rg_addr_normalize(v[COL_ADDRESS], e->addr, sizeof e->addr) < 0
        || e->addr[0] == '\0') {
        snprintf(why, whylen, "bad address '%.200s'", v[COL_ADDRESS]);
        return -1;
    }
    const char *reason = v[COL_REASON][0] ? v[COL_REASON] : "manual";
    if (!rg_supp_reason_valid(reason)) {
        snprintf(why, whylen, "bad reason '%.64s' (hard-bounce, complaint, unsubscribe, manual)", reason);
        return -1;
    }
    rg_strlcpy(e->reason, reason, sizeof e->reason);
    e->since = now;
    if (v[COL_SINCE][0] && parse_time(v[COL_SINCE], &e->since) < 0) {
        snprintf(why, whylen, "bad since '%.64s' (2026-11-01 or Unix seconds)", v[COL_SINCE]);
        return -1;
    }
    if (v[COL_EXPIRES][0] && parse_time(v[COL_EXPIRES], &e->expires) < 0) {
        snprintf(why, whylen, "bad expires '%.64s' (2026-11-01 or Unix seconds)", v[COL_EXPIRES]);
        return -1;
    }
    if (rg_strlcpy(e->note, v[COL_NOTE], sizeof e->note) >= sizeof e->note) {
        snprintf(why, whylen, "note longer than %d bytes", RG_SUPP_NOTE_MAX - 1);
        return -1;
    }
    char tmp[RG_SUPP_NOTE_MAX + 128];
    if (rg_supp_format(e, tmp, sizeof tmp) < 0) {
        snprintf(why, whylen, "note contains '|' or a control character");
        return -1;
    }
    return 0;
}

static int supp_import(const char *path, const char *account)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    const char *name = f == stdin ? "stdin" : path;
    if (f == NULL)
        die(EX_USAGE, "import: %s: %s", path, strerror(errno));
    rg_admin *ad = store();
    csv_reader *r = rg_calloc(1, sizeof *r);
    r->f = f;
    r->line = 1;

    long line;
    const char *why = NULL;
    int col[16];
    size_t ncols;
    /* header */
    int got = csv_read(r, &line, &why);
    if (got <= 0)
        die(EX_USAGE, "%s:1: expected the header 'address,reason,since,expires,note'", name);
    ncols = r->nfields;
    bool have_addr = false;
    for (size_t i = 0; i < ncols; i++) {
        char *h = trim(r->rec + r->fstart[i]);
        col[i] = -1;
        for (int k = 0; k < NCOLS; k++)
            if (strcasecmp(h, col_names[k]) == 0)
                col[i] = k;
        if (col[i] < 0)
            die(EX_USAGE, "%s:%ld: unknown column '%s' (address,reason,since,expires,note)", name, line, h);
        if (col[i] == COL_ADDRESS)
            have_addr = true;
    }
    if (!have_addr)
        die(EX_USAGE, "%s:%ld: expected the header 'address,reason,since,expires,note'", name, line);

    rg_supp *batch = rg_malloc(IMPORT_BATCH * sizeof *batch);
    size_t nb = 0, total = 0, added = 0, bad = 0, a;
    int64_t now = (int64_t)time(NULL);
    char whybuf[300];
    for (;;) {
        got = csv_read(r, &line, &why);
        if (got == 0)
            break;
        if (got < 0) {
            warnx("%s:%ld: %s", name, line, why);
            bad++;
            continue;
        }
        if (r->nfields == 1 && csv_field_at(r, 0)[0] == '\0')
            continue;   /* blank line */
        if (import_row(r, col, ncols, now, &batch[nb], whybuf, sizeof whybuf) < 0) {
            warnx("%s:%ld: %s", name, line, whybuf);
            bad++;
            continue;
        }
        if (++nb == IMPORT_BATCH) {
            if (rg_admin_supp_put_many(ad, account, batch, nb, &a) < 0)
                store_failed();
            total += nb;
            added += a;
            nb = 0;
        }
    }
    if (nb > 0) {
        if (rg_admin_supp_put_many(ad, account, batch, nb, &a) < 0)
            store_failed();
        total += nb;
        added += a;
    }
    if (ferror(f))
        die(EX_USAGE, "import: %s: read error", name);
    if (f != stdin)
        fclose(f);
    free(batch);
    free(r->rec);
    free(r);
    printf("imported %zu (%zu new), %zu bad\n", total, added, bad);
    return bad ? EX_NO : EX_OK;
}

static int cmd_suppress(int argc, char **argv)
{
    args o;
    char addr[RG_ADDR_MAX];
    if (argc < 1)
        usage_error("suppress: add, del, check, list, import or export?");
    const char *sub = argv[0];
    parse_args(argc - 1, argv + 1, supp_opts, &o);
    const char *account = supp_account(&o);
    bool writes = strcmp(sub, "add") == 0;
    if (!writes && (opt_has(&o, "reason") || opt_has(&o, "expires") || opt_has(&o, "note")))
        usage_error("suppress %s: --reason, --expires and --note are for add", sub);

    if (strcmp(sub, "add") == 0) {
        want_pos(&o, 1, 1, "suppress add ADDR");
        rg_supp e;
        memset(&e, 0, sizeof e);
        supp_addr(o.pos[0], e.addr, sizeof e.addr);
        const char *reason = opt_get(&o, "reason") ? opt_get(&o, "reason") : "manual";
        if (!rg_supp_reason_valid(reason))
            usage_error("bad reason '%s' (hard-bounce, complaint, unsubscribe, manual)", reason);
        rg_strlcpy(e.reason, reason, sizeof e.reason);
        e.since = (int64_t)time(NULL);
        if (opt_has(&o, "expires") && parse_expires(opt_get(&o, "expires"), e.since, &e.expires) < 0)
            usage_error("bad --expires '%s' (30d, 12h, 2026-12-31, never)", opt_get(&o, "expires"));
        if (opt_has(&o, "note")
            && rg_strlcpy(e.note, opt_get(&o, "note"), sizeof e.note) >= sizeof e.note)
            usage_error("--note longer than %d bytes", RG_SUPP_NOTE_MAX - 1);
        char tmp[RG_SUPP_NOTE_MAX + 128];
        if (rg_supp_format(&e, tmp, sizeof tmp) < 0)
            usage_error("--note may not contain '|' or control characters");
        int r = rg_admin_supp_put(store(), account, &e);
        if (r < 0)
            store_failed();
        printf("%s %s (%s)\n", e.addr, r ? "suppressed" : "updated", account ? account : "global");
        return EX_OK;
    }
    if (strcmp(sub, "del") == 0) {
        want_pos(&o, 1, 1, "suppress del ADDR");
        supp_addr(o.pos[0], addr, sizeof addr);
        int r = rg_admin_supp_del(store(), account, addr);
        if (r < 0)
            store_failed();
        if (r == 0)
            die(EX_NO, "%s is not in the %s%s list", addr, account ? "suppression list of account " : "global",
                account ? account : "");
        printf("%s removed (%s)\n", addr, account ? account : "global");
        return EX_OK;
    }
    if (strcmp(sub, "check") == 0) {
        want_pos(&o, 1, 1, "suppress check ADDR");
        supp_addr(o.pos[0], addr, sizeof addr);
        rg_supp e;
        const char *where = NULL;
        int r = rg_admin_supp_get(store(), NULL, addr, &e);
        if (r < 0)
            store_failed();
        if (r)
            where = "global";
        if (!r && account) {
            if ((r = rg_admin_supp_get(store(), account, addr, &e)) < 0)
                store_failed();
            if (r)
                where = account;
        }
        if (g_cli.json) {
            if (r) {
                print_entry_json(&e, strcmp(where, "global") == 0 ? NULL : where);
                printf("\n");
            } else {
                printf("{\"address\": ");
                json_str(stdout, addr);
                printf(", \"suppressed\": false}\n");
            }
        } else if (r) {
            char since[32];
            time_t t = (time_t)e.since;
            struct tm tm;
            if (gmtime_r(&t, &tm) == NULL || strftime(since, sizeof since, "%Y-%m-%d", &tm) == 0)
                fmt_date(e.since, since, sizeof since);
            put_clean(stdout, addr);
            printf(": suppressed (%s since %s) in the %s list", e.reason, since, where);
            if (e.expires) {
                char exp[32];
                fmt_date(e.expires, exp, sizeof exp);
                printf(", expires %s", exp);
            }
            if (e.note[0]) {
                printf(": ");
                put_clean(stdout, e.note);
            }
            putchar('\n');
        } else {
            printf("%s: not suppressed\n", addr);
        }
        return r ? EX_OK : EX_NO;
    }
    if (strcmp(sub, "list") == 0 || strcmp(sub, "export") == 0) {
        want_pos(&o, 0, 0, sub);
        bool csv = sub[0] == 'e';
        supp_list_ctx c = { .first = true, .now = (int64_t)time(NULL), .account = account, .csv = stdout };
        if (csv)
            printf("address,reason,since,expires,note\n");
        else if (g_cli.json)
            printf("[");
        if (rg_admin_supp_scan(store(), account, csv ? supp_export_cb : supp_list_cb, &c) < 0)
            store_failed();
        if (!csv && g_cli.json)
            printf("%s]\n", c.first ? "" : "\n");
        if (fflush(stdout) != 0)
            die(EX_USAGE, "%s: write error: %s", sub, strerror(errno));
        return EX_OK;
    }
    if (strcmp(sub, "import") == 0) {
        want_pos(&o, 1, 1, "suppress import FILE|-");
        return supp_import(o.pos[0], account);
    }
    usage_error("suppress: unknown command '%s'", sub);
}

/* --- events ------------------------------------------------------------------------ */

static const optdef events_opts[] = {
    { "follow", false }, { "count", true }, { "account", true }, { "verdict", true },
    { "type", true }, { NULL, false }
};

typedef struct events_ctx {
    bool array;        /* JSON: inside one array (not follow) */
    bool first;
} events_ctx;

static const char *field_or(const rg_fields *f, const char *k, const char *dflt)
{
    const char *v = rg_fields_get(f, k);
    return v && v[0] ? v : dflt;
}

static int event_print(void *arg, const char *id, const rg_fields *f)
{
    events_ctx *c = arg;
    const char *ts = rg_fields_get(f, "ts");
    char when[32];
    fmt_iso(ts ? (int64_t)(strtoull(ts, NULL, 10) / 1000) : 0, when, sizeof when);
    if (g_cli.json) {
        if (c->array) {
            json_sep(stdout, &c->first);
            printf("\n  ");
        }
        printf("{\"id\": ");
        json_str(stdout, id);
        printf(", \"time\": \"%s\"", when);
        for (size_t i = 0; i < f->n; i++) {
            printf(", ");
            json_str(stdout, f->keys[i]);
            printf(": ");
            json_str(stdout, f->values[i]);
        }
        printf("}");
        if (!c->array)
            printf("\n");
    } else {
        const char *rcpt = rg_fields_get(f, "rcpt");
        printf("%s ", when);
        put_clean(stdout, field_or(f, "node", "-"));
        putchar(' ');
        put_clean(stdout, field_or(f, "qid", "-"));
        putchar(' ');
        put_clean(stdout, field_or(f, "verdict", "-"));
        putchar(' ');
        put_clean(stdout, field_or(f, "account", "-"));
        printf(" <");
        put_clean(stdout, field_or(f, "sender", ""));
        printf("> -> ");
        if (rcpt && rcpt[0]) {
            putchar('<');
            put_clean(stdout, rcpt);
            putchar('>');
        } else {
            printf("(%s rcpt)", field_or(f, "nrcpt", "0"));
        }
        putchar(' ');
        put_clean(stdout, field_or(f, "code", "-"));
        putchar(' ');
        put_clean(stdout, field_or(f, "reason", "-"));
        const char *detail = rg_fields_get(f, "detail");
        if (detail && detail[0]) {
            putchar(' ');
            put_clean(stdout, detail);
        }
        putchar('\n');
    }
    fflush(stdout);
    return 0;
}

static int cmd_events(int argc, char **argv)
{
    args o;
    parse_args(argc, argv, events_opts, &o);
    want_pos(&o, 0, 0, "events");
    bool follow = opt_has(&o, "follow");
    unsigned long count = follow ? 10 : 20;
    if (opt_has(&o, "count")) {
        char *e;
        const char *s = opt_get(&o, "count");
        errno = 0;
        count = strtoul(s, &e, 10);
        if (*s == '\0' || *e || errno || count > 10000000)
            usage_error("bad --count '%s'", s);
    }
    rg_event_filter flt = { opt_get(&o, "account"), opt_get(&o, "verdict"), NULL };
    if (flt.verdict && strcmp(flt.verdict, "accept") && strcmp(flt.verdict, "reject")
        && strcmp(flt.verdict, "tempfail") && strcmp(flt.verdict, "dunno"))
        usage_error("bad --verdict '%s' (accept, reject, tempfail, dunno)", flt.verdict);
    /* --type: event types or patterns, "decision.reject", "decision.*", "detection" (keys.h) */
    char **types = NULL;
    if (opt_has(&o, "type") && (rg_event_patterns_parse(opt_get(&o, "type"), &types) < 0 || !types[0])) {
        rg_strv_free(types);
        usage_error("bad --type '%s' (e.g. decision.reject, 'decision.*', detection)", opt_get(&o, "type"));
    }
    flt.types = types;
    events_ctx c = { .array = g_cli.json && !follow, .first = true };
    char last[64];
    if (c.array)
        printf("[");
    int rc = EX_OK;
    if (rg_admin_events_latest(store(), &flt, count, event_print, &c, last, sizeof last) < 0)
        rc = EX_STORE;
    if (c.array && rc == EX_OK)
        printf("%s]\n", c.first ? "" : "\n");
    if (follow && rc == EX_OK && rg_admin_events_follow(store(), &flt, last, event_print, &c) < 0)
        rc = EX_STORE;
    rg_strv_free(types);
    if (rc == EX_STORE)
        store_failed();
    return rc;
}

/* --- stats ------------------------------------------------------------------------- */

static long long stat_get(const rg_fields *f, const char *k)
{
    const char *v = rg_fields_get(f, k);
    return v ? strtoll(v, NULL, 10) : 0;
}

/* The hourly counters of the last 7 days, and how rows are made of them. */
#define STAT_HOURS 168
#define SPARK_HOURS 24

typedef struct stat_row {
    const char *label;          /* as printed */
    const char *json;           /* key in --json */
    const char *fields[4];      /* summed counter fields, NULL-terminated */
} stat_row;

static const stat_row stat_rows[] = {
    { "accepted", "accepted", { "accept" } },          /* messages sent: charged at end of data */
    { "recipients", "recipients", { "rcpt" } },
    { "rejected", "rejected", { "reject" } },
    { "tempfailed", "tempfailed", { "tempfail" } },
    { "dunno", "dunno", { "dunno" } },
    { "bounced", "bounced", { "b:hard", "b:soft", "b:block" } },
    { "hard bounces", "hard_bounces", { "b:hard" } },
    { "complaints", "complaints", { "b:complaint" } },
};
#define N_STAT_ROWS (sizeof stat_rows / sizeof stat_rows[0])

static long long stat_sum(const rg_fields *hours, unsigned from, unsigned to, const char *const *fields)
{
    long long n = 0;
    for (unsigned h = from; h < to; h++)
        for (size_t i = 0; i < 4 && fields[i]; i++)
            n += stat_get(&hours[h], fields[i]);
    return n;
}

/* A sparkline of v[0..n) (oldest first): eight block heights when the
 * terminal speaks UTF-8, else ASCII.  Zero is the lowest mark. */
static void sparkline(FILE *f, const long long *v, size_t n, bool utf8)
{
    static const char *const blocks[] = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };
    static const char ascii[] = "_.-~=+*#";
    long long max = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] > max)
            max = v[i];
    for (size_t i = 0; i < n; i++) {
        int level = (v[i] <= 0 || max <= 0) ? 0 : 1 + (int)((v[i] - 1) * 7 / max);
        if (level > 7)
            level = 7;
        if (utf8)
            fputs(blocks[level], f);
        else
            fputc(ascii[level], f);
    }
}

static void json_rate(FILE *f, long long num, long long den)
{
    if (den > 0)
        fprintf(f, "%.6f", (double)num / (double)den);
    else
        fputs("null", f);
}

static int cmd_stats(int argc, char **argv)
{
    args o;
    parse_args(argc, argv, NULL, &o);
    want_pos(&o, 0, 1, "stats [ACCOUNT]");
    const char *account = o.npos ? o.pos[0] : "*";
    if (strcmp(account, "*") != 0 && !rg_account_name_valid(account))
        usage_error("bad account name '%s'", account);
    static const unsigned windows[] = { 1, 24, STAT_HOURS };
    static const char *const labels[] = { "1h", "24h", "7d" };
    rg_fields *hours = rg_calloc(STAT_HOURS, sizeof *hours);
    if (rg_admin_stats_hours(store(), account, now_ms(), STAT_HOURS, hours) < 0)
        store_failed();

    /* Reasons: every r:REASON seen in the 7 days, in first-seen order. */
    const char **reasons = NULL;
    size_t nreasons = 0;
    for (unsigned h = 0; h < STAT_HOURS; h++)
        for (size_t i = 0; i < hours[h].n; i++) {
            const char *k = hours[h].keys[i];
            if (strncmp(k, "r:", 2) != 0)
                continue;
            size_t j;
            for (j = 0; j < nreasons && strcmp(reasons[j], k) != 0; j++)
                ;
            if (j == nreasons) {
                reasons = rg_realloc(reasons, (nreasons + 1) * sizeof *reasons);
                reasons[nreasons++] = k;
            }
        }
    /* The rates are per recipient, as ESPs publish them and relayguard-detectd
     * acts on them (bounce_rate, complaint_rate): a bounce or a complaint is one
     * recipient's, so they are over the recipients charged, not the messages. */
    static const char *const accept_f[] = { "rcpt", NULL }, *const hard_f[] = { "b:hard", NULL },
                             *const compl_f[] = { "b:complaint", NULL };
    long long spark[SPARK_HOURS];

    if (g_cli.json) {
        printf("{\n  \"account\": ");
        json_str(stdout, account);
        for (size_t w = 0; w < 3; w++) {
            printf(",\n  \"%s\": {", labels[w]);
            for (size_t r = 0; r < N_STAT_ROWS; r++)
                printf("%s\"%s\": %lld", r ? ", " : "", stat_rows[r].json,
                       stat_sum(hours, 0, windows[w], stat_rows[r].fields));
            long long sent = stat_sum(hours, 0, windows[w], accept_f);
            printf(", \"hard_bounce_rate\": ");
            json_rate(stdout, stat_sum(hours, 0, windows[w], hard_f), sent);
            printf(", \"complaint_rate\": ");
            json_rate(stdout, stat_sum(hours, 0, windows[w], compl_f), sent);
            printf(", \"reasons\": {");
            for (size_t i = 0; i < nreasons; i++) {
                const char *f[] = { reasons[i], NULL };
                printf("%s", i ? ", " : "");
                json_str(stdout, reasons[i] + 2);
                printf(": %lld", stat_sum(hours, 0, windows[w], f));
            }
            printf("}}");
        }
        /* the last 24 hours, oldest first, as the sparklines show them */
        printf(",\n  \"hourly\": {");
        for (size_t r = 0; r < N_STAT_ROWS; r++) {
            printf("%s\"%s\": [", r ? ", " : "", stat_rows[r].json);
            for (int h = SPARK_HOURS - 1; h >= 0; h--)
                printf("%lld%s", stat_sum(hours, (unsigned)h, (unsigned)h + 1, stat_rows[r].fields),
                       h ? ", " : "");
            printf("]");
        }
        printf("}\n}\n");
    } else {
        setlocale(LC_CTYPE, "");
        bool utf8 = MB_CUR_MAX > 1;
        printf("%-24s %10s %10s %10s  %s\n", strcmp(account, "*") == 0 ? "all accounts" : account,
               labels[0], labels[1], labels[2], "last 24 hours");
        for (size_t r = 0; r < N_STAT_ROWS + 2 + nreasons; r++) {
            const char *label;
            const char *rf[] = { NULL, NULL };
            const char *const *fields;
            if (r < N_STAT_ROWS) {
                label = stat_rows[r].label;
                fields = stat_rows[r].fields;
            } else if (r < N_STAT_ROWS + 2) {
                /* rates of the recipients charged: a row without a sparkline */
                const char *const *f = r == N_STAT_ROWS ? hard_f : compl_f;
                printf("%-24s", r == N_STAT_ROWS ? "hard-bounce rate" : "complaint rate");
                for (size_t w = 0; w < 3; w++) {
                    long long sent = stat_sum(hours, 0, windows[w], accept_f);
                    if (sent > 0)
                        printf(" %9.2f%%", 100.0 * (double)stat_sum(hours, 0, windows[w], f) / (double)sent);
                    else
                        printf(" %10s", "-");
                }
                printf("\n");
                if (r == N_STAT_ROWS + 1 && nreasons)
                    printf("refused, by reason:\n");
                continue;
            } else {
                rf[0] = reasons[r - N_STAT_ROWS - 2];
                label = rf[0] + 2;
                fields = rf;
            }
            bool by_reason = r >= N_STAT_ROWS + 2;
            printf("%s%-*s %10lld %10lld %10lld  ", by_reason ? "  " : "", by_reason ? 22 : 24, label,
                   stat_sum(hours, 0, 1, fields), stat_sum(hours, 0, 24, fields),
                   stat_sum(hours, 0, STAT_HOURS, fields));
            for (int h = SPARK_HOURS - 1; h >= 0; h--)
                spark[SPARK_HOURS - 1 - h] = stat_sum(hours, (unsigned)h, (unsigned)h + 1, fields);
            sparkline(stdout, spark, SPARK_HOURS, utf8);
            printf("\n");
        }
    }
    free(reasons);
    for (unsigned h = 0; h < STAT_HOURS; h++)
        rg_fields_clear(&hours[h]);
    free(hours);
    return EX_OK;
}

/* --- check-config -------------------------------------------------------------------- */

static int cmd_check_config(int argc, char **argv)
{
    static const optdef opts[] = { { "accounts", true }, { NULL, false } };
    args o;
    char err[1024];
    parse_args(argc, argv, opts, &o);
    want_pos(&o, 0, 0, "check-config");
    rg_config *c = rg_config_load(g_cli.conf_path, err, sizeof err);
    if (c == NULL)
        die(EX_USAGE, "%s", err);
    /* the DKIM keys too: type, size and permissions */
    rg_dkim_keys *k = rg_dkim_keys_load(c, err, sizeof err);
    rg_config_free(c);
    if (k == NULL)
        die(EX_USAGE, "%s", err);
    rg_dkim_keys_unref(k);
    printf("%s: OK\n", g_cli.conf_path);
    if (opt_has(&o, "accounts")) {
        rg_accounts *s = rg_accounts_load_file(opt_get(&o, "accounts"), err, sizeof err);
        if (s == NULL)
            die(EX_USAGE, "%s", err);
        size_t n = rg_accounts_count(s);
        printf("%s: OK (%zu account%s)\n", opt_get(&o, "accounts"), n, n == 1 ? "" : "s");
        rg_accounts_free(s);
    }
    return EX_OK;
}

/* --- load ------------------------------------------------------------------------------ */

static int cmd_load(int argc, char **argv)
{
    static const optdef opts[] = { { "dry-run", false }, { "prune", false }, { NULL, false } };
    args o;
    char err[1024];
    parse_args(argc, argv, opts, &o);
    want_pos(&o, 1, 1, "load FILE");
    bool dry = opt_has(&o, "dry-run"), prune = opt_has(&o, "prune");

    rg_accounts *set = rg_accounts_load_file(o.pos[0], err, sizeof err);
    if (set == NULL)
        die(EX_USAGE, "%s", err);
    size_t n = rg_accounts_count(set);
    rg_admin *ad = store();

    for (int tries = 0; tries < COMMIT_TRIES; tries++) {
        const rg_account **put = rg_calloc(n + 1, sizeof *put);
        char **names, **del;
        size_t nput = 0, ndel = 0, added = 0, changed = 0, unchanged = 0;

        if (rg_admin_accounts_begin(ad) < 0 || rg_admin_account_names(ad, &names) < 0)
            store_failed();
        del = rg_calloc(rg_strv_len(names) + 1, sizeof *del);
        for (size_t i = 0; i < n; i++) {
            const rg_account *a = rg_accounts_at(set, i);
            rg_fields want = { 0 }, have = { 0 };
            int found = rg_admin_account_fields(ad, a->name, &have);
            if (found < 0)
                store_failed();
            bool listed = false;
            for (size_t k = 0; names[k]; k++)
                if (strcmp(names[k], a->name) == 0)
                    listed = true;
            rg_fields_from_account(a, &want);
            if (!found) {
                added++;
                put[nput++] = a;
                if (dry)
                    printf("add %s\n", a->name);
            } else if (!listed || !rg_fields_equal(&want, &have)) {
                changed++;
                put[nput++] = a;
                if (dry)
                    printf("change %s\n", a->name);
            } else {
                unchanged++;
            }
            rg_fields_clear(&want);
            rg_fields_clear(&have);
        }
        if (prune)
            for (size_t k = 0; names[k]; k++)
                if (rg_accounts_by_name(set, names[k]) == NULL) {
                    del[ndel++] = names[k];
                    if (dry)
                        printf("delete %s\n", names[k]);
                }

        int r = 1;
        if (dry)
            rg_admin_accounts_abort(ad);
        else if ((r = rg_admin_accounts_commit(ad, put, nput, del, ndel)) < 0)
            store_failed();
        if (r == 1)
            printf("%sadded %zu, changed %zu, unchanged %zu, deleted %zu\n", dry ? "dry run: " : "",
                   added, changed, unchanged, ndel);
        free(put);
        free(del);
        rg_strv_free(names);
        if (r == 1) {
            rg_accounts_free(set);
            return EX_OK;
        }
    }
    rg_accounts_free(set);
    die(EX_STORE, "load: accounts keep changing under us; try again");
}

/* --- dkim ------------------------------------------------------------------------------ */

/* A selector or domain that is safe as part of a file name and a DNS name. */
static bool dns_label_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || strstr(s, ".."))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return false;
    return true;
}

/* Print a TXT value as a zone file line (strings of at most 255 bytes). */
static void print_txt_record(const char *selector, const char *domain, const char *txt)
{
    printf("%s._domainkey.%s. IN TXT (", selector, domain);
    for (size_t o = 0, n = strlen(txt); o < n; o += 250)
        printf(" \"%.250s\"", txt + o);
    printf(" )\n");
}

static int cmd_dkim(int argc, char **argv)
{
    static const optdef opts[] = { { "ed25519", false }, { "dir", true }, { NULL, false } };
    args o;
    char err[1024], txt[2048];
    parse_args(argc, argv, opts, &o);
    want_pos(&o, 1, 3, "dkim keygen|list");
    const char *verb = o.pos[0];

    if (strcmp(verb, "keygen") == 0) {
        want_pos(&o, 3, 3, "dkim keygen DOMAIN SELECTOR");
        char domain[256];
        if (rg_strlcpy(domain, o.pos[1], sizeof domain) >= sizeof domain || !dns_label_ok(domain))
            usage_error("dkim keygen: bad domain '%s'", o.pos[1]);
        rg_lower(domain);
        const char *sel = o.pos[2];
        if (!dns_label_ok(sel) || strchr(sel, '.'))
            usage_error("dkim keygen: bad selector '%s' (letters, digits, - and _)", sel);
        const char *dir = opt_get(&o, "dir") ? opt_get(&o, "dir") : SYSCONFDIR "/relayguard/keys";
        char path[4096];
        int w = snprintf(path, sizeof path, "%s/%s.%s.pem", dir, domain, sel);
        if (w < 0 || (size_t)w >= sizeof path)
            usage_error("dkim keygen: --dir is too long");
        bool ed = opt_has(&o, "ed25519");
        if (rg_dkim_keygen(path, ed, txt, sizeof txt, err, sizeof err) < 0)
            die(EX_USAGE, "dkim keygen: %s", err);
        if (g_cli.json) {
            printf("{\"domain\":");
            json_str(stdout, domain);
            printf(",\"selector\":");
            json_str(stdout, sel);
            printf(",\"algorithm\":\"%s\",\"key\":", ed ? "ed25519-sha256" : "rsa-sha256");
            json_str(stdout, path);
            printf(",\"txt\":");
            json_str(stdout, txt);
            printf("}\n");
        } else {
            printf("# %s written (mode 0600); add to the dkim block of relayguard.conf:\n", path);
            printf("#   key = %s %s %s\n", domain, sel, path);
            printf("# and publish in DNS:\n");
            print_txt_record(sel, domain, txt);
        }
        return EX_OK;
    }
    if (strcmp(verb, "list") == 0) {
        want_pos(&o, 1, 1, "dkim list");
        rg_config *c = rg_config_load(g_cli.conf_path, err, sizeof err);
        if (c == NULL)
            die(EX_USAGE, "%s", err);
        g_cli.cfg = c;
        rg_dkim_keys *k = rg_dkim_keys_load(c, err, sizeof err);
        if (k == NULL)
            die(EX_USAGE, "%s", err);
        size_t n = rg_dkim_keys_count(k);
        if (g_cli.json)
            printf("[");
        for (size_t i = 0; i < n; i++) {
            const char *d, *sel, *alg;
            int bits;
            rg_dkim_key_info(k, i, &d, &sel, &alg, &bits);
            if (rg_dkim_key_txt(k, i, txt, sizeof txt) < 0)
                txt[0] = '\0';
            if (g_cli.json) {
                printf("%s{\"domain\":", i ? "," : "");
                json_str(stdout, d);
                printf(",\"selector\":");
                json_str(stdout, sel);
                printf(",\"algorithm\":\"%s\",\"bits\":%d,\"key\":", alg, bits);
                json_str(stdout, c->dkim.keys[i].path);
                printf(",\"txt\":");
                json_str(stdout, txt);
                printf("}");
            } else {
                printf("%s %s %s %d %s\n", d, sel, alg, bits, c->dkim.keys[i].path);
                printf("  %s._domainkey.%s TXT \"%s\"\n", sel, d, txt);
            }
        }
        if (g_cli.json)
            printf("]\n");
        rg_dkim_keys_unref(k);
        return n ? EX_OK : EX_NO;
    }
    usage_error("dkim: unknown verb '%s' (keygen, list)", verb);
}

/* --- main ------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: relayguard [-c FILE] [--json] COMMAND ...\n"
        "\n"
        "  account add|set NAME [--domains D,..] [--networks CIDR,..] [--countries CC,..]\n"
        "                  [--logins L,..] [--local-users U,..] [--client-networks CIDR,..]\n"
        "                  [--limit SPEC].. [--no-limits] [--max-size SIZE] [--suspend|--resume]\n"
        "                  [--feedback-id TEXT] [--list-unsubscribe '<URI>, ..'] [--bulk|--no-bulk]\n"
        "                  [--account-header 'NAME [hmac]']   (\"\" clears a text option)\n"
        "                  [--webhook-url URL] [--webhook-events TYPE,..] [--webhook-secret TEXT]\n"
        "                  [--managed-bounces|--no-managed-bounces|--default-bounces]\n"
        "  account show NAME | list | del NAME | resume NAME\n"
        "  limit show|reset ACCOUNT|--global [--limit NAME] [--domain D|--ip A]\n"
        "  suppress add ADDR [--account A] [--reason R] [--expires 30d|DATE] [--note TEXT]\n"
        "  suppress del|check ADDR [--account A]\n"
        "  suppress list|export [--account A]\n"
        "  suppress import FILE|- [--account A]\n"
        "  events [--follow] [--count N] [--account A] [--verdict V] [--type T]\n"
        "  stats [ACCOUNT]\n"
        "  check-config [--accounts FILE]\n"
        "  load FILE [--dry-run] [--prune]\n"
        "  dkim keygen DOMAIN SELECTOR [--ed25519] [--dir DIR]\n"
        "  dkim list\n"
        "  webhooks status | list-dead | retry ID|--all | drop ID|--all\n"
        "  bounce [--rcpt ADDR|--rcpt-env VAR] < MESSAGE | bounce parse FILE.. | bounce token ACCOUNT SENDER RCPT..\n"
        "  bounce [--rcpt ADDR] FILE.. | bounce --maildir DIR | bounce --lmtp LISTEN [--user USER]\n"
        "  version | help\n"
        "\n"
        "-c FILE: config (default %s); --json: JSON output where the output is data.\n"
        "Exit: 0 ok, 1 not found or negative answer, 2 usage or config error, 3 store error.\n"
        "See relayguard(1).\n",
        RG_DEFAULT_CONFIG);
}

int main(int argc, char **argv)
{
    g_cli.conf_path = RG_DEFAULT_CONFIG;
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        { "account", cmd_account }, { "limit", cmd_limit }, { "suppress", cmd_suppress },
        { "events", cmd_events }, { "stats", cmd_stats }, { "check-config", cmd_check_config },
        { "load", cmd_load }, { "dkim", cmd_dkim },
    };

    /* Global options before the command. */
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && strcmp(argv[i], "-") != 0; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (++i >= argc)
                usage_error("%s needs a file", argv[i - 1]);
            g_cli.conf_path = argv[i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            g_cli.conf_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--json") == 0) {
            g_cli.json = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EX_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("relayguard %s\n", RG_VERSION);
            return EX_OK;
        } else {
            usage_error("unknown option '%s'", argv[i]);
        }
    }
    if (i >= argc)
        usage_error("no command given");
    const char *verb = argv[i];
    if (strcmp(verb, "help") == 0) {
        usage(stdout);
        return EX_OK;
    }
    if (strcmp(verb, "version") == 0) {
        printf("relayguard %s\n", RG_VERSION);
        return EX_OK;
    }
    if (strcmp(verb, "bounce") == 0)    /* cli/bounce.c: sysexits(3) codes for the MTA */
        return rg_cli_bounce(argc - i - 1, argv + i + 1, g_cli.conf_path, g_cli.json);
    if (strcmp(verb, "webhooks") == 0)  /* cli/webhooks.c: relayguard-webhookd's queues */
        return rg_cli_webhooks(g_cli.conf_path, g_cli.json, argc - i - 1, argv + i + 1);
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
        if (strcmp(verb, cmds[k].name) == 0) {
            int rc = cmds[k].fn(argc - i - 1, argv + i + 1);
            if (fflush(stdout) != 0) {
                warnx("write error: %s", strerror(errno));
                rc = rc ? rc : EX_USAGE;
            }
            cli_cleanup();
            return rc;
        }
    }
    usage_error("unknown command '%s'", verb);
}
