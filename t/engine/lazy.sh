#!/bin/bash
# rg_engine_new_lazy against a real Redis: runs the cmocka program
# test_lazy with REDIS_PORT set.  TAP comes from cmocka.
. "$top_srcdir/t/lib.sh"
rg_tmpdir
rg_start_redis
export REDIS_PORT
CMOCKA_MESSAGE_OUTPUT=TAP "$top_builddir/t/engine/test_lazy"
