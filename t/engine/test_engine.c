/*
 * test_engine.c - the engine and decide.lua together, against a real Redis
 * (started by engine.sh, port in $REDIS_PORT), with an injected clock.
 *
 * Pins down: GCRA boundaries and bursts, calendar quotas across month ends,
 * reserve at RCPT / charge once at EOM, holds of messages in flight,
 * refused and aborted messages never charged, suppression with expiry,
 * suspension, unknown logins, header From, store errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "account.h"
#include "clock.h"
#include "config.h"
#include "engine.h"
#include "keys.h"
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
    "}\n";

typedef struct fixture {
    rg_config *cfg;
    rg_store *store;
    rg_test_clock clock;
    rg_engine *e;
    redisContext *r;
} fixture;

static int msg_seq;

static uint64_t utc_ms(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = mi, .tm_sec = s };
    return (uint64_t)timegm(&tm) * 1000;
}

static void redis_cmd(fixture *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(f->r, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
}

static long long redis_int(fixture *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(f->r, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    long long v = -1;
    if (rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    else if (rep->type == REDIS_REPLY_STRING)
        v = strtoll(rep->str, NULL, 10);
    else if (rep->type == REDIS_REPLY_NIL)
        v = 0;
    freeReplyObject(rep);
    return v;
}

/* Units held in a bucket's hold hash (slot -> units), all slots summed;
 * also checks the summary field '_n' agrees when it is there. */
static long long held_units(fixture *f, const char *bucket)
{
    redisReply *rep = redisCommand(f->r, "HGETALL rg:h:%s", bucket);
    assert_non_null(rep);
    long long sum = 0, n = -1;
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        long long v = strtoll(rep->element[i + 1]->str, NULL, 10);
        if (strcmp(rep->element[i]->str, "_n") == 0)
            n = v;
        else if (rep->element[i]->str[0] >= '0' && rep->element[i]->str[0] <= '9')
            sum += v;           /* a slot (not _n, _t, q:WINDOW, ...) */
    }
    freeReplyObject(rep);
    if (n >= 0)
        assert_int_equal(n, sum);
    return sum;
}

static fixture *make_fixture(const char *store_url, rg_on_error on_error)
{
    fixture *f = calloc(1, sizeof *f);
    char err[512];
    f->cfg = rg_config_new_default();
    assert_int_equal(rg_store_url_parse(store_url, &f->cfg->store, err, sizeof err), 0);
    f->cfg->on_store_error = on_error;
    f->cfg->store_timeout_ms = 1000;
    f->cfg->reservation_ttl_ms = 600000;
    snprintf(f->cfg->node, sizeof f->cfg->node, "t1");
    rg_test_clock_init(&f->clock, utc_ms(2026, 11, 24, 12, 0, 0));
    f->store = rg_store_redis_sync(f->cfg);
    f->r = redisConnect("127.0.0.1", atoi(getenv("REDIS_PORT")));
    assert_non_null(f->r);
    assert_int_equal(f->r->err, 0);
    f->e = rg_engine_new(f->cfg, f->store, &f->clock.clock, NULL, err, sizeof err);
    assert_non_null(f->e);
    rg_conf *c = rg_conf_parse_string("accounts", accounts_text, err, sizeof err);
    if (c == NULL)
        fail_msg("%s", err);
    rg_accounts *set = rg_accounts_new();
    for (size_t i = 1; i < c->nblocks; i++) {
        rg_account *a = rg_account_from_block(c, &c->blocks[i], err, sizeof err);
        if (a == NULL)
            fail_msg("%s", err);
        assert_int_equal(rg_accounts_add(set, a, err, sizeof err), 0);
    }
    rg_conf_free(c);
    rg_engine_set_accounts(f->e, set, 0);
    return f;
}

static int setup(void **state)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%s/0", getenv("REDIS_PORT"));
    fixture *f = make_fixture(url, RG_ON_ERROR_TEMPFAIL);
    redis_cmd(f, "FLUSHALL");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    f->store->free(f->store);       /* store first: it answers pending calls */
    rg_engine_free(f->e);
    rg_config_free(f->cfg);
    redisFree(f->r);
    free(f);
    return 0;
}

static void capture(void *arg, const rg_verdict *v)
{
    *(rg_verdict *)arg = *v;
}

static rg_verdict check(fixture *f, rg_request *req)
{
    rg_verdict v;
    memset(&v, 0xff, sizeof v);
    v.action = (rg_action)99;
    rg_engine_check(f->e, req, capture, &v);    /* sync store: answers at once */
    assert_int_not_equal(v.action, 99);
    return v;
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
        rg_verdict v = check(f, &req);
        if (v.action != RG_ACCEPT)
            return v;
    }
    req.stage = RG_STAGE_EOM;
    req.recipient = "";
    req.recipient_count = (unsigned)nrcpt;
    req.queue_id = qid ? qid : "";
    return check(f, &req);
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
    assert_true(redis_int(f, "XLEN rg:events") >= 3);
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
    assert_int_equal(redis_int(f, "HGET rg:h:a:monthly:quota-5-1mo-msg q:202601"), 5);
    f->clock.now = utc_ms(2026, 2, 1, 0, 0, 0);
    assert_int_equal(send_msg(f, "monthly", "m@monthly.test", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(redis_int(f, "HGET rg:h:a:monthly:quota-5-1mo-msg q:202602"), 1);
}

static void test_rcpt_charged_once(void **state)
{
    fixture *f = *state;
    rg_verdict v = send_msg(f, "rcpts", "r@rcpts.test", 3, "QID1");
    assert_int_equal(v.action, RG_ACCEPT);
    assert_int_equal(redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 3);
    /* the same queue id at EOM again (a second adapter): not charged twice */
    rg_request req = { .stage = RG_STAGE_EOM, .msg_id = "other", .queue_id = "QID1",
                       .sasl_username = "rcpts", .client_addr = "192.0.2.10",
                       .sender = "r@rcpts.test", .recipient_count = 3 };
    assert_int_equal(check(f, &req).action, RG_ACCEPT);
    assert_int_equal(redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 3);
    /* holds are gone after the charge */
    assert_int_equal(held_units(f, "a:rcpts:quota-10-1d-rcpt"), 0);
    /* 7 left: a message of 8 recipients gets 7 and is refused at the 8th */
    v = send_msg(f, "rcpts", "r@rcpts.test", 8, NULL);
    assert_int_equal(v.action, RG_TEMPFAIL);
    assert_int_equal(redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 3);
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
        assert_int_equal(check(f, &req).action, RG_ACCEPT);
    }
    assert_int_equal(held_units(f, "a:rcpts:quota-10-1d-rcpt"), 2);
    for (int i = 0; i < 2; i++) {
        rg_request req = { .stage = RG_STAGE_EOM, .msg_id = ids[i], .queue_id = "4ABC",
                           .sasl_username = "rcpts", .client_addr = "192.0.2.10",
                           .sender = "r@rcpts.test", .recipient_count = 1 };
        assert_int_equal(check(f, &req).action, RG_ACCEPT);
    }
    assert_int_equal(redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 1);
    assert_int_equal(held_units(f, "a:rcpts:quota-10-1d-rcpt"), 0);
    /* stats count the message once */
    assert_int_equal(redis_int(f, "HGET rg:st:rcpts:2026112412 accept"), 1);
    assert_int_equal(redis_int(f, "HGET rg:st:*:2026112412 rcpt"), 1);
}

static void test_refused_and_aborted_not_charged(void **state)
{
    fixture *f = *state;
    /* RCPT accepted (hold), then the client goes away: no EOM */
    rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = "aborted", .sasl_username = "one",
                       .client_addr = "192.0.2.10", .sender = "o@one.test", .recipient = "x@dest.test" };
    assert_int_equal(check(f, &req).action, RG_ACCEPT);
    assert_int_equal(held_units(f, "a:one:quota-1-1d-msg"), 1);
    /* while it is in flight, its hold keeps the only place */
    assert_int_equal(send_msg(f, "one", "o@one.test", 1, NULL).action, RG_TEMPFAIL);
    assert_int_equal(redis_int(f, "HGET rg:h:a:one:quota-1-1d-msg q:20261124"), 0);
    /* still held just before reservation_ttl has passed */
    f->clock.now += f->cfg->reservation_ttl_ms - 1000;
    assert_int_equal(send_msg(f, "one", "o@one.test", 1, NULL).action, RG_TEMPFAIL);
    /* the hold lapses with its slot, at most one slot after reservation_ttl:
     * nothing was charged */
    f->clock.now += 1000 + RG_HOLD_SLOT_MS;
    assert_int_equal(send_msg(f, "one", "o@one.test", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(redis_int(f, "HGET rg:h:a:one:quota-1-1d-msg q:20261124"), 1);
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
        assert_int_equal(check(f, &req).action, RG_ACCEPT);
    }
}

static rg_verdict eom_only(fixture *f, const char *id, unsigned n)
{
    rg_request req = { .stage = RG_STAGE_EOM, .msg_id = id, .queue_id = "", .sasl_username = "rcpts",
                       .client_addr = "192.0.2.10", .sender = "r@rcpts.test", .recipient_count = n };
    return check(f, &req);
}

/* The hold hash's summary (_n, _lo) stays equal to its live slots when the
 * oldest slot lapses (recount), when a message whose slot lapsed ends late,
 * and when a live message ends.  held_units() checks _n against the slots. */
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
    assert_int_equal(redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 4);
    /* A ends late: checked again (4 used + 3 held + 2 <= 10) and charged;
     * the summary is not touched by its lapsed holds */
    assert_int_equal(eom_only(f, "A", 2).action, RG_ACCEPT);
    assert_int_equal(redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 6);
    assert_int_equal(held_units(f, b), 3);
    /* B ends: its reservation is charged and released */
    assert_int_equal(eom_only(f, "B", 3).action, RG_ACCEPT);
    assert_int_equal(redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 9);
    assert_int_equal(held_units(f, b), 0);
    assert_int_equal(redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt _n"), 0);
    /* one place left: the second recipient of the next message is refused */
    assert_int_equal(send_msg(f, "rcpts", "r@rcpts.test", 2, NULL).action, RG_TEMPFAIL);
    assert_int_equal(redis_int(f, "HGET rg:h:a:rcpts:quota-10-1d-rcpt q:20261124"), 9);
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
    assert_int_equal(redis_int(f, q), 2);
    assert_int_equal(held_units(f, "a:rcpts:quota-10-1d-rcpt"), 0);
    /* another message's hold is not given back by a repeated end */
    rcpts_only(f, "S", 1);
    assert_int_equal(eom_only(f, "R", 2).action, RG_ACCEPT);
    assert_int_equal(held_units(f, "a:rcpts:quota-10-1d-rcpt"), 1);
    assert_int_equal(redis_int(f, q), 2);
}

static void test_scope_domain(void **state)
{
    fixture *f = *state;
    assert_int_equal(send_msg(f, "perdom", "x@a.test", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(send_msg(f, "perdom", "x@a.test", 1, NULL).action, RG_TEMPFAIL);
    assert_int_equal(send_msg(f, "perdom", "x@b.test", 1, NULL).action, RG_ACCEPT);
    assert_int_equal(redis_int(f, "HGET rg:h:a:perdom:quota-1-1d-msg:d:b.test q:20261124"), 1);
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
    assert_int_equal(redis_int(f, "HGET rg:h:g:gdom:d:example.com q:20261124"), 1);
    /* another domain has its own bucket */
    assert_int_equal(send_msg(f, "alice@relay.test", "a@x.example.org", 1, NULL).action, RG_ACCEPT);
}

static void test_suppression(void **state)
{
    fixture *f = *state;
    long long since = (long long)utc_ms(2026, 11, 1, 0, 0, 0) / 1000;
    redis_cmd(f, "HSET rg:s:g gone@dest.test hard-bounce|%lld|0|", since);
    redis_cmd(f, "HSET rg:s:a:alice unsub@dest.test unsubscribe|%lld|0|", since);
    redis_cmd(f, "HSET rg:s:g old@dest.test complaint|%lld|%lld|", since, since + 3600);
    rg_request req = { .stage = RG_STAGE_RCPT, .msg_id = "s1", .sasl_username = "alice@relay.test",
                       .client_addr = "192.0.2.10", .sender = "a@example.com",
                       .recipient = "<Gone@Dest.test>" };
    rg_verdict v = check(f, &req);
    assert_int_equal(v.action, RG_REJECT);
    assert_int_equal(v.code, 550);
    assert_string_equal(v.text, "<gone@dest.test>: suppressed (hard-bounce since 2026-11-01)");
    req.recipient = "unsub@dest.test";
    v = check(f, &req);
    assert_string_equal(v.reason, "suppressed");
    assert_non_null(strstr(v.text, "unsubscribe"));
    req.recipient = "old@dest.test";                /* expired entry: absent */
    assert_int_equal(check(f, &req).action, RG_ACCEPT);
    assert_int_equal(redis_int(f, "HEXISTS rg:s:g old@dest.test"), 0);
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
    redis_cmd(f, "HSET rg:acct:alice suspended yes");
    redis_cmd(f, "INCR rg:acct:gen");
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
    redis_cmd(f, "HSET rg:acct:zed logins zed domains zed.test");
    redis_cmd(f, "SADD rg:accts zed");
    redis_cmd(f, "INCR rg:acct:gen");
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
    v = check(f, &req);
    assert_string_equal(v.reason, "network");
    req.client_addr = "2001:db8::5";
    assert_int_equal(check(f, &req).action, RG_ACCEPT);
    req.client_addr = "::ffff:192.0.2.9";
    assert_int_equal(check(f, &req).action, RG_ACCEPT);
    req.stage = RG_STAGE_MAIL;
    req.size = 1001;
    v = check(f, &req);
    assert_int_equal(v.code, 552);
    assert_string_equal(v.dsn, "5.3.4");

    /* an unauthenticated client no account claims: not ours */
    rg_request anon = { .stage = RG_STAGE_RCPT, .client_addr = "203.0.113.1", .sender = "a@b.c",
                        .recipient = "d@e.f" };
    assert_int_equal(check(f, &anon).action, RG_DUNNO);
}

static void test_header_from(void **state)
{
    fixture *f = *state;
    rg_request req = { .stage = RG_STAGE_HEADER, .msg_id = "h1", .sasl_username = "alice@relay.test",
                       .client_addr = "192.0.2.10", .sender = "a@example.com",
                       .header_from = "\"Alice, A.\" <alice@example.com>" };
    assert_int_equal(check(f, &req).action, RG_ACCEPT);
    req.header_from = "Boss <boss@bank.test>";
    rg_verdict v = check(f, &req);
    assert_int_equal(v.code, 550);
    assert_string_equal(v.reason, "header_from");
    req.header_from = "";
    assert_int_equal(check(f, &req).code, 550);
}

static void test_noscript_recovery(void **state)
{
    fixture *f = *state;
    redis_cmd(f, "SCRIPT FLUSH");
    assert_int_equal(send_msg(f, "alice@relay.test", "a@example.com", 1, NULL).action, RG_ACCEPT);
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

int main(void)
{
    if (getenv("REDIS_PORT") == NULL) {
        fprintf(stderr, "REDIS_PORT not set: run through t/engine/engine.sh\n");
        return 1;
    }
    rg_log_open("test_engine", RG_LOG_STDERR, LOG_WARNING);
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
        cmocka_unit_test_setup_teardown(test_eom_repeated_without_queue_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_from, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noscript_recovery, setup, teardown),
        cmocka_unit_test(test_store_down),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
