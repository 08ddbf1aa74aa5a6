/*
 * clock.h - the engine's notion of now, injectable for tests.
 */
#ifndef RG_CLOCK_H
#define RG_CLOCK_H

#include <stdint.h>

typedef struct rg_clock rg_clock;
struct rg_clock {
    uint64_t (*now_ms)(rg_clock *c);    /* ms since the Unix epoch, UTC */
};

/* The system clock (CLOCK_REALTIME).  Static, never freed. */
rg_clock *rg_clock_system(void);

/* A clock a test sets by hand.  Static storage is the caller's. */
typedef struct rg_test_clock {
    rg_clock clock;
    uint64_t now;
} rg_test_clock;
void rg_test_clock_init(rg_test_clock *c, uint64_t now_ms);

/* Monotonic ms, for timeouts and latency. */
uint64_t rg_monotonic_ms(void);

#endif
