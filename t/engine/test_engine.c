/*
 * test_engine.c - the engine and decide.lua together, against a real Redis
 * (started by engine.sh, port in $REDIS_PORT), with an injected clock.
 *
 * Pins down: GCRA boundaries and bursts, calendar quotas across month ends,
 * reserve at RCPT / charge once at EOM, holds of messages in flight,
 * refused and aborted messages never charged, suppression with expiry,
 * suspension, unknown logins, header From, store errors, local submission
 * by X-Relayguard-Local token (valid, bad HMAC, expired, wrong key, none).
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "account.h"
#include "clock.h"
#include "config.h"
#include "engine.h"
#include "fixture.h"
#include "keys.h"
#include "localsub.h"
#include "log.h"
#include "store.h"

static const char *accounts_text =
    "account alice {\n"
    "  logins = alice@relay.test\n"
    "  domains = example.com, .example.org\n"
    "  limit = rate 3/1h\n"
    "}\n"
    "account burst {\n"
    "  domains = burst.test\n"
    "  limit = rate 10/1m burst=2\n"
    "}\n"
    "account monthly {\n"
    "  domains = monthly.test\n"
    "  limit = quota 5/1mo hard\n"
    "}\n"
    "account rcpts {\n"
    "  domains = rcpts.test\n"
    "  limit = quota 10/1d per=rcpt\n"
    "}\n"
    "account one {\n"
    "  domains = one.test\n"
    "  limit = quota 1/1d\n"
    "}\n"
    "account net {\n"
    "  domains = net.test\n"
    "  networks = 192.0.2.0/24, 2001:db8::/32\n"
    "  max_size = 1000\n"
    "}\n"
    "account perdom {\n"
    "  domains = a.test, b.test\n"
    "  limit = quota 1/1d scope=domain\n"
    "}\n"
    "account susp {\n"
    "  domains = susp.test\n"
    "  suspended = yes\n"
    "}\n"
    "account tok {\n"                     /* local submission by token (localsub.h) */
    "  local_users = rgtok\n"
    "  domains = tok.test\n"
    "}\n"
    "account lo {\n"                      /* the client of Postfix's local mail */
    "  client_networks = 127.0.0.0/8\n"
    "  domains = tok.test\n"
    "}\n";

static int msg_seq;

static uint64_t utc_ms(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = mi, .tm_sec = s };
    return (uint64_t)timegm(&tm) * 1000;
}

/* The summary field '_s' of a bucket's hold hash (decide.lua: three
 * little-endian doubles n, lo, x); false when there is none. */
static bool hold_summary(fixture *f, const char *bucket, double out[3])
{
    redisReply *rep = redisCommand(f->r, "HGET rg:h:%s _s", bucket);
    assert_non_null(rep);
    bool have = rep->type == REDIS_REPLY_STRING;
    if (have) {
        assert_int_equal(rep->len, 24);
        for (int k = 0; k < 3; k++) {
            uint64_t u = 0;
            for (int b = 7; b >= 0; b--)
                u = u << 8 | (unsigned char)rep->str[k * 8 + b];
            memcpy(&out[k], &u, sizeof u);
        }
    }
    freeReplyObject(rep);
    return have;
}

/* Units held in a bucket's hold hash (slot -> units), all slots summed;
 * also checks the summary's n agrees when there is one, and that its lo is
 * 0 (no slot) or at most the lowest slot. */
static long long held_units(fixture *f, const char *bucket)
{
    redisReply *rep = redisCommand(f->r, "HGETALL rg:h:%s", bucket);
    assert_non_null(rep);
    long long sum = 0, low = -1;
    int slots = 0;
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *k = rep->element[i]->str;
        if (k[0] >= '0' && k[0] <= '9') {
            /* a slot (not _s, _t, q:WINDOW, ...) */
            long long slot = strtoll(k, NULL, 10);
            sum += strtoll(rep->element[i + 1]->str, NULL, 10);
            if (low < 0 || slot < low)
                low = slot;
            slots++;
        }
    }
    freeReplyObject(rep);
    double s[3];
    if (hold_summary(f, bucket, s)) {
        assert_int_equal((long long)s[0], sum);
        if (slots == 0)
            assert_true(s[1] == 0 || s[0] == 0);
        else
            assert_true(s[1] > 0 && (long long)s[1] <= low);
    }
    return sum;
}

static rg_config *test_config(const char *store_url, rg_on_error on_error)
{
    char err[512];
    rg_config *cfg = rg_config_new_default();
    assert_int_equal(rg_store_url_parse(store_url, &cfg->store, err, sizeof err), 0);
    cfg->on_store_error = on_error;
    cfg->store_timeout_ms = 1000;
    cfg->reservation_ttl_ms = 600000;
    snprintf(cfg->node, sizeof cfg->node, "t1");
    return cfg;
}

static fixture *make_fixture(const char *store_url, rg_on_error on_error)
{
    return fx_new(test_config(store_url, on_error), utc_ms(2026, 11, 24, 12, 0, 0), accounts_text);
}

static int setup(void **state)
{
    char url[64];
    fx_redis_url(url, sizeof url);
    fixture *f = make_fixture(url, RG_ON_ERROR_TEMPFAIL);
    fx_redis_ok(f, "FLUSHALL");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* One whole message: RCPT for each recipient, then EOM.  Returns the first
 * refusal, or the EOM verdict. */
static rg_verdict send_msg(fixture *f, const char *login, const char *sender, int nrcpt, const char *qid)
{
    char id[32], rcpt[64];
    snprintf(id, sizeof id, "m%d", ++msg_seq);
    rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = id, .queue_id = "", .sasl_username = login,
                       .client_addr = "192.0.2.10", .sender = sender };
    for (int i = 0; i < nrcpt; i++) {
        snprintf(rcpt, sizeof rcpt, "r%d@dest.test", i);
        req.recipient = rcpt;
        rg_verdict v = fx_check(f, &req);
        if (v.action != RG_ACCEPT)
            return v;
    }
    req.stage = RG_STAGE_EOM;
    req.recipient = "";
    req.recipient_count = (unsigned)nrcpt;
    req.queue_id = qid ? qid : "";
    return fx_check(f, &req);
}

static void test_accept_and_sender_domain(void **state)
{
    fixture *f = *state;
    rg_verdict v = send_msg(f, "alice@relay.test", "a@example.com", 1, NULL);
    assert_int_equal(v.action, RG_ACCEPT);
    assert_string_equal(v.account, "alice");
    v = send_msg(f, "ALICE@relay.test", "a@sub.example.org", 1, NULL);
    assert_int_equal(v.action, RG_ACCEPT);
    v = send_msg(f, "alice@relay.test", "a@example.org", 1, NULL);  /* leading dot: subdomains only */
    assert_int_equal(v.action, RG_REJECT);
    assert_int_equal(v.code, 553);
    assert_string_equal(v.dsn, "5.7.1");
    assert_non_null(strstr(v.text, "example.org"));
    assert_non_null(strstr(v.text, "alice"));
    /* the refusal is an event; the accepted messages charged 2 of 3 */
    assert_true(fx_redis_int(f, "XLEN rg:events") >= 3);
}

static void test_rate_exact_and_recovery(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_ACCEPT);
    rg_verdict v = send_msg(f, "alice@relay.test", "a@example.com", 1, NULL);
    assert_int_equal(v.action, RG_TEMPFAIL);
    assert_int_equal(v.code, 451);
    assert_string_equal(v.dsn, "4.7.1");
    assert_string_equal(v.reason, "rate_limit");
    assert_true(v.retry_after_ms > 19 * 60000 && v.retry_after_ms <= 20 * 60000);
    assert_non_null(strstr(v.text, "try again in"));
    f->clock.now += 20 * 60000 - 1000;      /* one second early: still full */
    assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_TEMPFAIL);
    f->clock.now += 1000;                   /* exactly one emission interval */
    assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_TEMPFAIL);
}

static void test_burst(void **state)
{
    fixture *f = *state;
    assert_int_equal(send_msg(f, "burst", "x@burst.test", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(send_msg(f, "burst", "x@burst.test", 1, NULL).action, RG_ACCEPT);
    rg_verdict v = send_msg(f, "burst", "x@burst.test", 1, NULL);
    assert_int_equal(v.action, RG_TEMPFAIL);
    assert_true(v.retry_after_ms > 5000 && v.retry_after_ms <= 6000);    /* 10/1m: one per 6 s */
    f->clock.now += 6000;
    assert_int_equal(send_msg(f, "burst", "x@burst.test", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(send_msg(f, "burst", "x@burst.test", 1, NULL).action, RG_TEMPFAIL);
}

static void test_quota_month_end(void **state)
{
    fixture *f = *state;
    f->clock.now = utc_ms(2026, 1, 31, 23, 59, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(send_msg(f, "monthly", "m@monthly.test", 1, NULL).action, RG_ACCEPT);
    rg_verdict v = send_msg(f, "monthly", "m@monthly.test", 1, NULL);
    assert_int_equal(v.action, RG_REJECT);      /* hard */
    assert_int_equal(v.code, 550);
    assert_string_equal(v.reason, "quota");
    assert_int_equal(v.retry_after_ms, 60000);  /* until Feb 1 00:00 */
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:monthly:quota-5-1mo-msg q:202601"), 5);
    f->clock.now = utc_ms(2026, 2, 1, 0, 0, 0);
    assert_int_equal(send_msg(f, "monthly", "m@monthly.test", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:monthly:quota-5-1mo-msg q:202602"), 1);
}

static void test_rcpt_charged_once(void **state)
{
    fixture *f = *state;
    rg_verdict v = send_msg(f, "rcpts", "r@rcpts.test", 3, "QID1");
    assert_int_equal(v.action, RG_ACCEPT);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 3);
    /* the same queue id at EOM again (a second adapter): not charged twice */
    rg_request req = { .stage = RG_STAGE_EOM, .msg_id = "other", .queue_id = "QID1",
                       .sasl_username = "rcpts", .client_addr = "192.0.2.10",
                       .sender = "r@rcpts.test", .recipient_count = 3 };
    assert_int_equal(fx_check(f, &req).action, RG_ACCEPT);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 3);
    /* holds are gone after the charge */
    assert_int_equal(held_units(f, "a:rcpts:quota-10-1d-rcpt"), 0);
    /* 7 left: a message of 8 recipients gets 7 and is refused at the 8th */
    v = send_msg(f, "rcpts", "r@rcpts.test", 8, NULL);
    assert_int_equal(v.action, RG_TEMPFAIL);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 3);
}

/* Two adapters on one message (policyd and milter): both reserve at RCPT
 * under their own message keys, the first end-of-message charges, the second
 * is a duplicate that only gives its holds back. */
static void test_two_adapters_charge_once(void **state)
{
    fixture *f = *state;
    const char *ids[] = { "policyd-1", "milter-1" };
    for (int i = 0; i < 2; i++) {
        rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = ids[i], .sasl_username = "rcpts",
                           .client_addr = "192.0.2.10", .sender = "r@rcpts.test",
                           .recipient = "x@dest.test" };
        assert_int_equal(fx_check(f, &req).action, RG_ACCEPT);
    }
    assert_int_equal(held_units(f, "a:rcpts:quota-10-1d-rcpt"), 2);
    for (int i = 0; i < 2; i++) {
        rg_request req = { .stage = RG_STAGE_EOM, .msg_id = ids[i], .queue_id = "4ABC",
                           .sasl_username = "rcpts", .client_addr = "192.0.2.10",
                           .sender = "r@rcpts.test", .recipient_count = 1 };
        assert_int_equal(fx_check(f, &req).action, RG_ACCEPT);
    }
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 1);
    assert_int_equal(held_units(f, "a:rcpts:quota-10-1d-rcpt"), 0);
    /* stats count the message once */
    assert_int_equal(fx_redis_int(f, "HGET rg:st:rcpts:2026112412 accept"), 1);
    assert_int_equal(fx_redis_int(f, "HGET rg:st:*:2026112412 rcpt"), 1);
}

static void test_refused_and_aborted_not_charged(void **state)
{
    fixture *f = *state;
    /* RCPT accepted (hold), then the client goes away: no EOM */
    rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = "aborted", .sasl_username = "one",
                       .client_addr = "192.0.2.10", .sender = "o@one.test", .recipient = "x@dest.test" };
    assert_int_equal(fx_check(f, &req).action, RG_ACCEPT);
    assert_int_equal(held_units(f, "a:one:quota-1-1d-msg"), 1);
    /* while it is in flight, its hold keeps the only place */
    assert_int_equal(send_msg(f, "one", "o@one.test", 1, NULL).action, RG_TEMPFAIL);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:one:quota-1-1d-msg q:20261124"), 0);
    /* still held just before reservation_ttl has passed */
    f->clock.now += f->cfg->reservation_ttl_ms - 1000;
    assert_int_equal(send_msg(f, "one", "o@one.test", 1, NULL).action, RG_TEMPFAIL);
    /* the hold lapses with its slot, at most one slot after reservation_ttl:
     * nothing was charged */
    f->clock.now += 1000 + RG_HOLD_SLOT_MS;
    assert_int_equal(send_msg(f, "one", "o@one.test", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:one:quota-1-1d-msg q:20261124"), 1);
    /* a refused message (foreign domain) leaves no hold and no charge */
    f->clock.now += 86400000;
    assert_int_equal(send_msg(f, "one", "o@foreign.test", 1, NULL).action, RG_REJECT);
    assert_int_equal(held_units(f, "a:one:quota-1-1d-msg"), 0);
    assert_int_equal(send_msg(f, "one", "o@one.test", 1, NULL).action, RG_ACCEPT);
}

/* RCPTs of one message (its own msg_id), no EOM. */
static void rcpts_only(fixture *f, const char *id, int n)
{
    char rcpt[64];
    for (int i = 0; i < n; i++) {
        snprintf(rcpt, sizeof rcpt, "%s%d@dest.test", id, i);
        rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = id, .sasl_username = "rcpts",
                           .client_addr = "192.0.2.10", .sender = "r@rcpts.test", .recipient = rcpt };
        assert_int_equal(fx_check(f, &req).action, RG_ACCEPT);
    }
}

static rg_verdict eom_only(fixture *f, const char *id, unsigned n)
{
    rg_request req = { .stage = RG_STAGE_EOM, .msg_id = id, .queue_id = "", .sasl_username = "rcpts",
                       .client_addr = "192.0.2.10", .sender = "r@rcpts.test", .recipient_count = n };
    return fx_check(f, &req);
}

/* The hold hash's summary (_s: n, lo) stays equal to its live slots when the
 * oldest slot lapses (recount), when a message whose slot lapsed ends late,
 * and when a live message ends.  held_units() checks n against the slots. */
static void test_hold_slots_lapse(void **state)
{
    fixture *f = *state;
    const char *b = "a:rcpts:quota-10-1d-rcpt";
    uint64_t t0 = f->clock.now;
    rcpts_only(f, "A", 2);
    f->clock.now = t0 + 30000;              /* B reserves 3 slots later */
    rcpts_only(f, "B", 3);
    assert_int_equal(held_units(f, b), 5);
    /* A's slot has lapsed, B's has not: A's 2 units no longer count */
    f->clock.now = t0 + f->cfg->reservation_ttl_ms + RG_HOLD_SLOT_MS + 1000;
    assert_int_equal(send_msg(f, "rcpts", "r@rcpts.test", 4, NULL).action, RG_ACCEPT);
    assert_int_equal(held_units(f, b), 3);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 4);
    /* A ends late: checked again (4 used + 3 held + 2 <= 10) and charged;
     * the summary is not touched by its lapsed holds */
    assert_int_equal(eom_only(f, "A", 2).action, RG_ACCEPT);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 6);
    assert_int_equal(held_units(f, b), 3);
    /* B ends: its reservation is charged and released */
    assert_int_equal(eom_only(f, "B", 3).action, RG_ACCEPT);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 9);
    assert_int_equal(held_units(f, b), 0);
    double sum[3];
    assert_true(hold_summary(f, b, sum));
    assert_true(sum[0] == 0);
    /* one place left: the second recipient of the next message is refused */
    assert_int_equal(send_msg(f, "rcpts", "r@rcpts.test", 2, NULL).action, RG_TEMPFAIL);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 9);
}

/* A summary someone damaged (text, a short string, 24 bytes of NaN, a
 * negative count) is rebuilt from the slots, not trusted and not a script
 * error: the holds still count, and the limit is still exact. */
static void test_hold_summary_damaged(void **state)
{
    fixture *f = *state;
    const char *b = "a:rcpts:quota-10-1d-rcpt";
    static const char *bad[] = { "HSET rg:h:%s _s garbage", "HSET rg:h:%s _s 12345678",
                                 "HSET rg:h:%s _s \xff", NULL };
    rcpts_only(f, "D0", 2);
    assert_int_equal(held_units(f, b), 2);
    for (int i = 0; bad[i]; i++) {
        fx_redis_ok(f, bad[i], b);
        char id[8];
        snprintf(id, sizeof id, "D%d", i + 1);
        rcpts_only(f, id, 1);
        /* rebuilt: n agrees with the slots again (held_units checks) */
        assert_int_equal(held_units(f, b), 3 + i);
    }
    /* 24 bytes of NaN, then a negative n: binary values, set through the
     * argv form (the format form cannot carry them) */
    unsigned char nan24[24], neg[24];
    memset(nan24, 0xff, sizeof nan24);
    double v[3] = { -5, 1, 1 };
    for (int k = 0; k < 3; k++) {
        uint64_t u;
        memcpy(&u, &v[k], sizeof u);
        for (int j = 0; j < 8; j++)
            neg[k * 8 + j] = (unsigned char)(u >> (8 * j));
    }
    const unsigned char *vals[] = { nan24, neg };
    char key[128];
    snprintf(key, sizeof key, "rg:h:%s", b);
    for (int i = 0; i < 2; i++) {
        const char *argv[] = { "HSET", key, "_s", (const char *)vals[i] };
        size_t len[] = { 4, strlen(key), 2, 24 };
        redisReply *rep = redisCommandArgv(f->r, 4, argv, len);
        assert_non_null(rep);
        assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
        freeReplyObject(rep);
        char id[8];
        snprintf(id, sizeof id, "N%d", i);
        rcpts_only(f, id, 1);
        assert_int_equal(held_units(f, b), 6 + i);
    }
    /* 7 held of 10: three more recipients fit, the fourth does not */
    rcpts_only(f, "E", 3);
    rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = "F", .sasl_username = "rcpts",
                       .client_addr = "192.0.2.10", .sender = "r@rcpts.test",
                       .recipient = "f@dest.test" };
    assert_int_equal(fx_check(f, &req).action, RG_TEMPFAIL);
    assert_int_equal(held_units(f, b), 10);
}

/* A message without a queue id: its reservation is its charged marker, so
 * end-of-message repeated (twice, three times) charges once and gives its
 * holds back once. */
static void test_eom_repeated_without_queue_id(void **state)
{
    fixture *f = *state;
    const char *q = "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124";
    rcpts_only(f, "R", 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(eom_only(f, "R", 2).action, RG_ACCEPT);
    assert_int_equal(fx_redis_int(f, q), 2);
    assert_int_equal(held_units(f, "a:rcpts:quota-10-1d-rcpt"), 0);
    /* another message's hold is not given back by a repeated end */
    rcpts_only(f, "S", 1);
    assert_int_equal(eom_only(f, "R", 2).action, RG_ACCEPT);
    assert_int_equal(held_units(f, "a:rcpts:quota-10-1d-rcpt"), 1);
    assert_int_equal(fx_redis_int(f, q), 2);
}

static void test_scope_domain(void **state)
{
    fixture *f = *state;
    assert_int_equal(send_msg(f, "perdom", "x@a.test", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(send_msg(f, "perdom", "x@a.test", 1, NULL).action, RG_TEMPFAIL);
    assert_int_equal(send_msg(f, "perdom", "x@b.test", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(fx_redis_int(f, "HGET rg:h:a:perdom:quota-1-1d-msg:d:b.test q:20261124"), 1);
}

/* A relayguard.conf limit with scope=domain counts per sender domain over
 * every account, under "g", and its text names no account. */
static void test_global_domain_limit(void **state)
{
    fixture *f = *state;
    char err[256];
    f->cfg->limits = calloc(1, sizeof *f->cfg->limits);
    assert_int_equal(rg_limit_parse("quota 1/1d scope=domain name=gdom", RG_SCOPE_GLOBAL,
                                    &f->cfg->limits[0], err, sizeof err), 0);
    f->cfg->n_limits = 1;
    assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_ACCEPT);
    rg_verdict v = send_msg(f, "alice@relay.test", "b@example.com", 1, NULL);
    assert_int_equal(v.action, RG_TEMPFAIL);
    assert_string_equal(v.reason, "quota");
    assert_non_null(strstr(v.text, "of sender domain example.com reached"));
    assert_null(strstr(v.text, "account"));
    assert_int_equal(fx_redis_int(f, "HGET rg:h:g:gdom:d:example.com q:20261124"), 1);
    /* another domain has its own bucket */
    assert_int_equal(send_msg(f, "alice@relay.test", "a@x.example.org", 1, NULL).action, RG_ACCEPT);
}

static void test_suppression(void **state)
{
    fixture *f = *state;
    long long since = (long long)utc_ms(2026, 11, 1, 0, 0, 0) / 1000;
    fx_redis_ok(f, "HSET rg:s:g gone@dest.test hard-bounce|%lld|0|", since);
    fx_redis_ok(f, "HSET rg:s:a:alice unsub@dest.test unsubscribe|%lld|0|", since);
    fx_redis_ok(f, "HSET rg:s:g old@dest.test complaint|%lld|%lld|", since, since + 3600);
    rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = "s1", .sasl_username = "alice@relay.test",
                       .client_addr = "192.0.2.10", .sender = "a@example.com",
                       .recipient = "<Gone@Dest.test>" };
    rg_verdict v = fx_check(f, &req);
    assert_int_equal(v.action, RG_REJECT);
    assert_int_equal(v.code, 550);
    assert_string_equal(v.text, "<gone@dest.test>: suppressed (hard-bounce since 2026-11-01)");
    req.recipient = "unsub@dest.test";
    v = fx_check(f, &req);
    assert_string_equal(v.reason, "suppressed");
    assert_non_null(strstr(v.text, "unsubscribe"));
    req.recipient = "old@dest.test";                /* expired entry: absent */
    assert_int_equal(fx_check(f, &req).action, RG_ACCEPT);
    assert_int_equal(fx_redis_int(f, "HEXISTS rg:s:g old@dest.test"), 0);
}

/* Suspension: the engine's copy says so while its generation is current;
 * an account suspended elsewhere (generation bumped) is refused at once, by
 * the script reading the field, before this node has reloaded. */
static void test_suspended_generation(void **state)
{
    fixture *f = *state;
    rg_verdict v = send_msg(f, "susp", "a@susp.test", 1, NULL);
    assert_int_equal(v.code, 550);
    assert_string_equal(v.reason, "suspended");
    assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_ACCEPT);
    fx_redis_ok(f, "HSET rg:acct:alice suspended yes");
    fx_redis_ok(f, "INCR rg:acct:gen");
    v = send_msg(f, "alice@relay.test", "a@example.com", 1, NULL);
    assert_int_equal(v.code, 550);
    assert_string_equal(v.reason, "suspended");
}

/* A reply showing a newer accounts generation reloads the accounts at once,
 * even right after the previous load (rg_engine_new loaded them just now). */
static void test_newer_generation_reloads(void **state)
{
    fixture *f = *state;
    assert_string_equal(send_msg(f, "zed", "a@zed.test", 1, NULL).reason, "unknown_account");
    fx_redis_ok(f, "HSET rg:acct:zed logins zed domains zed.test");
    fx_redis_ok(f, "SADD rg:accts zed");
    fx_redis_ok(f, "INCR rg:acct:gen");
    /* this decision's reply carries generation 1: the engine reloads */
    send_msg(f, "alice@relay.test", "a@example.com", 1, NULL);
    rg_verdict v = send_msg(f, "zed", "a@zed.test", 1, NULL);
    assert_int_equal(v.action, RG_ACCEPT);
    assert_string_equal(v.account, "zed");
}

static void test_suspended_unknown_network_size(void **state)
{
    fixture *f = *state;
    rg_verdict v = send_msg(f, "mallory", "a@example.com", 1, NULL);
    assert_int_equal(v.code, 550);
    assert_string_equal(v.reason, "unknown_account");

    rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = "n1", .sasl_username = "net",
                       .client_addr = "198.51.100.7", .sender = "x@net.test", .recipient = "y@dest.test" };
    v = fx_check(f, &req);
    assert_string_equal(v.reason, "network");
    req.client_addr = "2001:db8::5";
    assert_int_equal(fx_check(f, &req).action, RG_ACCEPT);
    req.client_addr = "::ffff:192.0.2.9";
    assert_int_equal(fx_check(f, &req).action, RG_ACCEPT);
    req.stage = RG_STAGE_MAIL;
    req.size = 1001;
    v = fx_check(f, &req);
    assert_int_equal(v.code, 552);
    assert_string_equal(v.dsn, "5.3.4");

    /* an unauthenticated client no account claims: not ours */
    rg_request anon = { .stage = RG_STAGE_RCPT, .client_addr = "203.0.113.1", .sender = "a@b.c",
                        .recipient = "d@e.f" };
    assert_int_equal(fx_check(f, &anon).action, RG_DUNNO);
}

static void test_header_from(void **state)
{
    fixture *f = *state;
    rg_request req = { .stage = RG_STAGE_HEADER, .msg_id = "h1", .sasl_username = "alice@relay.test",
                       .client_addr = "192.0.2.10", .sender = "a@example.com",
                       .header_from = "\"Alice, A.\" <alice@example.com>" };
    assert_int_equal(fx_check(f, &req).action, RG_ACCEPT);
    req.header_from = "Boss <boss@bank.test>";
    rg_verdict v = fx_check(f, &req);
    assert_int_equal(v.code, 550);
    assert_string_equal(v.reason, "header_from");
    req.header_from = "";
    assert_int_equal(fx_check(f, &req).code, 550);
}

static void test_noscript_recovery(void **state)
{
    fixture *f = *state;
    fx_redis_ok(f, "SCRIPT FLUSH");
    assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_ACCEPT);
}

/* decide.lua runs as a function (FCALL); after FUNCTION FLUSH the next
 * decision loads the library again and still gets its answer. */
static void test_function_flush_recovery(void **state)
{
    fixture *f = *state;
    assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_ACCEPT);
    fx_redis_ok(f, "FUNCTION FLUSH");
    assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_ACCEPT);
    redisReply *rep = redisCommand(f->r, "FUNCTION LIST LIBRARYNAME relayguard_*");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 1);
    freeReplyObject(rep);
    /* and the call after it is an FCALL again, no EVAL */
    fx_redis_ok(f, "CONFIG RESETSTAT");
    assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_ACCEPT);
    rep = redisCommand(f->r, "INFO commandstats");
    assert_non_null(rep);
    assert_non_null(strstr(rep->str, "cmdstat_fcall:calls="));
    assert_null(strstr(rep->str, "cmdstat_eval:"));
    freeReplyObject(rep);
}

/* A Redis user that may not use FUNCTION or FCALL (ACL): decisions run with
 * EVALSHA, and limits are as exact as ever. */
static void test_functions_refused(void **state)
{
    fixture *f = *state;
    fx_redis_ok(f, "ACL SETUSER nofn on >secret ~* &* +@all -function -fcall");
    char url[96];
    snprintf(url, sizeof url, "redis://nofn:secret@127.0.0.1:%s/0", getenv("REDIS_PORT"));
    fixture *g = make_fixture(url, RG_ON_ERROR_TEMPFAIL);
    fx_redis_ok(g, "FUNCTION FLUSH");
    /* alice: rate 3/1h (test_rate_exact_and_recovery) */
    for (int i = 0; i < 3; i++)
        assert_int_equal(send_msg(g, "alice@relay.test", "a@example.com", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(send_msg(g, "alice@relay.test", "a@example.com", 1, NULL).action, RG_TEMPFAIL);
    redisReply *rep = redisCommand(g->r, "INFO commandstats");
    assert_non_null(rep);
    assert_non_null(strstr(rep->str, "cmdstat_evalsha:calls="));
    freeReplyObject(rep);
    teardown((void **)&g);
    fx_redis_ok(f, "ACL DELUSER nofn");
}

static void test_store_down(void **state)
{
    (void)state;
    fixture *f = make_fixture("redis://127.0.0.1:1/0", RG_ON_ERROR_TEMPFAIL);
    rg_verdict v = send_msg(f, "alice@relay.test", "a@example.com", 1, NULL);
    assert_int_equal(v.action, RG_TEMPFAIL);
    assert_int_equal(v.code, 451);
    assert_string_equal(v.dsn, "4.3.0");
    /* a static refusal stays a refusal even when its event cannot be written */
    v = send_msg(f, "alice@relay.test", "a@foreign.test", 1, NULL);
    assert_int_equal(v.code, 553);
    teardown((void **)&f);
    f = make_fixture("redis://127.0.0.1:1/0", RG_ON_ERROR_ACCEPT);
    v = send_msg(f, "alice@relay.test", "a@example.com", 1, NULL);
    assert_int_equal(v.action, RG_ACCEPT);
    assert_string_equal(v.reason, "store_error");
    teardown((void **)&f);
}

/* ---- local submission by token (localsub.h): the X-Relayguard-Local
 * header value in rg_request.local_token, as relayguard-milter passes it
 * for Postfix's non-SMTP mail (client 127.0.0.1) */

#define TOK_UID 4242
#define TOK_NONCE "0123456789abcdef0123456789abcdef"
#define TOK_REFUSED "local submission without a valid X-Relayguard-Local header " \
                    "(submit through relayguard-sendmail)"

static char key_path[] = "/tmp/rg-test-engine-key-XXXXXX";  /* made by main() */

/* An engine whose configuration reads local_key (NULL: none) and
 * local_submission as relayguard.conf would. */
static fixture *make_local_fixture(const char *key, const char *submission)
{
    char url[64], err[512];
    fx_redis_url(url, sizeof url);
    rg_config *cfg = test_config(url, RG_ON_ERROR_TEMPFAIL);
    if (key != NULL)
        assert_int_equal(rg_localsub_conf_apply(&cfg->local, "local_key", key, "test", 1,
                                                err, sizeof err), 1);
    assert_int_equal(rg_localsub_conf_apply(&cfg->local, "local_submission", submission, "test", 2,
                                            err, sizeof err), 1);
    fixture *f = fx_new(cfg, utc_ms(2026, 11, 24, 12, 0, 0), accounts_text);
    fx_redis_ok(f, "FLUSHALL");
    return f;
}

/* A token for rgtok signed with k, made age_s seconds before the
 * fixture's clock. */
static void mint(fixture *f, const rg_localsub_key *k, int64_t age_s, char *out, size_t len)
{
    char err[256];
    int64_t now = (int64_t)(f->clock.now / 1000);
    if (rg_localsub_mint(k, TOK_UID, "rgtok", now - age_s, TOK_NONCE, out, len, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void load_key(rg_localsub_key *k)
{
    char err[256];
    if (rg_localsub_key_load(key_path, k, err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* One local message as the milter asks about it at end of headers and of
 * message: RCPT, then EOM, from 127.0.0.1, each with the token. */
static rg_verdict local_msg(fixture *f, const char *token, const char *sender)
{
    char id[32];
    snprintf(id, sizeof id, "m%d", ++msg_seq);
    rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = id, .queue_id = "", .client_addr = "127.0.0.1",
                       .sender = sender, .recipient = "r@dest.test", .local_token = token };
    rg_verdict v = fx_check(f, &req);
    if (v.action != RG_ACCEPT)
        return v;
    req.stage = RG_STAGE_EOM;
    req.recipient = "";
    req.recipient_count = 1;
    return fx_check(f, &req);
}

/* Each case: one local message from 127.0.0.1 with a token of a kind, at
 * an age (seconds before the clock), and the exact verdict. */
typedef enum { TOKEN_NONE, TOKEN_GOOD, TOKEN_BAD_HMAC, TOKEN_OTHER_KEY } token_kind;

typedef struct local_case {
    const char *label;
    const char *submission;     /* local_submission */
    bool no_key;                /* no local_key in the configuration */
    token_kind token;
    int64_t age_s;
    rg_action action;
    int code;
    const char *dsn, *reason, *account, *text;  /* text: NULL for any */
} local_case;

static const local_case local_cases[] = {
    { "local token: valid, required: accepted as the local user's account",
      "required", false, TOKEN_GOOD, 10, RG_ACCEPT, 250, "2.0.0", "ok", "tok", NULL },
    { "local token: valid, optional: accepted as the local user's account",
      "optional", false, TOKEN_GOOD, 10, RG_ACCEPT, 250, "2.0.0", "ok", "tok", NULL },
    { "local token: bad HMAC, required: refused",
      "required", false, TOKEN_BAD_HMAC, 10, RG_REJECT, 550, "5.7.1", "local_token", "", TOK_REFUSED },
    { "local token: bad HMAC, optional: ignored, the client 127.0.0.1's account",
      "optional", false, TOKEN_BAD_HMAC, 10, RG_ACCEPT, 250, "2.0.0", "ok", "lo", NULL },
    { "local token: one second short of local_max_age (1h): accepted",
      "required", false, TOKEN_GOOD, 3600 - 1, RG_ACCEPT, 250, "2.0.0", "ok", "tok", NULL },
    { "local token: expired (one second over local_max_age), required: refused",
      "required", false, TOKEN_GOOD, 3600 + 1, RG_REJECT, 550, "5.7.1", "local_token", "",
      TOK_REFUSED },
    { "local token: signed with another key, required: refused",
      "required", false, TOKEN_OTHER_KEY, 10, RG_REJECT, 550, "5.7.1", "local_token", "",
      TOK_REFUSED },
    { "local token: no local_key to verify with, required: tempfail",
      "required", true, TOKEN_GOOD, 10, RG_TEMPFAIL, 451, "4.3.5", "local_token", "",
      "relayguard: local submission cannot be verified, try again later" },
    { "local token: none, required: refused",
      "required", false, TOKEN_NONE, 0, RG_REJECT, 550, "5.7.1", "local_token", "", TOK_REFUSED },
    { "local token: none, optional: the client 127.0.0.1's account",
      "optional", false, TOKEN_NONE, 0, RG_ACCEPT, 250, "2.0.0", "ok", "lo", NULL },
};

static void test_local_case(void **state)
{
    const local_case *c = *state;
    rg_localsub_key k;
    char tok[RG_LOCALSUB_TOKEN_MAX] = "";
    fixture *f = make_local_fixture(c->no_key ? NULL : key_path, c->submission);
    if (c->token == TOKEN_OTHER_KEY) {
        k.len = 32;
        memcpy(k.bytes, "fedcba9876543210fedcba9876543210", 32);
    } else {
        load_key(&k);
    }
    if (c->token != TOKEN_NONE)
        mint(f, &k, c->age_s, tok, sizeof tok);
    if (c->token == TOKEN_BAD_HMAC) {
        char *sig = strstr(tok, "s=");
        assert_non_null(sig);
        sig[2] = sig[2] == '0' ? '1' : '0';     /* one hex digit of the HMAC */
    }
    rg_localsub_key_clear(&k);
    rg_verdict v = local_msg(f, tok, "a@tok.test");
    if (v.action != c->action || v.code != c->code || strcmp(v.dsn, c->dsn) != 0 ||
        strcmp(v.reason, c->reason) != 0 || strcmp(v.account, c->account) != 0 ||
        (c->text != NULL && strcmp(v.text, c->text) != 0))
        fail_msg("%s: got %d %d %s reason=%s account='%s' '%s', want %d %d %s reason=%s "
                 "account='%s' '%s'", c->label, v.action, v.code, v.dsn, v.reason, v.account,
                 v.text, c->action, c->code, c->dsn, c->reason, c->account,
                 c->text ? c->text : "*");
    fx_free(f);
}

/* A valid token's message is the local user's in every way: charged to
 * it, and held to its sender domains. */
static void test_local_token_account(void **state)
{
    (void)state;
    rg_localsub_key k;
    char tok[RG_LOCALSUB_TOKEN_MAX];
    fixture *f = make_local_fixture(key_path, "required");
    load_key(&k);
    mint(f, &k, 10, tok, sizeof tok);
    rg_localsub_key_clear(&k);
    assert_int_equal(local_msg(f, tok, "a@tok.test").action, RG_ACCEPT);
    assert_int_equal(fx_redis_int(f, "HGET rg:st:tok:2026112412 accept"), 1);
    assert_int_equal(fx_redis_int(f, "HGET rg:st:lo:2026112412 accept"), 0);
    rg_verdict v = local_msg(f, tok, "a@example.com");
    assert_int_equal(v.action, RG_REJECT);
    assert_int_equal(v.code, 553);
    assert_string_equal(v.reason, "sender_domain");
    assert_string_equal(v.account, "tok");
    fx_free(f);
}

_Static_assert(sizeof local_cases / sizeof local_cases[0] == 10, "main() lists every local case");
#define LOCAL_CASE(i) { local_cases[i].label, test_local_case, NULL, NULL, (void *)&local_cases[i] }

int main(void)
{
    if (getenv("REDIS_PORT") == NULL) {
        fprintf(stderr, "REDIS_PORT not set: run through t/engine/engine.sh\n");
        return 1;
    }
    rg_log_open("test_engine", RG_LOG_STDERR, LOG_WARNING);
    int kfd = mkstemp(key_path);        /* mode 0600, as local_key must be */
    if (kfd < 0 || write(kfd, TOK_NONCE "\n", 33) != 33 || close(kfd) != 0) {
        perror(key_path);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accept_and_sender_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_exact_and_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_month_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_charged_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_adapters_charge_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_and_aborted_not_charged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_global_domain_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suppression, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suspended_unknown_network_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suspended_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_generation_reloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_slots_lapse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_summary_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eom_repeated_without_queue_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_from, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noscript_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_flush_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_functions_refused, setup, teardown),
        cmocka_unit_test(test_store_down),
        cmocka_unit_test(test_local_token_account),
        LOCAL_CASE(0), LOCAL_CASE(1), LOCAL_CASE(2), LOCAL_CASE(3), LOCAL_CASE(4),
        LOCAL_CASE(5), LOCAL_CASE(6), LOCAL_CASE(7), LOCAL_CASE(8), LOCAL_CASE(9),
    };
    int rc = cmocka_run_group_tests_name("engine", tests, NULL, NULL);
    unlink(key_path);
    return rc;
}
