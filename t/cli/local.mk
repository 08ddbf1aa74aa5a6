# t/cli - relayguard (the admin command line) against a private Redis.
CLI_TESTS = \
	t/cli/usage.sh \
	t/cli/account.sh \
	t/cli/suppress.sh \
	t/cli/limit.sh \
	t/cli/limit-policyd.sh \
	t/cli/events.sh \
	t/cli/stats.sh
TESTS += $(CLI_TESTS)
EXTRA_DIST += t/cli/common.sh $(CLI_TESTS)
