#!/usr/bin/env python3
"""Item 1: agent CPU against the NVML floor, fast-tier sweep wall time, startup time.

Phase A (cost): one vigild per GPU count (default 8 and 64, bench/scenarios/{N}gpu.yaml: the
default scenario's per-call CPU costs, busy-waited) at the default tiers (fast 1 s, slow 10 s),
all started together and measured side by side over the same --windows x --window seconds after
--warmup. Per window and daemon: process CPU (all threads, /proc/PID/task/*/schedstat, ns) and the
fake NVML's modelled CPU (GET /api/v1/status fake_nvml.cost_cpu_seconds, = the floor). During the
windows each daemon is scraped every --scrape-interval seconds (15 s, Prometheus's usual interval,
with Prometheus's Accept header), because vigild renders /metrics only for formats being scraped;
besides that, one status request per daemon per window boundary.
Target: CPU/s <= 1.25 x floor/s + 0.5 ms/s.

Phase B (sweep): the fast tier's sweep wall time from the status endpoint (polled every 0.5 s,
each distinct sweep counted once) and from the vigil_collection_duration_seconds histogram.
Target: <= 1 ms for 8 GPUs.

Phase D (--bare-loop, after the others): build/bench/nvml_floor, the bare C loop that the GPU
comparison (bench/gpu/compare.py) uses as its floor, run against the same fake NVML and scenario
(loaded as libnvidia-ml.so.1) for --windows x --window seconds, one run per window; its own CPU
is the bare loop's cost, which includes what the fake does besides its modelled cost (its
bookkeeping, the sleeps of its modelled blocking calls). Reported next to the modelled floor:
vigild's median CPU over the bare loop's median, the ratio the GPU runs quote.

Phase C (startup): --starts sequential starts of the 8-GPU daemon; wall time from spawn to the end
of the first fast sweep (tiers.fast.last_sweep_us, the sweep's end) and to /readyz = 200 (both
tiers swept once; the slow tier's first sweep reads every expensive counter)."""
import argparse
import re
import time
import urllib.error
import urllib.request

SCRAPE_INTERVAL = 15.0

from _common import SCEN, Vigild, get, machine, median, pct, write_json
import os


def fake_cost(st):
    f = st.get("fake_nvml") or {}
    return f.get("cost_cpu_seconds", 0.0), f.get("calls", 0)


def hist(url, tier="fast"):
    txt = get(url + "/metrics").decode()
    b = {}
    s = c = 0.0
    for m in re.finditer(r'^vigil_collection_duration_seconds_(bucket|sum|count)\{([^}]*)\} (\S+)$', txt, re.M):
        labels = m.group(2)
        if 'tier="%s"' % tier not in labels:
            continue
        if m.group(1) == "bucket":
            le = re.search(r'le="([^"]+)"', labels).group(1)
            b[float("inf") if le == "+Inf" else float(le)] = float(m.group(3))
        elif m.group(1) == "sum":
            s = float(m.group(3))
        else:
            c = float(m.group(3))
    return b, s, c


def phase_cost(counts, windows, window, warmup):
    ds = {n: Vigild(scenario=os.path.join(SCEN, "%dgpu.yaml" % n)) for n in counts}
    res = {}
    try:
        for v in ds.values():
            v.wait_addr()
        for v in ds.values():
            v.wait_ready(60)
        time.sleep(warmup)
        marks = {n: [] for n in counts}

        def mark():
            for n, v in ds.items():
                st = v.status()
                cost, calls = fake_cost(st)
                marks[n].append((time.monotonic(), v.cpu_seconds(), cost, calls,
                                 st["tiers"]["fast"]["sweeps"], st["tiers"]["slow"]["sweeps"]))
        mark()
        prom_accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                       "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")

        def scrape_all():
            for v in ds.values():
                req = urllib.request.Request(v.url + "/metrics", headers={"Accept": prom_accept})
                with urllib.request.urlopen(req, timeout=10) as r:
                    r.read()
        for w in range(windows):
            end = time.monotonic() + window
            while True:
                scrape_all()
                left = end - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(SCRAPE_INTERVAL, left))
            mark()
            for n in counts:
                a, b = marks[n][-2], marks[n][-1]
                el = b[0] - a[0]
                cpu, floor = (b[1] - a[1]) / el, (b[2] - a[2]) / el
                print("cost window %d: %2d GPUs cpu=%.3f ms/s floor=%.3f ms/s ratio=%.3f over=%.3f ms/s "
                      "limit=%.3f ms/s" % (w + 1, n, cpu * 1e3, floor * 1e3, cpu / floor if floor else 0,
                                           (cpu - floor) * 1e3, (1.25 * floor + 0.0005) * 1e3), flush=True)
        for n in counts:
            ws = []
            m = marks[n]
            for a, b in zip(m, m[1:]):
                el = b[0] - a[0]
                cpu, floor = (b[1] - a[1]) / el, (b[2] - a[2]) / el
                ws.append({"seconds": el, "cpu_s_per_s": cpu, "floor_s_per_s": floor,
                           "ratio": cpu / floor if floor else None, "calls_per_s": (b[3] - a[3]) / el,
                           "fast_sweeps": b[4] - a[4], "slow_sweeps": b[5] - a[5]})
            cpu = median([w["cpu_s_per_s"] for w in ws])
            floor = median([w["floor_s_per_s"] for w in ws])
            ratio = median([w["ratio"] for w in ws])
            over = median([w["cpu_s_per_s"] - w["floor_s_per_s"] for w in ws])
            limit = 1.25 * floor + 0.0005
            res[n] = {"windows": ws, "cpu_ms_per_s": cpu * 1e3, "floor_ms_per_s": floor * 1e3,
                      "ratio": ratio, "overhead_ms_per_s": over * 1e3,
                      "cpu_ms_per_gpu_s": cpu * 1e3 / n, "floor_ms_per_gpu_s": floor * 1e3 / n,
                      "limit_ms_per_s": limit * 1e3, "pass": cpu <= limit,
                      "calls_per_gpu_s": median([w["calls_per_s"] for w in ws]) / n}
    finally:
        for v in ds.values():
            v.stop()
    return res


def phase_sweep(seconds):
    v = Vigild(scenario=os.path.join(SCEN, "8gpu.yaml"))
    try:
        v.wait_addr()
        v.wait_ready(60)
        b0, s0, c0 = hist(v.url)
        seen = {}
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            f = v.status()["tiers"]["fast"]
            seen[f["last_sweep_us"]] = f["last_duration_seconds"]
            time.sleep(0.5)
        b1, s1, c1 = hist(v.url)
    finally:
        v.stop()
    d = sorted(seen.values())
    buckets = {k: b1.get(k, 0) - b0.get(k, 0) for k in b1}
    n = c1 - c0
    le_p50 = next((k for k in sorted(buckets) if buckets[k] >= 0.5 * n), None)
    le_p99 = next((k for k in sorted(buckets) if buckets[k] >= 0.99 * n), None)
    return {"sweeps_seen": len(d), "median_ms": median(d) * 1e3, "p99_ms": pct(d, 99) * 1e3,
            "max_ms": max(d) * 1e3 if d else None,
            "hist_mean_ms": (s1 - s0) / n * 1e3 if n else None, "hist_count": n,
            "hist_p50_le_s": le_p50, "hist_p99_le_s": le_p99,
            "pass": median(d) <= 0.001}


def phase_startup(starts):
    out = []
    for i in range(starts):
        v = Vigild(scenario=os.path.join(SCEN, "8gpu.yaml"))
        try:
            v.wait_addr(poll=0.001)
            first_fast = ready = None
            end = time.monotonic() + 30
            while time.monotonic() < end and (first_fast is None or ready is None):
                if first_fast is None:
                    f = v.status()["tiers"]["fast"]
                    if f["sweeps"] >= 1:
                        first_fast = f["last_sweep_us"] / 1e6 - v.t_spawn
                if ready is None:
                    try:
                        get(v.url + "/readyz")
                        ready = time.monotonic() - v.t_spawn_mono
                    except urllib.error.HTTPError:
                        pass
                time.sleep(0.002)
        finally:
            v.stop()
        print("startup %d: first fast sweep %.1f ms, ready %.1f ms" % (i + 1, first_fast * 1e3, ready * 1e3),
              flush=True)
        out.append({"first_fast_sweep_ms": first_fast * 1e3, "ready_ms": ready * 1e3})
        time.sleep(0.5)
    return {"runs": out, "first_fast_sweep_ms_median": median([r["first_fast_sweep_ms"] for r in out]),
            "ready_ms_median": median([r["ready_ms"] for r in out])}


def phase_bare_loop(counts, windows, window):
    """CPU of build/bench/nvml_floor on the fake NVML, per GPU count: windows runs of window s."""
    import json
    import subprocess
    import tempfile
    from _common import BUILD
    prog = os.path.join(BUILD, "bench", "nvml_floor")
    fake = os.path.join(BUILD, "lib", "libvigil-fakenvml.so")
    out = {}
    with tempfile.TemporaryDirectory(prefix="vigil-bare-") as d:
        os.symlink(fake, os.path.join(d, "libnvidia-ml.so.1"))
        for n in counts:
            env = dict(os.environ, LD_LIBRARY_PATH=d,
                       VIGIL_FAKE_SCENARIO=os.path.join(SCEN, "%dgpu.yaml" % n))
            runs, calls = [], []
            for w in range(windows):
                p = subprocess.run([prog, str(int(window))], env=env, capture_output=True,
                                   text=True, timeout=window + 60)
                r = json.loads(p.stdout.strip().splitlines()[-1])
                runs.append(1000.0 * r["cpu_seconds"] / r["seconds"])
                calls.append(r.get("fake_calls", 0) / r["seconds"])
                print("bare loop window %d: %2d GPUs %.3f ms/s, %.0f NVML calls/s" % (w + 1, n, runs[-1], calls[-1]),
                      flush=True)
            out[n] = {"runs_ms_per_s": runs, "median_ms_per_s": median(runs), "calls_per_s": median(calls)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", default="8,64")
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--window", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=12)
    ap.add_argument("--sweep-seconds", type=float, default=30)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--scrape-interval", type=float, default=15.0)
    ap.add_argument("--bare-loop", action="store_true",
                    help="also measure build/bench/nvml_floor on the fake (phase D)")
    ap.add_argument("--json")
    a = ap.parse_args()
    global SCRAPE_INTERVAL
    SCRAPE_INTERVAL = a.scrape_interval
    counts = [int(x) for x in a.gpus.split(",")]
    res = {"machine": machine(), "cost": phase_cost(counts, a.windows, a.window, a.warmup)}
    res["sweep"] = phase_sweep(a.sweep_seconds)
    res["startup"] = phase_startup(a.starts)
    if a.bare_loop:
        res["bare_loop"] = phase_bare_loop(counts, a.windows, a.window)
        for n, b in res["bare_loop"].items():
            c = res["cost"][n]
            b["ratio"] = c["cpu_ms_per_s"] / b["median_ms_per_s"]
            b["modelled_floor_ms_per_s"] = c["floor_ms_per_s"]
    for n, r in res["cost"].items():
        print("AGENT_COST %2d GPUs: cpu %.3f ms/s (%.4f ms per GPU-s), floor %.3f ms/s, ratio %.3f (median of %d x %gs), "
              "overhead %.3f ms/s, limit %.3f ms/s -> %s" % (n, r["cpu_ms_per_s"], r["cpu_ms_per_gpu_s"],
                                                           r["floor_ms_per_s"], r["ratio"], a.windows, a.window,
                                                           r["overhead_ms_per_s"], r["limit_ms_per_s"],
                                                           "PASS" if r["pass"] else "MISS"))
    for n, b in res.get("bare_loop", {}).items():
        print("BARE_LOOP %2d GPUs: nvml_floor on the fake %.3f ms/s, %.0f NVML calls/s (median of %d x %gs); "
              "vigild %.3f ms/s, %.0f calls/s, modelled floor %.3f ms/s: %.3f x the bare loop"
              % (n, b["median_ms_per_s"], b["calls_per_s"], a.windows, a.window, res["cost"][n]["cpu_ms_per_s"],
                 res["cost"][n]["calls_per_gpu_s"] * n, b["modelled_floor_ms_per_s"], b["ratio"]))
    s = res["sweep"]
    print("SWEEP 8 GPUs fast tier: median %.3f ms, p99 %.3f ms over %d sweeps (histogram mean %.3f ms) -> %s"
          % (s["median_ms"], s["p99_ms"], s["sweeps_seen"], s["hist_mean_ms"] or 0, "PASS" if s["pass"] else "MISS"))
    s = res["startup"]
    print("STARTUP 8 GPUs: first fast sweep %.1f ms, ready (both tiers) %.1f ms (median of %d)"
          % (s["first_fast_sweep_ms_median"], s["ready_ms_median"], len(s["runs"])))
    write_json(a.json, res)


if __name__ == "__main__":
    main()
