/*
 * clock.c - the system clock, a hand-set clock for tests, monotonic time.
 */
#include <time.h>

#include "clock.h"

static uint64_t
system_now_ms(rg_clock *c)
{
    struct timespec ts;

    (void)c;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The system clock (CLOCK_REALTIME).  Static, never freed. */
rg_clock *
rg_clock_system(void)
{
    static rg_clock sys = { system_now_ms };

    return &sys;
}

static uint64_t
test_now_ms(rg_clock *c)
{
    return ((rg_test_clock *)c)->now;
}

/* A clock that says c->now; tests move it by assigning c->now. */
void
rg_test_clock_init(rg_test_clock *c, uint64_t now_ms)
{
    c->clock.now_ms = test_now_ms;
    c->now = now_ms;
}

/* Monotonic ms (CLOCK_MONOTONIC), for timeouts and latency. */
uint64_t
rg_monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
