#!/usr/bin/env python3
"""What judging every request head costs (src/api/framer.c): this build's vigild and a baseline
build's, side by side on the same machine (8 simulated GPUs each), loaded in turn by wrk over
keep-alive connections on /metrics (the scrape) and /healthz (the smallest answer, where the
per-request cost of the framer is the largest share). Reports server CPU per request (the
server's threads, /proc/PID/task/*/schedstat) per round and the median of the per-round ratios
this / baseline.

  bench/framing_cost.py --baseline /tmp/vbase/build [--rounds 3] [--seconds 5] [--json FILE]

The baseline is any other build directory (e.g. `git archive REV | tar -x -C /tmp/vbase`, then
`cmake -S /tmp/vbase -B /tmp/vbase/build && cmake --build /tmp/vbase/build`)."""
import argparse
import os

from _common import BUILD, SCEN, Vigild, machine, median, write_json
from scrape import cpu_of, wrk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="the other build directory")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--json")
    a = ap.parse_args()
    builds = {"this": os.path.join(BUILD, "bin", "vigild"),
              "baseline": os.path.join(a.baseline, "bin", "vigild")}
    daemons = {k: Vigild(scenario=os.path.join(SCEN, "8gpu.yaml"), binary=b) for k, b in builds.items()}
    rounds = {(k, p): [] for k in builds for p in ("/metrics", "/healthz")}
    try:
        for v in daemons.values():
            v.wait_addr()
            v.wait_ready(60)
        for v in daemons.values():  # warm-up
            wrk(v.url + "/metrics", 2, a.connections, 1)
        for r in range(a.rounds):
            for path in ("/metrics", "/healthz"):
                for k, v in daemons.items():
                    c0 = cpu_of(v.pid)
                    w = wrk(v.url + path, a.seconds, a.connections, 1)
                    w["server_cpu_us_per_req"] = (cpu_of(v.pid) - c0) / max(1, w["requests"]) * 1e6
                    rounds[(k, path)].append(w)
                    print("round %d %-8s %-9s %9.0f req/s  server CPU %.2f us/req%s"
                          % (r + 1, k, path, w["rps"], w["server_cpu_us_per_req"],
                             "  non-2xx %d" % w["non2xx"] if w["non2xx"] else ""), flush=True)
    finally:
        for v in daemons.values():
            v.stop()
    res = {"machine": machine(), "builds": builds, "rounds": {"%s %s" % k: v for k, v in rounds.items()}}
    for path in ("/metrics", "/healthz"):
        t, b = rounds[("this", path)], rounds[("baseline", path)]
        ratio = median([x["server_cpu_us_per_req"] / y["server_cpu_us_per_req"] for x, y in zip(t, b)])
        res[path] = {"this_us": median([x["server_cpu_us_per_req"] for x in t]),
                     "baseline_us": median([y["server_cpu_us_per_req"] for y in b]), "ratio": ratio}
        print("FRAMING %-9s server CPU/req this %.2f us, baseline %.2f us, ratio %.3f (median of %d rounds)"
              % (path, res[path]["this_us"], res[path]["baseline_us"], ratio, a.rounds), flush=True)
    write_json(a.json, res)


if __name__ == "__main__":
    main()
