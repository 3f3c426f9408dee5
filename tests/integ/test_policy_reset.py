#!/usr/bin/env python3
"""test_policy_reset.py — the reset_gpu policy action against the fake NVML (never a real GPU).

A pending row remapping (ROW_REMAP_PENDING=1 injected) opens row_remap_pending; the policy
{condition: row_remap_pending, actions: [reset_gpu]} resets the idle GPU 0: the fake records the
reset, the pending flag clears and the incident resolves. GPU 1 runs two compute processes
(health-reset.yaml): the reset is skipped and recorded, and its incident stays open. A dry-run
policy records what it would do and resets nothing.
"""
import time

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


def test_reset_clears_pending_and_refuses_busy_gpu():
    with Vigild("health-reset.yaml", config=CONFIG % "") as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        d.inject(gpu=0, field="ROW_REMAP_PENDING", value=1)
        d.inject(gpu=1, field="ROW_REMAP_PENDING", value=1)
        wait_for(lambda: "fakenvml: GPU 0 reset (1 so far)" in d.logs(), 5, "the fake to record a reset")
        wait_for(lambda: "reset_gpu on incident" in d.logs() and "skipped: 2 compute processes" in d.logs(),
                 5, "the refusal on GPU 1 to be recorded")
        check("fakenvml: GPU 1 reset" not in d.logs(), "GPU 1 was reset with processes running")
        # the reset applied the pending remapping: the flag reads 0, the incident resolves
        wait_for(lambda: resolved(d, "row_remap_pending", 0), 5, "row_remap_pending on GPU 0 to resolve")
        time.sleep(1.5)
        check(1 in open_incidents(d, "row_remap_pending"), "GPU 1's incident must stay open")
        m = d.metrics()
        check("vigil_gpu_remapped_rows_pending{" in m, "pending gauge")
        total = [l for l in m.splitlines() if l.startswith("vigil_policy_actions_total ")]
        check(total and int(float(total[0].split()[1])) >= 4, "actions counted: %r" % total)


def test_dry_run_resets_nothing():
    with Vigild("health-reset.yaml", config=CONFIG % ", dry_run: true") as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        d.inject(gpu=0, field="ROW_REMAP_PENDING", value=1)
        wait_for(lambda: "dry run: reset_gpu" in d.logs(), 5, "the dry run to be recorded")
        time.sleep(1.5)
        check("fakenvml: GPU 0 reset" not in d.logs(), "dry run reset the GPU")
        check(0 in open_incidents(d, "row_remap_pending"), "incident resolved without a reset")


if __name__ == "__main__":
    main([test_reset_clears_pending_and_refuses_busy_gpu, test_dry_run_resets_nothing])
