# policy/ - the engine, linked into every program as a convenience library.
noinst_LTLIBRARIES += policy/librgpolicy.la
policy_librgpolicy_la_SOURCES = \
	policy/rg.h policy/verdict.c \
	policy/util.h policy/util.c \
	policy/log.h policy/log.c \
	policy/clock.h policy/clock.c \
	policy/conf.h policy/conf.c \
	policy/config.h policy/config.c \
	policy/limit.h policy/limit.c \
	policy/match.h policy/match.c \
	policy/account.h policy/account.c \
	policy/geoip.h policy/geoip.c \
	policy/keys.h policy/keys.c \
	policy/store.h policy/store_redis.c \
	policy/engine.h policy/engine.c \
	policy/admin.h policy/admin.c \
	policy/daemon.h policy/daemon.c \
	policy/dkim.h policy/dkim.c \
	policy/headers.h policy/headers.c \
	policy/metrics.h policy/metrics.c \
	policy/verp.h policy/verp.c \
	policy/detect.h policy/detect.c \
	policy/detect_store.h policy/detect_store.c \
	policy/localsub.h policy/localsub.c
nodist_policy_librgpolicy_la_SOURCES = policy/decide_lua.c
policy_librgpolicy_la_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS) $(LIBEVENT_CFLAGS) \
	$(MAXMINDDB_CFLAGS) $(OPENSSL_CFLAGS) $(SODIUM_CFLAGS)
policy_librgpolicy_la_LIBADD = $(HIREDIS_LIBS) $(LIBEVENT_LIBS) $(MAXMINDDB_LIBS) $(OPENSSL_LIBS) \
	$(SODIUM_LIBS)

# Two parts with heavy libraries live in libraries of their own, linked only
# where they are used: the Exim module is loaded into every Exim process and
# the CLI runs once per bounce, and loading GMime (GLib, GIO, GPGME) or
# libmicrohttpd (GnuTLS) would cost each of them milliseconds.
#   librgbounce       bounce and complaint parsing (GMime): relayguard, bench
#   librgmetricshttp  the Prometheus endpoint (libmicrohttpd): the daemons
noinst_LTLIBRARIES += policy/librgbounce.la policy/librgmetricshttp.la
policy_librgbounce_la_SOURCES = policy/bounce.h policy/bounce.c
policy_librgbounce_la_CFLAGS = $(AM_CFLAGS) $(GMIME_CFLAGS)
policy_librgbounce_la_LIBADD = $(GMIME_LIBS)
policy_librgmetricshttp_la_SOURCES = policy/metrics_http.c
policy_librgmetricshttp_la_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS)
policy_librgmetricshttp_la_LIBADD = $(MHD_LIBS)

# The decision script is kept as Lua source and compiled in as C strings:
# as it is (EVALSHA/EVAL), and as the function library relayguard_SHA16
# (FUNCTION LOAD, FCALL rg_decide_SHA16): its text but the last line
# ("return run(ARGV)") as the body of init(), which the function runs at
# its first call (a library being loaded sees no globals but redis), and
# the registration of a function that runs the batch (decide.lua's header).  The name
# carries the script's SHA-1, so nodes of different versions sharing one
# Redis each find their own.
BUILT_SOURCES += policy/decide_lua.c
CLEANFILES += policy/decide_lua.c
EXTRA_DIST += policy/decide.lua
policy/decide_lua.c: $(top_srcdir)/policy/decide.lua $(top_srcdir)/policy/local.mk
	$(AM_V_GEN)mkdir -p policy && \
	tail -n 1 $(top_srcdir)/policy/decide.lua | grep -qx 'return run(ARGV)' || \
	  { echo "policy/decide.lua must end with the line: return run(ARGV)" >&2; exit 1; }; \
	sha=$$(sed -e '$$a\' $(top_srcdir)/policy/decide.lua | sha1sum | cut -c1-40); \
	short=$$(echo "$$sha" | cut -c1-16); \
	esc() { sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/'; }; \
	{ \
	  echo '/* generated from decide.lua - do not edit */'; \
	  echo 'const char rg_decide_lua[] ='; \
	  esc < $(top_srcdir)/policy/decide.lua; \
	  echo ';'; \
	  echo '/* its SHA-1 for EVALSHA, of the same bytes (a last newline added if missing) */'; \
	  printf 'const char rg_decide_lua_sha1[] = "%s";\n' "$$sha"; \
	  echo '/* the library form, for FUNCTION LOAD, and its function for FCALL */'; \
	  echo 'const char rg_decide_lib[] ='; \
	  printf '"#!lua name=relayguard_%s\\n"\n' "$$short"; \
	  printf '%s\n' '"local run_batch\nlocal function init()\n"'; \
	  sed -e '$$d' $(top_srcdir)/policy/decide.lua | esc; \
	  printf '%s\n' '"run_batch = run\nend\n"'; \
	  printf '"redis.register_function(\047rg_decide_%s\047, function(keys, args)\\n"\n' "$$short"; \
	  printf '%s\n' '"  if not run_batch then init() end\n  return run_batch(args)\nend)\n";'; \
	  printf 'const char rg_decide_fn[] = "rg_decide_%s";\n' "$$short"; \
	  } > $@-t && mv $@-t $@
