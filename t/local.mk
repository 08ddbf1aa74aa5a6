# t/ - tests.  Each area keeps its own fragment.
EXTRA_DIST += t/lib.sh
include t/unit/local.mk
include t/engine/local.mk
include t/transcript/local.mk
include t/cli/local.mk
include t/integration/local.mk
include t/milter/local.mk
include t/exim/local.mk
include t/bounce/local.mk
include t/detect/local.mk
include t/webhookd/local.mk
