#!/usr/bin/env python3
"""Job statistics end to end (docs/workloads.md, "Job statistics") on the fake NVML:

- a registered job's energy is the difference of the energy counter that GET /api/v1/gpus shows
  at its start and at its end, and its utilisation, power, memory and temperature follow a
  scenario step (jobs.yaml); an injected XID and ECC errors show in the job;
- a GPU lost during a job is a gap, and nothing is counted while it lasts;
- a job running while vigild restarts is still accounted, with the time vigild was away as a gap;
- the retention (workload.jobs.retention, reloaded with SIGHUP) deletes finished jobs;
- bad input is refused with a clear error, mutations are audited, TCP without authentication
  cannot start jobs;
- deploy/slurm/prolog.sh and epilog.sh register a Slurm job from SLURM_* variables against a live
  vigild, and the epilog appends `vigil job show` to the job's output file.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILD, SRC, Vigild, check, main, scratch_dir,  # noqa: E402
                     skip_part, wait_for)

VIGIL = os.path.join(BUILD, "bin", "vigil")
VIGILD = os.path.join(BUILD, "bin", "vigild")
SCENARIO = os.path.join(SRC, "tests", "scenarios", "jobs.yaml")
SLURM = os.path.join(SRC, "deploy", "slurm")

# the energy counter is read on the slow tier, every 5 s
CONFIG = """
collection:
  tiers: {fast: 1s, slow: 5s}
workload:
  jobs: {retention: %s, grace: 1m}
"""


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def unix(v, method, path, body=None, raw=None):
    """Mutations go over the unix socket (TCP is read-only without authentication)."""
    c = UnixHTTPConnection(v.sock)
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    c.request(method, path, body=data,
              headers={"Content-Type": "application/json"} if data is not None else {})
    r = c.getresponse()
    out = r.read()
    c.close()
    return r.status, json.loads(out) if out else None


def energy(v, gpu=0):
    """(value mJ, timestamp) of the energy counter as GET /api/v1/gpus shows it."""
    g = v.get_json("/api/v1/gpus?fields=TOTAL_ENERGY_CONSUMPTION")["gpus"][gpu]
    f = g["fields"][0]
    return (f.get("value"), f.get("timestamp_us")) if f["status"] == "ok" else (None, None)


def reading_after(v, ts_us):
    """The energy reading GET /api/v1/gpus shows once one sampled after ts_us is there."""
    return wait_for(lambda: (lambda e: e if e[1] is not None and e[1] > ts_us else None)(energy(v)),
                    30, "an energy reading after %d" % ts_us)


def job(v, jid):
    return v.get_json("/api/v1/jobs/" + jid)


def samples(v, jid, gpu=0):
    return job(v, jid)["gpus"][gpu]["sm_utilization_pct"]["samples"]


def test_energy_and_scenario():
    with Vigild(SCENARIO, config=CONFIG % "30d") as v:
        wait_for(lambda: energy(v)[0] is not None, 20, "a fresh energy reading")
        before = energy(v)
        st, started = unix(v, "POST", "/api/v1/jobs", {"id": "train-1", "gpus": [0]})
        check(st == 201, "start answered %d: %s" % (st, started))
        check(started["state"] == "running" and [g["gpu"] for g in started["gpus"]] == [0],
              started)
        after = reading_after(v, started["start_us"])
        # the counter at the start lies between the reading before it and the first after it
        wait_for(lambda: job(v, "train-1")["gpus"][0]["energy"]["start_interpolated"], 20,
                 "the start's counter value interpolated")
        e0 = job(v, "train-1")["gpus"][0]["energy"]["start_mj"]
        check(before[0] <= e0 <= after[0],
              "the job's start counter %s is not between the readings /api/v1/gpus showed "
              "around the start (%s, %s)" % (e0, before[0], after[0]))
        # a few sweeps at 10 %, then the step to 90 % / 300 W at scenario t=30s
        wait_for(lambda: samples(v, "train-1") >= 2, 20, "readings at 10 %")
        v.advance(60)
        n = samples(v, "train-1")
        wait_for(lambda: samples(v, "train-1") >= n + 3, 30, "readings after the step")
        wait_for(lambda: energy(v)[0] is not None and energy(v)[0] > e0 + 300000 * 30, 20,
                 "the energy counter past the step")
        # an XID and single-bit ECC errors during the job
        v.inject(gpu=0, xid=31)
        v.inject(gpu=0, ecc_sbe=3)
        wait_for(lambda: job(v, "train-1")["gpus"][0]["xids"] == [{"code": 31, "count": 1}]
                 and job(v, "train-1")["gpus"][0]["ecc_sbe"] == 3, 20,
                 "the XID and the ECC errors in the job")
        before = energy(v)
        st, stopped = unix(v, "POST", "/api/v1/jobs/train-1/stop")
        check(st == 200 and stopped["state"] == "finished", (st, stopped))
        after = reading_after(v, stopped["end_us"])
        stopped = wait_for(lambda: (lambda j: j if j["final"] else None)(job(v, "train-1")), 30,
                           "the job final (the reading after its end)")
        g = stopped["gpus"][0]
        e = g["energy"]
        check(e["end_interpolated"] and before[0] <= e["end_mj"] <= after[0],
              "the job's end counter %s is not between the readings /api/v1/gpus showed "
              "around the end (%s, %s)" % (e, before[0], after[0]))
        check(e["used_mj"] == e["end_mj"] - e["start_mj"] and e["counter_resets"] == 0, e)
        check(abs(g["energy_joules"] - e["used_mj"] / 1000.0) < 1e-6, g)
        check(abs(stopped["energy_joules"] - g["energy_joules"]) < 1e-6, stopped)
        check(e["used_mj"] >= 300000 * 60, "60 s of scenario time at 300 J/s: %s" % e)
        u = g["sm_utilization_pct"]
        check(u["max"] == 90 and 10 < u["avg"] < 90, "SM utilisation %s" % u)
        check(g["power_w"]["max"] == 300 and g["temperature_max_c"] == 71, g)
        check(g["memory_used_max_mib"] == 70000 and g["memory_utilization_pct"]["max"] == 40, g)
        check(g["gaps"] == [] and g["xids"] == [{"code": 31, "count": 1}], g)
        check(g["ecc_sbe"] == 3 and g["ecc_dbe"] == 0, g)
        # the list and the CLI show the same job
        lst = v.get_json("/api/v1/jobs?state=finished")
        check([j["id"] for j in lst["jobs"]] == ["train-1"], lst)
        check(v.get_json("/api/v1/jobs?state=running")["jobs"] == [], "nothing running")
        check(v.get_json("/api/v1/jobs?gpu=1")["jobs"] == [], "no job on GPU 1")
        p = subprocess.run([VIGIL, "--socket", v.sock, "job", "show", "train-1"],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 0 and "Energy consumed" in p.stdout
              and "%.2f J" % g["energy_joules"] in p.stdout, p.stdout + p.stderr)
        p = subprocess.run([VIGIL, "--socket", v.sock, "--json", "job", "show", "train-1"],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 0 and json.loads(p.stdout)["gpus"][0]["energy"] == e, p.stdout)


def start_on(data, config, log_name):
    """vigild on an existing data dir (a restart)."""
    d = Vigild.__new__(Vigild)
    with open(os.path.join(data, "vigil.yaml"), "w") as f:
        f.write(config)
    d.tmp = None
    d.data = data
    d.sock = os.path.join(data, "vigild.sock")
    d.cmd = [VIGILD, "--simulate=" + SCENARIO, "--listen", "127.0.0.1:0", "--data-dir", data,
             "--socket", d.sock, "--config", os.path.join(data, "vigil.yaml")]
    d.log_path = os.path.join(data, log_name)
    d.log = open(d.log_path, "w+")
    d.started = time.monotonic()
    try:
        os.unlink(os.path.join(data, "vigild.addr"))
    except FileNotFoundError:
        pass
    d.proc = subprocess.Popen(d.cmd, stdout=d.log, stderr=subprocess.STDOUT)
    d.url = None
    return d.wait_listening()


def test_restart_gap():
    with scratch_dir() as data:
        v = start_on(data, CONFIG % "30d", "vigild.1.log")
        try:
            wait_for(lambda: energy(v)[0] is not None, 20, "a fresh energy reading")
            st, _ = unix(v, "POST", "/api/v1/jobs", {"id": "long-1"})
            check(st == 201, "start answered %d" % st)
            wait_for(lambda: job(v, "long-1")["gpus"][0]["energy"]["used_mj"] > 0, 20,
                     "energy counted before the restart")
            used_before = job(v, "long-1")["gpus"][0]["energy"]["used_mj"]
            stopping_at = time.time() * 1e6
        finally:
            v.stop()
        stopped_at = time.time() * 1e6
        v = start_on(data, CONFIG % "30d", "vigild.2.log")
        try:
            j = job(v, "long-1")
            check(j["state"] == "running" and len(j["gpus"]) == 2, j)

            def gap_closed():
                gs = job(v, "long-1")["gpus"][0]["gaps"]
                return gs if gs and gs[0]["end_us"] is not None else None
            gaps = wait_for(gap_closed, 20, "the restart gap closed by a fresh reading")
            check(len(gaps) == 1 and gaps[0]["reason"] == "vigild_not_running", gaps)
            # it starts when the stopping vigild wrote the job last, and ends at the new one's
            # first fresh reading
            check(stopping_at <= gaps[0]["start_us"] <= stopped_at and
                  gaps[0]["end_us"] >= stopped_at,
                  "gap %s does not cover the restart (stopped %d..%d)" % (gaps[0], stopping_at,
                                                                          stopped_at))
            st, end = unix(v, "POST", "/api/v1/jobs/long-1/stop")
            check(st == 200, "stop answered %d" % st)
            e = end["gpus"][0]["energy"]
            # the fake's counter starts again from 0 with the new vigild, as after a driver
            # reload: counted as a reset, and what was used before the restart is kept
            check(e["used_mj"] >= used_before and e["counter_resets"] == 1, (used_before, e))
            check(end["gpus"][1]["gaps"][0]["reason"] == "vigild_not_running", end["gpus"][1])
        finally:
            v.stop()


def test_lost_gpu_gap():
    with Vigild(SCENARIO, config=CONFIG % "30d") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 20, "ready")
        st, _ = unix(v, "POST", "/api/v1/jobs", {"id": "lost-1", "gpus": [1]})
        check(st == 201, "start answered %d" % st)
        wait_for(lambda: samples(v, "lost-1") >= 1, 20, "a reading before the loss")
        v.inject(gpu=1, lost=True)
        wait_for(lambda: job(v, "lost-1")["gpus"][0]["gaps"], 20, "a gap while the GPU is lost")
        n = samples(v, "lost-1")
        v.wait_sweeps(3)
        check(samples(v, "lost-1") == n, "readings counted while the GPU was lost")
        v.inject(gpu=1, lost=False)
        gaps = wait_for(lambda: (lambda g: g if g[0]["end_us"] else None)(
            job(v, "lost-1")["gpus"][0]["gaps"]), 40, "the gap closed after the GPU came back")
        check(len(gaps) == 1 and gaps[0]["reason"] == "gpu_lost"
              and gaps[0]["end_us"] > gaps[0]["start_us"], gaps)
        wait_for(lambda: samples(v, "lost-1") > n, 20, "readings again")


def test_retention_reload():
    with Vigild(SCENARIO, config=CONFIG % "30d") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 20, "ready")
        for jid in ("old-1", "keep-1"):
            st, _ = unix(v, "POST", "/api/v1/jobs", {"id": jid, "gpus": [1]})
            check(st == 201, "start %s answered %d" % (jid, st))
        st, _ = unix(v, "POST", "/api/v1/jobs/old-1/stop")
        check(st == 200, "stop answered %d" % st)
        v.wait_sweeps(2, tier="slow")
        check(v.get("/api/v1/jobs/old-1")[0] == 200, "kept under a 30 d retention")
        with open(os.path.join(v.data, "vigil.yaml"), "w") as f:
            f.write(CONFIG % "2s")
        v.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: v.get("/api/v1/jobs/old-1")[0] == 404, 40,
                 "the finished job deleted after the retention was reloaded to 2s")
        check(v.get("/api/v1/jobs/keep-1")[0] == 200, "a running job is never deleted")
        lst = v.get_json("/api/v1/jobs")
        check([j["id"] for j in lst["jobs"]] == ["keep-1"], lst)


def test_bad_input_and_audit():
    with Vigild(SCENARIO, config=CONFIG % "30d") as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 20, "ready")
        cases = [
            ({"raw": "{not json"}, 400, "invalid JSON"),
            ({"body": {"gpus": [0]}}, 400, "missing string 'id'"),
            ({"body": {"id": "a:b"}}, 400, "invalid job id"),
            ({"body": {"id": "x" * 200}}, 400, "invalid job id"),
            ({"body": {"id": "ok-1", "gpus": [7]}}, 400, "no GPU 7"),
            ({"body": {"id": "ok-1", "gpus": "0"}}, 400, "'gpus' must be"),
            ({"body": {"id": "ok-1", "gpus": [-1]}}, 400, "not a GPU index"),
            ({"body": {"id": "ok-1", "user": "x"}}, 400, "unknown key 'user'"),
        ]
        for kw, status, msg in cases:
            st, body = unix(v, "POST", "/api/v1/jobs", kw.get("body"), raw=kw.get("raw"))
            check(st == status and msg in body["error"]["message"], (kw, st, body))
        check(v.get_json("/api/v1/jobs")["jobs"] == [], "nothing half-started")
        st, _ = unix(v, "POST", "/api/v1/jobs", {"id": "ok-1"})
        check(st == 201, "start answered %d" % st)
        st, body = unix(v, "POST", "/api/v1/jobs", {"id": "ok-1"})
        check(st == 409 and "already running" in body["error"]["message"], (st, body))
        st, body = unix(v, "POST", "/api/v1/jobs/nope/stop")
        check(st == 404 and "no job 'nope'" in body["error"]["message"], (st, body))
        check(v.get("/api/v1/jobs/nope")[0] == 404, "GET of an unknown job")
        for q in ("state=done", "kind=batch", "gpu=x", "gpu=99", "limit=0", "since=-5"):
            check(v.get("/api/v1/jobs?" + q)[0] == 400, "GET /api/v1/jobs?%s accepted" % q)
        # TCP without authentication is read-only
        st, _, _ = v.request("POST", "/api/v1/jobs", {"id": "tcp-1"})
        check(st == 403, "POST over TCP without authentication answered %d" % st)
        st, _ = unix(v, "POST", "/api/v1/jobs/ok-1/stop")
        check(st == 200, "stop answered %d" % st)
        st, body = unix(v, "POST", "/api/v1/jobs/ok-1/stop")
        check(st == 409 and "already ended" in body["error"]["message"], (st, body))
        st, audit = unix(v, "GET", "/api/v1/audit?limit=100")
        check(st == 200, "audit answered %d" % st)
        recs = audit.get("records", audit.get("entries", []))
        events = [(r["event"], r["detail"].split(";")[0], r["status"]) for r in recs
                  if r["event"].startswith("job_")]
        for want in (("job_start", "job=ok-1", 201), ("job_start", "job=ok-1", 409),
                     ("job_stop", "job=ok-1", 200), ("job_stop", "job=nope", 404),
                     ("job_start", "job=a:b", 400)):
            check(want in events, "audit has no %s: %s" % (want, events))


def test_slurm_scripts_shellcheck():
    sc = shutil.which("shellcheck")
    if not sc:
        skip_part("shellcheck is not installed")
        return
    p = subprocess.run([sc, os.path.join(SLURM, "prolog.sh"), os.path.join(SLURM, "epilog.sh")],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "shellcheck:\n" + p.stdout + p.stderr)


def test_slurm_prolog_epilog():
    with Vigild(SCENARIO, config=CONFIG % "30d") as v, scratch_dir() as tmp:
        wait_for(lambda: energy(v)[0] is not None, 20, "a fresh energy reading")
        out = os.path.join(tmp, "slurm-4242.out")
        with open(out, "w") as f:
            f.write("job output\n")
        env = dict(os.environ, SLURM_JOB_ID="4242", SLURM_JOB_GPUS="0,1",
                   VIGIL=VIGIL, VIGIL_ARGS="--socket " + v.sock)
        env.pop("CUDA_VISIBLE_DEVICES", None)
        p = subprocess.run(["sh", os.path.join(SLURM, "prolog.sh")], env=env,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "prolog: %d %s" % (p.returncode, p.stderr))
        j = job(v, "slurm-4242")
        check(j["state"] == "running" and [g["gpu"] for g in j["gpus"]] == [0, 1], j)
        wait_for(lambda: samples(v, "slurm-4242") >= 1, 20, "a reading in the job")
        # the epilog finds the job's output through scontrol (a stand-in here)
        bindir = os.path.join(tmp, "bin")
        os.mkdir(bindir)
        with open(os.path.join(bindir, "scontrol"), "w") as f:
            f.write("#!/bin/sh\n[ \"$1 $2 $3\" = 'show job 4242' ] || exit 1\n"
                    "echo '   JobId=4242 JobName=train'\necho '   StdOut=%s'\n" % out)
        os.chmod(os.path.join(bindir, "scontrol"), 0o755)
        env["PATH"] = bindir + os.pathsep + env["PATH"]
        p = subprocess.run(["sh", os.path.join(SLURM, "epilog.sh")], env=env,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "epilog: %d %s" % (p.returncode, p.stderr))
        check(job(v, "slurm-4242")["state"] == "finished", "the epilog stopped the job")
        with open(out) as f:
            text = f.read()
        check(text.startswith("job output\n") and "Job slurm-4242" in text
              and "Energy consumed" in text and "GPU 1" in text, text)
        # a prolog against a daemon that is not there must not fail the job (exit 0, a warning)
        env["VIGIL_ARGS"] = "--socket " + os.path.join(tmp, "none.sock")
        env["SLURM_JOB_ID"] = "4243"
        p = subprocess.run(["sh", os.path.join(SLURM, "prolog.sh")], env=env,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0 and "vigil" in p.stderr, "prolog without vigild: %d %s"
              % (p.returncode, p.stderr))


if __name__ == "__main__":
    main([test_energy_and_scenario, test_restart_gap, test_lost_gpu_gap, test_retention_reload,
          test_bad_input_and_audit, test_slurm_scripts_shellcheck, test_slurm_prolog_epilog])
