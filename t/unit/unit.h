/*
 * unit.h - what every cmocka unit test includes: cmocka itself and checks
 * that name the table case that failed.
 */
#ifndef RG_UNIT_H
#define RG_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define CHECK_INT(label, got, want) do { \
        long long got_ = (long long)(got), want_ = (long long)(want); \
        if (got_ != want_) \
            fail_msg("case '%s': %s = %lld, want %lld", (label), #got, got_, want_); \
    } while (0)

#define CHECK_U64(label, got, want) do { \
        unsigned long long got_ = (unsigned long long)(got), want_ = (unsigned long long)(want); \
        if (got_ != want_) \
            fail_msg("case '%s': %s = %llu, want %llu", (label), #got, got_, want_); \
    } while (0)

#define CHECK_STR(label, got, want) do { \
        const char *got_ = (got), *want_ = (want); \
        if (strcmp(got_, want_) != 0) \
            fail_msg("case '%s': %s = \"%s\", want \"%s\"", (label), #got, got_, want_); \
    } while (0)

/* want must occur in got */
#define CHECK_HAS(label, got, want) do { \
        const char *got_ = (got), *want_ = (want); \
        if (strstr(got_, want_) == NULL) \
            fail_msg("case '%s': %s = \"%s\", want it to contain \"%s\"", (label), #got, \
                     got_, want_); \
    } while (0)

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#endif
