# webhookd/ - relayguard-webhookd, signed webhooks from the events stream.
sbin_PROGRAMS += webhookd/relayguard-webhookd
webhookd_relayguard_webhookd_SOURCES = \
	webhookd/main.c \
	webhookd/whq.h webhookd/whq.c
webhookd_relayguard_webhookd_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS) $(LIBCURL_CFLAGS) $(OPENSSL_CFLAGS)
webhookd_relayguard_webhookd_LDADD = policy/librgpolicy.la $(LIBCURL_LIBS) $(HIREDIS_LIBS) $(OPENSSL_LIBS)
dist_man_MANS += man/relayguard-webhookd.8
dist_examples_DATA += conf.examples/relayguard-webhookd.service
