#!/usr/bin/env python3
"""compare.py OUTDIR — on a GPU machine, side by side in one run: vigild (real NVML), an
nvidia-smi-per-scrape exporter, a pynvml + prometheus_client exporter, and the bare NVML loop
(the floor). For each: CPU % of one core and RSS over a steady window while Prometheus-like
scrapes arrive every 15 s, and scrape latency p50/p99 over back-to-back scrapes. Read-only.

VIGILD_BASELINE=BUILD_DIR also measures an older vigild build (e.g. the previous release) in the
same run, so that before/after is a side-by-side ratio on one machine. VARIANTS="name=BUILD_DIR[@CONFIG]
,..." measures any number of vigild builds/configurations instead; REPEAT=N runs the whole list N
times in turn (A B A B: a change in the machine's load between two variants shows up as a
difference between repeats, not as a difference between builds). ONLY=vigild,floor limits the run
to vigild(s) and the floor. Each vigild result also has its CPU per thread and, from its own
self-metrics, the NVML time per call over the window, and the GPU's utilisation as nvidia-smi saw
it before the window (the GPU machine is shared: another tenant's load changes NVML's cost)."""
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

OUT = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../.."))
BUILD = os.environ.get("VIGIL_BUILD_DIR", os.path.join(ROOT, "build"))
WINDOW = int(os.environ.get("WINDOW", "60"))
SCRAPES = int(os.environ.get("SCRAPES", "100"))


def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12]) + int(x[13]) + int(x[14])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid):
    """CPU seconds per thread name of pid (utime + stime of each task)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                head, tail = f.read().rsplit(")", 1)
            comm = head.split("(", 1)[1]
            x = tail.split()
            out[comm] = out.get(comm, 0.0) + (int(x[11]) + int(x[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            continue
    return out


def nvml_calls(url):
    """vigild's own NVML accounting: {call: [count, seconds]} from its /metrics."""
    out = {}
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            text = r.read().decode()
    except Exception:
        return out
    for line in text.splitlines():
        for fam, k in (("vigil_nvml_calls_total{", 0), ("vigil_nvml_call_duration_seconds_total{", 1)):
            if line.startswith(fam) and 'call="' in line:
                call = line.split('call="', 1)[1].split('"', 1)[0]
                out.setdefault(call, [0, 0.0])[k] = float(line.rsplit(" ", 1)[1])
    return out


def gpu_load():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=index,utilization.gpu,power.draw,memory.used",
                                "--format=csv,noheader"], capture_output=True, text=True,
                               timeout=20).stdout.strip()
    except Exception as e:
        return "nvidia-smi failed: %s" % e


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0


def rss_by_mapping(pid, top=12):
    """Rss per mapped file (anonymous and heap summed by name), largest first, in KiB: where the
    memory of a process is, to compare vigild with the floor mapping by mapping."""
    sizes, name = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if len(head) >= 5 and "-" in head[0] and not line.startswith(("Rss", "Size")):
                name = head[5] if len(head) > 5 else "[anon]"
                name = os.path.basename(name) if name.startswith("/") else name
            elif line.startswith("Rss:"):
                sizes[name] = sizes.get(name, 0) + int(line.split()[1])
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:top])


def switches(pid):
    """Context switches (voluntary + involuntary) per thread name of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            comm = open("/proc/%d/task/%s/comm" % (pid, tid)).read().strip()
            n = 0
            for line in open("/proc/%d/task/%s/status" % (pid, tid)):
                if "ctxt_switches:" in line:
                    n += int(line.split()[1])
        except (OSError, ValueError):
            continue
        out[comm] = out.get(comm, 0) + n
    return out


def scrape(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        n = len(r.read())
    return time.perf_counter() - t, n


def measure(name, cmd, url, env=None, idle=0):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(OUT, name + ".log"), "w"),
                         env=dict(os.environ, **(env or {})))
    try:
        deadline = time.time() + 30
        while True:
            try:
                scrape(url); break
            except Exception:
                if time.time() > deadline or p.poll() is not None:
                    return {"error": "did not start"}
                time.sleep(0.2)
        time.sleep(5)
        wake = None
        if idle:  # nothing scraped: how often does each thread wake?
            s0 = switches(p.pid)
            time.sleep(idle)
            s1 = switches(p.pid)
            wake = {k: s1[k] - s0.get(k, 0) for k in s1}
            wake["total_per_s"] = round(sum(wake.values()) / idle, 2)
        load = gpu_load()
        n0, tc0 = nvml_calls(url), thread_cpu(p.pid)
        c0, t0 = cpu(p.pid), time.time()
        nxt = t0
        while time.time() - t0 < WINDOW:   # Prometheus-like: one scrape every 15 s
            if time.time() >= nxt:
                scrape(url); nxt += 15
            time.sleep(0.2)
        c1, t1 = cpu(p.pid), time.time()
        tc1, n1 = thread_cpu(p.pid), nvml_calls(url)
        per_thread = {k: round(1e3 * (v - tc0.get(k, 0.0)) / (t1 - t0), 3) for k, v in tc1.items()}
        calls = {}
        for k, (n, sec) in n1.items():
            dn, ds = n - n0.get(k, [0, 0.0])[0], sec - n0.get(k, [0, 0.0])[1]
            if dn > 0:
                calls[k] = {"per_s": round(dn / (t1 - t0), 3), "ms_per_s": round(1e3 * ds / (t1 - t0), 3),
                            "us_per_call": round(1e6 * ds / dn, 1)}
        lat, size = [], 0
        for _ in range(SCRAPES):
            d, size = scrape(url)
            lat.append(d)
        lat.sort()
        return {"cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 3), "rss_mib": round(rss(p.pid), 1),
                "rss_kib_by_mapping": rss_by_mapping(p.pid),
                "scrape_p50_ms": round(1e3 * statistics.median(lat), 3),
                "scrape_p99_ms": round(1e3 * lat[int(0.99 * (len(lat) - 1))], 3), "page_bytes": size,
                "thread_cpu_ms_per_s": dict(sorted(per_thread.items(), key=lambda kv: -kv[1])),
                "nvml_ms_per_s": round(sum(c["ms_per_s"] for c in calls.values()), 3),
                "nvml_calls": dict(sorted(calls.items(), key=lambda kv: -kv[1]["ms_per_s"])),
                "gpu_load_before": load,
                **({"idle_wakeups": wake, "idle_window_s": idle} if wake else {})}
    finally:
        p.terminate(); p.wait()


res = {}
ONLY = os.environ.get("ONLY", "")
builds = [("vigild", BUILD, None)]
if os.environ.get("VIGILD_BASELINE"):
    builds.insert(0, ("vigild (baseline)", os.environ["VIGILD_BASELINE"], None))
if os.environ.get("VARIANTS"):
    builds = []
    for item in os.environ["VARIANTS"].split(","):
        name, spec = item.split("=", 1)
        bdir, _, conf = spec.partition("@")
        builds.append((name, os.path.abspath(bdir), os.path.abspath(conf) if conf else None))
REPEAT = int(os.environ.get("REPEAT", "1"))
runs = {}
for rep in range(REPEAT):
    for name, bdir, conf in builds:
        tag = name.replace(" ", "_").replace("(", "").replace(")", "") + ("-%d" % rep if REPEAT > 1 else "")
        d = os.path.join(OUT, tag + "-data")
        os.makedirs(d, exist_ok=True)
        pv = port()
        cmd = [os.path.join(bdir, "bin/vigild"), "--listen", "127.0.0.1:%d" % pv, "--socket", "",
               "--data-dir", d] + (["--config", conf] if conf else [])
        runs.setdefault(name, []).append(measure(tag, cmd, "http://127.0.0.1:%d/metrics" % pv,
                                                 idle=int(os.environ.get("IDLE", "30"))))
        with open(os.path.join(OUT, "partial.json"), "w") as fo:  # a run cut short keeps these
            json.dump(runs, fo, indent=1)
for name, rs in runs.items():
    res[name] = rs[0] if len(rs) == 1 else dict(
        [("repeats", rs)] + ([("cpu_percent", round(statistics.median(r["cpu_percent"] for r in rs), 3)),
                              ("rss_mib", round(statistics.median(r["rss_mib"] for r in rs), 1))]
                             if all("cpu_percent" in r for r in rs) else []))
f = subprocess.Popen([os.path.join(BUILD, "bench/nvml_floor"), str(WINDOW)], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
time.sleep(max(WINDOW - 3, 1))
try:
    floor_maps = rss_by_mapping(f.pid)
except OSError:
    floor_maps = None
fout, ferr = f.communicate()
fl = json.loads(fout) if f.returncode == 0 else {"error": ferr}
if floor_maps:
    fl["rss_kib_by_mapping"] = floor_maps
if "cpu_seconds" in fl:
    fl["cpu_percent"] = round(100 * fl["cpu_seconds"] / fl["seconds"], 3)
res["bare NVML loop (floor)"] = fl
if "cpu_percent" in fl:
    floor_ms = 10 * fl["cpu_percent"]  # ms of CPU per second
    for name in runs:
        v = res[name]
        if "cpu_percent" in v:
            ms = 10 * v["cpu_percent"]
            v["x_floor"] = round(ms / floor_ms, 3) if floor_ms else None
            v["target_ms_per_s"] = round(1.25 * floor_ms + 0.2, 3)
            v["cpu_ms_per_s"] = round(ms, 3)
            if "rss_mib" in fl and fl["rss_mib"] > 0:
                v["rss_over_floor_mib"] = round(v["rss_mib"] - fl["rss_mib"], 1)
if ONLY:
    with open(os.path.join(OUT, "gpu-compare.json"), "w") as fo:
        json.dump(res, fo, indent=1)
    print(json.dumps(res, indent=1))
    sys.exit(0)
ps = port()
res["nvidia-smi exporter"] = measure("smi", [sys.executable, os.path.join(HERE, "smi_exporter.py"), str(ps)],
                                     "http://127.0.0.1:%d/metrics" % ps)
pp = port()
res["pynvml exporter"] = measure("pynvml", [sys.executable, os.path.join(HERE, "pynvml_exporter.py"), str(pp)],
                                 "http://127.0.0.1:%d/metrics" % pp)
with open(os.path.join(OUT, "gpu-compare.json"), "w") as fo:
    json.dump(res, fo, indent=1)
print(json.dumps(res, indent=1))
