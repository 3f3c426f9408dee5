#!/usr/bin/env python3
"""Item 4: soak. vigild (8 simulated GPUs, default scenario and tiers) runs for --duration seconds
while a load scrapes /metrics and the REST API; RSS (VmRSS) and open fds are sampled every
--every seconds. Reports growth after --warmup seconds (last - first sample, max - min, and a
least-squares slope in KiB/h)."""
import argparse
import threading
import time
import urllib.error

from _common import Vigild, get, machine, write_json

API = ["/metrics", "/api/v1/status", "/api/v1/gpus", "/api/v1/fields", "/healthz", "/readyz",
       "/api/v1/gpus/0", "/metrics", "/api/v1/gpus?fields=GPU_TEMP,POWER_USAGE",
       "/api/v1/gpus/3/history?field=GPU_TEMP&since=300", "/api/v1/gpus/0/nonexistent"]


def load(url, stop, rate, counts):
    i = 0
    period = 1.0 / rate
    nxt = time.monotonic()
    while not stop.is_set():
        p = API[i % len(API)]
        i += 1
        try:
            get(url + p, timeout=5)
            counts["ok"] += 1
        except urllib.error.HTTPError:
            counts["http_err"] += 1  # e.g. an endpoint this version lacks: still exercises the path
        except OSError:
            counts["fail"] += 1
        nxt += period
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
        else:
            nxt = time.monotonic()


def slope_per_hour(ts, ys):
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    return 0.0 if den == 0 else sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den * 3600


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--every", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--rate", type=float, default=20, help="requests/s of the load (CI-sized)")
    ap.add_argument("--json")
    a = ap.parse_args()
    v = Vigild()
    try:
        v.wait_addr()
        v.wait_ready()
        stop = threading.Event()
        counts = {"ok": 0, "http_err": 0, "fail": 0}
        th = threading.Thread(target=load, args=(v.url, stop, a.rate, counts), daemon=True)
        th.start()
        t0 = time.monotonic()
        rows = []
        while True:
            t = time.monotonic() - t0
            used = v.status()["cache"]["bytes_used"]
            rows.append((t, v.rss_kib(), v.fds(), used))
            print("soak t=%5.0fs rss=%d KiB fds=%d history=%d B req_ok=%d"
                  % (t, rows[-1][1], rows[-1][2], used, counts["ok"]), flush=True)
            if t >= a.duration:
                break
            time.sleep(max(0.0, min(a.every, a.duration - t)))
        stop.set()
        th.join(10)
        st = v.status()
    finally:
        rc = v.stop()
    post = [r for r in rows if r[0] >= a.warmup]
    res = {
        "machine": machine(), "duration_s": a.duration, "warmup_s": a.warmup, "rate": a.rate,
        "requests": counts, "samples": rows, "exit_code": rc,
        "fast_sweeps": st["tiers"]["fast"]["sweeps"],
        "rss_kib_first_after_warmup": post[0][1], "rss_kib_last": post[-1][1],
        "rss_kib_max_minus_min_after_warmup": max(r[1] for r in post) - min(r[1] for r in post),
        "rss_slope_kib_per_h": slope_per_hour([r[0] for r in post], [r[1] for r in post]),
        "fds_first_after_warmup": post[0][2], "fds_last": post[-1][2],
        "fds_max_minus_min_after_warmup": max(r[2] for r in post) - min(r[2] for r in post),
    }
    growth = res["rss_kib_last"] - res["rss_kib_first_after_warmup"]
    # The history ring is reserved at start but its pages are first touched as it fills (bounded by
    # keep.max_samples; see memory.py): RSS may grow by what the history grew, rounded up to pages.
    hist_kib = (post[-1][3] - post[0][3]) / 1024.0
    res["history_growth_kib"] = hist_kib
    res["rss_growth_beyond_history_kib"] = growth - hist_kib
    # fds: the load's in-flight connection shows up as +1 at random samples, so compare the
    # steady count (the minimum) of the first and the last 5 samples after warm-up.
    res["fds_steady_first"] = min(r[2] for r in post[:5])
    res["fds_steady_last"] = min(r[2] for r in post[-5:])
    res["pass"] = growth <= hist_kib + 8 and res["fds_steady_last"] <= res["fds_steady_first"]
    print("SOAK rss %d -> %d KiB (growth %+d KiB, history ring +%.0f KiB, max-min %d, slope %+.1f KiB/h); fds %d -> %d (steady %d -> %d); "
          "requests ok=%d http_err=%d fail=%d; exit %s; %s"
          % (res["rss_kib_first_after_warmup"], res["rss_kib_last"], growth, hist_kib,
             res["rss_kib_max_minus_min_after_warmup"], res["rss_slope_kib_per_h"],
             res["fds_first_after_warmup"], res["fds_last"], res["fds_steady_first"], res["fds_steady_last"],
             counts["ok"], counts["http_err"],
             counts["fail"], rc, "PASS" if res["pass"] else "GROWTH beyond history"))
    write_json(a.json, res)


if __name__ == "__main__":
    main()
