#!/usr/bin/env bash
# gpu-config-read.sh — the GPU configuration reads and the driver-state fields on a machine with
# NVIDIA GPUs, READ-ONLY: nothing here sets a power limit, clock, mode or ECC, and vigild runs with
# an explicit empty configuration (no config.enforce, no policies), its unix socket off and its
# TCP listener on 127.0.0.1 only, where it is read-only without authentication.
#   1. the backend contract test against the real NVML (test_gpu_config reads the configuration and
#      the supported clocks; the setters run on the fake NVML only)
#   2. `vigil config get` (GET /api/v1/gpus/{id}/config) next to `nvidia-smi --query-gpu` for the
#      same settings: power limit, application clocks, compute mode, persistence, ECC current and
#      pending — compared, a mismatch fails
#   3. the new fields: recovery action (1523), InfoROM valid (84), fabric state and health mask
#      (170/174), vGPU license (526) — value or "not supported", as /api/v1/gpus/{id} says — and
#      the health systems driver and inforom
#   4. the measured cost of nvmlDeviceValidateInforom, nvmlDeviceGetGpuFabricInfoV and
#      nvmlDeviceGetGridLicensableFeatures_v4 from vigild's self-monitoring (for docs/metrics.md)
# usage: scripts/gpu-config-read.sh [BUILD_DIR] [OUT_DIR]
# Exit: 0 pass, 1 a check failed, 77 no GPU on this machine.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-gpu-config-out}
mkdir -p "$OUT"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
	echo "gpu-config-read: no NVIDIA GPU here (nvidia-smi fails): skipped"
	exit 77
fi
if [ ! -x "$BUILD/bin/vigild" ] || [ ! -x "$BUILD/tests/test_backend_contract" ]; then
	echo "gpu-config-read: building into $BUILD"
	cmake -S . -B "$BUILD" >/dev/null && cmake --build "$BUILD" -j"$(nproc)" >/dev/null || exit 1
fi
fail=0

echo "== 1. backend contract test against the real NVML (read-only)"
VIGIL_CONTRACT_NVML=real VIGIL_SOURCE_DIR=$PWD VIGIL_BUILD_DIR=$BUILD \
	"$BUILD/tests/test_backend_contract" >"$OUT/contract.log" 2>&1
rc=$?
grep -E "power .* mW|test_gpu_config|RECOVERY_ACTION|INFOROM_VALID|FABRIC|VGPU_LICENSE" "$OUT/contract.log"
tail -n 3 "$OUT/contract.log"
if [ $rc -ne 0 ]; then echo "gpu-config-read: contract test FAILED (rc $rc)"; fail=1; fi

echo "== 2. vigil config get versus nvidia-smi"
data=$(mktemp -d)
: >"$data/empty.yaml" # explicit: never /etc/vigil/vigil.yaml, so no config.enforce
"$BUILD/bin/vigild" --config "$data/empty.yaml" --listen 127.0.0.1:0 --socket "" \
	--data-dir "$data" >"$OUT/vigild.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do [ -s "$data/vigild.addr" ] && break; sleep 0.1; done
url=$(cat "$data/vigild.addr" 2>/dev/null)
if [ -z "$url" ]; then
	echo "gpu-config-read: vigild did not start:"; cat "$OUT/vigild.log"; exit 1
fi
for _ in $(seq 100); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.2; done
V="$BUILD/bin/vigil --host $url"
$V config get | tee "$OUT/vigil-config-get.txt"
$V config get -j >"$OUT/vigil-config-get.json" || fail=1
nvidia-smi --query-gpu=index,power.limit,clocks.applications.memory,clocks.applications.graphics,compute_mode,persistence_mode,ecc.mode.current,ecc.mode.pending \
	--format=csv,noheader,nounits | tee "$OUT/nvidia-smi-config.csv"
python3 - "$OUT/vigil-config-get.json" "$OUT/nvidia-smi-config.csv" <<'EOF' || fail=1
import csv, json, sys
vig = {g["gpu"]: g["settings"] for g in json.load(open(sys.argv[1]))}
modes = {"Default": "default", "Prohibited": "prohibited", "Exclusive_Process": "exclusive_process"}
onoff = {"Enabled": "enabled", "Disabled": "disabled"}
bad = 0
for row in csv.reader(open(sys.argv[2])):
    i, pl, mem, sm, cm, pm, ecc, eccp = [c.strip() for c in row]
    s = vig[int(i)]
    pairs = [
        ("power_limit", s["power_limit"]["current"], None if "N/A" in pl else "%g" % float(pl)),
        ("app_clocks", s["app_clocks"]["current"], None if "N/A" in mem else "%s,%s" % (mem, sm)),
        ("compute_mode", s["compute_mode"]["current"], modes.get(cm)),
        ("persistence", s["persistence"]["current"], onoff.get(pm)),
        ("ecc current", s["ecc"]["current"], onoff.get(ecc)),
        ("ecc pending", s["ecc"].get("pending"), onoff.get(eccp)),
    ]
    for name, v, n in pairs:
        if n is None:  # nvidia-smi says N/A: vigil must not invent a value
            ok = v is None
        elif name == "power_limit":
            ok = v is not None and abs(float(v) - float(n)) <= 1
        else:
            ok = v == n
        print("GPU %s %-12s vigil=%-18s nvidia-smi=%-18s %s" % (i, name, v, n, "ok" if ok else "MISMATCH"))
        bad += not ok
sys.exit(1 if bad else 0)
EOF

echo "== 3. recovery action, InfoROM, fabric, vGPU license; health driver/inforom"
sleep 25 # two slow sweeps: the slow-tier fields are read
n=$(nvidia-smi -L | wc -l)
for ((i = 0; i < n; i++)); do
	curl -s "$url/api/v1/gpus/$i" | python3 -c '
import json, sys
g = json.load(sys.stdin)
for f in g["fields"]:
    if f["name"] in ("GPU_RECOVERY_ACTION", "INFOROM_VALID", "FABRIC_MANAGER_STATUS",
                     "FABRIC_HEALTH_MASK", "VGPU_LICENSE_STATUS"):
        print("GPU %d %-22s %-14s %s" % (g["index"], f["name"], f["status"], f.get("value", "")))
' | tee -a "$OUT/new-fields.txt"
done
curl -s "$url/api/v1/health" | python3 -c '
import json, sys
for g in json.load(sys.stdin)["gpus"]:
    print("GPU %d driver=%s inforom=%s" % (g["index"], g["systems"]["driver"], g["systems"]["inforom"]))
' | tee "$OUT/health-systems.txt"
nvidia-smi -q | grep -iE "recovery|inforom|fabric|license" | sort | uniq -c | tee "$OUT/nvidia-smi-q-grep.txt"

echo "== 4. cost of the new getters (vigild self-monitoring)"
curl -s "$url/metrics" | grep -E '^vigil_nvml_call(s_total|_duration_seconds_total)\{call="(nvmlDeviceValidateInforom|nvmlDeviceGetGpuFabricInfoV|nvmlDeviceGetGridLicensableFeatures_v4|nvmlDeviceGetFieldValues)"' |
	tee "$OUT/new-getter-costs.txt"
echo "gpu-config-read: outputs in $OUT; $([ $fail -eq 0 ] && echo PASS || echo FAIL)"
exit $fail
