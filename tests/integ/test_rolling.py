"""test_rolling.py — deploy/scripts/rolling-deploy.sh end to end against three "hosts" (network
namespaces, 10.200.1.10-12, each running `vigild --simulate` on :5555).

1. A good release: every host is drained from the file_sd targets file while it is installed,
   restarted (a new pid), healthy, and back in the targets file; exit 0.
2. A broken release (the new binary exits at once): the first host fails its health gate, is
   rolled back to the old binary and is healthy again, the rollout stops with exit 1, and the
   other hosts are not touched.
3. --expect-version: a healthy node running another version counts as failed (rolled back).
4. A node whose GPU is already failed (critical before the upgrade) does not stop the rollout:
   the gate compares the node's state before and after.
Skips (exit 77) where `ip netns` is not permitted.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "deploy"))
from harness import BUILD, Failure, SRC, VIGILD, check, scratch_dir, wait_for  # noqa: E402
import netns  # noqa: E402

SCRIPT = os.path.join(SRC, "deploy", "scripts", "rolling-deploy.sh")
NODECTL = os.path.join(SRC, "tests", "deploy", "netns.py")


def status_pid(ip):
    with urllib.request.urlopen("http://%s:5555/api/v1/status" % ip, timeout=3) as r:
        return json.load(r)["pid"]


def status_version(ip):
    with urllib.request.urlopen("http://%s:5555/api/v1/status" % ip, timeout=3) as r:
        return json.load(r)["version"]


def ready(ip):
    try:
        with urllib.request.urlopen("http://%s:5555/readyz" % ip, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def run_rollout(state_path, hosts, targets, extra=()):
    env = dict(os.environ, VIGIL_CLI=os.path.join(BUILD, "bin", "vigil"))
    hook = "python3 %s %s" % (NODECTL, state_path)
    t0 = time.monotonic()
    r = subprocess.run([SCRIPT, "--hosts", " ".join(hosts), "--targets", targets,
                        "--health-timeout", "4", "--install", hook + " install",
                        "--rollback", hook + " rollback"] + list(extra),
                       capture_output=True, text=True, env=env, timeout=120)
    print(r.stderr.rstrip())
    return r.returncode, time.monotonic() - t0


def main():
    netns.skip_without_netns()
    net = netns.Net(1, 3)
    tmp = scratch_dir("vigil-rolling-")
    try:
        targets = os.path.join(tmp.name, "targets.json")
        st = {"hosts": {}, "old_bin": VIGILD, "new_bin": VIGILD, "targets": targets}
        for ns, ip in net.hosts:
            data = os.path.join(tmp.name, ip)
            args = ["--simulate=" + os.path.join(SRC, "tests", "scenarios", "constant-2gpu.yaml"),
                    "--listen", ip + ":5555", "--data-dir", data, "--socket", data + "/vigild.sock"]
            st["hosts"][ip] = {"ns": ns, "data": data, "args": args}
            netns.start_vigild(ns, VIGILD, args, data, "vigild-0-initial.log")
        hosts = [ip for _, ip in net.hosts]
        with open(targets, "w") as f:
            json.dump([{"targets": ["%s:5555" % h for h in hosts], "labels": {"job": "vigil"}}], f)
        state_path = os.path.join(tmp.name, "state.json")
        with open(state_path, "w") as f:
            json.dump(st, f)
        for h in hosts:
            wait_for(lambda h=h: ready(h), 20, "%s to be ready" % h)
        before = {h: status_pid(h) for h in hosts}

        # 1. a good release
        rc, took = run_rollout(state_path, hosts, targets)
        check(rc == 0, "good rollout exited %d" % rc)
        print("# rolling deploy of 3 hosts: %.2f s" % took)
        after = {h: status_pid(h) for h in hosts}
        for h in hosts:
            check(after[h] != before[h], "%s was not restarted" % h)
            with open(os.path.join(st["hosts"][h]["data"], "drain-check")) as f:
                check(f.read().strip() == "install drained=True", "%s was not drained while installed" % h)
        with open(targets) as f:
            check(sorted(json.load(f)[0]["targets"]) == sorted("%s:5555" % h for h in hosts),
                  "targets file lost a host")

        # 2. a broken release: rolled back on the first host, the others untouched
        st["new_bin"] = os.path.join(SRC, "tests", "deploy", "vigild-exits")
        with open(state_path, "w") as f:
            json.dump(st, f)
        rc, took = run_rollout(state_path, hosts, targets)
        check(rc == 1, "broken rollout exited %d, expected 1" % rc)
        print("# failed rollout incl. rollback of the first host: %.2f s" % took)
        check(ready(hosts[0]), "first host not healthy after its rollback")
        check(status_pid(hosts[0]) != after[hosts[0]], "first host was not touched at all")
        for h in hosts[1:]:
            check(status_pid(h) == after[h], "%s was touched after the rollout stopped" % h)
        with open(targets) as f:
            check(sorted(json.load(f)[0]["targets"]) == sorted("%s:5555" % h for h in hosts),
                  "the rolled-back host is not back in the targets file")

        # 3. healthy but the wrong version (a takeover whose successor failed): rolled back too
        st["new_bin"] = VIGILD
        with open(state_path, "w") as f:
            json.dump(st, f)
        rc, _ = run_rollout(state_path, hosts[:1], targets, ["--expect-version", "0.0.0-not-this"])
        check(rc == 1, "rollout with the wrong version exited %d, expected 1" % rc)
        rc, _ = run_rollout(state_path, hosts[:1], targets, ["--expect-version", status_version(hosts[0])])
        check(rc == 0, "rollout with the right version exited %d" % rc)

        # 4. a node with a GPU already failed (XID 79) is upgraded, and so are the ones after it
        sick = hosts[1]
        st["hosts"][sick]["args"][0] = "--simulate=" + os.path.join(SRC, "tests", "scenarios", "xid-ecc.yaml")
        with open(state_path, "w") as f:
            json.dump(st, f)
        subprocess.run(["python3", NODECTL, state_path, "install"], check=True,
                       env=dict(os.environ, HOST=sick))
        cli = os.path.join(BUILD, "bin", "vigil")
        wait_for(lambda: subprocess.run([cli, "--host", "http://%s:5555" % sick, "health", "--check"],
                                        capture_output=True).returncode == 2, 20, "%s critical" % sick)
        before = {h: status_pid(h) for h in hosts}
        rc, _ = run_rollout(state_path, hosts, targets)
        check(rc == 0, "rollout across a node with a failed GPU exited %d" % rc)
        for h in hosts:
            check(status_pid(h) != before[h], "%s was not upgraded" % h)
    finally:
        net.close()
        bad = netns.sanitizer_reports([d["data"] for d in st["hosts"].values()])
        tmp.cleanup()
    check(not bad, "sanitizer reports:\n" + "\n".join(bad))
    print("ok - rolling deploy and rollback")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL:", e)
        sys.exit(1)
