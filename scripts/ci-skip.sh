# ci-skip.sh — sourced by the test scripts: `ci_skip REASON [CANNOT]` ends the script as skipped
# (exit 77, ctest SKIP), except under CI (VIGIL_CI=1, set by .ci/run) where a skip fails (exit 1)
# unless CANNOT names something CI cannot have. The list is the same as CI_CANNOT in
# tests/integ/harness.py and docs/testing.md: gpu, container-engine.
ci_skip() {
	local why=$1 cannot=${2:-}
	case $cannot in
	gpu | container-engine)
		echo "SKIP: $why ($cannot: CI cannot have it)"
		exit 77
		;;
	esac
	if [ -n "${VIGIL_CI:-}" ] && [ "${VIGIL_CI}" != 0 ]; then
		echo "FAIL: would skip in CI (VIGIL_CI=1): $why; scripts/install-deps.sh must provide it" >&2
		exit 1
	fi
	echo "SKIP: $why"
	exit 77
}
