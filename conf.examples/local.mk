# conf.examples/ - installed as documentation examples ($(docdir)/examples).
dist_examples_DATA += \
	conf.examples/relayguard.conf \
	conf.examples/accounts.conf \
	conf.examples/postfix-main.cf \
	conf.examples/postfix-master.cf \
	conf.examples/relayguard-policyd.service
# relayguard-milter (issue 3)
dist_examples_DATA += \
	conf.examples/postfix-milter.cf \
	conf.examples/sendmail.mc \
	conf.examples/relayguard-milter.service \
	conf.examples/opendkim-migration.txt
# relayguard-sendmail, local submission (issue 3)
dist_examples_DATA += conf.examples/php-sendmail.ini
# relayguard-exim.so (issue 4), installed in examples/exim
eximexamplesdir = $(examplesdir)/exim
dist_eximexamples_DATA = \
	conf.examples/exim/main.conf \
	conf.examples/exim/acls.conf \
	conf.examples/exim/transport.conf \
	conf.examples/exim/cpanel.txt \
	conf.examples/exim/bounce.conf
# the bounce loop as a resident LMTP server (issue 6)
dist_examples_DATA += conf.examples/relayguard-bounce.service
