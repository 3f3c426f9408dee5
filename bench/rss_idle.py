#!/usr/bin/env python3
"""RSS of an idle vigild watching one simulated GPU, broken down per mapping.

Starts vigild (VIGIL_BUILD_DIR picks the build) on bench/scenarios/1gpu.yaml, waits until it is
ready plus --settle seconds with nothing scraped, then sums /proc/PID/smaps Rss per mapping name
(anonymous mappings: "[anon]"; thread stacks are anonymous too) and reads smaps_rollup. --runs
repeats it with a fresh daemon each time and reports the median total."""
import argparse
import collections
import os
import statistics
import time

from _common import Vigild, write_json

SCEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios", "1gpu.yaml")


def breakdown(pid):
    per = collections.Counter()
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                name = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
                if name.startswith("lib") and ".so" in name:
                    name = name.split(".so")[0]
            elif parts[0] == "Rss:":
                per[name] += int(parts[1])
    return per


def one(settle, extra_env):
    v = Vigild(scenario=SCEN)
    try:
        v.wait_addr()
        v.wait_ready()
        time.sleep(settle)
        per = breakdown(v.pid)
        with open("/proc/%d/smaps_rollup" % v.pid) as f:
            rollup = {l.split(":")[0]: int(l.split()[1]) for l in f if l.split()[0].endswith(":")
                      and l.split()[1].isdigit()}
        threads = len(os.listdir("/proc/%d/task" % v.pid))
        return {"rss_kib": rollup.get("Rss"), "anon_kib": rollup.get("Anonymous"),
                "threads": threads, "per_mapping_kib": dict(per.most_common())}
    finally:
        v.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--json")
    a = ap.parse_args()
    runs = [one(a.settle, None) for _ in range(a.runs)]
    med = statistics.median(r["rss_kib"] for r in runs)
    best = min(runs, key=lambda r: abs(r["rss_kib"] - med))
    print("RSS median %.1f MiB over %d runs (%s KiB), anonymous %.1f MiB, %d threads" %
          (med / 1024, a.runs, [r["rss_kib"] for r in runs], best["anon_kib"] / 1024,
           best["threads"]))
    for k, kib in list(best["per_mapping_kib"].items())[:16]:
        print("  %-28s %7.2f MiB" % (k, kib / 1024))
    if a.json:
        write_json(a.json, {"median_rss_kib": med, "runs": runs})


if __name__ == "__main__":
    main()
