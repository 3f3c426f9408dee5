#!/usr/bin/env bash
# gpu-workload.sh — check on a real GPU that vigild lists a real CUDA process with its memory and
# utilisation (docs/workloads.md). Read-only NVML; changes no GPU setting.
#   1. starts a PyTorch process on GPU -i (default 0) that allocates -m GiB and runs matmuls
#   2. starts vigild on the real NVML with an isolated data dir (workload.interval 1s)
#   3. waits until `vigil ps --json` lists the PID, then checks:
#        - its GPU memory is within 5 % of what `nvidia-smi --query-compute-apps` reports
#        - it has an SM utilisation sample > 0 (the matmuls keep the SMs busy)
#      and records the owner Vigil found (unit / pod / slurm / docker / none) from its cgroup
# usage: scripts/gpu-workload.sh [-b BUILD_DIR] [-L LIB_DIR] [-o OUT_DIR] [-i GPU] [-m GIB] [-t SECONDS]
#   -b  build directory with bin/vigild, bin/vigil (default ./build)
#   -L  directory of carried libraries (scripts/gpu-workload.sh --collect-libs DIR [BUILD_DIR] on
#       the build machine), given to Vigil's binaries only, not to python3/torch
#   -o  output directory (default ./gpu-workload-out): vigild.log, ps.json, nvidia-smi.csv, verdict
#   -i  GPU index (default 0);  -m  GiB the process allocates (default 4);  -t  timeout (default 90)
# Exit: 0 pass, 1 a check failed, 77 no NVIDIA GPU here.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/gpu-lib.sh
. scripts/gpu-lib.sh
if [ "${1:-}" = "--collect-libs" ]; then
	dir=${2:?usage: gpu-workload.sh --collect-libs DIR [BUILD_DIR]}
	b=${3:-build}
	mkdir -p "$dir"
	ldd "$b/bin/vigild" "$b/bin/vigil" | awk '/=> \//{print $3}' | sort -u |
		grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' |
		while read -r lib; do cp -L "$lib" "$dir/"; done
	echo "gpu-workload: $(ls "$dir" | wc -l) libraries in $dir"
	exit 0
fi
BUILD=build
OUT=gpu-workload-out
GPU=0
GIB=4
TMO=90
LIBS=
while getopts "b:L:o:i:m:t:h" opt; do
	case $opt in
	b) BUILD=$OPTARG ;;
	L) LIBS=$(cd "$OPTARG" && pwd) ;;
	o) OUT=$OPTARG ;;
	i) GPU=$OPTARG ;;
	m) GIB=$OPTARG ;;
	t) TMO=$OPTARG ;;
	*) sed -n '2,17p' "$0"; exit 2 ;;
	esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
need_gpu gpu-workload
for b in vigild vigil; do
	[ -x "$BUILD/bin/$b" ] || { echo "gpu-workload: no $BUILD/bin/$b (build first, or -b)"; exit 1; }
done

data=$(mktemp -d "${TMPDIR:-/tmp}/vigil-gpu-workload.XXXXXX")
torch_pid=""
VPID=""
cleanup() {
	[ -n "$torch_pid" ] && kill "$torch_pid" 2>/dev/null
	[ -n "$VPID" ] && kill "$VPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$data"
}
trap cleanup EXIT

# 1. the CUDA process: allocate, then matmuls until killed
cat >"$data/load.py" <<'EOF'
import os, sys, time
import torch
gpu, gib = int(sys.argv[1]), float(sys.argv[2])
dev = torch.device("cuda", gpu)
keep = torch.empty(int(gib * (1 << 30)), dtype=torch.uint8, device=dev)
a = torch.randn(4096, 4096, device=dev)
b = torch.randn(4096, 4096, device=dev)
torch.cuda.synchronize(dev)
open(sys.argv[3], "w").write(str(os.getpid()))
while True:
    for _ in range(50):
        a = (a @ b).clamp_(-1, 1)
    torch.cuda.synchronize(dev)
EOF
python3 "$data/load.py" "$GPU" "$GIB" "$data/ready" >"$OUT/torch.log" 2>&1 &
torch_pid=$!
for _ in $(seq 1 120); do
	[ -s "$data/ready" ] && break
	kill -0 "$torch_pid" 2>/dev/null || { echo "gpu-workload: the PyTorch process died:"; cat "$OUT/torch.log"; exit 1; }
	sleep 0.5
done
[ -s "$data/ready" ] || { echo "gpu-workload: PyTorch did not start in 60 s"; exit 1; }
pid=$(cat "$data/ready")
echo "gpu-workload: PyTorch PID $pid on GPU $GPU, $GIB GiB + matmuls"

# 2. vigild on the real NVML, isolated data dir
cat >"$data/vigil.yaml" <<EOF
collection: {tiers: {slow: 5s}}
workload: {interval: 1s}
EOF
start_vigild gpu-workload "$BUILD" "$data" --config "$data/vigil.yaml" --socket "$data/vigild.sock"
url=$URL

# 3. wait for the PID with a utilisation sample, compare with nvidia-smi
deadline=$((SECONDS + TMO))
got=
while [ $SECONDS -lt $deadline ]; do
	vrun "$BUILD/bin/vigil" --host "$url" ps -i "$GPU" --json >"$OUT/ps.json" 2>"$OUT/ps.err"
	got=$(python3 - "$OUT/ps.json" "$pid" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
for g in d.get("gpus", []):
    for p in g.get("processes", []):
        if p["pid"] == int(sys.argv[2]):
            u = p.get("utilization") or {}
            print(p.get("memory_used_bytes") or 0, u.get("sm", ""), p["owner"]["kind"],
                  p["owner"].get("id") or "-", p.get("owner_status"))
EOF
)
	set -- $got
	[ -n "$got" ] && [ -n "${2:-}" ] && awk -v s="$2" 'BEGIN{exit !(s > 0)}' && break
	sleep 1
done
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | tee "$OUT/nvidia-smi.csv"
smi_mib=$(awk -F', *' -v p="$pid" '$1 == p {print $2}' "$OUT/nvidia-smi.csv" | head -1)
fail=0
{
	echo "pid: $pid on GPU $GPU"
	if [ -z "$got" ]; then
		echo "FAIL: vigil ps did not list PID $pid within $TMO s"
		fail=1
	else
		set -- $got
		vmib=$(awk -v b="$1" 'BEGIN{printf "%.1f", b / 1048576}')
		echo "vigil: memory ${vmib} MiB, SM ${2:-none}, owner ${3} ${4} (${5})"
		echo "nvidia-smi: memory ${smi_mib:-?} MiB"
		if [ -z "$smi_mib" ]; then
			echo "FAIL: nvidia-smi does not list PID $pid"
			fail=1
		elif awk -v v="$vmib" -v s="$smi_mib" 'BEGIN{d = v - s; if (d < 0) d = -d; exit !(d <= 0.05 * s)}'; then
			echo "PASS: memory within 5 % of nvidia-smi"
		else
			echo "FAIL: memory differs from nvidia-smi by more than 5 %"
			fail=1
		fi
		if [ -n "${2:-}" ] && awk -v s="$2" 'BEGIN{exit !(s > 0)}'; then
			echo "PASS: SM utilisation sample ${2}"
		else
			echo "FAIL: no SM utilisation > 0 for a process running matmuls"
			fail=1
		fi
	fi
} | tee "$OUT/verdict.txt"
grep -q '^FAIL' "$OUT/verdict.txt" && fail=1
exit $fail
