/*
 * bounce.c - "relayguard bounce": the end of the bounce and complaint loop.
 *
 *   relayguard bounce [--rcpt ADDR | --rcpt-env VAR] < MESSAGE
 *                                                 one bounce, complaint or unsubscribe
 *   relayguard bounce [--rcpt ADDR] FILE...       several messages in one process
 *   relayguard bounce --maildir DIR               a maildir's unseen messages (marked seen)
 *   relayguard bounce --lmtp LISTEN [--user U]    the resident LMTP server (cli/lmtp.c)
 *   relayguard bounce parse FILE...               print the classification only
 *   relayguard bounce token ACCOUNT SENDER RCPT... [--unsubscribe]
 *                                                 mint a return path (writes its record)
 *
 * Reading a message is what a Postfix pipe transport, an Exim pipe router
 * or an alias runs, so it exits with sysexits(3) codes the MTA understands:
 *   0            done: suppressed, counted, or consumed with a log line and an
 *                event (not a bounce, no token, forged token, unknown token)
 *   EX_TEMPFAIL  the store is unreachable, the config cannot be read, or any
 *                other transient failure: the MTA keeps the message and retries
 *   EX_DATAERR   the input is empty (there is no message to keep)
 * With "forward = yes" a bounce or complaint is then passed on unchanged to
 * the original sender, with the null sender so that it can never come back;
 * when the sendmail command fails, EX_TEMPFAIL (the retry is harmless).
 * Retrying is safe: a suppression is written once, a soft bounce is counted
 * under the message's digest, so the same bounce counts once.
 *
 * All of them run one code path per message (rg_bounce_loop_run, bounce_loop.h);
 * the several-message modes exit with the most important code of their
 * messages (EX_TEMPFAIL > EX_NOINPUT > EX_DATAERR > 0).
 *
 * The token is checked (policy/verp.c) before anything is looked up; the
 * message is read with policy/bounce.c; what it means for the lists is
 * decided here in the one place the loop is: which recipient of the token's
 * record a report names, and hard/complaint -> suppress, soft -> count.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <signal.h>
#include <spawn.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "account.h"
#include "admin.h"
#include "bounce.h"
#include "bounce_loop.h"
#include "conf.h"
#include "config.h"
#include "log.h"
#include "match.h"
#include "util.h"
#include "verp.h"

#define INPUT_MAX (64u << 20)    /* bytes kept of a message; the rest is read and dropped */

int rg_cli_bounce(int argc, char **argv, const char *conf_path, bool json);

/* CLI exit codes of the other verbs (main.c) */
enum { CLI_OK = 0, CLI_NO = 1, CLI_USAGE = 2, CLI_STORE = 3 };

static uint64_t
now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void __attribute__((format(printf, 1, 2)))
say(const char *fmt, ...)
{
    va_list ap;
    fputs("relayguard: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* --- bounce parse FILE... ------------------------------------------------------------ */

static int
read_all(FILE *f, char **data, size_t *len, bool *cut)
{
    size_t cap = 65536, n = 0;
    char *buf = rg_malloc(cap);
    char tmp[65536];

    *cut = false;
    for (;;) {
        size_t r = fread(tmp, 1, sizeof tmp, f);
        if (r > 0) {
            size_t keep = r;
            if (n + keep > INPUT_MAX) {
                keep = INPUT_MAX - n;
                *cut = true;
            }
            if (n + keep + 1 > cap) {
                while (n + keep + 1 > cap)
                    cap *= 2;
                buf = rg_realloc(buf, cap);
            }
            memcpy(buf + n, tmp, keep);
            n += keep;
        }
        if (r < sizeof tmp) {
            if (ferror(f)) {
                free(buf);
                return -1;
            }
            break;
        }
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static void
print_report(const rg_bounce_report *r)
{
    printf("format %s class %s\n", rg_bounce_format_name(r->format),
           rg_bounce_class_name(r->cls));
    if (r->feedback_type[0])
        printf("feedback-type %s\n", r->feedback_type);
    if (r->orig_return_path[0])
        printf("return-path %s\n", r->orig_return_path);
    for (size_t i = 0; i < r->n_rcpt; i++) {
        const rg_bounce_rcpt *x = &r->rcpt[i];
        printf("rcpt %s class %s status %s rule %s\n", x->addr[0] ? x->addr : "-",
               rg_bounce_class_name(x->cls), x->status[0] ? x->status : "-", x->rule);
    }
}

static int
bounce_parse(int n, char **files)
{
    int rc = CLI_OK;
    for (int i = 0; i < n; i++) {
        FILE *f = strcmp(files[i], "-") == 0 ? stdin : fopen(files[i], "rb");
        char *data;
        size_t len;
        bool cut;
        if (f == NULL) {
            say("%s: %s", files[i], strerror(errno));
            rc = CLI_USAGE;
            continue;
        }
        int r = read_all(f, &data, &len, &cut);
        if (f != stdin)
            fclose(f);
        if (r < 0) {
            say("%s: read error", files[i]);
            rc = CLI_USAGE;
            continue;
        }
        rg_bounce_report rep;
        char err[256];
        if (n > 1)
            printf("== %s\n", files[i]);
        if (rg_bounce_parse(data, len, &rep, err, sizeof err) < 0) {
            printf("error %s\n", err);
            rc = CLI_NO;
        } else {
            print_report(&rep);
        }
        free(data);
    }
    return rc;
}

/* --- bounce token ACCOUNT SENDER RCPT... ------------------------------------------- */

static int
bounce_token(const rg_config *cfg, int n, char **pos, bool unsubscribe)
{
    char sender[RG_ADDR_MAX];
    char **rcpts = rg_calloc((size_t)n + 1, sizeof *rcpts);
    int rc = CLI_OK;

    if (!rg_account_name_valid(pos[0])) {
        say("bad account name '%s'", pos[0]);
        free(rcpts);
        return CLI_USAGE;
    }
    if (rg_addr_normalize(pos[1], sender, sizeof sender) < 0) {
        say("bad sender address '%s'", pos[1]);
        free(rcpts);
        return CLI_USAGE;
    }
    for (int i = 2; i < n; i++) {
        char a[RG_ADDR_MAX];
        if (rg_addr_normalize(pos[i], a, sizeof a) < 0 || a[0] == '\0') {
            say("bad recipient address '%s'", pos[i]);
            rg_strv_free(rcpts);
            return CLI_USAGE;
        }
        rcpts[i - 2] = rg_strdup(a);
    }
    unsigned char id[RG_VERP_ID_BYTES];
    char idt[RG_VERP_ID_TEXT + 1], tok[RG_VERP_TOKEN_MAX + 1], addr[RG_ADDR_MAX], err[512];
    int64_t now = (int64_t)(now_ms() / 1000);
    if (rg_verp_new_id(id) < 0) {
        say("random number generator failed");
        rg_strv_free(rcpts);
        return CLI_STORE;
    }
    rg_verp_id_text(id, idt);
    rg_admin *ad = rg_admin_connect(cfg, err, sizeof err);
    if (ad == NULL) {
        say("%s", err);
        rc = CLI_STORE;
    } else if (rg_admin_verp_put(ad, idt, pos[0], sender, rcpts, (size_t)n - 2, now,
                                 cfg->bounce.token_ttl_ms) < 0) {
        say("%s", rg_admin_error(ad));
        rc = CLI_STORE;
    } else if (rg_verp_mint(&cfg->bounce, unsubscribe ? RG_VERP_UNSUBSCRIBE : RG_VERP_BOUNCES,
                            id, now, tok, sizeof tok) < 0 ||
               rg_verp_address_for(&cfg->bounce,
                                   unsubscribe ? RG_VERP_UNSUBSCRIBE : RG_VERP_BOUNCES, tok,
                                   sender, addr, sizeof addr) < 0) {
        say("cannot mint a token (no signing key?)");
        rc = CLI_USAGE;
    } else {
        printf("%s\n", addr);
    }
    rg_admin_close(&ad);
    rg_strv_free(rcpts);
    return rc;
}

/* --- bounce < MESSAGE ---------------------------------------------------------------- */

typedef struct job {
    const rg_config *cfg;
    rg_admin *ad;
    const char *account;           /* from the token's record */
    const char *sender;
    char **rcpts;                  /* NULL-terminated */
    size_t n_rcpts;
    char digest[33];               /* of the message: the soft-bounce member */
    size_t size;
    uint64_t now;
    FILE *out;                     /* the report lines (NULL: none) */
    char *summary;                 /* the same lines, "; " between (NULL: none) */
    size_t sumlen;
} job;

/* One line of what was done: to j->out and, in short, to j->summary. */
static void __attribute__((format(printf, 2, 3)))
tell(job *j, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (j->out != NULL)
        fprintf(j->out, "%s\n", line);
    if (j->summary != NULL && j->sumlen > 0) {
        size_t n = strlen(j->summary);
        snprintf(j->summary + n, j->sumlen - n, "%s%s", n ? "; " : "", line);
    }
}

/* One event and its stats counter; -1 on a store error. */
static int
emit(job *j, const char *cls, const char *rcpt, const char *status, const char *outcome,
     const char *detail)
{
    rg_fields f = { 0 };
    char ts[32], size[32], type[48], counter[48];

    if (j->ad == NULL)
        return 0;
    snprintf(ts, sizeof ts, "%" PRIu64, j->now);
    snprintf(size, sizeof size, "%zu", j->size);
    snprintf(type, sizeof type, "bounce.%s", cls);
    snprintf(counter, sizeof counter, "b:%s", cls);
    char clean[512];
    rg_text_sanitize(detail ? detail : "", clean, sizeof clean);
    rg_fields_add(&f, "ts", ts);
    rg_fields_add(&f, "type", type);
    rg_fields_add(&f, "node", j->cfg->node);
    rg_fields_add(&f, "stage", "bounce");
    rg_fields_add(&f, "qid", "");
    rg_fields_add(&f, "account", j->account ? j->account : "");
    rg_fields_add(&f, "login", "");
    rg_fields_add(&f, "client", "");
    rg_fields_add(&f, "country", "");
    rg_fields_add(&f, "sender", j->sender ? j->sender : "");
    rg_fields_add(&f, "rcpt", rcpt ? rcpt : "");
    rg_fields_add(&f, "nrcpt", rcpt && *rcpt ? "1" : "0");
    rg_fields_add(&f, "size", size);
    rg_fields_add(&f, "verdict", cls);
    rg_fields_add(&f, "code", status ? status : "");
    rg_fields_add(&f, "reason", outcome);
    rg_fields_add(&f, "detail", clean);
    int rc = rg_admin_event_add(j->ad, j->cfg->events_max, &f, j->account, counter, j->now);
    rg_fields_clear(&f);
    if (rc < 0)
        rg_error("bounce: cannot write the event: %s", rg_admin_error(j->ad));
    return rc;
}

/* Suppress addr with reason; "suppressed" or "already_suppressed" in *outcome.  -1 on a
 * store error. */
static int
suppress(job *j, const char *addr, const char *reason, const char *note, const char **outcome)
{
    const char *list = j->cfg->bounce.suppress_global ? NULL : j->account;
    rg_supp e, old;

    int got = rg_admin_supp_get(j->ad, list, addr, &old);
    if (got < 0)
        return -1;
    if (got == 1) {
        *outcome = "already_suppressed";
        return 0;
    }
    memset(&e, 0, sizeof e);
    rg_strlcpy(e.addr, addr, sizeof e.addr);
    rg_strlcpy(e.reason, reason, sizeof e.reason);
    e.since = (int64_t)(j->now / 1000);
    e.expires = 0;
    /* a note holds no '|' and no control byte (rg_supp_format) */
    size_t k = 0;
    for (const char *p = note; *p && k + 1 < sizeof e.note; p++)
        e.note[k++] = (*p == '|' || (unsigned char)*p < 0x20) ? ' ' : *p;
    e.note[k] = '\0';
    if (rg_admin_supp_put(j->ad, list, &e) < 0)
        return -1;
    *outcome = "suppressed";
    rg_info("bounce: suppressed <%s> (%s) in %s%s list", addr, reason,
            list ? "account " : "the global", list ? list : "");
    return 0;
}

/* Which recipient of the record a report's recipient is; NULL if none. */
static const char *
resolve(const job *j, const rg_bounce_rcpt *x)
{
    if (j->n_rcpts == 1)
        return j->rcpts[0];     /* the token names the one recipient it was made for */
    for (size_t i = 0; i < j->n_rcpts; i++)
        if ((x->addr[0] && strcmp(j->rcpts[i], x->addr) == 0) ||
            (x->orig[0] && strcmp(j->rcpts[i], x->orig) == 0))
            return j->rcpts[i];
    return NULL;
}

/* Handle one recipient of a report.  -1 on a store error. */
static int
handle_rcpt(job *j, const rg_bounce_rcpt *x)
{
    const char *cls = rg_bounce_class_name(x->cls);
    const char *addr = resolve(j, x);
    const char *outcome = "recorded";
    char detail[400], note[RG_SUPP_NOTE_MAX];

    snprintf(detail, sizeof detail, "%s: %s", x->rule, x->diag);
    if (addr == NULL) {
        rg_warn("bounce: %s bounce for <%s> which is not a recipient of token's message "
                "(account %s); nothing suppressed", cls, x->addr[0] ? x->addr : "?", j->account);
        tell(j, "%s %s: not a recipient of the message", cls, x->addr[0] ? x->addr : "?");
        return emit(j, cls, x->addr, x->status, "not_a_recipient", detail);
    }
    switch (x->cls) {
    case RG_BOUNCE_HARD:
    case RG_BOUNCE_COMPLAINT:
        snprintf(note, sizeof note, "%s %s%s%s", x->cls == RG_BOUNCE_HARD ? "bounce" : "complaint",
                 x->status[0] ? x->status : "", x->status[0] ? " " : "", x->rule);
        if (suppress(j, addr, x->cls == RG_BOUNCE_HARD ? "hard-bounce" : "complaint", note,
                     &outcome) < 0)
            return -1;
        break;
    case RG_BOUNCE_SOFT: {
        const rg_bounce_conf *b = &j->cfg->bounce;
        if (b->soft_count == 0) {
            outcome = "counted";
            break;
        }
        long n = rg_admin_soft_bounce(j->ad, b->suppress_global ? NULL : j->account, addr,
                                      j->digest, j->now, b->soft_window_ms);
        if (n < 0)
            return -1;
        outcome = "counted";
        if ((unsigned long)n >= b->soft_count) {
            snprintf(note, sizeof note, "%ld soft bounces, the last %s", n,
                     x->status[0] ? x->status : x->rule);
            if (suppress(j, addr, "hard-bounce", note, &outcome) < 0)
                return -1;
        }
        break;
    }
    default:
        outcome = x->cls == RG_BOUNCE_NONE ? "ignored" : "recorded";
        break;
    }
    rg_info("bounce: account=%s from=<%s> to=<%s> class=%s status=%s rule=\"%s\" outcome=%s",
            j->account, j->sender, addr, cls, x->status[0] ? x->status : "-", x->rule, outcome);
    tell(j, "%s %s %s: %s", cls, x->status[0] ? x->status : "-", addr, outcome);
    return emit(j, cls, addr, x->status, outcome, detail);
}

extern char **environ;

/*
 * Forward the message to the original sender: the bounce block's sendmail
 * command with "-i -f '' -- SENDER", the message on its standard input.
 * 0 when it exited 0, else -1 (logged).
 */
static int
forward(const job *j, const char *data, size_t len)
{
    const rg_bounce_conf *b = &j->cfg->bounce;
    size_t n = rg_strv_len(b->sendmail);
    const char **argv = rg_calloc(n + 6, sizeof *argv);
    int fds[2], status = 0, rc = -1;
    pid_t pid;
    posix_spawn_file_actions_t fa;

    for (size_t i = 0; i < n; i++)
        argv[i] = b->sendmail[i];
    argv[n] = "-i";
    argv[n + 1] = "-f";
    argv[n + 2] = "";
    argv[n + 3] = "--";
    argv[n + 4] = j->sender;
    if (pipe(fds) < 0) {
        rg_error("bounce: forward: pipe: %s", strerror(errno));
        free(argv);
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    int e = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    if (e != 0) {
        rg_error("bounce: forward: cannot run %s: %s", argv[0], strerror(e));
        close(fds[1]);
        free(argv);
        return -1;
    }
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fds[1], data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fds[1]);
    signal(SIGPIPE, old);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (off == len && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        rg_info("bounce: forwarded to <%s> (%zu bytes) with %s", j->sender, len, argv[0]);
        rc = 0;
    } else {
        rg_error("bounce: forward to <%s> failed: %s %s %d", j->sender, argv[0],
                 WIFEXITED(status) ? "exited with" : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    free(argv);
    return rc;
}

/* Should this bounce go on to the original sender? */
static bool
want_forward(const job *j, const rg_bounce_report *r)
{
    if (!j->cfg->bounce.forward || j->sender == NULL || j->sender[0] == '\0' ||
        r->cls == RG_BOUNCE_NONE)
        return false;
    /* never to an address of the bounce domain itself: that would loop */
    const char *d = strrchr(j->sender, '@');
    return d != NULL && !rg_verp_domain_matches(&j->cfg->bounce, d + 1, strlen(d + 1));
}

/* The first header named name (case-insensitive) of the message's header block. */
static bool
first_header(const char *data, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (ll == 0 || (ll == 1 && p[0] == '\r'))
            break;               /* end of the header block */
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            size_t vl = ll - nl - 1;
            while (vl > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            if (vl >= outlen)
                return false;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        p = eol ? eol + 1 : end;
    }
    return false;
}

static void
digest_hex(const char *data, size_t len, char out[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 16) {
        snprintf(out, 33, "%032x", 0);
        return;
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void
rg_bounce_loop_msg_init(rg_bounce_loop_msg *m, const char *data, size_t len)
{
    memset(m, 0, sizeof *m);
    m->data = data;
    m->len = len;
    digest_hex(data, len, m->digest);
    m->rep = rg_calloc(1, sizeof *m->rep);
    m->perr = rg_bounce_parse(data, len, m->rep, m->err, sizeof m->err);
    snprintf(m->msgid, sizeof m->msgid, "%s",
             m->perr == 0 && m->rep->message_id[0] ? m->rep->message_id : "-");
}

void
rg_bounce_loop_msg_clear(rg_bounce_loop_msg *m)
{
    free(m->rep);
    m->rep = NULL;
}

/* A store error: log it, drop the connection (the next message opens a new one). */
static rg_bounce_loop_result
store_failed(job *j, rg_admin **ad)
{
    rg_error("bounce: %s; the MTA will retry", rg_admin_error(*ad));
    tell(j, "retry: %s", rg_admin_error(*ad));
    rg_admin_close(ad);
    j->ad = NULL;
    return RG_BOUNCE_LOOP_RETRY;
}

rg_bounce_loop_result
rg_bounce_loop_run(const rg_config *cfg, rg_admin **ad, const rg_bounce_loop_msg *m,
                   const char *env_rcpt, FILE *out, char *summary, size_t sumlen)
{
    const rg_bounce_report *rep = m->rep;
    const char *data = m->data, *msgid = m->msgid;
    size_t len = m->len;
    int perr = m->perr;
    job j;

    memset(&j, 0, sizeof j);
    j.cfg = cfg;
    j.now = now_ms();
    j.size = len;
    j.out = out;
    j.summary = summary;
    j.sumlen = sumlen;
    if (summary != NULL && sumlen > 0)
        summary[0] = '\0';
    memcpy(j.digest, m->digest, sizeof j.digest);

    /* Which of our addresses was this sent to?  The envelope, else the delivery headers. */
    char cand[RG_ADDR_MAX * 2] = "", token[RG_VERP_TOKEN_MAX + 16] = "";
    rg_verp_purpose purpose = RG_VERP_BOUNCES;
    bool ours = false;
    if (env_rcpt != NULL)
        ours = rg_verp_split_address(&cfg->bounce, env_rcpt, &purpose, token, sizeof token);
    static const char *const hdrs[] = { "Delivered-To", "X-Original-To", "Envelope-To", "To" };
    for (size_t i = 0; !ours && env_rcpt == NULL && i < sizeof hdrs / sizeof hdrs[0]; i++)
        if (first_header(data, len, hdrs[i], cand, sizeof cand))
            ours = rg_verp_split_address(&cfg->bounce, cand, &purpose, token, sizeof token);
    /* A complaint report sent to a feedback-loop address carries the return path inside. */
    if (!ours && perr == 0 && rep->orig_return_path[0] != '\0')
        ours = rg_verp_split_address(&cfg->bounce, rep->orig_return_path, &purpose, token,
                                     sizeof token);

    rg_bounce_loop_result rc = RG_BOUNCE_LOOP_DONE;
    char errs[512];
    if (*ad == NULL && (*ad = rg_admin_connect(cfg, errs, sizeof errs)) == NULL) {
        rg_error("bounce: %s; the MTA will retry", errs);
        tell(&j, "retry: %s", errs);
        return RG_BOUNCE_LOOP_RETRY;
    }
    j.ad = *ad;

    if (!ours) {
        rg_warn("bounce: message-id=%s size=%zu: not addressed to bounces+TOKEN@%s or "
                "unsubscribe+TOKEN@%s; ignored", msgid, len, cfg->bounce.domain,
                cfg->bounce.domain);
        if (emit(&j, "ignored", "", "", "no_token", msgid) < 0)
            return store_failed(&j, ad);
        tell(&j, "ignored: no relayguard token");
        return RG_BOUNCE_LOOP_DONE;
    }
    rg_verp_token t;
    rg_verp_status st = rg_verp_verify(&cfg->bounce, purpose, token, (int64_t)(j.now / 1000), &t);
    if (st != RG_VERP_OK) {
        rg_warn("bounce: message-id=%s: refused token %s (%s): nothing suppressed", msgid,
                token, rg_verp_status_name(st));
        if (emit(&j, "refused", "", "", rg_verp_status_name(st), token) < 0)
            return store_failed(&j, ad);
        tell(&j, "refused: token %s", rg_verp_status_name(st));
        return RG_BOUNCE_LOOP_DONE;
    }

    rg_fields rec = { 0 };
    int got = rg_admin_verp_get(j.ad, t.id_text, &rec);
    if (got < 0)
        return store_failed(&j, ad);
    if (got == 0 || rg_fields_get(&rec, "a") == NULL || rg_fields_get(&rec, "r") == NULL) {
        rg_warn("bounce: message-id=%s: token %s has no record (expired or removed); ignored",
                msgid, t.id_text);
        rg_fields_clear(&rec);
        if (emit(&j, "ignored", "", "", "unknown_token", token) < 0)
            return store_failed(&j, ad);
        tell(&j, "ignored: unknown token");
        return RG_BOUNCE_LOOP_DONE;
    }
    j.account = rg_fields_get(&rec, "a");
    j.sender = rg_fields_get(&rec, "s") ? rg_fields_get(&rec, "s") : "";
    {
        char *copy = rg_strdup(rg_fields_get(&rec, "r"));
        size_t cap = 1;
        for (char *p = copy; *p; p++)
            cap += *p == '\n';
        j.rcpts = rg_calloc(cap + 1, sizeof *j.rcpts);
        for (char *save = NULL, *a = strtok_r(copy, "\n", &save); a; a = strtok_r(NULL, "\n", &save))
            j.rcpts[j.n_rcpts++] = rg_strdup(a);
        free(copy);
    }

    bool store_err = false;
    if (purpose == RG_VERP_UNSUBSCRIBE) {
        const char *who = NULL;
        if (j.n_rcpts == 1)
            who = j.rcpts[0];
        for (size_t i = 0; who == NULL && perr == 0 && i < j.n_rcpts; i++)
            if (strcmp(j.rcpts[i], rep->orig_from) == 0)
                who = j.rcpts[i];
        if (who == NULL) {
            rg_warn("bounce: unsubscribe for token %s from <%s> matches none of its %zu "
                    "recipients; nothing suppressed", t.id_text, perr == 0 ? rep->orig_from : "",
                    j.n_rcpts);
            if (emit(&j, "unsubscribe", perr == 0 ? rep->orig_from : "", "", "not_a_recipient",
                     "") < 0)
                store_err = true;
            else
                tell(&j, "unsubscribe: no matching recipient");
        } else {
            const char *outcome = "suppressed";
            if (suppress(&j, who, "unsubscribe", "unsubscribe by mail", &outcome) < 0 ||
                emit(&j, "unsubscribe", who, "", outcome, "") < 0) {
                store_err = true;
            } else {
                rg_info("bounce: account=%s to=<%s> unsubscribe outcome=%s", j.account, who,
                        outcome);
                tell(&j, "unsubscribe %s: %s", who, outcome);
            }
        }
    } else if (perr < 0 || rep->n_rcpt == 0) {
        rg_warn("bounce: message-id=%s size=%zu account=%s: %s; nothing suppressed",
                msgid, len, j.account, perr < 0 ? m->err : "not a bounce or complaint");
        if (emit(&j, "ignored", "", "", "unparsed", perr < 0 ? m->err : "not a bounce") < 0)
            store_err = true;
        else
            tell(&j, "ignored: %s", perr < 0 ? m->err : "not a bounce");
    } else {
        for (size_t i = 0; i < rep->n_rcpt && !store_err; i++)
            if (handle_rcpt(&j, &rep->rcpt[i]) < 0)
                store_err = true;
        if (!store_err && want_forward(&j, rep)) {
            if (forward(&j, data, len) < 0) {
                rg_error("bounce: the MTA will retry (the lists are already written; "
                         "a retry changes nothing there)");
                tell(&j, "retry: forwarding to %s failed", j.sender);
                rc = RG_BOUNCE_LOOP_RETRY;
            } else {
                tell(&j, "forwarded to %s", j.sender);
            }
        }
    }
    if (store_err)
        rc = store_failed(&j, ad);
    rg_fields_clear(&rec);
    rg_strv_free(j.rcpts);
    return rc;
}

/* One message on standard input, as the MTA's pipe gives it: sysexits(3). */
static int
bounce_read(const rg_config *cfg, const char *env_rcpt)
{
    char *data = NULL;
    size_t len = 0;
    bool cut;

    if (read_all(stdin, &data, &len, &cut) < 0) {
        rg_error("bounce: cannot read the message: %s", strerror(errno));
        return EX_TEMPFAIL;
    }
    if (len == 0) {
        rg_error("bounce: empty message on standard input");
        free(data);
        return EX_DATAERR;
    }
    rg_bounce_loop_msg m;
    rg_admin *ad = NULL;
    rg_bounce_loop_msg_init(&m, data, len);
    rg_bounce_loop_result r = rg_bounce_loop_run(cfg, &ad, &m, env_rcpt, stdout, NULL, 0);
    rg_admin_close(&ad);
    rg_bounce_loop_msg_clear(&m);
    free(data);
    return r == RG_BOUNCE_LOOP_DONE ? 0 : EX_TEMPFAIL;
}

/* --- bounce FILE... | bounce --maildir DIR ---------------------------------------------- */

/* Rank of an exit code for several messages: the one that matters most wins. */
static int
worse(int a, int b)
{
    static const int order[] = { 0, EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL };
    int ra = 0, rb = 0;
    for (int i = 0; i < 4; i++) {
        if (order[i] == a)
            ra = i;
        if (order[i] == b)
            rb = i;
    }
    return ra >= rb ? a : b;
}

typedef struct files_run {
    const rg_config *cfg;
    rg_admin *ad;               /* one connection for the whole run */
    const char *rcpt;
    unsigned done, retry, bad;
} files_run;

/* One file: 0, EX_TEMPFAIL (retry later), EX_NOINPUT (unreadable) or EX_DATAERR (empty). */
static int
one_file(files_run *fr, const char *path, const char *label)
{
    FILE *f = fopen(path, "rb");
    char *data;
    size_t len;
    bool cut;

    printf("== %s\n", label);
    if (f == NULL) {
        rg_error("bounce: %s: %s", path, strerror(errno));
        printf("error: %s\n", strerror(errno));
        fr->bad++;
        return EX_NOINPUT;
    }
    int r = read_all(f, &data, &len, &cut);
    fclose(f);
    if (r < 0) {
        rg_error("bounce: %s: read error", path);
        printf("error: read error\n");
        fr->bad++;
        return EX_NOINPUT;
    }
    if (len == 0) {
        rg_error("bounce: %s: empty file", path);
        printf("error: empty\n");
        free(data);
        fr->bad++;
        return EX_DATAERR;
    }
    rg_bounce_loop_msg m;
    rg_bounce_loop_msg_init(&m, data, len);
    rg_bounce_loop_result res = rg_bounce_loop_run(fr->cfg, &fr->ad, &m, fr->rcpt, stdout, NULL, 0);
    rg_bounce_loop_msg_clear(&m);
    free(data);
    if (res == RG_BOUNCE_LOOP_RETRY) {
        fr->retry++;
        return EX_TEMPFAIL;
    }
    fr->done++;
    return 0;
}

static int
bounce_files(const rg_config *cfg, const char *rcpt, int n, const char **files)
{
    files_run fr = { .cfg = cfg, .rcpt = rcpt };
    int rc = 0;
    for (int i = 0; i < n; i++)
        rc = worse(rc, one_file(&fr, files[i], files[i]));
    rg_admin_close(&fr.ad);
    printf("%d messages: %u done, %u to retry, %u unreadable or empty\n", n, fr.done, fr.retry,
           fr.bad);
    return rc;
}

static int
char_cmp(const void *a, const void *b)
{
    return *(const char *)a - *(const char *)b;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * A maildir of collected bounces: every message of new/ and every one of cur/
 * without the S (seen) flag, oldest name first.  A message that is done is
 * marked seen the maildir way (moved to cur/NAME:2,FLAGS with S added), so a
 * second run skips it; one to retry is left where it is.
 */
static int
bounce_maildir(const rg_config *cfg, const char *rcpt, const char *dir)
{
    static const char *const subs[] = { "new", "cur" };
    files_run fr = { .cfg = cfg, .rcpt = rcpt };
    int rc = 0;
    unsigned total = 0, skipped = 0;

    /* both lists first: what this run marks seen lands in cur/ */
    char **names[2] = { NULL, NULL };
    size_t nn[2] = { 0, 0 };
    for (size_t s = 0; s < 2; s++) {
        char sub[4096];
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", dir, subs[s]) >= sizeof sub) {
            say("bounce: --maildir %s: path too long", dir);
            rc = EX_USAGE;
            goto out;
        }
        DIR *d = opendir(sub);
        if (d == NULL) {
            say("bounce: --maildir %s: %s: %s (not a maildir?)", dir, sub, strerror(errno));
            rc = EX_NOINPUT;
            goto out;
        }
        size_t cap = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            const char *info = strstr(e->d_name, ":2,");
            if (s == 1 && info != NULL && strchr(info + 3, 'S') != NULL) {
                skipped++;
                continue;
            }
            if (nn[s] == cap) {
                cap = cap ? cap * 2 : 64;
                names[s] = rg_realloc(names[s], cap * sizeof *names[s]);
            }
            names[s][nn[s]++] = rg_strdup(e->d_name);
        }
        closedir(d);
        if (nn[s] > 0)
            qsort(names[s], nn[s], sizeof *names[s], name_cmp);
    }
    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; i < nn[s]; i++) {
            char path[8192], label[4200], dest[8192], flags[64] = "S";
            snprintf(path, sizeof path, "%s/%s/%s", dir, subs[s], names[s][i]);
            snprintf(label, sizeof label, "%s/%s", subs[s], names[s][i]);
            total++;
            int r = one_file(&fr, path, label);
            rc = worse(rc, r);
            if (r != 0)
                continue;
            /* done: cur/BASE:2,FLAGS with S among the flags (sorted, as maildir wants) */
            char *base = names[s][i], *info = strstr(base, ":2,");
            if (info != NULL) {
                size_t k = 0;
                for (const char *p = info + 3; *p && k + 2 < sizeof flags; p++)
                    if (*p != 'S' && (unsigned char)*p >= 'A' && (unsigned char)*p <= 'z')
                        flags[k++] = *p;
                flags[k++] = 'S';
                flags[k] = '\0';
                *info = '\0';
                qsort(flags, k, 1, char_cmp);
            }
            snprintf(dest, sizeof dest, "%s/cur/%s:2,%s", dir, base, flags);
            if (rename(path, dest) < 0)
                rg_warn("bounce: %s done but not marked seen: rename to %s: %s", path, dest,
                        strerror(errno));
        }
    }
    printf("%u messages: %u done, %u to retry, %u unreadable or empty (%u seen before, skipped)\n",
           total, fr.done, fr.retry, fr.bad, skipped);
out:
    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; i < nn[s]; i++)
            free(names[s][i]);
        free(names[s]);
    }
    rg_admin_close(&fr.ad);
    return rc;
}

/* --- the verb ---------------------------------------------------------------------- */

int
rg_cli_bounce(int argc, char **argv, const char *conf_path, bool json)
{
    const char **pos = rg_calloc((size_t)argc + 1, sizeof *pos), *rcpt = NULL;
    const char *maildir = NULL;
    int npos = 0, rc;
    bool unsubscribe = false;
    rg_lmtp_opts lo = { .size_limit = RG_LMTP_SIZE_DEFAULT };

    (void)json;
    /* A bounce is one process (the MTA's pipe), and OpenSSL 3 reading
     * openssl.cnf on its first use was a third of it (about 1 ms).  The
     * token's HMAC-SHA256 and the message digest need only the default
     * provider, which is what is used without the file, and no lookup of
     * ciphers or digests by name (EVP_sha256() is called directly). */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
                        OPENSSL_INIT_NO_ADD_ALL_DIGESTS, NULL);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if ((strcmp(s, "-c") == 0 || strcmp(s, "--config") == 0) && i + 1 < argc) {
            conf_path = argv[++i];
        } else if (strncmp(s, "--config=", 9) == 0) {
            conf_path = s + 9;
        } else if (strcmp(s, "--rcpt") == 0 && i + 1 < argc) {
            rcpt = argv[++i];
        } else if (strncmp(s, "--rcpt=", 7) == 0) {
            rcpt = s + 7;
        } else if (strcmp(s, "--rcpt-env") == 0 && i + 1 < argc) {
            /* The address from the environment: Exim's pipe transport
             * sets RECIPIENT, and refuses the (tainted) address in a
             * command argument.  Unset or empty: the delivery headers. */
            const char *v = getenv(argv[++i]);
            rcpt = v && v[0] ? v : rcpt;
        } else if (strcmp(s, "--unsubscribe") == 0) {
            unsubscribe = true;
        } else if (strcmp(s, "--maildir") == 0 && i + 1 < argc) {
            maildir = argv[++i];
        } else if (strcmp(s, "--lmtp") == 0 && i + 1 < argc) {
            lo.listen = argv[++i];
        } else if (strcmp(s, "--user") == 0 && i + 1 < argc) {
            lo.user = argv[++i];
        } else if (strcmp(s, "--pidfile") == 0 && i + 1 < argc) {
            lo.pidfile = argv[++i];
        } else if (strcmp(s, "--size-limit") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || v < 1024 || v > (1ull << 30)) {
                say("bounce: --size-limit %s: a number of bytes from 1024 to 1073741824",
                    argv[i]);
                free(pos);
                return EX_USAGE;
            }
            lo.size_limit = (size_t)v;
        } else if (strcmp(s, "-d") == 0 || strcmp(s, "--debug") == 0) {
            lo.debug = true;
        } else if (strcmp(s, "--json") == 0) {
            ;
        } else if (s[0] == '-' && s[1] != '\0') {
            say("bounce: unknown option '%s'", s);
            rc = npos > 0 && (strcmp(pos[0], "token") == 0 || strcmp(pos[0], "parse") == 0)
                 ? CLI_USAGE : EX_TEMPFAIL;
            free(pos);
            return rc;
        } else {
            pos[npos++] = s;
        }
    }

    if (npos > 0 && strcmp(pos[0], "parse") == 0) {
        if (npos < 2) {
            say("usage: relayguard bounce parse FILE...");
            rc = CLI_USAGE;
        } else {
            rc = bounce_parse(npos - 1, (char **)pos + 1);
        }
        free(pos);
        return rc;
    }

    if (lo.listen != NULL) {
        if (npos > 0 || maildir != NULL || rcpt != NULL) {
            say("bounce: --lmtp takes no message, --maildir or --rcpt (LMTP gives each "
                "recipient)");
            free(pos);
            return EX_USAGE;
        }
        lo.conf_path = conf_path;
        free(pos);
        return rg_bounce_lmtp(&lo);
    }
    if (lo.user != NULL || lo.pidfile != NULL || lo.debug ||
        lo.size_limit != RG_LMTP_SIZE_DEFAULT) {
        say("bounce: --user, --pidfile, --size-limit and -d go with --lmtp");
        free(pos);
        return EX_TEMPFAIL;     /* as any usage error where an MTA's pipe may run it */
    }

    char err[1024];
    rg_config *cfg = rg_config_load(conf_path, err, sizeof err);
    bool minting = npos > 0 && strcmp(pos[0], "token") == 0;
    if (cfg == NULL) {
        say("%s", err);
        free(pos);
        return minting ? CLI_USAGE : EX_TEMPFAIL;
    }
    if (cfg->bounce.line == 0) {
        say("%s has no bounce block (see relayguard.conf(5))", conf_path);
        rg_config_free(cfg);
        free(pos);
        return minting ? CLI_USAGE : EX_TEMPFAIL;
    }
    if (minting) {
        if (npos < 4) {
            say("usage: relayguard bounce token ACCOUNT SENDER RCPT... [--unsubscribe]");
            rc = CLI_USAGE;
        } else {
            rc = bounce_token(cfg, npos - 1, (char **)pos + 1, unsubscribe);
        }
    } else if (maildir != NULL) {
        rg_log_open("relayguard-bounce", cfg->log, cfg->log_level);
        if (npos > 0) {
            say("bounce: --maildir DIR takes no FILE arguments");
            rc = EX_USAGE;
        } else {
            rc = bounce_maildir(cfg, rcpt, maildir);
        }
    } else if (npos > 0) {
        rg_log_open("relayguard-bounce", cfg->log, cfg->log_level);
        rc = bounce_files(cfg, rcpt, npos, pos);
    } else {
        rg_log_open("relayguard-bounce", cfg->log, cfg->log_level);
        rc = bounce_read(cfg, rcpt);
    }
    rg_config_free(cfg);
    free(pos);
    return rc;
}
