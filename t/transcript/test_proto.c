/*
 * test_proto.c - the policy protocol without sockets: framing limits,
 * parsing into an rg_request, verdict -> reply.  Table-driven.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

/* Scan a whole buffer at once, or fed in steps of `step` bytes. */
static rg_proto_status scan_all(const char *buf, size_t len, size_t step, size_t *reqlen,
                                char *err, size_t errlen)
{
    rg_proto_scan st;
    rg_proto_status r = RG_PROTO_MORE;
    size_t have;

    memset(&st, 0, sizeof st);
    if (step == 0)
        step = len;
    for (have = step < len ? step : len;; have = have + step < len ? have + step : len) {
        r = rg_proto_scan_input(&st, buf, have, reqlen, err, errlen);
        if (r != RG_PROTO_MORE || have == len)
            return r;
    }
}

/* ---- framing ---------------------------------------------------------- */

struct scan_case {
    const char *label;
    const char *input;      /* NULL: built by the test */
    size_t len;             /* 0: strlen(input) */
    rg_proto_status want;
    size_t want_reqlen;
    const char *want_err;   /* substring */
};

static const struct scan_case scan_cases[] = {
    { "complete request", "request=smtpd_access_policy\nprotocol_state=RCPT\n\n", 0,
      RG_PROTO_DONE, 49, NULL },
    { "CRLF lines", "request=smtpd_access_policy\r\n\r\n", 0, RG_PROTO_DONE, 31, NULL },
    { "no blank line yet", "request=smtpd_access_policy\nsender=a@b\n", 0, RG_PROTO_MORE, 0, NULL },
    { "partial line", "request=smtpd_acc", 0, RG_PROTO_MORE, 0, NULL },
    { "pipelined: first ends", "request=x\n\nrequest=y\n\n", 0, RG_PROTO_DONE, 11, NULL },
    { "empty value", "sender=\n\n", 0, RG_PROTO_DONE, 9, NULL },
    { "value with '='", "x=a=b\n\n", 0, RG_PROTO_DONE, 7, NULL },
    { "line without '='", "request=smtpd_access_policy\nhello\n\n", 0, RG_PROTO_BAD, 0, "without '='" },
    { "empty name", "=value\n\n", 0, RG_PROTO_BAD, 0, "name is not text" },
    { "control byte in name", "req\001uest=x\n\n", 0, RG_PROTO_BAD, 0, "name is not text" },
    { "invalid UTF-8 in name", "req\xff\xfeuest=x\n\n", 0, RG_PROTO_BAD, 0, "name is not text" },
    { "overlong UTF-8 in name", "a\xc0\xaf" "b=x\n\n", 0, RG_PROTO_BAD, 0, "name is not text" },
    { "UTF-8 text in name is fine", "n\xc3\xa4me=x\n\n", 0, RG_PROTO_DONE, 9, NULL },
    { "8-bit value is fine", "helo_name=\xe9" "t\xe9\n\n", 0, RG_PROTO_DONE, 15, NULL },
    { "NUL in value", "sender=a\0b\n\n", 12, RG_PROTO_BAD, 0, "NUL byte" },
    { "NUL before any newline", "\0\0\0\0", 4, RG_PROTO_BAD, 0, "NUL byte" },
};

static void test_scan_table(void **state)
{
    size_t i, step;
    static const size_t steps[] = { 0, 1, 3, 7 };

    (void) state;
    for (i = 0; i < sizeof scan_cases / sizeof scan_cases[0]; i++) {
        const struct scan_case *tc = &scan_cases[i];
        size_t len = tc->len ? tc->len : strlen(tc->input);

        for (step = 0; step < sizeof steps / sizeof steps[0]; step++) {
            char err[128] = "";
            size_t reqlen = 0;
            rg_proto_status r = scan_all(tc->input, len, steps[step], &reqlen, err, sizeof err);

            if (r != tc->want)
                fail_msg("%s (step %zu): status %d, want %d (%s)", tc->label, steps[step],
                         (int) r, (int) tc->want, err);
            if (r == RG_PROTO_DONE && reqlen != tc->want_reqlen)
                fail_msg("%s: reqlen %zu, want %zu", tc->label, reqlen, tc->want_reqlen);
            if (tc->want_err && strstr(err, tc->want_err) == NULL)
                fail_msg("%s: error '%s', want '%s'", tc->label, err, tc->want_err);
        }
    }
}

static char *repeat_lines(const char *line, size_t n, size_t *len)
{
    size_t l = strlen(line), i;
    char *buf = malloc(l * n + 2);

    for (i = 0; i < n; i++)
        memcpy(buf + i * l, line, l);
    buf[l * n] = '\n';
    buf[l * n + 1] = '\0';
    *len = l * n + 1;
    return buf;
}

static void test_line_limit(void **state)
{
    char err[128];
    size_t reqlen, len;
    char *buf = malloc(RG_PROTO_LINE_MAX + 16);

    (void) state;
    /* exactly the limit: fine */
    memcpy(buf, "x=", 2);
    memset(buf + 2, 'a', RG_PROTO_LINE_MAX - 2);
    memcpy(buf + RG_PROTO_LINE_MAX, "\n\n", 2);
    len = RG_PROTO_LINE_MAX + 2;
    assert_int_equal(scan_all(buf, len, 0, &reqlen, err, sizeof err), RG_PROTO_DONE);
    assert_int_equal(reqlen, len);
    /* one more, terminated */
    buf[RG_PROTO_LINE_MAX] = 'a';
    memcpy(buf + RG_PROTO_LINE_MAX + 1, "\n\n", 2);
    assert_int_equal(scan_all(buf, len + 1, 0, &reqlen, err, sizeof err), RG_PROTO_BAD);
    assert_non_null(strstr(err, "request line too long (over 8192 bytes)"));
    /* too long and no newline yet: refused before it ends */
    memset(buf, 'a', RG_PROTO_LINE_MAX + 2);
    assert_int_equal(scan_all(buf, RG_PROTO_LINE_MAX + 2, 1000, &reqlen, err, sizeof err),
                     RG_PROTO_BAD);
    assert_non_null(strstr(err, "request line too long"));
    free(buf);
}

static void test_request_limit(void **state)
{
    char err[128];
    size_t reqlen, len;
    /* 100 lines of 1000 bytes = 100 kB, each line fine */
    char line[1001];
    char *buf;

    (void) state;
    memset(line, 'v', sizeof line - 1);
    memcpy(line, "n=", 2);
    line[999] = '\n';
    line[1000] = '\0';
    buf = repeat_lines(line, 100, &len);
    assert_int_equal(scan_all(buf, len, 4096, &reqlen, err, sizeof err), RG_PROTO_BAD);
    assert_non_null(strstr(err, "request too long (over 65536 bytes)"));
    /* 60 such lines fit */
    free(buf);
    buf = repeat_lines(line, 60, &len);
    assert_int_equal(scan_all(buf, len, 0, &reqlen, err, sizeof err), RG_PROTO_DONE);
    free(buf);
}

static void test_attr_limit(void **state)
{
    char err[128];
    size_t reqlen, len;
    char *buf;

    (void) state;
    buf = repeat_lines("a=1\n", RG_PROTO_ATTRS_MAX, &len);
    assert_int_equal(scan_all(buf, len, 0, &reqlen, err, sizeof err), RG_PROTO_DONE);
    free(buf);
    buf = repeat_lines("a=1\n", RG_PROTO_ATTRS_MAX + 1, &len);
    assert_int_equal(scan_all(buf, len, 0, &reqlen, err, sizeof err), RG_PROTO_BAD);
    assert_non_null(strstr(err, "too many attributes (over 256)"));
    free(buf);
}

/* ---- parsing ---------------------------------------------------------- */

static const char full_rcpt[] =
    "request=smtpd_access_policy\n"
    "protocol_state=RCPT\n"
    "protocol_name=ESMTP\n"
    "client_address=192.0.2.10\n"
    "client_name=mail.example.com\n"
    "reverse_client_name=mail.example.com\n"
    "helo_name=mail.example.com\n"
    "sender=alice@example.com\n"
    "recipient=bob@example.net\n"
    "recipient_count=0\n"
    "queue_id=\n"
    "instance=1a2b.5f3c1e2d.4e5f6.0\n"
    "size=12345\n"
    "etrn_domain=\n"
    "stress=\n"
    "sasl_method=PLAIN\n"
    "sasl_username=alice@relay.test\n"
    "sasl_sender=\n"
    "ccert_subject=\n"
    "encryption_protocol=TLSv1.3\n"
    "policy_context=\n"
    "server_address=127.0.0.1\n"
    "server_port=25\n"
    "future_attribute=whatever\n"
    "\n";

static void parse_str(const char *text, char **copy, rg_proto_request *out)
{
    size_t len = strlen(text);

    *copy = malloc(len + 1);
    memcpy(*copy, text, len + 1);
    rg_proto_parse(*copy, len, out);
}

static void test_parse_full(void **state)
{
    rg_proto_request pr;
    char *buf;

    (void) state;
    parse_str(full_rcpt, &buf, &pr);
    assert_int_equal(pr.kind, RG_PROTO_ASK);
    assert_int_equal(pr.req.stage, RG_STAGE_RCPT);
    assert_string_equal(pr.request, "smtpd_access_policy");
    assert_string_equal(pr.protocol_state, "RCPT");
    assert_string_equal(pr.req.client_addr, "192.0.2.10");
    assert_string_equal(pr.req.client_name, "mail.example.com");
    assert_string_equal(pr.req.helo, "mail.example.com");
    assert_string_equal(pr.req.sender, "alice@example.com");
    assert_string_equal(pr.req.recipient, "bob@example.net");
    assert_string_equal(pr.req.queue_id, "");
    assert_string_equal(pr.req.msg_id, "1a2b.5f3c1e2d.4e5f6.0");
    assert_string_equal(pr.req.sasl_username, "alice@relay.test");
    assert_int_equal(pr.req.recipient_count, 0);
    assert_int_equal(pr.req.size, 12345);
    assert_null(pr.req.local_user);
    assert_null(pr.req.header_from);
    free(buf);
}

struct state_case {
    const char *label;
    const char *text;
    rg_proto_kind kind;
    rg_stage stage;
};

static const struct state_case state_cases[] = {
    { "RCPT", "request=smtpd_access_policy\nprotocol_state=RCPT\n\n", RG_PROTO_ASK, RG_STAGE_RCPT },
    { "MAIL", "request=smtpd_access_policy\nprotocol_state=MAIL\n\n", RG_PROTO_ASK, RG_STAGE_MAIL },
    { "END-OF-MESSAGE", "request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n\n",
      RG_PROTO_ASK, RG_STAGE_EOM },
    { "CRLF RCPT", "request=smtpd_access_policy\r\nprotocol_state=RCPT\r\n\r\n", RG_PROTO_ASK, RG_STAGE_RCPT },
    { "DATA", "request=smtpd_access_policy\nprotocol_state=DATA\n\n", RG_PROTO_DUNNO, 0 },
    { "CONNECT", "request=smtpd_access_policy\nprotocol_state=CONNECT\n\n", RG_PROTO_DUNNO, 0 },
    { "EHLO", "request=smtpd_access_policy\nprotocol_state=EHLO\n\n", RG_PROTO_DUNNO, 0 },
    { "VRFY", "request=smtpd_access_policy\nprotocol_state=VRFY\n\n", RG_PROTO_DUNNO, 0 },
    { "ETRN", "request=smtpd_access_policy\nprotocol_state=ETRN\n\n", RG_PROTO_DUNNO, 0 },
    { "no state", "request=smtpd_access_policy\n\n", RG_PROTO_DUNNO, 0 },
    { "no request", "protocol_state=RCPT\nsender=a@b\n\n", RG_PROTO_BAD_REQUEST, 0 },
    { "unknown request", "request=junk_policy\nprotocol_state=RCPT\n\n", RG_PROTO_BAD_REQUEST, 0 },
};

static void test_parse_states(void **state)
{
    size_t i;

    (void) state;
    for (i = 0; i < sizeof state_cases / sizeof state_cases[0]; i++) {
        const struct state_case *tc = &state_cases[i];
        rg_proto_request pr;
        char *buf;

        parse_str(tc->text, &buf, &pr);
        if (pr.kind != tc->kind)
            fail_msg("%s: kind %d, want %d", tc->label, (int) pr.kind, (int) tc->kind);
        if (tc->kind == RG_PROTO_ASK && pr.req.stage != tc->stage)
            fail_msg("%s: stage %d, want %d", tc->label, (int) pr.req.stage, (int) tc->stage);
        free(buf);
    }
}

static void test_parse_numbers(void **state)
{
    rg_proto_request pr;
    char *buf;

    (void) state;
    parse_str("request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n"
              "recipient_count=17\nsize=18446744073709551615\n\n", &buf, &pr);
    assert_int_equal(pr.req.recipient_count, 17);
    assert_true(pr.req.size == UINT64_MAX);
    free(buf);
    parse_str("request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n"
              "recipient_count=-1\nsize=12k\n\n", &buf, &pr);
    assert_int_equal(pr.req.recipient_count, 0);
    assert_true(pr.req.size == 0);
    free(buf);
}

/* ---- replies ---------------------------------------------------------- */

struct reply_case {
    const char *label;
    rg_action action;
    int code;
    const char *dsn;
    const char *text;
    const char *reason;
    const char *want;
};

static const struct reply_case reply_cases[] = {
    { "dunno", RG_DUNNO, 250, "2.0.0", "", "ok", "action=DUNNO\n\n" },
    { "accept is DUNNO: never a whitelist", RG_ACCEPT, 250, "2.0.0", "ok", "ok", "action=DUNNO\n\n" },
    { "reject", RG_REJECT, 553, "5.7.1", "<a@example.org>: sender domain example.org is not allowed",
      "sender_domain", "action=553 5.7.1 <a@example.org>: sender domain example.org is not allowed\n\n" },
    { "tempfail", RG_TEMPFAIL, 451, "4.7.1", "rate limit reached, try again in 20m", "rate_limit",
      "action=451 4.7.1 rate limit reached, try again in 20m\n\n" },
    { "newlines become blanks", RG_REJECT, 550, "5.7.1", "bad\r\nthing\n", "x",
      "action=550 5.7.1 bad  thing\n\n" },
    { "8-bit text", RG_REJECT, 550, "5.7.1", "m\xc3\xbcller", "x", "action=550 5.7.1 m??ller\n\n" },
    { "wrong code class", RG_TEMPFAIL, 550, "5.7.1", "x", "x", "action=451 4.7.1 x\n\n" },
    { "bad dsn", RG_REJECT, 550, "5.x", "x", "x", "action=550 5.7.1 x\n\n" },
    { "dsn class mismatch", RG_REJECT, 552, "4.3.4", "x", "x", "action=552 5.7.1 x\n\n" },
    { "empty text", RG_REJECT, 550, "5.7.1", "", "suppressed", "action=550 5.7.1 relayguard: suppressed\n\n" },
    { "store error", RG_TEMPFAIL, 451, "4.3.0", "temporary failure", "store_error",
      "action=451 4.3.0 temporary failure\n\n" },
};

static void test_reply_table(void **state)
{
    size_t i;

    (void) state;
    for (i = 0; i < sizeof reply_cases / sizeof reply_cases[0]; i++) {
        const struct reply_case *tc = &reply_cases[i];
        rg_verdict v;
        char buf[RG_PROTO_REPLY_MAX];
        size_t n;

        memset(&v, 0, sizeof v);
        v.action = tc->action;
        v.code = tc->code;
        snprintf(v.dsn, sizeof v.dsn, "%s", tc->dsn);
        snprintf(v.text, sizeof v.text, "%s", tc->text);
        snprintf(v.reason, sizeof v.reason, "%s", tc->reason);
        n = rg_proto_reply(&v, buf, sizeof buf);
        if (n != strlen(tc->want) || strcmp(buf, tc->want) != 0)
            fail_msg("%s: got '%s', want '%s'", tc->label, buf, tc->want);
    }
}

static void test_reply_long_text(void **state)
{
    rg_verdict v;
    char buf[RG_PROTO_REPLY_MAX];
    size_t n;

    (void) state;
    memset(&v, 0, sizeof v);
    v.action = RG_REJECT;
    v.code = 550;
    memcpy(v.dsn, "5.7.1", 6);
    memset(v.text, 'x', sizeof v.text - 1);     /* 511 bytes */
    n = rg_proto_reply(&v, buf, sizeof buf);
    assert_int_equal(n, strlen("action=550 5.7.1 ") + RG_PROTO_TEXT_MAX + 2);
    assert_memory_equal(buf + n - 3, "x\n\n", 3);
    /* an unterminated text (a buggy verdict) is still bounded */
    memset(v.text, 'y', sizeof v.text);
    n = rg_proto_reply(&v, buf, sizeof buf);
    assert_int_equal(n, strlen("action=550 5.7.1 ") + RG_PROTO_TEXT_MAX + 2);
    /* too small a buffer: 0, not a cut reply */
    assert_int_equal(rg_proto_reply(&v, buf, 20), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_table),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_request_limit),
        cmocka_unit_test(test_attr_limit),
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_states),
        cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_reply_table),
        cmocka_unit_test(test_reply_long_text),
    };

    return cmocka_run_group_tests_name("policyd protocol", tests, NULL, NULL);
}
