#!/usr/bin/env python3
"""test_truth.py — what Vigil shows is true: a reading it cannot vouch for is never shown as
current, and a health system nothing checks is never shown as passing.

Stale readings: nvmlDeviceGetTemperature is made to hang (POST /api/v1/inject {"call", "cost_us"};
the fake sleeps a cost above 100 ms) until the watchdog gives the GPU up. From then on its
temperature and power leave /metrics (native and dcgm naming), vigil_gpu_up and
vigil_gpu_responsive say 0, the API answers "status": "stale" with age_seconds, and `vigil dmon`
marks the last value with '*'.

Not monitored: NVLink, InfoROM and driver have no check on the fake's GPUs, and PCIe none on a GPU
without the PCIe replay counter (not-supported.yaml): vigil_gpu_health has no series for them,
vigil_gpu_health_monitored says 0, the API says "not_monitored" and `vigil health` lists them as
not monitored, never as PASS.
"""
import json

from harness import Vigild, check, main, parse_metrics, run_cli, series, wait_for

HANG = """
collection:
  tiers: {fast: 200ms, slow: 5s}
  adaptive: {enabled: false}
health: {nvml_call_timeout: 1s, resolve_after: 1s}
"""


def stuck(d, gpu):
    h = d.get_json("/api/v1/health")
    return any(i for i in d.get_json("/api/v1/incidents")["incidents"]
               if i["condition"] == "gpu_unresponsive" and i["gpu"] == gpu) and h


def hang_gpu0(d, temp="vigil_gpu_temperature_celsius"):
    wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
    m = parse_metrics(d.metrics())
    check(series(m, temp, gpu=0), "temperature before the hang")
    d.inject(call="nvmlDeviceGetTemperature", cost_us=8000000)
    wait_for(lambda: stuck(d, 0), 5, "gpu_unresponsive on GPU 0")


def test_hung_gpu_readings_are_not_current():
    with Vigild("health-watchdog.yaml", config=HANG) as d:
        hang_gpu0(d)
        # /metrics: the next rendering leaves the stuck GPU's readings out
        m = wait_for(lambda: (lambda m: m if series(m, "vigil_gpu_up", gpu=0)[0][1] == 0 else None)(
            parse_metrics(d.metrics())), 3, "vigil_gpu_up 0 for GPU 0")
        check(series(m, "vigil_gpu_responsive", gpu=0)[0][1] == 0, "vigil_gpu_responsive 0")
        for fam in ("vigil_gpu_temperature_celsius", "vigil_gpu_power_watts"):
            check(not series(m, fam, gpu=0), "%s of the stuck GPU still exported: %r" %
                  (fam, series(m, fam, gpu=0)))
        for s in ("pcie", "memory", "thermal", "power"):
            check(not series(m, "vigil_gpu_health", gpu=0, system=s),
                  "vigil_gpu_health{system=%s} of the stuck GPU still exported" % s)
        check(series(m, "vigil_gpu_health", gpu=0, system="gpu")[0][1] == 2, "gpu system FAIL")
        # the API: stale with the age, no current value
        g = d.get_json("/api/v1/gpus?fields=GPU_TEMP,POWER_USAGE")["gpus"][0]
        check(g["state"] == "unresponsive", "state %r" % g["state"])
        for f in g["fields"]:
            check(f["status"] == "stale", "%s status %r" % (f["name"], f["status"]))
            check("value" not in f and "last_value" in f, "%s: %r" % (f["name"], f))
            check(f["age_seconds"] >= 1.0, "%s age %r" % (f["name"], f.get("age_seconds")))
        one = d.get_json("/api/v1/gpus/0")
        temp = [f for f in one["fields"] if f["name"] == "GPU_TEMP"][0]
        check(temp["status"] == "stale", "GET /api/v1/gpus/0 GPU_TEMP %r" % temp)
        h = d.get_json("/api/v1/health")["gpus"][0]["systems"]
        check(h["thermal"]["status"] == "stale", "health thermal of the stuck GPU %r" % h["thermal"])
        # vigil dmon: the last value with a '*'
        p = run_cli("--host", d.url, "dmon", "-e", "GPU_TEMP,POWER_USAGE", "-i", "0", "-c", "1")
        rows = [l.split() for l in p.stdout.splitlines() if l.split()[:2] == ["GPU", "0"]]
        check(rows and rows[0][2:] == ["45*", "250*"], "dmon row %r\n%s" % (rows, p.stdout))
        d.inject(call="nvmlDeviceGetTemperature", cost_us=0)
        # once the call returns, fresh readings are current again
        wait_for(lambda: series(parse_metrics(d.metrics()), "vigil_gpu_temperature_celsius", gpu=0),
                 12, "temperature of GPU 0 back")
        f = d.get_json("/api/v1/gpus?fields=GPU_TEMP")["gpus"][0]["fields"][0]
        check(f["status"] == "ok" and f["value"] == 45, "fresh again: %r" % f)


def test_hung_gpu_dcgm_naming():
    with Vigild("health-watchdog.yaml", config=HANG + "metrics: {naming: dcgm}\n") as d:
        hang_gpu0(d, "DCGM_FI_DEV_GPU_TEMP")
        wait_for(lambda: not series(parse_metrics(d.metrics()), "DCGM_FI_DEV_GPU_TEMP", gpu=0), 3,
                 "DCGM_FI_DEV_GPU_TEMP of the stuck GPU left out")
        m = parse_metrics(d.metrics())
        check(not series(m, "DCGM_FI_DEV_POWER_USAGE", gpu=0), "DCGM_FI_DEV_POWER_USAGE left out")
        d.inject(call="nvmlDeviceGetTemperature", cost_us=0)


def test_stuck_tier_readings_age():
    # No watchdog verdict (timeout 10m): the fast tier blocks inside the call on GPU 0, so no
    # GPU gets fresh fast readings. After 3 x 200 ms (at least 2 s) they are stale by age: gone
    # from /metrics even though no sweep renders it (the slow tier is 60 s), "aged" in the API.
    cfg = ("collection:\n  tiers: {fast: 200ms, slow: 60s}\n  adaptive: {enabled: false}\n"
           "health: {nvml_call_timeout: 10m}\n")
    with Vigild("health-watchdog.yaml", config=cfg) as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        wait_for(lambda: series(parse_metrics(d.metrics()), "vigil_gpu_temperature_celsius", gpu=1),
                 10, "temperature before the hang")
        d.inject(call="nvmlDeviceGetTemperature", cost_us=6000000)
        m = wait_for(lambda: (lambda m: m if not series(m, "vigil_gpu_temperature_celsius") else None)(
            parse_metrics(d.metrics())), 10, "aged temperatures left out of /metrics")
        check(not series(m, "vigil_gpu_power_watts"), "aged power left out")
        check([v for _, v in series(m, "vigil_gpu_up")] == [1, 1], "vigil_gpu_up stays 1")
        f = d.get_json("/api/v1/gpus?fields=GPU_TEMP")["gpus"][1]["fields"][0]
        check(f["status"] == "stale" and f["stale_reason"] == "aged" and f["age_seconds"] > 2,
              "API %r" % f)
        d.inject(call="nvmlDeviceGetTemperature", cost_us=0)


def test_lost_gpu_health_not_current():
    # a lost GPU: only its gpu system keeps a verdict (FAIL); the others are not checked now
    with Vigild("constant-2gpu.yaml", config="health: {resolve_after: 1s}\n") as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        d.inject(gpu=1, lost=True)
        m = wait_for(lambda: (lambda m: m if series(m, "vigil_gpu_health", gpu=1, system="gpu") and
                              series(m, "vigil_gpu_health", gpu=1, system="gpu")[0][1] == 2
                              else None)(parse_metrics(d.metrics())), 10, "gpu system FAIL")
        check([l["system"] for l, _ in series(m, "vigil_gpu_health", gpu=1)] == ["gpu"],
              "lost GPU health series %r" % series(m, "vigil_gpu_health", gpu=1))
        check(series(m, "vigil_gpu_health_monitored", gpu=1, system="thermal")[0][1] == 0,
              "thermal monitored on a lost GPU")
        sy = d.get_json("/api/v1/health")["gpus"][1]["systems"]
        check(sy["thermal"]["status"] == "stale" and sy["gpu"]["status"] == "FAIL", "API %r" % sy)
        d.inject(gpu=1, lost=False)


def test_dmon_not_watched():
    cfg = "collection: {fields: {GPU_UTIL: 'off'}}\n"
    with Vigild("constant-2gpu.yaml", config=cfg) as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        f = d.get_json("/api/v1/gpus?fields=GPU_UTIL")["gpus"][0]["fields"][0]
        check(f["status"] == "not_watched", "status %r" % f)
        p = run_cli("--host", d.url, "dmon", "-e", "GPU_TEMP,GPU_UTIL", "-i", "0", "-c", "1")
        rows = [l.split() for l in p.stdout.splitlines() if l.split()[:2] == ["GPU", "0"]]
        check(rows and rows[0][3] == "OFF" and "ERR" not in p.stdout, "dmon:\n%s" % p.stdout)


def test_not_monitored_is_not_pass():
    with Vigild("constant-2gpu.yaml") as d:
        wait_for(lambda: d.get_json("/api/v1/health")["evaluations"] > 1, 15, "evaluations")
        m = wait_for(lambda: (lambda m: m if series(m, "vigil_gpu_health_monitored") else None)(
            parse_metrics(d.metrics())), 3, "vigil_gpu_health_monitored")
        for s in ("nvlink",):  # a PCIe card: no NVLink, nothing checks it
            check(not series(m, "vigil_gpu_health", gpu=0, system=s),
                  "vigil_gpu_health{system=%s} exported: %r" % (s, series(m, "vigil_gpu_health",
                                                                         gpu=0, system=s)))
            check(series(m, "vigil_gpu_health_monitored", gpu=0, system=s)[0][1] == 0,
                  "monitored %s" % s)
            sy = d.get_json("/api/v1/health")["gpus"][0]["systems"][s]
            check(sy["status"] == "not_monitored", "API %s: %r" % (s, sy))
        # inforom (nvmlDeviceValidateInforom) and driver (the recovery action) are read on the fake
        for s in ("pcie", "memory", "thermal", "power", "inforom", "driver"):
            check(series(m, "vigil_gpu_health", gpu=0, system=s)[0][1] == 0, "%s pass" % s)
            check(series(m, "vigil_gpu_health_monitored", gpu=0, system=s)[0][1] == 1,
                  "%s monitored" % s)
        p = run_cli("--host", d.url, "health")
        line = [l for l in p.stdout.splitlines() if l.split()[:1] == ["0"]]
        check(line and "nvlink" in line[0] and "not monitored" in p.stdout.lower(),
              "vigil health:\n%s" % p.stdout)
        p = run_cli("--host", d.url, "--json", "health")
        j = json.loads(p.stdout)
        check(j["gpus"][0]["systems"]["nvlink"]["status"] == "not_monitored", "--json %r" %
              j["gpus"][0]["systems"]["nvlink"])
        check(p.returncode == 0, "--json exit %d" % p.returncode)


def test_unsupported_field_not_monitored():
    # not-supported.yaml: no GPU has the PCIe replay counter: the PCIe check cannot run
    with Vigild("not-supported.yaml") as d:
        wait_for(lambda: d.get_json("/api/v1/health")["evaluations"] > 1, 15, "evaluations")
        h = d.get_json("/api/v1/health")
        for g in (0, 1):
            check(h["gpus"][g]["systems"]["pcie"]["status"] == "not_monitored",
                  "GPU %d pcie %r" % (g, h["gpus"][g]["systems"]["pcie"]))
        m = wait_for(lambda: (lambda m: m if series(m, "vigil_gpu_health_monitored") else None)(
            parse_metrics(d.metrics())), 3, "vigil_gpu_health_monitored")
        check(not series(m, "vigil_gpu_health", system="pcie"), "pcie health exported")
        check(series(m, "vigil_gpu_health", gpu=0, system="thermal")[0][1] == 0, "thermal checked")


if __name__ == "__main__":
    main([test_hung_gpu_readings_are_not_current, test_hung_gpu_dcgm_naming,
          test_stuck_tier_readings_age, test_lost_gpu_health_not_current, test_dmon_not_watched,
          test_not_monitored_is_not_pass, test_unsupported_field_not_monitored])
