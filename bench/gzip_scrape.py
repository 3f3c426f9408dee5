#!/usr/bin/env python3
"""/metrics with and without gzip: bytes on the wire and vigild CPU per scrape.

One vigild on the fake NVML (8 GPUs, bench/scenarios/8gpu.yaml) per naming. For each format it
scrapes N times without and N times with `Accept-Encoding: gzip`, in alternating rounds, spread
over several sweeps so the gzip twin is rebuilt as Prometheus would see it (one compression per
rendered snapshot, shared by the scrapes of that snapshot). vigild's CPU (utime+stime from /proc)
is read around each round; the sampling cost of the same wall time is measured in an idle round
and subtracted. Usage: bench/gzip_scrape.py [--scrapes N] [--rounds R] [--out FILE.json]"""
import argparse
import gzip
import json
import os
import sys
import time
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import SCEN, Vigild, machine, median  # noqa: E402

OM = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
TEXT = "text/plain;version=0.0.4"


def scrape(url, accept, gz):
    h = {"Accept": accept}
    if gz:
        h["Accept-Encoding"] = "gzip"
    req = urllib.request.Request(url + "/metrics", headers=h)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read(), r.headers.get("Content-Encoding")


def round_cpu(d, fn, seconds):
    c0, t0 = d.cpu_seconds(), time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        fn()
        n += 1
    return d.cpu_seconds() - c0, time.monotonic() - t0, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0, help="per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    res = {"machine": machine(), "cases": []}
    for naming, cfg in (("vigil", ""), ("dcgm", "metrics:\n  naming: dcgm\n")):
        d = Vigild(scenario=os.path.join(SCEN, "8gpu.yaml"), config=cfg)
        try:
            d.wait_addr()
            d.wait_ready()
            time.sleep(2)
            formats = [("text", TEXT)] + ([("openmetrics", OM)] if naming == "vigil" else [])
            for fname, accept in formats:
                plain, enc0 = scrape(d.url, accept, False)
                z, enc1 = scrape(d.url, accept, True)
                assert enc0 is None and enc1 == "gzip", (enc0, enc1)
                assert len(gzip.decompress(z)) > 0
                per = {"plain": [], "gzip": [], "idle": []}
                for _ in range(a.rounds):
                    for mode in ("plain", "gzip", "idle"):
                        if mode == "idle":
                            cpu, wall, n = round_cpu(d, lambda: time.sleep(0.05), a.seconds)
                            per[mode].append(cpu / wall)
                            continue
                        cpu, wall, n = round_cpu(d, lambda: scrape(d.url, accept, mode == "gzip"),
                                                 a.seconds)
                        per[mode].append((cpu, wall, n))
                idle = median(per["idle"])  # CPU-seconds per second with no scrapes
                # the one compression per snapshot, as vigild does it (zlib level 6, gzip wrapper)
                t0 = time.process_time()
                for _ in range(50):
                    c = zlib.compressobj(6, zlib.DEFLATED, 31)
                    c.compress(plain)
                    c.flush()
                comp_us = (time.process_time() - t0) / 50 * 1e6
                row = {"naming": naming, "format": fname, "bytes_plain": len(plain),
                       "bytes_gzip": len(z), "ratio": round(len(plain) / len(z), 1),
                       "compress_us_per_snapshot": round(comp_us)}
                for mode in ("plain", "gzip"):
                    us = [(cpu - idle * wall) / n * 1e6 for cpu, wall, n in per[mode]]
                    rps = [n / wall for cpu, wall, n in per[mode]]
                    row["cpu_us_per_scrape_" + mode] = round(median(us), 1)
                    row["scrapes_per_s_" + mode] = round(median(rps))
                res["cases"].append(row)
                print(json.dumps(row))
        finally:
            d.stop()
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
