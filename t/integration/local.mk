# t/integration tests: real Redis, Postfix (SASL), relayguard-policyd, swaks
# and smtp-sink on loopback ports, each test in its own private folder.
TESTS += \
	t/integration/features.sh \
	t/integration/limits.sh \
	t/integration/cluster.sh \
	t/integration/store-failure.sh \
	t/integration/examples.sh
EXTRA_DIST += \
	t/integration/features.sh \
	t/integration/limits.sh \
	t/integration/cluster.sh \
	t/integration/store-failure.sh \
	t/integration/examples.sh \
	t/integration/mkmmdb.pl

# relayguard-policyd's Prometheus endpoint
TESTS += t/integration/metrics.sh
EXTRA_DIST += t/integration/metrics.sh

# decide.lua as a Redis function: FCALL, FUNCTION FLUSH, an ACL user without it
TESTS += t/integration/functions.sh
EXTRA_DIST += t/integration/functions.sh

# relayguard-policyd against bad input, reload and drain
TESTS += t/integration/policyd-badinput.sh
EXTRA_DIST += t/integration/policyd-badinput.sh
