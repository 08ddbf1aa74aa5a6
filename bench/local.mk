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
# the managed return path: bounces = off vs managed behind the milter (issue 6)
EXTRA_DIST += bench/run-verp.sh

# bench/bounce-parse: rg_bounce_parse() in a loop (bench/run-bounce.sh)
noinst_PROGRAMS += bench/bounce-parse
bench_bounce_parse_SOURCES = bench/bounce-parse.c
bench_bounce_parse_LDADD = policy/librgbounce.la policy/librgpolicy.la
EXTRA_DIST += bench/run-bounce.sh
# bench/lmtp-load.py: the LMTP client of run-bounce.sh
EXTRA_DIST += bench/lmtp-load.py
# Redis instructions per decision of policy/decide.lua, by op (callgrind)
EXTRA_DIST += bench/run-script.sh
EXTRA_DIST += bench/run-floor.sh bench/floor/noop.lua bench/floor/bare.lua bench/floor/bare5.lua
# Exim: relayguard-exim.so against Exim alone and Exim's ratelimit (issue 4)
EXTRA_DIST += bench/run-exim.sh
# webhooks: a fast loopback receiver for bench/run-webhook.sh (issue 5)
noinst_PROGRAMS += bench/webhook-sink
bench_webhook_sink_SOURCES = bench/webhook-sink.c
bench_webhook_sink_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(OPENSSL_CFLAGS)
bench_webhook_sink_LDADD = $(LIBEVENT_LIBS) $(OPENSSL_LIBS)
EXTRA_DIST += bench/run-webhook.sh
# libmilter doing nothing: libmilter's own cost per message (bench/run-milter.sh)
if BUILD_MILTER
noinst_PROGRAMS += bench/null-milter
bench_null_milter_SOURCES = bench/null-milter.c
bench_null_milter_LDADD = $(MILTER_LIBS)
# the same filter on relayguard's own protocol code (milter/proto.c, server.c)
noinst_PROGRAMS += bench/null-proto
bench_null_proto_SOURCES = bench/null-proto.c milter/proto.c milter/server.c
bench_null_proto_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/milter -pthread
bench_null_proto_LDADD = policy/librgpolicy.la -lpthread
endif
# compromised-account detection on vs off (issue 5)
EXTRA_DIST += bench/run-detect.sh
# DKIM signing per message without the milter around it (issue 3, BENCHMARKS.md)
if BUILD_MILTER
noinst_PROGRAMS += bench/dkim-sign
bench_dkim_sign_SOURCES = bench/dkim-sign.c
bench_dkim_sign_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
bench_dkim_sign_LDADD = policy/librgpolicy.la $(OPENSSL_LIBS)
endif
