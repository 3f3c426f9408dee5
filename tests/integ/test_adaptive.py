#!/usr/bin/env python3
"""test_adaptive.py — adaptive collection: raise one NVML call's cost at run time (POST
/api/v1/inject {"call", "cost_us"}) until fast sweeps take more than max_share of the interval;
the fast tier's effective interval stretches (gauge, interval metric, status), and
returns to the configured interval once the cost falls. The slow tier and events are untouched.
"""
from harness import Vigild, check, main, parse_metrics, series, wait_for

CONFIG = """
collection:
  tiers: {fast: 200ms}
  adaptive: {enabled: true, max_share: 0.5, max_stretch: 4}
"""


def tier(d, name):
    m = parse_metrics(d.metrics())
    stretched = series(m, "vigil_collection_stretched", tier=name)[0][1]
    interval = series(m, "vigil_collection_interval_seconds", tier=name)[0][1]
    return stretched, interval


def test_stretch_and_recover():
    with Vigild(None, config=CONFIG) as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        check(tier(d, "fast") == (0, 0.2), "fast tier at start: %r" % (tier(d, "fast"),))
        # 8 GPUs x 20 ms = 160 ms a sweep: 80 % of a 200 ms interval
        d.inject(call="nvmlDeviceGetTemperature", cost_us=20000)
        wait_for(lambda: tier(d, "fast")[0] == 1, 15, "the fast tier to stretch")
        s, iv = tier(d, "fast")
        check(0.2 < iv <= 0.8 + 1e-9, "stretched interval %r out of bounds" % iv)
        st = d.get_json("/api/v1/status")
        check(st["self"]["adaptive"]["fast"]["stretched"] is True, "status: %r" % st["self"]["adaptive"])
        check(st["self"]["adaptive"]["slow"]["stretched"] is False, "slow tier stretched")
        d.inject(call="nvmlDeviceGetTemperature", cost_us=0)
        wait_for(lambda: tier(d, "fast") == (0, 0.2), 20, "the fast tier to recover")
        st = d.get_json("/api/v1/status")
        check(st["self"]["adaptive"]["fast"]["stretched"] is False, "status: %r" % st["self"]["adaptive"])
        check(tier(d, "slow") == (0, 10), "slow tier changed: %r" % (tier(d, "slow"),))


def test_disabled_never_stretches():
    with Vigild(None, config=CONFIG.replace("enabled: true", "enabled: false")) as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        d.inject(call="nvmlDeviceGetTemperature", cost_us=20000)
        d.wait_sweeps(8)  # 8 sweeps of 160 ms each at the raised cost
        check(tier(d, "fast") == (0, 0.2), "stretched while disabled: %r" % (tier(d, "fast"),))
        m = parse_metrics(d.metrics())
        calls = series(m, "vigil_nvml_calls_total", call="nvmlDeviceGetTemperature")
        secs = series(m, "vigil_nvml_call_duration_seconds_total", call="nvmlDeviceGetTemperature")
        check(calls and calls[0][1] > 0 and secs and secs[0][1] > 0.5,
              "NVML call accounting: %r %r" % (calls, secs))


if __name__ == "__main__":
    main([test_stretch_and_recover, test_disabled_never_stretches])
