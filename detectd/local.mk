# detectd/ - relayguard-detectd, compromised-account detection off the events stream.
sbin_PROGRAMS += detectd/relayguard-detectd
detectd_relayguard_detectd_SOURCES = detectd/main.c
detectd_relayguard_detectd_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS)
detectd_relayguard_detectd_LDADD = policy/librgpolicy.la $(HIREDIS_LIBS)
dist_man_MANS += man/relayguard-detectd.8
dist_examples_DATA += conf.examples/relayguard-detectd.service
