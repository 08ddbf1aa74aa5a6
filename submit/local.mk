# submit/ - relayguard-sendmail, the local submission wrapper (localsub.h):
# it marks each message with its unix user before the real sendmail runs.
# It must be set-group-id relayguard to read the local key; "make install"
# does that when run as root and the group exists (relayguard-sendmail(8)
# gives the two commands otherwise), so "make distcheck" passes as any user.
sbin_PROGRAMS += submit/relayguard-sendmail
submit_relayguard_sendmail_SOURCES = submit/sendmail.c
submit_relayguard_sendmail_LDADD = policy/librgpolicy.la
dist_man_MANS += man/relayguard-sendmail.8

RG_SENDMAIL_GROUP = relayguard
install-exec-hook: install-sendmail-setgid
install-sendmail-setgid:
	@f="$(DESTDIR)$(sbindir)/relayguard-sendmail"; \
	if [ "$$(id -u)" = 0 ] && getent group $(RG_SENDMAIL_GROUP) >/dev/null; then \
	  echo " chgrp $(RG_SENDMAIL_GROUP) $$f && chmod 2755 $$f"; \
	  chgrp $(RG_SENDMAIL_GROUP) "$$f" && chmod 2755 "$$f"; \
	else \
	  echo "relayguard-sendmail: not installed set-group-id (needs root and group $(RG_SENDMAIL_GROUP));"; \
	  echo "  run: chgrp $(RG_SENDMAIL_GROUP) $$f && chmod 2755 $$f"; \
	fi
.PHONY: install-sendmail-setgid
