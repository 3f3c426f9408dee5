#!/usr/bin/env python3
"""wakeups.py — how often an idle vigild wakes up, per thread.

Starts vigild on the fake NVML (8 GPUs, bench/scenarios/8gpu.yaml: fast tier 1 s, slow tier
10 s), waits until it is ready, lets it settle, then counts the context switches of every thread
over a window in which nothing is scraped: /proc/PID/task/TID/status voluntary_ctxt_switches +
nonvoluntary_ctxt_switches (the third field of schedstat, "timeslices run", is read as well).
A thread that sleeps in a timed wait and wakes N times shows about N voluntary switches.

The budget (docs/internals/sampler.md): per tier interval one wake-up of that tier's thread and
of each consumer of its "sweep done" event; the event thread waits in NVML and wakes only for
events (or its long wait's end). Timers of other subsystems show up under their thread names.

Usage: bench/wakeups.py [--duration 60] [--settle 5] [--scenario PATH] [--fast 1s] [--slow 10s]
                       [--json OUT]
VIGIL_BUILD_DIR picks the build whose bin/vigild runs (default: build/)."""
import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def snapshot(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            comm = open(base + "comm").read().strip()
            vol = nonvol = 0
            for line in open(base + "status"):
                if line.startswith("voluntary_ctxt_switches:"):
                    vol = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    nonvol = int(line.split()[1])
            runs = int(open(base + "schedstat").read().split()[2])
        except (OSError, ValueError, IndexError):
            continue
        out[int(tid)] = (comm, vol, nonvol, runs)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("--scenario", default=os.path.join(_common.SCEN, "8gpu.yaml"))
    ap.add_argument("--fast", help="collection.tiers.fast (default: the built-in 1s)")
    ap.add_argument("--slow", help="collection.tiers.slow (default: the built-in 10s)")
    ap.add_argument("--json")
    a = ap.parse_args()

    tiers = {k: v for k, v in (("fast", a.fast), ("slow", a.slow)) if v}
    config = ""
    if tiers:
        config = "collection:\n  tiers: {%s}\n" % ", ".join("%s: %s" % kv for kv in tiers.items())
    d = _common.Vigild(a.scenario, config=config)
    try:
        d.wait_addr()
        d.wait_ready()
        time.sleep(a.settle)
        before = snapshot(d.pid)
        t0 = time.monotonic()
        time.sleep(a.duration)
        after = snapshot(d.pid)
        dt = time.monotonic() - t0
    finally:
        d.stop()

    rows = []
    by_name = collections.OrderedDict()
    for tid in sorted(after):
        comm, vol, nonvol, runs = after[tid]
        b = before.get(tid, (comm, 0, 0, 0))
        r = {"tid": tid, "thread": comm, "voluntary": vol - b[1], "nonvoluntary": nonvol - b[2],
             "timeslices": runs - b[3], "new": tid not in before}
        rows.append(r)
        agg = by_name.setdefault(comm, {"threads": 0, "voluntary": 0, "nonvoluntary": 0,
                                        "timeslices": 0})
        agg["threads"] += 1
        for k in ("voluntary", "nonvoluntary", "timeslices"):
            agg[k] += r[k]
    total = sum(r["voluntary"] + r["nonvoluntary"] for r in rows)
    print("vigild wake-ups over %.1f s, nothing scraped (%s%s)" %
          (dt, a.scenario, ", tiers " + str(tiers) if tiers else ""))
    print("%-8s %-16s %8s %8s %8s %8s" % ("tid", "thread", "vol", "nonvol", "slices", "per s"))
    for r in rows:
        n = r["voluntary"] + r["nonvoluntary"]
        print("%-8d %-16s %8d %8d %8d %8.2f%s" % (r["tid"], r["thread"], r["voluntary"],
                                                  r["nonvoluntary"], r["timeslices"], n / dt,
                                                  "  (new)" if r["new"] else ""))
    print("total context switches: %d (%.2f per s), threads: %d" % (total, total / dt, len(rows)))
    _common.write_json(a.json, {"machine": _common.machine(), "duration_s": dt,
                                "scenario": a.scenario, "tiers": tiers, "vigild": _common.VIGILD,
                                "threads": rows,
                                "by_name": by_name, "total": total, "per_s": total / dt})


if __name__ == "__main__":
    main()
