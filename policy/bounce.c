/*
 * bounce.c - parse and classify bounces and complaints (rules in bounce.h).
 *
 * GMime reads the MIME structure, transfer encodings and header blocks.
 * The fields of a message/delivery-status or message/feedback-report body
 * (RFC 3464 2.1, RFC 5965 3.1: header-like blocks separated by blank
 * lines) are split here: GMime has no parser for a body made of several
 * header blocks.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "bounce.h"
#include "match.h"
#include "util.h"

/* --- the classification table -------------------------------------------------------- */

/*
 * Rule 3: enhanced status codes that decide by themselves (RFC 3463 and
 * the registry of RFC 5248; Microsoft's 5.1.10 "recipient not found" is
 * also RFC 7505's null MX: the address cannot receive mail either way).
 */
static const struct {
    const char *status;
    rg_bounce_class cls;
} status_table[] = {
    { "5.1.1",  RG_BOUNCE_HARD },    /* bad destination mailbox address */
    { "5.1.2",  RG_BOUNCE_HARD },    /* bad destination system address (no such domain) */
    { "5.1.3",  RG_BOUNCE_HARD },    /* bad destination mailbox address syntax */
    { "5.1.6",  RG_BOUNCE_HARD },    /* destination mailbox has moved, no forwarding address */
    { "5.1.10", RG_BOUNCE_HARD },    /* null MX (RFC 7505); Exchange: recipient not found */
    { "5.2.1",  RG_BOUNCE_HARD },    /* mailbox disabled, not accepting messages */
    { "5.4.4",  RG_BOUNCE_HARD },    /* unable to route: no such domain */
    { "5.2.2",  RG_BOUNCE_SOFT },    /* mailbox full */
    { "5.2.3",  RG_BOUNCE_SOFT },    /* message length exceeds administrative limit */
    { "5.3.4",  RG_BOUNCE_SOFT },    /* message too big for system */
    { "5.7.1",  RG_BOUNCE_BLOCK },   /* delivery not authorized, message refused */
    { "5.7.23", RG_BOUNCE_BLOCK },   /* SPF validation failed */
    { "5.7.25", RG_BOUNCE_BLOCK },   /* reverse DNS validation failed */
    { "5.7.26", RG_BOUNCE_BLOCK },   /* multiple authentication checks failed (DMARC) */
    { "5.7.27", RG_BOUNCE_BLOCK },   /* sender address has null MX */
};

/*
 * Rule 4: phrases of the diagnostic text, tried in this order, first match
 * wins (lower case; matched case-insensitively).  Mailbox-does-not-exist
 * phrases come first, so "Recipient address rejected: User unknown" in a
 * reply that also says "policy" is hard.  Sources: RFC 5321 reply texts,
 * the bounce texts Postfix, Exim, Sendmail, qmail and Exchange write, and
 * the documented replies of Gmail, Yahoo and Microsoft 365.
 */
static const struct rg_bounce_rule {
    const char *phrase;
    rg_bounce_class cls;
} rg_bounce_rules[] = {
    /* the mailbox or domain does not exist */
    { "user unknown", RG_BOUNCE_HARD },
    { "unknown user", RG_BOUNCE_HARD },
    { "no such user", RG_BOUNCE_HARD },
    { "user not found", RG_BOUNCE_HARD },
    { "no such mailbox", RG_BOUNCE_HARD },
    { "mailbox not found", RG_BOUNCE_HARD },
    { "mailbox unavailable", RG_BOUNCE_HARD },         /* RFC 5321 550 text */
    { "unknown recipient", RG_BOUNCE_HARD },
    { "invalid recipient", RG_BOUNCE_HARD },
    { "recipient not found", RG_BOUNCE_HARD },         /* Exchange RESOLVER.ADR.RecipNotFound */
    { "recipientnotfound", RG_BOUNCE_HARD },
    { "recipnotfound", RG_BOUNCE_HARD },
    { "recipient address rejected: access denied", RG_BOUNCE_HARD }, /* Microsoft 365 DBEB */
    { "addressee unknown", RG_BOUNCE_HARD },
    { "does not exist", RG_BOUNCE_HARD },              /* Gmail "...you tried to reach does not exist" */
    { "doesn't exist", RG_BOUNCE_HARD },
    { "doesn't have a", RG_BOUNCE_HARD },              /* Yahoo "This user doesn't have a yahoo.com account" */
    { "no mailbox here", RG_BOUNCE_HARD },
    { "account has been disabled", RG_BOUNCE_HARD },
    { "account is disabled", RG_BOUNCE_HARD },
    { "mailbox disabled", RG_BOUNCE_HARD },
    { "unrouteable address", RG_BOUNCE_HARD },         /* Exim */
    { "host or domain name not found", RG_BOUNCE_HARD }, /* Postfix */
    { "domain not found", RG_BOUNCE_HARD },
    { "no such domain", RG_BOUNCE_HARD },
    /* temporary, or about this message only */
    { "mailbox full", RG_BOUNCE_SOFT },
    { "mailbox is full", RG_BOUNCE_SOFT },
    { "over quota", RG_BOUNCE_SOFT },
    { "quota exceeded", RG_BOUNCE_SOFT },
    { "exceeded storage", RG_BOUNCE_SOFT },
    { "insufficient system storage", RG_BOUNCE_SOFT },
    { "message too large", RG_BOUNCE_SOFT },
    { "message size exceeds", RG_BOUNCE_SOFT },
    { "temporarily deferred", RG_BOUNCE_SOFT },        /* Yahoo [TSS04] */
    { "try again later", RG_BOUNCE_SOFT },
    { "connection timed out", RG_BOUNCE_SOFT },
    { "connection refused", RG_BOUNCE_SOFT },
    /* refused because of the sender: policy, reputation, authentication */
    { "permanently deferred", RG_BOUNCE_BLOCK },       /* Yahoo [TSS09] */
    { "spamhaus", RG_BOUNCE_BLOCK },
    { "blacklist", RG_BOUNCE_BLOCK },
    { "blocklist", RG_BOUNCE_BLOCK },
    { "blocked", RG_BOUNCE_BLOCK },
    { "spam", RG_BOUNCE_BLOCK },
    { "reputation", RG_BOUNCE_BLOCK },
    { "dmarc", RG_BOUNCE_BLOCK },
    { "unauthenticated", RG_BOUNCE_BLOCK },
    { "not authorized", RG_BOUNCE_BLOCK },
    { "policy", RG_BOUNCE_BLOCK },
    { "banned sender", RG_BOUNCE_BLOCK },
};
static const size_t rg_bounce_n_rules = sizeof rg_bounce_rules / sizeof rg_bounce_rules[0];

/* Subjects (lower case, prefixes) of non-standard bounces. */
static const char *const bounce_subjects[] = {
    "undeliverable", "undelivered mail", "delivery status notification", "failure notice",
    "returned mail", "mail delivery failed", "delivery failure", "mail delivery failure",
    "delivery has failed", "non remis", "unzustellbar",
};

/* Subjects of auto-replies (not bounces). */
static const char *const autoreply_subjects[] = {
    "out of office", "automatic reply", "auto:", "autoreply", "auto-reply", "vacation",
};

/* --- small helpers ----------------------------------------------------------------- */

const char *
rg_bounce_class_name(rg_bounce_class c)
{
    switch (c) {
    case RG_BOUNCE_UNKNOWN:   return "unknown";
    case RG_BOUNCE_NONE:      return "none";
    case RG_BOUNCE_DELAYED:   return "delayed";
    case RG_BOUNCE_SOFT:      return "soft";
    case RG_BOUNCE_HARD:      return "hard";
    case RG_BOUNCE_BLOCK:     return "block";
    case RG_BOUNCE_COMPLAINT: return "complaint";
    }
    return "unknown";
}

const char *
rg_bounce_format_name(rg_bounce_format f)
{
    switch (f) {
    case RG_BOUNCE_FMT_NONE: return "none";
    case RG_BOUNCE_FMT_DSN:  return "dsn";
    case RG_BOUNCE_FMT_ARF:  return "arf";
    case RG_BOUNCE_FMT_TEXT: return "text";
    }
    return "none";
}

/* How grave a class is, for the report's overall class. */
static int
gravity(rg_bounce_class c)
{
    static const int g[] = {
        [RG_BOUNCE_NONE] = 0, [RG_BOUNCE_UNKNOWN] = 1, [RG_BOUNCE_DELAYED] = 2,
        [RG_BOUNCE_SOFT] = 3, [RG_BOUNCE_BLOCK] = 4, [RG_BOUNCE_HARD] = 5,
        [RG_BOUNCE_COMPLAINT] = 6,
    };
    return g[c];
}

/* Copy s[0..n) into out as printable text (control bytes and bad UTF-8 -> '?'),
 * blanks squeezed. */
static void
clean_copy(const char *s, size_t n, char *out, size_t outlen)
{
    char tmp[1024];
    size_t o = 0;
    bool blank = false;

    for (size_t i = 0; i < n && o + 1 < sizeof tmp; i++) {
        char c = s[i];
        if (c == '\r' || c == '\n' || c == '\t' || c == ' ') {
            if (!blank && o > 0)
                tmp[o++] = ' ';
            blank = true;
            continue;
        }
        blank = false;
        tmp[o++] = c == '\0' ? '?' : c;
    }
    while (o > 0 && tmp[o - 1] == ' ')
        o--;
    tmp[o] = '\0';
    rg_text_sanitize(tmp, out, outlen);
}

/* A lower-case NUL-terminated copy of s[0..n), NULs replaced by blanks. */
static char *
lower_copy(const char *s, size_t n)
{
    char *out = rg_malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c == '\0' ? ' ' : (char)tolower(c);
    }
    out[n] = '\0';
    return out;
}

/* Is s an enhanced status code "C.SSS.DDD" (C 2, 4 or 5)?  Its length, or 0. */
static size_t
status_len(const char *s)
{
    size_t i = 0, d;

    if (s[0] != '2' && s[0] != '4' && s[0] != '5')
        return 0;
    if (s[1] != '.')
        return 0;
    i = 2;
    for (d = 0; isdigit((unsigned char)s[i]) && d < 3; d++)
        i++;
    if (d == 0 || s[i] != '.')
        return 0;
    i++;
    for (d = 0; isdigit((unsigned char)s[i]) && d < 3; d++)
        i++;
    if (d == 0 || isdigit((unsigned char)s[i]) || s[i] == '.')
        return 0;
    return i;
}

/* The first enhanced status code in text (NUL-terminated) into out; and the
 * first SMTP reply code in *reply.  Either may stay empty / 0. */
static void
scan_codes(const char *text, char *status, size_t slen, int *reply)
{
    for (const char *p = text; *p; p++) {
        bool boundary = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '.');
        if (!boundary)
            continue;
        if (status != NULL && status[0] == '\0') {
            size_t n = status_len(p);
            if (n > 0 && n < slen) {
                memcpy(status, p, n);
                status[n] = '\0';
            }
        }
        if (*reply == 0 && (p[0] == '4' || p[0] == '5') && isdigit((unsigned char)p[1]) &&
            isdigit((unsigned char)p[2]) && (p[3] == ' ' || p[3] == '-' || p[3] == ':'))
            *reply = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        if ((status == NULL || status[0] != '\0') && *reply != 0)
            return;
    }
}

/* --- rules 3 to 5 ----------------------------------------------------------------- */

rg_bounce_class
rg_bounce_classify(const char *status, int reply_code, const char *diag, char *rule,
                   size_t rulelen)
{
    char lc[2048];

    if (status == NULL)
        status = "";
    if (diag == NULL)
        diag = "";
    /* A temporary status is soft whatever the text says. */
    if (status[0] == '4' || (status[0] == '\0' && reply_code / 100 == 4)) {
        snprintf(rule, rulelen, "temporary %s", status[0] ? status : "4xx");
        return RG_BOUNCE_SOFT;
    }
    if (status[0] == '2') {
        snprintf(rule, rulelen, "success %s", status);
        return RG_BOUNCE_NONE;
    }
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++) {
        if (strcmp(status, status_table[i].status) == 0) {
            snprintf(rule, rulelen, "status %s", status);
            return status_table[i].cls;
        }
    }
    size_t n = strlen(diag);
    if (n >= sizeof lc)
        n = sizeof lc - 1;
    for (size_t i = 0; i < n; i++)
        lc[i] = (char)tolower((unsigned char)diag[i]);
    lc[n] = '\0';
    for (size_t i = 0; i < rg_bounce_n_rules; i++) {
        if (strstr(lc, rg_bounce_rules[i].phrase) != NULL) {
            snprintf(rule, rulelen, "phrase '%s'", rg_bounce_rules[i].phrase);
            return rg_bounce_rules[i].cls;
        }
    }
    if (status[0] == '5') {
        snprintf(rule, rulelen, "class %.3s", status);
        if (strncmp(status, "5.1.", 4) == 0)
            return RG_BOUNCE_HARD;
        if (strncmp(status, "5.7.", 4) == 0)
            return RG_BOUNCE_BLOCK;
        return RG_BOUNCE_SOFT;
    }
    if (reply_code / 100 == 5) {
        snprintf(rule, rulelen, "reply %d", reply_code);
        return RG_BOUNCE_SOFT;
    }
    snprintf(rule, rulelen, "no rule");
    return RG_BOUNCE_UNKNOWN;
}

/* --- header-like field blocks (DSN, ARF) --------------------------------------------- */

typedef struct field {
    char name[40];      /* lower case */
    char *value;        /* unfolded, trimmed */
} field;

typedef struct fblock {
    field *f;
    size_t n;
} fblock;

static void
fblocks_free(fblock *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < b[i].n; j++)
            free(b[i].f[j].value);
        free(b[i].f);
    }
    free(b);
}

/* Split text into blocks of "Name: value" fields (folded lines joined). */
static fblock *
fblocks_parse(const char *text, size_t len, size_t *nblocks)
{
    fblock *b = NULL;
    size_t nb = 0;
    bool in_block = false;
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
        const char *next = eol ? eol + 1 : end;
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        if (ll == 0 || strspn(p, " \t") == ll) {
            in_block = false;
        } else if ((p[0] == ' ' || p[0] == '\t') && in_block && b[nb - 1].n > 0) {
            field *f = &b[nb - 1].f[b[nb - 1].n - 1];
            size_t old = strlen(f->value);
            if (old < 4096) {
                f->value = rg_realloc(f->value, old + ll + 2);
                f->value[old] = ' ';
                memcpy(f->value + old + 1, p, ll);
                f->value[old + 1 + ll] = '\0';
            }
        } else {
            const char *colon = memchr(p, ':', ll);
            if (colon != NULL && colon > p && (size_t)(colon - p) < sizeof b->f->name) {
                if (!in_block) {
                    if (nb == 64)
                        break;
                    b = rg_realloc(b, (nb + 1) * sizeof *b);
                    b[nb].f = NULL;
                    b[nb].n = 0;
                    nb++;
                    in_block = true;
                }
                fblock *cur = &b[nb - 1];
                if (cur->n < 64) {
                    cur->f = rg_realloc(cur->f, (cur->n + 1) * sizeof *cur->f);
                    field *f = &cur->f[cur->n++];
                    size_t nl = (size_t)(colon - p);
                    for (size_t i = 0; i < nl; i++)
                        f->name[i] = (char)tolower((unsigned char)p[i]);
                    f->name[nl] = '\0';
                    const char *v = colon + 1;
                    size_t vl = ll - nl - 1;
                    f->value = rg_strndup(v, vl);
                }
            }
        }
        p = next;
    }
    /* trim values; NULs inside become blanks through clean_copy later */
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j < b[i].n; j++) {
            char *v = b[i].f[j].value, *s = v;
            while (*s == ' ' || *s == '\t')
                s++;
            memmove(v, s, strlen(s) + 1);
            size_t n = strlen(v);
            while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                v[--n] = '\0';
        }
    *nblocks = nb;
    return b;
}

static const char *
fget(const fblock *b, const char *name)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->f[i].name, name) == 0)
            return b->f[i].value;
    return NULL;
}

/* "rfc822; user@example.com" (or "utf-8; ...", or a bare address) into a
 * normalised address; "" when it is not one. */
static void
typed_address(const char *v, char *out, size_t outlen)
{
    char tmp[RG_ADDR_MAX];

    out[0] = '\0';
    if (v == NULL)
        return;
    const char *semi = strchr(v, ';');
    if (semi != NULL)
        v = semi + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (rg_strlcpy(tmp, v, sizeof tmp) >= sizeof tmp)
        return;
    if (rg_addr_normalize(tmp, out, outlen) < 0 || strchr(out, '@') == NULL)
        out[0] = '\0';
}

/* --- walking the MIME tree ---------------------------------------------------------- */

typedef struct walk {
    rg_bounce_report *r;
    bool report_dsn, report_arf;    /* a multipart/report of that type was seen */
    char *dsn;                      /* message/delivery-status body */
    size_t dsn_len;
    char *arf;                      /* message/feedback-report body */
    size_t arf_len;
    char *text;                     /* the first text/plain part (or the body) */
    size_t text_len;
    char *orig_headers;             /* text/rfc822-headers of the returned message */
    size_t orig_headers_len;
    char orig_to[RG_ADDR_MAX];      /* To of the returned / reported message, if one address */
    int depth;
} walk;

/* The decoded content of a leaf part, at most RG_BOUNCE_PART_MAX bytes. */
static char *
part_bytes(GMimePart *part, size_t *len)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    *len = 0;
    if (w == NULL)
        return NULL;
    GMimeStream *ms = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(w, ms);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(ms));
    size_t n = ba ? ba->len : 0;
    if (n > RG_BOUNCE_PART_MAX)
        n = RG_BOUNCE_PART_MAX;
    char *out = rg_malloc(n + 1);
    if (n > 0)
        memcpy(out, ba->data, n);
    out[n] = '\0';
    g_object_unref(ms);
    *len = n;
    return out;
}

/* Return-Path, Message-ID and To of a returned message's header block. */
static void
note_original(walk *w, const char *return_path, const char *message_id, const char *to)
{
    rg_bounce_report *r = w->r;
    if (return_path != NULL && r->orig_return_path[0] == '\0')
        typed_address(return_path, r->orig_return_path, sizeof r->orig_return_path);
    if (message_id != NULL && r->orig_message_id[0] == '\0')
        clean_copy(message_id, strlen(message_id), r->orig_message_id,
                   sizeof r->orig_message_id);
    if (to != NULL && w->orig_to[0] == '\0' && strchr(to, ',') == NULL)
        typed_address(to, w->orig_to, sizeof w->orig_to);
}

static void walk_object(walk *w, GMimeObject *o);

static void
walk_object(walk *w, GMimeObject *o)
{
    if (o == NULL || w->depth > 8)
        return;
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    w->depth++;
    if (GMIME_IS_MULTIPART(o)) {
        if (ct != NULL && g_mime_content_type_is_type(ct, "multipart", "report")) {
            const char *rt = g_mime_content_type_get_parameter(ct, "report-type");
            if (rt != NULL && strcasecmp(rt, "delivery-status") == 0)
                w->report_dsn = true;
            else if (rt != NULL && strcasecmp(rt, "feedback-report") == 0)
                w->report_arf = true;
        }
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n && i < 32; i++)
            walk_object(w, g_mime_multipart_get_part(mp, i));
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        /* the returned or reported message: its headers only, never its parts */
        GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        if (m != NULL)
            note_original(w, g_mime_object_get_header(GMIME_OBJECT(m), "Return-Path"),
                          g_mime_object_get_header(GMIME_OBJECT(m), "Message-ID"),
                          g_mime_object_get_header(GMIME_OBJECT(m), "To"));
    } else if (GMIME_IS_PART(o) && ct != NULL) {
        size_t len;
        if (g_mime_content_type_is_type(ct, "message", "delivery-status") ||
            g_mime_content_type_is_type(ct, "message", "global-delivery-status")) {
            if (w->dsn == NULL)
                w->dsn = part_bytes(GMIME_PART(o), &w->dsn_len);
        } else if (g_mime_content_type_is_type(ct, "message", "feedback-report")) {
            if (w->arf == NULL)
                w->arf = part_bytes(GMIME_PART(o), &w->arf_len);
        } else if (g_mime_content_type_is_type(ct, "text", "rfc822-headers") ||
                   g_mime_content_type_is_type(ct, "message", "rfc822-headers")) {
            if (w->orig_headers == NULL)
                w->orig_headers = part_bytes(GMIME_PART(o), &w->orig_headers_len);
        } else if (g_mime_content_type_is_type(ct, "text", "*")) {
            if (w->text == NULL ||
                (!g_mime_content_type_is_type(ct, "text", "html") && w->text_len == 0)) {
                char *t = part_bytes(GMIME_PART(o), &len);
                free(w->text);
                w->text = t;
                w->text_len = len;
            }
        }
    }
    w->depth--;
}

/* --- building the report ------------------------------------------------------------ */

static rg_bounce_rcpt *
add_rcpt(rg_bounce_report *r)
{
    if (r->n_rcpt == RG_BOUNCE_RCPT_MAX)
        return NULL;
    rg_bounce_rcpt *x = &r->rcpt[r->n_rcpt++];
    memset(x, 0, sizeof *x);
    return x;
}

/* RFC 3464: per-recipient blocks after the per-message block. */
static void
read_dsn(walk *w)
{
    size_t nb;
    fblock *b = fblocks_parse(w->dsn, w->dsn_len, &nb);
    rg_bounce_report *r = w->r;

    for (size_t i = 0; i < nb; i++) {
        const char *final = fget(&b[i], "final-recipient");
        const char *orig = fget(&b[i], "original-recipient");
        const char *action = fget(&b[i], "action");
        const char *status = fget(&b[i], "status");
        const char *diag = fget(&b[i], "diagnostic-code");
        if (final == NULL && action == NULL && status == NULL)
            continue;            /* the per-message block */
        rg_bounce_rcpt *x = add_rcpt(r);
        if (x == NULL)
            break;
        typed_address(final ? final : (orig ? orig : ""), x->addr, sizeof x->addr);
        if (orig != NULL)
            typed_address(orig, x->orig, sizeof x->orig);
        if (action != NULL) {
            size_t n = strcspn(action, " \t(;");
            if (n >= sizeof x->action)
                n = sizeof x->action - 1;
            for (size_t k = 0; k < n; k++)
                x->action[k] = (char)tolower((unsigned char)action[k]);
            x->action[n] = '\0';
        }
        if (status != NULL) {
            size_t n = status_len(status);
            if (n > 0 && n < sizeof x->status) {
                memcpy(x->status, status, n);
                x->status[n] = '\0';
            }
        }
        const char *dtext = diag ? diag : "";
        const char *semi = strchr(dtext, ';');
        if (semi != NULL && semi - dtext < 16)
            dtext = semi + 1;
        clean_copy(dtext, strlen(dtext), x->diag, sizeof x->diag);

        /* The diagnostic often says more than a generic Status (5.0.0). */
        char dstatus[16] = "";
        int reply = 0;
        scan_codes(x->diag, dstatus, sizeof dstatus, &reply);
        if (dstatus[0] != '\0' && dstatus[0] == x->status[0] &&
            (x->status[0] == '\0' || strcmp(x->status + 1, ".0.0") == 0))
            rg_strlcpy(x->status, dstatus, sizeof x->status);

        if (strcmp(x->action, "delayed") == 0) {
            x->cls = RG_BOUNCE_DELAYED;
            snprintf(x->rule, sizeof x->rule, "action delayed");
        } else if (strcmp(x->action, "delivered") == 0 || strcmp(x->action, "relayed") == 0 ||
                   strcmp(x->action, "expanded") == 0) {
            x->cls = RG_BOUNCE_NONE;
            /* a literal, not x->action: GCC's -Wrestrict cannot tell the fields apart */
            snprintf(x->rule, sizeof x->rule, "action %s",
                     x->action[0] == 'd' ? "delivered" : x->action[0] == 'r' ? "relayed"
                                                                          : "expanded");
        } else {
            x->cls = rg_bounce_classify(x->status, reply, x->diag, x->rule, sizeof x->rule);
        }
    }
    fblocks_free(b, nb);
}

/* RFC 5965: one block; the recipient is Original-Rcpt-To (or the reported To). */
static void
read_arf(walk *w)
{
    size_t nb;
    fblock *b = fblocks_parse(w->arf, w->arf_len, &nb);
    rg_bounce_report *r = w->r;
    const char *type = nb ? fget(&b[0], "feedback-type") : NULL;
    const char *mail_from = nb ? fget(&b[0], "original-mail-from") : NULL;

    snprintf(r->feedback_type, sizeof r->feedback_type, "%s", type ? type : "");
    rg_lower(r->feedback_type);
    r->feedback_type[strcspn(r->feedback_type, " \t;")] = '\0';
    if (mail_from != NULL) {
        char a[RG_ADDR_MAX];
        typed_address(mail_from, a, sizeof a);
        if (a[0] != '\0')
            rg_strlcpy(r->orig_return_path, a, sizeof r->orig_return_path);
    }
    rg_bounce_class cls = RG_BOUNCE_COMPLAINT;
    const char *why = "feedback-type";
    if (strcmp(r->feedback_type, "not-spam") == 0 || strcmp(r->feedback_type, "auth-failure") == 0)
        cls = RG_BOUNCE_NONE;
    size_t added = 0;
    for (size_t i = 0; nb > 0 && i < b[0].n; i++) {
        if (strcmp(b[0].f[i].name, "original-rcpt-to") != 0)
            continue;
        rg_bounce_rcpt *x = add_rcpt(r);
        if (x == NULL)
            break;
        typed_address(b[0].f[i].value, x->addr, sizeof x->addr);
        x->cls = cls;
        added++;
    }
    if (added == 0) {
        rg_bounce_rcpt *x = add_rcpt(r);
        rg_strlcpy(x->addr, w->orig_to, sizeof x->addr);
        x->cls = cls;
    }
    for (size_t i = r->n_rcpt - (added ? added : 1); i < r->n_rcpt; i++) {
        snprintf(r->rcpt[i].rule, sizeof r->rcpt[i].rule, "%s %s", why,
                 r->feedback_type[0] ? r->feedback_type : "(none)");
        rg_strlcpy(r->rcpt[i].action, "complaint", sizeof r->rcpt[i].action);
    }
    fblocks_free(b, nb);
}

static bool
has_prefix_ci(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strncasecmp(s, list[i], strlen(list[i])) == 0)
            return true;
    return false;
}

/* Is the byte an address character (RFC 5322 atext and '.', '@')? */
static bool
addr_char(int c)
{
    return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.@", c) != NULL);
}

/* A non-standard bounce: addresses in the text, each classified by the text
 * that follows it. */
static void
read_text(walk *w, const char *from_addr)
{
    rg_bounce_report *r = w->r;
    const char *t = w->text ? w->text : "";
    size_t tl = w->text ? w->text_len : 0;
    char *lc = lower_copy(t, tl);

    for (size_t i = 0; i < tl; i++) {
        if (lc[i] != '@' || i == 0)
            continue;
        size_t s = i, e = i + 1;
        while (s > 0 && addr_char((unsigned char)lc[s - 1]) && lc[s - 1] != '@')
            s--;
        while (e < tl && addr_char((unsigned char)lc[e]) && lc[e] != '@')
            e++;
        while (e > i + 1 && lc[e - 1] == '.')
            e--;
        if (s == i || e <= i + 1 || e - s >= RG_ADDR_MAX || memchr(lc + i + 1, '.', e - i - 1) == NULL)
            continue;
        char a[RG_ADDR_MAX];
        memcpy(a, lc + s, e - s);
        a[e - s] = '\0';
        i = e;
        /* the bounce's own sender (mailer-daemon, postmaster) is not a recipient */
        if (strncmp(a, "mailer-daemon@", 14) == 0 || strncmp(a, "postmaster@", 11) == 0 ||
            (from_addr != NULL && strcmp(a, from_addr) == 0))
            continue;
        bool dup = false;
        for (size_t k = 0; k < r->n_rcpt; k++)
            dup = dup || strcmp(r->rcpt[k].addr, a) == 0;
        if (dup)
            continue;
        rg_bounce_rcpt *x = add_rcpt(r);
        if (x == NULL)
            break;
        rg_strlcpy(x->addr, a, sizeof x->addr);
        /* this recipient's part of the text: from its address, 1500 bytes */
        size_t seg = tl - s < 1500 ? tl - s : 1500;
        char *segtext = rg_strndup(lc + s, seg);
        int reply = 0;
        scan_codes(segtext, x->status, sizeof x->status, &reply);
        x->cls = rg_bounce_classify(x->status, reply, segtext, x->rule, sizeof x->rule);
        clean_copy(t + s, seg < 240 ? seg : 240, x->diag, sizeof x->diag);
        free(segtext);
    }
    if (r->n_rcpt == 0) {
        /* no address: one anonymous recipient classified by the whole text */
        rg_bounce_rcpt *x = add_rcpt(r);
        int reply = 0;
        scan_codes(lc, x->status, sizeof x->status, &reply);
        x->cls = rg_bounce_classify(x->status, reply, lc, x->rule, sizeof x->rule);
        clean_copy(t, tl < 240 ? tl : 240, x->diag, sizeof x->diag);
    }
    free(lc);
}

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
    g_mime_init();
}

int
rg_bounce_parse(const char *data, size_t len, rg_bounce_report *out, char *err, size_t errlen)
{
    rg_bounce_report *r = out;
    walk w;

    memset(r, 0, sizeof *r);
    memset(&w, 0, sizeof w);
    w.r = r;
    if (len == 0) {
        rg_seterr(err, errlen, "empty message");
        return -1;
    }
    if (len > RG_BOUNCE_PARSE_MAX) {
        len = RG_BOUNCE_PARSE_MAX;
        r->truncated = true;
    }
    pthread_once(&gmime_once, gmime_start);

    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_object_unref(stream);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
    g_object_unref(parser);
    if (msg == NULL) {
        rg_seterr(err, errlen, "not a message (no header block)");
        return -1;
    }

    GMimeObject *top = GMIME_OBJECT(msg);
    const char *mid = g_mime_object_get_header(top, "Message-ID");
    const char *subject = g_mime_object_get_header(top, "Subject");
    const char *from = g_mime_object_get_header(top, "From");
    const char *auto_sub = g_mime_object_get_header(top, "Auto-Submitted");
    if (mid != NULL)
        clean_copy(mid, strlen(mid), r->message_id, sizeof r->message_id);
    if (from != NULL) {
        InternetAddressList *l = internet_address_list_parse(NULL, from);
        if (l != NULL && internet_address_list_length(l) > 0) {
            InternetAddress *ia = internet_address_list_get_address(l, 0);
            if (INTERNET_ADDRESS_IS_MAILBOX(ia))
                typed_address(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia)),
                              r->orig_from, sizeof r->orig_from);
        }
        if (l != NULL)
            g_object_unref(l);
    }

    walk_object(&w, g_mime_message_get_mime_part(msg));
    if (w.orig_headers != NULL) {
        size_t nb;
        fblock *b = fblocks_parse(w.orig_headers, w.orig_headers_len, &nb);
        if (nb > 0)
            note_original(&w, fget(&b[0], "return-path"), fget(&b[0], "message-id"),
                          fget(&b[0], "to"));
        fblocks_free(b, nb);
    }

    if (w.arf != NULL && (w.report_arf || w.dsn == NULL)) {
        r->format = RG_BOUNCE_FMT_ARF;
        read_arf(&w);
    } else if (w.dsn != NULL) {
        r->format = RG_BOUNCE_FMT_DSN;
        read_dsn(&w);
    }
    if (r->n_rcpt == 0) {
        bool autoreply = (auto_sub != NULL && strncasecmp(auto_sub, "auto-replied", 12) == 0) ||
                         (subject != NULL && has_prefix_ci(subject, autoreply_subjects,
                              sizeof autoreply_subjects / sizeof autoreply_subjects[0]));
        bool daemon = r->orig_from[0] != '\0' &&
                      (strncmp(r->orig_from, "mailer-daemon@", 14) == 0 ||
                       strncmp(r->orig_from, "postmaster@", 11) == 0);
        bool bouncy = daemon || (subject != NULL && has_prefix_ci(subject, bounce_subjects,
                          sizeof bounce_subjects / sizeof bounce_subjects[0])) ||
                      r->format == RG_BOUNCE_FMT_DSN;
        if (autoreply && !daemon) {
            r->format = RG_BOUNCE_FMT_NONE;
            rg_bounce_rcpt *x = add_rcpt(r);
            x->cls = RG_BOUNCE_NONE;
            snprintf(x->rule, sizeof x->rule, "auto-reply");
        } else if (bouncy) {
            r->format = RG_BOUNCE_FMT_TEXT;
            read_text(&w, r->orig_from);
        } else {
            r->format = RG_BOUNCE_FMT_NONE;
        }
    }
    for (size_t i = 0; i < r->n_rcpt; i++)
        if (i == 0 || gravity(r->rcpt[i].cls) > gravity(r->cls))
            r->cls = r->rcpt[i].cls;
    if (r->n_rcpt == 0)
        r->cls = RG_BOUNCE_NONE;

    free(w.dsn);
    free(w.arf);
    free(w.text);
    free(w.orig_headers);
    g_object_unref(msg);
    return 0;
}
