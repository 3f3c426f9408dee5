#!/usr/bin/env python3
"""Options that do what they say: one vigild per data directory (the second is refused with the
holder's pid and leaves the first one's files alone; a --takeover successor inherits the lock),
vigild without a GPU creates nothing, and CLI options that are honoured or refused clearly
(backup create --dir, backup restore without --data-dir, options a subcommand does not take,
audit -j, health's exit status)."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from harness import VIGILD, Vigild, check, main, run_cli, wait_for


def refused_second(v, expect_pid):
    cmd = [a if not a.startswith("127.0.0.1:") else "127.0.0.1:0" for a in v.cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    check(p.returncode != 0, "a second vigild on the same data directory started:\n" + out)
    check("in use by vigild pid %d" % expect_pid in out, "refusal names the holder:\n" + out)
    return out


def test_one_vigild_per_data_dir():
    with Vigild() as v:
        addr = os.path.join(v.data, "vigild.addr")
        before = open(addr).read()
        refused_second(v, v.proc.pid)
        check(os.path.exists(addr) and open(addr).read() == before,
              "the refused vigild touched the first one's vigild.addr")
        check(v.get("/healthz")[0] == 200, "first vigild still serves")

        # a --takeover successor receives the lock: a third one is refused naming the successor
        ctl = os.path.join(v.data, "takeover.sock")
        succ = subprocess.Popen(v.cmd + ["--takeover", ctl], stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
        try:
            rc = v.proc.wait(30)
            check(rc == 0, "old vigild exited %s after the handover" % rc)
            wait_for(lambda: open(os.path.join(v.data, "vigild.lock")).read().strip()
                     == str(succ.pid), 10, "successor's pid in the lock")
            refused_second(v, succ.pid)
        finally:
            succ.send_signal(signal.SIGTERM)
            succ.wait(10)


def test_no_gpu_creates_nothing():
    tmp = tempfile.mkdtemp(prefix="vigil-nogpu-")
    try:
        data = os.path.join(tmp, "data")
        sockdir = os.path.join(tmp, "run")
        p = subprocess.run([VIGILD, "--listen", "127.0.0.1:0", "--data-dir", data, "--socket",
                            os.path.join(sockdir, "vigild.sock"), "--nvml-lib",
                            os.path.join(tmp, "no-such-libnvidia-ml.so.1")],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode != 0, "vigild without a GPU started: " + p.stderr)
        check(not os.path.exists(data) and not os.path.exists(sockdir),
              "created before refusing: %s" % sorted(os.listdir(tmp)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_backup_options():
    with Vigild() as v:
        tmp = tempfile.mkdtemp(prefix="vigil-opts-")
        try:
            p = run_cli("--socket", v.sock, "backup", "create", "--dir", tmp)
            check(p.returncode == 2 and "--dir" in p.stderr, "create --dir: %d %s" % (p.returncode, p.stderr))
            check(os.listdir(tmp) == [], "create --dir wrote %s" % os.listdir(tmp))
            p = run_cli("--socket", v.sock, "--json", "backup", "create")
            check(p.returncode == 0, "create: %d %s" % (p.returncode, p.stderr))
            archive = json.loads(p.stdout)["path"]

            p = run_cli("backup", "restore", archive)
            check(p.returncode == 2 and "--data-dir" in p.stderr and "nothing was changed" in p.stderr,
                  "restore without --data-dir: %d %s" % (p.returncode, p.stderr))
            missing = os.path.join(tmp, "nowhere")
            p = run_cli("backup", "restore", archive, "--data-dir", missing)
            check(p.returncode != 0 and not os.path.exists(missing),
                  "restore into a missing dir: %d %s" % (p.returncode, p.stderr))
            p = run_cli("backup", "rollback")
            check(p.returncode == 2 and "--data-dir" in p.stderr, "rollback: " + p.stderr)
            p = run_cli("backup", "list", "--keep", "3", "--dir", tmp)
            check(p.returncode == 2 and "--keep" in p.stderr, "list --keep: " + p.stderr)
            p = run_cli("backup", "verify", archive, "--data-dir", tmp)
            check(p.returncode == 2 and "--data-dir" in p.stderr, "verify --data-dir: " + p.stderr)
            p = run_cli("backup", "list", "--dir", os.path.dirname(archive), "-j")
            check(p.returncode == 0 and json.loads(p.stdout)["backups"], "list -j: " + p.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def test_json_everywhere_and_health_exit():
    with Vigild() as v:
        wait_for(lambda: v.get("/readyz")[0] == 200, 10, "ready")
        p = run_cli("--socket", v.sock, "audit", "-j")
        check(p.returncode == 0 and "records" in json.loads(p.stdout), "audit -j: %d %s %s" % (
            p.returncode, p.stdout[:200], p.stderr))
        p = run_cli("--socket", v.sock, "audit", "--since", "1h", "--json")
        check(p.returncode == 0 and "records" in json.loads(p.stdout), "audit --since --json")
        p = run_cli("--socket", v.sock, "audit", "verify", "-j")
        check(p.returncode == 0 and json.loads(p.stdout)["ok"] is True, "audit verify -j: " + p.stdout)
        p = run_cli("audit", "verify", "--db", os.path.join(v.data, "vigil.db"), "-j")
        check(p.returncode == 0 and json.loads(p.stdout)["ok"] is True,
              "offline audit verify -j: %d %s %s" % (p.returncode, p.stdout, p.stderr))
        p = run_cli("--socket", v.sock, "audit", "--bogus")
        check(p.returncode == 2 and "--bogus" in p.stderr, "unknown audit option: " + p.stderr)
        for cmd in (["discovery"], ["status"], ["fields"], ["health"], ["incidents"], ["keys"]):
            p = run_cli("--socket", v.sock, *cmd, "-j")
            check(p.returncode == 0, "%s -j: %d %s" % (cmd, p.returncode, p.stderr))
            json.loads(p.stdout)
        v.inject(gpu=1, xid=79)
        wait_for(lambda: v.get_json("/api/v1/health")["status"] == "FAIL", 10, "FAIL")
        p = run_cli("--socket", v.sock, "health")
        check(p.returncode == 0 and "FAIL" in p.stdout, "health shown: %d" % p.returncode)
        p = run_cli("--socket", v.sock, "health", "--check")
        check(p.returncode == 2, "health --check: %d" % p.returncode)


if __name__ == "__main__":
    main([test_one_vigild_per_data_dir, test_no_gpu_creates_nothing, test_backup_options,
          test_json_everywhere_and_health_exit])
