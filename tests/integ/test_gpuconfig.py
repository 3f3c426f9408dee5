"""test_gpuconfig.py — GPU configuration like `dcgmi config` on the fake NVML: set with dry run and
restore of the saved values, values refused against what the GPU allows (and nothing half
changed), NVML's refusals (no permission, not supported), roles, one audit record per change,
config.enforce applied at start, again after an injected GPU reset and a re-attach, and on
reload, with the drift gauge."""
import json
import os
import signal
import subprocess

from harness import Vigild, check, main, run_cli, series, parse_metrics, wait_for

import test_security as sec

SLOW = """
collection:
  tiers: {slow: 5s}
"""


def cli(d, *args, check_rc=None):
    return run_cli("--socket", d.sock, *args, check_rc=check_rc)


def sock(d, method, path, body=None):
    p = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-X", method, "--unix-socket", d.sock,
                        "http://localhost" + path] + (["-d", json.dumps(body)] if body is not None else []),
                       capture_output=True, text=True, timeout=40)
    out, code = p.stdout.rsplit("\n", 1)
    return int(code), (json.loads(out) if out.strip() else None)


def cfg(d, gpu=0):
    return d.get_json("/api/v1/gpus/%d/config" % gpu)["settings"]


def audit_details(d, event):
    code, out = sock(d, "GET", "/api/v1/audit?limit=10000")
    check(code == 200, "audit: %d %r" % (code, out))
    return [r["detail"] for r in out["records"] if r["event"] == event]


def test_set_dry_run_restore():
    with Vigild(config=SLOW) as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        c = cfg(d)
        check(c["power_limit"]["current"] == "700" and c["power_limit"]["max"] == 700,
              "power limit and its constraints: %r" % c["power_limit"])
        check(c["locked_gpu_clocks"]["status"] == "not_readable", "locked clocks: NVML has no getter")
        # dry run: says what would change, changes nothing, saves nothing
        out = cli(d, "config", "set", "-i", "0", "-P", "500", "-c", "exclusive_process",
                  "--dry-run", check_rc=0).stdout
        check("power_limit 700 -> 500 (would change)" in out, out)
        check("compute_mode default -> exclusive_process (would change)" in out, out)
        c = cfg(d)
        check(c["power_limit"]["current"] == "700" and c["power_limit"]["saved"] is None,
              "dry run changed nothing: %r" % c["power_limit"])
        check(c["compute_mode"]["current"] == "default", "dry run: %r" % c["compute_mode"])
        # set on two GPUs
        out = cli(d, "config", "set", "-i", "0,1", "-P", "500", "-a", "3201,1500", "-e", "off",
                  "--persistence", "off", check_rc=0).stdout
        check(out.count("power_limit 700 -> 500 (applied)") == 2, out)
        check("ecc enabled -> disabled (pending until the next GPU reset)" in out, out)
        c = cfg(d)
        check(c["power_limit"]["current"] == "500" and c["power_limit"]["saved"] == "700",
              "power set and the previous value kept: %r" % c["power_limit"])
        check(c["app_clocks"]["current"] == "3201,1500", "app clocks: %r" % c["app_clocks"])
        check(c["ecc"]["current"] == "enabled" and c["ecc"]["pending"] == "disabled",
              "ECC pending until reset: %r" % c["ecc"])
        check(c["persistence"]["current"] == "disabled", "persistence: %r" % c["persistence"])
        # the sampled field follows (slow tier)
        wait_for(lambda: series(parse_metrics(d.metrics()), "vigil_gpu_power_limit_watts",
                                gpu="0")[0][1] == 500, 20, "power limit metric at 500 W")
        # a second set does not overwrite the saved original
        cli(d, "config", "set", "-i", "0", "-P", "450", check_rc=0)
        check(cfg(d)["power_limit"]["saved"] == "700", "saved value is the original")
        # one audit record per change, with old -> new
        rows = audit_details(d, "gpu_config_set")
        want = "GPU 0 (%s) power_limit 700 -> 500" % d.get_json("/api/v1/gpus/0/config")["uuid"]
        check(any(r == want for r in rows), "audit %r in %r" % (want, rows))
        check(any("ecc enabled -> disabled (pending until reset)" in r for r in rows), rows)
        # restore one setting, then the rest
        out = cli(d, "config", "restore", "-i", "0", "--setting", "power_limit", check_rc=0).stdout
        check("power_limit 450 -> 700 (applied)" in out, out)
        c = cfg(d)
        check(c["power_limit"]["current"] == "700" and c["power_limit"]["saved"] is None,
              "power restored: %r" % c["power_limit"])
        check(c["app_clocks"]["saved"] == "3201,1980", "app clocks still saved")
        out = cli(d, "config", "restore", "-i", "0", "--dry-run", check_rc=0).stdout
        check("app_clocks 3201,1500 -> 3201,1980 (would change)" in out, out)
        check(cfg(d)["app_clocks"]["current"] == "3201,1500", "restore dry run changed nothing")
        cli(d, "config", "restore", "-i", "0", check_rc=0)
        c = cfg(d)
        check(c["app_clocks"]["current"] == "3201,1980" and c["ecc"]["pending"] == "enabled" and
              c["persistence"]["current"] == "enabled", "all restored: %r" % c)
        p = cli(d, "config", "restore", "-i", "0")
        check(p.returncode != 0 and "nothing saved to restore" in p.stderr, p.stderr)
        check(any("power_limit 450 -> 700" in r for r in audit_details(d, "gpu_config_restore")),
              "restore audited")
        # ECC applies at the next reset
        d.inject(gpu=1, reset=True)
        check(cfg(d, 1)["ecc"]["current"] == "disabled", "ECC mode applied by the reset")


def test_refused_values():
    with Vigild() as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        for body, code, msg in (
                ({"power_limit": 800}, 400, "outside what GPU 0 allows (200..700 W)"),
                ({"power_limit": 150}, 400, "outside what GPU 0 allows"),
                ({"app_clocks": "3201,1501"}, 400, "SM clock 1501 MHz is not supported"),
                ({"app_clocks": "2000,1500"}, 400, "memory clock 2000 MHz is not supported"),
                ({"locked_gpu_clocks": "100,1500"}, 400, "supports SM clocks 345..1980 MHz"),
                ({"locked_gpu_clocks": "1500,1000"}, 400, "MIN <= MAX"),
                ({"compute_mode": "shared"}, 400, "not default, prohibited or exclusive_process"),
                ({"ecc": "maybe"}, 400, "not enabled or disabled"),
                ({"sync_boost": 1}, 400, "unknown setting 'sync_boost'"),
                ({}, 400, "at least one setting"),
                # valid power, bad clocks: nothing is changed
                ({"power_limit": 500, "app_clocks": "3201,7"}, 400, "not supported")):
            code_, out = sock(d, "POST", "/api/v1/gpus/0/config", {"settings": body})
            check(code_ == code and msg in out["error"]["message"],
                  "%r: %d %r" % (body, code_, out))
        check(cfg(d)["power_limit"]["current"] == "700", "no partial write")
        code, out = sock(d, "POST", "/api/v1/gpus/9/config", {"settings": {"power_limit": 500}})
        check(code == 404, "unknown GPU: %d %r" % (code, out))
        p = cli(d, "config", "set", "-P", "500")
        check(p.returncode == 2 and "needs -i GPUS" in p.stderr, "set without -i: %s" % p.stderr)
    with Vigild("gpuconfig-limited.yaml", config=SLOW + """
config:
  enforce:
    - {gpus: "0", power_limit: 400}
""") as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        code, out = sock(d, "POST", "/api/v1/gpus/1/config", {"settings": {"power_limit": 500}})
        check(code == 403 and "no permission" in out["error"]["message"], "not root: %r" % out)
        check(cfg(d, 1)["power_limit"]["current"] == "700", "nothing changed")
        code, out = sock(d, "POST", "/api/v1/gpus/1/config", {"settings": {"compute_mode": 3}})
        check(code == 501 and "not supported on GPU 1" in out["error"]["message"], "%r" % out)
        check(cfg(d, 1)["compute_mode"]["status"] == "not_supported", "get says not supported")
        # enforcement refused by NVML: drift shown, the refusal counted and audited once
        d.wait_metric("vigil_gpu_config_drift", lambda v: v == 1, gpu="0", setting="power_limit")
        d.wait_metric("vigil_gpu_config_enforcements_total", lambda v: v >= 1, result="refused")
        d.wait_sweeps(2, tier="slow", timeout=40)
        check(d.metric("vigil_gpu_config_enforcements_total", result="refused") == 1,
              "a refused setting is not retried every sweep")
        check(any("refused" in r and "no permission" in r
                  for r in audit_details(d, "gpu_config_enforce")), "refusal audited")


def test_roles():
    env = {"VIGIL_JWT_SECRET": sec.SECRET}
    with Vigild(config=sec.AUTH, env=env) as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        viewer = sec.mint(sec.claims(role="viewer", sub="val"))
        operator = sec.mint(sec.claims(role="operator", sub="olga"))
        body = {"settings": {"power_limit": 600}}
        st, _, out = sec.req(d, "GET", "/api/v1/gpus/0/config", viewer)
        check(st == 200, "viewer reads: %d %s" % (st, out[:200]))
        st, _, out = sec.req(d, "POST", "/api/v1/gpus/0/config", viewer, body)
        check(st == 403, "viewer cannot set: %d %s" % (st, out[:200]))
        st, _, out = sec.req(d, "POST", "/api/v1/gpus/0/config/restore", viewer, {})
        check(st == 403, "viewer cannot restore: %d" % st)
        st, _, out = sec.req(d, "POST", "/api/v1/gpus/0/config", None, body)
        check(st == 401, "anonymous cannot set: %d" % st)
        st, _, out = sec.req(d, "POST", "/api/v1/gpus/0/config", operator, body)
        check(st == 200, "operator (write) sets: %d %s" % (st, out[:200]))
        rows = [r for r in sec.audit_rows(d) if r["event"] == "gpu_config_set"]
        check(len(rows) == 1 and rows[0]["principal"] == "jwt:olga" and
              "power_limit 700 -> 600" in rows[0]["detail"], "audited with the principal: %r" % rows)
        p = run_cli("--host", d.url, "--token", operator, "config", "restore", "-i", "0",
                    check_rc=0)
        check("power_limit 600 -> 700 (applied)" in p.stdout, p.stdout)


ENFORCE = SLOW + """
config:
  enforce:
    - gpus: all
      persistence: enabled
    - gpus: "1,GPU-f4ce0002-5930-77cb-98b0-37cb98b015a5"
      power_limit: 450
      compute_mode: exclusive_process
      locked_gpu_clocks: 1200,1800
"""


def uuid_of(d, gpu):
    return d.get_json("/api/v1/gpus/%d/config" % gpu)["uuid"]


def test_enforce_reset_reload():
    with Vigild(config=ENFORCE) as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        wait_for(lambda: cfg(d, 1)["power_limit"]["current"] == "450", 20, "enforced at start")
        c = cfg(d, 1)
        check(c["compute_mode"]["current"] == "exclusive_process" and
              c["power_limit"]["desired"] == "450", "GPU 1: %r" % c)
        check(cfg(d, 0)["power_limit"]["current"] == "700", "GPU 0 not in that entry")
        d.wait_metric("vigil_gpu_config_drift", lambda v: v == 0, gpu="1", setting="power_limit")
        rows = audit_details(d, "gpu_config_enforce")
        check(any("power_limit 700 -> 450: applied (config.enforce)" in r for r in rows), rows)
        check(any("locked_gpu_clocks unknown -> 1200,1800: applied" in r for r in rows), rows)
        # an enforced setting is not changed by hand
        p = cli(d, "config", "set", "-i", "1", "-P", "500")
        check(p.returncode != 0 and "enforced by config.enforce (450)" in p.stderr, p.stderr)
        # a GPU reset puts the defaults back; vigild applies the desired settings again
        d.inject(gpu=1, reset=True)
        wait_for(lambda: cfg(d, 1)["power_limit"]["current"] == "450" and
                 cfg(d, 1)["compute_mode"]["current"] == "exclusive_process", 30,
                 "enforced again after the reset")
        wait_for(lambda: any("out of its desired configuration" in r and "locked_gpu_clocks" in r
                             for r in audit_details(d, "gpu_config_enforce")), 15,
                 "locked clocks applied again after the reset")
        # the GPU falls off the bus and comes back (a driver reload): re-attach, enforce
        d.inject(gpu=1, lost=True)
        d.wait_metric("vigil_gpu_up", lambda v: v == 0, gpu="1", timeout=20)
        d.inject(gpu=1, lost=False)
        wait_for(lambda: any("GPU re-attached" in r and "power_limit 700 -> 450" in r
                             for r in audit_details(d, "gpu_config_enforce")), 40,
                 "enforced after the re-attach")
        # reload: a new desired value applies; a removed entry stops governing
        with open(os.path.join(d.data, "vigil.yaml"), "w") as f:
            f.write(SLOW + """
config:
  enforce:
    - {gpus: "1", power_limit: 400}
""")
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: cfg(d, 1)["power_limit"]["current"] == "400", 20, "reloaded value")
        check(cfg(d, 2)["power_limit"]["desired"] is None, "GPU 2 no longer governed")
        m = parse_metrics(d.metrics())
        check(not series(m, "vigil_gpu_config_drift", gpu="2"), "no drift series for GPU 2")
        # a bad enforce entry is refused and the running one stays
        with open(os.path.join(d.data, "vigil.yaml"), "w") as f:
            f.write("config:\n  enforce:\n    - {gpus: \"1\", power_limit: lots}\n")
        code, out = sock(d, "POST", "/api/v1/config/reload")
        check(code == 400 and "power_limit: 'lots' is not a power" in json.dumps(out),
              "bad value refused: %d %r" % (code, out))
        check(cfg(d, 1)["power_limit"]["desired"] == "400", "running config kept")


def field_status(d, gpu, name):
    for f in d.get_json("/api/v1/gpus/%d" % gpu)["fields"]:
        if f["name"] == name:
            return f["status"], f.get("value")
    return None, None


def incidents(d):
    return d.get_json("/api/v1/incidents")["incidents"]


def test_recovery_inforom_fabric():
    """Part 6: the driver's recovery action and InfoROM validity in health, the fabric state.
    The InfoROM check (~70 ms of CPU per call on a real GPU) is read at start and hourly by
    default; the injection below needs it read every slow sweep, which collection.fields says."""
    with Vigild("constant-2gpu.yaml") as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        d.wait_metric("vigil_gpu_inforom_valid", lambda v: v == 1, gpu="0")  # read at start
        f84 = [f for f in d.get_json("/api/v1/fields")["fields"] if f["id"] == 84]
        check(f84 and f84[0]["interval_us"] == 3600 * 1000000, "InfoROM hourly: %r" % f84)
    with Vigild("hgx-h200.yaml", config="collection: {tiers: {slow: 5s}, fields: {INFOROM_VALID: 5s}}\n") as d:
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        d.wait_metric("vigil_gpu_fabric_manager_status", lambda v: v == 3, gpu="0")
        d.wait_metric("vigil_gpu_inforom_valid", lambda v: v == 1, gpu="0")
        h = wait_for(lambda: d.get_json("/api/v1/health")["gpus"][1]["systems"]["inforom"]
                     .get("monitored") and d.get_json("/api/v1/health"), 20, "inforom monitored")
        sy = h["gpus"][1]["systems"]
        check(sy["driver"] == {"status": "PASS", "monitored": True} and
              sy["inforom"] == {"status": "PASS", "monitored": True}, "monitored and passing: %r" % sy)
        d.inject(gpu=1, field="GPU_RECOVERY_ACTION", value=1)
        d.inject(gpu=2, field="GPU_RECOVERY_ACTION", value=3)
        d.inject(gpu=3, field="INFOROM_VALID", value=0)
        d.inject(gpu=4, field="FABRIC_MANAGER_STATUS", value=4)
        wait_for(lambda: {(i["gpu"], i["condition"]) for i in incidents(d)} >=
                 {(1, "gpu_recovery_reset"), (2, "gpu_recovery_drain_p2p"), (3, "inforom_corrupt")},
                 20, "recovery and InfoROM incidents")
        by = {(i["gpu"], i["condition"]): i for i in incidents(d)}
        check(by[(1, "gpu_recovery_reset")]["severity"] == "critical" and
              "needs a reset" in by[(1, "gpu_recovery_reset")]["summary"], by)
        check(by[(2, "gpu_recovery_drain_p2p")]["severity"] == "warning", by)
        h = d.get_json("/api/v1/health")["gpus"]
        check(h[1]["systems"]["driver"]["status"] == "FAIL", "driver FAIL: %r" % h[1])
        check(h[3]["systems"]["inforom"]["status"] == "WARN", "inforom WARN: %r" % h[3])
        d.wait_metric("vigil_gpu_fabric_manager_status", lambda v: v == 4, gpu="4")
        out = run_cli("--host", d.url, "health", check_rc=0).stdout
        check("driver" in out.lower() and "inforom" in out.lower(), out)
    with Vigild("constant-2gpu.yaml") as d:  # a PCIe card: no fabric, honestly
        wait_for(lambda: d.get("/readyz")[0] == 200, 15, "ready")
        d.wait_metric("vigil_gpu_inforom_valid", lambda v: v == 1, gpu="0")
        st, _ = wait_for(lambda: field_status(d, 0, "FABRIC_MANAGER_STATUS")[0] not in
                         (None, "no_data") and field_status(d, 0, "FABRIC_MANAGER_STATUS"), 20,
                         "fabric status read")
        check(st == "not_supported", "no fabric on a PCIe card: %r" % st)
        check(not series(parse_metrics(d.metrics()), "vigil_gpu_fabric_manager_status"),
              "no fabric series")
        check(field_status(d, 0, "VGPU_LICENSE_STATUS")[0] == "not_supported",
              "bare metal: no vGPU licensing")
    with Vigild("vgpu-guest.yaml") as d:
        d.wait_metric("vigil_gpu_vgpu_license_status", lambda v: v == 1, gpu="0")
        d.wait_metric("vigil_gpu_vgpu_license_status", lambda v: v == 0, gpu="1")


if __name__ == "__main__":
    main([test_set_dry_run_restore, test_refused_values, test_roles, test_enforce_reset_reload,
          test_recovery_inforom_fabric])
