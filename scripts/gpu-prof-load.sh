#!/usr/bin/env bash
# gpu-prof-load.sh — the profiling fields (NVML GPM, DCGM 1001-1012) under a real load, next to
# nvidia-smi's own utilisation, on a machine with NVIDIA GPUs. Read-only NVML; changes no GPU
# setting (the load is an ordinary PyTorch process).
#   1. vigild on the real NVML, isolated data dir, `collection.profiling: all`, slow tier 5 s
#   2. `nvidia-smi dmon -s u -d 1` runs throughout; vigild's fields are read every second
#      (GET /api/v1/gpus/{id}?fields=...): 10 s idle, then -d seconds of BF16 matmuls on GPU -i,
#      then 10 s idle; `vigil dmon -e 1002,1003,1004,1005` during the load
#   3. verdicts, over the GPM intervals that lie wholly inside the load (edges excluded):
#        - graphics engine active (1001) within 15 points of nvidia-smi's sm % over the same time
#        - SM active (1002) > 0.5, tensor pipe active (1004) > 0.1, DRAM active (1005) > 0.02
#        - SM occupancy (1003) > 0
#        - every GPM field that answered is in its range (ratios 0..1, byte rates >= 0)
#      and, informational, the same fields over the idle intervals before the load (another
#      tenant of a shared GPU shows up there)
# usage: scripts/gpu-prof-load.sh [-b BUILD_DIR] [-L LIB_DIR] [-o OUT_DIR] [-i GPU] [-d SECONDS]
#   -L  directory of carried libraries (scripts/gpu-jobs.sh --collect-libs DIR [BUILD_DIR] on the
#       build machine), given to Vigil's binaries only, not to python3/torch
# Exit: 0 pass, 1 a check failed, 77 no NVIDIA GPU here.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/gpu-lib.sh
. scripts/gpu-lib.sh
BUILD=build
OUT=gpu-prof-out
GPU=0
DUR=36
LIBS=
while getopts "b:o:i:d:L:h" opt; do
	case $opt in
	b) BUILD=$OPTARG ;;
	o) OUT=$OPTARG ;;
	i) GPU=$OPTARG ;;
	d) DUR=$OPTARG ;;
	L) LIBS=$(cd "$OPTARG" && pwd) ;;
	*) sed -n '2,21p' "$0"; exit 2 ;;
	esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

need_gpu gpu-prof-load
need_torch gpu-prof-load

DATA=$(mktemp -d /tmp/vigil-gpu-prof.XXXXXX)
cat >"$DATA/vigil.yaml" <<EOF
collection:
  tiers: {fast: 1s, slow: 5s}
  profiling: all
EOF
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	kill "$VPID" 2>/dev/null && wait "$VPID" 2>/dev/null
	rm -rf "$DATA"
}
trap cleanup EXIT
start_vigild gpu-prof-load "$BUILD" "$DATA" --socket "" --config "$DATA/vigil.yaml"

export URL GPU DUR OUT VIGIL_BIN="$BUILD/bin/vigil" VIGIL_LIBS="$LIBS"
python3 - <<'PY'
import json, os, statistics, subprocess, sys, threading, time, urllib.request

url, gpu, dur, out = os.environ["URL"], int(os.environ["GPU"]), float(os.environ["DUR"]), os.environ["OUT"]
IDS = [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 203]
env = dict(os.environ)
if os.environ["VIGIL_LIBS"]:
    env["LD_LIBRARY_PATH"] = os.environ["VIGIL_LIBS"] + ":" + env.get("LD_LIBRARY_PATH", "")


def read():
    with urllib.request.urlopen("%s/api/v1/gpus/%d?fields=%s" % (url, gpu, ",".join(map(str, IDS))),
                                timeout=10) as r:
        return {f["id"]: f for f in json.load(r)["fields"]}


# nvidia-smi's view, one line per second: "# gpu sm mem enc dec jpg ofa" (columns vary by driver)
smi = subprocess.Popen(["nvidia-smi", "dmon", "-s", "u", "-d", "1", "-i", str(gpu), "-o", "T"],
                       stdout=subprocess.PIPE, text=True)
smi_rows, smi_cols = [], []


def smi_reader():
    for line in smi.stdout:
        if line.startswith("#"):
            if not smi_cols and "gpu" in line:
                smi_cols.extend(line[1:].split())
            continue
        parts = line.split()
        if smi_cols and len(parts) == len(smi_cols):
            smi_rows.append((time.time(), dict(zip(smi_cols, parts))))


threading.Thread(target=smi_reader, daemon=True).start()
samples, phases = [], {}
stop = threading.Event()


def poller():
    while not stop.is_set():
        try:
            samples.append((time.time(), read()))
        except Exception as e:
            samples.append((time.time(), {"error": str(e)}))
        stop.wait(1.0)


deadline = time.time() + 60
while True:  # first GPM value (needs two slow sweeps)
    f = read().get(1002, {})
    if f.get("status") == "ok" or time.time() > deadline:
        break
    time.sleep(1)
threading.Thread(target=poller, daemon=True).start()
phases["idle_start"] = time.time()
time.sleep(10)
load = subprocess.Popen([sys.executable, "-c", r'''
import json, sys, time, torch
dev = torch.device("cuda", int(sys.argv[1])); dur = float(sys.argv[2])
a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16); b = torch.randn_like(a)
torch.cuda.synchronize(dev); print("ready", flush=True); n = 0; t0 = time.time()
while time.time() - t0 < dur:
    for _ in range(10): c = a @ b
    torch.cuda.synchronize(dev); n += 10
t = time.time() - t0
print(json.dumps({"matmuls": n, "seconds": t, "tflops": 2 * 8192**3 * n / t / 1e12}), flush=True)
''', str(gpu), str(dur)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    env=dict(os.environ, CUDA_DEVICE_ORDER="PCI_BUS_ID"))
load.stdout.readline()  # "ready": the load starts now
phases["load_start"] = time.time()
time.sleep(min(8, dur / 3))
dmon = subprocess.run([os.environ["VIGIL_BIN"], "--host", url, "dmon", "-i", str(gpu), "-e",
                       "1002,1003,1004,1005", "-c", "3", "-d", "1000"], capture_output=True,
                      text=True, env=env, timeout=60)
open(os.path.join(out, "vigil-dmon-load.txt"), "w").write(dmon.stdout + dmon.stderr)
lout, lerr = load.communicate(timeout=dur + 120)
phases["load_end"] = time.time()
time.sleep(10)
stop.set()
smi.terminate()
time.sleep(1.5)
phases["idle_end"] = time.time()
json.dump({"phases": phases, "samples": samples, "smi_cols": smi_cols, "smi": smi_rows},
          open(os.path.join(out, "raw.json"), "w"))
if load.returncode != 0:
    sys.exit("gpu-prof-load: the PyTorch load failed: " + lerr[-2000:])

# distinct GPM intervals: the value at timestamp t covers (previous timestamp, t]
intervals = {}
for _, s in samples:
    for fid, f in s.items():
        if isinstance(f, dict) and f.get("status") == "ok" and "timestamp_us" in f:
            intervals.setdefault(fid, {})[f["timestamp_us"]] = f["value"]


def inside(fid, a, b):
    ts = sorted(intervals.get(fid, {}))
    return [intervals[fid][t] for p, t in zip(ts, ts[1:]) if p / 1e6 >= a and t / 1e6 <= b]


def smi_mean(col, a, b):
    v = [float(r[col]) for t, r in smi_rows if a <= t <= b and r.get(col, "-") not in ("-", "")]
    return statistics.mean(v) if v else None


la, lb = phases["load_start"] + 1, phases["load_end"] - 1
lines, ok = ["GPU %d, load: %s" % (gpu, lout.strip().splitlines()[-1] if lout.strip() else "?")], True
names = {1001: "gr_engine_active", 1002: "sm_active", 1003: "sm_occupancy", 1004: "tensor_active",
         1005: "dram_active", 1006: "fp64_active", 1007: "fp32_active", 1008: "fp16_active",
         1009: "pcie_tx_bytes", 1010: "pcie_rx_bytes", 1011: "nvlink_tx_bytes", 1012: "nvlink_rx_bytes"}
load_vals, idle_vals = {}, {}
for fid, name in names.items():
    lv = inside(fid, la, lb)
    iv = inside(fid, phases["idle_start"], phases["load_start"])
    load_vals[fid], idle_vals[fid] = lv, iv
    allv = list(intervals.get(fid, {}).values())
    bad = [v for v in allv if v < 0 or (fid <= 1008 and v > 1)]
    if bad:
        ok = False
    lines.append("%-5d %-17s load %-28s idle %-22s %s" % (
        fid, name, "median %.4g (%d intervals)" % (statistics.median(lv), len(lv)) if lv else "no interval",
        "median %.4g (%d)" % (statistics.median(iv), len(iv)) if iv else "no interval",
        "OUT OF RANGE %s" % bad[:3] if bad else ("" if allv else "no value")))
span = sorted(intervals.get(1001, {}))
cover = [(p / 1e6, t / 1e6) for p, t in zip(span, span[1:]) if p / 1e6 >= la and t / 1e6 <= lb]
sm_smi = smi_mean("sm", cover[0][0], cover[-1][1]) if cover else None
gr = statistics.median(load_vals[1001]) * 100 if load_vals[1001] else None
lines.append("nvidia-smi dmon sm %% over the same intervals: %s; vigil graphics engine active: %s %%" % (
    "n/a" if sm_smi is None else "%.1f" % sm_smi, "n/a" if gr is None else "%.1f" % gr))


def check(what, cond):
    global ok
    lines.append("%-58s %s" % (what, "PASS" if cond else "FAIL"))
    ok = ok and bool(cond)


check("1001 within 15 points of nvidia-smi sm %", gr is not None and sm_smi is not None and abs(gr - sm_smi) <= 15)
for fid, lim in ((1002, 0.5), (1004, 0.1), (1005, 0.02), (1003, 0.0)):
    v = load_vals[fid]
    check("%d %s under load > %g" % (fid, names[fid], lim), v and statistics.median(v) > lim)
check("vigil dmon -e 1002,1003,1004,1005 ran", dmon.returncode == 0)
open(os.path.join(out, "summary.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if ok else 1)
PY
