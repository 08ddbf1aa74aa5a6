# exim-dlfunc/ - relayguard-exim.so (issue 4): functions for Exim's ${dlfunc}
# in ACLs (rg_mail, rg_rcpt, rg_data, rg_not_smtp) and in the smtp
# transport's DKIM options (rg_dkim_domain, rg_dkim_selector, rg_dkim_key);
# rg_preload loads it once in the Exim daemon for every connection.
# dlfunc.c alone sees Exim's local_scan.h; module.c does the work.
if BUILD_EXIM
pkglib_LTLIBRARIES += exim-dlfunc/relayguard-exim.la
exim_dlfunc_relayguard_exim_la_SOURCES = exim-dlfunc/dlfunc.c exim-dlfunc/module.c \
	exim-dlfunc/rgexim.h
exim_dlfunc_relayguard_exim_la_CPPFLAGS = $(AM_CPPFLAGS) $(EXIM_CPPFLAGS)
exim_dlfunc_relayguard_exim_la_CFLAGS = $(AM_CFLAGS)
exim_dlfunc_relayguard_exim_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version \
	-export-symbols-regex '^rg_(mail|rcpt|data|not_smtp|dkim_domain|dkim_selector|dkim_key|preload)$$'
exim_dlfunc_relayguard_exim_la_LIBADD = policy/librgpolicy.la
dist_man_MANS += man/relayguard-exim.8
endif
