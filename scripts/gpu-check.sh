#!/usr/bin/env bash
# gpu-check.sh — validate Vigil on a machine with NVIDIA GPUs, READ-ONLY (no clocks, limits,
# persistence, ECC, MIG or reset are ever changed):
#   1. the backend contract test against the real libnvidia-ml.so.1
#   2. vigild on the real GPUs, its readings compared with `nvidia-smi --query-gpu`
#      (temperature ±2 C, power ±10 %, memory used ±1 % of the GPU's memory)
#   3. which fields each GPU supports, and what a fast-tier sweep costs per GPU
#   4. NVLink, topology, MIG and the GPM profiling fields: vigil's view next to nvidia-smi's
#      (nvidia-smi nvlink -s, topo -m, mig -lgi: all read-only), and the measured cost of the
#      GPM and NVLink/MIG calls from vigild's self-monitoring (for the tier choice, docs/metrics.md)
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

echo "== 4. NVLink, topology, MIG, GPM (read-only)"
sleep 25 # at least two slow sweeps: GPM intervals, NVLink and MIG read twice
V="$BUILD/bin/vigil --host $url"
$V topo | tee "$OUT/vigil-topo.txt"
nvidia-smi topo -m | tee "$OUT/nvidia-smi-topo.txt"
$V nvlink | tee "$OUT/vigil-nvlink-s.txt"
$V nvlink -i 0 -e >"$OUT/vigil-nvlink-e0.txt"
nvidia-smi nvlink -s >"$OUT/nvidia-smi-nvlink-s.txt" 2>&1 || true
nvidia-smi nvlink -e -i 0 >"$OUT/nvidia-smi-nvlink-e0.txt" 2>&1 || true
curl -s "$url/api/v1/topology" >"$OUT/topology.json"
ngpu=$(nvidia-smi -L | grep -c '^GPU ')
for i in $(seq 0 $((ngpu - 1))); do
	curl -s "$url/api/v1/gpus/$i/nvlink" >"$OUT/nvlink-$i.json"
	curl -s "$url/api/v1/gpus/$i/mig" >"$OUT/mig-$i.json"
done
nvidia-smi --query-gpu=index,mig.mode.current,mig.mode.pending --format=csv | tee "$OUT/nvidia-smi-mig.csv"
nvidia-smi mig -lgi >"$OUT/nvidia-smi-mig-lgi.txt" 2>&1 || true
$V dmon -e 1001,1002,1003,1004,1005,1006,1007,1008,1011,1012 -c 3 -d 1000 | tee "$OUT/vigil-dmon-prof.txt"
python3 - "$OUT" "$ngpu" <<'PY' || fail=1
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
topo = json.load(open(out + "/topology.json"))
ok = len(topo["gpus"]) == n and all(topo["matrix"][i][i]["pcie"] == "X" for i in range(n))
smi = open(out + "/nvidia-smi-nvlink-s.txt").read()
for i in range(n):
    nv = json.load(open("%s/nvlink-%d.json" % (out, i)))
    # nvidia-smi prints one "Link N: <speed>" line per active link, "<inactive>" otherwise
    print("GPU %d: vigil %s, %d links up" % (i, nv["status"], nv["links_up"]))
    if nv["status"] not in ("ok", "not_supported"):
        ok = False
print("topology %s" % ("ok" if ok else "MISMATCH"))
sys.exit(0 if ok else 1)
PY
curl -s "$url/metrics" | grep -E 'vigil_nvml_call(s_total|_duration_seconds_total)\{call="(nvmlGpm|nvmlDeviceGetMigMode|nvmlDeviceGetFieldValues)' \
	| tee "$OUT/gpm-nvlink-mig-costs.txt"
kill -TERM "$pid"; wait "$pid"
rm -rf "$data"
[ $fail -eq 0 ] && echo "gpu-check: PASS" || echo "gpu-check: FAIL"
exit $fail
