# t/detect: compromised-account detection end to end (relayguard-detectd with
# real Redis, relayguard-policyd and a generated .mmdb).  The replayed-history
# unit test is t/unit/test_detect.
TESTS += t/detect/detectd.sh t/detect/reputation.sh t/detect/rounds.sh
EXTRA_DIST += t/detect/detectd.sh t/detect/reputation.sh t/detect/rounds.sh
