/*
 * relayguard-sendmail - mark locally submitted mail with its unix user, then
 * run the real sendmail (relayguard-sendmail(8)).
 *
 *   relayguard-sendmail [sendmail options and recipients]
 *
 * Installed setgid relayguard so that it can read the local key.  It reads
 * the local_* settings of relayguard.conf and the key while privileged,
 * drops the group for good, reads the message from stdin into an unlinked
 * temporary file with one header added on top
 *
 *   X-Relayguard-Local: v=1; u=UID; l=LOGIN; t=UNIXTIME; n=NONCE; s=HMAC
 *
 * (and every inbound copy of that header removed), and execs local_sendmail
 * with its own arguments followed by the caller's, the file as stdin.  It
 * never loses a message: when it cannot add the header it says why on
 * stderr and exits EX_TEMPFAIL (75) without running sendmail, so the caller
 * (PHP's mail() returns false) knows the message was not sent.  Modes that
 * are not "deliver a message" (-bs, -bv, -bp, -bi, -I, -q...) run the real
 * sendmail unchanged, without privilege.
 *
 * The header section is hand-parsed (the rules are RFC 5322's field syntax
 * plus the dot convention of sendmail without -i): no mail library reads a
 * stream line by line while leaving every other byte alone, and this must.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "config.h"
#include "localsub.h"
#include "util.h"

#ifndef RG_SENDMAIL_CONFIG
#define RG_SENDMAIL_CONFIG RG_DEFAULT_CONFIG
#endif

static const char *prog = "relayguard-sendmail";

/* The sanitizer builds' hook: LeakSanitizer cannot trace a process that
 * started set-group-id (the kernel makes it non-dumpable) and would turn
 * every early exit into its own fatal error and exit status, so it stands
 * aside then.  An ordinary build never calls this. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return prctl(PR_GET_DUMPABLE) != 1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; the message was not sent\n");
    exit(EX_TEMPFAIL);
}

/* Options of Postfix's and Sendmail's sendmail that take a value. */
#define OPTS_WITH_VALUE "ABCFLMNOQRVXbdefhopr"

typedef struct mode {
    bool passthrough;           /* not "deliver a message": run sendmail as is */
    bool ignore_dots;           /* -i, -oi: a line "." does not end the message */
} mode;

/* What the arguments ask sendmail to do (getopt's rules, with GNU's
 * permutation: options may follow recipients, "--" ends them). */
static mode scan_args(int argc, char **argv)
{
    mode md = { false, false };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (a[0] != '-' || a[1] == '\0')
            continue;           /* a recipient */
        for (const char *p = a + 1; *p; p++) {
            if (*p == 'q' || *p == 'I') {
                md.passthrough = true;      /* queue runs, newaliases */
                break;
            }
            if (*p == 'i') {
                md.ignore_dots = true;
                continue;
            }
            if (strchr(OPTS_WITH_VALUE, *p) == NULL)
                continue;
            const char *val = p[1] ? p + 1 : (i + 1 < argc ? argv[++i] : "");
            if (*p == 'b' && strcmp(val, "m") != 0)
                md.passthrough = true;      /* -bs, -bv, -bp, -bi, -bd, ... */
            if (*p == 'o' && strcmp(val, "i") == 0)
                md.ignore_dots = true;
            break;
        }
    }
    return md;
}

/* The local_* settings of the configuration.  Only those: the rest (DKIM
 * and bounce keys, secrets) is none of this program's business. */
static void read_config(const char *path, rg_localsub_conf *lc)
{
    char err[1024];
    rg_conf *conf = rg_conf_parse_file(path, err, sizeof err);
    if (conf == NULL)
        die("%s", err);
    rg_localsub_conf_init(lc);
    const rg_conf_block *top = &conf->blocks[0];
    for (size_t i = 0; i < top->nitems; i++) {
        const rg_conf_item *it = &top->items[i];
        if (rg_localsub_conf_apply(lc, it->key, it->value, path, it->line, err, sizeof err) < 0) {
            rg_conf_free(conf);
            die("%s", err);
        }
    }
    rg_conf_free(conf);
}

/* Give up the set-group-id for good (real, effective and saved). */
static void drop_group(void)
{
    gid_t g = getgid(), r, e, s;
    if (setresgid(g, g, g) < 0 || getresgid(&r, &e, &s) < 0 || r != g || e != g || s != g)
        die("cannot drop the group privilege: %s", strerror(errno));
}

static bool is_blank_line(const char *l, size_t n)
{
    return (n == 1 && l[0] == '\n') || (n == 2 && l[0] == '\r' && l[1] == '\n');
}

static bool is_dot_line(const char *l, size_t n)
{
    return (n == 1 && l[0] == '.') || (n == 2 && l[0] == '.' && l[1] == '\n') ||
           (n == 3 && l[0] == '.' && l[1] == '\r' && l[2] == '\n');
}

/* A header field's first line: NAME (printable, no ':'), blanks, ':'.
 * Sets *name_len to the name without trailing blanks. */
static bool is_field(const char *l, size_t n, size_t *name_len)
{
    size_t i = 0;
    while (i < n && (unsigned char)l[i] > 32 && (unsigned char)l[i] < 127 && l[i] != ':')
        i++;
    if (i == 0)
        return false;
    *name_len = i;
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    return i < n && l[i] == ':';
}

static void put(FILE *out, const char *buf, size_t n)
{
    if (n && fwrite(buf, 1, n, out) != n)
        die("cannot write the temporary copy: %s", strerror(errno));
}

/* Copy stdin to out with the token on top and inbound copies removed. */
static void copy_message(FILE *out, const char *token, bool ignore_dots)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    bool crlf = n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n';
    const char *eol = crlf ? "\r\n" : "\n";

    /* an mbox "From " line stays first */
    if (n > 0 && strncmp(line, "From ", 5) == 0) {
        put(out, line, (size_t)n);
        n = getline(&line, &cap, stdin);
    }
    put(out, RG_LOCALSUB_HEADER ": ", strlen(RG_LOCALSUB_HEADER) + 2);
    put(out, token, strlen(token));
    put(out, eol, strlen(eol));

    bool in_headers = true, dropping = false;
    for (; n > 0; n = getline(&line, &cap, stdin)) {
        size_t len = (size_t)n, name_len = 0;
        if (in_headers) {
            if (is_blank_line(line, len)) {
                in_headers = false;
            } else if (line[0] == ' ' || line[0] == '\t') {
                if (dropping)
                    continue;   /* continuation of a removed header */
            } else if (is_field(line, len, &name_len)) {
                dropping = name_len == strlen(RG_LOCALSUB_HEADER) &&
                           strncasecmp(line, RG_LOCALSUB_HEADER, name_len) == 0;
                if (dropping)
                    continue;
            } else {
                in_headers = false;     /* not a header: the body starts here */
            }
        }
        put(out, line, len);
        if (!ignore_dots && !in_headers && is_dot_line(line, len))
            break;              /* sendmail stops reading here too */
    }
    if (ferror(stdin))
        die("cannot read the message: %s", strerror(errno));
    free(line);
}

int main(int argc, char **argv)
{
    rg_localsub_conf lc;
    rg_localsub_key key;
    char err[1024], token[RG_LOCALSUB_TOKEN_MAX];

    /* The configuration path cannot come from the caller of a set-group-id
     * program: secure_getenv ignores the variable then (tests use it). */
    const char *path = secure_getenv("RELAYGUARD_CONF");
    if (path == NULL || path[0] == '\0')
        path = RG_SENDMAIL_CONFIG;
    if (argc < 1)
        die("no arguments at all");
    mode md = scan_args(argc, argv);

    read_config(path, &lc);
    bool keyed = false;
    if (!md.passthrough) {
        if (lc.key_path == NULL)
            die("%s has no local_key", path);
        if (rg_localsub_key_load(lc.key_path, &key, err, sizeof err) < 0)
            die("%s", err);
        keyed = true;
    }
    drop_group();

    /* the new command line: local_sendmail's words, then the caller's arguments */
    size_t nw = rg_strv_len(lc.sendmail);
    if (nw == 0)
        die("local_sendmail is empty");
    char **av = rg_calloc(nw + (size_t)argc + 1, sizeof *av);
    size_t ac = 0;
    for (size_t i = 0; i < nw; i++)
        av[ac++] = lc.sendmail[i];
    for (int i = 1; i < argc; i++)
        av[ac++] = argv[i];
    av[ac] = NULL;

    if (keyed) {
        uid_t uid = getuid();
        errno = 0;
        struct passwd *pw = getpwuid(uid);
        if (pw == NULL)
            die("uid %lu has no passwd entry", (unsigned long)uid);
        int rc = rg_localsub_mint(&key, (unsigned long)uid, pw->pw_name, (int64_t)time(NULL),
                                  NULL, token, sizeof token, err, sizeof err);
        rg_localsub_key_clear(&key);
        if (rc < 0)
            die("%s", err);

        /* an unlinked file of the caller's own (the group is gone) */
        FILE *tmp = tmpfile();
        if (tmp == NULL)
            die("cannot make a temporary file: %s", strerror(errno));
        copy_message(tmp, token, md.ignore_dots);
        if (fflush(tmp) != 0 || ferror(tmp))
            die("cannot write the temporary copy: %s", strerror(errno));
        int fd = fileno(tmp);
        if (lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, STDIN_FILENO) < 0)
            die("cannot rewind the temporary copy: %s", strerror(errno));
        fclose(tmp);            /* stdin, a duplicate, keeps the file */
    }
    execv(av[0], av);
    die("cannot run %s: %s", av[0], strerror(errno));
}
