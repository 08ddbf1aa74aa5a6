/*
 * proto.c - the Postfix policy delegation protocol: framing, parsing and
 * replies.  Pure functions over buffers, no I/O, so a test can drive them.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto.h"

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len, i;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2; cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3; cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4; cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates, beyond U+10FFFF */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

/* Is a name printable UTF-8 text without control bytes? */
static int name_clean(const unsigned char *s, size_t n)
{
    size_t i = 0, k;

    if (n == 0)
        return 0;
    while (i < n) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            return 0;
        if ((k = utf8_seq(s + i, n - i)) == 0)
            return 0;
        i += k;
    }
    return 1;
}

static rg_proto_status bad(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return RG_PROTO_BAD;
}

rg_proto_status rg_proto_scan_input(rg_proto_scan *st, const char *buf, size_t len,
                                    size_t *reqlen, char *err, size_t errlen)
{
    char msg[128];

    while (st->pos < len) {
        const char *nl = memchr(buf + st->pos, '\n', len - st->pos);
        size_t end = nl ? (size_t) (nl - buf) : len;
        size_t linelen;
        const char *line, *eq;

        if (memchr(buf + st->pos, '\0', end - st->pos))
            return bad(err, errlen, "NUL byte in request");
        if (!nl) {
            st->pos = len;
            /* allow one byte for a '\r' before the newline still to come */
            if (len - st->line_start > RG_PROTO_LINE_MAX + 1) {
                snprintf(msg, sizeof msg, "request line too long (over %d bytes)", RG_PROTO_LINE_MAX);
                return bad(err, errlen, msg);
            }
            break;
        }
        line = buf + st->line_start;
        linelen = end - st->line_start;
        if (linelen > 0 && line[linelen - 1] == '\r')
            linelen--;
        if (linelen > RG_PROTO_LINE_MAX) {
            snprintf(msg, sizeof msg, "request line too long (over %d bytes)", RG_PROTO_LINE_MAX);
            return bad(err, errlen, msg);
        }
        if (end + 1 > RG_PROTO_REQUEST_MAX)
            break;      /* reported below */
        if (linelen == 0) {
            *reqlen = end + 1;
            return RG_PROTO_DONE;
        }
        if ((eq = memchr(line, '=', linelen)) == NULL)
            return bad(err, errlen, "request line without '='");
        if (!name_clean((const unsigned char *) line, (size_t) (eq - line)))
            return bad(err, errlen, "attribute name is not text");
        if (++st->nattrs > RG_PROTO_ATTRS_MAX) {
            snprintf(msg, sizeof msg, "too many attributes (over %d)", RG_PROTO_ATTRS_MAX);
            return bad(err, errlen, msg);
        }
        st->pos = st->line_start = end + 1;
    }
    if (len > RG_PROTO_REQUEST_MAX) {
        snprintf(msg, sizeof msg, "request too long (over %d bytes)", RG_PROTO_REQUEST_MAX);
        return bad(err, errlen, msg);
    }
    return RG_PROTO_MORE;
}

/* Decimal number, or 0 when it is not one. */
static uint64_t number(const char *s)
{
    char *end;
    unsigned long long n;

    if (*s < '0' || *s > '9')
        return 0;
    n = strtoull(s, &end, 10);
    return *end == '\0' ? (uint64_t) n : 0;
}

void rg_proto_parse(char *buf, size_t len, rg_proto_request *out)
{
    rg_request *r = &out->req;
    char *p = buf, *stop = buf + len;
    const char *st;

    memset(out, 0, sizeof *out);
    while (p < stop) {
        char *nl = memchr(p, '\n', (size_t) (stop - p));
        char *eq, *name, *value;

        if (nl == NULL)
            nl = stop - 1;      /* cannot happen: a request ends with "\n" */
        *nl = '\0';
        if (nl > p && nl[-1] == '\r')
            nl[-1] = '\0';
        name = p;
        p = nl + 1;
        if ((eq = memchr(name, '=', (size_t) (nl - name))) == NULL)
            continue;           /* the empty line */
        *eq = '\0';
        value = eq + 1;

        switch (name[0]) {
        case 'c':
            if (strcmp(name, "client_address") == 0) r->client_addr = value;
            else if (strcmp(name, "client_name") == 0) r->client_name = value;
            break;
        case 'h':
            if (strcmp(name, "helo_name") == 0) r->helo = value;
            break;
        case 'i':
            if (strcmp(name, "instance") == 0) r->msg_id = value;
            break;
        case 'p':
            if (strcmp(name, "protocol_state") == 0) out->protocol_state = value;
            break;
        case 'q':
            if (strcmp(name, "queue_id") == 0) r->queue_id = value;
            break;
        case 'r':
            if (strcmp(name, "request") == 0) out->request = value;
            else if (strcmp(name, "recipient") == 0) r->recipient = value;
            else if (strcmp(name, "recipient_count") == 0)
                r->recipient_count = (unsigned) number(value);
            break;
        case 's':
            if (strcmp(name, "sender") == 0) r->sender = value;
            else if (strcmp(name, "sasl_username") == 0) r->sasl_username = value;
            else if (strcmp(name, "size") == 0) r->size = number(value);
            break;
        default:
            break;
        }
    }

    if (out->request == NULL || strcmp(out->request, "smtpd_access_policy") != 0) {
        out->kind = RG_PROTO_BAD_REQUEST;
        return;
    }
    st = out->protocol_state ? out->protocol_state : "";
    out->kind = RG_PROTO_ASK;
    if (strcasecmp(st, "RCPT") == 0)
        r->stage = RG_STAGE_RCPT;
    else if (strcasecmp(st, "MAIL") == 0)
        r->stage = RG_STAGE_MAIL;
    else if (strcasecmp(st, "END-OF-MESSAGE") == 0)
        r->stage = RG_STAGE_EOM;
    else
        out->kind = RG_PROTO_DUNNO;     /* DATA, CONNECT, EHLO, HELO, VRFY, ETRN, ... */
}

/* Is dsn "C.S.D" with class c ('4' or '5')? */
static int dsn_ok(const char *dsn, char c)
{
    const char *p = dsn;
    int i, digits;

    if (p[0] != c || p[1] != '.')
        return 0;
    p += 2;
    for (i = 0; i < 2; i++) {
        for (digits = 0; *p >= '0' && *p <= '9'; p++)
            digits++;
        if (digits < 1 || digits > 3)
            return 0;
        if (i == 0 && *p++ != '.')
            return 0;
    }
    return *p == '\0';
}

size_t rg_proto_reply(const rg_verdict *v, char *buf, size_t buflen)
{
    char text[RG_PROTO_TEXT_MAX + 1];
    char dsn[sizeof v->dsn + 1];
    const char *src;
    size_t n = 0, i;
    int code, lo;
    int len;

    if (v->action != RG_TEMPFAIL && v->action != RG_REJECT) {
        /* the reply to nearly every request: no printf */
        if (sizeof RG_PROTO_REPLY_DUNNO > buflen)
            return 0;
        memcpy(buf, RG_PROTO_REPLY_DUNNO, sizeof RG_PROTO_REPLY_DUNNO);
        return sizeof RG_PROTO_REPLY_DUNNO - 1;
    }

    lo = v->action == RG_TEMPFAIL ? 400 : 500;
    code = v->code >= lo && v->code < lo + 100 ? v->code : lo + (lo == 400 ? 51 : 50);
    memcpy(dsn, v->dsn, sizeof v->dsn);
    dsn[sizeof v->dsn] = '\0';
    if (!dsn_ok(dsn, (char) ('0' + lo / 100)))
        snprintf(dsn, sizeof dsn, "%d.7.1", lo / 100);

    /* One line of printable ASCII: Postfix puts it in an SMTP reply. */
    src = v->text;
    for (i = 0; i < sizeof v->text && src[i] != '\0' && n < RG_PROTO_TEXT_MAX; i++) {
        unsigned char c = (unsigned char) src[i];
        text[n++] = c < 0x20 || c == 0x7f ? ' ' : c > 0x7f ? '?' : (char) c;
    }
    while (n > 0 && text[n - 1] == ' ')
        n--;
    text[n] = '\0';
    if (n == 0)
        snprintf(text, sizeof text, "relayguard: %s",
                 v->reason[0] && memchr(v->reason, '\0', sizeof v->reason) ? v->reason : "refused");
    for (i = 0; text[i]; i++)       /* the reason, too, must be printable */
        if ((unsigned char) text[i] < 0x20 || (unsigned char) text[i] > 0x7e)
            text[i] = '?';

    len = snprintf(buf, buflen, "action=%d %s %s\n\n", code, dsn, text);
    /* RG_PROTO_REPLY_MAX always fits; a smaller buffer is the caller's bug */
    if (len < 0 || (size_t) len >= buflen)
        return 0;
    return (size_t) len;
}
