#!/usr/bin/env bash
# run-campaign.sh — run the libFuzzer targets that `make fuzz` built (CMake VIGIL_FUZZ=ON, clang;
# vigil_fuzz_target in the top-level CMakeLists.txt), one after another, and say what they found.
#
#   tests/fuzz/run-campaign.sh [BUILD_DIR] [TARGET...]     (default: build-fuzz, every target)
#
# Each target fuzz_NAME starts from its seed corpus tests/fuzz/corpus/NAME, copied into a scratch
# corpus BUILD_DIR/fuzz-corpus/fuzz_NAME (inputs found there are kept for the next campaign; the
# seeds in the tree are never written). A crash, leak, timeout or out-of-memory input is saved
# under BUILD_DIR/crashes/fuzz_NAME/ (reproduce: BUILD_DIR/fuzz/fuzz_NAME FILE).
#
# Environment:
#   FUZZ_SECONDS  time per target (default 60)
#   FUZZ_TIMEOUT  seconds one input may take before it counts as a hang (default 10)
#   FUZZ_RSS_MB   memory limit per target (default 2048)
#   FUZZ_FRESH=1  start from the seeds only (empty the scratch corpus first)
#   FUZZ_ARGS     extra libFuzzer flags (e.g. "-jobs=2 -workers=2")
#
# Exit: 0 nothing found, 1 a target crashed (or failed to run), 2 usage / nothing built.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build-fuzz}
[ $# -gt 0 ] && shift
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SECONDS_EACH=${FUZZ_SECONDS:-60}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS=${FUZZ_RSS_MB:-2048}

if [ ! -d "$BUILD/fuzz" ]; then
	echo "run-campaign: no libFuzzer binaries in '$BUILD/fuzz': build them with 'make fuzz'" \
		"(cmake -DVIGIL_FUZZ=ON -DCMAKE_C_COMPILER=clang)" >&2
	exit 2
fi
if [ $# -gt 0 ]; then
	targets=("$@")
else
	targets=()
	for f in "$BUILD"/fuzz/fuzz_*; do
		[ -x "$f" ] && targets+=("$(basename "$f")")
	done
fi
if [ ${#targets[@]} -eq 0 ]; then
	echo "run-campaign: no fuzz_* executables in '$BUILD/fuzz'" >&2
	exit 2
fi

echo "run-campaign: ${#targets[@]} targets, ${SECONDS_EACH}s each, logs in $BUILD/fuzz-logs/"
mkdir -p "$BUILD/fuzz-logs"
summary=()
failed=0
for t in "${targets[@]}"; do
	bin=$BUILD/fuzz/$t
	seeds=$ROOT/tests/fuzz/corpus/${t#fuzz_}
	corpus=$BUILD/fuzz-corpus/$t
	crashes=$BUILD/crashes/$t
	log=$BUILD/fuzz-logs/$t.log
	if [ ! -x "$bin" ]; then
		summary+=("$(printf '%-18s %-8s %s' "$t" MISSING "no executable $bin")")
		failed=1
		continue
	fi
	[ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$corpus"
	mkdir -p "$corpus" "$crashes"
	if [ -d "$seeds" ]; then
		cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
	else
		echo "run-campaign: $t: no seed corpus '$seeds', starting empty" >&2
	fi
	before=$(find "$crashes" -type f | wc -l)
	start_n=$(find "$corpus" -type f | wc -l)
	echo "== $t: ${SECONDS_EACH}s, corpus $start_n inputs"
	# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
	"$bin" "$corpus" -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -rss_limit_mb="$RSS" \
		-artifact_prefix="$crashes/" -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1
	rc=$?
	after=$(find "$crashes" -type f | wc -l)
	end_n=$(find "$corpus" -type f | wc -l)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	found=$((after - before))
	if [ $rc -ne 0 ] || [ $found -gt 0 ]; then
		status=CRASH
		failed=1
		why=$(grep -m1 -E '^==[0-9]+==ERROR|^SUMMARY|deadly signal|Timeout|out-of-memory' "$log")
		echo "   $t: exit $rc, $found new file(s) in $crashes: ${why:-see $log}"
		tail -n 30 "$log" | sed 's/^/   | /'
	else
		status=ok
	fi
	summary+=("$(printf '%-18s %-8s %10s execs  corpus %5d -> %-5d  crashes %d' \
		"$t" "$status" "${execs:-?}" "$start_n" "$end_n" "$found")")
done

echo
echo "================ fuzz campaign summary (${SECONDS_EACH}s per target) ================"
printf '%s\n' "${summary[@]}"
if [ $failed -ne 0 ]; then
	echo "run-campaign: FAILED: inputs under $BUILD/crashes/ (reproduce: $BUILD/fuzz/TARGET FILE)"
	exit 1
fi
echo "run-campaign: no crash"
