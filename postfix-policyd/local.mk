# postfix-policyd/ - relayguard-policyd, the Postfix policy delegation server.
sbin_PROGRAMS += postfix-policyd/relayguard-policyd
postfix_policyd_relayguard_policyd_SOURCES = \
	postfix-policyd/main.c \
	postfix-policyd/server.h postfix-policyd/server.c \
	postfix-policyd/proto.h postfix-policyd/proto.c
postfix_policyd_relayguard_policyd_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS) $(LIBEVENT_CFLAGS)
postfix_policyd_relayguard_policyd_LDADD = policy/librgmetricshttp.la policy/librgpolicy.la $(LIBEVENT_LIBS)
dist_man_MANS += man/relayguard-policyd.8
