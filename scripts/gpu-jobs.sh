#!/usr/bin/env bash
# gpu-jobs.sh — check Vigil's job statistics on a real GPU: a registered job's energy must agree
# with the difference of the energy counter read independently (pynvml,
# nvmlDeviceGetTotalEnergyConsumption) at the job's start and end, within 1 %. Changes no GPU
# setting (vigild runs NVML read-only; the load is an ordinary PyTorch process).
#   1. vigild on the real NVML with an isolated data dir (127.0.0.1:0, its own unix socket)
#   2. pynvml reads the energy counter, `vigil job start`, 7 s idle, a ~20 s PyTorch matmul load
#      on the GPU, 7 s idle, pynvml reads the counter again, `vigil job stop`
#   3. `vigil job show --wait 60 --json` (the job is final once the energy reading after its end
#      came: vigild interpolates the counter at the start and the end between its readings)
#   4. compare: |job energy - pynvml difference| <= 1 % of the pynvml difference
# usage: scripts/gpu-jobs.sh [-b BUILD_DIR] [-o OUT_DIR] [-i GPU] [-d SECONDS] [-L LIBDIR]
#   -b  build directory holding bin/vigild and bin/vigil (default ./build; built if missing)
#   -o  output directory (default ./gpu-jobs-out): job.json, pynvml.json, load.json,
#       summary.txt, vigild.log
#   -i  GPU index (NVML order; default 0)
#   -d  seconds of matmul load (default 20)
#   -L  directory of carried libraries, given to Vigil's binaries only: on the build machine
#       `scripts/gpu-jobs.sh --collect-libs DIR [BUILD_DIR]` copies what vigild and vigil need
#       (all but glibc's own) into DIR
# Needs python3 with torch; pynvml (nvidia-ml-py) where installed, else the same three NVML calls
# through ctypes. Exit: 0 agreement within 1 %, 1 not (or a
# step failed), 77 no NVIDIA GPU here.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/gpu-lib.sh
. scripts/gpu-lib.sh
if [ "${1:-}" = "--collect-libs" ]; then
	dir=${2:?usage: gpu-jobs.sh --collect-libs DIR [BUILD_DIR]}
	b=${3:-build}
	mkdir -p "$dir"
	ldd "$b/bin/vigild" "$b/bin/vigil" | awk '/=> \//{print $3}' | sort -u |
		grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' |
		while read -r lib; do cp -L "$lib" "$dir/"; done
	echo "gpu-jobs: $(find "$dir" -maxdepth 1 -type f | wc -l) libraries in $dir"
	exit 0
fi
BUILD=build
OUT=gpu-jobs-out
GPU=0
DUR=20
LIBS=
while getopts "b:o:i:d:L:h" opt; do
	case $opt in
	b) BUILD=$OPTARG ;;
	o) OUT=$OPTARG ;;
	i) GPU=$OPTARG ;;
	d) DUR=$OPTARG ;;
	L) LIBS=$(cd "$OPTARG" && pwd) ;;
	*) sed -n '2,24p' "$0"; exit 2 ;;
	esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

need_gpu gpu-jobs
need_torch gpu-jobs
if [ ! -x "$BUILD/bin/vigild" ] || [ ! -x "$BUILD/bin/vigil" ]; then
	echo "gpu-jobs: building into $BUILD"
	cmake -S . -B "$BUILD" >/dev/null && cmake --build "$BUILD" -j"$(nproc)" --target vigild vigil >/dev/null || exit 1
fi
nvidia-smi -L | tee "$OUT/nvidia-smi-L.txt"


DATA=$(mktemp -d /tmp/vigil-gpu-jobs.XXXXXX)
SOCK=$DATA/vigild.sock
# energy on the slow tier every 5 s (the shortest allowed: the read costs ~4 ms on an H200)
cat >"$DATA/vigil.yaml" <<EOF
collection:
  tiers: {fast: 1s, slow: 5s}
EOF
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	kill "$VPID" 2>/dev/null && wait "$VPID" 2>/dev/null
	rm -rf "$DATA"
}
trap cleanup EXIT

start_vigild gpu-jobs "$BUILD" "$DATA" --socket "$SOCK" --config "$DATA/vigil.yaml"
vigil() { vrun "$BUILD/bin/vigil" --socket "$SOCK" --timeout 30 "$@"; }

JOB="gpu-check-$$"
export URL GPU DUR JOB OUT
export VIGIL_BIN="$BUILD/bin/vigil" VIGIL_SOCK="$SOCK" VIGIL_LIBS="$LIBS"
python3 - <<'PY'
import ctypes, json, os, subprocess, sys, time, urllib.request

try:
    import pynvml
except ImportError:  # the independent reading needs only three NVML calls: ctypes does them
    class pynvml:
        _lib = ctypes.CDLL("libnvidia-ml.so.1")

        @staticmethod
        def _ok(rc, what):
            if rc != 0:
                raise RuntimeError("%s: NVML error %d" % (what, rc))

        @classmethod
        def nvmlInit(cls):
            cls._ok(cls._lib.nvmlInit_v2(), "nvmlInit_v2")

        @classmethod
        def nvmlShutdown(cls):
            cls._lib.nvmlShutdown()

        @classmethod
        def nvmlDeviceGetHandleByIndex(cls, i):
            h = ctypes.c_void_p()
            cls._ok(cls._lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(h)),
                    "nvmlDeviceGetHandleByIndex_v2")
            return h

        @classmethod
        def nvmlDeviceGetUUID(cls, h):
            buf = ctypes.create_string_buffer(96)
            cls._ok(cls._lib.nvmlDeviceGetUUID(h, buf, ctypes.c_uint(96)), "nvmlDeviceGetUUID")
            return buf.value.decode()

        @classmethod
        def nvmlDeviceGetTotalEnergyConsumption(cls, h):
            mj = ctypes.c_ulonglong()
            cls._ok(cls._lib.nvmlDeviceGetTotalEnergyConsumption(h, ctypes.byref(mj)),
                    "nvmlDeviceGetTotalEnergyConsumption")
            return mj.value

url, gpu, dur, job, out = (os.environ[k] for k in ("URL", "GPU", "DUR", "JOB", "OUT"))
gpu, dur = int(gpu), float(dur)
env = dict(os.environ)
if os.environ["VIGIL_LIBS"]:
    env["LD_LIBRARY_PATH"] = os.environ["VIGIL_LIBS"] + ":" + env.get("LD_LIBRARY_PATH", "")


def vigil(*args):
    p = subprocess.run([os.environ["VIGIL_BIN"], "--socket", os.environ["VIGIL_SOCK"],
                        "--timeout", "30"] + list(args), capture_output=True, text=True, env=env,
                       timeout=120)
    if p.returncode != 0:
        sys.exit("gpu-jobs: vigil %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


def vigild_energy():
    with urllib.request.urlopen(url + "/api/v1/gpus/%d?fields=TOTAL_ENERGY_CONSUMPTION" % gpu,
                                timeout=10) as r:
        f = json.load(r)["fields"][0]
    return f.get("value"), f.get("timestamp_us")


pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(gpu)
uuid = pynvml.nvmlDeviceGetUUID(h)
uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
# vigild up and reading the counter
deadline = time.time() + 60
while vigild_energy()[0] is None:
    if time.time() > deadline:
        sys.exit("gpu-jobs: vigild shows no energy reading after 60 s")
    time.sleep(0.5)
# Idle stretches longer than the energy interval (5 s) around both boundaries: vigild
# interpolates the counter at the start and the end between its readings around them, which is
# exact where the power is steady; across the edge of the load it would not be.
IDLE = 7
time.sleep(IDLE)

e0a = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
vigil("job", "start", job, "-i", str(gpu))
e0b = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
time.sleep(IDLE)

# the load: bf16 matmuls on the same GPU (CUDA ordered by PCI bus id = NVML order)
load = subprocess.run([sys.executable, "-c", r'''
import json, os, sys, time, torch
dev = torch.device("cuda", int(sys.argv[1])); dur = float(sys.argv[2])
a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16); b = torch.randn_like(a)
torch.cuda.synchronize(dev); n = 0; t0 = time.time()
while time.time() - t0 < dur:
    for _ in range(10): c = a @ b
    torch.cuda.synchronize(dev); n += 10
t = time.time() - t0
print(json.dumps({"matmuls": n, "seconds": t, "tflops": 2 * 8192**3 * n / t / 1e12}))
''', str(gpu), str(dur)], capture_output=True, text=True,
    env=dict(os.environ, CUDA_DEVICE_ORDER="PCI_BUS_ID"), timeout=dur + 120)
if load.returncode != 0:
    vigil("job", "stop", job)
    sys.exit("gpu-jobs: the PyTorch load failed: " + load.stderr[-2000:])
time.sleep(IDLE)

e1a = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
vigil("job", "stop", job)
e1b = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
rec = json.loads(vigil("--json", "job", "show", job, "--wait", "60"))
pynvml.nvmlShutdown()

ref_mj = (e1a + e1b) / 2 - (e0a + e0b) / 2  # counter at the start and the end, mid-call
g = rec["gpus"][0]
got_mj = g["energy"]["used_mj"] if g.get("energy") else None
diff = abs(got_mj - ref_mj) / ref_mj if got_mj is not None and ref_mj > 0 else None
ok = rec.get("final") and diff is not None and diff <= 0.01
json.dump(rec, open(os.path.join(out, "job.json"), "w"), indent=2)
json.dump({"gpu": gpu, "uuid": uuid, "start_mj": [e0a, e0b], "end_mj": [e1a, e1b],
           "used_mj": ref_mj}, open(os.path.join(out, "pynvml.json"), "w"), indent=2)
open(os.path.join(out, "load.json"), "w").write(load.stdout)
lines = [
    "GPU %d %s" % (gpu, uuid),
    "load: %s" % load.stdout.strip(),
    "pynvml energy: %.3f J (counter %d..%d mJ at the start, %d..%d at the end)"
    % (ref_mj / 1000, e0a, e0b, e1a, e1b),
    "vigil job %s: %s J (final %s, start interpolated %s, end interpolated %s, gaps %s)"
    % (job, None if got_mj is None else "%.3f" % (got_mj / 1000), rec.get("final"),
       g.get("energy", {}).get("start_interpolated"), g.get("energy", {}).get("end_interpolated"),
       g.get("gaps")),
    "vigil job: SM util avg %s max %s, max memory %s MiB, max temp %s C, power avg %s W"
    % (g["sm_utilization_pct"]["avg"], g["sm_utilization_pct"]["max"], g["memory_used_max_mib"],
       g["temperature_max_c"], g["power_w"]["avg"]),
    "difference: %s -> %s (limit 1 %%)" % ("n/a" if diff is None else "%.3f %%" % (diff * 100),
                                           "PASS" if ok else "FAIL"),
]
open(os.path.join(out, "summary.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if ok else 1)
PY
rc=$?
vigil job show "$JOB" >"$OUT/job-show.txt" 2>&1
exit $rc
