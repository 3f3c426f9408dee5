#!/usr/bin/env python3
"""compare-nvidia-smi.py URL PID OUTDIR — compare a running vigild's readings with nvidia-smi,
record which fields each GPU supports and what sampling costs. Read-only. Exit 1 on a mismatch."""
import json
import os
import subprocess
import sys
import time
import urllib.request

url, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def get(path):
    with urllib.request.urlopen(url + path, timeout=10) as r:
        return json.loads(r.read())


def cpu_seconds(p):
    with open("/proc/%d/stat" % p) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(p):
    with open("/proc/%d/status" % p) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


deadline = time.time() + 30
while time.time() < deadline:
    try:
        if get("/api/v1/status")["ready"]:
            break
    except OSError:
        pass
    time.sleep(0.2)
else:
    print("vigild did not become ready")
    sys.exit(1)

ok = True
rows = []
for attempt in range(5):
    # read both sides back to back; retry a few times so a load change between reads is not a failure
    smi = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,temperature.gpu,power.draw,memory.used,memory.total",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True, check=True).stdout
    v = get("/api/v1/gpus?fields=GPU_TEMP,POWER_USAGE,FB_USED,FB_TOTAL")
    rows = []
    all_ok = True
    by_uuid = {g["uuid"]: g for g in v["gpus"]}
    for line in smi.strip().splitlines():
        idx, uuid, temp, power, used, total = [x.strip() for x in line.split(",")]
        g = by_uuid.get(uuid)
        if not g:
            rows.append((idx, uuid, "vigild does not list this GPU", False))
            all_ok = False
            continue
        f = {x["name"]: x.get("value") for x in g["fields"]}
        checks = []
        t_ok = f["GPU_TEMP"] is not None and abs(f["GPU_TEMP"] - float(temp)) <= 2
        checks.append("temp %s vs %s C %s" % (f["GPU_TEMP"], temp, "ok" if t_ok else "MISMATCH"))
        p_ok = f["POWER_USAGE"] is not None and abs(f["POWER_USAGE"] - float(power)) <= 0.10 * max(float(power), 1)
        checks.append("power %.1f vs %s W %s" % (f["POWER_USAGE"] or -1, power, "ok" if p_ok else "MISMATCH"))
        m_ok = f["FB_USED"] is not None and abs(f["FB_USED"] - float(used)) <= 0.01 * float(total)
        checks.append("mem used %s vs %s MiB %s" % (f["FB_USED"], used, "ok" if m_ok else "MISMATCH"))
        good = t_ok and p_ok and m_ok
        all_ok &= good
        rows.append((idx, uuid, "; ".join(checks), good))
    if all_ok:
        break
    time.sleep(1)
ok &= all_ok
with open(os.path.join(out, "compare.txt"), "w") as fo:
    for r in rows:
        line = "GPU %s %s: %s" % r[:3]
        print(line)
        fo.write(line + "\n")

# Supported fields per GPU.
support = {}
for g in get("/api/v1/gpus")["gpus"]:
    d = get("/api/v1/gpus/%d" % g["index"])
    support[g["index"]] = {x["name"]: x["status"] for x in d["fields"]}
with open(os.path.join(out, "fields.json"), "w") as fo:
    json.dump({"gpus": get("/api/v1/gpus"), "support": support}, fo, indent=1)
names = sorted(support[0])
print("fields supported on GPU 0: %d of %d" % (sum(1 for n in names if support[0][n] == "ok"), len(names)))
print("not supported on GPU 0: " + ", ".join(n for n in names if support[0][n] != "ok"))

# Sampling cost: fast-tier sweep wall time and the daemon's CPU over 30 s.
s0, c0, t0 = get("/api/v1/status"), cpu_seconds(pid), time.time()
time.sleep(30)
s1, c1, t1 = get("/api/v1/status"), cpu_seconds(pid), time.time()
n = s1["gpu_count"]
fast = s1["tiers"]["fast"]
m = urllib.request.urlopen(url + "/metrics").read().decode()
tot = {}
for line in m.splitlines():
    for tier in ("fast", "slow"):
        if line.startswith('vigil_collection_duration_seconds_sum{tier="%s"}' % tier):
            tot[tier + "_sum"] = float(line.split()[-1])
        if line.startswith('vigil_collection_duration_seconds_count{tier="%s"}' % tier):
            tot[tier + "_count"] = float(line.split()[-1])
summary = {
    "gpus": n,
    "fast_sweep_mean_ms_per_gpu": 1e3 * tot["fast_sum"] / tot["fast_count"] / n,
    "fast_sweep_last_ms_per_gpu": 1e3 * fast["last_duration_seconds"] / n,
    "slow_sweep_mean_ms_per_gpu": 1e3 * tot["slow_sum"] / max(tot["slow_count"], 1) / n,
    "cpu_percent_of_one_core": 100.0 * (c1 - c0) / (t1 - t0),
    "rss_mib": rss_kib(pid) / 1024.0,
    "fast_sweeps": fast["sweeps"], "late_fast_sweeps": fast["late_sweeps"],
}
with open(os.path.join(out, "cost.json"), "w") as fo:
    json.dump(summary, fo, indent=1)
print(json.dumps(summary, indent=1))
sys.exit(0 if ok else 1)
