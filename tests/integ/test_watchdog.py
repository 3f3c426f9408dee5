#!/usr/bin/env python3
"""test_watchdog.py — a hung NVML call marks the GPU unresponsive instead of freezing the daemon.

nvmlDeviceGetTemperature is made to take 3 s (POST /api/v1/inject; the fake sleeps a cost above
100 ms). With health.nvml_call_timeout 1s the watchdog gives the call up: gpu_unresponsive opens
within timeout + 1 s, vigil_gpu_responsive drops to 0, and /healthz, /metrics, the API and the slow
tier keep answering meanwhile. Once the cost is lowered the calls return, the GPUs are responsive
again and the incidents resolve.
"""
import time

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


def timed_get(d, path, limit=1.0):
    t = time.monotonic()
    code = d.get(path)[0]
    took = time.monotonic() - t
    check(code == 200 and took < limit, "%s answered %d in %.2fs while a call hangs" % (path, code, took))


def sweeps(d, tier):
    return series(parse_metrics(d.metrics()), "vigil_collection_sweeps_total", tier=tier)[0][1]


def test_hung_call_marks_unresponsive_and_recovers():
    with Vigild("health-watchdog.yaml", config=CONFIG) as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        check(responsive(d) == {"0": 1, "1": 1}, "responsive at start: %r" % responsive(d))
        check(unresponsive(d) == [], "unresponsive at start")
        t0 = time.monotonic()
        slow_before = sweeps(d, "slow")
        d.inject(call="nvmlDeviceGetTemperature", cost_us=3000000)
        # the fast sweep in progress hangs on GPU 0 within one interval; timeout 1 s; +1 s slack
        wait_for(lambda: [i for i in unresponsive(d) if i["gpu"] == 0], 0.2 + 1 + 1 + 0.5,
                 "gpu_unresponsive on GPU 0")
        opened = time.monotonic() - t0
        check(opened < 2.7, "opened after %.2fs" % opened)
        inc = [i for i in unresponsive(d) if i["gpu"] == 0][0]
        check(inc["severity"] == "critical" and inc["state"] == "open", "incident %r" % inc)
        # /metrics is rendered after each sweep: the next one shows it
        wait_for(lambda: responsive(d)["0"] == 0, 2.5, "vigil_gpu_responsive 0 for GPU 0")
        # GPU 1 is next in the fast tier: it hangs too, and is given up the same way
        wait_for(lambda: [i for i in unresponsive(d) if i["gpu"] == 1], 4, "gpu_unresponsive on GPU 1")
        # new calls are quick again; the ones in progress still hang for up to 3 s: meanwhile the
        # daemon answers and a new thread keeps the fast tier sweeping (skipping the stuck GPUs)
        d.inject(call="nvmlDeviceGetTemperature", cost_us=0)
        before = sweeps(d, "fast")
        for _ in range(4):
            timed_get(d, "/healthz")
            timed_get(d, "/metrics")
            timed_get(d, "/api/v1/health")
            time.sleep(0.25)
        check(sweeps(d, "fast") >= before + 2, "the fast tier stopped at %r" % before)
        check("marked unresponsive" in d.logs(), "no log line")
        # calls in progress return within 3 s; then resolve_after 1 s
        wait_for(lambda: responsive(d) == {"0": 1, "1": 1}, 6, "responsive again")
        wait_for(lambda: unresponsive(d) == [], 5, "incidents resolved")
        res = unresponsive(d, True)
        check(len(res) >= 2 and all(i["state"] == "resolved" for i in res), "resolved: %r" % res)
        check("responsive again" in d.logs(), "no recovery log line")
        check(sweeps(d, "slow") > slow_before, "the slow tier stopped")
        # sampling works again: fresh readings on both GPUs
        m = parse_metrics(d.metrics())
        check(len(series(m, "vigil_gpu_temperature_celsius")) == 2, "temperatures")


if __name__ == "__main__":
    main([test_hung_call_marks_unresponsive_and_recovers])
