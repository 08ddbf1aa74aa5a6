# milter/ - relayguard-milter (issue 3): checks, header policy, DKIM signing.
if BUILD_MILTER
sbin_PROGRAMS += milter/relayguard-milter
milter_relayguard_milter_SOURCES = milter/main.c milter/filter.c milter/filter.h \
	milter/tcp.c milter/tcp.h
milter_relayguard_milter_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
milter_relayguard_milter_LDADD = policy/librgmetricshttp.la policy/librgpolicy.la $(MILTER_LIBS)
dist_man_MANS += man/relayguard-milter.8
endif
