# bench/ - benchmarks (not part of make check).
#
# bench/policy-load is a load generator for the Postfix policy protocol; it is
# built with the tree (so it does not rot) but never installed or run by
# make check.  The benchmarks themselves are scripts, run by hand:
#   bench/run-policy.sh   relayguard-policyd vs postfwd vs policyd-rate-limit
#   bench/run-import.sh   relayguard suppress import of 1,000,000 rows
# Results and exact commands: BENCHMARKS.md.
noinst_PROGRAMS += bench/policy-load
bench_policy_load_SOURCES = bench/policy-load.c
bench_policy_load_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
bench_policy_load_LDADD = $(LIBEVENT_LIBS)

EXTRA_DIST += bench/common.sh bench/run-policy.sh bench/run-import.sh bench/run-milter.sh

# bench/bounce-parse: rg_bounce_parse() in a loop (bench/run-bounce.sh)
noinst_PROGRAMS += bench/bounce-parse
bench_bounce_parse_SOURCES = bench/bounce-parse.c
bench_bounce_parse_LDADD = policy/librgbounce.la policy/librgpolicy.la
EXTRA_DIST += bench/run-bounce.sh
# Exim: relayguard-exim.so against Exim alone and Exim's ratelimit (issue 4)
EXTRA_DIST += bench/run-exim.sh
