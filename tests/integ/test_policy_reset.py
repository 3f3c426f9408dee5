#!/usr/bin/env python3
"""test_policy_reset.py — the reset_gpu policy action against the fake NVML (never a real GPU).

A pending row remapping (ROW_REMAP_PENDING=1 injected) opens row_remap_pending; the policy
{condition: row_remap_pending, actions: [reset_gpu]} resets the idle GPU 0: the fake records the
reset, the pending flag clears and the incident resolves. GPU 1 runs two compute processes
(health-reset.yaml): the reset is skipped and recorded, and its incident stays open. A dry-run
policy records what it would do and resets nothing.

Facts come from the API and /metrics: a reset is what clears the held pending flag (the fake
clears it only on a reset), so GPU 0's vigil_gpu_remapped_rows_pending going to 0 and its incident
resolving say it was reset; GPU 1's flag staying 1 says it was not. The policy outcome line
("skipped: 2 compute processes") is checked in the log: the log is where policy outcomes are
recorded (no API lists them).
"""
from harness import Vigild, check, main, wait_for

CONFIG = """
collection:
  tiers: {fast: 200ms}
health: {resolve_after: 1s}
policies:
  - {condition: row_remap_pending, actions: [log, reset_gpu], rate_limit: 2/1m%s}
"""


def open_incidents(d, cond):
    inc = d.get_json("/api/v1/incidents")["incidents"]
    return {i["gpu"]: i for i in inc if i["condition"] == cond}


def resolved(d, cond, gpu):
    inc = d.get_json("/api/v1/incidents?all=true")["incidents"]
    return [i for i in inc if i["condition"] == cond and i["gpu"] == gpu and i["state"] == "resolved"]


def pending(d, gpu):
    return d.metric("vigil_gpu_remapped_rows_pending", gpu=gpu)


def test_reset_clears_pending_and_refuses_busy_gpu():
    with Vigild("health-reset.yaml", config=CONFIG % "") as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        d.inject(gpu=0, field="ROW_REMAP_PENDING", value=1)
        d.inject(gpu=1, field="ROW_REMAP_PENDING", value=1)
        wait_for(lambda: "reset_gpu on incident" in d.logs() and "skipped: 2 compute processes" in d.logs(),
                 5, "the refusal on GPU 1 to be recorded")
        # the reset applied the pending remapping: the flag reads 0, the incident resolves
        wait_for(lambda: resolved(d, "row_remap_pending", 0), 5, "row_remap_pending on GPU 0 to resolve")
        check(pending(d, 0) == 0, "GPU 0's pending flag after the reset: %r" % pending(d, 0))
        # log + reset_gpu on each GPU
        d.wait_metric("vigil_policy_actions_total", lambda n: n >= 4, what="4 policy actions counted")
        d.wait_evaluations(5)  # past resolve_after (1 s at 200 ms): GPU 1 was not reset
        check(1 in open_incidents(d, "row_remap_pending"), "GPU 1's incident must stay open")
        check(pending(d, 1) == 1, "GPU 1 was reset with processes running")


def test_dry_run_resets_nothing():
    with Vigild("health-reset.yaml", config=CONFIG % ", dry_run: true") as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        d.inject(gpu=0, field="ROW_REMAP_PENDING", value=1)
        # log + the dry-run reset_gpu (dry runs are counted too)
        d.wait_metric("vigil_policy_actions_total", lambda n: n >= 2, what="the dry run to be counted")
        d.wait_evaluations(5)  # past resolve_after (1 s at 200 ms)
        check(pending(d, 0) == 1, "dry run reset the GPU")
        check(0 in open_incidents(d, "row_remap_pending"), "incident resolved without a reset")


if __name__ == "__main__":
    main([test_reset_clears_pending_and_refuses_busy_gpu, test_dry_run_resets_nothing])
