/*
 * util.c - small string and memory helpers shared by the whole engine.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* Copy with truncation check: returns strlen(src); >= size means truncated. */
size_t
rg_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);

    if (size > 0) {
        size_t c = n < size - 1 ? n : size - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

/* Append with truncation check: returns the length it tried to create. */
size_t
rg_strlcat(char *dst, const char *src, size_t size)
{
    size_t d = strnlen(dst, size);

    if (d == size)
        return size + strlen(src);
    return d + rg_strlcpy(dst + d, src, size - d);
}

/* Never NULL: panics on out-of-memory. */
void *
rg_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        rg_panic("out of memory (%zu bytes)", n);
    return p;
}

/* Never NULL; zeroed; panics on overflow or out-of-memory. */
void *
rg_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL)
        rg_panic("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

/* Never NULL: panics on out-of-memory. */
void *
rg_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL)
        rg_panic("out of memory (%zu bytes)", n);
    return q;
}

void *
rg_grow(void *p, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap : first ? first : 1;
    while (n < need)
        n *= 2;
    if (elem != 0 && n > (size_t)-1 / elem)
        rg_panic("out of memory (%zu elements of %zu bytes)", n, elem);
    p = rg_realloc(p, n * elem);
    *cap = n;
    return p;
}

/* New copy of s; the caller frees it. */
char *
rg_strdup(const char *s)
{
    return rg_strndup(s, strlen(s));
}

/* New copy of at most n bytes of s, NUL-terminated; the caller frees it. */
char *
rg_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = rg_malloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* ASCII lower-case in place; returns s. */
char *
rg_lower(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

/* Byte length of the valid UTF-8 sequence at s (at most avail bytes
 * readable), 0 if invalid.  ASCII control bytes count as valid here. */
size_t
rg_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned long cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2; cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3; cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4; cp = c & 0x07;
    } else {
        return 0;
    }
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static int
is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* 1 if s is valid UTF-8 without control bytes (C0, DEL), else 0. */
int
rg_text_clean(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + strlen(s);

    while (*p) {
        size_t n = rg_utf8_len(p, (size_t)(end - p));
        if (n == 0 || (n == 1 && is_control(*p)))
            return 0;
        p += n;
    }
    return 1;
}

/*
 * Copy s into out (always NUL-terminated when outlen > 0), replacing each
 * control byte and each invalid UTF-8 byte with '?'.  Truncates at a
 * character boundary when out is too small.
 */
void
rg_text_sanitize(const char *s, char *out, size_t outlen)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + strlen(s);
    size_t o = 0;

    if (outlen == 0)
        return;
    while (*p) {
        size_t n = rg_utf8_len(p, (size_t)(end - p));
        if (n == 0 || (n == 1 && is_control(*p))) {
            if (o + 1 >= outlen)
                break;
            out[o++] = '?';
            p++;
            continue;
        }
        if (o + n >= outlen)
            break;
        memcpy(out + o, p, n);
        o += n;
        p += n;
    }
    out[o] = '\0';
}

void
rg_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen == 0)
        return;
    va_start(ap, fmt);
    if (vsnprintf(err, errlen, fmt, ap) < 0)
        err[0] = '\0';
    va_end(ap);
}
