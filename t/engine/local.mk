# t/engine - the engine with decide.lua on a real Redis.
# The fixture (engine, store, test clock, Redis connection) shared by the
# engine's cmocka programs here and in t/bounce.
ENGINE_FIXTURE = t/engine/fixture.c t/engine/fixture.h
check_PROGRAMS += t/engine/test_engine
t_engine_test_engine_SOURCES = t/engine/test_engine.c $(ENGINE_FIXTURE)
t_engine_test_engine_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(HIREDIS_CFLAGS)
t_engine_test_engine_LDADD = policy/librgpolicy.la $(CMOCKA_LIBS) $(HIREDIS_LIBS)
TESTS += t/engine/engine.sh
EXTRA_DIST += t/engine/engine.sh
# rg_engine_new_lazy: only the accounts a request needs (store load_some)
check_PROGRAMS += t/engine/test_lazy
t_engine_test_lazy_SOURCES = t/engine/test_lazy.c $(ENGINE_FIXTURE)
t_engine_test_lazy_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(HIREDIS_CFLAGS) $(OPENSSL_CFLAGS)
t_engine_test_lazy_LDADD = policy/librgpolicy.la $(CMOCKA_LIBS) $(HIREDIS_LIBS) $(OPENSSL_LIBS)
TESTS += t/engine/lazy.sh
EXTRA_DIST += t/engine/lazy.sh
