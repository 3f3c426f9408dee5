#!/usr/bin/env python3
"""Faults a user must see told truthfully: a GPU that falls off the bus and comes back, XIDs,
ECC errors, and fields the GPU does not support (left out, never a made-up number)."""
import os
import time

from harness import Vigild, check, main, parse_metrics, series, wait_for, SCENARIOS


def gpu_up(v, idx):
    return {d["gpu"]: x for d, x in series(parse_metrics(v.metrics()), "vigil_gpu_up")}[str(idx)]


def test_gpu_lost_and_back():
    with Vigild() as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        v.inject(gpu=3, lost=True)
        wait_for(lambda: gpu_up(v, 3) == 0, 5, "GPU 3 reported down")
        m = parse_metrics(v.metrics())
        check(not series(m, "vigil_gpu_temperature_celsius", gpu=3),
              "a lost GPU still exports a temperature")
        check(len(series(m, "vigil_gpu_temperature_celsius")) == 7, "other GPUs must stay")
        g = v.get_json("/api/v1/gpus/3")
        check(g["state"] == "lost", "API state %s" % g["state"])
        temp = [f for f in g["fields"] if f["name"] == "GPU_TEMP"][0]
        check(temp["status"] == "gpu_lost" and "value" not in temp, "lost GPU field %s" % temp)
        check(v.get_json("/api/v1/status")["gpus_up"] == 7, "status gpus_up")
        v.inject(gpu=3, lost=False)
        wait_for(lambda: gpu_up(v, 3) == 1, 12, "GPU 3 re-attached without a restart")
        wait_for(lambda: series(parse_metrics(v.metrics()), "vigil_gpu_temperature_celsius", gpu=3),
                 5, "GPU 3 temperature back")
        check(v.get_json("/api/v1/gpus/3")["state"] == "up", "API state after the re-attach")
        check(v.get_json("/api/v1/status")["gpus_up"] == 8, "status gpus_up after the re-attach")


def test_xid_is_counted_per_code_at_once():
    with Vigild() as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        t0 = time.monotonic()
        v.inject(gpu=1, xid=79)

        def seen():
            return series(parse_metrics(v.metrics()), "vigil_gpu_xid_errors_total", gpu=1, xid=79)
        s = wait_for(seen, 1.0, "XID 79 counter within one second")
        check(s[0][1] == 1, "XID 79 count %s" % s)
        print("# XID visible in /metrics after %.3fs" % (time.monotonic() - t0))
        v.inject(gpu=1, xid=79)
        v.inject(gpu=1, xid=13)
        wait_for(lambda: series(parse_metrics(v.metrics()), "vigil_gpu_xid_errors_total", gpu=1, xid=79)[0][1] == 2,
                 2, "XID 79 counted twice (repeats are not invisible)")
        m = parse_metrics(v.metrics())
        check(series(m, "vigil_gpu_last_xid", gpu=1)[0][1] in (13, 79), "last xid")
        check(series(m, "vigil_gpu_xid_errors_total", gpu=1, xid=13)[0][1] == 1, "XID 13")
        check(not series(m, "vigil_gpu_xid_errors_total", gpu=0), "XID leaked to GPU 0")


def test_ecc_dbe_counts():
    with Vigild() as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        before = series(parse_metrics(v.metrics()), "vigil_gpu_ecc_dbe_volatile_total", gpu=2)[0][1]
        v.inject(gpu=2, ecc_dbe=2)
        wait_for(lambda: series(parse_metrics(v.metrics()), "vigil_gpu_ecc_dbe_volatile_total", gpu=2)[0][1] == before + 2,
                 3, "volatile DBE counter +2")


def test_field_injection_holds_and_clears():
    with Vigild() as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        v.inject(gpu=0, field="GPU_TEMP", value=93)
        wait_for(lambda: series(parse_metrics(v.metrics()), "vigil_gpu_temperature_celsius", gpu=0)[0][1] == 93,
                 3, "injected temperature")
        v.inject(gpu=0, field="GPU_TEMP", clear=True)
        wait_for(lambda: series(parse_metrics(v.metrics()), "vigil_gpu_temperature_celsius", gpu=0)[0][1] != 93,
                 3, "temperature back to the scenario")


def test_not_supported_fields_are_left_out():
    path = os.path.join(SCENARIOS, "not-supported.yaml")
    check(os.path.exists(path), "scenario %s missing" % path)
    with Vigild(scenario=path) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        v.wait_sweeps(1)
        text = v.metrics()
        m = parse_metrics(text)
        check(not series(m, "vigil_gpu_memory_temperature_celsius"),
              "unsupported memory temperature exported")
        check(series(m, "vigil_gpu_temperature_celsius"), "supported fields must stay")
        for line in text.splitlines():
            if not line.startswith("#"):
                val = float(line.rsplit(" ", 1)[1])
                check(val < 9.2e18, "sentinel-like value exported: %s" % line)
        g = v.get_json("/api/v1/gpus/0")
        mt = [f for f in g["fields"] if f["name"] == "MEMORY_TEMP"][0]
        check(mt["status"] == "not_supported" and "value" not in mt, "API MEMORY_TEMP %s" % mt)


def test_fake_clock_moves_scenario_time():
    # gpu-lost.yaml: GPU 1 is lost at t=2s and back at t=5s; the test moves the fake clock there
    with Vigild(scenario="gpu-lost.yaml") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        check(gpu_up(v, 1) == 1, "GPU 1 up at t=0")
        for bad in (-1, "1", 400 * 86400):
            st, _, body = v.request("POST", "/api/v1/inject", {"advance_s": bad})
            check(st == 400, "advance_s %r answered %d: %s" % (bad, st, body[:200]))
        check(v.advance(2.5) == {"injected": {"advance_s": 2.5}}, "advance answer")
        wait_for(lambda: gpu_up(v, 1) == 0, 10, "GPU 1 lost at t=2s")
        v.advance(3)
        wait_for(lambda: gpu_up(v, 1) == 1, 15, "GPU 1 back at t=5s")


if __name__ == "__main__":
    main([test_gpu_lost_and_back, test_xid_is_counted_per_code_at_once, test_ecc_dbe_counts,
          test_field_injection_holds_and_clears, test_not_supported_fields_are_left_out,
          test_fake_clock_moves_scenario_time])
