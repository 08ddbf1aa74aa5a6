/*
 * util.h - small string and memory helpers.
 */
#ifndef RG_UTIL_H
#define RG_UTIL_H

#include <stddef.h>

/* Copy with truncation check: returns strlen(src); >= size means truncated. */
size_t rg_strlcpy(char *dst, const char *src, size_t size);
size_t rg_strlcat(char *dst, const char *src, size_t size);

/* Allocation that never returns NULL (panics on out-of-memory). */
void *rg_malloc(size_t n);
void *rg_calloc(size_t n, size_t size);
void *rg_realloc(void *p, size_t n);
char *rg_strdup(const char *s);
char *rg_strndup(const char *s, size_t n);

/* A growing array: p (cap elements of elem bytes) made to hold at least need
 * elements, its capacity doubled from first (or from *cap).  Returns p, or
 * its new place; *cap updated.  Never NULL. */
void *rg_grow(void *p, size_t *cap, size_t need, size_t elem, size_t first);

/* Write a message into err[errlen] (nothing when errlen is 0). */
void rg_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Lower-case in place; returns s. */
char *rg_lower(char *s);

/* Byte length of the valid UTF-8 sequence at s (avail bytes readable),
 * 0 if invalid. */
size_t rg_utf8_len(const unsigned char *s, size_t avail);

/* Is s printable text (no control bytes, valid UTF-8)?  Used before a
 * value goes into a log line or an event. */
int rg_text_clean(const char *s);

/* Copy s into out replacing control bytes and invalid UTF-8 with '?'. */
void rg_text_sanitize(const char *s, char *out, size_t outlen);

#endif
