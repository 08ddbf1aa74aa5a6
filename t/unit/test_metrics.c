/*
 * test_metrics - the counters and their Prometheus text: histogram buckets
 * cumulative and consistent with the count, the account label bounded,
 * label values escaped, verdict+reason pairs past the table's size counted
 * as "other".
 */
#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"
#include "rg.h"
#include "unit.h"

static rg_verdict verdict(rg_action a, const char *reason, const char *account)
{
    rg_verdict v;
    memset(&v, 0, sizeof v);
    v.action = a;
    snprintf(v.reason, sizeof v.reason, "%s", reason);
    snprintf(v.account, sizeof v.account, "%s", account);
    return v;
}

/* The value of the sample line that starts with name (exactly, up to the
 * space before the value), or -1. */
static double sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static void test_render(void **state)
{
    (void)state;
    rg_metrics_init("test-daemon", 2);
    rg_verdict v = verdict(RG_ACCEPT, "ok", "alice");
    rg_metrics_decision(&v, 0.00005);           /* first bucket */
    rg_metrics_decision(&v, 0.0007);            /* le 0.001 */
    v = verdict(RG_REJECT, "sender_domain", "b\"o\\b\nx");
    rg_metrics_decision(&v, 3.0);               /* past the last bound: +Inf only */
    v = verdict(RG_ACCEPT, "ok", "carol");      /* the third account: _other */
    rg_metrics_decision(&v, 0.002);
    v = verdict(RG_TEMPFAIL, "store_error", "");  /* no account: no account sample */
    rg_metrics_decision(&v, 0.3);
    rg_metrics_store_error();
    rg_metrics_store_reconnect();
    rg_metrics_store_reconnect();
    rg_metrics_dkim_signature("ed25519-sha256");
    rg_metrics_dkim_signature("rsa-sha256");
    rg_metrics_dkim_signature("rsa-sha256");

    size_t len;
    char *t = rg_metrics_render(&len);
    assert_int_equal(strlen(t), len);
    CHECK_INT("accept ok", sample(t, "relayguard_decisions_total{verdict=\"accept\",reason=\"ok\"}"), 3);
    CHECK_INT("reject", sample(t, "relayguard_decisions_total{verdict=\"reject\",reason=\"sender_domain\"}"), 1);
    CHECK_INT("tempfail", sample(t, "relayguard_decisions_total{verdict=\"tempfail\",reason=\"store_error\"}"), 1);
    CHECK_INT("alice", sample(t, "relayguard_account_decisions_total{account=\"alice\",verdict=\"accept\"}"), 2);
    CHECK_INT("escaped", sample(t, "relayguard_account_decisions_total{account=\"b\\\"o\\\\b\\nx\",verdict=\"reject\"}"), 1);
    CHECK_INT("other", sample(t, "relayguard_account_decisions_total{account=\"_other\",verdict=\"accept\"}"), 1);
    CHECK_INT("carol", sample(t, "relayguard_account_decisions_total{account=\"carol\",verdict=\"accept\"}"), -1);
    CHECK_INT("le 0.0001", sample(t, "relayguard_decision_seconds_bucket{le=\"0.0001\"}"), 1);
    CHECK_INT("le 0.001", sample(t, "relayguard_decision_seconds_bucket{le=\"0.001\"}"), 2);
    CHECK_INT("le 0.0025", sample(t, "relayguard_decision_seconds_bucket{le=\"0.0025\"}"), 3);
    CHECK_INT("le 0.5", sample(t, "relayguard_decision_seconds_bucket{le=\"0.5\"}"), 4);
    CHECK_INT("le 2.5", sample(t, "relayguard_decision_seconds_bucket{le=\"2.5\"}"), 4);
    CHECK_INT("+Inf", sample(t, "relayguard_decision_seconds_bucket{le=\"+Inf\"}"), 5);
    CHECK_INT("count", sample(t, "relayguard_decision_seconds_count"), 5);
    assert_true(sample(t, "relayguard_decision_seconds_sum") > 3.30);
    CHECK_INT("store errors", sample(t, "relayguard_store_errors_total"), 1);
    CHECK_INT("reconnects", sample(t, "relayguard_store_reconnects_total"), 2);
    CHECK_INT("rsa", sample(t, "relayguard_dkim_signatures_total{algorithm=\"rsa-sha256\"}"), 2);
    CHECK_INT("ed25519", sample(t, "relayguard_dkim_signatures_total{algorithm=\"ed25519-sha256\"}"), 1);
    assert_non_null(strstr(t, "relayguard_build_info{daemon=\"test-daemon\",version=\"" PACKAGE_VERSION "\"} 1\n"));
    assert_non_null(strstr(t, "# TYPE relayguard_decision_seconds histogram\n"));
    free(t);
}

/* More distinct verdict+reason pairs than the table holds: the rest are
 * counted, as reason "other", and nothing is lost. */
static void test_reason_overflow(void **state)
{
    (void)state;
    char reason[32];
    for (int i = 0; i < 200; i++) {
        snprintf(reason, sizeof reason, "r%d", i);
        rg_verdict v = verdict(RG_REJECT, reason, "");
        rg_metrics_decision(&v, 0.001);
    }
    size_t len;
    char *t = rg_metrics_render(&len);
    CHECK_INT("first", sample(t, "relayguard_decisions_total{verdict=\"reject\",reason=\"r0\"}"), 1);
    /* the table held 3 pairs from test_render: 125 more fit, 75 are "other" */
    CHECK_INT("other", sample(t, "relayguard_decisions_total{verdict=\"reject\",reason=\"other\"}"), 75);
    CHECK_INT("last named", sample(t, "relayguard_decisions_total{verdict=\"reject\",reason=\"r124\"}"), 1);
    CHECK_INT("first other", sample(t, "relayguard_decisions_total{verdict=\"reject\",reason=\"r125\"}"), -1);
    /* every decision of both tests is in the histogram */
    CHECK_INT("count", sample(t, "relayguard_decision_seconds_count"), 205);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_reason_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
