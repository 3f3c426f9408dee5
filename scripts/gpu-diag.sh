#!/usr/bin/env bash
# gpu-diag.sh — run Vigil's diagnostics on the real GPUs of this machine and an independent
# PyTorch measurement of the same quantities, for comparison. Changes no GPU setting.
#   1. vigil diag -r 1, -r 2 and a shortened -r 3 (--local: the CLI runs vigil-diag, which runs
#      the tests in a child process), each as JSON, with its wall time and exit code
#   2. PyTorch (python3 + torch): pinned host<->device copy bandwidth, device-to-device copy
#      bandwidth, FP32 (TF32 off) and BF16 matmul TFLOPS
#   3. a side-by-side table (compare.txt) of Vigil's numbers and PyTorch's, and the power the
#      targeted power test reached against the enforced power limit, with the load that drove it
#      (the tensor-core kernel kernels_tc.ptx on compute capability 8.0+, else the FP32 FMA one)
# usage: scripts/gpu-diag.sh [-b BUILD_DIR] [-o OUT_DIR] [-d SECONDS] [-i GPUS] [-l LEVELS]
#   -b  build directory holding bin/vigil and bin/vigil-diag (default ./build; built if missing)
#   -o  output directory (default ./gpu-diag-out)
#   -d  duration of each level-3 stress test in seconds (default 20; a full -r 3 is 240 each)
#   -i  GPUs to test, comma-separated indexes (default all)
#   -l  levels to run (default "1 2 3")
#   -f  test GPUs that have compute processes too (vigil diag --force)
#   -L  directory of carried libraries (from --collect-libs), given to Vigil's binaries only
#       (LD_LIBRARY_PATH for them, not for python3/torch, whose own libraries must win)
# Libraries the binaries need but the machine lacks: `scripts/gpu-diag.sh --collect-libs DIR` on
# the build machine copies them into DIR; carry it and run scripts/gpu-diag.sh -L DIR. Where the
# CLI still cannot start, vigil-diag (jansson only) is run directly.
# Exit: 0 every level ran (whatever the verdicts: read the JSON), 1 a level could not run,
# 77 no NVIDIA GPU here.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/gpu-lib.sh
. scripts/gpu-lib.sh
# --collect-libs DIR [BUILD_DIR]: copy the shared libraries vigil and vigil-diag need (all but
# glibc's own) into DIR, to carry to a GPU machine that lacks them (then LD_LIBRARY_PATH=DIR).
if [ "${1:-}" = "--collect-libs" ]; then
	dir=${2:?usage: gpu-diag.sh --collect-libs DIR [BUILD_DIR]}
	b=${3:-build}
	mkdir -p "$dir"
	ldd "$b/bin/vigil" "$b/bin/vigil-diag" | awk '/=> \//{print $3}' | sort -u |
		grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' |
		while read -r lib; do cp -L "$lib" "$dir/"; done
	echo "gpu-diag: $(ls "$dir" | wc -l) libraries in $dir"
	exit 0
fi
BUILD=build
OUT=gpu-diag-out
DUR=20
GPUS=
LEVELS="1 2 3"
FORCE=()
LIBS=
while getopts "b:o:d:i:l:fL:h" opt; do
	case $opt in
	b) BUILD=$OPTARG ;;
	o) OUT=$OPTARG ;;
	d) DUR=$OPTARG ;;
	i) GPUS=$OPTARG ;;
	l) LEVELS=$OPTARG ;;
	f) FORCE=(--force) ;;
	L) LIBS=$(cd "$OPTARG" && pwd) ;;
	*) sed -n '2,20p' "$0"; exit 2 ;;
	esac
done
mkdir -p "$OUT"

need_gpu gpu-diag
if [ ! -x "$BUILD/bin/vigil" ] || [ ! -x "$BUILD/bin/vigil-diag" ]; then
	echo "gpu-diag: building into $BUILD"
	cmake -S . -B "$BUILD" >/dev/null && cmake --build "$BUILD" -j"$(nproc)" >/dev/null || exit 1
fi

nvidia-smi -L | tee "$OUT/nvidia-smi-L.txt"
nvidia-smi --query-gpu=index,name,pci.bus_id,driver_version,persistence_mode,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max,power.limit,clocks.max.sm,memory.total \
	--format=csv | tee "$OUT/nvidia-smi-query.csv"
nvidia-smi -q >"$OUT/nvidia-smi-q.txt" 2>&1

# Vigil's binaries, with the carried libraries when -L was given
vrun() {
	if [ -n "$LIBS" ]; then
		LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"
	else
		"$@"
	fi
}

sel=()
[ -n "$GPUS" ] && sel=(-i "$GPUS")
# GPU_DIAG_SIMULATE=SCENARIO runs the script itself on the fakes (a check of the script only)
[ -n "${GPU_DIAG_SIMULATE:-}" ] && sel+=("--simulate=$GPU_DIAG_SIMULATE")
fail=0
cli_ok=0
vrun "$BUILD/bin/vigil" --version >/dev/null 2>&1 && cli_ok=1
[ "$cli_ok" = 1 ] || echo "gpu-diag: '$BUILD/bin/vigil' does not run here ($(vrun ldd "$BUILD/bin/vigil" 2>/dev/null | grep -c 'not found') libraries missing): using vigil-diag directly"
echo '{}' >"$OUT/timings.json"
for lvl in $LEVELS; do
	extra=()
	if [ "$lvl" = 3 ]; then
		extra=(--param "memtest.duration=$DUR" --param "sm_stress.duration=$DUR"
			--param "targeted_power.duration=$DUR" --param "memory_bandwidth.duration=$((DUR < 10 ? DUR : 10))")
	fi
	echo "== vigil diag -r $lvl ${extra[*]}"
	start=$(date +%s.%N)
	if [ "$cli_ok" = 1 ]; then
		vrun "$BUILD/bin/vigil" diag -r "$lvl" --local --json "${sel[@]}" "${FORCE[@]}" "${extra[@]}" \
			>"$OUT/diag-r$lvl.json" 2>"$OUT/diag-r$lvl.stderr"
		rc=$?
	else
		# the CLI's libraries (libcurl, ...) are missing here: vigil-diag alone, same tests
		vrun "$BUILD/bin/vigil-diag" -r "$lvl" "${sel[@]}" "${FORCE[@]}" "${extra[@]}" \
			>"$OUT/diag-r$lvl.events" 2>"$OUT/diag-r$lvl.stderr"
		rc=$(python3 - "$OUT/diag-r$lvl.events" "$OUT/diag-r$lvl.json" <<'PY'
import json, sys
run = None
for line in open(sys.argv[1]):
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    if ev.get("event") == "run":
        run = ev["run"]
if run is None:
    print(1)
    sys.exit(0)
json.dump(run, open(sys.argv[2], "w"), indent=1)
res = [r["result"] for r in run.get("results", [])]
st = run.get("status")
print(130 if st == "cancelled" else 12 if st != "completed" else 11 if "fail" in res else 10 if "warn" in res else 0)
PY
)
	fi
	end=$(date +%s.%N)
	python3 - "$OUT" "$lvl" "$rc" "$start" "$end" <<'PY'
import json, sys
out, lvl, rc, start, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
t = json.load(open(out + "/timings.json"))
t["r" + lvl] = {"exit_code": rc, "wall_s": round(end - start, 1)}
json.dump(t, open(out + "/timings.json", "w"), indent=1)
try:
    run = json.load(open("%s/diag-r%s.json" % (out, lvl)))
except ValueError:
    print("  no JSON result (exit %d); see diag-r%s.stderr" % (rc, lvl))
    sys.exit(0)
print("  status %s, result %s, exit %d, %.0f s" % (run.get("status"), run.get("result"), rc, end - start))
for r in run.get("results", []):
    v = r.get("value")
    print("  %-18s %-4s %-5s %-14s %s" % (r["test"], "-" if r["gpu"] is None else r["gpu"], r["result"],
          "" if v is None else "%.4g %s" % (v, r.get("unit") or ""), r["reason"]))
PY
	# 0 pass, 10 warn, 11 fail are verdicts; anything else means the run itself did not work
	case $rc in 0 | 10 | 11) ;; *) fail=1 ;; esac
done

echo "== PyTorch reference measurements"
python3 - "$OUT" "$GPUS" <<'PY' 2>&1 | tee "$OUT/torch.log"
import json, sys, time
out, gpus = sys.argv[1], sys.argv[2]
res = {}
try:
    import torch
except Exception as e:  # noqa: BLE001
    print("torch unavailable: %s" % e)
    json.dump({"error": str(e)}, open(out + "/torch.json", "w"))
    sys.exit(0)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
idx = [int(x) for x in gpus.split(",")] if gpus else list(range(torch.cuda.device_count()))
# CUDA ordinals follow PCI bus order only with CUDA_DEVICE_ORDER=PCI_BUS_ID; record the bus ids.
for i in idx:
    d = torch.device("cuda", i)
    torch.cuda.set_device(d)
    p = torch.cuda.get_device_properties(d)
    r = {"name": p.name, "sms": p.multi_processor_count,
         "pci_bus_id": getattr(p, "pci_bus_id", None) if hasattr(p, "pci_bus_id") else None}

    def timed(fn, reps):
        fn()
        torch.cuda.synchronize(d)
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / 1e3  # seconds

    n = 256 << 20
    host = torch.empty(n, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(n, dtype=torch.uint8, device=d)
    s = timed(lambda: dev.copy_(host, non_blocking=True), 20)
    r["h2d_gbps"] = n * 20 / s / 1e9
    s = timed(lambda: host.copy_(dev, non_blocking=True), 20)
    r["d2h_gbps"] = n * 20 / s / 1e9
    del host, dev
    n = 1 << 30
    a1 = torch.empty(n, dtype=torch.uint8, device=d)
    a2 = torch.empty(n, dtype=torch.uint8, device=d)
    s = timed(lambda: a2.copy_(a1), 20)
    r["dtod_gbps_read_plus_write"] = 2 * n * 20 / s / 1e9
    del a1, a2
    for name, dt, m in (("fp32", torch.float32, 8192), ("bf16", torch.bfloat16, 8192)):
        x = torch.randn(m, m, device=d, dtype=dt)
        y = torch.randn(m, m, device=d, dtype=dt)
        reps = 10 if dt == torch.float32 else 50
        s = timed(lambda: torch.mm(x, y), reps)
        r[name + "_matmul_tflops"] = 2 * m ** 3 * reps / s / 1e12
        del x, y
    torch.cuda.empty_cache()
    res[str(i)] = r
    print("GPU %d %s: h2d %.1f GB/s, d2h %.1f GB/s, dtod %.0f GB/s, fp32 mm %.1f TFLOPS, bf16 mm %.1f TFLOPS" % (
        i, p.name, r["h2d_gbps"], r["d2h_gbps"], r["dtod_gbps_read_plus_write"], r["fp32_matmul_tflops"],
        r["bf16_matmul_tflops"]))
json.dump(res, open(out + "/torch.json", "w"), indent=1)
PY

echo "== Vigil versus PyTorch"
python3 - "$OUT" <<'PY' | tee "$OUT/compare.txt"
import json, os, sys
out = sys.argv[1]
def load(p):
    try:
        return json.load(open(os.path.join(out, p)))
    except (OSError, ValueError):
        return {}
torch = load("torch.json")
vals = {}
for lvl in ("2", "3"):
    for r in load("diag-r%s.json" % lvl).get("results", []):
        if r.get("gpu") is not None and r.get("value") is not None:
            vals[(r["gpu"], r["test"])] = r["value"]
rows = [("pcie_h2d", "h2d_gbps", "GB/s"), ("pcie_d2h", "d2h_gbps", "GB/s"),
        ("memory_bandwidth", "dtod_gbps_read_plus_write", "GB/s"),
        ("sm_stress", "fp32_matmul_tflops", "TFLOPS (Vigil: FP32 FMA; torch: FP32 matmul)")]
print("%-4s %-18s %12s %12s %7s  %s" % ("GPU", "quantity", "vigil", "torch", "ratio", "unit"))
for g in sorted({k[0] for k in vals} | {int(k) for k in torch if k.isdigit()}):
    t = torch.get(str(g), {})
    for test, key, unit in rows:
        v, w = vals.get((g, test)), t.get(key)
        ratio = "%.2f" % (v / w) if v and w else "-"
        print("%-4s %-18s %12s %12s %7s  %s" % (g, test, "-" if v is None else "%.1f" % v,
              "-" if w is None else "%.1f" % w, ratio, unit))
    if "bf16_matmul_tflops" in t:
        print("%-4s %-18s %12s %12.1f %7s  %s" % (g, "bf16 matmul", "-", t["bf16_matmul_tflops"], "-", "TFLOPS"))

# Targeted power: the peak power the load reached against the enforced limit (nvidia-smi's
# power.limit from the same run), and which load drove it (tensor-core mma.sync or FP32 FMA).
limits = {}
try:
    with open(os.path.join(out, "nvidia-smi-query.csv")) as f:
        head = [h.strip() for h in f.readline().split(",")]
        col = next(i for i, h in enumerate(head) if h.startswith("power.limit"))
        for line in f:
            cells = [c.strip() for c in line.split(",")]
            limits[int(cells[0])] = float(cells[col].split()[0])
except (OSError, ValueError, StopIteration, IndexError):
    pass
print()
print("%-4s %-14s %10s %10s %8s  %s" % ("GPU", "targeted_power", "peak W", "limit W", "reached", "load"))
for r in load("diag-r3.json").get("results", []):
    if r.get("test") != "targeted_power" or r.get("value") is None:
        continue
    lim = limits.get(r["gpu"])
    why = r.get("reason", "")
    kind = "tensor-core (mma.sync)" if "tensor-core" in why else "FP32 FMA" if "FMA" in why else "?"
    print("%-4s %-14s %10.0f %10s %8s  %s" % (r["gpu"], r["result"], r["value"],
          "-" if lim is None else "%.0f" % lim,
          "-" if not lim else "%.0f %%" % (100 * r["value"] / lim), kind))
PY
echo "gpu-diag: results in $OUT/"
exit $fail
