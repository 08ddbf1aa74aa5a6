# t/bounce - the bounce and complaint loop (issue 6): the classification
# corpus, "relayguard bounce" against a private Redis, and Postfix end to end.
BOUNCE_TESTS = \
	t/bounce/corpus.sh \
	t/bounce/cli.sh \
	t/bounce/postfix.sh
TESTS += $(BOUNCE_TESTS)
EXTRA_DIST += $(BOUNCE_TESTS) t/bounce/corpus
