"""test_health.py — the health engine as a user sees it: incidents open from rules and XIDs,
GET /api/v1/health, `vigil health --check` exit codes, acknowledgement, resolution after the
condition clears (with hysteresis), persistence across a restart, metrics, and a healthy run that
must stay quiet."""

from harness import Vigild, check, holds_for, main, parse_metrics, run_cli, series, wait_for

FAST = "health: {resolve_after: 2s}\n"


def incidents(v, all_=False):
    return v.get_json("/api/v1/incidents" + ("?all=true" if all_ else ""))["incidents"]


def find(v, cond, gpu=None, all_=False):
    return [i for i in incidents(v, all_) if i["condition"] == cond and (gpu is None or i["gpu"] == gpu)]


def test_healthy_default_quiet():
    # The built-in scenario (8 H200s replaying a real trace) must not open anything.
    with Vigild(config=FAST) as v:
        wait_for(lambda: v.get_json("/api/v1/health")["evaluations"] > 3, 10, "evaluations")
        v.wait_evaluations(10)  # 10 more sweeps of the trace replay
        inc = incidents(v, True)
        check(inc == [], "healthy run opened incidents: %r" % inc)
        h = v.get_json("/api/v1/health")
        check(h["status"] == "PASS", "status %r" % h["status"])
        check(len(h["gpus"]) == 8, "8 GPUs")
        check(h["gpus"][0]["systems"]["nvlink"].get("note", "").startswith("not monitored"), "nvlink note")
        p = run_cli("--host", v.url, "health", "--check")
        check(p.returncode == 0, "--check exit %d: %s" % (p.returncode, p.stdout + p.stderr))


def test_xid79_critical():
    # How fast the XID turns /api/v1/health to FAIL is measured in bench/timings.py.
    with Vigild(scenario="constant-2gpu.yaml", config=FAST) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        v.inject(gpu=1, xid=79)
        h = wait_for(lambda: (lambda j: j if j["status"] == "FAIL" else None)(v.get_json("/api/v1/health")),
                     10, "FAIL in /api/v1/health")
        check(h["gpus"][1]["status"] == "FAIL" and h["gpus"][0]["status"] == "PASS", "per-GPU status")
        inc = find(v, "xid_79", 1)
        check(len(inc) == 1 and inc[0]["severity"] == "critical", "incident %r" % inc)
        # dedupe: a second report of the same XID counts, it does not open another incident
        v.inject(gpu=1, xid=79)
        wait_for(lambda: find(v, "xid_79", 1)[0]["count"] == 2, 2, "count 2")
        check(len(find(v, "xid_79")) == 1, "deduplicated")
        p = run_cli("--host", v.url, "health", "--check")
        check(p.returncode == 2, "--check exit %d (want 2)" % p.returncode)
        p = run_cli("--host", v.url, "health")
        check(p.returncode == 0 and "FAIL" in p.stdout, "health table (exit 0 without --check): %d %s" % (p.returncode, p.stdout))
        p = run_cli("--host", v.url, "incidents")
        check("xid_79" in p.stdout, "incidents list: %s" % p.stdout)
        iid = str(inc[0]["id"])
        # mutations go through the unix socket (TCP is read-only without authentication)
        run_cli("--socket", v.sock, "incidents", "ack", iid, check_rc=0)
        check(find(v, "xid_79", 1)[0]["state"] == "acknowledged", "acknowledged")
        run_cli("--socket", v.sock, "incidents", "ack", "999999", check_rc=5)
        # /metrics is a snapshot rendered after each sweep
        m = wait_for(lambda: (lambda m: m if series(m, "vigil_incidents", severity="critical",
                                                    state="acknowledged")[0][1] == 1 else None)(
            parse_metrics(v.metrics())), 3, "vigil_incidents acknowledged")
        check(series(m, "vigil_gpu_health", gpu=1, system="gpu")[0][1] == 2, "vigil_gpu_health")
        # an application-caused XID (13 is a warning) gives exit 1 on its own: check on GPU 0 only
        v.inject(gpu=0, xid=13)
        wait_for(lambda: find(v, "xid_13", 0), 2, "xid 13 incident")
        check(find(v, "xid_13", 0)[0]["severity"] == "warning", "xid 13 is a warning")


def test_temperature_hysteresis_and_resolve():
    cfg = "health: {resolve_after: 2s, temperature: {warning: 80, critical: 88, hysteresis: 3}}\n"
    with Vigild(scenario="constant-2gpu.yaml", config=cfg) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        # noise just under the threshold: nothing
        v.inject(gpu=0, field="GPU_TEMP", value=79)
        v.wait_metric("vigil_gpu_temperature_celsius", lambda t: t == 79, gpu=0)
        v.wait_evaluations(3)
        check(find(v, "temperature") == [], "fired below the threshold")
        v.inject(gpu=0, field="GPU_TEMP", value=81)
        wait_for(lambda: find(v, "temperature", 0), 3, "temperature incident")
        check(find(v, "temperature", 0)[0]["severity"] == "warning", "warning")
        # back to 78: above threshold - hysteresis (77), so it stays open well past resolve_after
        v.inject(gpu=0, field="GPU_TEMP", value=78)
        v.wait_metric("vigil_gpu_temperature_celsius", lambda t: t == 78, gpu=0)
        # resolve_after is the daemon's own timer: 2 s of real time must pass (with margin)
        holds_for(lambda: (lambda i: i and i[0]["state"] == "open")(find(v, "temperature", 0)), 3,
                  "the temperature incident open under the hysteresis")
        v.inject(gpu=0, field="GPU_TEMP", value=90)
        wait_for(lambda: find(v, "temperature", 0)[0]["severity"] == "critical", 3, "escalated")
        v.inject(gpu=0, field="GPU_TEMP", clear=True)
        wait_for(lambda: not find(v, "temperature", 0), 8, "resolved")
        res = find(v, "temperature", 0, all_=True)
        check(res and res[0]["state"] == "resolved" and res[0]["resolved_at"], "resolved %r" % res)
        p = run_cli("--host", v.url, "incidents", "--all")
        check("resolved" in p.stdout, "incidents --all shows resolved")


def test_gpu_lost_and_back():
    with Vigild(scenario="constant-2gpu.yaml", config=FAST) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        v.inject(gpu=1, lost=True)
        wait_for(lambda: find(v, "gpu_lost", 1), 5, "gpu_lost incident")
        check(v.get_json("/api/v1/health")["gpus"][1]["systems"]["gpu"]["status"] == "FAIL", "gpu FAIL")
        v.inject(gpu=1, lost=False)
        wait_for(lambda: not find(v, "gpu_lost", 1), 15, "gpu_lost resolved after the GPU returned")


def test_memory_and_count_rules():
    cfg = "health: {resolve_after: 2s, expected_gpus: 4}\n"
    with Vigild(scenario="constant-2gpu.yaml", config=cfg) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        wait_for(lambda: find(v, "gpu_count"), 5, "gpu_count incident")
        check(find(v, "gpu_count")[0]["gpu"] is None, "node incident")
        v.inject(gpu=0, ecc_dbe=1)
        wait_for(lambda: find(v, "ecc_dbe_volatile", 0), 5, "ecc_dbe_volatile incident")
        v.inject(gpu=1, field="ROW_REMAP_PENDING", value=1)
        wait_for(lambda: find(v, "row_remap_pending", 1), 5, "row_remap_pending incident")
        check(v.get_json("/api/v1/health")["gpus"][1]["systems"]["memory"]["status"] == "WARN", "WARN")


def test_incidents_survive_restart():
    d = None
    with Vigild(scenario="constant-2gpu.yaml", config=FAST) as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        commits = v.metric("vigil_store_commits_total")
        v.inject(gpu=0, xid=48)
        wait_for(lambda: find(v, "xid_48", 0), 2, "xid_48")
        v.wait_metric("vigil_store_commits_total", lambda c: c > commits,
                      what="the store to commit the incident")
        first = find(v, "xid_48", 0)[0]
        d = v.data
        keep = v.tmp
        v.tmp = None  # keep the data dir for the second run
        v.stop()
    try:
        v2 = Vigild(scenario="constant-2gpu.yaml", config=FAST, args=["--data-dir", d])
        v2.data = d
        with v2.wait_listening():
            inc = find(v2, "xid_48", 0)
            check(inc and inc[0]["id"] == first["id"] and inc[0]["first_seen"] == first["first_seen"],
                  "not reloaded: %r vs %r" % (inc, first))
    finally:
        keep.cleanup()


if __name__ == "__main__":
    main([test_healthy_default_quiet, test_xid79_critical,
          test_temperature_hysteresis_and_resolve, test_gpu_lost_and_back,
          test_memory_and_count_rules, test_incidents_survive_restart])
