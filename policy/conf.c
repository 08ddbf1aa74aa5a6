/*
 * conf.c - the tiny "key = value" / "section [NAME] { }" file syntax shared
 * by relayguard.conf and account files (grammar in conf.h).
 *
 * Hand-written: one pass over the lines; every error names FILE:LINE.
 * Lines over RG_CONF_LINE_MAX bytes, NUL bytes, control bytes other than
 * tab, and invalid UTF-8 are refused with their line number.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "util.h"

#define RG_CONF_LINE_MAX 8192           /* bytes, without the line end */
#define RG_CONF_FILE_MAX (64u << 20)    /* refuse files over 64 MiB */

/* Write "FILE:LINE: message" (or "FILE: message" for line 0) into err. */
static void __attribute__((format(printf, 5, 6)))
conf_error(char *err, size_t errlen, const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (errlen == 0)
        return;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
        msg[0] = '\0';
    va_end(ap);
    if (line > 0)
        snprintf(err, errlen, "%s:%d: %s", file, line, msg);
    else
        snprintf(err, errlen, "%s: %s", file, msg);
}

/* Check one raw line; NULL if fine, else what is wrong with it. */
static const char *
line_problem(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < len;) {
        if (p[i] == '\0')
            return "NUL byte";
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            return "control character";
        size_t n = rg_utf8_len(p + i, len - i);
        if (n == 0)
            return "invalid UTF-8";
        i += n;
    }
    return NULL;
}

static int
is_blank(int c)
{
    return c == ' ' || c == '\t';
}

static int
is_word_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

/* Block names may also hold the characters of account names and logins. */
static int
is_name_char(int c)
{
    return is_word_char(c) || c == '@' || c == '+';
}

static rg_conf_block *
add_block(rg_conf *c, const char *type, const char *name, int line)
{
    rg_conf_block *b;

    c->blocks = rg_realloc(c->blocks, (c->nblocks + 1) * sizeof *c->blocks);
    b = &c->blocks[c->nblocks++];
    b->type = rg_strdup(type);
    b->name = rg_strdup(name);
    b->line = line;
    b->items = NULL;
    b->nitems = 0;
    return b;
}

static void
add_item(rg_conf_block *b, char *key, char *value, int line)
{
    b->items = rg_realloc(b->items, (b->nitems + 1) * sizeof *b->items);
    b->items[b->nitems].key = key;
    b->items[b->nitems].value = value;
    b->items[b->nitems].line = line;
    b->nitems++;
}

/*
 * The value after '=': quoted parts keep '#' and blanks (the quotes go,
 * \" and \\ escape inside them); an unquoted '#' starts a comment; trailing
 * unquoted blanks go.  New string, or NULL with the reason in *why.
 */
static char *
parse_value(const char *s, const char **why)
{
    size_t len = strlen(s);
    char *out = rg_malloc(len + 1);
    size_t o = 0, keep = 0;     /* keep: length up to the last byte not to trim */

    while (is_blank((unsigned char)*s))
        s++;
    while (*s && *s != '#') {
        if (*s == '"') {
            s++;
            while (*s && *s != '"') {
                if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                    s++;
                out[o++] = *s++;
            }
            if (*s != '"') {
                free(out);
                *why = "unterminated quoted string";
                return NULL;
            }
            s++;
            keep = o;
            continue;
        }
        out[o++] = *s;
        if (!is_blank((unsigned char)*s))
            keep = o;
        s++;
    }
    out[keep] = '\0';
    return out;
}

/*
 * Parse one line (NUL-terminated, line end removed) into c.  *cur is the
 * open block (NULL at top level).  0, or -1 with err set.
 */
static int
parse_line(rg_conf *c, rg_conf_block **cur, char *s, int lineno, char *err, size_t errlen)
{
    const char *file = c->file;
    char *p = s;

    while (is_blank((unsigned char)*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;

    if (*p == '}') {
        p++;
        while (is_blank((unsigned char)*p))
            p++;
        if (*p != '\0' && *p != '#') {
            conf_error(err, errlen, file, lineno, "unexpected text after '}'");
            return -1;
        }
        if (*cur == NULL) {
            conf_error(err, errlen, file, lineno, "unexpected '}'");
            return -1;
        }
        *cur = NULL;
        return 0;
    }

    /* The first word: a key or a block type. */
    char *w = p;
    while (*p && is_word_char((unsigned char)*p))
        p++;
    size_t wlen = (size_t)(p - w);
    char *after = p;
    while (is_blank((unsigned char)*p))
        p++;

    if (*p == '=') {
        if (wlen == 0) {
            conf_error(err, errlen, file, lineno, "missing key before '='");
            return -1;
        }
        const char *why = NULL;
        char *value = parse_value(p + 1, &why);
        if (value == NULL) {
            conf_error(err, errlen, file, lineno, "%s in the value of '%.*s'", why,
                       (int)wlen, w);
            return -1;
        }
        add_item(*cur ? *cur : &c->blocks[0], rg_strndup(w, wlen), value, lineno);
        return 0;
    }

    if (wlen == 0) {
        conf_error(err, errlen, file, lineno, "expected 'key = value', a block or '}'");
        return -1;
    }
    if (after == p && *p != '\0' && *p != '{' && *p != '#') {
        /* a word glued to something that is not a word character */
        conf_error(err, errlen, file, lineno, "bad character '%c' in '%.*s'", *p,
                   (int)(p - w + 1), w);
        return -1;
    }

    /* "TYPE [NAME] {" */
    char *name = p;
    size_t nlen = 0;
    if (*p != '{' && *p != '\0' && *p != '#') {
        while (*p && is_name_char((unsigned char)*p))
            p++;
        nlen = (size_t)(p - name);
        while (is_blank((unsigned char)*p))
            p++;
    }
    if (*p != '{') {
        const char *brace = strchr(p, '{');
        if (nlen > 0 && brace != NULL && strchr(p, '=') == NULL) {
            const char *e = brace;
            while (e > name && is_blank((unsigned char)e[-1]))
                e--;
            conf_error(err, errlen, file, lineno, "bad name '%.*s' for block '%.*s'",
                       (int)(e - name), name, (int)wlen, w);
        } else if (nlen > 0 && *p == '=')
            conf_error(err, errlen, file, lineno, "bad key '%.*s'", (int)(name + nlen - w), w);
        else
            conf_error(err, errlen, file, lineno, "missing '=' after '%.*s'", (int)wlen, w);
        return -1;
    }
    p++;
    while (is_blank((unsigned char)*p))
        p++;
    if (*p != '\0' && *p != '#') {
        conf_error(err, errlen, file, lineno,
                   "unexpected text after '{' (put each setting on its own line)");
        return -1;
    }
    if (*cur != NULL) {
        conf_error(err, errlen, file, lineno,
                   "block '%.*s' inside block '%s' opened at line %d (blocks do not nest)",
                   (int)wlen, w, (*cur)->type, (*cur)->line);
        return -1;
    }
    char type[64], bname[128];
    if (wlen >= sizeof type || nlen >= sizeof bname) {
        conf_error(err, errlen, file, lineno, "block type or name too long");
        return -1;
    }
    memcpy(type, w, wlen);
    type[wlen] = '\0';
    memcpy(bname, name, nlen);
    bname[nlen] = '\0';
    *cur = add_block(c, type, bname, lineno);
    return 0;
}

/* Parse len bytes of text; the file name is for messages. */
static rg_conf *
conf_parse(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    rg_conf *c = rg_calloc(1, sizeof *c);
    rg_conf_block *cur = NULL;
    char *line = rg_malloc(RG_CONF_LINE_MAX + 1);
    size_t pos = 0;
    int lineno = 0;

    c->file = rg_strdup(name);
    add_block(c, "", "", 0);

    while (pos < len) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - start) : len - pos;

        pos += llen + (nl ? 1 : 0);
        lineno++;
        if (llen > 0 && start[llen - 1] == '\r')
            llen--;
        if (llen > RG_CONF_LINE_MAX) {
            conf_error(err, errlen, name, lineno, "line too long (over %d bytes)",
                       RG_CONF_LINE_MAX);
            goto fail;
        }
        const char *why = line_problem(start, llen);
        if (why != NULL) {
            conf_error(err, errlen, name, lineno, "%s", why);
            goto fail;
        }
        memcpy(line, start, llen);
        line[llen] = '\0';
        if (parse_line(c, &cur, line, lineno, err, errlen) < 0)
            goto fail;
    }
    if (cur != NULL) {
        conf_error(err, errlen, name, lineno, "unterminated block '%s' opened at line %d",
                   cur->type, cur->line);
        goto fail;
    }
    free(line);
    return c;

fail:
    free(line);
    rg_conf_free(c);
    return NULL;
}

/* Parse a file.  A new rg_conf (rg_conf_free), or NULL with "FILE:LINE: message" in err. */
rg_conf *
rg_conf_parse_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    rg_conf *c;

    if (f == NULL) {
        conf_error(err, errlen, path, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 65536;
            buf = rg_realloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len > RG_CONF_FILE_MAX) {
            conf_error(err, errlen, path, 0, "file too large (over %u MiB)",
                       RG_CONF_FILE_MAX >> 20);
            fclose(f);
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        conf_error(err, errlen, path, 0, "read error: %s", strerror(errno));
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    c = conf_parse(path, buf ? buf : "", len, err, errlen);
    free(buf);
    return c;
}

/* Parse a string; name stands for the file in messages. */
rg_conf *
rg_conf_parse_string(const char *name, const char *text, char *err, size_t errlen)
{
    return conf_parse(name, text, strlen(text), err, errlen);
}

/* Free everything; NULL is fine. */
void
rg_conf_free(rg_conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nblocks; i++) {
        rg_conf_block *b = &c->blocks[i];
        for (size_t j = 0; j < b->nitems; j++) {
            free(b->items[j].key);
            free(b->items[j].value);
        }
        free(b->items);
        free(b->type);
        free(b->name);
    }
    free(c->blocks);
    free(c->file);
    free(c);
}

/* First value of key in block, or NULL. */
const char *
rg_conf_get(const rg_conf_block *b, const char *key)
{
    for (size_t i = 0; i < b->nitems; i++)
        if (strcmp(b->items[i].key, key) == 0)
            return b->items[i].value;
    return NULL;
}

/* Split at commas and blanks; NULL-terminated array of new strings, never NULL. */
char **
rg_strv_split(const char *value)
{
    size_t n = 0, cap = 4;
    char **v = rg_malloc(cap * sizeof *v);
    const char *p = value ? value : "";

    for (;;) {
        while (*p == ',' || is_blank((unsigned char)*p) || *p == '\n' || *p == '\r')
            p++;
        if (*p == '\0')
            break;
        const char *s = p;
        while (*p && *p != ',' && !is_blank((unsigned char)*p) && *p != '\n' && *p != '\r')
            p++;
        if (n + 2 > cap) {
            cap *= 2;
            v = rg_realloc(v, cap * sizeof *v);
        }
        v[n++] = rg_strndup(s, (size_t)(p - s));
    }
    v[n] = NULL;
    return v;
}

/* Free a list from rg_strv_split; NULL is fine. */
void
rg_strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t
rg_strv_len(char *const *v)
{
    size_t n = 0;

    if (v != NULL)
        while (v[n])
            n++;
    return n;
}
