# cli/ - relayguard, the admin command line.
bin_PROGRAMS += cli/relayguard
cli_relayguard_SOURCES = cli/main.c
cli_relayguard_CPPFLAGS = $(AM_CPPFLAGS) -DRG_VERSION='"$(PACKAGE_VERSION)"'
cli_relayguard_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS)
cli_relayguard_LDADD = policy/librgpolicy.la
dist_man_MANS += man/relayguard.1 man/relayguard.conf.5
