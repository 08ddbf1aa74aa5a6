/*
 * test_whq.c - the pure parts of the webhooks: event types and their
 * patterns (policy/keys.c), an event as JSON and the signature
 * (webhookd/whq.c).  The signature vector was computed independently:
 *   python3: hmac.new(b"0123456789abcdef", b'1795527901.[{"id":"1-0"}]',
 *            hashlib.sha256).hexdigest()
 *   openssl dgst -sha256 -hmac 0123456789abcdef   (same input)
 */
#include "../unit/unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "conf.h"
#include "config.h"
#include "keys.h"
#include "util.h"
#include "whq.h"

static void test_event_type(void **state)
{
    static const struct {
        const char *label, *type_field, *verdict, *want;
    } cases[] = {
        { "decision", NULL, "reject", "decision.reject" },
        { "empty type field", "", "accept", "decision.accept" },
        { "own type", "detection.spike", "reject", "detection.spike" },
        { "no verdict", NULL, NULL, "decision" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        rg_event_type(cases[i].type_field, cases[i].verdict, out, sizeof out);
        CHECK_STR(cases[i].label, out, cases[i].want);
    }
}

static void test_type_patterns(void **state)
{
    static const struct {
        const char *label, *patterns, *type;
        int want;
    } cases[] = {
        { "empty list: all", "", "decision.accept", 1 },
        { "exact", "decision.reject", "decision.reject", 1 },
        { "exact, other", "decision.reject", "decision.accept", 0 },
        { "glob", "decision.*", "decision.tempfail", 1 },
        { "dotted prefix", "decision", "decision.dunno", 1 },
        { "prefix needs the dot", "decis", "decision.dunno", 0 },
        { "list", "detection, decision.reject", "detection", 1 },
        { "list, glob second", "decision.reject,detection*", "detection.login", 1 },
        { "case folded", "Decision.Reject", "decision.reject", 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char **p = NULL;
        CHECK_INT(cases[i].label, rg_event_patterns_parse(cases[i].patterns, &p), 0);
        CHECK_INT(cases[i].label, rg_event_type_matches(p, cases[i].type), cases[i].want);
        rg_strv_free(p);
    }
    char **p = NULL;
    CHECK_INT("bad character", rg_event_patterns_parse("decision.reject, a/b", &p), -1);
    CHECK_INT("bang", rg_event_patterns_parse("x!", &p), -1);
}

static void test_url(void **state)
{
    static const struct {
        const char *url;
        int want;
    } cases[] = {
        { "https://hooks.example.com/relay", 1 },
        { "http://127.0.0.1:8080/x?a=1&b=2", 1 },
        { "ftp://example.com/", 0 },
        { "https://", 0 },
        { "https:///path", 0 },
        { "https://a.example/with space", 0 },
        { "https://a.example/\x01", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_INT(cases[i].url, rg_webhook_url_valid(cases[i].url), cases[i].want);
}

static void test_event_json(void **state)
{
    char *k[] = { "ts", "verdict", "sender", "nrcpt", "size", "detail", "type" };
    char *v[] = { "1795527901123", "reject", "a\"b\\c@x.net", "3", "12x", "line\nbreak \xff end", "" };
    char type[64];
    char *j = rg_wh_event_json("1795527901123-0", k, v, 7, type, sizeof type);
    CHECK_STR("type", type, "decision.reject");
    CHECK_STR("json", j,
              "{\"id\":\"1795527901123-0\",\"type\":\"decision.reject\","
              "\"time\":\"2026-11-24T13:45:01.123Z\",\"ts\":1795527901123,\"verdict\":\"reject\","
              "\"sender\":\"a\\\"b\\\\c@x.net\",\"nrcpt\":3,\"size\":\"12x\","
              "\"detail\":\"line\\u000abreak \\ufffd end\"}");
    free(j);

    /* an event with its own type keeps it, and its "type" field is not repeated;
     * a detection's evidence goes out as numbers */
    char *k2[] = { "type", "account", "baseline", "current", "ratio", "code" };
    char *v2[] = { "detection.volume", "alice", "12.5", "250", "1.", "451" };
    j = rg_wh_event_json("1-0", k2, v2, 6, type, sizeof type);
    CHECK_STR("own type", j, "{\"id\":\"1-0\",\"type\":\"detection.volume\",\"account\":\"alice\","
              "\"baseline\":12.5,\"current\":250,\"ratio\":\"1.\",\"code\":\"451\"}");
    free(j);
}

static void test_signature(void **state)
{
    char sig[RG_WH_SIGNATURE_MAX];
    const char *body = "[{\"id\":\"1-0\"}]";
    CHECK_INT("sign", rg_wh_signature("0123456789abcdef", 1795527901L, body, strlen(body), sig,
                                      sizeof sig), 0);
    CHECK_STR("vector", sig, "X-Relayguard-Signature: t=1795527901,v1="
              "a652c7162a0d1b9341617848f91edbab0318499e0e97305eb4246d1fd6be4a07");
    char small[40];
    CHECK_INT("too small", rg_wh_signature("0123456789abcdef", 1795527901L, body, strlen(body),
                                           small, sizeof small), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_type),
        cmocka_unit_test(test_type_patterns),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_event_json),
        cmocka_unit_test(test_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
