# t/milter - relayguard-milter tests (issue 3): DKIM signatures against two
# verifiers, miltertest scripts for every callback, real Postfix and Sendmail,
# the milter killed under load.
if BUILD_MILTER
check_PROGRAMS += t/milter/dkim_sign
t_milter_dkim_sign_SOURCES = t/milter/dkim_sign.c
t_milter_dkim_sign_LDADD = policy/librgpolicy.la
# the milter protocol codec (cmocka)
check_PROGRAMS += t/milter/test_proto
t_milter_test_proto_SOURCES = t/milter/test_proto.c milter/proto.c
t_milter_test_proto_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/milter -I$(top_srcdir)/t/unit
t_milter_test_proto_LDADD = policy/librgpolicy.la $(CMOCKA_LIBS)
TESTS += t/milter/test_proto
TESTS += t/milter/dkim.sh t/milter/callbacks.sh t/milter/postfix.sh t/milter/kill.sh \
	t/milter/sendmail.sh t/milter/local.sh t/milter/wire.sh
endif
EXTRA_DIST += t/milter/common.sh t/milter/dkimverify.py t/milter/wire.sh t/milter/wire.py t/milter/dkim.sh t/milter/callbacks.sh \
	t/milter/postfix.sh t/milter/kill.sh t/milter/sendmail.sh t/milter/local.sh \
	t/milter/lua/lib.lua t/milter/lua/accept.lua t/milter/lua/refusals.lua \
	t/milter/lua/notours.lua t/milter/lua/malformed.lua t/milter/lua/nonsmtp.lua

# local submission through relayguard-sendmail (issue 3, localsub.h).  The
# wrapper is tested set-group-id, where it must ignore RELAYGUARD_CONF: this
# copy reads its configuration from a fixed path in the build tree instead.
if BUILD_MILTER
check_PROGRAMS += t/milter/relayguard-sendmail-fixed
t_milter_relayguard_sendmail_fixed_SOURCES = submit/sendmail.c
t_milter_relayguard_sendmail_fixed_CPPFLAGS = $(AM_CPPFLAGS) \
	-DRG_SENDMAIL_CONFIG='"$(abs_top_builddir)/t/milter/local-sendmail.conf"'
t_milter_relayguard_sendmail_fixed_LDADD = policy/librgpolicy.la
TESTS += t/milter/local-postfix.sh t/milter/local-sendmail.sh
endif
EXTRA_DIST += t/milter/local-postfix.sh t/milter/local-sendmail.sh
CLEANFILES += t/milter/local-sendmail.conf t/milter/local-sendmail.lock
