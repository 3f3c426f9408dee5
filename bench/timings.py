#!/usr/bin/env python3
"""timings.py — the latencies the pass/fail tests used to assert, measured and recorded instead.

The tests check that each thing happens, in order; how long it takes depends on the machine and
its load, so it is measured here (`make bench`, bench/run.sh --only timings) and recorded, never
a pass/fail verdict:

  fake NVML (ctypes on libvigil-fakenvml.so):
    event_wait_timeout_ms     nvmlEventSetWait(100 ms) with nothing registered (target ~100)
    event_wake_ms             a waiter blocked for 30 s, woken by an injected XID
    call_cost_cpu_ms          CPU of one nvmlDeviceGetTemperature with a 5 ms modelled cost
    call_cost_wall_ms         wall time of nvmlDeviceGetPcieThroughput in heavy-costs.yaml (5 ms
                              CPU + 50 ms sleep: >= 55)
  vigild (the integration harness):
    start_to_8_gpus_s         exec -> 8 GPUs with temperatures in /metrics (target < 1 s)
    xid_to_health_fail_s      POST inject XID 79 -> GET /api/v1/health says FAIL (target < 1 s)
    xid_to_metrics_s          POST inject XID 79 -> vigil_gpu_xid_errors_total counts it
    hung_call_to_incident_s   a 3 s NVML call -> gpu_unresponsive open (timeout 1 s; < 2.7 s)
    api_during_hang_max_s     slowest of /healthz, /metrics, /api/v1/health while it hangs (< 1 s)
    stretch_to_collection_slow_s  fast tier stretched -> collection_slow (after >= 2 s setting)
    slowloris_close_s         partial connections closed after connection_timeout 3 s
    sigterm_to_exit_s         SIGTERM -> exit of a running vigild

Prints one line per measurement (TIMING name value unit) and writes --json FILE.
"""
import argparse
import ctypes
import json
import os
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integ"))
from harness import BUILD, SCENARIOS, Vigild, parse_metrics, series, wait_for  # noqa: E402

RESULTS = {}


def record(name, value, unit):
    RESULTS[name] = {"value": round(value, 6), "unit": unit}
    print("TIMING %-30s %10.4f %s" % (name, value, unit), flush=True)


# ---- fake NVML --------------------------------------------------------------------------------

class FakeInject(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("gpu", ctypes.c_uint), ("field_id", ctypes.c_uint),
                ("value", ctypes.c_double), ("count", ctypes.c_longlong), ("call", ctypes.c_char_p)]


FAKE_INJECT_XID, FAKE_INJECT_CALL_COST = 1, 7
XID_EVENT = 0x8  # nvmlEventTypeXidCriticalError


def fake_nvml():
    lib = ctypes.CDLL(os.path.join(BUILD, "lib", "libvigil-fakenvml.so"))
    err = ctypes.create_string_buffer(512)

    def start(scenario):
        while lib.nvmlShutdown() == 0:
            pass
        path = os.path.join(SCENARIOS, scenario).encode()
        if lib.vigil_fake_configure(path, err, len(err)) != 0:
            raise RuntimeError(err.value.decode())
        if lib.nvmlInit_v2() != 0:
            raise RuntimeError("nvmlInit_v2 failed")

    def dev(i):
        d = ctypes.c_void_p()
        lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(d))
        return d

    # event wait timeout
    start("xid-ecc.yaml")
    evset = ctypes.c_void_p()
    lib.nvmlEventSetCreate(ctypes.byref(evset))
    data = ctypes.create_string_buffer(64)  # nvmlEventData_t (40 bytes)
    t = time.monotonic()
    lib.nvmlEventSetWait_v2(evset, data, ctypes.c_uint(100))
    record("event_wait_timeout_ms", (time.monotonic() - t) * 1000, "ms")
    # wake on an injected XID
    lib.nvmlDeviceRegisterEvents(dev(1), ctypes.c_ulonglong(XID_EVENT), evset)
    woke = {}

    def waiter():
        t0 = time.monotonic()
        woke["rc"] = lib.nvmlEventSetWait_v2(evset, data, ctypes.c_uint(30000))
        woke["t"] = time.monotonic()
        woke["t0"] = t0
    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.2)
    t = time.monotonic()
    req = FakeInject(kind=FAKE_INJECT_XID, gpu=1, count=43)
    lib.vigil_fake_inject(ctypes.byref(req), err, len(err))
    th.join()
    record("event_wake_ms", (woke["t"] - t) * 1000, "ms")
    lib.nvmlEventSetFree(evset)
    # call cost: CPU
    start("constant-2gpu.yaml")
    req = FakeInject(kind=FAKE_INJECT_CALL_COST, call=b"nvmlDeviceGetTemperature", count=5000000)
    lib.vigil_fake_inject(ctypes.byref(req), err, len(err))
    req = FakeInject(kind=FAKE_INJECT_CALL_COST, call=b"*", count=100)  # the scenario scales by 0
    lib.vigil_fake_inject(ctypes.byref(req), err, len(err))
    v = ctypes.c_uint()
    c = time.thread_time()
    lib.nvmlDeviceGetTemperature(dev(0), 0, ctypes.byref(v))
    record("call_cost_cpu_ms", (time.thread_time() - c) * 1000, "ms")
    # call cost: wall (CPU + modelled sleep)
    start("heavy-costs.yaml")
    t = time.monotonic()
    lib.nvmlDeviceGetPcieThroughput(dev(0), 0, ctypes.byref(v))
    record("call_cost_wall_ms", (time.monotonic() - t) * 1000, "ms")
    while lib.nvmlShutdown() == 0:
        pass


# ---- vigild ---------------------------------------------------------------------------------

def metric(d, name, **labels):
    return sum(v for _, v in series(parse_metrics(d.metrics()), name, **labels))


def daemon():
    # start -> 8 GPUs visible
    v = Vigild()
    try:
        v.wait_listening()

        def eight():
            m = parse_metrics(v.metrics())
            return len(series(m, "vigil_gpu_temperature_celsius")) == 8
        wait_for(eight, 10, "8 GPUs")
        record("start_to_8_gpus_s", time.monotonic() - v.started, "s")
        # XID -> /metrics
        t = time.monotonic()
        v.inject(gpu=1, xid=79)
        wait_for(lambda: metric(v, "vigil_gpu_xid_errors_total", gpu=1, xid=79) >= 1, 10, "xid")
        record("xid_to_metrics_s", time.monotonic() - t, "s")
        # SIGTERM -> exit
        t = time.monotonic()
        v.stop(signal.SIGTERM)
        record("sigterm_to_exit_s", time.monotonic() - t, "s")
    finally:
        v.stop()

    # XID -> health FAIL
    with Vigild("constant-2gpu.yaml", config="health: {resolve_after: 2s}\n") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        t = time.monotonic()
        v.inject(gpu=1, xid=79)
        wait_for(lambda: v.get_json("/api/v1/health")["status"] == "FAIL", 10, "FAIL")
        record("xid_to_health_fail_s", time.monotonic() - t, "s")

    # hung NVML call -> gpu_unresponsive; API latency meanwhile
    cfg = ("collection:\n  tiers: {fast: 200ms, slow: 5s}\n  adaptive: {enabled: false}\n"
           "health: {nvml_call_timeout: 1s, resolve_after: 1s}\n")
    with Vigild("health-watchdog.yaml", config=cfg) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 15, "ready")
        t = time.monotonic()
        v.inject(call="nvmlDeviceGetTemperature", cost_us=3000000)

        def opened():
            inc = v.get_json("/api/v1/incidents")["incidents"]
            return [i for i in inc if i["condition"] == "gpu_unresponsive"]
        wait_for(opened, 15, "gpu_unresponsive")
        record("hung_call_to_incident_s", time.monotonic() - t, "s")
        worst = 0.0
        for _ in range(4):
            for path in ("/healthz", "/metrics", "/api/v1/health"):
                t = time.monotonic()
                v.get(path)
                worst = max(worst, time.monotonic() - t)
            time.sleep(0.25)
        record("api_during_hang_max_s", worst, "s")
        v.inject(call="nvmlDeviceGetTemperature", cost_us=0)

    # stretched fast tier -> collection_slow
    cfg = ("collection:\n  tiers: {fast: 200ms}\n  adaptive: {enabled: true, max_share: 0.5, "
           "max_stretch: 4}\nhealth: {resolve_after: 1s, collection_stretched_after: 2s}\n")
    with Vigild(None, config=cfg) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 15, "ready")
        v.inject(call="nvmlDeviceGetTemperature", cost_us=20000)
        wait_for(lambda: metric(v, "vigil_collection_stretched", tier="fast") == 1, 15, "stretch")
        t = time.monotonic()
        wait_for(lambda: [i for i in v.get_json("/api/v1/incidents")["incidents"]
                          if i["condition"] == "collection_slow"], 15, "collection_slow")
        record("stretch_to_collection_slow_s", time.monotonic() - t, "s")

    # slow-loris: how long the held partial connections live (connection_timeout 3 s)
    cfg = "http:\n  connection_timeout: 3s\n  max_connections_per_ip: 6\n  max_connections: 64\n"
    with Vigild(config=cfg) as v:
        host, port = v.url.split("//")[1].rsplit(":", 1)
        socks = []
        for _ in range(6):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        t = time.monotonic()
        for s in socks:
            s.settimeout(15)
            try:
                s.recv(4096)
            except OSError:
                pass
            s.close()
        record("slowloris_close_s", time.monotonic() - t, "s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    fake_nvml()
    daemon()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": {"nproc": os.cpu_count()}, "timings": RESULTS}, f, indent=1)


if __name__ == "__main__":
    main()
