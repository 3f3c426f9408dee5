#!/usr/bin/env bash
# gpu-check.sh — validate Vigil on a machine with NVIDIA GPUs, READ-ONLY (no clocks, limits,
# persistence, ECC, MIG or reset are ever changed):
#   1. the backend contract test against the real libnvidia-ml.so.1
#   2. vigild on the real GPUs, its readings compared with `nvidia-smi --query-gpu`
#      (temperature ±2 C, power ±10 %, memory used ±1 % of the GPU's memory)
#   3. which fields each GPU supports, and what a fast-tier sweep costs per GPU
# usage: scripts/gpu-check.sh [BUILD_DIR] [OUT_DIR]
# BUILD_DIR defaults to ./build (built here if it is missing and the build dependencies exist).
# Exit: 0 pass, 1 a check failed, 77 no GPU on this machine.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-gpu-check-out}
mkdir -p "$OUT"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
	echo "gpu-check: no NVIDIA GPU here (nvidia-smi fails): skipped"
	exit 77
fi
if [ ! -x "$BUILD/bin/vigild" ]; then
	echo "gpu-check: building into $BUILD"
	cmake -S . -B "$BUILD" >/dev/null && cmake --build "$BUILD" -j"$(nproc)" >/dev/null || exit 1
fi

fail=0
nvidia-smi -L | tee "$OUT/nvidia-smi-L.txt"
nvidia-smi --query-gpu=driver_version,name,pci.bus_id,vbios_version --format=csv | tee "$OUT/nvidia-smi-identity.csv"

echo "== 1. backend contract test against the real NVML"
VIGIL_CONTRACT_NVML=real VIGIL_SOURCE_DIR=$PWD VIGIL_BUILD_DIR=$BUILD \
	"$BUILD/tests/test_backend_contract" >"$OUT/contract.log" 2>&1
rc=$?
tail -n 15 "$OUT/contract.log"
if [ $rc -ne 0 ]; then echo "gpu-check: contract test FAILED (rc $rc)"; fail=1; fi

echo "== 2. vigild on the real GPUs versus nvidia-smi"
data=$(mktemp -d)
"$BUILD/bin/vigild" --listen 127.0.0.1:0 --socket "" --data-dir "$data" >"$OUT/vigild.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$data/vigild.addr" ] && break; sleep 0.1; done
url=$(cat "$data/vigild.addr" 2>/dev/null)
if [ -z "$url" ]; then
	echo "gpu-check: vigild did not start:"; cat "$OUT/vigild.log"; exit 1
fi
python3 scripts/compare-nvidia-smi.py "$url" "$pid" "$OUT" || fail=1
kill -TERM "$pid"; wait "$pid"
rm -rf "$data"
[ $fail -eq 0 ] && echo "gpu-check: PASS" || echo "gpu-check: FAIL"
exit $fail
