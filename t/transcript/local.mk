# t/transcript tests: relayguard-policyd's protocol, unit-level (test_proto)
# and over a socket against a live daemon and Redis (run.sh diffs *.in
# requests against *.ref replies).
check_PROGRAMS += t/transcript/test_proto
t_transcript_test_proto_SOURCES = t/transcript/test_proto.c \
	postfix-policyd/proto.h postfix-policyd/proto.c
t_transcript_test_proto_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/postfix-policyd
t_transcript_test_proto_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
t_transcript_test_proto_LDADD = $(CMOCKA_LIBS)

TESTS += t/transcript/test_proto t/transcript/run.sh
EXTRA_DIST += t/transcript/run.sh t/transcript/client.py t/transcript/accounts.conf \
	$(TRANSCRIPT_CASES)
TRANSCRIPT_CASES = \
	t/transcript/accepted.in t/transcript/accepted.ref \
	t/transcript/foreign-domain.in t/transcript/foreign-domain.ref \
	t/transcript/network.in t/transcript/network.ref \
	t/transcript/unknown-login.in t/transcript/unknown-login.ref \
	t/transcript/suppressed.in t/transcript/suppressed.ref \
	t/transcript/rate-limit.in t/transcript/rate-limit.ref \
	t/transcript/eom-charge.in t/transcript/eom-charge.ref \
	t/transcript/not-checked.in t/transcript/not-checked.ref \
	t/transcript/bad-request.in t/transcript/bad-request.ref \
	t/transcript/pipelined.in t/transcript/pipelined.ref
