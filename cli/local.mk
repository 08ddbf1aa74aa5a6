# cli/ - relayguard, the admin command line.
bin_PROGRAMS += cli/relayguard
cli_relayguard_SOURCES = cli/main.c cli/bounce.c
# relayguard bounce --lmtp: the bounce loop as a resident LMTP server (libevent)
cli_relayguard_SOURCES += cli/bounce_loop.h cli/lmtp.c
# relayguard account resume: compromised-account detection (policy/detect_store.h)
cli_relayguard_SOURCES += cli/detect.c
# relayguard webhooks: the queues of relayguard-webhookd (webhookd/whq.c)
cli_relayguard_SOURCES += cli/webhooks.h cli/webhooks.c webhookd/whq.h webhookd/whq.c
cli_relayguard_CPPFLAGS = $(AM_CPPFLAGS) -DRG_VERSION='"$(PACKAGE_VERSION)"'
cli_relayguard_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS) $(LIBEVENT_CFLAGS)
cli_relayguard_CPPFLAGS += -I$(top_srcdir)/webhookd
cli_relayguard_LDADD = policy/librgbounce.la policy/librgpolicy.la
dist_man_MANS += man/relayguard.1 man/relayguard.conf.5
