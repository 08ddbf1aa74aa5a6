# t/bounce - the bounce and complaint loop (issue 6): the classification
# corpus, "relayguard bounce" against a private Redis, and Postfix end to end.
BOUNCE_TESTS = \
	t/bounce/classify.sh \
	t/bounce/cli.sh \
	t/bounce/postfix.sh \
	t/bounce/verp-engine.sh \
	t/bounce/verp-postfix.sh \
	t/bounce/verp-cli.sh
TESTS += $(BOUNCE_TESTS)
# (the classification test is not named corpus.sh: GNU make's built-in rule
# "%: %.sh" would then make a script t/bounce/corpus over the fixture folder
# in a VPATH build, and make distcheck would ship that instead)
EXTRA_DIST += $(BOUNCE_TESTS) t/bounce/corpus t/bounce/verp-exim.sh
# the managed return path in a real Exim (relayguard-exim.so, t/exim/common.sh)
if BUILD_EXIM
TESTS += t/bounce/verp-exim.sh
endif
# the managed return path at end of message, engine + store on a real Redis
check_PROGRAMS += t/bounce/test_verp_eom
t_bounce_test_verp_eom_SOURCES = t/bounce/test_verp_eom.c $(ENGINE_FIXTURE)
t_bounce_test_verp_eom_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(HIREDIS_CFLAGS) -I$(top_srcdir)/t/engine
t_bounce_test_verp_eom_LDADD = policy/librgpolicy.la $(CMOCKA_LIBS) $(HIREDIS_LIBS)
# the resident receiver: "relayguard bounce --lmtp" (protocol, Postfix's and
# Exim's lmtp transports) and several files or a maildir in one run
BOUNCE_LMTP_TESTS = \
	t/bounce/lmtp.sh \
	t/bounce/lmtp-postfix.sh \
	t/bounce/files.sh
TESTS += $(BOUNCE_LMTP_TESTS)
EXTRA_DIST += $(BOUNCE_LMTP_TESTS) t/bounce/lmtp-exim.sh t/bounce/common.sh t/bounce/lmtp-talk.py
if BUILD_EXIM
TESTS += t/bounce/lmtp-exim.sh
endif
