# milter/ - relayguard-milter (issue 3): checks, header policy, DKIM signing.
# The milter protocol is relayguard's own (proto.c says why); libmilter-dev
# is needed only for its header of wire constants, <libmilter/mfdef.h>.
if BUILD_MILTER
sbin_PROGRAMS += milter/relayguard-milter
milter_relayguard_milter_SOURCES = milter/main.c milter/filter.c milter/filter.h \
	milter/proto.c milter/proto.h milter/server.c milter/server.h
milter_relayguard_milter_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) -pthread
milter_relayguard_milter_LDADD = policy/librgmetricshttp.la policy/librgpolicy.la -lpthread
dist_man_MANS += man/relayguard-milter.8
endif
