#!/usr/bin/env bash
# bench/gpu/run.sh OUT — everything measured on a GPU machine, in one call (read-only NVML):
#   1. scripts/gpu-check.sh: the backend contract test against the real NVML and vigild's
#      readings against nvidia-smi;
#   2. bench/gpu/compare.py: vigild (and a baseline build, when given) against the bare NVML
#      loop (the floor), side by side in one run: CPU, RSS, idle wake-ups, scrape latency.
# Environment: VIGIL_BUILD_DIR (default build/), VIGILD_BASELINE (an older build dir, optional),
# ONLY=vigild,floor to skip the nvidia-smi/pynvml exporters, WINDOW, IDLE, SCRAPES.
# Binaries built on Debian 12 run on the GPU machine with the Debian runtime libraries it lacks
# unpacked under .devlibs/root (LD_LIBRARY_PATH is set here when that directory exists).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: bench/gpu/run.sh OUT}
mkdir -p "$OUT"
BUILD=${VIGIL_BUILD_DIR:-build}
if [ -d .devlibs/root/usr/lib/x86_64-linux-gnu ]; then
	export LD_LIBRARY_PATH=$PWD/.devlibs/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
nvidia-smi --query-gpu=name,driver_version,pci.bus_id,power.limit --format=csv | tee "$OUT/gpu.csv"
echo "== gpu-check"
scripts/gpu-check.sh "$BUILD" "$OUT/gpu-check" > "$OUT/gpu-check.log" 2>&1
echo "gpu-check rc=$?"; tail -n 25 "$OUT/gpu-check.log"
echo "== compare"
VIGIL_BUILD_DIR=$BUILD python3 bench/gpu/compare.py "$OUT/compare" 2>&1 | tail -n 80
