"""test_power_incidents.py — a GPU held at its own power limit by a full workload is working as
designed: the capping shows as state (clock event reasons, the violation counter, DCGM's POWER
system result WARN in /api/v1/health and vigil_gpu_health) and opens no incident, so nothing goes
to Alertmanager. Capping that is not expected (an enforced limit below the default limit) opens
one power_violation incident."""
import time

from harness import Vigild, check, main, wait_for

CFG = "collection: {tiers: {slow: 5s}}\nhealth: {resolve_after: 2s}\n"


def power_incidents(v):
    return [i for i in v.get_json("/api/v1/incidents")["incidents"]
            if i["condition"].startswith("power")]


def power_system(v):
    return v.get_json("/api/v1/health")["gpus"][0]["systems"]["power"]["status"]


def test_full_load_at_own_limit_opens_nothing():
    with Vigild(scenario="power-at-limit.yaml", config=CFG) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        # three slow sweeps: the violation counter has risen over two windows' points
        wait_for(lambda: power_system(v) == "WARN", 30, "DCGM's POWER result WARN")
        time.sleep(6)
        check(power_system(v) == "WARN", "POWER system result: %s" % power_system(v))
        got = power_incidents(v)
        check(not got, "incidents for a GPU at its own power limit: %r" %
              [(i["condition"], i["detail"]) for i in got])
        g = v.get_json("/api/v1/gpus/0")
        reasons = [f for f in g["fields"] if f["name"] == "CLOCKS_EVENT_REASONS"]
        check(reasons and reasons[0]["value"] & 0x4, "SW power cap reason shown: %r" % reasons)


def test_limit_below_default_opens_one():
    with Vigild(scenario="power-limit-below-default.yaml", config=CFG) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        got = wait_for(lambda: power_incidents(v), 30, "a power_violation incident")
        time.sleep(6)
        got = power_incidents(v)
        check(len(got) == 1 and got[0]["condition"] == "power_violation",
              "incidents: %r" % [(i["condition"], i["detail"]) for i in got])
        check("below" in got[0]["detail"], "detail: %s" % got[0]["detail"])


def test_capped_past_sustain_opens_one():
    """health.power.sustain: capping at the GPU's own limit that lasts longer opens one."""
    cfg = CFG.replace("health: {", "health: {power: {sustain: 12s}, ")
    with Vigild(scenario="power-at-limit.yaml", config=cfg) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        got = wait_for(lambda: power_incidents(v), 40, "a power_violation incident")
        check(len(got) == 1 and "at the power limit for" in got[0]["detail"],
              "incidents: %r" % [(i["condition"], i["detail"]) for i in got])


if __name__ == "__main__":
    main([test_full_load_at_own_limit_opens_nothing, test_limit_below_default_opens_one,
          test_capped_past_sustain_opens_one])
