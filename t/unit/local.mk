# t/unit tests: cmocka programs, TAP via CMOCKA_MESSAGE_OUTPUT.  test_geoip
# runs t/unit/make-mmdb.pl (Perl MaxMind::DB::Writer) to build its database.
UNIT_LDADD = policy/librgpolicy.la $(CMOCKA_LIBS)
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)

check_PROGRAMS += t/unit/test_limit t/unit/test_match t/unit/test_conf \
	t/unit/test_account t/unit/test_geoip
TESTS += t/unit/test_limit t/unit/test_match t/unit/test_conf \
	t/unit/test_account t/unit/test_geoip
EXTRA_DIST += t/unit/make-mmdb.pl t/unit/unit.h

t_unit_test_limit_SOURCES = t/unit/test_limit.c
t_unit_test_limit_CFLAGS = $(UNIT_CFLAGS)
t_unit_test_limit_LDADD = $(UNIT_LDADD)

t_unit_test_match_SOURCES = t/unit/test_match.c
t_unit_test_match_CFLAGS = $(UNIT_CFLAGS)
t_unit_test_match_LDADD = $(UNIT_LDADD)

t_unit_test_conf_SOURCES = t/unit/test_conf.c
t_unit_test_conf_CFLAGS = $(UNIT_CFLAGS)
t_unit_test_conf_LDADD = $(UNIT_LDADD)

t_unit_test_account_SOURCES = t/unit/test_account.c
t_unit_test_account_CFLAGS = $(UNIT_CFLAGS)
t_unit_test_account_LDADD = $(UNIT_LDADD)

t_unit_test_geoip_SOURCES = t/unit/test_geoip.c
t_unit_test_geoip_CFLAGS = $(UNIT_CFLAGS)
t_unit_test_geoip_LDADD = $(UNIT_LDADD)

# return-path tokens (issue 6)
check_PROGRAMS += t/unit/test_verp
TESTS += t/unit/test_verp
t_unit_test_verp_SOURCES = t/unit/test_verp.c
t_unit_test_verp_CFLAGS = $(UNIT_CFLAGS)
t_unit_test_verp_LDADD = $(UNIT_LDADD)

# the metrics counters and their Prometheus text (issue 5)
check_PROGRAMS += t/unit/test_metrics
TESTS += t/unit/test_metrics
t_unit_test_metrics_SOURCES = t/unit/test_metrics.c
t_unit_test_metrics_CFLAGS = $(UNIT_CFLAGS)
t_unit_test_metrics_LDADD = $(UNIT_LDADD)

# compromised-account detection (issue 5): a replayed history, injected clock
check_PROGRAMS += t/unit/test_detect
TESTS += t/unit/test_detect
t_unit_test_detect_SOURCES = t/unit/test_detect.c
t_unit_test_detect_CFLAGS = $(UNIT_CFLAGS)
t_unit_test_detect_LDADD = $(UNIT_LDADD) -lm

# local submission tokens, X-Relayguard-Local (issue 3, policy/localsub.c)
check_PROGRAMS += t/unit/test_localsub
TESTS += t/unit/test_localsub
t_unit_test_localsub_SOURCES = t/unit/test_localsub.c
t_unit_test_localsub_CFLAGS = $(UNIT_CFLAGS)
t_unit_test_localsub_LDADD = $(UNIT_LDADD)
