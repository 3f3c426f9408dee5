#!/usr/bin/env python3
"""Item 3: the scrape path. vigild (8 simulated GPUs, default scenario) and Debian's
prometheus-node-exporter run side by side; wrk loads their /metrics alternately (vigild, then
node_exporter, --rounds times), so both see the same machine state. Reports req/s, p50 and p99
latency (wrk --latency) per round, medians over rounds, the ratio vigild / node_exporter and the
server CPU per request (CPU of the server's threads over the round / requests).

node_exporter is started on a free loopback port with the default collectors plus
interrupts, processes, tcpstat, cpu.info, meminfo_numa, mountstats, ksmd and lnstat, which makes
its page about the size of vigild's 8-GPU page (~88 KB on the benchmark machine; both sizes are
measured and printed each run)."""
import argparse
import os
import re
import subprocess
import time

from _common import SCEN, Vigild, free_port, get, machine, median, write_json

NE = os.environ.get("NODE_EXPORTER", "/usr/bin/prometheus-node-exporter")
NE_FLAGS = ["--collector.interrupts", "--collector.processes", "--collector.tcpstat",
            "--collector.cpu.info", "--collector.meminfo_numa", "--collector.mountstats",
            "--collector.ksmd", "--collector.lnstat"]


def cpu_of(pid):
    tot = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                tot += int(f.read().split()[0])
        except OSError:
            pass
    return tot / 1e9


def unit(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[u]


def wrk(url, seconds, conns, threads):
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: unit(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "requests": reqs,
            "non2xx": int(errs.group(1)) if errs else 0, "socket_errors": sock.group(1) if sock else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    v = Vigild(scenario=os.path.join(SCEN, "8gpu.yaml"))
    port = free_port()
    ne = subprocess.Popen([NE, "--web.listen-address=127.0.0.1:%d" % port] + NE_FLAGS,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    targets = {}
    try:
        v.wait_addr()
        v.wait_ready(60)
        neu = "http://127.0.0.1:%d" % port
        for _ in range(100):
            try:
                get(neu + "/metrics")
                break
            except OSError:
                time.sleep(0.1)
        targets = {"vigild": (v.url + "/metrics", v.pid), "node_exporter": (neu + "/metrics", ne.pid)}
        sizes = {}
        for k, (u, _) in targets.items():
            body = get(u).decode()
            sizes[k] = {"bytes": len(body), "samples": sum(1 for l in body.splitlines() if l and l[0] != "#")}
        print("page sizes: " + ", ".join("%s %d B / %d samples" % (k, s["bytes"], s["samples"])
                                         for k, s in sizes.items()), flush=True)
        for k, (u, _) in targets.items():  # warm-up
            wrk(u, 2, a.connections, a.threads)
        rounds = {k: [] for k in targets}
        for r in range(a.rounds):
            for k, (u, pid) in targets.items():
                c0 = cpu_of(pid)
                w = wrk(u, a.seconds, a.connections, a.threads)
                w["server_cpu_us_per_req"] = (cpu_of(pid) - c0) / max(1, w["requests"]) * 1e6
                rounds[k].append(w)
                print("round %d %-13s %9.1f req/s  p50 %.3f ms  p99 %.3f ms  server CPU %.1f us/req%s"
                      % (r + 1, k, w["rps"], w["p50_ms"], w["p99_ms"], w["server_cpu_us_per_req"],
                         "  non-2xx %d" % w["non2xx"] if w["non2xx"] else ""), flush=True)
    finally:
        v.stop()
        ne.terminate()
        ne.wait(10)
    res = {"machine": machine(), "sizes": sizes, "rounds": rounds,
           "wrk": "wrk -t%d -c%d -d%ds --latency" % (a.threads, a.connections, a.seconds)}
    med = {k: {m: median([w[m] for w in rs]) for m in ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_req")}
           for k, rs in rounds.items()}
    res["median"] = med
    res["ratios"] = {
        "rps_vigild_over_ne": median([a_["rps"] / b_["rps"] for a_, b_ in zip(rounds["vigild"], rounds["node_exporter"])]),
        "p50_ne_over_vigild": median([b_["p50_ms"] / a_["p50_ms"] for a_, b_ in zip(rounds["vigild"], rounds["node_exporter"])]),
        "p99_ne_over_vigild": median([b_["p99_ms"] / a_["p99_ms"] for a_, b_ in zip(rounds["vigild"], rounds["node_exporter"])]),
    }
    res["pass"] = res["ratios"]["rps_vigild_over_ne"] > 1 and res["ratios"]["p99_ne_over_vigild"] > 1
    print("SCRAPE vigild %.0f req/s p50 %.3f ms p99 %.3f ms (%.1f us CPU/req) | node_exporter %.0f req/s p50 %.3f ms "
          "p99 %.3f ms (%.1f us CPU/req) | req/s ratio %.1fx, p50 %.1fx, p99 %.1fx faster (median of %d rounds) -> %s"
          % (med["vigild"]["rps"], med["vigild"]["p50_ms"], med["vigild"]["p99_ms"], med["vigild"]["server_cpu_us_per_req"],
             med["node_exporter"]["rps"], med["node_exporter"]["p50_ms"], med["node_exporter"]["p99_ms"],
             med["node_exporter"]["server_cpu_us_per_req"], res["ratios"]["rps_vigild_over_ne"],
             res["ratios"]["p50_ne_over_vigild"], res["ratios"]["p99_ne_over_vigild"], a.rounds,
             "PASS" if res["pass"] else "MISS"))
    write_json(a.json, res)


if __name__ == "__main__":
    main()
