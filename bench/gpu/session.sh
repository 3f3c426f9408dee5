#!/usr/bin/env bash
# bench/gpu/session.sh PHASE OUT — everything the GPU machine is used for, in two calls that each
# fit the 10-minute limit of one command (read-only NVML throughout; nothing changes a GPU setting):
#   measure   scripts/gpu-check.sh, then bench/gpu/compare.py: the current build with
#             `collection.profiling: auto` (default) and `all`, the baseline build, each twice in
#             turn (A B C A B C), then the bare NVML loop (the floor)        ~8 min
#   cpu       bench/gpu/compare.py alone: VARIANTS (default the current build and the baseline),
#             REPEAT (default 3) times in turn, then the floor                  ~6 min
#   validate  scripts/gpu-diag.sh (levels 1-3, 20 s stress), gpu-workload.sh, gpu-jobs.sh,
#             gpu-config-read.sh, gpu-prof-load.sh                             ~7 min
# The results come back as OUT/PHASE.tgz (and OUT/steps.txt). Builds staged by bench/gpu/stage.sh: BUILD (default .devlibs/gpu/new) and BASELINE (default
# .devlibs/gpu/prev); Debian runtime libraries the machine lacks under .devlibs/root.
# Environment: WINDOW (default 35), IDLE (8), SCRAPES (40), REPEAT (2), DIAG_SECONDS (20).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
PHASE=${1:?usage: bench/gpu/session.sh measure|cpu|validate OUT}
OUT=${2:?usage: bench/gpu/session.sh measure|cpu|validate OUT}
BUILD=${BUILD:-.devlibs/gpu/new}
BASELINE=${BASELINE:-.devlibs/gpu/prev}
mkdir -p "$OUT"
DEST=$(cd "$OUT" && pwd)
# Everything is written under a scratch folder and comes back as one archive, DEST/PHASE.tgz,
# plus DEST/steps.txt (the run tool returns at most 8 files); data directories stay behind.
OUT=$(mktemp -d "/tmp/vigil-gpu-$PHASE.XXXXXX")
pack() { tar czf "$DEST/$PHASE.tgz" -C "$OUT" --exclude='*-data' . && cp "$OUT/steps.txt" "$DEST/" 2>/dev/null; }
trap pack EXIT
LIBS=$PWD/.devlibs/root/usr/lib/x86_64-linux-gnu
[ -d "$LIBS" ] && export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version,pci.bus_id,power.limit,utilization.gpu,memory.used \
	--format=csv | tee "$OUT/gpu.csv"
nvidia-smi --query-compute-apps=pid,used_memory --format=csv >"$OUT/compute-apps.csv" 2>&1
step() { # name command...: run, keep its log and exit code, show the tail
	local name=$1 t0=$SECONDS rc
	shift
	echo "== $name"
	"$@" >"$OUT/$name.log" 2>&1
	rc=$?
	echo "$name rc=$rc (${SECONDS}s total, $((SECONDS - t0))s)" | tee -a "$OUT/steps.txt"
	tail -n 30 "$OUT/$name.log"
}
case $PHASE in
measure)
	step gpu-check scripts/gpu-check.sh "$BUILD" "$OUT/gpu-check"
	step compare env VARIANTS="auto=$BUILD,all=$BUILD@bench/gpu/profiling-all.yaml,baseline=$BASELINE" \
		VIGIL_BUILD_DIR="$BUILD" ONLY=vigild,floor WINDOW="${WINDOW:-35}" IDLE="${IDLE:-8}" \
		SCRAPES="${SCRAPES:-40}" REPEAT="${REPEAT:-2}" python3 bench/gpu/compare.py "$OUT/compare"
	;;
cpu)
	step compare env VARIANTS="${VARIANTS:-auto=$BUILD,baseline=$BASELINE}" \
		VIGIL_BUILD_DIR="$BUILD" ONLY=vigild,floor WINDOW="${WINDOW:-35}" IDLE="${IDLE:-8}" \
		SCRAPES="${SCRAPES:-40}" REPEAT="${REPEAT:-3}" python3 bench/gpu/compare.py "$OUT/compare"
	;;
validate)
	step diag scripts/gpu-diag.sh -b "$BUILD" -L "$LIBS" -o "$OUT/diag" -d "${DIAG_SECONDS:-20}" -l "1 2 3"
	step workload scripts/gpu-workload.sh -b "$BUILD" -L "$LIBS" -o "$OUT/workload" -i 0 -m 4
	step jobs scripts/gpu-jobs.sh -b "$BUILD" -L "$LIBS" -o "$OUT/jobs" -i 0 -d 20
	step config-read scripts/gpu-config-read.sh "$BUILD" "$OUT/config-read"
	step prof-load scripts/gpu-prof-load.sh -b "$BUILD" -L "$LIBS" -o "$OUT/prof-load" -i 0 -d 36
	;;
*)
	echo "bench/gpu/session.sh: unknown phase '$PHASE' (measure, cpu or validate)"
	exit 2
	;;
esac
