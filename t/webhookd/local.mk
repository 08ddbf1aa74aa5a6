# t/webhookd - relayguard-webhookd against a real HTTP receiver on loopback
# (receiver.py), real Redis, and events written by the real engine through
# relayguard-policyd (policy.py).
WEBHOOKD_TESTS = \
	t/webhookd/config.sh \
	t/webhookd/deliver.sh \
	t/webhookd/retry.sh \
	t/webhookd/two.sh \
	t/webhookd/lost.sh
TESTS += $(WEBHOOKD_TESTS)
EXTRA_DIST += $(WEBHOOKD_TESTS) t/webhookd/common.sh t/webhookd/receiver.py t/webhookd/policy.py

# cmocka: event types and patterns, an event as JSON, the signature
check_PROGRAMS += t/webhookd/test_whq
TESTS += t/webhookd/test_whq
t_webhookd_test_whq_SOURCES = t/webhookd/test_whq.c webhookd/whq.h webhookd/whq.c
t_webhookd_test_whq_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/webhookd
t_webhookd_test_whq_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(HIREDIS_CFLAGS) $(OPENSSL_CFLAGS)
t_webhookd_test_whq_LDADD = policy/librgpolicy.la $(CMOCKA_LIBS) $(HIREDIS_LIBS) $(OPENSSL_LIBS)
