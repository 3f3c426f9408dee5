#!/usr/bin/env python3
"""test_watchdog.py — a hung NVML call marks the GPU unresponsive instead of freezing the daemon.

nvmlDeviceGetTemperature is made to take 3 s (POST /api/v1/inject; the fake sleeps a cost above
100 ms). With health.nvml_call_timeout 1s the watchdog gives the call up: gpu_unresponsive opens
within timeout + 1 s, vigil_gpu_responsive drops to 0, and /healthz, /metrics, the API and the slow
tier keep answering meanwhile. Once the cost is lowered the calls return, the GPUs are responsive
again and the incidents resolve.
How fast the incident opens and how fast the API answers meanwhile are measured in
bench/timings.py; this test checks that they happen, in order.
"""
from harness import Vigild, check, main, parse_metrics, series, wait_for

CONFIG = """
collection:
  tiers: {fast: 200ms, slow: 5s}
  adaptive: {enabled: false}
health: {nvml_call_timeout: 1s, resolve_after: 1s}
"""


def unresponsive(d, all_=False):
    inc = d.get_json("/api/v1/incidents" + ("?all=true" if all_ else ""))["incidents"]
    return [i for i in inc if i["condition"] == "gpu_unresponsive"]


def responsive(d):
    return {l["gpu"]: v for l, v in series(parse_metrics(d.metrics()), "vigil_gpu_responsive")}


def answers(d):
    for path in ("/healthz", "/metrics", "/api/v1/health"):
        code = d.get(path)[0]
        check(code == 200, "%s answered %d while a call hangs" % (path, code))


def sweeps(d, tier):
    return series(parse_metrics(d.metrics()), "vigil_collection_sweeps_total", tier=tier)[0][1]


def test_hung_call_marks_unresponsive_and_recovers():
    with Vigild("health-watchdog.yaml", config=CONFIG) as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        check(responsive(d) == {"0": 1, "1": 1}, "responsive at start: %r" % responsive(d))
        check(unresponsive(d) == [], "unresponsive at start")
        slow_before = sweeps(d, "slow")
        d.inject(call="nvmlDeviceGetTemperature", cost_us=3000000)
        # the fast sweep in progress hangs on GPU 0; the watchdog gives it up after 1 s
        wait_for(lambda: [i for i in unresponsive(d) if i["gpu"] == 0], 10, "gpu_unresponsive on GPU 0")
        inc = [i for i in unresponsive(d) if i["gpu"] == 0][0]
        check(inc["severity"] == "critical" and inc["state"] == "open", "incident %r" % inc)
        # /metrics is rendered after each sweep: the next one shows it
        wait_for(lambda: responsive(d)["0"] == 0, 2.5, "vigil_gpu_responsive 0 for GPU 0")
        # GPU 1 is next in the fast tier: it hangs too, and is given up the same way
        wait_for(lambda: [i for i in unresponsive(d) if i["gpu"] == 1], 4, "gpu_unresponsive on GPU 1")
        # new calls are quick again; the ones in progress still hang for up to 3 s: meanwhile the
        # daemon answers and a new thread keeps the fast tier sweeping (skipping the stuck GPUs)
        d.inject(call="nvmlDeviceGetTemperature", cost_us=0)
        answers(d)
        d.wait_sweeps(2)
        answers(d)
        # still before the hung calls returned (3 s) and resolve_after (1 s) passed
        check(len(unresponsive(d)) == 2, "the fast tier swept only after the hung calls returned")
        # calls in progress return within 3 s; then resolve_after 1 s
        wait_for(lambda: responsive(d) == {"0": 1, "1": 1}, 6, "responsive again")
        wait_for(lambda: unresponsive(d) == [], 5, "incidents resolved")
        res = unresponsive(d, True)
        check(len(res) >= 2 and all(i["state"] == "resolved" for i in res), "resolved: %r" % res)
        check(sweeps(d, "slow") > slow_before, "the slow tier stopped")
        # sampling works again: fresh readings on both GPUs
        m = parse_metrics(d.metrics())
        check(len(series(m, "vigil_gpu_temperature_celsius")) == 2, "temperatures")


if __name__ == "__main__":
    main([test_hung_call_marks_unresponsive_and_recovers])
