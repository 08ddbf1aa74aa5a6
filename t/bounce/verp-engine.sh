#!/bin/bash
# t/bounce/verp-engine.sh - the managed return path at end of message
# (engine + store against a real Redis): runs the cmocka program
# test_verp_eom with REDIS_PORT set.  TAP comes from cmocka.
. "${top_srcdir:-$(dirname "$0")/../..}/t/lib.sh"
rg_tmpdir
rg_start_redis
export REDIS_PORT
CMOCKA_MESSAGE_OUTPUT=TAP "$top_builddir/t/bounce/test_verp_eom"
