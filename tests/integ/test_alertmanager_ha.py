"""test_alertmanager_ha.py — the Alertmanager HA model of deploy/prometheus/ha/ on loopback.

Two Alertmanagers (Debian's prometheus-alertmanager) in one cluster (--cluster.peer), configured
from deploy/prometheus/ha/alertmanager.yml (webhook URL and timings shortened for the test).
A small sender POSTs every alert to /api/v2/alerts of BOTH members, as Prometheus replicas and
vigild's notifier do. A webhook receiver counts notifications:
  1. both members up: exactly ONE notification per alert group, also after the second member's
     wait (position x --cluster.peer-timeout) has passed;
  2. the first member killed: a new alert group is still notified, once.
Also promtool/amtool check the shipped HA configs. Skips (exit 77) without Alertmanager.
"""
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Failure, SRC, check, holds_for, scratch_dir, skip, skip_part, wait_for  # noqa: E402

HA = os.path.join(SRC, "deploy", "prometheus", "ha")
AM = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
PEER_TIMEOUT = 2.0  # seconds; production default 15s


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Hook(http.server.BaseHTTPRequestHandler):
    received = []  # (time, groupKey, alert names)
    lock = threading.Lock()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Hook.lock:
            Hook.received.append((time.monotonic(), body["groupKey"],
                                  sorted(a["labels"]["alertname"] for a in body["alerts"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def groups():
    with Hook.lock:
        out = {}
        for _, key, _ in Hook.received:
            out[key] = out.get(key, 0) + 1
        return out


def send(urls, name, instance):
    """POST one alert to every Alertmanager; returns how many accepted it."""
    alert = [{"labels": {"alertname": name, "instance": instance, "cluster": "test",
                         "severity": "critical", "gpu": "0"},
              "annotations": {"summary": "test alert from the vigild notifier model"},
              "generatorURL": "http://vigild.test:5555/api/v1/incidents"}]
    ok = 0
    for u in urls:
        req = urllib.request.Request(u + "/api/v2/alerts", data=json.dumps(alert).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                ok += r.status == 200
        except OSError:
            pass
    return ok


def check_configs():
    if shutil.which("amtool"):
        r = subprocess.run(["amtool", "check-config", os.path.join(HA, "alertmanager.yml")],
                           capture_output=True, text=True)
        check(r.returncode == 0, "amtool check-config: " + r.stdout + r.stderr)
    else:
        skip_part("amtool check-config: amtool is not installed")
    if shutil.which("promtool"):
        for f in ("prometheus-a.yml", "prometheus-b.yml"):
            r = subprocess.run(["promtool", "check", "config", os.path.join(HA, f)],
                               capture_output=True, text=True)
            check(r.returncode == 0, "promtool check config %s: %s%s" % (f, r.stdout, r.stderr))
    else:
        skip_part("promtool check config: promtool is not installed")
    for f, rep in (("prometheus-a.yml", "a"), ("prometheus-b.yml", "b")):
        text = open(os.path.join(HA, f)).read()
        check("replica: %s" % rep in text, "%s: external_labels.replica is not %s" % (f, rep))
        check("labeldrop" in text, "%s: replica label not dropped from alerts" % f)
    print("ok - HA configs")


def main():
    if not AM:
        skip("Alertmanager is not installed (apt-get install prometheus-alertmanager)")
    check_configs()
    tmp = scratch_dir("vigil-amha-")
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    cfg = open(os.path.join(HA, "alertmanager.yml")).read()
    cfg = cfg.replace("http://oncall-bridge.example.internal:8080/alertmanager",
                      "http://127.0.0.1:%d/hook" % hook.server_address[1])
    cfg = cfg.replace("group_wait: 30s", "group_wait: 1s")
    cpath = os.path.join(tmp.name, "am.yml")
    with open(cpath, "w") as f:
        f.write(cfg)
    web = [free_port(), free_port()]
    clu = [free_port(), free_port()]
    procs = []
    try:
        for i in range(2):
            d = os.path.join(tmp.name, "am%d" % i)
            os.makedirs(d)
            procs.append(subprocess.Popen(
                [AM, "--config.file=" + cpath, "--storage.path=" + d,
                 "--web.listen-address=127.0.0.1:%d" % web[i],
                 "--cluster.listen-address=127.0.0.1:%d" % clu[i],
                 "--cluster.advertise-address=127.0.0.1:%d" % clu[i],
                 "--cluster.peer=127.0.0.1:%d" % clu[1 - i],
                 "--cluster.peer-timeout=%gs" % PEER_TIMEOUT, "--cluster.gossip-interval=100ms",
                 "--cluster.pushpull-interval=1s", "--cluster.settle-timeout=2s",
                 "--log.level=warn"],
                stdout=open(os.path.join(d, "log"), "w"), stderr=subprocess.STDOUT))
        urls = ["http://127.0.0.1:%d" % p for p in web]

        def cluster_ready():
            for u in urls:
                with urllib.request.urlopen(u + "/api/v2/status", timeout=2) as r:
                    st = json.load(r)
                if st["cluster"]["status"] != "ready" or len(st["cluster"]["peers"]) != 2:
                    return False
            return True
        wait_for(cluster_ready, 30, "a 2-member Alertmanager cluster", interval=0.2)

        # 1. both up: one notification per group
        check(send(urls, "VigilGPUXid", "node1") == 2, "both Alertmanagers must accept the alert")
        check(send(urls, "VigilGPUThermal", "node2") == 2, "both Alertmanagers must accept the alert")
        wait_for(lambda: len(groups()) == 2, 20, "a notification for each of the 2 groups")
        # Alertmanager's own timer: the second member's turn has to come and go
        holds_for(lambda: all(n == 1 for n in groups().values()), PEER_TIMEOUT * 2 + 2,
                  "one notification per group")
        g = groups()
        print("# notifications per group, both members up: %s" % g)
        check(len(g) == 2 and all(n == 1 for n in g.values()),
              "expected exactly one notification per group, got %s" % g)

        # 2. the first member down: still notified, once
        procs[0].kill()
        procs[0].wait()
        t0 = time.monotonic()
        check(send(urls, "VigilGPULost", "node3") == 1, "the surviving Alertmanager must accept")
        wait_for(lambda: len(groups()) == 3, 30, "a notification with one Alertmanager down")
        print("# notified %.1f s after the alert with member 1 down" % (time.monotonic() - t0))
        holds_for(lambda: all(n == 1 for n in groups().values()), PEER_TIMEOUT + 1,
                  "one notification per group with member 1 down")
        g = groups()
        check(all(n == 1 for n in g.values()), "duplicate notifications: %s" % g)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        hook.shutdown()
        tmp.cleanup()
    print("ok - Alertmanager cluster: one notification per group, survives a member loss")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL:", e)
        sys.exit(1)
