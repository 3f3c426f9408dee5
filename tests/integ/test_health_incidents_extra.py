#!/usr/bin/env python3
"""test_health_incidents_extra.py — incidents the health engine opens from other subsystems:

* anomalies: an anomaly that opens (tests/scenarios/anomaly-step.yaml: GPU 2 +15 C at 8 s;
  anomaly-peer.yaml: GPU 5 12 C hotter than its peers) opens anomaly_baseline_<FIELD> /
  anomaly_peer_<FIELD> (warning) with the recommended action of its kind;
* adaptive collection: a tier stretched for longer than health.collection_stretched_after opens
  collection_slow on the node, resolved once the tier is back to its interval.
Small windows keep each case short; the step comes when the test moves the fake clock.
"""
from harness import Vigild, check, main, parse_metrics, series, wait_for

ANOMALY = """
collection:
  tiers: {fast: 200ms}
health: {resolve_after: 1s}
anomaly:
  k: 4
  sustain: 1s
  window: 30s
  min_samples: 20
  peer: {k: 5, min_gpus: 4, utilization_band: 20}
"""

SLOW = """
collection:
  tiers: {fast: 200ms}
  adaptive: {enabled: true, max_share: 0.5, max_stretch: 4}
health: {resolve_after: 1s, collection_stretched_after: 2s}
"""


def incidents(d, all_=False):
    return d.get_json("/api/v1/incidents" + ("?all=true" if all_ else ""))["incidents"]


def by_cond(d, prefix):
    return [(i["gpu"], i["condition"]) for i in incidents(d) if i["condition"].startswith(prefix)]


def test_anomalies_open_incidents():
    with Vigild("anomaly-step.yaml", config=ANOMALY) as d:
        # every baseline learned, and there are baselines (an empty list before the first sweep
        # is not "learned": the step would come before them and only the peer anomaly would open)
        def learned():
            b = [a for a in d.get_json("/api/v1/anomalies")["anomalies"] if a["kind"] == "baseline"]
            return b and all(a["learned"] for a in b)
        wait_for(learned, 20, "baselines learned")
        d.advance(8)  # the fake clock to the step at t=8s
        wait_for(lambda: {(2, "anomaly_baseline_GPU_TEMP"), (2, "anomaly_peer_GPU_TEMP")} <=
                 set(by_cond(d, "anomaly_")), 20, "anomaly incidents on GPU 2")
        check(all(g == 2 for g, c in by_cond(d, "anomaly_")), "anomaly incidents: %r" % by_cond(d, "anomaly_"))
        inc = {i["condition"]: i for i in incidents(d)}
        b, p = inc["anomaly_baseline_GPU_TEMP"], inc["anomaly_peer_GPU_TEMP"]
        check(b["severity"] == "warning" and b["system"] == "thermal", "baseline incident %r" % b)
        check(b["action"] == "investigate the workload or the GPU", "baseline action %r" % b["action"])
        check(p["action"] == "check cooling / power delivery of this GPU", "peer action %r" % p["action"])
        check("GPU_TEMP" in p["detail"], "detail %r" % p["detail"])
    # the peer outlier alone: only the peer incident
    with Vigild("anomaly-peer.yaml", config=ANOMALY) as d:
        wait_for(lambda: (5, "anomaly_peer_GPU_TEMP") in by_cond(d, "anomaly_"), 15, "peer incident on GPU 5")
        d.wait_evaluations(5)  # 1 s of sweeps: nothing else opens
        check(by_cond(d, "anomaly_") == [(5, "anomaly_peer_GPU_TEMP")], "incidents %r" % by_cond(d, "anomaly_"))


def test_collection_slow_opens_and_resolves():
    with Vigild(None, config=SLOW) as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        # 8 GPUs x 20 ms = 160 ms a sweep: 80 % of a 200 ms interval -> stretched
        d.inject(call="nvmlDeviceGetTemperature", cost_us=20000)
        stretched = lambda: series(parse_metrics(d.metrics()), "vigil_collection_stretched", tier="fast")[0][1]
        wait_for(lambda: stretched() == 1, 15, "the fast tier to stretch")
        # not at once: only after collection_stretched_after (the delay is measured in bench/)
        check(by_cond(d, "collection_slow") == [], "opened before collection_stretched_after")
        wait_for(lambda: by_cond(d, "collection_slow"), 5, "collection_slow")
        inc = [i for i in incidents(d) if i["condition"] == "collection_slow"][0]
        check(inc["gpu"] is None and inc["severity"] == "warning", "incident %r" % inc)
        check("fast tier" in inc["detail"], "detail %r" % inc["detail"])
        d.inject(call="nvmlDeviceGetTemperature", cost_us=0)
        wait_for(lambda: stretched() == 0, 20, "the fast tier to recover")
        wait_for(lambda: by_cond(d, "collection_slow") == [], 5, "collection_slow to resolve")
        check([i for i in incidents(d, True) if i["condition"] == "collection_slow"][0]["state"] == "resolved",
              "resolved")


if __name__ == "__main__":
    main([test_anomalies_open_incidents, test_collection_slow_opens_and_resolves])
