"""test_diag.py — `vigil diag` end to end on the fake NVML and the fake CUDA: each injected fault
is reported as the right test failing with the right reason, a hung kernel and a GPU falling off
the bus cost a failed test and never the CLI, Ctrl-C cancels within seconds, and the exit codes
are those of docs/diagnostics.md."""
import http.client
import json
import os
import socket
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SCENARIOS, VIGIL, Failure, check, main  # noqa: E402

SHORT = ["--param", "memtest.duration=1", "--param", "sm_stress.duration=1",
         "--param", "targeted_power.duration=3", "--param", "memory_bandwidth.duration=1"]


def diag(level, scenario, *extra, env=None, timeout=120):
    args = [VIGIL, "diag", "-r", str(level), "--local", "--json",
            "--simulate=" + os.path.join(SCENARIOS, scenario)] + list(extra)
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=e)
    try:
        run = json.loads(p.stdout)
    except ValueError:
        raise Failure("vigil diag: not JSON (exit %d)\nstdout:\n%s\nstderr:\n%s" % (
            p.returncode, p.stdout, p.stderr))
    return p.returncode, run


def res(run, test, gpu):
    for r in run["results"]:
        if r["test"] == test and r["gpu"] == gpu:
            return r
    raise Failure("no result for %s on GPU %s in %s" % (test, gpu, [
        (r["test"], r["gpu"]) for r in run["results"]]))


def expect(run, test, gpu, verdict, reason=None):
    r = res(run, test, gpu)
    check(r["result"] == verdict, "%s GPU %s: %s, expected %s (%s)" % (
        test, gpu, r["result"], verdict, r["reason"]))
    if reason:
        check(reason in r["reason"], "%s GPU %s: reason %r lacks %r" % (test, gpu, r["reason"], reason))
    return r


def test_level1_findings():
    rc, run = diag(1, "diag-level1.yaml")
    check(rc == 11, "exit %d, expected 11 (a test failed)" % rc)
    expect(run, "page_retirement", 0, "fail", "row remapping is pending")
    expect(run, "ecc", 0, "fail", "2 double-bit")
    expect(run, "pcie_link", 1, "fail", "x8 of x16")
    expect(run, "clock_events", 1, "fail", "hw_slowdown")
    expect(run, "pcie_link", 2, "pass", "idle GPU lowers its link generation")
    expect(run, "persistence_mode", 2, "warn", "persistence mode is off")
    expect(run, "nvml_library", None, "pass")
    expect(run, "cuda_library", None, "pass")
    check(not [r for r in run["results"] if r["test"] == "memory"], "level 1 ran a GPU test")


def test_level2_faults():
    rc, run = diag(2, "diag-faults.yaml")
    check(rc == 11, "exit %d" % rc)
    expect(run, "memory", 0, "fail", "lowest bad device address 0x10000100008")
    expect(run, "pcie_h2d", 1, "fail", "3.0 GB/s")
    expect(run, "pcie_d2h", 1, "fail")
    r = expect(run, "pcie_h2d", 0, "pass")
    check(abs(r["value"] - 55) < 0.5 and r["threshold_source"] == "spec" and
          r["threshold_detail"].startswith("PCIe gen5 x16 63.0 GB/s x 0.75"), r)
    check(abs(r["threshold"] - 0.75 * 63.0) < 0.1, r)
    expect(run, "sm_check", 1, "fail", "128 of 132 SMs")
    for t in ("memory", "sm_check", "pcie_h2d", "pcie_d2h", "pcie_latency", "p2p_bandwidth"):
        expect(run, t, 2, "pass")


def test_level3_short_passes():
    rc, run = diag(3, "constant-2gpu.yaml", *SHORT, "--param", "targeted_power.min_fraction=0.3")
    check(rc == 0, "exit %d: %s" % (rc, [r for r in run["results"] if r["result"] in ("fail", "warn")]))
    for g in (0, 1):
        expect(run, "memtest", g, "pass", "90 % of free memory")
        r = expect(run, "memory_bandwidth", g, "pass")
        check(r["threshold_source"] == "spec" and r["threshold_detail"].startswith(
            "SKU table H200 4800 GB/s x 0.80") and r["threshold"] == 3840, r)
        expect(run, "sm_stress", g, "pass", "FP32 TFLOPS")
        # the tensor-core kernel (kernels_tc.ptx) is the load on compute capability 8.0 and up
        r = expect(run, "targeted_power", g, "pass", "of the 700 W limit")
        check("under tensor-core FP16 (mma.sync) load" in r["reason"], r["reason"])
        check("tensor-core load" in res(run, "cuda_context", g)["reason"], "cuda_context")
        check(r["threshold"] == 210 and r["threshold_source"] == "param" and
              r["threshold_detail"] == "--param targeted_power.min_fraction", r)
    check(run["status"] == "completed" and run["result"] == "pass", run["status"])


def test_level3_memtest_finds_fault_and_params_override():
    rc, run = diag(3, "diag-faults.yaml", *SHORT, "--param", "sm_stress.min_tflops=100", "-i", "0")
    check(rc == 11, "exit %d" % rc)
    expect(run, "memtest", 0, "fail", "0x10000100008")
    r = expect(run, "sm_stress", 0, "fail")
    check(r["threshold"] == 100 and r["threshold_source"] == "param" and
          r["threshold_detail"] == "--param sm_stress.min_tflops", r)
    check(all(r["gpu"] in (0, None) for r in run["results"]), "-i 0 tested other GPUs")


def test_hung_kernel_fails_the_test_not_the_cli():
    start = time.monotonic()
    rc, run = diag(2, "diag-hang.yaml", env={"VIGIL_DIAG_TIMEOUT_SCALE": "0.05"}, timeout=60)
    check(rc == 12, "exit %d, expected 12 (run did not complete)" % rc)
    expect(run, "sm_check", 0, "fail", "did not finish within its timeout")
    check(run["status"] == "failed", run["status"])
    check(time.monotonic() - start < 30, "took %.0fs" % (time.monotonic() - start))


def test_hang_during_parallel_stress():
    # Per-test timeouts at 5 % so the hang is found quickly; a slow build (sanitizers) scales them.
    slow = float(os.environ.get("VIGIL_TIMEOUT_SCALE", "1"))
    rc, run = diag(3, "diag-hang-stress.yaml", *SHORT,
                   env={"VIGIL_DIAG_TIMEOUT_SCALE": "%.3f" % (0.05 * slow)}, timeout=90 * slow)
    check(rc == 12, "exit %d, expected 12" % rc)
    expect(run, "sm_stress", 1, "fail", "did not finish within its timeout")
    expect(run, "sm_stress", 0, "pass")
    expect(run, "memtest", 1, "pass")


def test_gpu_lost_mid_test():
    rc, run = diag(2, "diag-lost.yaml")
    check(rc == 11, "exit %d" % rc)
    expect(run, "memory", 1, "fail", "GPU fell off the bus during memory")
    expect(run, "sm_check", 1, "skip", "fell off the bus")
    expect(run, "sm_check", 0, "pass")
    expect(run, "memory", 0, "pass")


def test_ctrl_c_cancels_within_seconds():
    args = [VIGIL, "diag", "-r", "3", "--local", "--json",
            "--simulate=" + os.path.join(SCENARIOS, "constant-2gpu.yaml")]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    start = time.monotonic()
    out, err = p.communicate(timeout=15)
    check(time.monotonic() - start < 5, "cancel took %.1fs" % (time.monotonic() - start))
    check(p.returncode == 130, "exit %d, expected 130\n%s" % (p.returncode, err))
    run = json.loads(out)
    check(run["status"] == "cancelled", run["status"])


def test_usage_errors():
    p = subprocess.run([VIGIL, "diag", "-r", "4", "--local"], capture_output=True, text=True)
    check(p.returncode == 2, "exit %d for -r 4" % p.returncode)
    p = subprocess.run([VIGIL, "diag", "-r", "1", "--local", "--simulate", "--param", "bogus.key=1"],
                       capture_output=True, text=True)
    check(p.returncode != 0 and "unknown parameter" in p.stderr, p.stderr)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def unix(v, method, path, body=None):
    """Mutations go over the unix socket (TCP is read-only without authentication)."""
    c = UnixHTTPConnection(v.sock)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"} if body is not None else {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def test_through_the_daemon_api_cli_and_metrics():
    from harness import Vigild, parse_metrics, series, wait_for
    with Vigild(scenario=os.path.join(SCENARIOS, "diag-faults.yaml")) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        p = subprocess.run([VIGIL, "--socket", v.sock, "--timeout", "10", "diag", "-r", "2", "--json"],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 11, "exit %d\n%s" % (p.returncode, p.stderr))
        run = json.loads(p.stdout)
        check(run["status"] == "completed" and run["id"].startswith("d-"), run.get("status"))
        expect(run, "memory", 0, "fail", "0x10000100008")
        expect(run, "pcie_h2d", 1, "fail")
        got = v.get_json("/api/v1/diag/" + run["id"])
        check(len(got["results"]) == len(run["results"]), "GET differs from the CLI's view")
        check(v.get_json("/api/v1/diag")["runs"][0]["id"] == run["id"], "list")
        import sqlite3
        db = sqlite3.connect(os.path.join(v.data, "vigil.db"))
        rows = db.execute("SELECT id, level, status, result FROM diag_runs").fetchall()
        db.close()
        check(rows == [(run["id"], 2, "completed", "fail")], "diag_runs in the store: %r" % rows)
        check(v.get("/api/v1/diag/nope")[0] == 404, "unknown run must be 404")
        status, _ = unix(v, "POST", "/api/v1/diag", {"level": 9})
        check(status == 400, "level 9 answered %d" % status)

        def metric():
            m = parse_metrics(v.metrics())
            return series(m, "vigil_diag_result", gpu="0", test="memory") and \
                series(m, "vigil_diag_last_run_timestamp_seconds")
        wait_for(metric, 5, "vigil_diag_result in /metrics")
        m = parse_metrics(v.metrics())
        check(series(m, "vigil_diag_result", gpu="0", test="memory")[0][1] == 3, "memory fail = 3")
        check(series(m, "vigil_diag_result", gpu="2", test="memory")[0][1] == 0, "memory pass = 0")

        # a long run is cancelled through DELETE and a second start meanwhile is refused
        status, body = unix(v, "POST", "/api/v1/diag", {"level": 3})
        check(status == 202, "start answered %d" % status)
        rid = json.loads(body)["id"]
        status, _ = unix(v, "POST", "/api/v1/diag", {"level": 1})
        check(status == 409, "second run answered %d, expected 409" % status)
        time.sleep(1)
        status, _ = unix(v, "DELETE", "/api/v1/diag/" + rid)
        check(status == 202, "DELETE answered %d" % status)
        wait_for(lambda: v.get_json("/api/v1/diag/" + rid)["status"] == "cancelled", 5, "cancelled")
        # --no-wait: start and return the id (what a policy's exec hook runs)
        p = subprocess.run([VIGIL, "--socket", v.sock, "diag", "-r", "1", "-i", "1", "--no-wait"],
                           capture_output=True, text=True, timeout=20)
        check(p.returncode == 0 and p.stdout.strip().startswith("d-"), "--no-wait: %r %r" % (p.stdout, p.stderr))
        nid = p.stdout.strip()
        wait_for(lambda: v.get_json("/api/v1/diag/" + nid)["status"] == "completed", 10, "--no-wait run")
        check(all(r["gpu"] in (1, None) for r in v.get_json("/api/v1/diag/" + nid)["results"]), "-i 1")
        # TCP without authentication is read-only: starting a run there is refused
        status, _, _ = v.request("POST", "/api/v1/diag", body={"level": 1})
        check(status == 403, "anonymous TCP POST answered %d" % status)


def restart(v):
    """Stop vigild and start it again on the same data directory (and configuration)."""
    import harness
    v.stop()
    addr = os.path.join(v.data, "vigild.addr")
    if os.path.exists(addr):
        os.unlink(addr)
    v.proc = subprocess.Popen(v.cmd, stdout=v.log, stderr=subprocess.STDOUT)
    harness._started.append(v.proc)
    v.wait_listening()


def start_run(v, body):
    status, data = unix(v, "POST", "/api/v1/diag", body)
    check(status == 202, "POST /api/v1/diag %r answered %d: %s" % (body, status, data))
    return json.loads(data)["id"]


def finished(v, rid):
    from harness import wait_for
    return wait_for(lambda: (lambda r: r if r["status"] != "running" else None)(
        v.get_json("/api/v1/diag/" + rid)), 60, "run %s to finish" % rid)


POLICY = """
policies:
  - condition: xid
    actions: [log, diag]
    diag_level: 1
    rate_limit: 1/1h
  - condition: xid
    actions: [log]
    rate_limit: 64/1m
"""


def test_policy_diag_action():
    """An XID 48 (double-bit ECC) incident runs the diag action: a level-1 run on the incident's
    GPU starts, its id is in the incident's action log, its results in GET /api/v1/diag/{id}; a
    second incident on that GPU within the rate limit starts none."""
    import re
    from harness import Vigild, wait_for
    with Vigild(scenario=os.path.join(SCENARIOS, "diag-faults.yaml"), config=POLICY) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        v.inject(gpu=1, xid=48)

        def incident(cond):
            for i in v.get_json("/api/v1/incidents")["incidents"]:
                if i["condition"] == cond and i["gpu"] == 1:
                    return i
            return None
        inc = wait_for(lambda: incident("xid_48"), 20, "the xid_48 incident")

        def diag_action(iid):
            acts = v.get_json("/api/v1/incidents/%d/actions" % iid)["actions"]
            return [a for a in acts if a["action"] == "diag"] or None
        act = wait_for(lambda: diag_action(inc["id"]), 20, "the diag action in the action log")[0]
        check(act["result"] == "done" and act["dry_run"] is False, act)
        m = re.search(r"run (d-\d+-\d+) started", act["detail"])
        check(m and "level 1 on GPU 1" in act["detail"], act)
        run = finished(v, m.group(1))
        check(run["level"] == 1 and run["status"] == "completed", run)
        check(run["origin"] == "policy: incident %d (xid_48)" % inc["id"], run.get("origin"))
        check(all(r["gpu"] in (1, None) for r in run["results"]), "only GPU 1 tested")
        expect(run, "persistence_mode", 1, "pass")
        check(any(r["id"] == run["id"] and r["origin"].startswith("policy")
                  for r in v.get_json("/api/v1/diag")["runs"]), "the run is listed")
        # rate limit 1/1h per (policy, GPU): another XID incident on GPU 1 gets the second
        # policy's log, and no second run
        v.inject(gpu=1, xid=94)
        inc2 = wait_for(lambda: incident("xid_94"), 20, "the xid_94 incident")

        def acted(iid):
            return v.get_json("/api/v1/incidents/%d/actions" % iid)["actions"] or None
        acts = wait_for(lambda: acted(inc2["id"]), 20, "the second incident's actions")
        check([a["action"] for a in acts] == ["log"], "rate-limited diag ran: %r" % acts)
        check(v.get_json("/api/v1/diag")["total"] == 1, "a second run started")
        check(v.get("/api/v1/incidents/abc/actions")[0] == 400, "bad incident id")


CONFIG_DIAG = """
diag:
  sm_stress: {min_tflops: 100, duration: 1s}
  memtest: {duration: 1s}
  targeted_power: {duration: 2s}
  memory_bandwidth: {duration: 1s, min_gbps: 1000}
  retention: {count: 3}
"""


def test_config_thresholds_retention_restart_and_audit():
    """diag: thresholds apply with source "config" and a --param still wins; the stored runs are
    listed (paged) after a restart; retention by count and by age; starts and cancels are
    audited."""
    from harness import Vigild, wait_for
    with Vigild(scenario=os.path.join(SCENARIOS, "diag-faults.yaml"), config=CONFIG_DIAG) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        run = finished(v, start_run(v, {"level": 3, "gpus": [2]}))
        r = expect(run, "sm_stress", 2, "fail")
        check(r["threshold"] == 100 and r["threshold_source"] == "config" and
              r["threshold_detail"] == "diag sm_stress.min_tflops", r)
        r = expect(run, "memory_bandwidth", 2, "pass")
        check(r["threshold"] == 1000 and r["threshold_source"] == "config", r)
        r = expect(run, "pcie_h2d", 2, "pass")
        check(r["threshold_source"] == "spec", r)
        run = finished(v, start_run(v, {"level": 3, "gpus": [2],
                                        "params": ["sm_stress.min_tflops=50"]}))
        r = expect(run, "sm_stress", 2, "pass")
        check(r["threshold"] == 50 and r["threshold_source"] == "param", r)
        ids = [run["id"]]
        for _ in range(3):
            ids.append(finished(v, start_run(v, {"level": 1, "gpus": [0]}))["id"])
        # the last run is listed from memory until it is stored, then the oldest stored one goes
        lst = wait_for(lambda: (lambda x: x if x["total"] == 3 else None)(
            v.get_json("/api/v1/diag")), 10, "retention count 3")
        check([x["id"] for x in lst["runs"]] == ids[:0:-1], "retention count 3: %r" % lst)
        # a long run is cancelled; start and cancel are in the audit trail
        rid = start_run(v, {"level": 3, "gpus": [2]})
        status, _ = unix(v, "DELETE", "/api/v1/diag/" + rid)
        check(status == 202, "DELETE answered %d" % status)
        check(finished(v, rid)["status"] == "cancelled", "cancelled")
        status, body = unix(v, "GET", "/api/v1/audit")
        check(status == 200, "audit answered %d" % status)
        rows = json.loads(body)
        rows = rows.get("records", rows.get("rows", rows)) if isinstance(rows, dict) else rows
        seen = {(x.get("method"), x.get("route")) for x in rows}
        check(("POST", "/api/v1/diag") in seen and ("DELETE", "/api/v1/diag/" + rid) in seen,
              "audit lacks the diag start or cancel: %r" % sorted(seen))

        restart(v)
        lst = v.get_json("/api/v1/diag?limit=2")
        check(lst["total"] == 3 and lst["limit"] == 2 and
              [x["id"] for x in lst["runs"]] == [rid, ids[3]], "after restart: %r" % lst)
        page = v.get_json("/api/v1/diag?limit=2&offset=2")
        check([x["id"] for x in page["runs"]] == [ids[2]], "page 2: %r" % page)
        check(v.get_json("/api/v1/diag/" + ids[2])["status"] == "completed", "GET a stored run")
        check(v.get("/api/v1/diag?limit=x")[0] == 400, "limit=x must be 400")

        # retention by age: a reload with max_age 1s drops every run older than a second
        with open(os.path.join(v.data, "vigil.yaml"), "w") as f:
            f.write(CONFIG_DIAG.replace("retention: {count: 3}", "retention: {max_age: 1s}"))

        def aged():
            status, _ = unix(v, "POST", "/api/v1/config/reload", {})
            return status == 200 and v.get_json("/api/v1/diag")["total"] == 0
        wait_for(aged, 20, "runs older than max_age dropped")


if __name__ == "__main__":
    main([test_level1_findings, test_level2_faults, test_level3_short_passes,
          test_level3_memtest_finds_fault_and_params_override, test_hung_kernel_fails_the_test_not_the_cli,
          test_hang_during_parallel_stress, test_gpu_lost_mid_test, test_ctrl_c_cancels_within_seconds, test_usage_errors,
          test_through_the_daemon_api_cli_and_metrics, test_policy_diag_action,
          test_config_thresholds_retention_restart_and_audit])
