/*
 * bounce-parse - parse and classify messages in a loop, in-process: the
 * cost of rg_bounce_parse() (GMime + the classification table) without
 * process start, config or Redis.  bench/run-bounce.sh runs it.
 *
 *   bounce-parse SECONDS FILE...     prints "FILE parses/s" and the total
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounce.h"

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bounce-parse SECONDS FILE...\n");
        return 2;
    }
    double secs = atof(argv[1]) / (argc - 2);
    unsigned long total = 0;
    double total_t = 0;
    rg_bounce_report *r = malloc(sizeof *r);
    char err[256];

    for (int i = 2; i < argc; i++) {
        size_t len;
        char *data = slurp(argv[i], &len);
        if (data == NULL) {
            fprintf(stderr, "%s: cannot read\n", argv[i]);
            return 1;
        }
        rg_bounce_parse(data, len, r, err, sizeof err);    /* warm up (GMime init) */
        unsigned long n = 0;
        double t0 = now_s(), t;
        do {
            for (int k = 0; k < 100; k++)
                rg_bounce_parse(data, len, r, err, sizeof err);
            n += 100;
            t = now_s() - t0;
        } while (t < secs);
        printf("%-40s %8.0f parses/s  %6.1f us  class %s\n", strrchr(argv[i], '/') ?
               strrchr(argv[i], '/') + 1 : argv[i], n / t, t / n * 1e6,
               rg_bounce_class_name(r->cls));
        total += n;
        total_t += t;
        free(data);
    }
    printf("%-40s %8.0f parses/s  %6.1f us\n", "all", total / total_t, total_t / total * 1e6);
    free(r);
    return 0;
}
