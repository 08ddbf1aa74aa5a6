/*
 * test_conf - the file syntax (conf.c) and relayguard.conf (config.c):
 * values, blocks, errors with their exact line numbers, defaults.
 */
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

#include "conf.h"
#include "config.h"
#include "rg.h"
#include "unit.h"
#include "util.h"

static void
test_parse_ok(void **state)
{
    const char *text =
        "# a comment\n"
        "store = redis://127.0.0.1:6379/0   # trailing comment\n"
        "\n"
        "  limit = 100/1h\n"
        "limit=5/1s scope=ip\n"
        "empty =\n"
        "quoted = \"a # b  \"  # comment\n"
        "mixed = x \"y  z\" w\n"
        "escaped = \"say \\\"hi\\\" \\\\ ok\"\n"
        "policyd {\n"
        "\tlisten = unix:/run/x.sock\r\n"
        "}\n"
        "account alice@x.test {   # comment after brace\n"
        "    domains = a.test, .b.test\n"
        "}\n"
        "tight{\n"
        "}";                                    /* no newline at the end */
    char err[256] = "";
    rg_conf *c = rg_conf_parse_string("t.conf", text, err, sizeof err);
    (void)state;

    if (c == NULL)
        fail_msg("parse failed: %s", err);
    assert_int_equal(c->nblocks, 4);
    const rg_conf_block *top = &c->blocks[0];
    CHECK_STR("top type", top->type, "");
    assert_int_equal(top->nitems, 7);
    CHECK_STR("store", rg_conf_get(top, "store"), "redis://127.0.0.1:6379/0");
    CHECK_INT("store line", top->items[0].line, 2);
    CHECK_STR("first limit", rg_conf_get(top, "limit"), "100/1h");
    CHECK_STR("second limit", top->items[2].value, "5/1s scope=ip");
    CHECK_INT("second limit line", top->items[2].line, 5);
    CHECK_STR("empty", rg_conf_get(top, "empty"), "");
    CHECK_STR("quoted", rg_conf_get(top, "quoted"), "a # b  ");
    CHECK_STR("mixed", rg_conf_get(top, "mixed"), "x y  z w");
    CHECK_STR("escaped", rg_conf_get(top, "escaped"), "say \"hi\" \\ ok");
    assert_null(rg_conf_get(top, "missing"));

    CHECK_STR("policyd type", c->blocks[1].type, "policyd");
    CHECK_STR("policyd name", c->blocks[1].name, "");
    CHECK_INT("policyd line", c->blocks[1].line, 10);
    CHECK_STR("listen (CRLF)", rg_conf_get(&c->blocks[1], "listen"), "unix:/run/x.sock");
    CHECK_STR("account type", c->blocks[2].type, "account");
    CHECK_STR("account name", c->blocks[2].name, "alice@x.test");
    CHECK_INT("account line", c->blocks[2].line, 13);
    CHECK_STR("domains", rg_conf_get(&c->blocks[2], "domains"), "a.test, .b.test");
    CHECK_STR("tight", c->blocks[3].type, "tight");
    rg_conf_free(c);
}

static void
test_parse_errors(void **state)
{
    static const struct { const char *label, *text, *err; } cases[] = {
        { "missing =",          "a = 1\n\nstore redis://x\n",
          "t.conf:3: missing '=' after 'store'" },
        { "key alone",          "store\n",               "t.conf:1: missing '=' after 'store'" },
        { "missing key",        "x = 1\n = 2\n",         "t.conf:2: missing key before '='" },
        { "two word key",       "foo bar = 1\n",         "t.conf:1: bad key 'foo bar'" },
        { "bad char in key",    "a/b = 1\n",             "t.conf:1: bad character '/'" },
        { "unterminated block", "x = 1\n\n\npolicyd {\n listen = inet:1.2.3.4:5\n",
          "t.conf:5: unterminated block 'policyd' opened at line 4" },
        { "unexpected brace",   "a = 1\n}\n",            "t.conf:2: unexpected '}'" },
        { "second close",       "p {\n}\n}\n",           "t.conf:3: unexpected '}'" },
        { "text after close",   "p {\n} x\n",            "t.conf:2: unexpected text after '}'" },
        { "text after open",    "p { a = 1\n}\n",        "t.conf:1: unexpected text after '{'" },
        { "nested",             "a {\n b {\n }\n}\n",
          "t.conf:2: block 'b' inside block 'a' opened at line 1" },
        { "open quote",         "a = \"xyz\n",           "t.conf:1: unterminated quoted string" },
        { "control byte",       "a = 1\nb = x\x01y\n",   "t.conf:2: control character" },
        { "bad utf-8",          "a = 1\nb = 2\nc = \xc3(\n", "t.conf:3: invalid UTF-8" },
        { "overlong utf-8",     "c = \xc0\xaf\n",        "t.conf:1: invalid UTF-8" },
        { "surrogate",          "c = \xed\xa0\x80\n",    "t.conf:1: invalid UTF-8" },
        { "garbage",            "=\n",                   "t.conf:1: missing key before '='" },
        { "lone brace",         "{\n",                   "t.conf:1: expected 'key = value'" },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        char err[256] = "";
        rg_conf *c = rg_conf_parse_string("t.conf", cases[i].text, err, sizeof err);
        if (c != NULL) {
            rg_conf_free(c);
            fail_msg("case '%s': parsed, want an error", cases[i].label);
        }
        CHECK_HAS(cases[i].label, err, cases[i].err);
    }
}

/* Write text (len bytes, NULs allowed) to a temporary file; returns its name. */
static char *
temp_file(const void *text, size_t len)
{
    char *path = strdup("/tmp/rg-test-conf-XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void
test_parse_file_errors(void **state)
{
    char err[512];
    (void)state;

    /* a NUL byte, with its line number */
    static const char nul[] = "a = 1\nb = x\0y\n";
    char *p = temp_file(nul, sizeof nul - 1);
    assert_null(rg_conf_parse_file(p, err, sizeof err));
    char want[256];
    snprintf(want, sizeof want, "%s:2: NUL byte", p);
    CHECK_STR("NUL", err, want);
    unlink(p);
    free(p);

    /* a line of 8192 bytes is fine, 8193 is not */
    size_t n = 8192 + 20;
    char *big = malloc(n * 2);
    memcpy(big, "ok = 1\nk = ", 11);
    memset(big + 11, 'v', 8192 - 4);
    memcpy(big + 11 + 8192 - 4, "\nk = ", 5);
    memset(big + 11 + 8192 - 4 + 5, 'v', 8192 - 3);
    size_t total = 11 + 8192 - 4 + 5 + 8192 - 3;
    big[total++] = '\n';
    p = temp_file(big, total);
    assert_null(rg_conf_parse_file(p, err, sizeof err));
    snprintf(want, sizeof want, "%s:3: line too long (over 8192 bytes)", p);
    CHECK_STR("long line", err, want);
    unlink(p);
    free(p);
    free(big);

    assert_null(rg_conf_parse_file("/nonexistent/relayguard.conf", err, sizeof err));
    CHECK_HAS("missing file", err, "/nonexistent/relayguard.conf: cannot open");
}

static void
test_strv(void **state)
{
    static const struct { const char *label, *in; size_t n; const char *first, *last; } cases[] = {
        { "commas",         "a,b,c",          3, "a", "c" },
        { "commas blanks",  " a , b\tc ",     3, "a", "c" },
        { "empty",          "",               0, NULL, NULL },
        { "only separators", " , ,, ",        0, NULL, NULL },
        { "one",            "x",              1, "x", "x" },
        { "newlines",       "a\nb\r\nc",      3, "a", "c" },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        char **v = rg_strv_split(cases[i].in);
        assert_non_null(v);
        CHECK_INT(cases[i].label, rg_strv_len(v), cases[i].n);
        if (cases[i].n > 0) {
            CHECK_STR(cases[i].label, v[0], cases[i].first);
            CHECK_STR(cases[i].label, v[cases[i].n - 1], cases[i].last);
        }
        rg_strv_free(v);
    }
    char **v = rg_strv_split(NULL);
    CHECK_INT("NULL", rg_strv_len(v), 0);
    rg_strv_free(v);
}

static void
test_config_defaults(void **state)
{
    rg_config *c = rg_config_new_default();
    char host[256] = "";
    (void)state;

    CHECK_STR("store text", c->store_text, "redis://127.0.0.1:6379/0");
    CHECK_STR("store host", c->store.host, "127.0.0.1");
    CHECK_INT("store port", c->store.port, 6379);
    CHECK_INT("store db", c->store.db, 0);
    CHECK_INT("store unix", c->store.unix_socket, false);
    CHECK_U64("store_timeout", c->store_timeout_ms, 250);
    CHECK_INT("on_store_error", c->on_store_error, RG_ON_ERROR_TEMPFAIL);
    gethostname(host, sizeof host);
    CHECK_STR("node", c->node, host[0] ? host : "localhost");
    assert_null(c->geoip_db);
    CHECK_U64("events_max", c->events_max, 100000);
    CHECK_U64("reservation_ttl", c->reservation_ttl_ms, 600000);
    CHECK_INT("log", c->log, RG_LOG_SYSLOG);
    CHECK_INT("log_level", c->log_level, LOG_INFO);
    CHECK_INT("limits", c->n_limits, 0);
    CHECK_STR("listen", c->policyd.listen, "inet:127.0.0.1:10040");
    assert_null(c->policyd.user);
    CHECK_INT("max_connections", c->policyd.max_connections, 10000);
    CHECK_U64("idle_timeout", c->policyd.idle_timeout_ms, 300000);
    assert_null(c->policyd.pidfile);
    rg_config_free(c);
}

/* Load text as a config file; NULL with the message (file name "F") in err. */
static rg_config *
load_text(const char *text, char *err, size_t errlen)
{
    char *p = temp_file(text, strlen(text));
    char raw[512];
    rg_config *c = rg_config_load(p, raw, sizeof raw);

    if (c == NULL) {
        /* replace the temporary path by "F" so messages can be compared */
        size_t pl = strlen(p);
        if (strncmp(raw, p, pl) == 0)
            snprintf(err, errlen, "F%s", raw + pl);
        else
            snprintf(err, errlen, "%s", raw);
    }
    unlink(p);
    free(p);
    return c;
}

static void
test_config_load(void **state)
{
    const char *text =
        "store = redis://relay:s3cr%40t@[2001:db8::7]:6380/3\n"
        "store_timeout = 1s\n"
        "on_store_error = accept\n"
        "node = mx-1.example\n"
        "geoip_db = /var/lib/GeoIP/GeoLite2-Country.mmdb\n"
        "events_max = 5000\n"
        "reservation_ttl = 15m\n"
        "log = stderr\n"
        "log_level = debug\n"
        "limit = 1000/1m\n"
        "limit = quota 100/1d scope=domain per=rcpt\n"
        "policyd {\n"
        "  listen = unix:/run/relayguard/policyd.sock\n"
        "  user = relayguard\n"
        "  max_connections = 64\n"
        "  idle_timeout = 60s\n"
        "  pidfile = /run/relayguard/policyd.pid\n"
        "}\n";
    char err[512] = "";
    rg_config *c = load_text(text, err, sizeof err);
    (void)state;

    if (c == NULL)
        fail_msg("load failed: %s", err);
    CHECK_STR("host", c->store.host, "2001:db8::7");
    CHECK_INT("port", c->store.port, 6380);
    CHECK_INT("db", c->store.db, 3);
    CHECK_STR("user", c->store.user, "relay");
    CHECK_STR("password", c->store.password, "s3cr@t");
    CHECK_STR("masked", c->store_text, "redis://relay:***@[2001:db8::7]:6380/3");
    CHECK_U64("timeout", c->store_timeout_ms, 1000);
    CHECK_INT("on error", c->on_store_error, RG_ON_ERROR_ACCEPT);
    CHECK_STR("node", c->node, "mx-1.example");
    CHECK_STR("geoip", c->geoip_db, "/var/lib/GeoIP/GeoLite2-Country.mmdb");
    CHECK_U64("events_max", c->events_max, 5000);
    CHECK_U64("ttl", c->reservation_ttl_ms, 900000);
    CHECK_INT("log", c->log, RG_LOG_STDERR);
    CHECK_INT("level", c->log_level, LOG_DEBUG);
    assert_int_equal(c->n_limits, 2);
    CHECK_INT("limit 1 scope", c->limits[0].scope, RG_SCOPE_GLOBAL);
    CHECK_STR("limit 1 name", c->limits[0].name, "rate-1000-1m-msg");
    CHECK_INT("limit 2 scope", c->limits[1].scope, RG_SCOPE_DOMAIN);
    CHECK_INT("limit 2 kind", c->limits[1].kind, RG_LIMIT_QUOTA);
    CHECK_STR("listen", c->policyd.listen, "unix:/run/relayguard/policyd.sock");
    CHECK_STR("user", c->policyd.user, "relayguard");
    CHECK_INT("max_connections", c->policyd.max_connections, 64);
    CHECK_U64("idle", c->policyd.idle_timeout_ms, 60000);
    CHECK_STR("pidfile", c->policyd.pidfile, "/run/relayguard/policyd.pid");
    rg_config_free(c);

    /* an empty file is all defaults */
    c = load_text("# nothing\n", err, sizeof err);
    assert_non_null(c);
    CHECK_STR("empty store", c->store_text, "redis://127.0.0.1:6379/0");
    rg_config_free(c);
}

static void
test_config_errors(void **state)
{
    static const struct { const char *label, *text, *err; } cases[] = {
        { "unknown key",        "store = redis://h/0\nbogus = 1\n", "F:2: unknown key 'bogus'" },
        { "unknown block",      "\nfoo {\n}\n",                     "F:2: unknown block 'foo'" },
        { "unknown policyd key", "policyd {\n  port = 1\n}\n",
          "F:2: unknown key 'port' in block 'policyd'" },
        { "account block",      "account alice {\n}\n",
          "F:1: 'account' blocks do not belong in relayguard.conf" },
        { "account says load",  "account alice {\n}\n",             "relayguard load" },
        { "policyd twice",      "policyd {\n}\npolicyd {\n}\n",
          "F:3: second 'policyd' block (the first is at line 1)" },
        { "policyd named",      "policyd x {\n}\n",                 "F:1: block 'policyd' takes no name" },
        { "repeated key",       "log = stderr\nlog = syslog\n",     "F:2: 'log' is already set at line 1" },
        { "empty value",        "node =\n",                         "F:1: missing value for 'node'" },
        { "bad store scheme",   "store = http://x\n",               "F:1: bad store URL" },
        { "store tls",          "store = rediss://x\n",             "rediss://" },
        { "bad store port",     "store = redis://h:99999/0\n",      "F:1: bad store URL: bad port" },
        { "bad store db",       "store = redis://h:1/x\n",          "bad database number" },
        { "store no host",      "store = redis://:6379/0\n",        "missing host" },
        { "store open v6",      "store = redis://[::1:6379/0\n",    "missing ']'" },
        { "store unix relative", "store = redis+unix://run/r.sock\n", "must be absolute" },
        { "store unix param",   "store = redis+unix:///r.sock?x=1\n", "?db=N" },
        { "bad timeout",        "store_timeout = fast\n",           "F:1: bad store_timeout 'fast'" },
        { "zero timeout",       "store_timeout = 0\n",              "F:1: bad store_timeout '0'" },
        { "bad on error",       "on_store_error = drop\n",          "F:1: bad on_store_error 'drop'" },
        { "bad node",           "node = a b\n",                     "F:1: bad node 'a b'" },
        { "bad events_max",     "events_max = 10k\n",               "F:1: bad events_max" },
        { "bad ttl",            "reservation_ttl = 1y\n",           "F:1: bad reservation_ttl" },
        { "bad log",            "log = file\n",                     "F:1: bad log 'file'" },
        { "bad log_level",      "log_level = loud\n",               "F:1: bad log_level 'loud'" },
        { "bad limit",          "\nlimit = 100/1x\n",               "F:2: bad period '1x'" },
        { "account limit at top", "limit = 100/1h scope=account\n",
          "F:1: scope=account needs an account" },
        { "same limit twice",   "limit = 1/1s\nlimit = 1/1s\n",     "F:2: a limit named 'rate-1-1s-msg'" },
        { "reserved limit name", "store = redis://h/0\nlimit = 100/1h name=throttle\n",
          "F:2: the limit name 'throttle' is reserved for relayguard-detectd's throttle action "
          "(detect block, throttle =); give this limit another name=" },
        { "reserved name, domain", "limit = 5/1m scope=domain name=throttle\n",
          "F:1: the limit name 'throttle' is reserved" },
        { "bad listen",         "policyd {\nlisten = tcp:1\n}\n",   "F:2: bad listen 'tcp:1'" },
        { "bad listen port",    "policyd {\nlisten = inet:127.0.0.1:0\n}\n", "bad port" },
        { "bad max_connections", "policyd {\nmax_connections = 0\n}\n", "F:2: bad max_connections" },
        { "bad idle",           "policyd {\nidle_timeout = x\n}\n", "F:2: bad idle_timeout" },
        { "relative pidfile",   "policyd {\npidfile = x.pid\n}\n",  "F:2: pidfile must be an absolute" },
        { "syntax error",       "a = 1\nstore redis://x\n",         "F:2: missing '=' after 'store'" },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        char err[512] = "";
        rg_config *c = load_text(cases[i].text, err, sizeof err);
        if (c != NULL) {
            rg_config_free(c);
            fail_msg("case '%s': loaded, want an error", cases[i].label);
        }
        CHECK_HAS(cases[i].label, err, cases[i].err);
    }

    /* the reserved name is the detect block's own, and other names are free */
    char err[512] = "";
    rg_config *c = load_text("limit = 100/1h name=throttle2\ndetect {\n  throttle = rate 5/1h\n}\n",
                             err, sizeof err);
    if (c == NULL)
        fail_msg("throttle2 and the detect throttle: %s", err);
    CHECK_STR("user limit", c->limits[0].name, "throttle2");
    CHECK_STR("detect throttle", c->detect.throttle.name, RG_LIMIT_NAME_THROTTLE);
    rg_config_free(c);
}

static void
test_store_url(void **state)
{
    static const struct {
        const char *label, *url;
        bool unix_socket;
        const char *host;
        int port, db;
        const char *user, *password;
    } cases[] = {
        { "host port db",  "redis://10.0.0.5:6379/2",      false, "10.0.0.5", 6379, 2, "", "" },
        { "host only",     "redis://redis.internal",       false, "redis.internal", 6379, 0, "", "" },
        { "trailing slash", "redis://h/",                  false, "h", 6379, 0, "", "" },
        { "v6",            "redis://[::1]:7000/1",         false, "::1", 7000, 1, "", "" },
        { "password only", "redis://secret@h:1/0",         false, "h", 1, 0, "", "secret" },
        { "empty user",    "redis://:secret@h:1/0",        false, "h", 1, 0, "", "secret" },
        { "user pass",     "redis://u:p%3Aw@h:1/0",        false, "h", 1, 0, "u", "p:w" },
        { "@ in password", "redis://u:a@b@h:1/0",          false, "h", 1, 0, "u", "a@b" },
        { "unix",          "redis+unix:///run/redis.sock", true, "/run/redis.sock", 0, 0, "", "" },
        { "unix db",       "redis+unix:///run/redis.sock?db=4", true, "/run/redis.sock", 0, 4, "", "" },
    };
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        rg_store_url u;
        char err[256];
        if (rg_store_url_parse(cases[i].url, &u, err, sizeof err) != 0)
            fail_msg("case '%s': %s", cases[i].label, err);
        CHECK_INT(cases[i].label, u.unix_socket, cases[i].unix_socket);
        CHECK_STR(cases[i].label, u.host, cases[i].host);
        CHECK_INT(cases[i].label, u.port, cases[i].port);
        CHECK_INT(cases[i].label, u.db, cases[i].db);
        CHECK_STR(cases[i].label, u.user, cases[i].user);
        CHECK_STR(cases[i].label, u.password, cases[i].password);
    }
    rg_store_url u;
    char err[256];
    CHECK_INT("bad escape", rg_store_url_parse("redis://u:%zz@h/0", &u, err, sizeof err), -1);
    CHECK_INT("NUL escape", rg_store_url_parse("redis://u:%00@h/0", &u, err, sizeof err), -1);
    CHECK_INT("junk after", rg_store_url_parse("redis://h:1/0/x", &u, err, sizeof err), -1);
    CHECK_INT("query", rg_store_url_parse("redis://h:1/0?x", &u, err, sizeof err), -1);
}

/* util.c helpers used before text goes into logs and events */
static void
test_text(void **state)
{
    static const struct { const char *label, *in; int clean; const char *out; } cases[] = {
        { "ascii",          "hello world",       1, "hello world" },
        { "utf-8",          "J\xc3\xb6rg \xe2\x82\xac", 1, "J\xc3\xb6rg \xe2\x82\xac" },
        { "four bytes",     "\xf0\x9f\x93\xa7", 1, "\xf0\x9f\x93\xa7" },
        { "empty",          "",                  1, "" },
        { "newline",        "a\nb",              0, "a?b" },
        { "tab",            "a\tb",              0, "a?b" },
        { "DEL",            "a\x7f",             0, "a?" },
        { "lone byte",      "a\xff" "b",         0, "a?b" },
        { "cut sequence",   "a\xc3",             0, "a?" },
        { "overlong",       "\xc0\xaf",          0, "??" },
        { "surrogate",      "\xed\xa0\x80",      0, "???" },
        { "above U+10FFFF", "\xf4\x90\x80\x80",  0, "????" },
    };
    char out[64];
    (void)state;
    for (size_t i = 0; i < NELEM(cases); i++) {
        CHECK_INT(cases[i].label, rg_text_clean(cases[i].in), cases[i].clean);
        rg_text_sanitize(cases[i].in, out, sizeof out);
        CHECK_STR(cases[i].label, out, cases[i].out);
    }
    /* truncation keeps whole characters */
    rg_text_sanitize("ab\xc3\xb6", out, 4);
    CHECK_STR("cut before a character", out, "ab");

    char buf[8];
    CHECK_INT("strlcpy fits", rg_strlcpy(buf, "abc", sizeof buf), 3);
    CHECK_INT("strlcpy truncates", rg_strlcpy(buf, "abcdefghij", sizeof buf), 10);
    CHECK_STR("strlcpy truncated", buf, "abcdefg");
    rg_strlcpy(buf, "ab", sizeof buf);
    CHECK_INT("strlcat", rg_strlcat(buf, "cdefgh", sizeof buf), 8);
    CHECK_STR("strlcat truncated", buf, "abcdefg");
    char *d = rg_strndup("hello", 3);
    CHECK_STR("strndup", d, "hel");
    free(d);
}

static void
test_verdict(void **state)
{
    rg_verdict v;
    char buf[256];
    (void)state;

    memset(&v, 0, sizeof v);
    v.action = RG_REJECT;
    v.code = 553;
    strcpy(v.dsn, "5.7.1");
    strcpy(v.reason, "sender_domain");
    strcpy(v.text, "sender domain evil.test is not allowed for account alice");
    strcpy(v.account, "alice");
    CHECK_STR("reject", rg_verdict_format(&v, buf, sizeof buf),
              "reject: 553 5.7.1 sender domain evil.test is not allowed for account alice "
              "(reason=sender_domain account=alice)");
    v.action = RG_ACCEPT;
    strcpy(v.reason, "ok");
    CHECK_STR("accept", rg_verdict_format(&v, buf, sizeof buf), "accept (reason=ok account=alice)");
    CHECK_STR("short", rg_verdict_format(&v, buf, 7), "accept");
    CHECK_STR("stage", rg_stage_name(RG_STAGE_RCPT), "rcpt");
    CHECK_STR("action", rg_action_name(RG_TEMPFAIL), "tempfail");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_file_errors),
        cmocka_unit_test(test_strv),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_load),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_store_url),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_verdict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
