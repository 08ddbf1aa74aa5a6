/*
 * test_proto - the milter protocol codec (milter/proto.c), table-driven:
 * each case feeds MTA packets to a recording filter and compares what the
 * filter saw (its trace) and what went back to the MTA (the replies,
 * rendered one per packet) with the expected transcripts.  Every command,
 * option negotiation, no-reply and skip flags, macros, message changes,
 * connection reuse (QUIT_NC), and bad input: lengths 0 and too large,
 * truncated packets, strings without their NUL, unknown commands.  Each
 * case runs three times: all bytes in one read, one byte per read, and on
 * a connection ended and kept after the same case (server.c's reuse).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "unit.h"

/* ------------------------------------------------- the recording filter */

typedef struct behaviour {
    rgm_status rcpt;            /* what RCPT returns */
    const char *rcpt_reply;     /* rgm_setreply "CODE X.Y.Z text" before it */
    rgm_status body;
    int eom_changes;            /* 1: every message change at end of message */
    const char *symval;         /* macro each MAIL/RCPT/EOM looks up */
    int eof;                    /* after the packets, the peer closes */
} behaviour;

static struct {
    char trace[8192];
    const behaviour *b;
    int changes_outside_eom;    /* an rgm_addheader outside eom that succeeded */
} T;

static void tr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tr(const char *fmt, ...)
{
    size_t n = strlen(T.trace);
    va_list ap;
    va_start(ap, fmt);
    if (n)
        T.trace[n++] = ' ';
    vsnprintf(T.trace + n, sizeof T.trace - n, fmt, ap);
    va_end(ap);
}

static void trace_macro(rgm_ctx *ctx)
{
    if (T.b->symval) {
        const char *v = rgm_getsymval(ctx, T.b->symval);
        tr("[%s=%s]", T.b->symval, v ? v : "(none)");
    }
}

static rgm_status t_negotiate(rgm_ctx *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                              unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                              unsigned long *pf2, unsigned long *pf3)
{
    (void)f2;
    (void)f3;
    tr("negotiate(0x%lx,0x%lx)", f0, f1);
    *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGFROM | SMFIF_ADDRCPT |
                 SMFIF_ADDRCPT_PAR | SMFIF_DELRCPT | SMFIF_SETSYMLIST);
    *pf1 = f1 & (SMFIP_NOHELO | SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_HDR | SMFIP_NR_EOH |
                 SMFIP_SKIP);
    *pf2 = *pf3 = 0;
    if (rgm_setsymlist(ctx, SMFIM_ENVFROM, "{auth_authen} {i}") == RGM_SUCCESS)
        tr("symlist");
    return RGM_CONTINUE;
}

/* the same filter, asking for an action the MTA did not offer */
static rgm_status t_negotiate_greedy(rgm_ctx *ctx, unsigned long f0, unsigned long f1,
                                     unsigned long f2, unsigned long f3, unsigned long *pf0,
                                     unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
    (void)ctx;
    (void)f0;
    (void)f2;
    (void)f3;
    *pf0 = SMFIF_CHGBODY;
    *pf1 = f1;
    *pf2 = *pf3 = 0;
    return RGM_CONTINUE;
}

static rgm_status t_connect(rgm_ctx *ctx, char *host, struct sockaddr *sa)
{
    char a[64] = "none";
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)sa)->sin_addr, a, sizeof a);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)sa)->sin6_addr, a, sizeof a);
    else if (sa && sa->sa_family == AF_UNIX)
        snprintf(a, sizeof a, "unix");
    tr("connect(%s,%s)", host, a);
    if (rgm_addheader(ctx, "X-Early", "1") == RGM_SUCCESS)
        T.changes_outside_eom = 1;
    rgm_setpriv(ctx, &T);
    return RGM_NOREPLY;         /* SMFIP_NR_CONN: nothing goes back */
}

static rgm_status t_helo(rgm_ctx *ctx, char *helo)
{
    (void)ctx;
    tr("helo(%s)", helo);
    return RGM_CONTINUE;
}

static rgm_status t_envfrom(rgm_ctx *ctx, char **argv)
{
    tr("mail(");
    for (int i = 0; argv[i]; i++)
        tr("%s", argv[i]);
    tr(")");
    trace_macro(ctx);
    return RGM_NOREPLY;
}

static rgm_status t_envrcpt(rgm_ctx *ctx, char **argv)
{
    tr("rcpt(%s)", argv[0]);
    trace_macro(ctx);
    if (T.b->rcpt_reply) {
        char code[4], x[16];
        const char *text;
        memcpy(code, T.b->rcpt_reply, 3);
        code[3] = '\0';
        sscanf(T.b->rcpt_reply + 4, "%15s", x);
        text = T.b->rcpt_reply + 4 + strlen(x) + 1;
        if (rgm_setreply(ctx, code, x, text) != RGM_SUCCESS)
            tr("setreply-failed");
    }
    return T.b->rcpt;
}

static rgm_status t_data(rgm_ctx *ctx)
{
    (void)ctx;
    tr("data");
    return RGM_CONTINUE;
}

static rgm_status t_unknown(rgm_ctx *ctx, const char *cmd)
{
    (void)ctx;
    tr("unknown(%s)", cmd);
    return RGM_REJECT;
}

static rgm_status t_header(rgm_ctx *ctx, char *name, char *value)
{
    (void)ctx;
    tr("header(%s:%s)", name, value);
    return RGM_NOREPLY;
}

static rgm_status t_eoh(rgm_ctx *ctx)
{
    (void)ctx;
    tr("eoh");
    return RGM_NOREPLY;
}

static rgm_status t_body(rgm_ctx *ctx, unsigned char *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    tr("body(%zu)", len);
    return T.b->body;
}

static rgm_status t_eom(rgm_ctx *ctx)
{
    tr("eom");
    trace_macro(ctx);
    if (T.b->eom_changes) {
        int bad = 0;
        bad |= rgm_addheader(ctx, "X-Added", "yes") != RGM_SUCCESS;
        bad |= rgm_insheader(ctx, 0, "DKIM-Signature", "v=1; a=ed25519-sha256") != RGM_SUCCESS;
        bad |= rgm_chgheader(ctx, "X-Old", 2, NULL) != RGM_SUCCESS;
        bad |= rgm_chgheader(ctx, "Subject", 1, "new") != RGM_SUCCESS;
        bad |= rgm_chgfrom(ctx, "<b+tok@bounce.example>", NULL) != RGM_SUCCESS;
        bad |= rgm_chgfrom(ctx, "<c@x>", "SIZE=10") != RGM_SUCCESS;
        bad |= rgm_addrcpt(ctx, "<new@x>") != RGM_SUCCESS;
        bad |= rgm_addrcpt_par(ctx, "<par@x>", "NOTIFY=NEVER") != RGM_SUCCESS;
        bad |= rgm_delrcpt(ctx, "<old@x>") != RGM_SUCCESS;
        bad |= rgm_progress(ctx) != RGM_SUCCESS;
        /* refused: no name, no value, a negative index */
        bad |= rgm_addheader(ctx, "", "v") != RGM_FAILURE;
        bad |= rgm_addheader(ctx, "X", NULL) != RGM_FAILURE;
        bad |= rgm_chgheader(ctx, "X", -1, "v") != RGM_FAILURE;
        if (bad)
            tr("change-failed");
    }
    return RGM_CONTINUE;
}

static rgm_status t_abort(rgm_ctx *ctx)
{
    (void)ctx;
    tr("abort");
    return RGM_CONTINUE;
}

static rgm_status t_close(rgm_ctx *ctx)
{
    tr("close(%s)", rgm_getpriv(ctx) ? "priv" : "-");
    rgm_setpriv(ctx, NULL);
    return RGM_CONTINUE;
}

static const rgm_desc desc_full = {
    .name = "test",
    .flags = SMFIF_ADDHDRS,
    .connect = t_connect, .helo = t_helo, .envfrom = t_envfrom, .envrcpt = t_envrcpt,
    .header = t_header, .eoh = t_eoh, .body = t_body, .eom = t_eom, .abort = t_abort,
    .close = t_close, .unknown = t_unknown, .data = t_data, .negotiate = t_negotiate,
};

/* no negotiate callback: the flags follow from the callbacks present */
static const rgm_desc desc_plain = {
    .name = "plain",
    .flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
    .envrcpt = t_envrcpt, .eom = t_eom, .close = t_close,
};

static const rgm_desc desc_greedy = {
    .name = "greedy",
    .negotiate = t_negotiate_greedy,
};

/* ------------------------------------------------------------- packets */

typedef struct pkt {
    char cmd;                   /* 0: raw bytes */
    const char *data;
    size_t len;
} pkt;

#define PK(c, lit) { (c), (lit), sizeof(lit) - 1 }
#define RAW(lit) { 0, (lit), sizeof(lit) - 1 }
#define END { 0, NULL, 0 }

/* OPTNEG from an MTA offering everything (Postfix 3.7 offers 0x1ff / 0x1fffff) */
#define OPTNEG_ALL PK('O', "\0\0\0\6\0\0\1\xff\0\x1f\xff\xff")
#define OPTNEG_NOSYM PK('O', "\0\0\0\6\0\0\0\xff\0\x1f\xff\xff")
#define OPTNEG_V2 PK('O', "\0\0\0\2\0\0\0\x0f\0\0\0\x7f")
#define CONNECT4 PK('C', "mx.example\0" "4\x12\x34" "192.0.2.1\0")
#define MAIL PK('M', "<a@example.com>\0SIZE=100\0")
#define RCPT PK('R', "<b@example.net>\0")

typedef struct tcase {
    const char *label;
    const rgm_desc *desc;
    behaviour b;
    pkt in[24];
    rgm_io io;                  /* the last rgm_ctx_input (or eof) result */
    const char *trace;
    const char *out;
} tcase;

static const tcase cases[] = {
    { "negotiation: actions, protocol flags and the macro list", &desc_full, { 0 },
      { OPTNEG_ALL, END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist close(-)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "negotiation: no SETSYMLIST offered, no macro list", &desc_full, { 0 },
      { OPTNEG_NOSYM, END }, RGM_IO_MORE,
      "negotiate(0xff,0x1fffff) close(-)",
      "O(6,0xdd,0x45482)" },
    { "negotiation: an old MTA (version 2) gets version 2", &desc_full, { 0 },
      { OPTNEG_V2, END }, RGM_IO_MORE,
      "negotiate(0xf,0x7f) close(-)",
      "O(2,0xd,0x2)" },
    { "negotiation without callback: steps without callback are not sent", &desc_plain, { 0 },
      { OPTNEG_ALL, END }, RGM_IO_MORE, "close(-)",
      "O(6,0x11,0x377)" },
    { "negotiation: an action the MTA did not offer closes", &desc_greedy, { 0 },
      { PK('O', "\0\0\0\6\0\0\0\x01\0\0\0\0"), END }, RGM_IO_ERROR, "", "" },
    { "negotiation: version 1 closes", &desc_full, { 0 },
      { PK('O', "\0\0\0\1\0\0\0\x0f\0\0\0\x7f"), END }, RGM_IO_ERROR, "", "" },
    { "negotiation: 8 bytes instead of 12 close", &desc_full, { 0 },
      { PK('O', "\0\0\0\6\0\0\0\x0f"), END }, RGM_IO_ERROR, "", "" },
    { "a whole message, no replies but RCPT and end of message", &desc_full,
      { .rcpt = RGM_CONTINUE, .body = RGM_NOREPLY, .symval = "{i}" },
      { OPTNEG_ALL, PK('D', "C{client_addr}\0" "192.0.2.1\0"), CONNECT4,
        PK('D', "M{auth_authen}\0alice\0{i}\0Q1\0"), MAIL, RCPT,
        PK('D', "T{i}\0Q2\0"), PK('T', ""),
        PK('L', "From\0a@example.com\0"), PK('L', "Subject\0 hi\0"), PK('N', ""),
        PK('B', "body\r\n"), PK('D', "E{i}\0Q3\0"), PK('E', ""), PK('Q', ""), END },
      RGM_IO_QUIT,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) [{i}=Q1] rcpt(<b@example.net>) [{i}=Q1] data header(From:a@example.com) "
      "header(Subject: hi) eoh body(6) eom [{i}=Q3] close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i} c c c c" },
    { "end of message: every change, in order, then continue", &desc_full,
      { .eom_changes = 1 },
      { OPTNEG_ALL, CONNECT4, MAIL, RCPT, PK('E', ""), END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) rcpt(<b@example.net>) eom close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i} c h=X-Added:yes i0=DKIM-Signature:v=1; "
      "a=ed25519-sha256 m2=X-Old: m1=Subject:new e=<b+tok@bounce.example> "
      "e=<c@x>,SIZE=10 +=<new@x> 2=<par@x>,NOTIFY=NEVER -=<old@x> p c" },
    { "changes need their action flag (SETSYMLIST-less MTA offering no CHGFROM)", &desc_full,
      { .eom_changes = 1 },
      { PK('O', "\0\0\0\6\0\0\0\x11\0\x1f\xff\xff"), CONNECT4, MAIL, RCPT, PK('E', ""), END },
      RGM_IO_MORE,
      "negotiate(0x11,0x1fffff) connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) rcpt(<b@example.net>) eom change-failed close(priv)",
      "O(6,0x11,0x45482) c h=X-Added:yes i0=DKIM-Signature:v=1; a=ed25519-sha256 "
      "m2=X-Old: m1=Subject:new p c" },
    { "RCPT refused with a reply code", &desc_full,
      { .rcpt = RGM_REJECT, .rcpt_reply = "550 5.7.1 no such user, 100%% sure" },
      { OPTNEG_ALL, CONNECT4, MAIL, RCPT, END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) rcpt(<b@example.net>) abort close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i} y=550 5.7.1 no such user, 100%% sure" },
    { "RCPT tempfailed, no reply code: 't'", &desc_full, { .rcpt = RGM_TEMPFAIL },
      { OPTNEG_ALL, CONNECT4, MAIL, RCPT, END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) rcpt(<b@example.net>) abort close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i} t" },
    { "a 5xx reply with a tempfail is not sent: 't'", &desc_full,
      { .rcpt = RGM_TEMPFAIL, .rcpt_reply = "550 5.7.1 no" },
      { OPTNEG_ALL, CONNECT4, MAIL, RCPT, END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) rcpt(<b@example.net>) abort close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i} t" },
    { "a reply with CR/LF is refused", &desc_full,
      { .rcpt = RGM_REJECT, .rcpt_reply = "550 5.7.1 a\r\nb" },
      { OPTNEG_ALL, CONNECT4, MAIL, RCPT, END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) rcpt(<b@example.net>) setreply-failed abort close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i} r" },
    { "RCPT accept and discard", &desc_full, { .rcpt = RGM_DISCARD },
      { OPTNEG_ALL, CONNECT4, MAIL, RCPT, END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) rcpt(<b@example.net>) abort close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i} d" },
    { "HELO and unknown commands when not skipped", &desc_full, { 0 },
      { PK('O', "\0\0\0\6\0\0\0\x01\0\0\0\0"), PK('H', "client.example\0"),
        PK('U', "XFOO bar\0"), END }, RGM_IO_MORE,
      "negotiate(0x1,0x0) helo(client.example) unknown(XFOO bar) close(-)",
      "O(6,0x1,0x0) c r" },
    { "body: skip with SMFIP_SKIP granted", &desc_full, { .body = RGM_SKIP },
      { PK('O', "\0\0\0\6\0\0\0\x01\0\0\x04\0"), CONNECT4, MAIL, RCPT, PK('B', "x"), END },
      RGM_IO_MORE,
      "negotiate(0x1,0x400) connect(mx.example,192.0.2.1) mail( <a@example.com> SIZE=100 ) "
      "rcpt(<b@example.net>) body(1) abort close(priv)",
      "O(6,0x1,0x400) c c c s" },
    { "body: skip without SMFIP_SKIP is continue", &desc_full, { .body = RGM_SKIP },
      { PK('O', "\0\0\0\6\0\0\0\x01\0\0\0\0"), CONNECT4, MAIL, RCPT, PK('B', "x"), END },
      RGM_IO_MORE,
      "negotiate(0x1,0x0) connect(mx.example,192.0.2.1) mail( <a@example.com> SIZE=100 ) "
      "rcpt(<b@example.net>) body(1) abort close(priv)",
      "O(6,0x1,0x0) c c c c" },
    { "end of body with a last chunk: body, then end of message", &desc_full,
      { .body = RGM_NOREPLY },
      { OPTNEG_ALL, CONNECT4, MAIL, RCPT, PK('E', "tail"), END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) rcpt(<b@example.net>) body(4) eom close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i} c c" },
    { "macros: {i} and i alike; a new MAIL's macros replace the old message's", &desc_full,
      { .symval = "i" },
      { OPTNEG_ALL, PK('D', "M{i}\0A1\0"), MAIL, PK('D', "R{rcpt_mailer}\0smtp\0"), RCPT,
        PK('A', ""), PK('D', "Mj\0host\0"), MAIL, RCPT, END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist mail( <a@example.com> SIZE=100 ) [i=A1] "
      "rcpt(<b@example.net>) [i=A1] abort mail( <a@example.com> SIZE=100 ) [i=(none)] "
      "rcpt(<b@example.net>) [i=(none)] abort close(-)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i} c c" },
    { "macros of an unknown stage are ignored; a name without value dropped", &desc_full,
      { .symval = "{x}" },
      { OPTNEG_ALL, PK('D', "Z{x}\0one\0"), PK('D', "M{x}\0"), MAIL, END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist mail( <a@example.com> SIZE=100 ) [{x}=(none)] "
      "abort close(-)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "connect: IPv6 (with and without the IPv6: prefix), unix, unknown family", &desc_full,
      { 0 },
      { OPTNEG_ALL, PK('C', "h6\0" "6\0\x19" "IPv6:2001:db8::1\0"), PK('K', ""),
        PK('C', "h6b\0" "6\0\x19" "2001:db8::2\0"), PK('K', ""),
        PK('C', "local\0" "L\0\0" "/run/x.sock\0"), PK('K', ""), PK('C', "u\0U"), END },
      RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist connect(h6,2001:db8::1) close(priv) "
      "negotiate(0x1ff,0x1fffff) symlist connect(h6b,2001:db8::2) close(priv) "
      "negotiate(0x1ff,0x1fffff) symlist connect(local,unix) close(priv) "
      "negotiate(0x1ff,0x1fffff) symlist connect(u,none) close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "QUIT_NC: the session ends (abort, close), the filter hears the options again, "
      "the connection serves the next", &desc_full,
      { .symval = "{client_addr}" },
      { OPTNEG_ALL, PK('D', "C{client_addr}\0" "192.0.2.1\0"), CONNECT4, MAIL, PK('K', ""),
        CONNECT4, MAIL, PK('Q', ""), END }, RGM_IO_QUIT,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) [{client_addr}=192.0.2.1] abort close(priv) negotiate(0x1ff,0x1fffff) "
      "symlist connect(mx.example,192.0.2.1) "
      "mail( <a@example.com> SIZE=100 ) [{client_addr}=(none)] abort close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "message changes outside end of message are refused", &desc_full, { 0 },
      { OPTNEG_ALL, CONNECT4, END }, RGM_IO_MORE,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "a peer gone without QUIT in a message: abort, close", &desc_full, { .eof = 1 },
      { OPTNEG_ALL, CONNECT4, MAIL, END }, RGM_IO_QUIT,
      "negotiate(0x1ff,0x1fffff) symlist connect(mx.example,192.0.2.1) mail( <a@example.com> "
      "SIZE=100 ) abort close(priv)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    /* bad input: logged, the connection closes (close callback still runs) */
    { "length 0", &desc_full, { 0 }, { OPTNEG_ALL, RAW("\0\0\0\0"), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "length above the limit", &desc_full, { 0 },
      { OPTNEG_ALL, RAW("\0\x10\0\0B"), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "length 2^32-1", &desc_full, { 0 }, { RAW("\xff\xff\xff\xffO"), END }, RGM_IO_ERROR, "", "" },
    { "a truncated packet, then the peer closes", &desc_full, { .eof = 1 },
      { OPTNEG_ALL, RAW("\0\0\0\x20L" "From\0"), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)",
      "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "a truncated length, then the peer closes", &desc_full, { .eof = 1 },
      { RAW("\0\0"), END }, RGM_IO_ERROR, "", "" },
    { "an unknown command", &desc_full, { 0 }, { OPTNEG_ALL, PK('Z', "x"), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "a header without its value", &desc_full, { 0 },
      { OPTNEG_ALL, PK('L', "From\0"), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "a header without its final NUL", &desc_full, { 0 },
      { OPTNEG_ALL, PK('L', "From\0x"), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "MAIL without its final NUL", &desc_full, { 0 },
      { OPTNEG_ALL, PK('M', "<a@b>"), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "RCPT with no data", &desc_full, { 0 },
      { OPTNEG_ALL, PK('R', ""), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "connect without the address family", &desc_full, { 0 },
      { OPTNEG_ALL, PK('C', "host\0"), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "connect with a port but no address", &desc_full, { 0 },
      { OPTNEG_ALL, PK('C', "host\0" "4\0\x19"), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "a macro packet without its final NUL", &desc_full, { 0 },
      { OPTNEG_ALL, PK('D', "M{i}\0x"), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
    { "an empty macro packet", &desc_full, { 0 },
      { OPTNEG_ALL, PK('D', ""), END }, RGM_IO_ERROR,
      "negotiate(0x1ff,0x1fffff) symlist close(-)", "O(6,0x1dd,0x45482) l2={auth_authen} {i}" },
};

/* ------------------------------------------------------------- helpers */

static size_t encode(const pkt *in, unsigned char *out, size_t cap)
{
    size_t o = 0;
    for (const pkt *p = in; p->data; p++) {
        if (p->cmd == 0) {
            assert_true(o + p->len <= cap);
            memcpy(out + o, p->data, p->len);
            o += p->len;
            continue;
        }
        assert_true(o + 5 + p->len <= cap);
        uint32_t n = htonl((uint32_t)p->len + 1);
        memcpy(out + o, &n, 4);
        out[o + 4] = (unsigned char)p->cmd;
        memcpy(out + o + 5, p->data, p->len);
        o += 5 + p->len;
    }
    return o;
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t n;
    memcpy(&n, p, 4);
    return ntohl(n);
}

/* The replies, one word per packet: "c", "y=550 ...", "h=Name:value". */
static void render(const unsigned char *p, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    while (len >= 5) {
        uint32_t n = get32(p);
        assert_true(n >= 1 && 4 + (size_t)n <= len);
        char cmd = (char)p[4];
        const char *d = (const char *)p + 5;
        size_t dl = n - 1;
        char w[512];
        switch (cmd) {
        case 'O': {
            int k = snprintf(w, sizeof w, "O(%u,0x%x,0x%x)", get32(p + 5), get32(p + 9),
                             get32(p + 13));
            for (size_t i = 12; i < dl;) {
                uint32_t st = get32((const unsigned char *)d + i);
                const char *s = d + i + 4;
                k += snprintf(w + k, sizeof w - (size_t)k, " l%u=%s", st, s);
                i += 4 + strlen(s) + 1;
            }
            break;
        }
        case 'y': case 'e': case '+': case '-': case '2': case 'h':
            if (cmd == 'h')
                snprintf(w, sizeof w, "h=%s:%s", d, d + strlen(d) + 1);
            else if ((cmd == 'e' || cmd == '2') && strlen(d) + 1 < dl)
                snprintf(w, sizeof w, "%c=%s,%s", cmd, d, d + strlen(d) + 1);
            else
                snprintf(w, sizeof w, "%c=%s", cmd, d);
            break;
        case 'i': case 'm': {
            const char *name = d + 4;
            snprintf(w, sizeof w, "%c%u=%s:%s", cmd, get32((const unsigned char *)d), name,
                     name + strlen(name) + 1);
            break;
        }
        default:
            assert_int_equal(dl, 0);
            snprintf(w, sizeof w, "%c", cmd);
        }
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? " " : "", w);
        p += 4 + n;
        len -= 4 + n;
    }
    assert_int_equal(len, 0);
}

/* Run a case with reads of at most chunk bytes; the trace and replies.
 * With reuse: on that connection, ended (rgm_ctx_end) after a session
 * of its own, as server.c keeps closed connections for new ones; it is
 * ended again, not freed. */
static rgm_io run(const tcase *tc, size_t chunk, char *out, size_t outcap, rgm_ctx *reuse)
{
    static unsigned char wire[1 << 16];
    size_t n = encode(tc->in, wire, sizeof wire);
    memset(&T, 0, sizeof T);
    T.b = &tc->b;
    rgm_ctx *ctx = reuse ? reuse : rgm_ctx_new(tc->desc, -1, "test");
    if (reuse)
        rgm_ctx_reuse(ctx, -1, "test");
    rgm_io io = RGM_IO_MORE;
    for (size_t at = 0; at < n && io == RGM_IO_MORE;) {
        size_t room;
        unsigned char *p = rgm_ctx_inbuf(ctx, &room);
        size_t k = n - at < chunk ? n - at : chunk;
        if (k > room)
            k = room;
        memcpy(p, wire + at, k);
        at += k;
        io = rgm_ctx_input(ctx, k);
    }
    if (io == RGM_IO_MORE && tc->b.eof)
        io = rgm_ctx_eof(ctx);
    size_t len;
    const unsigned char *o = rgm_ctx_output(ctx, &len);
    render(o, len, out, outcap);
    if (reuse)
        rgm_ctx_end(ctx);
    else
        rgm_ctx_free(ctx);
    return io;
}

static void test_table(void **state)
{
    (void)state;
    char out[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tcase *tc = &cases[i];
        size_t chunks[] = { 1 << 16, 1, 1 << 16 };
        static const char *const how[] = { "one read", "byte by byte",
                                           "on a connection kept from the same case" };
        for (size_t c = 0; c < 3; c++) {
            char label[256];
            snprintf(label, sizeof label, "%s (%s)", tc->label, how[c]);
            rgm_ctx *kept = NULL;
            if (c == 2) {
                kept = rgm_ctx_new(tc->desc, -1, "test");
                run(tc, chunks[c], out, sizeof out, kept);  /* its first life */
            }
            rgm_io io = run(tc, chunks[c], out, sizeof out, kept);
            rgm_ctx_free(kept);
            CHECK_INT(label, io, tc->io);
            CHECK_STR(label, T.trace, tc->trace);
            CHECK_STR(label, out, tc->out);
            CHECK_INT(label, T.changes_outside_eom, 0);
        }
    }
}

/* A body chunk of 200,000 bytes (above Postfix's 65,535, below the limit)
 * arrives in pieces and is handed over whole; the buffer shrinks back
 * after the message. */
static void test_big_packet(void **state)
{
    (void)state;
    static const behaviour b = { .body = RGM_NOREPLY };
    memset(&T, 0, sizeof T);
    T.b = &b;
    rgm_ctx *ctx = rgm_ctx_new(&desc_full, -1, "test");
    size_t body = 200000, total = 0;
    unsigned char *wire = malloc(body + 64);
    pkt pre[] = { OPTNEG_ALL, MAIL, END };
    size_t n = encode(pre, wire, body + 64);
    uint32_t len = htonl((uint32_t)body + 1);
    memcpy(wire + n, &len, 4);
    wire[n + 4] = 'B';
    memset(wire + n + 5, 'x', body);
    n += 5 + body;
    memcpy(wire + n, "\0\0\0\1E", 5);
    n += 5;
    while (total < n) {
        size_t room;
        unsigned char *p = rgm_ctx_inbuf(ctx, &room);
        size_t k = n - total < 3000 ? n - total : 3000;
        if (k > room)
            k = room;
        memcpy(p, wire + total, k);
        total += k;
        assert_int_equal(rgm_ctx_input(ctx, k), RGM_IO_MORE);
        rgm_ctx_trim(ctx);
    }
    assert_non_null(strstr(T.trace, "body(200000) eom"));
    free(wire);
    rgm_ctx_free(ctx);
}

int main(void)
{
    rg_log_open("test_proto", RG_LOG_STDERR, LOG_CRIT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_big_packet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
