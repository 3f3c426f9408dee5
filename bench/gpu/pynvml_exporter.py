#!/usr/bin/env python3
"""pynvml_exporter.py PORT — the common Python exporter shape: pynvml + prometheus_client, reading
NVML on every scrape (a custom collector), for the same fields as vigild's fast tier plus energy."""
import sys
import time

import pynvml
from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily, CounterMetricFamily, REGISTRY


class C:
    def collect(self):
        g = {k: GaugeMetricFamily("pynvml_" + k, k, labels=["gpu", "uuid"]) for k in (
            "temperature_celsius", "memory_temperature_celsius", "power_watts", "utilization_ratio",
            "memory_copy_utilization_ratio", "memory_used_bytes", "memory_free_bytes", "sm_clock_hertz",
            "memory_clock_hertz", "clock_event_reasons", "performance_state")}
        e = CounterMetricFamily("pynvml_energy_joules", "energy", labels=["gpu", "uuid"])
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            lab = [str(i), pynvml.nvmlDeviceGetUUID(h)]
            g["temperature_celsius"].add_metric(lab, pynvml.nvmlDeviceGetTemperature(h, 0))
            try:
                mt = pynvml.nvmlDeviceGetFieldValues(h, [82])[0]
                g["memory_temperature_celsius"].add_metric(lab, mt.value.uiVal)
            except Exception:  # not every GPU or pynvml version has field values
                pass
            g["power_watts"].add_metric(lab, pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0)
            u = pynvml.nvmlDeviceGetUtilizationRates(h)
            g["utilization_ratio"].add_metric(lab, u.gpu / 100.0)
            g["memory_copy_utilization_ratio"].add_metric(lab, u.memory / 100.0)
            m = pynvml.nvmlDeviceGetMemoryInfo(h)
            g["memory_used_bytes"].add_metric(lab, m.used)
            g["memory_free_bytes"].add_metric(lab, m.free)
            g["sm_clock_hertz"].add_metric(lab, pynvml.nvmlDeviceGetClockInfo(h, 1) * 1e6)
            g["memory_clock_hertz"].add_metric(lab, pynvml.nvmlDeviceGetClockInfo(h, 2) * 1e6)
            g["clock_event_reasons"].add_metric(lab, pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(h))
            g["performance_state"].add_metric(lab, pynvml.nvmlDeviceGetPerformanceState(h))
            e.add_metric(lab, pynvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0)
        yield from g.values()
        yield e


pynvml.nvmlInit()
REGISTRY.register(C())
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
while True:
    time.sleep(3600)
