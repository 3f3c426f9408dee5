#!/usr/bin/env python3
"""test_anomaly.py — GPU anomaly detection through the real daemon and the fake NVML.

A +15 C step on one GPU opens a baseline and a peer anomaly (gauge, log line, /api/v1/anomalies);
a GPU 12 C hotter than its peers at the same utilization opens a peer anomaly; noisy GPUs and the
default trace replay open nothing; baselines are persisted to DATA_DIR/baselines.json at stop.
Small windows keep each test short; the step comes when the test moves the fake clock.
"""
import json
import os

from harness import Vigild, check, main, parse_metrics, series, wait_for

CONFIG = """
collection:
  tiers: {fast: 200ms}
anomaly:
  k: 4
  sustain: 1s
  window: 30s
  min_samples: 20
  peer: {k: 5, min_gpus: 4, utilization_band: 20}
"""


def gauges(d, **match):
    return series(parse_metrics(d.metrics()), "vigil_gpu_anomaly", **match)


def active(d):
    return [(l["gpu"], l["field"], l["kind"]) for l, v in gauges(d) if v == 1]


def learned(d):
    """Every baseline learned, and there are baselines: the list is empty before the detector's
    first sweep, and all() of nothing would let a test step the scenario before any baseline."""
    b = [a for a in d.get_json("/api/v1/anomalies")["anomalies"] if a["kind"] == "baseline"]
    return bool(b) and all(a["learned"] for a in b)


def test_step_fires_on_one_gpu():
    with Vigild("anomaly-step.yaml", config=CONFIG) as d:
        # before the step: learned, quiet; then the fake clock jumps to the step at t=8s
        wait_for(lambda: learned(d), 20, "baselines learned")
        check(active(d) == [], "anomalies before the step: %r" % active(d))
        d.advance(8)
        got = wait_for(lambda: {(g, f, k) for g, f, k in active(d)} >=
                       {("2", "GPU_TEMP", "baseline"), ("2", "GPU_TEMP", "peer")} and active(d),
                       15, "GPU 2 temperature anomalies")
        check(all(g == "2" and f == "GPU_TEMP" for g, f, k in got), "unexpected anomalies %r" % got)
        api = d.get_json("/api/v1/anomalies?active=1")
        check(api["active"] == 2 and len(api["anomalies"]) == 2, "api: %r" % api)
        for a in api["anomalies"]:
            check(a["gpu"] == 2 and a["field"] == "GPU_TEMP" and a["value"] >= 64, "api entry %r" % a)
        check({a["kind"] for a in api["anomalies"]} == {"baseline", "peer"}, "api kinds: %r" % api)
    with open(os.path.join(d.data, "baselines.json")) as f:
        saved = json.load(f)
    check(len(saved["gpus"]) == 8, "baselines of %d GPUs saved" % len(saved["gpus"]))


def test_peer_outlier_fires():
    with Vigild("anomaly-peer.yaml", config=CONFIG) as d:
        wait_for(lambda: ("5", "GPU_TEMP", "peer") in active(d), 15, "GPU 5 peer anomaly")
        d.wait_sweeps(10)  # 2 s of samples: nothing else opens
        check(active(d) == [("5", "GPU_TEMP", "peer")], "anomalies: %r" % active(d))
        check(d.metric("vigil_gpu_anomaly", gpu=5, field="GPU_TEMP", kind="peer") == 1, "gauge")


def test_noisy_gpus_stay_quiet():
    with Vigild("anomaly-noisy.yaml", config=CONFIG) as d:
        wait_for(lambda: learned(d), 15, "baselines learned")
        d.wait_sweeps(40)  # 8 s of noisy samples after learning
        check(active(d) == [], "noise opened anomalies: %r" % active(d))
        check(d.get_json("/api/v1/anomalies?active=1")["active"] == 0, "noise opened an anomaly")


def test_default_trace_stays_quiet():
    with Vigild(None, config=CONFIG.replace("sustain: 1s", "sustain: 5s")) as d:
        d.wait_sweeps(100, timeout=60)  # 20 s of the trace at 200 ms
        check(active(d) == [], "the trace replay opened anomalies: %r" % active(d))


if __name__ == "__main__":
    main([test_step_fires_on_one_gpu, test_peer_outlier_fires, test_noisy_gpus_stay_quiet,
          test_default_trace_stays_quiet])
