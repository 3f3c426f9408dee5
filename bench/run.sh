#!/usr/bin/env bash
# bench/run.sh — the CPU-machine benchmarks of Vigil (what `make bench` runs).
#
#   bench/run.sh [--quick] [--only LIST] [--out DIR]
#
#   LIST   comma-separated subset of: cache,cost,timings,scrape,rss,memory,soak,kill9 (default: all)
#   --quick  short smoke versions (a minute or two in all); the numbers are NOT valid against
#            the targets (windows shorter than the 60 s the targets ask for, rings not filled).
#   --out    where the JSON results and logs go (default: build/bench-results/DATE)
#
# Order: cache (bench_cache, deterministic), cost (agent CPU vs NVML floor, sweep, startup),
# scrape (wrk vigild vs node_exporter, side by side), rss (idle RSS at one GPU, ~1 min) run one
# after another on a quiet machine;
# then memory (1 h history fill, light) and soak (10 min) run together: neither measures CPU.
# Default total ~17 min. Builds nothing: run `make build` first (`make bench` does).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BUILD=${VIGIL_BUILD_DIR:-$SRC/build}
QUICK=0
ONLY=cache,cost,timings,scrape,rss,memory,soak,kill9
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY=$2; shift ;;
    --only=*) ONLY=${1#--only=} ;;
    --out) OUT=$2; shift ;;
    --out=*) OUT=${1#--out=} ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
for f in "$BUILD/bin/vigild" "$BUILD/lib/libvigil-fakenvml.so" "$BUILD/bench/bench_cache" \
         "$BUILD/bench/libvigil-heapmap.so"; do
  [ -x "$f" ] || [ -f "$f" ] || { echo "run.sh: $f missing: run 'make build' first" >&2; exit 1; }
done
export VIGIL_BUILD_DIR=$BUILD
OUT=${OUT:-$BUILD/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
want() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

{
  echo "machine: nproc=$(nproc) cpu='$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')' kernel=$(uname -r)"
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "command: bench/run.sh $([ $QUICK = 1 ] && echo --quick) --only $ONLY"
} | tee "$OUT/machine.txt"

if [ $QUICK = 1 ]; then
  COST="--windows 1 --window 10 --warmup 3 --sweep-seconds 5 --starts 2"
  SCRAPE="--rounds 1 --seconds 3"
  MEM="--duration 60 --ref-duration 30"
  SOAK="--duration 60 --every 5 --warmup 20"
else
  COST="--windows 3 --window 60 --warmup 12 --sweep-seconds 30 --starts 5"
  SCRAPE="--rounds 3 --seconds 10"
  MEM="--duration 420 --ref-duration 120"
  SOAK="--duration 600 --every 10 --warmup 60"
fi

cd "$HERE"
if want cache; then
  echo "== cache: $BUILD/bench/bench_cache $SRC/tests/data/h200-10hz-load.csv"
  "$BUILD/bench/bench_cache" "$SRC/tests/data/h200-10hz-load.csv" | tee "$OUT/cache.txt"
fi
if want cost; then
  echo "== cost: python3 bench/agent_cost.py $COST"
  python3 agent_cost.py $COST --json "$OUT/agent_cost.json" | tee "$OUT/agent_cost.log"
fi
if want timings; then
  # the latencies the pass/fail tests no longer assert (bench/timings.py says which)
  echo "== timings: python3 bench/timings.py"
  python3 timings.py --json "$OUT/timings.json" | tee "$OUT/timings.log"
fi
if want kill9; then
  # the kill -9 loop with a concurrent reader, 200 iterations (make test runs 50)
  echo "== kill9: python3 tests/integ/test_state.py --bench test_kill9_with_concurrent_reader"
  VIGIL_SOURCE_DIR=$SRC python3 "$SRC/tests/integ/test_state.py" --bench test_kill9_with_concurrent_reader \
    | tee "$OUT/kill9.log"
fi
if want scrape; then
  echo "== scrape: python3 bench/scrape.py $SCRAPE"
  python3 scrape.py $SCRAPE --json "$OUT/scrape.json" | tee "$OUT/scrape.log"
fi
if want rss; then
  # idle RSS at one GPU per mapping, the heap by allocating function, each library's load cost
  echo "== rss: python3 bench/rss_idle.py --runs 3 --heap --load-floor"
  python3 rss_idle.py --runs 3 --heap --load-floor --json "$OUT/rss_idle.json" | tee "$OUT/rss_idle.log"
fi
pids=()
if want memory; then
  echo "== memory (background): python3 bench/memory.py $MEM"
  python3 memory.py $MEM --json "$OUT/memory.json" >"$OUT/memory.log" 2>&1 &
  pids+=($!)
fi
if want soak; then
  echo "== soak (background): python3 bench/soak.py $SOAK"
  python3 soak.py $SOAK --json "$OUT/soak.json" >"$OUT/soak.log" 2>&1 &
  pids+=($!)
fi
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
want memory && tail -n 1 "$OUT/memory.log"
want soak && tail -n 1 "$OUT/soak.log"

echo
echo "================ summary ($OUT) ================"
cat "$OUT/machine.txt"
want cache && grep -E "compressed bytes|push" "$OUT/cache.txt" | head -2 | sed 's/^ */CACHE 1 Hz hour: /'
grep -h -E "^(AGENT_COST|SWEEP|STARTUP|TIMING|SCRAPE|MEMORY|SOAK)" "$OUT"/*.log 2>/dev/null || true
[ $QUICK = 1 ] && echo "(--quick: smoke numbers only, not valid against the targets)"
exit $rc
