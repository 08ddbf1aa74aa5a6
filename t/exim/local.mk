# t/exim - relayguard-exim.so in a real Exim (issue 4): every function
# through exim -be, a loopback daemon with swaks, local submission as a
# unix user, DKIM signed by Exim and verified by dkimpy, Redis stopped and
# hung, one limit shared with Postfix.  Exim comes unpacked from Debian's
# exim4-daemon-heavy (t/exim/common.sh).
if BUILD_EXIM
TESTS += t/exim/expand.sh t/exim/smtp.sh t/exim/local.sh t/exim/dkim.sh \
	t/exim/store-failure.sh t/exim/shared-limit.sh t/exim/bounce.sh
endif
EXTRA_DIST += t/exim/common.sh t/exim/expand.sh t/exim/smtp.sh t/exim/local.sh \
	t/exim/dkim.sh t/exim/store-failure.sh t/exim/shared-limit.sh t/exim/bounce.sh
