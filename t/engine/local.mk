# t/engine - the engine with decide.lua on a real Redis.
check_PROGRAMS += t/engine/test_engine
t_engine_test_engine_SOURCES = t/engine/test_engine.c
t_engine_test_engine_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(HIREDIS_CFLAGS)
t_engine_test_engine_LDADD = policy/librgpolicy.la $(CMOCKA_LIBS) $(HIREDIS_LIBS)
TESTS += t/engine/engine.sh
EXTRA_DIST += t/engine/engine.sh
